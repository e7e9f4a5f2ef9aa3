// Shape inference: the result types of an op, from its operand types and attributes.
// The same rule serves eager execution, tracing and the verifier.
#pragma once

#include <span>
#include <vector>

#include "kiln/ir/attrs.h"
#include "kiln/ir/error.h"
#include "kiln/ir/op.h"
#include "kiln/ir/types.h"

namespace kiln::ir {

// Result types of `op` on operands of types `inputs` with `attrs`; also validates the attributes.
// Throws a kiln::Error subclass whose message starts with the op name and lists the operands.
std::vector<TensorType> infer_types(Op op, std::span<const TensorType> inputs, const Attrs& attrs);

}  // namespace kiln::ir
