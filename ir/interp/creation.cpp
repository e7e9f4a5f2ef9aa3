// Interpreter kernels for the creation ops.
#include "kiln/ir/ops/families.h"

#include "kiln/ir/error.h"

namespace kiln::ir {

void interpret_creation(Op, std::span<const HostTensor>, const Attrs&, std::span<HostTensor>) {
  throw ValueError("not implemented yet");
}

}  // namespace kiln::ir
