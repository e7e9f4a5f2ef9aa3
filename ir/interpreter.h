// The reference interpreter: the oracle every compiled kernel is checked against.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kiln/ir/attrs.h"
#include "kiln/ir/function.h"
#include "kiln/ir/host_tensor.h"
#include "kiln/ir/op.h"

namespace kiln::ir {

// Runs one op on concrete operands. `output_types` are the inferred result types.
// Throws kiln::Error for data-dependent failures (e.g. a gather index out of range).
std::vector<HostTensor> run_op(Op op, std::span<const HostTensor> inputs, const Attrs& attrs,
                               std::span<const TensorType> output_types);

// The IndexError message of a gather or check_index node (`attrs`, first operand of shape
// `operand`) whose index at flat `position` of its index operand holds the out-of-range `value`.
// The interpreter and compiled code (frontend/core/compile.cpp) both report bad indices with it.
std::string bad_index_message(Op op, const Attrs& attrs, const Shape& operand, int64_t value,
                              int64_t position);

struct EvalResult {
  std::vector<HostTensor> outputs;
  // New values of updated parameters, in the order of Function::updates().
  std::vector<HostTensor> updates;
};

// Runs a whole function on arguments matching its parameters (checked; TypeError if not).
EvalResult evaluate(const Function& function, std::span<const HostTensor> args);

}  // namespace kiln::ir
