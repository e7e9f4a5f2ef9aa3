#include "kiln/frontend/keras/batches.h"
#include "kiln/frontend/core/op_error.h"

#include <fmt/format.h>

#include <cmath>

namespace kiln::detail {

void check_data(const char* what, const Tensor& x, const Tensor& y,
                const std::source_location& loc) {
  if (!x.defined() || !y.defined()) raise<ValueError>(what, {}, "x and y must be defined", loc);
  if (x.rank() == 0 || y.rank() == 0 || x.shape()[0] != y.shape()[0]) {
    raise<ValueError>(
        what, {x, y},
        fmt::format("x and y must have the same number of samples (dimension 0), got {} and {}",
                    x.rank() > 0 ? x.shape()[0] : 0, y.rank() > 0 ? y.shape()[0] : 0),
        loc);
  }
}

void check_compile_counts(const char* what, size_t outputs, size_t losses, size_t metric_lists,
                          const std::vector<double>& loss_weights,
                          const std::source_location& loc) {
  auto per_output = [&](size_t given, const char* kind) {
    if (given != 1 && given != outputs) {
      detail::raise<ValueError>(what, {},
                                fmt::format("the model has {} output{}: give one {} for all of "
                                            "them or one per output, got {}",
                                            outputs, outputs == 1 ? "" : "s", kind, given),
                                loc);
    }
  };
  per_output(losses, "loss");
  if (metric_lists != 0) per_output(metric_lists, "list of metrics");
  if (!loss_weights.empty()) per_output(loss_weights.size(), "loss weight");
  for (double w : loss_weights) {
    if (!std::isfinite(w)) {
      detail::raise<ValueError>(what, {}, fmt::format("loss weights must be finite, got {}", w),
                                loc);
    }
  }
}

}  // namespace kiln::detail
