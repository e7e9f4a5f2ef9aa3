// Losses: values against the Keras formulas evaluated in double here, in f32 and f64; stability
// of the logits forms at ±100 and ±1000 against the analytic limits; label smoothing; reductions
// and sample weights; traced = eager; gradients; and bad input (error type, loss name, user line).
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "error_test_util.h"

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
    INFO("element " << i << " of " << t.to_string());
    CHECK(std::isfinite(got[i]));
    CHECK(got[i] == Approx(want[i]).epsilon(tol).margin(tol));
  }
}

// A tensor of `dtype` holding `v` (rounded to f32 when dtype is f32).
k::Tensor make(const std::vector<double>& v, const k::Shape& shape, k::DType dtype) {
  return k::cast(k::constant(v, shape), dtype);
}

// Relative/absolute tolerance for a dtype.
double tol_for(k::DType dtype) {
  return dtype == k::f32 ? 2e-6 : 1e-12;
}

double clip(double p) {
  return std::min(std::max(p, 1e-7), 1 - 1e-7);
}
double bce(double y, double p) {
  p = clip(p);
  return -(y * std::log(p) + (1 - y) * std::log(1 - p));
}
double sigmoid(double x) {
  return 1 / (1 + std::exp(-x));
}
double lse3(double a, double b, double c) {
  double m = std::max({a, b, c});
  return m + std::log(std::exp(a - m) + std::exp(b - m) + std::exp(c - m));
}

using kiln::testing::error_of;

// Checks that `msg` names every part and this file's line `line`.
void check_message(const std::string& msg, std::initializer_list<std::string> parts, int line) {
  kiln::testing::check_message_at(msg, parts, "losses_test.cpp", line);
}

const k::DType kFloatTypes[] = {k::f32, k::f64};

}  // namespace

TEST_CASE("mean squared and absolute error average over the last axis", "[losses]") {
  for (k::DType dt : kFloatTypes) {
    INFO(k::ir::dtype_name(dt));
    double tol = tol_for(dt);
    k::Tensor y = make({0, 1, 1, 1}, {2, 2}, dt);
    k::Tensor p = make({0.5, 0.5, 2, -1}, {2, 2}, dt);
    // Row 0: (0.25 + 0.25)/2; row 1: (1 + 4)/2.
    check_close(L::mean_squared_error(y, p), {0.25, 2.5}, tol);
    check_close(L::mean_absolute_error(y, p), {0.5, 1.5}, tol);
    CHECK(L::mean_squared_error(y, p).dtype() == dt);
    // Integer labels are cast to y_pred's dtype.
    check_close(L::mean_squared_error(k::constant({{0, 1}, {1, 1}}), p), {0.25, 2.5}, tol);
    // Rank 3: the loss keeps the first two dims.
    k::Tensor y3 = make({1, 2, 3, 4, 5, 6, 7, 8}, {2, 2, 2}, dt);
    k::Tensor p3 = make({1, 0, 3, 3, 0, 6, 7, 10}, {2, 2, 2}, dt);
    k::Tensor mse3 = L::mean_squared_error(y3, p3);
    CHECK(mse3.shape() == k::Shape{2, 2});
    check_close(mse3, {2, 0.5, 12.5, 2}, tol);
    check_close(L::mean_absolute_error(y3, p3), {1, 0.5, 2.5, 1}, tol);
  }
  // The classes, with their Keras names and reductions.
  k::Tensor y = k::constant({{0.f, 1.f}, {1.f, 1.f}});
  k::Tensor p = k::constant({{0.5f, 0.5f}, {2.f, -1.f}});
  CHECK(L::MeanSquaredError().name() == "mean_squared_error");
  CHECK(L::MeanAbsoluteError().name() == "mean_absolute_error");
  CHECK(L::MeanSquaredError().reduction() == L::Reduction::sum_over_batch_size);
  check_close(L::MeanSquaredError()(y, p), {(0.25 + 2.5) / 2});
  check_close(L::MeanAbsoluteError()(y, p), {(0.5 + 1.5) / 2});
  check_close(L::MeanSquaredError(L::Reduction::sum)(y, p), {2.75});
  check_close(L::MeanSquaredError(L::Reduction::none)(y, p), {0.25, 2.5});
}

TEST_CASE("a trailing size-1 dim on one side is squeezed or expanded, as in Keras", "[losses]") {
  k::Tensor p = k::constant({{0.5f}, {2.f}, {-1.f}});  // (3, 1)
  k::Tensor y = k::constant({1.f, 1.f, 0.f});          // (3,)
  // y is expanded to (3, 1): one loss per sample.
  k::Tensor l = L::mean_squared_error(y, p);
  CHECK(l.shape() == k::Shape{3});
  check_close(l, {0.25, 1, 1});
  // y (3, 1) against p (3,): p is expanded.
  l = L::mean_absolute_error(p, y);
  CHECK(l.shape() == k::Shape{3});
  check_close(l, {0.5, 1, 1});
  // Higher rank: the extra trailing 1 is squeezed away.
  k::Tensor y3 = k::constant({{{1.f}, {0.f}}});  // (1, 2, 1)
  k::Tensor p2 = k::constant({{0.75f, 0.25f}});  // (1, 2)
  l = L::binary_crossentropy(y3, p2);
  CHECK(l.shape() == k::Shape{1});
  check_close(l, {(bce(1, 0.75) + bce(0, 0.25)) / 2}, 1e-6);
  // Binary labels (n,) against a Dense(1, sigmoid) output (n, 1).
  check_close(L::BinaryCrossentropy()(k::constant({1.f, 0.f}), k::constant({{0.8f}, {0.4f}})),
              {(bce(1, 0.8) + bce(0, 0.4)) / 2}, 1e-6);
}

TEST_CASE("binary crossentropy: probabilities, logits and smoothing, f32 and f64", "[losses]") {
  for (k::DType dt : kFloatTypes) {
    INFO(k::ir::dtype_name(dt));
    double tol = dt == k::f32 ? 1e-5 : 1e-12;
    k::Tensor y = make({1, 0, 0, 1}, {2, 2}, dt);
    std::vector<double> x = {2, -1, 0.5, 0};
    k::Tensor logits = make(x, {2, 2}, dt);
    std::vector<double> want = {(bce(1, sigmoid(2)) + bce(0, sigmoid(-1))) / 2,
                                (bce(0, sigmoid(0.5)) + bce(1, sigmoid(0))) / 2};
    check_close(L::binary_crossentropy(y, k::sigmoid(logits)), want, tol);
    // The logits form equals the probability form on moderate inputs.
    check_close(L::binary_crossentropy(y, logits, true), want, tol);
    check_close(L::BinaryCrossentropy(true)(y, logits), {(want[0] + want[1]) / 2}, tol);
    CHECK(L::BinaryCrossentropy().name() == "binary_crossentropy");

    // Clipping to [1e-7, 1 − 1e-7]: p = 0 for a positive label costs −log(1e-7), p = 1 for a
    // negative one −log(1 − (1 − 1e-7)) (1 − 1e-7 rounded to the dtype).
    double top = dt == k::f32 ? double(float(1 - 1e-7)) : 1 - 1e-7;
    check_close(L::binary_crossentropy(make({1, 0}, {2, 1}, dt), make({0, 1}, {2, 1}, dt)),
                {-std::log(double(dt == k::f32 ? float(1e-7) : 1e-7)), -std::log(1 - top)},
                dt == k::f32 ? 1e-4 : 1e-9);

    // Label smoothing 0.2: labels 1 and 0 become 0.9 and 0.1, in both forms.
    double s = (bce(0.9, sigmoid(2)) + bce(0.1, sigmoid(-1))) / 2;
    k::Tensor y1 = make({1, 0}, {2}, dt), x1 = make({2, -1}, {2}, dt);
    check_close(L::binary_crossentropy(y1, k::sigmoid(x1), false, 0.2), {s}, tol);
    check_close(L::binary_crossentropy(y1, x1, true, 0.2), {s}, tol);
    check_close(L::BinaryCrossentropy(true, 0.2)(y1, x1), {s}, tol);
  }
}

TEST_CASE("binary crossentropy from logits is finite and exact for huge logits", "[losses]") {
  std::vector<double> y = {1, 0, 1, 0, 1, 0, 1, 0};
  std::vector<double> x = {100, 100, -100, -100, 1000, 1000, -1000, -1000};
  // Analytic limits: log(1 + e^−|x|) vanishes, leaving max(x, 0) − x·y.
  std::vector<double> want = {0, 100, 100, 0, 0, 1000, 1000, 0};
  for (k::DType dt : kFloatTypes) {
    INFO(k::ir::dtype_name(dt));
    k::Tensor l = L::binary_crossentropy(make(y, {8, 1}, dt), make(x, {8, 1}, dt), true);
    check_close(l, want, 1e-9);
    // A tiny loss keeps its relative accuracy: log(1 + e^−20) ≈ 2.06e-9.
    k::Tensor tiny =
        L::binary_crossentropy(make({1, 0}, {2, 1}, dt), make({20, -20}, {2, 1}, dt), true);
    std::vector<double> got = values(tiny);
    CHECK(got[0] == Approx(std::log1p(std::exp(-20.0))).epsilon(1e-5));
    CHECK(got[1] == Approx(std::log1p(std::exp(-20.0))).epsilon(1e-5));
    // Smoothing 0.1 moves labels to 0.95 / 0.05: 1000 − 950 = 50.
    check_close(
        L::binary_crossentropy(make({1, 0}, {2, 1}, dt), make({1000, 1000}, {2, 1}, dt), true, 0.1),
        {50, 950}, 1e-6);
  }
}

TEST_CASE("categorical crossentropy: logits, probabilities, smoothing, axis", "[losses]") {
  std::vector<double> x = {1, 2, 3, 1, -1, 0};
  std::vector<double> want = {lse3(1, 2, 3) - 3, lse3(1, -1, 0) - 1};
  for (k::DType dt : kFloatTypes) {
    INFO(k::ir::dtype_name(dt));
    double tol = dt == k::f32 ? 1e-5 : 1e-12;
    k::Tensor logits = make(x, {2, 3}, dt);
    k::Tensor onehot = make({0, 0, 1, 1, 0, 0}, {2, 3}, dt);
    check_close(L::categorical_crossentropy(onehot, logits, true), want, tol);
    check_close(L::categorical_crossentropy(onehot, k::softmax(logits)), want, tol);
    // Unnormalized probabilities are normalized along the axis first.
    check_close(L::categorical_crossentropy(onehot, 2.0 * k::softmax(logits)), want, tol);
    // Soft labels: −Σ y·log p.
    k::Tensor soft = make({0.25, 0.25, 0.5}, {3}, dt);
    double soft_want =
        -(0.25 * (1 - lse3(1, 2, 3)) + 0.25 * (2 - lse3(1, 2, 3)) + 0.5 * (3 - lse3(1, 2, 3)));
    check_close(L::categorical_crossentropy(soft, make({1, 2, 3}, {3}, dt), true), {soft_want},
                tol);
    // Probability form by hand: p = (0.2, 0.3, 0.5), label 1 → −log 0.3.
    check_close(
        L::categorical_crossentropy(make({0, 1, 0}, {3}, dt), make({0.2, 0.3, 0.5}, {3}, dt)),
        {-std::log(0.3)}, dt == k::f32 ? 1e-6 : 1e-12);
    // Smoothing 0.3 over 3 classes: labels 0.1, 0.1, 0.8.
    double smoothed =
        -(0.1 * (1 - lse3(1, 2, 3)) + 0.1 * (2 - lse3(1, 2, 3)) + 0.8 * (3 - lse3(1, 2, 3)));
    check_close(
        L::categorical_crossentropy(make({0, 0, 1}, {3}, dt), make({1, 2, 3}, {3}, dt), true, 0.3),
        {smoothed}, tol);
    check_close(L::CategoricalCrossentropy(true, 0.3)(make({0, 0, 1}, {1, 3}, dt),
                                                      make({1, 2, 3}, {1, 3}, dt)),
                {smoothed}, tol);
    // Smoothing in the probability form: same labels, p = softmax.
    check_close(L::categorical_crossentropy(make({0, 0, 1}, {3}, dt),
                                            k::softmax(make({1, 2, 3}, {3}, dt)), false, 0.3),
                {smoothed}, tol);
    // Class axis 0, in both forms.
    check_close(
        L::categorical_crossentropy(k::transpose(onehot), k::transpose(logits), true, 0.0, 0), want,
        tol);
    check_close(L::categorical_crossentropy(k::transpose(onehot),
                                            k::softmax(k::transpose(logits), 0), false, 0.0, -2),
                want, tol);
    check_close(
        L::CategoricalCrossentropy(true, 0.0, 0)(k::transpose(onehot), k::transpose(logits)),
        {(want[0] + want[1]) / 2}, tol);
    // Huge logits: log_softmax stays finite; the limits are 0 and 2000 (and 1000 for the
    // middle class).
    k::Tensor huge = make({1000, -1000, 0, 1000, -1000, 0, 1000, -1000, 0}, {3, 3}, dt);
    k::Tensor labels = make({1, 0, 0, 0, 1, 0, 0, 0, 1}, {3, 3}, dt);
    check_close(L::categorical_crossentropy(labels, huge, true), {0, 2000, 1000}, 1e-9);
  }
  CHECK(L::CategoricalCrossentropy().name() == "categorical_crossentropy");
}

TEST_CASE("sparse categorical crossentropy equals the one-hot categorical form", "[losses]") {
  std::vector<double> x = {1, 2, 3, 1, -1, 0};
  std::vector<double> want = {lse3(1, 2, 3) - 3, lse3(1, -1, 0) - 1};
  for (k::DType dt : kFloatTypes) {
    INFO(k::ir::dtype_name(dt));
    double tol = dt == k::f32 ? 1e-5 : 1e-12;
    k::Tensor logits = make(x, {2, 3}, dt);
    check_close(L::sparse_categorical_crossentropy(k::constant({2, 0}), logits, true), want, tol);
    check_close(L::sparse_categorical_crossentropy(k::constant({2, 0}, k::i64), logits, true), want,
                tol);
    check_close(L::sparse_categorical_crossentropy(k::constant({2, 0}), k::softmax(logits)), want,
                tol);
    // Float labels holding integers, and a trailing size-1 dim.
    check_close(L::sparse_categorical_crossentropy(k::constant({{2.0}, {0.0}}), k::softmax(logits)),
                want, tol);
    check_close(L::sparse_categorical_crossentropy(k::constant({2.f, 0.f}), logits, true), want,
                tol);
    // Class axis 0: logits (3, 2).
    check_close(
        L::sparse_categorical_crossentropy(k::constant({2, 0}), k::transpose(logits), true, 0),
        want, tol);
    check_close(L::SparseCategoricalCrossentropy(true)(k::constant({2, 0}), logits),
                {(want[0] + want[1]) / 2}, tol);
    check_close(L::SparseCategoricalCrossentropy()(k::constant({2, 0}), k::softmax(logits)),
                {(want[0] + want[1]) / 2}, tol);
    // Rank 3 (sequence labels): (batch 1, time 2, classes 3).
    k::Tensor seq = make(x, {1, 2, 3}, dt);
    k::Tensor l = L::sparse_categorical_crossentropy(k::constant({{2, 0}}), seq, true);
    CHECK(l.shape() == k::Shape{1, 2});
    check_close(l, want, tol);
    // Huge logits.
    check_close(L::sparse_categorical_crossentropy(
                    k::constant({0, 1}), make({-1000, 1000, -1000, 1000}, {2, 2}, dt), true),
                {2000, 0}, 1e-9);
  }
  CHECK(L::SparseCategoricalCrossentropy().name() == "sparse_categorical_crossentropy");
}

TEST_CASE("reductions and sample weights follow Keras", "[losses]") {
  k::Tensor per = k::constant({1.0, 2.0, 3.0, 4.0});
  k::Tensor w = k::constant({1.0, 0.0, 2.0, 0.5});
  check_close(L::reduce_loss(per, L::Reduction::none), {1, 2, 3, 4});
  check_close(L::reduce_loss(per, L::Reduction::sum), {10});
  check_close(L::reduce_loss(per, L::Reduction::sum_over_batch_size), {2.5});
  check_close(L::reduce_loss(per, L::Reduction::none, w), {1, 0, 6, 2});
  check_close(L::reduce_loss(per, L::Reduction::sum, w), {9});
  // Keras divides by the number of losses, not by the sum of the weights.
  check_close(L::reduce_loss(per, L::Reduction::sum_over_batch_size, w), {9.0 / 4});
  // Integer and (n, 1) weights; a scalar weight.
  check_close(L::reduce_loss(per, L::Reduction::sum, k::constant({1, 0, 2, 1})), {11});
  check_close(L::reduce_loss(per, L::Reduction::sum, k::constant({{1.0}, {0.0}, {2.0}, {1.0}})),
              {11});
  check_close(L::reduce_loss(per, L::Reduction::sum, k::constant(3.0)), {30});
  // No losses: 0, not 0/0.
  check_close(L::reduce_loss(k::zeros({0}), L::Reduction::sum_over_batch_size), {0});
  CHECK(L::reduction_name(L::Reduction::sum_over_batch_size) == "sum_over_batch_size");

  // Per-sample losses of shape (2, 3) (rank-3 predictions): weights (2,) scale each sample's row;
  // (2, 3) weights scale each loss.
  k::Tensor y = k::zeros({2, 3, 1});
  k::Tensor p = k::reshape(k::constant({1.f, 2.f, 3.f, 4.f, 5.f, 6.f}), {2, 3, 1});
  // Per-sample MSE = p².
  check_close(L::MeanSquaredError(L::Reduction::none)(y, p), {1, 4, 9, 16, 25, 36});
  check_close(L::MeanSquaredError(L::Reduction::none)(y, p, k::constant({1.f, 0.5f})),
              {1, 4, 9, 8, 12.5, 18});
  check_close(L::MeanSquaredError(L::Reduction::sum)(y, p, k::constant({1.f, 0.5f})), {52.5});
  check_close(L::MeanSquaredError()(y, p, k::constant({1.f, 0.5f})), {52.5 / 6});
  check_close(L::MeanSquaredError()(y, p, k::constant({{1.f, 0.f, 0.f}, {0.f, 0.f, 1.f}})),
              {37.0 / 6});

  // Weighted, per class of loss.
  k::Tensor labels = k::constant({2, 0});
  k::Tensor logits = k::constant({{1.0, 2.0, 3.0}, {1.0, -1.0, 0.0}});
  double l0 = lse3(1, 2, 3) - 3, l1 = lse3(1, -1, 0) - 1;
  check_close(L::SparseCategoricalCrossentropy(true)(labels, logits, k::constant({2.0, 1.0})),
              {(2 * l0 + l1) / 2}, 1e-12);
  check_close(L::SparseCategoricalCrossentropy(true, L::Reduction::sum)(labels, logits,
                                                                        k::constant({2.0, 1.0})),
              {2 * l0 + l1}, 1e-12);
  check_close(L::CategoricalCrossentropy(true, 0.0, -1, L::Reduction::none)(
                  k::one_hot(labels, 3, 1.0, 0.0, -1, k::f64), logits, k::constant({2.0, 1.0})),
              {2 * l0, l1}, 1e-12);
  check_close(
      L::BinaryCrossentropy(false, 0.0, L::Reduction::sum)(
          k::constant({{1.0}, {0.0}}), k::constant({{0.9}, {0.2}}), k::constant({1.0, 3.0})),
      {bce(1, 0.9) + 3 * bce(0, 0.2)}, 1e-12);
}

TEST_CASE("losses inside kiln::function give the eager values", "[losses]") {
  k::Tensor y = k::constant({{0.f, 1.f, 0.f}, {1.f, 0.f, 0.f}, {0.f, 0.f, 1.f}});
  k::Tensor ids = k::constant({1, 0, 2});
  k::Tensor x = k::random_normal({3, 3}, 0.0, 2.0, 7);
  k::Tensor w = k::constant({0.5f, 1.f, 2.f});
  auto all = [](const k::Tensor& y, const k::Tensor& ids, const k::Tensor& x, const k::Tensor& w) {
    k::Tensor p = k::sigmoid(x);
    return std::vector<k::Tensor>{
        L::mean_squared_error(y, x),
        L::mean_absolute_error(y, x),
        L::binary_crossentropy(y, p, false, 0.1),
        L::binary_crossentropy(y, x, true),
        L::categorical_crossentropy(y, k::softmax(x), false, 0.2),
        L::categorical_crossentropy(y, x, true, 0.0, 0),
        L::sparse_categorical_crossentropy(ids, x, true),
        L::sparse_categorical_crossentropy(ids, k::softmax(x)),
        L::MeanSquaredError()(y, x, w),
        L::BinaryCrossentropy(true, 0.0, L::Reduction::sum)(y, x, w),
        L::SparseCategoricalCrossentropy(true)(ids, x, w),
        L::CategoricalCrossentropy(true, 0.1, -1, L::Reduction::none)(y, x),
    };
  };
  auto traced = k::function(all, "losses");
  std::vector<k::Tensor> got = traced(y, ids, x, w);
  std::vector<k::Tensor> want = all(y, ids, x, w);
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("loss " << i);
    CHECK(got[i].shape() == want[i].shape());
    check_close(got[i], values(want[i]), 1e-5);
  }
  CHECK(traced.trace_count() == 1);

  // Traced labels are range-checked when the compiled code runs, as eager ones
  // (tests/sparse_label_check_test.cpp has the rest).
  auto sparse = k::function([](const k::Tensor& ids, const k::Tensor& x) {
    return L::sparse_categorical_crossentropy(ids, x, true);
  });
  CHECK_THROWS_AS(sparse(k::constant({5, 0}), x.index({k::Slice(0, 2)})), k::IndexError);
  std::vector<double> l = values(sparse(k::constant({1, 0}), x.index({k::Slice(0, 2)})));
  CHECK(l[1] == Approx(values(L::sparse_categorical_crossentropy(
                    k::constant({0}), x.index({k::Slice(1, 2)}), true))[0]));
}

TEST_CASE("loss gradients match the closed forms, also at zero logits", "[losses]") {
  // d/dx of the summed binary crossentropy from logits = σ(x) − y, including at x = 0.
  k::Tensor x = k::constant({{0.0}, {0.0}, {3.0}, {-2.0}});
  k::Tensor y = k::constant({{1.0}, {0.0}, {0.0}, {1.0}});
  {
    k::GradientTape tape;
    tape.watch(x);
    k::Tensor loss = L::BinaryCrossentropy(true, 0.0, L::Reduction::sum)(y, x);
    check_close(tape.gradient(loss, x), {-0.5, 0.5, sigmoid(3), sigmoid(-2) - 1}, 1e-12);
  }
  // Probability form: d/dp = (p − y) / (p (1 − p)).
  k::Tensor p = k::constant({{0.25}, {0.5}});
  k::Tensor yp = k::constant({{1.0}, {0.0}});
  {
    k::GradientTape tape;
    tape.watch(p);
    k::Tensor loss = L::BinaryCrossentropy(false, 0.0, L::Reduction::sum)(yp, p);
    check_close(tape.gradient(loss, p), {(0.25 - 1) / (0.25 * 0.75), 0.5 / 0.25}, 1e-9);
  }
  // Mean sparse crossentropy: (softmax − onehot) / batch.
  k::Tensor ids = k::constant({2, 0, 1});
  k::Tensor logits = k::random_normal({3, 4}, 0.0, 1.0, 5, k::f64);
  k::GradientTape tape;
  tape.watch(logits);
  k::Tensor loss = L::SparseCategoricalCrossentropy(true)(ids, logits);
  k::Tensor want = (k::softmax(logits) - k::one_hot(ids, 4, 1.0, 0.0, -1, k::f64)) / 3.0;
  check_close(tape.gradient(loss, logits), values(want), 1e-12);
}

TEST_CASE("losses reject bad input with the loss's name and the user's line", "[losses]") {
  k::Tensor p = k::constant({{0.5f, 0.5f}});
  k::Tensor y3 = k::constant({{1.f, 0.f, 1.f}});

  // Shape mismatch: ShapeError naming the loss and both shapes.
  int line = __LINE__ + 1;
  std::string msg = error_of<k::ShapeError>([&] { L::mean_squared_error(y3, p); });
  check_message(msg, {"losses.mean_squared_error", "(1, 3)", "(1, 2)"}, line);
  line = __LINE__ + 1;
  msg = error_of<k::ShapeError>([&] { L::mean_absolute_error(y3, p); });
  check_message(msg, {"losses.mean_absolute_error", "(1, 3)", "(1, 2)"}, line);
  line = __LINE__ + 1;
  msg = error_of<k::ShapeError>([&] { L::binary_crossentropy(y3, p, true); });
  check_message(msg, {"losses.binary_crossentropy", "(1, 3)", "(1, 2)"}, line);
  line = __LINE__ + 1;
  msg = error_of<k::ShapeError>([&] { L::categorical_crossentropy(y3, p); });
  check_message(msg, {"losses.categorical_crossentropy", "(1, 3)", "(1, 2)"}, line);
  k::Tensor ids2 = k::constant({0, 1});
  line = __LINE__ + 1;
  msg = error_of<k::ShapeError>([&] { L::sparse_categorical_crossentropy(ids2, p); });
  check_message(msg, {"losses.sparse_categorical_crossentropy", "(2,)", "(1,)"}, line);
  // Through a Loss object, the error still names the user's line.
  line = __LINE__ + 1;
  msg = error_of<k::ShapeError>([&] { L::MeanSquaredError()(y3, p); });
  check_message(msg, {"losses.mean_squared_error"}, line);

  // Integer y_pred: TypeError.
  k::Tensor ip = k::constant({{1, 0}});
  line = __LINE__ + 1;
  msg = error_of<k::TypeError>([&] { L::binary_crossentropy(k::constant({{1, 0}}), ip); });
  check_message(msg, {"losses.binary_crossentropy", "int32"}, line);
  CHECK_THROWS_AS(L::mean_squared_error(ip, ip), k::TypeError);
  CHECK_THROWS_AS(L::mean_absolute_error(p, ip), k::TypeError);
  CHECK_THROWS_AS(L::categorical_crossentropy(ip, ip, true), k::TypeError);
  CHECK_THROWS_AS(L::sparse_categorical_crossentropy(k::constant({0}), ip), k::TypeError);
  CHECK_THROWS_AS(L::SparseCategoricalCrossentropy()(k::constant({0}), ip), k::TypeError);

  // Out-of-range sparse labels (eager): IndexError naming the label.
  line = __LINE__ + 1;
  msg = error_of<k::IndexError>([&] { L::sparse_categorical_crossentropy(k::constant({2}), p); });
  check_message(msg, {"losses.sparse_categorical_crossentropy", "label 2", "2 classes"}, line);
  line = __LINE__ + 1;
  msg = error_of<k::IndexError>([&] { L::sparse_categorical_crossentropy(k::constant({-1}), p); });
  check_message(msg, {"label -1"}, line);
  CHECK_THROWS_AS(L::sparse_categorical_crossentropy(k::constant({3.0}), p), k::IndexError);
  CHECK_THROWS_AS(L::SparseCategoricalCrossentropy(true)(k::constant({7}, k::i64), p),
                  k::IndexError);
  CHECK_THROWS_AS(L::sparse_categorical_crossentropy(k::constant({true}), p), k::TypeError);

  // Bad axis, rank 0, bad smoothing, bad weights, undefined tensors.
  line = __LINE__ + 1;
  msg = error_of<k::ShapeError>([&] { L::categorical_crossentropy(p, p, true, 0.0, 2); });
  check_message(msg, {"losses.categorical_crossentropy", "axis 2"}, line);
  CHECK_THROWS_AS(L::sparse_categorical_crossentropy(k::constant({0}), p, true, -3), k::ShapeError);
  CHECK_THROWS_AS(L::mean_squared_error(k::constant(1.f), k::constant(1.f)), k::ShapeError);
  line = __LINE__ + 1;
  msg = error_of<k::ValueError>([&] { L::binary_crossentropy(p, p, false, 1.5); });
  check_message(msg, {"losses.binary_crossentropy", "label_smoothing", "1.5"}, line);
  CHECK_THROWS_AS(L::categorical_crossentropy(p, p, false, -0.1), k::ValueError);
  k::Tensor two = k::concat({p, p}, 0);
  k::Tensor w3 = k::constant({1.f, 2.f, 3.f});
  line = __LINE__ + 1;
  msg = error_of<k::ShapeError>([&] { L::MeanSquaredError()(two, two, w3); });
  check_message(msg, {"losses.reduce_loss", "(3,)", "(2,)"}, line);
  CHECK_THROWS_AS(L::mean_squared_error(k::Tensor(), p), k::ValueError);
  CHECK_THROWS_AS(L::reduce_loss(k::constant({1, 2}), L::Reduction::sum), k::TypeError);
}
