// Losses: values against the Keras formulas written out by hand, stability of the logits forms,
// reductions and sample weights, traced = eager, gradients, and bad input.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <cmath>

namespace k = kiln;
namespace L = kiln::losses;
using Catch::Contains;

namespace {
std::vector<double> values(const k::Tensor& t) {
  std::vector<double> out;
  for (int64_t i = 0; i < t.size(); ++i)
    out.push_back(t.host().element_as_double(i));
  return out;
}
void check_close(const k::Tensor& t, const std::vector<double>& want, double tol = 1e-6) {
  std::vector<double> got = values(t);
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i);
    CHECK(got[i] == Approx(want[i]).epsilon(tol).margin(tol));
  }
}
double bce(double y, double p) {
  p = std::min(std::max(p, 1e-7), 1 - 1e-7);
  return -(y * std::log(p) + (1 - y) * std::log(1 - p));
}
double sigmoid(double x) {
  return 1 / (1 + std::exp(-x));
}
}  // namespace

TEST_CASE("mean squared and absolute error average over the last axis", "[losses]") {
  k::Tensor y = k::constant({{0.f, 1.f}, {1.f, 1.f}});
  k::Tensor p = k::constant({{0.5f, 0.5f}, {2.f, -1.f}});
  check_close(L::mean_squared_error(y, p), {0.25, (1.0 + 4.0) / 2});
  check_close(L::mean_absolute_error(y, p), {0.5, 1.5});
  check_close(L::MeanSquaredError()(y, p), {(0.25 + 2.5) / 2});
  check_close(L::MeanSquaredError(L::Reduction::sum)(y, p), {2.75});
  check_close(L::MeanSquaredError(L::Reduction::none)(y, p), {0.25, 2.5});
  check_close(L::MeanSquaredError()(y, p, k::constant({2.f, 0.f})), {(0.5 + 0.0) / 2});
  check_close(L::MeanSquaredError()(y, p, k::constant({{2.f}, {1.f}})), {(0.5 + 2.5) / 2});
}

TEST_CASE("binary crossentropy: probabilities, logits, smoothing, f64", "[losses]") {
  k::Tensor y = k::constant({{1.0, 0.0}, {0.0, 1.0}});
  k::Tensor logits = k::constant({{2.0, -1.0}, {0.5, 0.0}});
  std::vector<double> want = {(bce(1, sigmoid(2)) + bce(0, sigmoid(-1))) / 2,
                              (bce(0, sigmoid(0.5)) + bce(1, sigmoid(0))) / 2};
  check_close(L::binary_crossentropy(y, k::sigmoid(logits)), want, 1e-9);
  check_close(L::binary_crossentropy(y, logits, true), want, 1e-9);
  // Clipping: p = 0 for a positive label costs −log(1e-7).
  check_close(L::binary_crossentropy(k::constant({1.f}), k::constant({0.f})), {-std::log(1e-7)},
              1e-4);
  // Huge logits stay finite and exact in the logits form.
  check_close(L::binary_crossentropy(k::constant({1.f, 0.f}), k::constant({-1000.f, -100.f}), true),
              {500.0});
  // Smoothing 0.2: labels 0.9 and 0.1.
  double s = (bce(0.9, sigmoid(2)) + bce(0.1, sigmoid(-1))) / 2;
  check_close(L::binary_crossentropy(k::constant({1.0, 0.0}), k::sigmoid(k::constant({2.0, -1.0})),
                                     false, 0.2),
              {s}, 1e-9);
  check_close(L::BinaryCrossentropy(true)(y, logits), {(want[0] + want[1]) / 2}, 1e-9);
}

TEST_CASE("categorical and sparse categorical crossentropy", "[losses]") {
  k::Tensor logits = k::constant({{1.0, 2.0, 3.0}, {1.0, -1.0, 0.0}});
  auto lse = [](double a, double b, double c) {
    return std::log(std::exp(a) + std::exp(b) + std::exp(c));
  };
  std::vector<double> want = {lse(1, 2, 3) - 3, lse(1, -1, 0) - 1};
  k::Tensor onehot = k::constant({{0.0, 0.0, 1.0}, {1.0, 0.0, 0.0}});
  check_close(L::categorical_crossentropy(onehot, logits, true), want, 1e-9);
  check_close(L::categorical_crossentropy(onehot, k::softmax(logits)), want, 1e-9);
  // Unnormalized probabilities are normalized first.
  check_close(L::categorical_crossentropy(onehot, 2.0 * k::softmax(logits)), want, 1e-9);
  check_close(L::sparse_categorical_crossentropy(k::constant({2, 0}), logits, true), want, 1e-9);
  check_close(L::sparse_categorical_crossentropy(k::constant({{2.0}, {0.0}}), k::softmax(logits)),
              want, 1e-9);
  check_close(L::SparseCategoricalCrossentropy(true)(k::constant({2, 0}), logits),
              {(want[0] + want[1]) / 2}, 1e-9);
  // Smoothing 0.3 over 3 classes: labels 0.1, 0.1, 0.8.
  double smoothed =
      -(0.1 * (1 - lse(1, 2, 3)) + 0.1 * (2 - lse(1, 2, 3)) + 0.8 * (3 - lse(1, 2, 3)));
  check_close(L::categorical_crossentropy(k::constant({0.0, 0.0, 1.0}),
                                          k::constant({1.0, 2.0, 3.0}), true, 0.3),
              {smoothed}, 1e-9);
  // Class axis 0.
  check_close(L::categorical_crossentropy(k::transpose(onehot), k::transpose(logits), true, 0.0, 0),
              want, 1e-9);
  // Huge logits.
  check_close(
      L::sparse_categorical_crossentropy(k::constant({0}), k::constant({{-1000.f, 1000.f}}), true),
      {2000.0});
}

TEST_CASE("losses traced equal losses eager, and have gradients", "[losses]") {
  k::Tensor y = k::constant({2, 0, 1});
  k::Tensor logits = k::random_normal({3, 4}, 0.0, 1.0, 5);
  auto f = k::function([](const k::Tensor& labels, const k::Tensor& x) {
    return L::SparseCategoricalCrossentropy(true)(labels, x);
  });
  CHECK(f(y, logits).item<float>() ==
        Approx(L::SparseCategoricalCrossentropy(true)(y, logits).item<float>()));
  // d/dlogits of the mean cross-entropy = (softmax − onehot) / batch.
  k::GradientTape tape;
  tape.watch(logits);
  k::Tensor loss = L::SparseCategoricalCrossentropy(true)(y, logits);
  k::Tensor grad = tape.gradient(loss, logits);
  k::Tensor want = (k::softmax(logits) - k::one_hot(y, 4)) / 3.f;
  std::vector<float> g = grad.to_vector<float>(), w = want.to_vector<float>();
  for (size_t i = 0; i < g.size(); ++i)
    CHECK(g[i] == Approx(w[i]).margin(1e-6));
}

TEST_CASE("losses reject bad input with the loss's name", "[losses]") {
  k::Tensor p = k::constant({{0.5f, 0.5f}});
  CHECK_THROWS_AS(L::mean_squared_error(k::constant({1.f, 0.f, 1.f}), p), k::ShapeError);
  CHECK_THROWS_WITH(L::mean_squared_error(k::constant({1.f, 0.f, 1.f}), p),
                    Contains("losses.mean_squared_error") && Contains("(1, 2)"));
  CHECK_THROWS_AS(L::binary_crossentropy(k::constant({1, 0}), k::constant({1, 0})), k::TypeError);
  CHECK_THROWS_AS(L::sparse_categorical_crossentropy(k::constant({3}), p), k::IndexError);
  CHECK_THROWS_WITH(L::sparse_categorical_crossentropy(k::constant({-1}), p),
                    Contains("label -1") && Contains("losses_test.cpp"));
  CHECK_THROWS_AS(L::sparse_categorical_crossentropy(k::constant({0, 1}), p), k::ShapeError);
  CHECK_THROWS_AS(L::binary_crossentropy(p, p, false, 1.5), k::ValueError);
  k::Tensor two = k::concat({p, p}, 0);
  CHECK_THROWS_AS(L::MeanSquaredError()(two, two, k::constant({1.f, 2.f, 3.f})), k::ShapeError);
}
