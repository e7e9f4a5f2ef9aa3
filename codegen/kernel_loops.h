// Internal: the loop nests around the elemental emitter, one per group of same-shaped kernel
// outputs. Loop kernels whose operands are dense in the kernel's layout run one flat loop;
// other kernels loop over rows (every dimension but the last) with an inner loop over the last;
// reductions that keep the innermost axis accumulate a block of columns across rows; softmax
// runs a row at a time. Every loop goes through emit_parallel_loop (parallel.h).
#pragma once

#include <cstddef>
#include <vector>

#include "kiln/passes/kernel_plan.h"

namespace llvm {
class Function;
}

namespace kiln::codegen {

// Which memory the kernel function's pointer arguments (inputs, then outputs) point to.
struct KernelBuffers {
  // Per argument, the distinct buffer it points into: an output computed in place of an input
  // shares the input's buffer, so LLVM sees the same pointer for both.
  std::vector<size_t> buffer_of;
  // Per distinct buffer: no other buffer of the kernel overlaps it (so it may be noalias).
  std::vector<bool> exclusive;
};

// The buffers of `kernel`'s arguments per the memory plan. Relies on the frame contract: the
// caller's input and output buffers do not overlap each other (inputs may repeat; they are
// only read).
KernelBuffers kernel_buffers(const passes::Kernel& kernel, const passes::MemoryPlan& memory);

// Emits the body of `fn`, declared void(ptr in0, ..., ptr out0, ...), computing `kernel`.
void emit_kernel_loops(llvm::Function& fn, const passes::Kernel& kernel,
                       const KernelBuffers& buffers);

}  // namespace kiln::codegen
