// Internal: cooperative GPU kernels for reductions and softmax (codegen/gpu.h). The loop path
// gives each output element (a row, or a column) to one thread, which walks the whole reduced
// extent alone; these kernels share an output among a warp or a block of threads instead. Threads
// stride over the reduced elements, computing the fused producers with the elemental emitter the
// CPU uses, fold them in registers, then across the warp with shuffles and across warps through
// block-shared memory with barriers. The same module builds for the host shim, whose per-block
// scheduler runs the threads of a block as fibers that switch at every barrier and shuffle.
#pragma once

#include <cstdint>
#include <optional>

#include "kiln/codegen/gpu.h"
#include "kiln/codegen/kernel_loops.h"
#include "kiln/passes/kernel_plan.h"

namespace llvm {
class Function;
class Module;
}  // namespace llvm

namespace kiln::codegen {

// Bytes of block-shared memory every cooperative kernel uses (a static array on the GPU, a
// buffer per host thread in the shim): 32 × 32 partial results of 16 bytes.
inline constexpr int64_t kGpuSharedBytes = 16384;

// How a cooperative kernel shares out its work.
enum class GpuGroup {
  warp,     // a warp per output row: shuffles only, no barrier
  block,    // a block per output row: shuffles, then shared memory between barriers
  columns,  // a block per tile of 32 columns of a reduction that keeps the innermost axis: the
            // block's warps take every k-th reduced row, and fold their partials in shared memory
};

struct GpuCooperative {
  GpuGroup group = GpuGroup::warp;
  int64_t items = 0;     // outputs (rows), or column tiles: the kernel's i64 item count
  int64_t elements = 0;  // elements one output reduces
};

// Whether `kernel` (a reduction, or a softmax / log_softmax op kernel) is better run by a
// cooperative kernel, and how: long rows and columns are, short ones (below
// options.warp_reduce_elements) and empty outputs are not.
std::optional<GpuCooperative> plan_cooperative(const passes::Kernel& kernel,
                                               const GpuOptions& options);

// What a cooperative kernel synchronizes and reads its indices with: small internal functions
// that are the NVPTX intrinsics on a GPU and calls into the host shim (gpu_shim.cpp) on the host.
struct GpuSyncFunctions {
  // i32 (): threadIdx.x, blockIdx.x, blockDim.x, gridDim.x.
  llvm::Function* thread_index = nullptr;
  llvm::Function* block_index = nullptr;
  llvm::Function* block_dim = nullptr;
  llvm::Function* grid_dim = nullptr;
  llvm::Function* barrier = nullptr;    // void (): __syncthreads()
  llvm::Function* shfl_down = nullptr;  // i32 (i32 mask, i32 value, i32 delta)
  llvm::Function* shfl_idx = nullptr;   // i32 (i32 mask, i32 value, i32 lane)
  llvm::Function* shared = nullptr;     // ptr (): the block's kGpuSharedBytes of shared memory
};

// Adds the barrier, shuffle and shared-memory functions to `module` (once; later calls return
// the same functions) next to the given index functions. `nvptx`: for a GPU, else for the shim.
GpuSyncFunctions gpu_sync_functions(llvm::Module& module, bool nvptx, llvm::Function* thread_index,
                                    llvm::Function* block_index, llvm::Function* block_dim,
                                    llvm::Function* grid_dim);

// Emits the body of `fn`, declared void(ptr buffer..., i64 items) with one pointer per distinct
// buffer of `buffers` (KernelBuffers::exclusive's order), computing `kernel` as `plan` says, for
// any grid and any block size up to 1024.
void emit_cooperative(llvm::Function& fn, const passes::Kernel& kernel,
                      const KernelBuffers& buffers, const GpuCooperative& plan,
                      const GpuSyncFunctions& sync);

}  // namespace kiln::codegen
