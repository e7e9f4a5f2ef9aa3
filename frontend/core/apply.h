// The single path every frontend op takes: check the operands, then append a node to the active
// trace, or infer the result types with the op table and run the op eagerly. Tapes and
// check_numerics see every op here. Name scopes live in name_scope.h, error decoration in
// op_error.h.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <source_location>
#include <span>
#include <unordered_map>
#include <vector>

#include "kiln/frontend/core/tensor.h"
#include "kiln/ir/attrs.h"
#include "kiln/ir/function.h"
#include "kiln/ir/op.h"

namespace kiln::detail {

// Runs `op` on `inputs`: infers the result types (errors get the user's location and scope
// added) and computes the results eagerly, or appends the op to the active trace.
std::vector<Tensor> apply(ir::Op op, std::span<const Tensor> inputs, const ir::Attrs& attrs,
                          const std::source_location& loc);
// apply() for ops with exactly one result.
Tensor apply1(ir::Op op, std::span<const Tensor> inputs, const ir::Attrs& attrs,
              const std::source_location& loc);
inline Tensor apply1(ir::Op op, std::initializer_list<Tensor> inputs, const ir::Attrs& attrs,
                     const std::source_location& loc) {
  return apply1(op, std::span<const Tensor>(inputs.begin(), inputs.size()), attrs, loc);
}

// The nodes of `function` from index `first` on that the `wanted` values need, in order (a
// gradient rule also builds the gradients of operands nobody asked for; those are left out).
std::vector<const ir::Node*> nodes_needed(const ir::Function& function, size_t first,
                                          std::span<ir::Value* const> wanted);

// Runs `nodes` through apply() (so traces and tapes see them), each attributed to its own scope
// and location, reading operands from and adding results to `tensors` (which must hold every
// value the nodes read that none of them makes).
void replay(std::span<const ir::Node* const> nodes,
            std::unordered_map<const ir::Value*, Tensor>& tensors, const std::source_location& loc);

}  // namespace kiln::detail
