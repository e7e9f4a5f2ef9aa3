// Internal: one shape-inference rule and one interpreter kernel per op family (see ops.def).
// infer_<family>: result types; throws ShapeError/TypeError/ValueError with a message that does
//   not repeat the op name or operands (infer_types adds them).
// interpret_<family>: computes `outputs` (already allocated with the inferred types, zeroed).
#pragma once

#include <span>
#include <vector>

#include "kiln/ir/attrs.h"
#include "kiln/ir/host_tensor.h"
#include "kiln/ir/op.h"
#include "kiln/ir/types.h"

namespace kiln::ir {

#define KILN_FAMILY(family)                                                              \
  std::vector<TensorType> infer_##family(Op op, std::span<const TensorType> inputs,      \
                                         const Attrs& attrs);                            \
  void interpret_##family(Op op, std::span<const HostTensor> inputs, const Attrs& attrs, \
                          std::span<HostTensor> outputs);
KILN_FAMILY(creation)
KILN_FAMILY(elementwise)
KILN_FAMILY(reduction)
KILN_FAMILY(matmul)
KILN_FAMILY(shape)
KILN_FAMILY(nn)
KILN_FAMILY(image)
KILN_FAMILY(control)
#undef KILN_FAMILY

}  // namespace kiln::ir
