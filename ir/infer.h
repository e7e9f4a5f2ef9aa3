// Shape inference: the result types of an op, from its operand types and attributes.
// The same rule serves eager execution, tracing and the verifier.
#pragma once

#include <span>
#include <string_view>
#include <vector>

#include "kiln/ir/attrs.h"
#include "kiln/ir/error.h"
#include "kiln/ir/function.h"
#include "kiln/ir/op.h"
#include "kiln/ir/types.h"

namespace kiln::ir {

// Result types of `op` on operands of types `inputs` with `attrs`; also validates the attributes.
// Throws a kiln::Error subclass whose message starts with the op name and lists the operands.
std::vector<TensorType> infer_types(Op op, std::span<const TensorType> inputs, const Attrs& attrs);

// Adds "at FILE:LINE:COL (scope S)" to an error, when known.
void add_location(Error& error, std::string_view scope, const SourceLoc& loc);

}  // namespace kiln::ir
