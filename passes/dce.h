// Dead-code elimination: removes nodes none of whose results reach an output or an update.
#pragma once

#include "kiln/ir/function.h"

namespace kiln::passes {

// Returns whether it removed anything.
bool eliminate_dead_code(ir::Function& function);

}  // namespace kiln::passes
