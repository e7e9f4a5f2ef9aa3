#include "kiln/frontend/core/op_error.h"

#include <fmt/format.h>

#include <vector>

#include "kiln/frontend/core/name_scope.h"
#include "kiln/ir/source_loc.h"
#include "kiln/ir/types.h"

namespace kiln::detail {

void add_user_location(Error& error, const std::source_location& loc) {
  ir::add_location(error, node_scope(), node_loc(loc));
}

void decorate(Error& error, std::string_view op, std::span<const Tensor> operands,
              const std::source_location& loc) {
  error.prefix(op);
  std::vector<TensorType> types;
  for (const Tensor& t : operands) {
    if (t.defined()) types.push_back(t.type());
  }
  if (!types.empty()) error.add_context(fmt::format("operands: {}", ir::types_to_string(types)));
  add_user_location(error, loc);
}

}  // namespace kiln::detail
