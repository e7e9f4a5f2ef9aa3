// The metrics compile() accepts by name, what a compiled step computes for them per batch, and
// the running means that fit's logs and evaluate's results report. Model and SavedModel share
// them, so both count the same way.
#pragma once

#include <cstdint>
#include <source_location>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kiln/frontend/core/tensor.h"
#include "kiln/ir/types.h"

namespace kiln::metrics {

// compile()'s metrics, resolved from their Keras names: "accuracy" (alias "acc").
class MetricList {
 public:
  // No metrics.
  MetricList() = default;
  // Throws ValueError naming the known metrics for any other name; `what` names the caller.
  MetricList(const std::vector<std::string>& names, const char* what,
             const std::source_location& loc);

  // Each metric's name in logs ("accuracy"), in the order batch_sums computes them.
  std::vector<std::string> names() const;
  // Each metric's sum over one batch as an f32 0-d tensor, in names() order (accuracy: the
  // correct predictions, correct_count). Runs eagerly or traced.
  std::vector<Tensor> batch_sums(const Tensor& y, const Tensor& pred) const;

 private:
  bool accuracy_ = false;
};

// Sample-weighted running means of a loss and of a MetricList's metrics over the batches of an
// epoch or an evaluation.
class RunningMeans {
 public:
  explicit RunningMeans(const MetricList& metrics);

  // Adds one batch of `size` samples: its mean loss and its MetricList::batch_sums.
  void add(int64_t size, double mean_loss, std::span<const Tensor> sums);
  // Samples added so far.
  int64_t samples() const { return samples_; }
  // "loss", then each metric's name.
  const std::vector<std::string>& names() const { return names_; }
  // (name, mean) for the loss and each metric, in names() order.
  std::vector<std::pair<std::string, double>> logs() const;
  // {loss, metrics...} as evaluate returns them.
  std::vector<float> values() const;

 private:
  std::vector<std::string> names_;
  std::vector<double> sums_;  // the loss weighted by batch size, then the metrics' sums
  int64_t samples_ = 0;
};

// The number of correct predictions in a batch as an f32 0-d tensor, "accuracy" resolved from
// the shapes as Keras does: class ids per sample (y has one axis fewer than pred, or a trailing
// 1 against several classes) → sparse; one output unit → binary (threshold 0.5); otherwise
// one-hot labels → categorical. Runs eagerly or traced.
Tensor correct_count(const Tensor& y, const Tensor& pred);

// Whether labels of shape y are class ids for predictions of shape pred (the sparse case above).
bool sparse_labels(const Shape& y, const Shape& pred);

}  // namespace kiln::metrics
