// The computations of examples/tensor_tutorial.cpp, checked: constant inputs against
// hand-computed values, seeded random inputs against plain loops over their elements.
#include <catch2/catch.hpp>

#include <cmath>
#include <numbers>
#include <vector>

#include "kiln/kiln.h"

namespace k = kiln;

namespace {

template <class T>
std::vector<T> values(const k::Tensor& t) {
  return t.to_vector<T>();
}

void check_close(const k::Tensor& t, const std::vector<double>& expected, double eps = 1e-5) {
  std::vector<float> got = values<float>(t);
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i);
    CHECK(got[i] == Approx(expected[i]).margin(eps));
  }
}

// A row-major [rows, cols] matrix read into nested vectors.
std::vector<std::vector<double>> matrix(const k::Tensor& t) {
  REQUIRE(t.rank() == 2);
  std::vector<float> v = values<float>(t);
  int64_t rows = t.shape()[0], cols = t.shape()[1];
  std::vector<std::vector<double>> m(rows, std::vector<double>(cols));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      m[i][j] = v[i * cols + j];
  return m;
}

}  // namespace

TEST_CASE("tutorial: tensors, variables and arithmetic", "[tutorial]") {
  k::Tensor t = k::constant({2, 3, 4, 5}, k::i32);
  CHECK(t.shape() == k::Shape{4});
  CHECK(t.dtype() == k::i32);
  CHECK(values<int32_t>(t) == std::vector<int32_t>{2, 3, 4, 5});
  k::Tensor m = k::constant({{9, 5}, {1, 0}}, k::f32);
  CHECK(m.dtype() == k::f32);
  CHECK(values<float>(m) == std::vector<float>{9, 5, 1, 0});

  k::Variable v(k::constant({{1, 2}, {3, 4}}, k::f32));
  v.assign(k::constant({{-2, -1}, {-3, -7}}, k::f32));
  v.assign_add(k::constant({{1, 1}, {1, 1}}, k::f32));
  CHECK(values<float>(v.value()) == std::vector<float>{-1, 0, -2, -6});
  v.assign_sub(k::constant({{2, 2}, {2, 2}}, k::f32));
  CHECK(values<float>(v.value()) == std::vector<float>{-3, -2, -4, -8});

  k::Tensor A = k::constant({{1, 2}, {3, 4}}, k::f32);
  k::Tensor B = k::constant({{-1, -2}, {-3, -4}}, k::f32);
  CHECK(values<float>(A + B) == std::vector<float>{0, 0, 0, 0});
  CHECK(values<float>(A - B) == std::vector<float>{2, 4, 6, 8});
  CHECK(values<float>(3.f * A) == std::vector<float>{3, 6, 9, 12});
  CHECK(values<float>(A * B) == std::vector<float>{-1, -4, -9, -16});
  CHECK(values<float>(k::matmul(A, B)) == std::vector<float>{-7, -10, -15, -22});
}

TEST_CASE("tutorial: slicing, log and cos", "[tutorial]") {
  k::Tensor A = k::constant({{1, 2}, {3, 4}}, k::f32);
  CHECK(values<float>(A.index({0})) == std::vector<float>{1, 2});
  k::Tensor a00 = A.index({0, 0});
  CHECK(a00.shape() == k::Shape{});
  CHECK(a00.item<float>() == 1.f);
  CHECK(values<float>(A.index({k::Slice(), 1})) == std::vector<float>{2, 4});
  CHECK(values<float>(A.index({k::Slice(k::none, k::none, -1)})) == std::vector<float>{3, 4, 1, 2});
  check_close(k::log(A), {0.0, 0.693147, 1.098612, 1.386294});
  check_close(k::cos(A), {0.540302, -0.416147, -0.989992, -0.653644});
}

TEST_CASE("tutorial: creating tensors, dtype and shape", "[tutorial]") {
  CHECK(k::constant({4, 5, 6}).dtype() == k::i32);
  k::Tensor t_ones = k::ones({2, 3});
  CHECK(t_ones.shape() == k::Shape{2, 3});
  CHECK(t_ones.dtype() == k::f32);
  CHECK(values<float>(t_ones) == std::vector<float>(6, 1.f));
  k::Tensor c = k::constant({1.2f, 5.f, std::numbers::pi_v<float>}, k::f32);
  CHECK(values<float>(c) == std::vector<float>{1.2f, 5.f, std::numbers::pi_v<float>});

  k::Tensor matriz = k::constant({{2, 3, 4, 5}, {6, 7, 8, 8}}, k::i32);
  CHECK(matriz.shape() == k::Shape{2, 4});
  k::Tensor matriz_n = k::cast(matriz, k::i64);
  CHECK(matriz_n.dtype() == k::i64);
  CHECK(values<int64_t>(matriz_n) == std::vector<int64_t>{2, 3, 4, 5, 6, 7, 8, 8});

  k::Tensor t = k::random_uniform({3, 5}, 0.0, 1.0, /*seed=*/1);
  k::Tensor t_tr = k::transpose(t);
  CHECK(t_tr.shape() == k::Shape{5, 3});
  auto a = matrix(t), b = matrix(t_tr);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 5; ++j) {
      CHECK(a[i][j] == b[j][i]);
      CHECK((a[i][j] >= 0 && a[i][j] < 1));
    }

  k::Tensor r = k::reshape(k::zeros({30}), {5, 6});
  CHECK(r.shape() == k::Shape{5, 6});
  CHECK(values<float>(r) == std::vector<float>(30, 0.f));
  CHECK(k::squeeze(k::zeros({1, 2, 1, 4, 1}), {2, 4}).shape() == k::Shape{1, 2, 4});
}

TEST_CASE("tutorial: seeded random tensors are reproducible", "[tutorial]") {
  k::Tensor t1 = k::random_uniform({5, 2}, -1.0, 1.0, /*seed=*/1);
  CHECK(values<float>(t1) == values<float>(k::random_uniform({5, 2}, -1.0, 1.0, 1)));
  CHECK(values<float>(t1) != values<float>(k::random_uniform({5, 2}, -1.0, 1.0, 2)));
  for (float x : values<float>(t1))
    CHECK((x >= -1 && x < 1));
  // docs/ops.md's Philox-4x32-10 (key = seed, counter = (i, 0, 0, 0), top 24 bits of word 0),
  // computed independently: the numbers the example prints for tf.random.uniform((6,)).
  CHECK(values<float>(k::random_uniform({6}, 0.0, 1.0, /*seed=*/1)) ==
        std::vector<float>{0.8902591466903687f, 0.6719982624053955f, 0.2474014163017273f,
                           0.757626473903656f, 0.24776321649551392f, 0.16027820110321045f});
  k::Tensor t2 = k::random_normal({5, 2}, 0.0, 1.0, /*seed=*/2);
  CHECK(values<float>(t2) == values<float>(k::random_normal({5, 2}, 0.0, 1.0, 2)));
  for (float x : values<float>(t2))
    CHECK((std::isfinite(x) && std::fabs(x) < 8));
}

TEST_CASE("tutorial: products, reductions, matmul and norms", "[tutorial]") {
  k::Tensor t1 = k::random_uniform({5, 2}, -1.0, 1.0, /*seed=*/1);
  k::Tensor t2 = k::random_normal({5, 2}, 0.0, 1.0, /*seed=*/2);
  auto a = matrix(t1), b = matrix(t2);

  std::vector<double> product;
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 2; ++j)
      product.push_back(a[i][j] * b[i][j]);
  check_close(k::multiply(t1, t2), product);

  double total = 0, squares = 0;
  std::vector<double> col_sum(2, 0), row_sum(5, 0), col_sq(2, 0), row_sq(5, 0);
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 2; ++j) {
      total += a[i][j];
      squares += a[i][j] * a[i][j];
      col_sum[j] += a[i][j];
      row_sum[i] += a[i][j];
      col_sq[j] += a[i][j] * a[i][j];
      row_sq[i] += a[i][j] * a[i][j];
    }
  check_close(k::reduce_sum(t1), {total});
  check_close(k::reduce_sum(t1, 0), col_sum);
  check_close(k::reduce_sum(t1, 1), row_sum);
  check_close(k::reduce_mean(t1), {total / 10});
  check_close(k::reduce_mean(t1, 0), {col_sum[0] / 5, col_sum[1] / 5});
  std::vector<double> row_mean, row_std, row_norm;
  for (int i = 0; i < 5; ++i) {
    row_mean.push_back(row_sum[i] / 2);
    row_std.push_back(std::sqrt(row_sq[i] / 2 - row_mean[i] * row_mean[i]));
    row_norm.push_back(std::sqrt(row_sq[i]));
  }
  check_close(k::reduce_mean(t1, 1), row_mean);
  // Population standard deviation, as tf.math.reduce_std.
  check_close(k::reduce_std(t1), {std::sqrt(squares / 10 - (total / 10) * (total / 10))});
  check_close(k::reduce_std(t1, 0), {std::sqrt(col_sq[0] / 5 - std::pow(col_sum[0] / 5, 2)),
                                     std::sqrt(col_sq[1] / 5 - std::pow(col_sum[1] / 5, 2))});
  check_close(k::reduce_std(t1, 1), row_std);
  check_close(k::norm(t1), {std::sqrt(squares)});
  check_close(k::norm(t1, 0), {std::sqrt(col_sq[0]), std::sqrt(col_sq[1])});
  check_close(k::norm(t1, 1), row_norm);

  // t1 · t2ᵀ is [5, 5]; t1ᵀ · t2 is [2, 2].
  k::Tensor t5 = k::matmul(t1, t2, false, true);
  CHECK(t5.shape() == k::Shape{5, 5});
  std::vector<double> e5;
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 5; ++j)
      e5.push_back(a[i][0] * b[j][0] + a[i][1] * b[j][1]);
  check_close(t5, e5);
  k::Tensor t6 = k::matmul(t1, t2, true, false);
  CHECK(t6.shape() == k::Shape{2, 2});
  std::vector<double> e6;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) {
      double s = 0;
      for (int r = 0; r < 5; ++r)
        s += a[r][i] * b[r][j];
      e6.push_back(s);
    }
  check_close(t6, e6);
}

TEST_CASE("tutorial: split, concat and stack", "[tutorial]") {
  k::Tensor t = k::random_uniform({6}, 0.0, 1.0, /*seed=*/1);
  std::vector<float> all = values<float>(t);
  std::vector<k::Tensor> parts = k::split(t, 3);
  REQUIRE(parts.size() == 3);
  for (size_t p = 0; p < 3; ++p) {
    CHECK(values<float>(parts[p]) ==
          std::vector<float>(all.begin() + 2 * p, all.begin() + 2 * p + 2));
  }
  std::vector<k::Tensor> halves = k::split(t, std::vector<int64_t>{3, 3});
  REQUIRE(halves.size() == 2);
  CHECK(values<float>(halves[1]) == std::vector<float>(all.begin() + 3, all.end()));

  k::Tensor matriz_n = k::reshape(k::constant({{2, 3, 4, 5}, {6, 7, 8, 8}}, k::i32), {8});
  std::vector<k::Tensor> m = k::split(matriz_n, 2);
  REQUIRE(m.size() == 2);
  CHECK(values<int32_t>(m[0]) == std::vector<int32_t>{2, 3, 4, 5});
  CHECK(values<int32_t>(m[1]) == std::vector<int32_t>{6, 7, 8, 8});

  CHECK(values<float>(k::concat({k::ones({3}), k::zeros({2})}, 0)) ==
        std::vector<float>{1, 1, 1, 0, 0});
  k::Tensor s = k::stack({k::ones({3}), k::zeros({3})}, 1);
  CHECK(s.shape() == k::Shape{3, 2});
  CHECK(values<float>(s) == std::vector<float>{1, 0, 1, 0, 1, 0});
}

TEST_CASE("tutorial exercises: linspace and factorials", "[tutorial]") {
  k::Tensor grid = k::linspace(0.0, 30.0, 1001);
  CHECK(grid.shape() == k::Shape{1001});
  check_close(grid.index({k::Slice(k::none, 3)}), {0.0, 0.03, 0.06});
  CHECK(grid.index({-1}).item<float>() == Approx(30.0));
  k::Tensor n = k::range(1.0, 31.0, 1.0, k::f64);
  CHECK(n.shape() == k::Shape{30});
  auto factorial = [&](int64_t i) {
    return k::reduce_prod(n.index({k::Slice(k::none, i)})).item<double>();
  };
  CHECK(factorial(10) == 3628800.0);
  CHECK(factorial(20) == 2432902008176640000.0);  // exact: every partial product fits f64
  CHECK(factorial(30) == Approx(2.652528598121910e32));
  CHECK(k::reshape(k::random_normal({4, 6}, 0.0, 1.0, 3), {-1}).shape() == k::Shape{24});
}
