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

// check_index's IndexError message for the element at flat `position` holding `value` (compiled
// code reports a bad element with the same words).
std::string check_index_message(const Attrs& attrs, int64_t value, int64_t position);

struct EvalResult {
  std::vector<HostTensor> outputs;
  // New values of updated parameters, in the order of Function::updates().
  std::vector<HostTensor> updates;
};

// Runs a whole function on arguments matching its parameters (checked; TypeError if not).
EvalResult evaluate(const Function& function, std::span<const HostTensor> args);

}  // namespace kiln::ir
