// Values of the frontend ops: thin rows per function (the op families have their own exhaustive
// tests), scalar mixing on either side, and the README example.
#include <catch2/catch.hpp>

#include <cmath>
#include <sstream>

#include "kiln/kiln.h"

namespace k = kiln;

namespace {

template <class T>
void check(const k::Tensor& t, const k::Shape& shape, const std::vector<T>& want,
           double tol = 1e-5) {
  INFO("got " << t);
  REQUIRE(t.dtype() == kiln::ir::dtype_of<T>());
  REQUIRE(t.shape() == shape);
  std::vector<T> got = t.to_vector<T>();
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("element " << i);
    if constexpr (std::is_floating_point_v<T>) {
      if (std::isnan(want[i])) {
        CHECK(std::isnan(got[i]));
      } else if (std::isinf(want[i])) {
        CHECK(got[i] == want[i]);
      } else {
        CHECK(std::abs(got[i] - want[i]) <= tol * (1 + std::abs(want[i])));
      }
    } else {
      CHECK(got[i] == want[i]);
    }
  }
}

}  // namespace

TEST_CASE("the README example compiles and computes what its comments say", "[frontend]") {
  k::Tensor t = k::constant({2, 3, 4, 5}, k::i32);
  k::Tensor A = k::constant({{1.f, 2.f}, {3.f, 4.f}});
  k::Tensor B = k::constant({{-1.f, -2.f}, {-3.f, -4.f}});
  k::Tensor C = k::matmul(A + B, 3.f * A - B, /*transpose_a=*/false, /*transpose_b=*/true);
  k::Tensor rev = A.index({k::Slice(k::none, k::none, -1)});  // rows reversed
  k::Tensor col = A.index({k::Slice(), 1});                   // second column: [2, 4]
  float m = k::reduce_mean(k::log(A)).item<float>();
  std::vector<float> v = k::transpose(A).to_vector<float>();  // 1 3 2 4
  k::Tensor s = k::reduce_std(k::random_normal({5, 2}, 0.f, 1.f, /*seed=*/1), /*axis=*/0);
  std::vector<k::Tensor> parts = k::split(k::random_uniform({6}, 0.f, 1.f, /*seed=*/1), 3);
  k::Tensor st = k::stack({k::ones({3}), k::zeros({3})}, /*axis=*/1);  // shape (3, 2)
  k::Tensor sq = k::squeeze(k::zeros({1, 2, 1, 4, 1}), {2, 4});        // shape (1, 2, 4)
  k::Tensor c64 = k::cast(t, k::i64);
  std::ostringstream out;
  out << A << "\n" << t.shape() << " " << t.dtype() << "\n";

  check<int32_t>(t, {4}, {2, 3, 4, 5});
  check<float>(C, {2, 2}, {0, 0, 0, 0});  // A + B is all zeros
  check<float>(rev, {2, 2}, {3, 4, 1, 2});
  check<float>(col, {2}, {2, 4});
  CHECK(m == Approx((std::log(1.f) + std::log(2.f) + std::log(3.f) + std::log(4.f)) / 4));
  CHECK(v == std::vector<float>{1, 3, 2, 4});
  CHECK(s.shape() == k::Shape{2});
  for (float x : s.to_vector<float>())
    CHECK((x > 0 && x < 3));
  REQUIRE(parts.size() == 3);
  for (const k::Tensor& p : parts) {
    CHECK(p.shape() == k::Shape{2});
    for (float x : p.to_vector<float>())
      CHECK((x >= 0 && x < 1));
  }
  check<float>(st, {3, 2}, {1, 0, 1, 0, 1, 0});
  CHECK(sq.shape() == k::Shape{1, 2, 4});
  check<int64_t>(c64, {4}, {2, 3, 4, 5});
  CHECK(out.str() ==
        "kiln.Tensor(\n[[1. 2.]\n [3. 4.]], shape=(2, 2), dtype=float32)\n(4,) int32\n");
}

TEST_CASE("C is a real matmul once A + B is not zero", "[frontend]") {
  k::Tensor A = k::constant({{1.f, 2.f}, {3.f, 4.f}});
  // (A + A) @ (3A - A)^T = 2A @ (2A)^T = 4 A A^T = 4 [[5, 11], [11, 25]]
  k::Tensor C = k::matmul(A + A, 3.f * A - A, false, true);
  check<float>(C, {2, 2}, {20, 44, 44, 100});
  check<float>(k::matmul(A, A, true, false), {2, 2}, {10, 14, 14, 20});
}

TEST_CASE("constant: scalars, nested lists, vectors and target dtypes", "[frontend]") {
  check<float>(k::constant(2.5f), {}, {2.5f});
  check<double>(k::constant(2.5), {}, {2.5});
  check<int32_t>(k::constant(7), {}, {7});
  check<int64_t>(k::constant(int64_t{7}), {}, {7});
  check<bool>(k::constant(true), {}, {true});
  check<float>(k::constant(3, k::f32), {}, {3.f});
  check<double>(k::constant({1, 2}, k::f64), {2}, {1, 2});
  check<bool>(k::constant({true, false}), {2}, {true, false});
  check<int64_t>(k::constant({{1, 2, 3}, {4, 5, 6}}, k::i64), {2, 3}, {1, 2, 3, 4, 5, 6});
  check<float>(k::constant({{{1.f}, {2.f}}, {{3.f}, {4.f}}}), {2, 2, 1}, {1, 2, 3, 4});
  check<float>(k::constant({{{{1.f, 2.f}}}}), {1, 1, 1, 2}, {1, 2});
  check<float>(k::constant(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3}), {2, 3},
               {1, 2, 3, 4, 5, 6});
  check<bool>(k::constant(std::vector<bool>{true, false}, {2}), {2}, {true, false});
  check<int32_t>(k::constant(std::vector<int>{}, {0, 3}), {0, 3}, {});
}

TEST_CASE("fill, zeros, ones and the _like forms", "[frontend]") {
  check<float>(k::zeros({2}), {2}, {0, 0});
  check<int32_t>(k::ones({2, 1}, k::i32), {2, 1}, {1, 1});
  check<float>(k::fill({3}, 2.5f), {3}, {2.5f, 2.5f, 2.5f});
  check<int64_t>(k::fill({2}, 4, k::i64), {2}, {4, 4});
  check<bool>(k::fill({1}, true), {1}, {true});
  k::Tensor x = k::constant({{1, 2}}, k::i64);
  check<int64_t>(k::zeros_like(x), {1, 2}, {0, 0});
  check<float>(k::ones_like(x, k::f32), {1, 2}, {1, 1});
  check<float>(k::zeros({0, 3}), {0, 3}, {});
}

TEST_CASE("range and linspace", "[frontend]") {
  check<int32_t>(k::range(4), {4}, {0, 1, 2, 3});
  check<int32_t>(k::range(1, 10, 3), {3}, {1, 4, 7});
  check<float>(k::range(0.f, 1.f, 0.25f), {4}, {0, 0.25f, 0.5f, 0.75f});
  check<double>(k::range(0, 1, 0.5), {2}, {0, 0.5});
  check<int64_t>(k::range(5, 0, -2, k::i64), {3}, {5, 3, 1});
  check<float>(k::linspace(0, 1, 5), {5}, {0, 0.25f, 0.5f, 0.75f, 1});
  check<double>(k::linspace(2, 3, 1, k::f64), {1}, {2});
}

TEST_CASE("random ops: seeded results repeat, unseeded calls differ", "[frontend]") {
  k::Tensor a = k::random_uniform({100}, -2.0, 3.0, 42);
  k::Tensor b = k::random_uniform({100}, -2.0, 3.0, 42);
  CHECK(a.to_vector<float>() == b.to_vector<float>());
  for (float x : a.to_vector<float>())
    CHECK((x >= -2 && x < 3));
  CHECK(k::random_uniform({8}).to_vector<float>() != k::random_uniform({8}).to_vector<float>());
  k::Tensor n = k::random_normal({4000}, 5.0, 2.0, 7, k::f64);
  CHECK(n.dtype() == k::f64);
  CHECK(k::reduce_mean(n).item<double>() == Approx(5.0).margin(0.15));
  CHECK(k::reduce_std(n).item<double>() == Approx(2.0).margin(0.15));
  // random_uniform_at: step 0 is random_uniform; other steps draw again.
  k::Tensor step0 = k::random_uniform_at({100}, k::constant(int64_t{0}), -2.0, 3.0, 42);
  CHECK(step0.to_vector<float>() == a.to_vector<float>());
  k::Tensor step1 = k::random_uniform_at({100}, k::constant(int64_t{1}), -2.0, 3.0, 42);
  CHECK(step1.to_vector<float>() != a.to_vector<float>());
  CHECK_THROWS_AS(k::random_uniform_at({2}, k::constant(1), 0.0, 1.0, 1), k::TypeError);
}

TEST_CASE("one_hot", "[frontend]") {
  k::Tensor idx = k::constant({0, 2, 5});
  check<float>(k::one_hot(idx, 3), {3, 3}, {1, 0, 0, 0, 0, 1, 0, 0, 0});
  check<int32_t>(k::one_hot(k::constant({1}), 2, 5, -1, 0, k::i32), {2, 1}, {-1, 5});
}

TEST_CASE("unary ops", "[frontend]") {
  k::Tensor x = k::constant({-1.5f, 0.f, 2.25f});
  k::Tensor p = k::constant({0.25f, 1.f, 4.f});
  check<float>(k::neg(x), {3}, {1.5f, 0, -2.25f});
  check<float>(-x, {3}, {1.5f, 0, -2.25f});
  check<float>(k::abs(x), {3}, {1.5f, 0, 2.25f});
  check<float>(k::sign(x), {3}, {-1, 0, 1});
  check<float>(k::exp(x), {3}, {std::exp(-1.5f), 1, std::exp(2.25f)});
  check<float>(k::log(p), {3}, {std::log(0.25f), 0, std::log(4.f)});
  check<float>(k::sqrt(p), {3}, {0.5f, 1, 2});
  check<float>(k::rsqrt(p), {3}, {2, 1, 0.5f});
  check<float>(k::square(x), {3}, {2.25f, 0, 5.0625f});
  check<float>(k::reciprocal(p), {3}, {4, 1, 0.25f});
  check<float>(k::sin(x), {3}, {std::sin(-1.5f), 0, std::sin(2.25f)});
  check<float>(k::cos(x), {3}, {std::cos(-1.5f), 1, std::cos(2.25f)});
  check<float>(k::tanh(x), {3}, {std::tanh(-1.5f), 0, std::tanh(2.25f)});
  check<float>(k::sigmoid(x), {3}, {1 / (1 + std::exp(1.5f)), 0.5f, 1 / (1 + std::exp(-2.25f))});
  check<float>(k::relu(x), {3}, {0, 0, 2.25f});
  check<float>(k::elu(x), {3}, {std::expm1(-1.5f), 0, 2.25f});
  check<float>(k::elu(x, 2.0), {3}, {2 * std::expm1(-1.5f), 0, 2.25f});
  check<float>(k::softplus(x), {3},
               {std::log1p(std::exp(-1.5f)), std::log(2.f), std::log1p(std::exp(2.25f))});
  // gelu as keras.activations.gelu: exact x·Φ(x) by default, the tanh form when asked.
  auto exact_gelu = [](float v) { return 0.5f * v * (1 + std::erf(v / std::sqrt(2.f))); };
  auto tanh_gelu = [](float v) {
    return 0.5f * v * (1 + std::tanh(0.7978845608f * (v + 0.044715f * v * v * v)));
  };
  check<float>(k::gelu(x), {3}, {exact_gelu(-1.5f), 0, exact_gelu(2.25f)});
  check<float>(k::gelu(x, true), {3}, {tanh_gelu(-1.5f), 0, tanh_gelu(2.25f)});
  check<float>(k::erf(x), {3}, {std::erf(-1.5f), 0, std::erf(2.25f)});
  check<float>(k::log1p(p), {3}, {std::log1p(0.25f), std::log(2.f), std::log1p(4.f)});
  check<float>(k::expm1(x), {3}, {std::expm1(-1.5f), 0, std::expm1(2.25f)});
  check<float>(k::floor(x), {3}, {-2, 0, 2});
  check<float>(k::ceil(x), {3}, {-1, 0, 3});
  check<float>(k::round(k::constant({0.5f, 1.5f, -2.5f, 2.6f})), {4}, {0, 2, -2, 3});
  check<bool>(k::logical_not(k::constant({true, false})), {2}, {false, true});
  check<int32_t>(k::cast(x, k::i32), {3}, {-1, 0, 2});
  check<bool>(k::cast(x, k::boolean), {3}, {true, false, true});
  check<int32_t>(k::abs(k::constant({-3, 4})), {2}, {3, 4});
}

TEST_CASE("\"gelu\" is an activation name, as in Keras", "[frontend][keras]") {
  k::Tensor x = k::constant({-1.5f, 0.f, 2.25f});
  check<float>(k::activations::get("gelu")(x), {3}, k::gelu(x).to_vector<float>());
  k::layers::Dense dense(2, "gelu");
  k::Tensor y = dense(k::constant({{1.f, -2.f}, {0.5f, 3.f}}));
  CHECK(y.shape() == k::Shape{2, 2});
  CHECK_THROWS_WITH(k::activations::get("gelu_fast"), Catch::Contains("gelu"));
}

TEST_CASE("binary ops and operators broadcast", "[frontend]") {
  k::Tensor a = k::constant({{1.f, 2.f}, {3.f, 4.f}});
  k::Tensor row = k::constant({10.f, 20.f});
  check<float>(k::add(a, row), {2, 2}, {11, 22, 13, 24});
  check<float>(a + row, {2, 2}, {11, 22, 13, 24});
  check<float>(k::subtract(a, row), {2, 2}, {-9, -18, -7, -16});
  check<float>(a - row, {2, 2}, {-9, -18, -7, -16});
  check<float>(k::multiply(a, row), {2, 2}, {10, 40, 30, 80});
  check<float>(a * row, {2, 2}, {10, 40, 30, 80});
  check<float>(k::divide(row, a), {2, 2}, {10, 10, 10.f / 3, 5});
  check<float>(row / a, {2, 2}, {10, 10, 10.f / 3, 5});
  check<float>(k::pow(a, 2.f), {2, 2}, {1, 4, 9, 16});
  check<float>(k::maximum(a, 2.5f), {2, 2}, {2.5f, 2.5f, 3, 4});
  check<float>(k::minimum(a, 2.5f), {2, 2}, {1, 2, 2.5f, 2.5f});
  check<bool>(k::equal(a, 2.f), {2, 2}, {false, true, false, false});
  check<bool>(k::not_equal(a, 2.f), {2, 2}, {true, false, true, true});
  check<bool>(k::less(a, 2.f), {2, 2}, {true, false, false, false});
  check<bool>(k::less_equal(a, 2.f), {2, 2}, {true, true, false, false});
  check<bool>(k::greater(a, 2.f), {2, 2}, {false, false, true, true});
  check<bool>(k::greater_equal(a, 2.f), {2, 2}, {false, true, true, true});
  k::Tensor t = k::constant({true, true, false, false});
  k::Tensor u = k::constant({true, false, true, false});
  check<bool>(k::logical_and(t, u), {4}, {true, false, false, false});
  check<bool>(k::logical_or(t, u), {4}, {true, true, true, false});
  check<float>(k::where(k::greater(a, 2.f), a, 0.f), {2, 2}, {0, 0, 3, 4});
  check<float>(k::select(k::constant({true, false}), a, -a), {2, 2}, {1, -2, 3, -4});
  check<int32_t>(k::divide(k::constant({7, -7}), 2), {2}, {3, -3});

  k::Tensor acc = k::constant({1.f});
  acc += 2.f;
  acc *= acc;
  acc -= 1;
  acc /= 4;
  check<float>(acc, {1}, {2});
}

TEST_CASE("a scalar on either side takes the tensor's dtype", "[frontend]") {
  k::Tensor f = k::constant({1.f, 2.f});
  k::Tensor d = k::constant({1.0, 2.0});
  k::Tensor i = k::constant({1, 2});
  k::Tensor l = k::constant({1, 2}, k::i64);
  check<float>(3.f * f, {2}, {3, 6});
  check<float>(f * 3, {2}, {3, 6});  // int scalar, float tensor
  check<float>(2 - f, {2}, {1, 0});
  check<double>(d + 0.5f, {2}, {1.5, 2.5});  // float scalar, f64 tensor
  check<double>(1 / d, {2}, {1, 0.5});
  check<int32_t>(i * 3, {2}, {3, 6});
  check<int32_t>(10 - i, {2}, {9, 8});
  check<int32_t>(i + 2.0, {2}, {3, 4});  // a whole double fits an int tensor
  check<int64_t>(l + 1, {2}, {2, 3});
  check<int64_t>(l + (int64_t{1} << 40), {2}, {(int64_t{1} << 40) + 1, (int64_t{1} << 40) + 2});
  check<bool>(k::greater(f, 1.5f), {2}, {false, true});
  check<bool>(k::less(0.5, d), {2}, {true, true});
  check<bool>(k::equal(i, 2), {2}, {false, true});
  check<bool>(k::logical_and(k::constant({true, false}), true), {2}, {true, false});
  check<float>(k::maximum(0, f - 1.5f), {2}, {0, 0.5f});
  check<float>(k::where(k::greater(f, 1.5f), 1, f), {2}, {1, 1});
  // Two plain scalars keep their natural dtype.
  check<float>(k::add(1.f, 2.f), {}, {3});
  check<int32_t>(k::multiply(3, 4), {}, {12});
  check<double>(k::pow(2.0, 3.0), {}, {8});
}

TEST_CASE("reductions: all axes, one axis, a list, keepdims", "[frontend]") {
  k::Tensor x = k::constant({{1.f, 2.f, 3.f}, {4.f, 5.f, 6.f}});
  check<float>(k::reduce_sum(x), {}, {21});
  check<float>(k::reduce_sum(x, 0), {3}, {5, 7, 9});
  check<float>(k::reduce_sum(x, -1, true), {2, 1}, {6, 15});
  check<float>(k::reduce_sum(x, {0, 1}), {}, {21});
  check<float>(k::reduce_sum(x, {}, true), {1, 1}, {21});
  check<float>(k::reduce_sum(x, std::vector<int64_t>{}), {2, 3}, {1, 2, 3, 4, 5, 6});
  check<float>(k::reduce_mean(x, 1), {2}, {2, 5});
  check<float>(k::reduce_max(x, 0), {3}, {4, 5, 6});
  check<float>(k::reduce_min(x, 1), {2}, {1, 4});
  check<float>(k::reduce_prod(x, 1), {2}, {6, 120});
  check<int64_t>(k::argmax(x, 1), {2}, {2, 2});
  check<int32_t>(k::argmin(x, 0, k::i32), {3}, {0, 0, 0});

  k::Tensor y = k::constant({{1.0, 3.0}, {5.0, 7.0}});
  check<double>(k::reduce_variance(y), {}, {5});
  check<double>(k::reduce_variance(y, 0), {2}, {4, 4});
  check<double>(k::reduce_std(y, 1, true), {2, 1}, {1, 1});
  check<double>(k::norm(k::constant({3.0, 4.0})), {}, {5});
  check<double>(k::norm(y, 1), {2}, {std::sqrt(10.0), std::sqrt(74.0)});
  check<double>(k::reduce_logsumexp(k::constant({1000.0, 1000.0})), {}, {1000 + std::log(2.0)});
  check<double>(k::reduce_logsumexp(y, 1, true), {2, 1},
                {std::log(std::exp(1.0) + std::exp(3.0)), std::log(std::exp(5.0) + std::exp(7.0))});
  check<float>(k::reduce_logsumexp(k::constant({-INFINITY, -INFINITY})), {}, {-INFINITY});
}

TEST_CASE("shape ops", "[frontend]") {
  k::Tensor x = k::constant({{1, 2, 3}, {4, 5, 6}});
  check<int32_t>(k::reshape(x, {3, -1}), {3, 2}, {1, 2, 3, 4, 5, 6});
  check<int32_t>(k::transpose(x), {3, 2}, {1, 4, 2, 5, 3, 6});
  check<int32_t>(k::transpose(k::reshape(x, {1, 2, 3}), {2, 0, 1}), {3, 1, 2}, {1, 4, 2, 5, 3, 6});
  check<int32_t>(k::squeeze(k::reshape(x, {1, 6, 1})), {6}, {1, 2, 3, 4, 5, 6});
  check<int32_t>(k::squeeze(k::reshape(x, {1, 6, 1}), -1), {1, 6}, {1, 2, 3, 4, 5, 6});
  check<int32_t>(k::expand_dims(x, 1), {2, 1, 3}, {1, 2, 3, 4, 5, 6});
  check<int32_t>(k::broadcast_to(k::constant({1, 2}), {2, 2}), {2, 2}, {1, 2, 1, 2});
  check<int32_t>(k::concat({x, x}, 0), {4, 3}, {1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6});
  check<int32_t>(k::concat({x, k::constant({{7}, {8}})}, -1), {2, 4}, {1, 2, 3, 7, 4, 5, 6, 8});
  check<int32_t>(k::stack({k::constant({1, 2}), k::constant({3, 4})}), {2, 2}, {1, 2, 3, 4});
  check<int32_t>(k::stack({k::constant({1, 2}), k::constant({3, 4})}, -1), {2, 2}, {1, 3, 2, 4});

  std::vector<k::Tensor> cols = k::split(x, 3, 1);
  REQUIRE(cols.size() == 3);
  check<int32_t>(cols[2], {2, 1}, {3, 6});
  std::vector<k::Tensor> pieces = k::split(x, std::vector<int64_t>{1, -1}, 1);
  REQUIRE(pieces.size() == 2);
  check<int32_t>(pieces[0], {2, 1}, {1, 4});
  check<int32_t>(pieces[1], {2, 2}, {2, 3, 5, 6});

  check<int32_t>(k::gather(x, k::constant({1, 0, 1})), {3, 3}, {4, 5, 6, 1, 2, 3, 4, 5, 6});
  check<int32_t>(k::gather(x, k::constant({2}, k::i64), 1), {2, 1}, {3, 6});
  check<int32_t>(k::pad(k::constant({1, 2}), {{1, 2}}), {5}, {0, 1, 2, 0, 0});
  check<float>(k::pad(k::constant({{1.f}}), {{1, 0}, {0, 1}}, -1.f), {2, 2}, {-1, -1, 1, -1});
  check<int32_t>(k::tile(k::constant({1, 2}), {3}), {6}, {1, 2, 1, 2, 1, 2});
}

TEST_CASE("nn ops", "[frontend]") {
  // 1x3x3x1 input, 2x2x1x1 filter of ones: each output sums a 2x2 window.
  k::Tensor img = k::reshape(k::range(1.f, 10.f), {1, 3, 3, 1});
  k::Tensor ones = k::ones({2, 2, 1, 1});
  check<float>(k::conv2d(img, ones), {1, 2, 2, 1}, {12, 16, 24, 28});
  check<float>(k::conv2d(img, ones, {2}, "SAME"), {1, 2, 2, 1}, {12, 9, 15, 9});
  check<float>(k::conv2d(img, ones, {1, 1}, "valid", {2, 2}), {1, 1, 1, 1}, {1 + 3 + 7 + 9});
  check<float>(k::max_pool2d(img, {2, 2}, {1, 1}), {1, 2, 2, 1}, {5, 6, 8, 9});
  check<float>(k::max_pool2d(img, {2}, {}, "same"), {1, 2, 2, 1}, {5, 6, 8, 9});
  check<float>(k::avg_pool2d(img, {2, 2}, {2, 2}, "same"), {1, 2, 2, 1}, {3, 4.5f, 7.5f, 9});
  k::Tensor logits = k::constant({{1.0, 2.0, 3.0}});
  double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  check<double>(k::softmax(logits), {1, 3},
                {std::exp(1.0) / z, std::exp(2.0) / z, std::exp(3.0) / z});
  check<double>(k::log_softmax(logits, 1), {1, 3},
                {1 - std::log(z), 2 - std::log(z), 3 - std::log(z)});
  check<double>(k::softmax(logits, 0), {1, 3}, {1, 1, 1});
}

TEST_CASE("item and to_vector read values of the matching type", "[frontend]") {
  CHECK(k::constant(2.5).item<double>() == 2.5);
  CHECK(k::constant({{7}}).item<int32_t>() == 7);
  CHECK(k::constant(int64_t{1} << 40).item<int64_t>() == int64_t{1} << 40);
  CHECK(k::constant(false).item<bool>() == false);
  CHECK(k::constant({true, false}).to_vector<bool>() == std::vector<bool>{true, false});
  CHECK(k::zeros({0}).to_vector<float>().empty());
}

TEST_CASE("name_scope nests per thread", "[frontend]") {
  CHECK(k::current_name_scope().empty());
  {
    k::name_scope outer("model");
    k::name_scope inner("dense_1");
    CHECK(k::current_name_scope() == "model/dense_1");
  }
  CHECK(k::current_name_scope().empty());
}

TEST_CASE("scalar constants without a dtype are weakly typed", "[frontend][ops]") {
  k::Tensor x64 = k::constant({1.0, 2.0});
  k::Tensor y = k::constant(2.f) * x64 + k::constant(1);
  CHECK(y.dtype() == k::f64);
  CHECK(y.to_vector<double>() == std::vector<double>{3.0, 5.0});
  CHECK(y.weak_scalar() == nullptr);
  CHECK(k::constant(2.f).weak_scalar() != nullptr);
  // Two weak constants keep their own dtypes; an explicit dtype makes a constant strong.
  CHECK((k::constant(2.f) + k::constant(3.f)).dtype() == k::f32);
  CHECK_THROWS_AS(k::constant(2.f, k::f32) * x64, k::TypeError);
  // The same exactness rule as plain scalars: 0.5 does not become an integer.
  CHECK_THROWS_AS(k::constant(0.5f) * k::constant({1, 2}), k::TypeError);
  CHECK((k::constant(3.f) * k::constant({1, 2})).to_vector<int32_t>() ==
        std::vector<int32_t>{3, 6});
}
