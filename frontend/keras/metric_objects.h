// Stateful metric objects like keras.metrics: each keeps running sums over the batches given to
// update_state and reports them with result() until reset_state().
//
//   k::metrics::Accuracy m;
//   m.update_state(k::constant({{1.f}, {2.f}, {3.f}, {4.f}}), k::constant({{0.f}, {2.f}, {3.f},
//   {4.f}})); float acc = m.result().item<float>();  // 0.75
//
// Each metric's state is a short vector of sums kept in doubles on the host (Mean: total and
// count; Precision, Recall, AUC: confusion counts per threshold). update_state reads its
// arguments' values (eager tensors; a GPU tensor is copied to the host), so it cannot run inside
// kiln::function. Model::compile takes these objects (or their Keras names, metrics.h): its
// compiled steps compute each batch's state increments with batch_state, and merge_state adds
// them here.
#pragma once

#include <cstdint>
#include <memory>
#include <source_location>
#include <string>
#include <vector>

#include "kiln/frontend/core/tensor.h"

namespace kiln::metrics {

// The base of every metric object. Errors (ValueError, ShapeError) name the metric and point at
// the caller's line.
class Metric {
 public:
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
  void reset_state();
  // The name the metric reports under.
  const std::string& name() const { return name_; }
  // Reports under `name` from now on (compile() names a metric given by name as it was given).
  void set_name(std::string name) { name_ = std::move(name); }

  // The state increments of one unweighted batch as a 1-d f32 tensor of state_size() sums, made
  // with tensor ops so that it runs eagerly or inside a traced step (fit's compiled steps call
  // it). ShapeError / ValueError naming the metric if y_true and y_pred do not suit it.
  virtual Tensor batch_state(const Tensor& y_true, const Tensor& y_pred,
                             std::source_location loc = std::source_location::current()) const = 0;
  // Adds increments made by batch_state (an eager tensor of state_size() values).
  void merge_state(const Tensor& increments);
  // The number of sums the state holds.
  size_t state_size() const { return state_.size(); }
  // The Keras name that makes a metric of this kind with default arguments (metrics::get).
  virtual std::string kind() const = 0;

 protected:
  // A metric whose state is `state_size` sums, all 0.
  Metric(std::string name, size_t state_size) : state_(state_size), name_(std::move(name)) {}
  // The sums: read by result_value, added to by update_state.
  std::vector<double> state_;

 private:
  std::string name_;
};

// The weighted mean of values: Σ w·v / Σ w (keras.metrics.Mean). Values of rank > 1 are first
// averaged over their non-leading axes, so each sample counts once.
class Mean : public Metric {
 public:
  // A mean reported as `name`.
  explicit Mean(std::string name = "mean") : Metric(std::move(name), 2) {}
  // Accumulates `values` (any shape, any real dtype) with optional weights.
  void update_state(const Tensor& values, const Tensor& sample_weight = {},
                    std::source_location loc = std::source_location::current());
  // Mean has no y_pred: this form takes y_true as the values and must get an undefined y_pred.
  void update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight,
                    std::source_location loc = std::source_location::current()) override;
  double result_value() const override { return state_[1] == 0 ? 0.0 : state_[0] / state_[1]; }
  // Mean has no (y_true, y_pred) form: a ValueError saying to use a MeanMetricWrapper metric.
  Tensor batch_state(const Tensor& y_true, const Tensor& y_pred,
                     std::source_location loc = std::source_location::current()) const override;
  std::string kind() const override { return "mean"; }

 protected:
  // Adds values of `shape` (row-major, as doubles) with weights `weight` of `weight_shape`
  // (nullptr: no weights). ShapeError naming the metric if the weights do not fit.
  void add(const std::vector<double>& values, const Shape& shape, const std::vector<double>* weight,
           const Shape& weight_shape, const std::source_location& loc);
};

// A Mean of a per-sample (or per-element) function of y_true and y_pred: the base of the error
// and accuracy metrics below.
class MeanMetricWrapper : public Mean {
 public:
  void update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight = {},
                    std::source_location loc = std::source_location::current()) override;
  // The sum of the per-sample values and the number of samples.
  Tensor batch_state(const Tensor& y_true, const Tensor& y_pred,
                     std::source_location loc = std::source_location::current()) const override;
  // The metric's function of one batch (keras.metrics.mean_squared_error and friends): one value
  // per sample (or element), in y_pred's floating dtype, made with tensor ops (eager or traced).
  // ShapeError naming the metric when the shapes do not fit.
  virtual Tensor values(const Tensor& y_true, const Tensor& y_pred,
                        const std::source_location& loc) const = 0;

 protected:
  explicit MeanMetricWrapper(std::string name) : Mean(std::move(name)) {}
};

// mean((y_pred − y_true)², axis=−1) averaged over samples ("mean_squared_error").
class MeanSquaredError : public MeanMetricWrapper {
 public:
  // Named "mean_squared_error" unless given another name.
  explicit MeanSquaredError(std::string name = "mean_squared_error")
      : MeanMetricWrapper(std::move(name)) {}
  std::string kind() const override { return "mean_squared_error"; }
  Tensor values(const Tensor& y_true, const Tensor& y_pred,
                const std::source_location& loc) const override;
};

// mean(|y_pred − y_true|, axis=−1) averaged over samples ("mean_absolute_error").
class MeanAbsoluteError : public MeanMetricWrapper {
 public:
  // Named "mean_absolute_error" unless given another name.
  explicit MeanAbsoluteError(std::string name = "mean_absolute_error")
      : MeanMetricWrapper(std::move(name)) {}
  std::string kind() const override { return "mean_absolute_error"; }
  Tensor values(const Tensor& y_true, const Tensor& y_pred,
                const std::source_location& loc) const override;
};

// sqrt of the weighted mean squared error ("root_mean_squared_error").
class RootMeanSquaredError : public MeanMetricWrapper {
 public:
  // Named "root_mean_squared_error" unless given another name.
  explicit RootMeanSquaredError(std::string name = "root_mean_squared_error")
      : MeanMetricWrapper(std::move(name)) {}
  double result_value() const override;
  std::string kind() const override { return "root_mean_squared_error"; }
  Tensor values(const Tensor& y_true, const Tensor& y_pred,
                const std::source_location& loc) const override;
};

// How often y_pred equals y_true exactly, element by element ("accuracy").
class Accuracy : public MeanMetricWrapper {
 public:
  // Named "accuracy" unless given another name.
  explicit Accuracy(std::string name = "accuracy") : MeanMetricWrapper(std::move(name)) {}
  std::string kind() const override { return "accuracy"; }
  Tensor values(const Tensor& y_true, const Tensor& y_pred,
                const std::source_location& loc) const override;
};

// How often (y_pred > threshold) equals y_true, averaged over the last axis per sample
// ("binary_accuracy").
class BinaryAccuracy : public MeanMetricWrapper {
 public:
  // Named "binary_accuracy" unless given another name.
  explicit BinaryAccuracy(double threshold = 0.5, std::string name = "binary_accuracy")
      : MeanMetricWrapper(std::move(name)), threshold_(threshold) {}
  std::string kind() const override { return "binary_accuracy"; }
  Tensor values(const Tensor& y_true, const Tensor& y_pred,
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
  std::string kind() const override { return "categorical_accuracy"; }
  Tensor values(const Tensor& y_true, const Tensor& y_pred,
                const std::source_location& loc) const override;
};

// How often argmax(y_pred) equals the integer label, labels of shape (n,) or (n, 1)
// ("sparse_categorical_accuracy").
class SparseCategoricalAccuracy : public MeanMetricWrapper {
 public:
  // Named "sparse_categorical_accuracy" unless given another name.
  explicit SparseCategoricalAccuracy(std::string name = "sparse_categorical_accuracy")
      : MeanMetricWrapper(std::move(name)) {}
  std::string kind() const override { return "sparse_categorical_accuracy"; }
  Tensor values(const Tensor& y_true, const Tensor& y_pred,
                const std::source_location& loc) const override;
};

// How often the one-hot label's class is among the k highest predictions (ties at the k-th
// value count as in, as TensorFlow's in_top_k does) ("top_k_categorical_accuracy").
class TopKCategoricalAccuracy : public MeanMetricWrapper {
 public:
  // k must be ≥ 1 (ValueError otherwise). Named "top_k_categorical_accuracy" unless given another.
  explicit TopKCategoricalAccuracy(int64_t k = 5, std::string name = "top_k_categorical_accuracy",
                                   std::source_location loc = std::source_location::current());
  std::string kind() const override { return "top_k_categorical_accuracy"; }
  Tensor values(const Tensor& y_true, const Tensor& y_pred,
                const std::source_location& loc) const override;

 protected:
  int64_t k_;
};

// How often the integer label is among the k highest predictions, labels of shape (n,) or (n, 1)
// ("sparse_top_k_categorical_accuracy"; ties as for TopKCategoricalAccuracy).
class SparseTopKCategoricalAccuracy : public TopKCategoricalAccuracy {
 public:
  // k must be ≥ 1 (ValueError otherwise). Named "sparse_top_k_categorical_accuracy" unless given
  // another.
  explicit SparseTopKCategoricalAccuracy(int64_t k = 5,
                                         std::string name = "sparse_top_k_categorical_accuracy",
                                         std::source_location loc = std::source_location::current())
      : TopKCategoricalAccuracy(k, std::move(name), loc) {}
  std::string kind() const override { return "sparse_top_k_categorical_accuracy"; }
  Tensor values(const Tensor& y_true, const Tensor& y_pred,
                const std::source_location& loc) const override;
};

// The weighted confusion counts (true/false positives, true/false negatives) at each of a list of
// thresholds over every element, y_pred above a threshold counting as positive and a nonzero
// y_true as a true label: the base of Precision, Recall and AUC. Shapes must match (after Keras's
// trailing-1 rank fix-up); sample_weight broadcasts against them.
class ConfusionCounts : public Metric {
 public:
  void update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight = {},
                    std::source_location loc = std::source_location::current()) override;
  // The counts tp, fp, tn, fn, each over the thresholds.
  Tensor batch_state(const Tensor& y_true, const Tensor& y_pred,
                     std::source_location loc = std::source_location::current()) const override;

 protected:
  ConfusionCounts(std::vector<double> thresholds, std::string name);
  // The counts at threshold k.
  double tp(size_t k) const { return state_[k]; }
  double fp(size_t k) const { return state_[thresholds_.size() + k]; }
  double tn(size_t k) const { return state_[2 * thresholds_.size() + k]; }
  double fn(size_t k) const { return state_[3 * thresholds_.size() + k]; }
  // ValueError naming the metric unless 0 ≤ threshold ≤ 1.
  void check_threshold(double threshold, const std::source_location& loc) const;
  size_t num_thresholds() const { return thresholds_.size(); }

 private:
  std::vector<double> thresholds_;
};

// tp / (tp + fp) ("precision"); threshold in [0, 1] (ValueError otherwise).
class Precision : public ConfusionCounts {
 public:
  // Keras's default threshold 0.5, named "precision".
  explicit Precision(double threshold = 0.5, std::string name = "precision",
                     std::source_location loc = std::source_location::current());
  double result_value() const override {
    return tp(0) + fp(0) == 0 ? 0.0 : tp(0) / (tp(0) + fp(0));
  }
  std::string kind() const override { return "precision"; }
};

// tp / (tp + fn) ("recall"); threshold in [0, 1] (ValueError otherwise).
class Recall : public ConfusionCounts {
 public:
  // Keras's default threshold 0.5, named "recall".
  explicit Recall(double threshold = 0.5, std::string name = "recall",
                  std::source_location loc = std::source_location::current());
  double result_value() const override {
    return tp(0) + fn(0) == 0 ? 0.0 : tp(0) / (tp(0) + fn(0));
  }
  std::string kind() const override { return "recall"; }
};

// The area under the ROC curve ("auc"), from weighted confusion counts at num_thresholds
// evenly spaced thresholds (the first just below 0, the last just above 1, as in Keras) summed
// with the trapezoidal rule (Keras's summation_method="interpolation" for curve="ROC"). The
// PR curve, multi-label and explicit thresholds are not there yet. Labels and weights as for
// Precision.
class AUC : public ConfusionCounts {
 public:
  // num_thresholds must be at least 2 (ValueError otherwise). Named "auc".
  explicit AUC(int64_t num_thresholds = 200, std::string name = "auc",
               std::source_location loc = std::source_location::current());
  double result_value() const override;
  std::string kind() const override { return "auc"; }
};

}  // namespace kiln::metrics
