// Common-subexpression elimination: nodes with the same op, operands, attributes and result
// types compute the same values (every op is pure; random ops are counter-based, so the same
// seed gives the same numbers), so later copies are removed and their uses moved to the first.
#pragma once

#include "kiln/ir/function.h"

namespace kiln::passes {

// Returns whether it removed anything.
bool eliminate_common_subexpressions(ir::Function& function);

}  // namespace kiln::passes
