// Shape inference and verifier rules for the creation ops.
#include "kiln/ir/ops/families.h"

#include "kiln/ir/error.h"

namespace kiln::ir {

std::vector<TensorType> infer_creation(Op, std::span<const TensorType>, const Attrs&) {
  throw ValueError("not implemented yet");
}

}  // namespace kiln::ir
