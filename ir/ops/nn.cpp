// Shape inference and verifier rules for the nn ops.
#include "kiln/ir/ops/families.h"

#include "kiln/ir/error.h"

namespace kiln::ir {

std::vector<TensorType> infer_nn(Op, std::span<const TensorType>, const Attrs&) {
  throw ValueError("not implemented yet");
}

}  // namespace kiln::ir
