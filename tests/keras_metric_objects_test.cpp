// Metric objects (kiln::metrics::Mean, Accuracy, Precision, ...): the values of keras.io's
// examples for each metric (worked by hand in the comments), accumulation over several
// update_state calls, reset_state, sample weights, and bad input (error type, metric name, the
// caller's line).
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "error_test_util.h"

namespace k = kiln;
namespace M = kiln::metrics;
using kiln::testing::error_of;

namespace {

float value(const M::Metric& m) {
  return m.result().item<float>();
}

void check_error_at(const std::string& msg, std::initializer_list<std::string> parts, int line) {
  kiln::testing::check_message_at(msg, parts, "keras_metric_objects_test.cpp", line);
}

}  // namespace

TEST_CASE("Mean: plain and weighted, over several batches", "[metric_objects]") {
  M::Mean m;
  CHECK(m.name() == "mean");
  CHECK(value(m) == 0.0f);  // nothing seen yet: 0, as Keras's divide_no_nan
  m.update_state(k::constant({1.f, 3.f, 5.f, 7.f}));
  CHECK(value(m) == Approx(4.0));  // (1+3+5+7)/4
  m.reset_state();
  m.update_state(k::constant({1.f, 3.f, 5.f, 7.f}), k::constant({1.f, 1.f, 0.f, 0.f}));
  CHECK(value(m) == Approx(2.0));  // (1+3)/2
  m.update_state(k::constant({10.f}), k::constant({2.f}));
  CHECK(value(m) == Approx(6.0));  // (1+3+20)/(2+2)
  m.reset_state();
  // Rank 2 with per-sample weights: each row is averaged first ((1+2)/2 = 1.5, (3+4)/2 = 3.5).
  m.update_state(k::constant({{1.f, 2.f}, {3.f, 4.f}}), k::constant({1.f, 0.f}));
  CHECK(value(m) == Approx(1.5));
  m.reset_state();
  m.update_state(k::constant(5.f));  // a scalar counts as one sample
  m.update_state(k::constant({{1.f, 2.f}, {3.f, 4.f}}));
  CHECK(m.result_value() == Approx((5 + 1.5 + 3.5) / 3.0));
  CHECK(m.result().dtype() == k::f32);
  CHECK(m.result().rank() == 0);
}

TEST_CASE("Accuracy: keras.io example, accumulation, reset, weights", "[metric_objects]") {
  M::Accuracy m;
  CHECK(m.name() == "accuracy");
  k::Tensor y = k::constant({{1.f}, {2.f}, {3.f}, {4.f}});
  k::Tensor p = k::constant({{0.f}, {2.f}, {3.f}, {4.f}});
  m.update_state(y, p);
  CHECK(value(m) == Approx(0.75));  // 3 of 4 equal
  m.update_state(k::constant({{5.f}, {6.f}, {7.f}, {8.f}}),
                 k::constant({{5.f}, {6.f}, {7.f}, {8.f}}));
  CHECK(value(m) == Approx(7.0 / 8.0));
  m.reset_state();
  m.update_state(y, p, k::constant({1.f, 1.f, 0.f, 0.f}));
  CHECK(value(m) == Approx(0.5));  // (0·1 + 1·1) / 2
  // Integer labels against float predictions compare by value.
  M::Accuracy ints;
  ints.update_state(k::constant({1, 2, 3}), k::constant({1.f, 2.f, 0.f}));
  CHECK(value(ints) == Approx(2.0 / 3.0));
}

TEST_CASE("BinaryAccuracy: keras.io example, threshold", "[metric_objects]") {
  M::BinaryAccuracy m;
  CHECK(m.name() == "binary_accuracy");
  k::Tensor y = k::constant({{1.f}, {1.f}, {0.f}, {0.f}});
  k::Tensor p = k::constant({{0.98f}, {1.f}, {0.f}, {0.6f}});
  m.update_state(y, p);
  CHECK(value(m) == Approx(0.75));  // 0.6 > 0.5 is the miss
  m.reset_state();
  m.update_state(y, p, k::constant({1.f, 0.f, 0.f, 1.f}));
  CHECK(value(m) == Approx(0.5));  // samples 1 (hit) and 4 (miss)
  M::BinaryAccuracy high(0.7);
  high.update_state(y, p);
  CHECK(value(high) == Approx(1.0));
}

TEST_CASE("CategoricalAccuracy and SparseCategoricalAccuracy: keras.io examples",
          "[metric_objects]") {
  k::Tensor probs = k::constant({{0.1f, 0.6f, 0.3f}, {0.05f, 0.95f, 0.f}});
  M::CategoricalAccuracy c;
  CHECK(c.name() == "categorical_accuracy");
  k::Tensor onehot = k::constant({{0.f, 0.f, 1.f}, {0.f, 1.f, 0.f}});
  c.update_state(onehot, k::constant({{0.1f, 0.9f, 0.8f}, {0.05f, 0.95f, 0.f}}));
  CHECK(value(c) == Approx(0.5));
  c.reset_state();
  c.update_state(onehot, k::constant({{0.1f, 0.9f, 0.8f}, {0.05f, 0.95f, 0.f}}),
                 k::constant({0.7f, 0.3f}));
  CHECK(value(c) == Approx(0.3));  // only the second (weight 0.3) is right

  M::SparseCategoricalAccuracy s;
  CHECK(s.name() == "sparse_categorical_accuracy");
  s.update_state(k::constant({{2.f}, {1.f}}), probs);
  CHECK(value(s) == Approx(0.5));
  s.reset_state();
  s.update_state(k::constant({{2.f}, {1.f}}), probs, k::constant({0.7f, 0.3f}));
  CHECK(value(s) == Approx(0.3));
  s.reset_state();
  s.update_state(k::constant({1, 1}), probs);  // labels of shape (n,), integers
  CHECK(value(s) == Approx(1.0));
}

TEST_CASE("TopKCategoricalAccuracy: keras.io example, default k, ties", "[metric_objects]") {
  M::TopKCategoricalAccuracy d;
  CHECK(d.name() == "top_k_categorical_accuracy");
  k::Tensor y = k::constant({{0.f, 0.f, 1.f}, {0.f, 1.f, 0.f}});
  k::Tensor p = k::constant({{0.1f, 0.9f, 0.8f}, {0.05f, 0.95f, 0.f}});
  d.update_state(y, p);
  CHECK(value(d) == Approx(1.0));  // k = 5 ≥ 3 classes
  M::TopKCategoricalAccuracy m(1);
  m.update_state(y, p);
  CHECK(value(m) == Approx(0.5));
  m.reset_state();
  m.update_state(y, p, k::constant({0.7f, 0.3f}));
  CHECK(value(m) == Approx(0.3));
  M::TopKCategoricalAccuracy two(2);
  two.update_state(y, p);
  CHECK(value(two) == Approx(1.0));  // 0.8 is the second highest of the first row
  M::TopKCategoricalAccuracy tie(1);
  tie.update_state(k::constant({{0.f, 1.f}}), k::constant({{0.5f, 0.5f}}));
  CHECK(value(tie) == Approx(1.0));  // a tie at the k-th value counts as in
}

TEST_CASE("MeanSquaredError, MeanAbsoluteError, RootMeanSquaredError: keras.io examples",
          "[metric_objects]") {
  k::Tensor y = k::constant({{0.f, 1.f}, {0.f, 0.f}});
  k::Tensor p = k::constant({{1.f, 1.f}, {0.f, 0.f}});
  k::Tensor w = k::constant({1.f, 0.f});
  M::MeanSquaredError mse;
  M::MeanAbsoluteError mae;
  M::RootMeanSquaredError rmse;
  CHECK(mse.name() == "mean_squared_error");
  CHECK(mae.name() == "mean_absolute_error");
  CHECK(rmse.name() == "root_mean_squared_error");
  for (M::Metric* m : std::vector<M::Metric*>{&mse, &mae, &rmse})
    m->update_state(y, p);
  CHECK(value(mse) == Approx(0.25));  // per sample 0.5 and 0
  CHECK(value(mae) == Approx(0.25));
  CHECK(value(rmse) == Approx(0.5));
  for (M::Metric* m : std::vector<M::Metric*>{&mse, &mae, &rmse}) {
    m->reset_state();
    m->update_state(y, p, w);
  }
  CHECK(value(mse) == Approx(0.5));
  CHECK(value(mae) == Approx(0.5));
  CHECK(value(rmse) == Approx(std::sqrt(0.5)));
  // Accumulation: a second batch with errors 2 and 0 (squared 4, 0) per element.
  mse.reset_state();
  mse.update_state(y, p);
  mse.update_state(k::constant({0.f, 0.f}), k::constant({2.f, 0.f}));  // (2,) vs (2,): 1 sample
  CHECK(mse.result_value() == Approx((0.5 + 0 + 2) / 3.0));
  // Labels of shape (n,) against predictions (n, 1).
  M::MeanAbsoluteError col;
  col.update_state(k::constant({1.f, 2.f}), k::constant({{1.5f}, {2.f}}));
  CHECK(value(col) == Approx(0.25));
}

TEST_CASE("Precision and Recall: keras.io examples, threshold, weights", "[metric_objects]") {
  k::Tensor y = k::constant({0, 1, 1, 1});
  k::Tensor p = k::constant({1.f, 0.f, 1.f, 1.f});
  M::Precision prec;
  M::Recall rec;
  CHECK(prec.name() == "precision");
  CHECK(rec.name() == "recall");
  prec.update_state(y, p);
  rec.update_state(y, p);
  CHECK(value(prec) == Approx(2.0 / 3.0));  // tp 2, fp 1
  CHECK(value(rec) == Approx(2.0 / 3.0));   // tp 2, fn 1
  prec.reset_state();
  rec.reset_state();
  CHECK(value(prec) == 0.0f);
  prec.update_state(y, p, k::constant({0.f, 0.f, 1.f, 0.f}));
  rec.update_state(y, p, k::constant({0.f, 0.f, 1.f, 0.f}));
  CHECK(value(prec) == Approx(1.0));
  CHECK(value(rec) == Approx(1.0));
  // Threshold 0.7 on probabilities of shape (n, 1) with labels (n,) and per-sample weights.
  M::Precision p7(0.7);
  p7.update_state(k::constant({1.f, 0.f, 0.f}), k::constant({{0.8f}, {0.75f}, {0.6f}}),
                  k::constant({1.f, 3.f, 5.f}));
  CHECK(value(p7) == Approx(1.0 / 4.0));  // tp weight 1, fp weight 3; 0.6 is negative
  p7.update_state(k::constant({1.f}), k::constant({{0.9f}}));
  CHECK(value(p7) == Approx(2.0 / 5.0));  // accumulates
}

TEST_CASE("Metric objects through the base class", "[metric_objects]") {
  std::vector<std::unique_ptr<M::Metric>> ms;
  ms.push_back(std::make_unique<M::Accuracy>());
  ms.push_back(std::make_unique<M::Recall>());
  ms.push_back(std::make_unique<M::MeanSquaredError>("mse"));
  for (auto& m : ms)
    m->update_state(k::constant({1.f, 0.f}), k::constant({1.f, 1.f}));
  CHECK(ms[0]->result_value() == Approx(0.5));
  CHECK(ms[1]->result_value() == Approx(1.0));
  CHECK(ms[2]->name() == "mse");
  CHECK(ms[2]->result_value() == Approx(0.5));
}

TEST_CASE("Metric objects: mismatched shapes are ShapeErrors at the caller's line",
          "[metric_objects]") {
  M::Accuracy acc;
  acc.update_state(k::constant({1.f, 2.f}), k::constant({1.f, 0.f}));
  std::string msg = error_of<k::ShapeError>([&] {
    acc.update_state(k::constant({1.f, 2.f}), k::constant({1.f, 2.f, 3.f}));
  });
  check_error_at(msg, {"accuracy", "(2,)", "(3,)"}, __LINE__ - 2);
  CHECK(value(acc) == Approx(0.5));  // the failed batch changed nothing

  M::MeanSquaredError mse;
  msg = error_of<k::ShapeError>([&] {
    mse.update_state(k::constant({{1.f, 2.f}}), k::constant({{1.f, 2.f}}), k::constant({1.f, 2.f}));
  });
  check_error_at(msg, {"mean_squared_error", "sample_weight", "(2,)"}, __LINE__ - 2);

  M::SparseCategoricalAccuracy s;
  msg = error_of<k::ShapeError>([&] {
    s.update_state(k::constant({1.f, 2.f, 0.f}), k::constant({{0.1f, 0.9f}}));
  });
  check_error_at(msg, {"sparse_categorical_accuracy", "(3,)", "(1, 2)"}, __LINE__ - 2);

  M::CategoricalAccuracy c;
  msg = error_of<k::ShapeError>([&] {
    c.update_state(k::constant({2.f}), k::constant({0.1f, 0.9f}));
  });
  check_error_at(msg, {"categorical_accuracy", "(1,)", "(2,)"}, __LINE__ - 2);

  M::Precision prec;
  msg = error_of<k::ShapeError>([&] {
    prec.update_state(k::constant({1.f, 0.f}), k::constant({1.f, 0.f}),
                      k::constant({1.f, 1.f, 1.f}));
  });
  check_error_at(msg, {"precision", "sample_weight", "(3,)"}, __LINE__ - 3);
  CHECK(value(prec) == 0.0f);
}

TEST_CASE("Metric objects: bad arguments are ValueErrors", "[metric_objects]") {
  std::string msg = error_of<k::ValueError>([] { M::TopKCategoricalAccuracy m(0); });
  check_error_at(msg, {"top_k_categorical_accuracy", "k must be at least 1"}, __LINE__ - 1);
  msg = error_of<k::ValueError>([] { M::Precision m(1.5); });
  check_error_at(msg, {"precision", "threshold", "1.5"}, __LINE__ - 1);
  msg = error_of<k::ValueError>([] { M::Recall m(-0.1); });
  check_error_at(msg, {"recall", "threshold"}, __LINE__ - 1);

  M::Mean mean;
  msg = error_of<k::ValueError>(
      [&] { mean.update_state(k::constant({1.f}), k::constant({1.f}), k::Tensor()); });
  check_error_at(msg, {"mean", "not y_pred"}, __LINE__ - 1);
  M::Accuracy acc;
  msg = error_of<k::ValueError>([&] { acc.update_state(k::Tensor(), k::constant({1.f})); });
  check_error_at(msg, {"accuracy", "y_true must be a defined tensor"}, __LINE__ - 1);
}

TEST_CASE("Metric objects: symbolic tensors are a ValueError, booleans count as 0/1",
          "[metric_objects]") {
  M::MeanAbsoluteError mae;
  auto traced = k::function([&](const k::Tensor& y, const k::Tensor& p) {
    mae.update_state(y, p);
    return p;
  });
  std::string msg =
      error_of<k::ValueError>([&] { traced(k::constant({1.f}), k::constant({2.f})); });
  CHECK_THAT(msg, Catch::Contains("mean_absolute_error"));
  CHECK_THAT(msg, Catch::Contains("eager tensors only"));
  CHECK(mae.result_value() == 0.0);

  M::Recall rec;
  rec.update_state(k::greater(k::constant({1.f, 1.f}), 0.5f), k::constant({0.9f, 0.1f}));
  CHECK(value(rec) == Approx(0.5));
}

TEST_CASE("AUC: keras.io example, default thresholds, weights", "[metric_objects]") {
  k::Tensor y = k::constant({0.f, 0.f, 1.f, 1.f});
  k::Tensor p = k::constant({0.f, 0.5f, 0.3f, 0.9f});
  // Thresholds (−ε, 0.5, 1+ε): (fpr, tpr) = (1, 1), (0, 0.5), (0, 0); trapezoids 0.75 + 0.
  M::AUC three(3);
  CHECK(three.name() == "auc");
  three.update_state(y, p);
  CHECK(value(three) == Approx(0.75));
  three.reset_state();
  // Only samples 1 and 4: (1, 1), (0, 1), (0, 0) → 1.
  three.update_state(y, p, k::constant({1.f, 0.f, 0.f, 1.f}));
  CHECK(value(three) == Approx(1.0));
  // 200 thresholds (i/199): (fpr, tpr) steps (1, 1) → (.5, 1) → (.5, .5) → (0, .5) → (0, 0):
  // areas .5 + 0 + .25 + 0.
  M::AUC m;
  m.update_state(y, p);
  CHECK(value(m) == Approx(0.75));
  m.update_state(k::constant({0.f, 1.f}), k::constant({0.1f, 0.95f}));  // a perfect pair
  // All six: negatives at 0, 0.5, 0.1; positives at 0.3, 0.9, 0.95. Steps (fpr, tpr):
  // (1, 1) → t≥0: (2/3, 1) → t≥0.1: (1/3, 1) → t≥0.3: (1/3, 2/3) → t≥0.5: (0, 2/3) → t≥0.9:
  // (0, 1/3) → t≥0.95: (0, 0). Area 1/3·1 + 1/3·1 + 1/3·2/3 = 8/9 (the 8 of 9 ordered pairs).
  CHECK(value(m) == Approx(8.0 / 9.0));
  std::string msg = error_of<k::ValueError>([] { M::AUC bad(1); });
  check_error_at(msg, {"auc", "num_thresholds must be at least 2"}, __LINE__ - 1);
}

TEST_CASE("SparseTopKCategoricalAccuracy: keras.io example, labels as a column, bad labels",
          "[metric_objects]") {
  k::Tensor y = k::constant({2, 1});
  k::Tensor p = k::constant({{0.1f, 0.9f, 0.8f}, {0.05f, 0.95f, 0.f}});
  M::SparseTopKCategoricalAccuracy m(1);
  CHECK(m.name() == "sparse_top_k_categorical_accuracy");
  m.update_state(y, p);
  CHECK(value(m) == Approx(0.5));  // row 1's label (2) is second; row 2's is first
  m.reset_state();
  m.update_state(k::reshape(y, k::Shape{2, 1}), p, k::constant({0.7f, 0.3f}));
  CHECK(value(m) == Approx(0.3));
  M::SparseTopKCategoricalAccuracy two(2);
  two.update_state(k::constant({2.f, 1.f, 7.f}),
                   k::constant({{0.1f, 0.9f, 0.8f}, {0.05f, 0.95f, 0.f}, {0.2f, 0.3f, 0.5f}}));
  CHECK(value(two) == Approx(2.0 / 3.0));  // 7 is no class: a miss
  std::string msg = error_of<k::ShapeError>([&] { two.update_state(k::constant({1, 2, 0}), p); });
  check_error_at(msg, {"sparse_top_k_categorical_accuracy", "(3,)", "(2, 3)"}, __LINE__ - 1);
}

TEST_CASE("batch_state gives the increments update_state adds, eagerly and traced",
          "[metric_objects]") {
  k::Tensor y = k::constant({0.f, 1.f, 1.f, 0.f});
  k::Tensor p = k::constant({0.2f, 0.8f, 0.4f, 0.6f});
  M::AUC auc(5);
  M::Precision prec;
  M::BinaryAccuracy acc;
  auto traced = k::function([&](const k::Tensor& a, const k::Tensor& b) {
    return std::vector<k::Tensor>{auc.batch_state(a, b), prec.batch_state(a, b),
                                  acc.batch_state(a, b)};
  });
  std::vector<k::Tensor> inc = traced(y, p);
  CHECK(inc[0].shape() == k::Shape{20});  // tp, fp, tn, fn at 5 thresholds
  CHECK(inc[2].shape() == k::Shape{2});   // sum and count
  auc.merge_state(inc[0]);
  prec.merge_state(inc[1]);
  acc.merge_state(inc[2]);
  M::AUC auc_ref(5);
  M::Precision prec_ref;
  M::BinaryAccuracy acc_ref;
  auc_ref.update_state(y, p);
  prec_ref.update_state(y, p);
  acc_ref.update_state(y, p);
  CHECK(auc.result_value() == Approx(auc_ref.result_value()));
  CHECK(prec.result_value() == Approx(0.5));  // tp 1 (0.8), fp 1 (0.6)
  CHECK(prec_ref.result_value() == Approx(0.5));
  CHECK(acc.result_value() == Approx(0.5));
  CHECK(acc_ref.result_value() == Approx(0.5));
  M::Mean mean;
  std::string msg = error_of<k::ValueError>([&] { mean.batch_state(y, p); });
  CHECK_THAT(msg, Catch::Contains("not (y_true, y_pred)"));
}
