#include "kiln/frontend/core/grad.h"
#include "kiln/frontend/core/op_error.h"

#include <fmt/format.h>

namespace kiln::detail {

void check_grad_call(const Tensor& result, std::span<const int> argnums, size_t arity,
                     const char* transform, const std::source_location& loc) {
  for (int i : argnums) {
    if (i < 0 || static_cast<size_t>(i) >= arity) {
      raise<ValueError>(transform, {},
                        fmt::format("argnum {} is out of range for a function called with {} "
                                    "argument(s)",
                                    i, arity),
                        loc);
    }
  }
  if (!result.defined())
    raise<ValueError>(transform, {}, "the function returned an undefined Tensor", loc);
  if (!ir::is_floating(result.dtype()) || result.rank() != 0) {
    raise<TypeError>(transform, {result},
                     fmt::format("the function must return a floating scalar to be "
                                 "differentiated, got {} (reduce it, e.g. with reduce_sum, or use "
                                 "GradientTape with an output gradient)",
                                 result.type().to_string()),
                     loc);
  }
}

}  // namespace kiln::detail
