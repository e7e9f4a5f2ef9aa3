// Internal: the loop nests around the elemental emitter, one per group of same-shaped kernel
// outputs. Loop kernels whose operands are dense in the kernel's layout run one flat loop;
// other kernels loop over rows (every dimension but the last) with an inner loop over the last;
// reductions that keep the innermost axis accumulate a block of columns across rows; softmax
// runs a row at a time. Every loop goes through emit_parallel_loop (parallel.h).
#pragma once

#include <cstddef>
#include <vector>

#include "kiln/codegen/parallel.h"
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

// Where the loops of a kernel go and how much one item does. The CPU's defaults run each loop
// inline or on the thread pool, with items of whole vectors of columns. The GPU path
// (gpu_module.cpp) passes a sink that makes each loop's range function a GPU kernel, and asks for
// an item per column, so that neighbouring threads touch neighbouring elements.
struct LoopLowering {
  const LoopSink* sink = nullptr;  // null: inline or kiln_rt_parallel_for
  int64_t min_items = 64;          // items a loop over rows should offer at least
  int64_t column_multiple = 16;    // an item of such a loop takes a multiple of this many columns
  // Columns one item of a reduction across rows accumulates (a few KiB of accumulators).
  int64_t reduction_columns = 256;
};

// Emits the body of `fn`, declared void(ptr in0, ..., ptr out0, ...), computing `kernel`.
void emit_kernel_loops(llvm::Function& fn, const passes::Kernel& kernel,
                       const KernelBuffers& buffers, const LoopLowering& lowering = {});

}  // namespace kiln::codegen
