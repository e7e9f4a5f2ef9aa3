#include "kiln/frontend/keras/batches.h"
#include "kiln/frontend/core/op_error.h"

#include <fmt/format.h>

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

}  // namespace kiln::detail
