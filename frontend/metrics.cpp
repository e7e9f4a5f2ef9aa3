#include "kiln/frontend/metrics.h"

#include <fmt/format.h>

#include "kiln/frontend/apply.h"
#include "kiln/frontend/ops.h"

namespace kiln::metrics {

bool parse_names(const std::vector<std::string>& names, const char* what,
                 const std::source_location& loc) {
  bool accuracy = false;
  for (const std::string& m : names) {
    if (m != "accuracy" && m != "acc") {
      detail::raise<ValueError>(what, {},
                                fmt::format("unknown metric '{}'; known: accuracy (acc)", m), loc);
    }
    accuracy = true;
  }
  return accuracy;
}

bool sparse_labels(const Shape& y, const Shape& pred) {
  if (pred.rank() == 0) return false;
  return y.rank() == pred.rank() - 1 ||
         (y.rank() == pred.rank() && y.dims().back() == 1 && pred.dims().back() > 1);
}

Tensor correct_count(const Tensor& y, const Tensor& pred) {
  Tensor hits;
  if (sparse_labels(y.shape(), pred.shape())) {
    Tensor labels = y.rank() == pred.rank() ? squeeze(y, -1) : y;
    hits = equal(argmax(pred, -1), cast(labels, i64));
  } else if (pred.shape().dims().back() == 1) {
    hits = equal(greater(pred, 0.5), greater(cast(y, pred.dtype()), 0.5));
  } else {
    hits = equal(argmax(pred, -1), argmax(y, -1));
  }
  return reduce_sum(cast(hits, f32));
}

}  // namespace kiln::metrics
