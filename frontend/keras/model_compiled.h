// What Model::compile made: the optimizer, the loss, the metrics and the compiled steps. Shared
// by the files that implement Model (model.cpp, model_fit.cpp, model_saving.cpp); not API.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <source_location>
#include <string>
#include <vector>

#include "kiln/frontend/core/tensor.h"
#include "kiln/frontend/keras/losses.h"
#include "kiln/frontend/keras/metrics.h"
#include "kiln/frontend/keras/model.h"
#include "kiln/frontend/keras/optimizers.h"

namespace kiln {

namespace detail {
// Throws unless x is a batch of samples of the declared type: ShapeError naming the whole batch
// and the model's first layer `first`, TypeError (with what to do) for integer data into a
// floating model.
void check_input(const std::optional<TensorType>& declared, const std::string& first,
                 const std::string& name, const Tensor& x, const std::source_location& loc);
}  // namespace detail

struct Model::Compiled {
  std::shared_ptr<optimizers::Optimizer> optimizer;
  // One loss per output (compile() given one loss uses it for every output), and its weight in
  // the total loss the optimizer minimises (Keras's loss_weights).
  std::vector<std::shared_ptr<losses::Loss>> losses;
  std::vector<double> loss_weights;
  // losses[0]: the loss of a model of one output.
  std::shared_ptr<losses::Loss> loss;
  // The metrics' names as Model::save records them (MetricSpec::saved_name), and resolved: one
  // list per output.
  std::vector<std::vector<std::string>> metric_names;
  std::vector<metrics::MetricList> metrics;
  // What each output's losses and metrics are reported under: "" for a model of one output, else
  // the output layer's name and "_" (Keras's "dense_1_loss").
  std::vector<std::string> prefixes;
  // (xs, ys) → {mean total loss, each output's mean loss when there are several, then each
  // output's metrics' state increments (MetricList::batch_sums)}.
  std::function<std::vector<Tensor>(const std::vector<Tensor>&, const std::vector<Tensor>&)>
      train_step, test_step;
  std::function<std::vector<Tensor>(const std::vector<Tensor>&)> predict_step;
};

}  // namespace kiln
