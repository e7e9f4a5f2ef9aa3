// What Model::compile made: the optimizer, the loss, the metrics and the compiled steps. Shared
// by the files that implement Model (model.cpp, model_fit.cpp, model_saving.cpp); not API.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kiln/frontend/core/tensor.h"
#include "kiln/frontend/keras/losses.h"
#include "kiln/frontend/keras/metrics.h"
#include "kiln/frontend/keras/model.h"
#include "kiln/frontend/keras/optimizers.h"

namespace kiln {

struct Model::Compiled {
  std::shared_ptr<optimizers::Optimizer> optimizer;
  std::shared_ptr<losses::Loss> loss;
  // The metrics' names as Model::save records them (MetricSpec::saved_name), and resolved.
  std::vector<std::string> metric_names;
  metrics::MetricList metrics;
  // (x, y) → {mean loss, then each metric's state increments (MetricList::batch_sums)}.
  std::function<std::vector<Tensor>(const Tensor&, const Tensor&)> train_step, test_step;
  std::function<Tensor(const Tensor&)> predict_step;
};

}  // namespace kiln
