// Internal: builds the GPU-mode module of a planned function (codegen/gpu.h) for either target:
// NVPTX kernels whose index reads are the special registers, or host functions whose index reads
// come from the host shim's thread-local variables.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include <llvm/IR/Module.h>

#include "kiln/codegen/gpu.h"

namespace kiln::codegen {

enum class GpuTarget { nvptx, host };

// What build_gpu_module made.
struct GpuKernels {
  std::vector<GpuLaunch> launches;
  // Per launch, its kernel function (null for an unsupported launch).
  std::vector<llvm::Function*> kernels;
  // The plan kernel's label of every function that emitted code holds, for error messages.
  std::map<const llvm::Function*, std::string> labels;
  // The kernels whose threads wait for each other (barriers, warp shuffles: gpu_reduce.h): the
  // host shim runs each block of theirs with all its threads at once.
  std::set<const llvm::Function*> synchronizing;
  // The device workspace the launches use: the memory plan's, then blocks that scans' constant
  // xs are copied to.
  int64_t workspace_bytes = 0;
};

// Fills `module` (with its target triple and data layout already set) with one kernel per
// parallel loop of every loop kernel, an index-check kernel before every kernel that gathers, a
// copy kernel per result that no kernel writes in place, and the thread/block index functions
// for `target`. Throws CompileError naming the plan kernel that failed.
GpuKernels build_gpu_module(llvm::Module& module, const ir::Function& function,
                            const passes::KernelPlan& plan, const passes::MemoryPlan& memory,
                            GpuTarget target, const GpuOptions& options);

}  // namespace kiln::codegen
