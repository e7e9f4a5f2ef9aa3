// The metrics compile() accepts, by Keras name or as metric objects (metric_objects.h), what a
// compiled step computes for them per batch (each metric's state increments), and the running
// values that fit's logs and evaluate's results report. Model and SavedModel share them, so both
// count the same way.
//
//   model.compile("adam", "sparse_categorical_crossentropy",
//                 {"accuracy", k::metrics::SparseTopKCategoricalAccuracy(3, "top3")});
#pragma once

#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <source_location>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kiln/frontend/core/tensor.h"
#include "kiln/frontend/keras/metric_objects.h"
#include "kiln/ir/types.h"

namespace kiln::losses {
class Loss;
}

namespace kiln::metrics {

// A metric as compile() takes it: a Keras name ("accuracy", "mse", "auc", ...; see get), a
// metric object, which is copied (the object you pass keeps its own state), or a shared one.
class MetricSpec {
 public:
  template <class M>
  requires std::derived_from<M, Metric> MetricSpec(const M& metric)  // NOLINT: implicit
      : copy_([metric] { return std::make_shared<M>(metric); }) {}
  MetricSpec(const char* name) : name_(name) {}             // NOLINT: implicit
  MetricSpec(std::string name) : name_(std::move(name)) {}  // NOLINT: implicit
  // A shared metric object is used itself, as Keras uses the objects given to compile: after
  // fit or evaluate it holds the last run's state (so share one with one model only).
  MetricSpec(std::shared_ptr<Metric> metric)  // NOLINT: implicit
      : copy_([metric] { return metric; }) {}

  // A metric object of this list's own, its state reset: a copy of the object, or get(name,
  // loss) for a name. ValueError listing the known names for an unknown one.
  std::shared_ptr<Metric> resolve(const losses::Loss* loss, const char* what,
                                  const std::source_location& loc) const;
  // The name Model::save records and load_model resolves: the name as given, or the object's
  // kind(), as "<name>=<kind>" when its name is another (its other arguments are not saved: it
  // comes back with Keras's defaults).
  std::string saved_name() const;

 private:
  std::function<std::shared_ptr<Metric>()> copy_;  // a fresh copy of the object given
  std::string name_;
};

// The metric a Keras name stands for, with Keras's default arguments, reporting under that name:
// "accuracy" ("acc"; binary_accuracy when `loss` is a binary cross-entropy or the model has one
// output unit, sparse_categorical_accuracy when it is a sparse categorical cross-entropy or the
// labels are class ids, categorical_accuracy otherwise, decided on the first batch's shapes),
// "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
// "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy", "mean_squared_error"
// ("mse"), "mean_absolute_error" ("mae"), "root_mean_squared_error" ("rmse"), "precision",
// "recall", "auc", and the class names ("AUC", "MeanSquaredError", ...). ValueError naming
// `what` and listing the known names otherwise.
std::shared_ptr<Metric> get(const std::string& name, const losses::Loss* loss = nullptr,
                            const char* what = "metrics.get",
                            const std::source_location& loc = std::source_location::current());

// compile()'s metrics, resolved: one metric object each, reporting under distinct names.
class MetricList {
 public:
  // No metrics.
  MetricList() = default;
  // ValueError naming `what` for an unknown name (listing the known ones), or two metrics that
  // report under the same name (or as "loss"). `loss` resolves "accuracy" as Keras does.
  MetricList(const std::vector<MetricSpec>& metrics, const char* what,
             const std::source_location& loc, const losses::Loss* loss = nullptr);
  // The same from saved names (MetricSpec::saved_name): Keras names, or "<name>=<kind>".
  MetricList(const std::vector<std::string>& names, const char* what,
             const std::source_location& loc, const losses::Loss* loss = nullptr);

  // Each metric's name in logs ("accuracy"), in the order batch_sums computes them.
  std::vector<std::string> names() const;
  // Each metric's state increments over one batch (Metric::batch_state: a 1-d f32 tensor), in
  // names() order. Runs eagerly or traced; ShapeError / ValueError naming the metric when the
  // labels or predictions do not suit it.
  std::vector<Tensor> batch_sums(const Tensor& y, const Tensor& pred) const;
  // The metric objects, which RunningMeans accumulates into.
  const std::vector<std::shared_ptr<Metric>>& metrics() const { return metrics_; }

 private:
  static std::vector<MetricSpec> saved_specs(const std::vector<std::string>& names,
                                             const losses::Loss* loss, const char* what,
                                             const std::source_location& loc);

  std::vector<std::shared_ptr<Metric>> metrics_;
};

// The sample-weighted running mean of a loss, and a MetricList's metrics accumulated, over the
// batches of an epoch or an evaluation. It resets the list's metric objects and accumulates
// into them, so one run at a time per list (fit takes its training logs before it validates).
class RunningMeans {
 public:
  explicit RunningMeans(const MetricList& metrics);
  // A model of several outputs, one list per output and each output's name prefix ("dense_1_"):
  // the total loss, each output's loss and each output's metrics, named as Keras names them
  // ("loss", "dense_1_loss", "dense_1_accuracy", ...). One list with prefix "" is the above.
  RunningMeans(const std::vector<const MetricList*>& lists,
               const std::vector<std::string>& prefixes);

  // Adds one batch of `size` samples: its mean loss and its MetricList::batch_sums.
  void add(int64_t size, double mean_loss, std::span<const Tensor> sums);
  // The same with several outputs: the total mean loss and each output's, then every list's
  // sums in order.
  void add(int64_t size, std::span<const double> mean_losses, std::span<const Tensor> sums);
  // How many losses add() takes: 1, or 1 + the outputs.
  size_t num_losses() const { return loss_sums_.size(); }
  // Samples added so far.
  int64_t samples() const { return samples_; }
  // "loss" (and each output's loss), then each metric's name.
  const std::vector<std::string>& names() const { return names_; }
  // (name, value) for the losses and each metric, in names() order.
  std::vector<std::pair<std::string, double>> logs() const;
  // {loss, metrics...} as evaluate returns them.
  std::vector<float> values() const;

 private:
  std::vector<std::string> names_;
  std::vector<std::shared_ptr<Metric>> metrics_;
  std::vector<double> loss_sums_;  // each loss weighted by batch size
  int64_t samples_ = 0;
};

// Whether labels of shape y are class ids for predictions of shape pred (y has one axis fewer,
// or a trailing 1 against several classes).
bool sparse_labels(const Shape& y, const Shape& pred);

}  // namespace kiln::metrics
