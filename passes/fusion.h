// Fusion: partitions a function's nodes into kernels (see passes/kernel_plan.h for the kinds and
// the invariants codegen relies on).
//
// Rules, applied greedily from the last node backwards:
// - matmul/conv2d epilogue: a chain of loop nodes after a matmul/conv2d joins its kernel while
//   each link's operand from the chain has that one use, is not a result or update, and the
//   node keeps the matmul/conv2d result's shape (bias add, activation).
// - loop: a loop node (elementwise or broadcast_to) pulls in its producers that are loop nodes of
//   the same result shape whose every use is inside the group; such a producer may also be a
//   result or update of the function, and then becomes one more kernel output.
// - reduction: a reduction pulls in loop producers of its operand's shape, as above, except that
//   they may not be results or updates (only the reduction's result leaves).
// - a pad or a max-pool gradient may join a loop or reduction group as such a producer too (the
//   loop computes it element by element, as its own kernel would).
// - anything else (reshape, transpose, slice, gather, concat, softmax, pools, creation ops,
//   multi-result nodes, and pads or max-pool gradients no loop pulls in) is an `op` kernel of
//   its own.
// Since a group's only value read by other kernels is its last node's result, ordering kernels
// by their last node gives a topological order; plan_kernels checks it anyway.
//
// A group stops growing where a path through it from the root would pass max_depth nodes: the
// codegen's expression emitter recurses along such paths (and LLVM's passes along the
// expression trees it makes), so a chain of any length compiles as kernels of bounded depth
// instead of exhausting the stack.
#pragma once

#include "kiln/ir/function.h"
#include "kiln/passes/kernel_plan.h"

namespace kiln::passes {

struct FusionOptions {
  // false: one kernel per non-constant node (a baseline for differential tests).
  bool fuse = true;
  // The most nodes a path from a fused group's root (down its operands) may pass.
  int max_depth = kMaxFusedDepth;
  static constexpr int kMaxFusedDepth = 256;
};

// The kernel kind a single node gets on its own.
KernelKind kernel_kind_of(ir::Op op);

// Groups the nodes of `function` into kernels in a topological order. The plan points into
// `function`, which must outlive it and stay unchanged.
KernelPlan plan_kernels(const ir::Function& function, const FusionOptions& options = {});

}  // namespace kiln::passes
