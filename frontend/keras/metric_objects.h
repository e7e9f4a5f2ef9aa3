// Stateful metric objects like keras.metrics: each keeps running sums over the batches given to
// update_state and reports them with result() until reset_state().
//
//   k::metrics::Accuracy m;
//   m.update_state(k::constant({{1.f}, {2.f}, {3.f}, {4.f}}), k::constant({{0.f}, {2.f}, {3.f},
//   {4.f}})); float acc = m.result().item<float>();  // 0.75
//
// The state is kept in doubles on the host: update_state reads its arguments' values (eager
// tensors; a GPU tensor is copied to the host), so it cannot run inside kiln::function.
// Model::compile does not take these objects yet; it resolves metric names through
// metrics.h's MetricList.
#pragma once

#include <cstdint>
#include <source_location>
#include <string>
#include <vector>

#include "kiln/frontend/core/tensor.h"

namespace kiln::metrics {

// The base of every metric object. Errors (ValueError, ShapeError) name the metric and point at
// the caller's line.
class Metric {
 public:
  // A metric reported as `name` (Keras's default names, e.g. "accuracy", "precision").
  explicit Metric(std::string name) : name_(std::move(name)) {}
  virtual ~Metric() = default;

  // Accumulates one batch. sample_weight is optional (an undefined Tensor means none); it
  // broadcasts against the per-sample values as in Keras.
  virtual void update_state(const Tensor& y_true, const Tensor& y_pred,
                            const Tensor& sample_weight = {},
                            std::source_location loc = std::source_location::current()) = 0;
  // The metric's value over everything accumulated since construction or reset_state, as an f32
  // 0-d tensor (0 before any update, as Keras's divide_no_nan gives).
  Tensor result() const;
  // The same value in double precision.
  virtual double result_value() const = 0;
  // Forgets everything accumulated.
  virtual void reset_state() = 0;
  // The name the metric reports under.
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

// The weighted mean of values: Σ w·v / Σ w (keras.metrics.Mean). Values of rank > 1 are first
// averaged over their non-leading axes, so each sample counts once.
class Mean : public Metric {
 public:
  // A mean reported as `name`.
  explicit Mean(std::string name = "mean") : Metric(std::move(name)) {}
  // Accumulates `values` (any shape, any real dtype) with optional weights.
  void update_state(const Tensor& values, const Tensor& sample_weight = {},
                    std::source_location loc = std::source_location::current());
  // Mean has no y_pred: this form takes y_true as the values and must get an undefined y_pred.
  void update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight,
                    std::source_location loc = std::source_location::current()) override;
  double result_value() const override { return count_ == 0 ? 0.0 : total_ / count_; }
  void reset_state() override { total_ = count_ = 0; }

 protected:
  // Adds values of `shape` (row-major, as doubles) with weights `weight` of `weight_shape`
  // (nullptr: no weights). ShapeError naming the metric if the weights do not fit.
  void add(const std::vector<double>& values, const Shape& shape, const std::vector<double>* weight,
           const Shape& weight_shape, const std::source_location& loc);

 private:
  double total_ = 0;
  double count_ = 0;
};

// A Mean of a per-sample (or per-element) function of y_true and y_pred: the base of the error
// and accuracy metrics below.
class MeanMetricWrapper : public Mean {
 public:
  void update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight = {},
                    std::source_location loc = std::source_location::current()) override;

 protected:
  // One value per sample (or element) of y_true/y_pred, with its shape in `shape`.
  struct Values {
    std::vector<double> values;
    Shape shape;
  };
  explicit MeanMetricWrapper(std::string name) : Mean(std::move(name)) {}
  // Computes the values for one batch; throws ShapeError naming the metric on a mismatch.
  virtual Values compute(const Tensor& y_true, const Tensor& y_pred,
                         const std::source_location& loc) const = 0;
};

// mean((y_pred − y_true)², axis=−1) averaged over samples ("mean_squared_error").
class MeanSquaredError : public MeanMetricWrapper {
 public:
  // Named "mean_squared_error" unless given another name.
  explicit MeanSquaredError(std::string name = "mean_squared_error")
      : MeanMetricWrapper(std::move(name)) {}

 protected:
  Values compute(const Tensor& y_true, const Tensor& y_pred,
                 const std::source_location& loc) const override;
};

// mean(|y_pred − y_true|, axis=−1) averaged over samples ("mean_absolute_error").
class MeanAbsoluteError : public MeanMetricWrapper {
 public:
  // Named "mean_absolute_error" unless given another name.
  explicit MeanAbsoluteError(std::string name = "mean_absolute_error")
      : MeanMetricWrapper(std::move(name)) {}

 protected:
  Values compute(const Tensor& y_true, const Tensor& y_pred,
                 const std::source_location& loc) const override;
};

// sqrt of the weighted mean squared error ("root_mean_squared_error").
class RootMeanSquaredError : public MeanMetricWrapper {
 public:
  // Named "root_mean_squared_error" unless given another name.
  explicit RootMeanSquaredError(std::string name = "root_mean_squared_error")
      : MeanMetricWrapper(std::move(name)) {}
  double result_value() const override;

 protected:
  Values compute(const Tensor& y_true, const Tensor& y_pred,
                 const std::source_location& loc) const override;
};

// How often y_pred equals y_true exactly, element by element ("accuracy").
class Accuracy : public MeanMetricWrapper {
 public:
  // Named "accuracy" unless given another name.
  explicit Accuracy(std::string name = "accuracy") : MeanMetricWrapper(std::move(name)) {}

 protected:
  Values compute(const Tensor& y_true, const Tensor& y_pred,
                 const std::source_location& loc) const override;
};

// How often (y_pred > threshold) equals y_true, averaged over the last axis per sample
// ("binary_accuracy").
class BinaryAccuracy : public MeanMetricWrapper {
 public:
  // Named "binary_accuracy" unless given another name.
  explicit BinaryAccuracy(double threshold = 0.5, std::string name = "binary_accuracy")
      : MeanMetricWrapper(std::move(name)), threshold_(threshold) {}

 protected:
  Values compute(const Tensor& y_true, const Tensor& y_pred,
                 const std::source_location& loc) const override;

 private:
  double threshold_;
};

// How often argmax(y_pred) equals argmax(y_true) for one-hot labels ("categorical_accuracy").
class CategoricalAccuracy : public MeanMetricWrapper {
 public:
  // Named "categorical_accuracy" unless given another name.
  explicit CategoricalAccuracy(std::string name = "categorical_accuracy")
      : MeanMetricWrapper(std::move(name)) {}

 protected:
  Values compute(const Tensor& y_true, const Tensor& y_pred,
                 const std::source_location& loc) const override;
};

// How often argmax(y_pred) equals the integer label, labels of shape (n,) or (n, 1)
// ("sparse_categorical_accuracy").
class SparseCategoricalAccuracy : public MeanMetricWrapper {
 public:
  // Named "sparse_categorical_accuracy" unless given another name.
  explicit SparseCategoricalAccuracy(std::string name = "sparse_categorical_accuracy")
      : MeanMetricWrapper(std::move(name)) {}

 protected:
  Values compute(const Tensor& y_true, const Tensor& y_pred,
                 const std::source_location& loc) const override;
};

// How often the one-hot label's class is among the k highest predictions (ties at the k-th
// value count as in, as TensorFlow's in_top_k does) ("top_k_categorical_accuracy").
class TopKCategoricalAccuracy : public MeanMetricWrapper {
 public:
  // k must be ≥ 1 (ValueError otherwise). Named "top_k_categorical_accuracy" unless given another.
  explicit TopKCategoricalAccuracy(int64_t k = 5, std::string name = "top_k_categorical_accuracy",
                                   std::source_location loc = std::source_location::current());

 protected:
  Values compute(const Tensor& y_true, const Tensor& y_pred,
                 const std::source_location& loc) const override;

 private:
  int64_t k_;
};

// The weighted true and false positives (and false negatives) over every element, y_pred above
// `threshold` counting as positive and a nonzero y_true as a true label. Shapes must match
// (after Keras's trailing-1 rank fix-up); sample_weight broadcasts against them.
class ConfusionCounts : public Metric {
 public:
  void update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight = {},
                    std::source_location loc = std::source_location::current()) override;
  void reset_state() override { tp_ = fp_ = fn_ = 0; }

 protected:
  ConfusionCounts(double threshold, std::string name, const std::source_location& loc);
  double tp_ = 0, fp_ = 0, fn_ = 0;

 private:
  double threshold_;
};

// tp / (tp + fp) ("precision"); threshold in [0, 1] (ValueError otherwise).
class Precision : public ConfusionCounts {
 public:
  // Keras's default threshold 0.5, named "precision".
  explicit Precision(double threshold = 0.5, std::string name = "precision",
                     std::source_location loc = std::source_location::current())
      : ConfusionCounts(threshold, std::move(name), loc) {}
  double result_value() const override { return tp_ + fp_ == 0 ? 0.0 : tp_ / (tp_ + fp_); }
};

// tp / (tp + fn) ("recall"); threshold in [0, 1] (ValueError otherwise).
class Recall : public ConfusionCounts {
 public:
  // Keras's default threshold 0.5, named "recall".
  explicit Recall(double threshold = 0.5, std::string name = "recall",
                  std::source_location loc = std::source_location::current())
      : ConfusionCounts(threshold, std::move(name), loc) {}
  double result_value() const override { return tp_ + fn_ == 0 ? 0.0 : tp_ / (tp_ + fn_); }
};

// The area under the ROC curve ("auc"), from weighted confusion counts at num_thresholds
// evenly spaced thresholds (the first just below 0, the last just above 1, as in Keras) summed
// with the trapezoidal rule (Keras's summation_method="interpolation" for curve="ROC"). The
// PR curve, multi-label and explicit thresholds are not there yet. Labels and weights as for
// Precision.
class AUC : public Metric {
 public:
  // num_thresholds must be at least 2 (ValueError otherwise). Named "auc".
  explicit AUC(int64_t num_thresholds = 200, std::string name = "auc",
               std::source_location loc = std::source_location::current());
  void update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight = {},
                    std::source_location loc = std::source_location::current()) override;
  double result_value() const override;
  void reset_state() override;

 private:
  std::vector<double> thresholds_;
  std::vector<double> tp_, fp_, tn_, fn_;  // weighted counts per threshold
};

}  // namespace kiln::metrics
