// Internal to kiln::aot (frontend/aot.cpp): the parts of an ahead-of-time library for NVIDIA GPUs
// (Options::device "cuda") that the CUDA toolkit makes. The function's loop kernels are compiled
// to PTX per architecture, then ptxas and fatbinary (run without a shell) turn them into one
// fatbin; the launch plan is serialised for the runtime. aot.cpp embeds the results in the glue.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kiln/frontend/core/tensor.h"
#include "kiln/frontend/process.h"
#include "kiln/passes/pipeline.h"

namespace kiln::aot::detail {

// "sm_80,sm_90" → {"sm_80", "sm_90"}: each sm_ and a number (sm_90a too), repeats dropped.
// Throws ValueError for anything else or an empty list.
std::vector<std::string> gpu_archs(const std::string& list, Loc loc);

// The CUDA toolkit's programs that turn PTX into a fatbin.
struct CudaTools {
  std::string ptxas, fatbinary;
};

// ptxas and fatbinary from $KILN_AOT_CUDA_BIN, else from the toolkit Kiln was built with.
// Throws CompileError saying a CUDA toolkit is needed when they are not there.
CudaTools find_cuda_tools(Loc loc);

// The folder the private temporary folder for the toolkit's files goes in: $TMPDIR or /tmp.
std::string gpu_temp_parent();

// What build_gpu_parts wrote, for the glue.
struct GpuParts {
  int64_t fatbin_bytes = 0, plan_bytes = 0;
  std::string gpu_arch;  // the architectures, "sm_80,sm_90"
};

// Compiles `compiled` for `archs` and writes into `dir`: NAME.fatbin (a cubin per architecture,
// plus the PTX of the newest one that is not architecture-specific, for later GPUs), NAME.plan
// (the launch plan, runtime/cuda/launch_plan_blob.h) and NAME.weights (`weights`). Throws
// CompileError for a kernel the GPU path cannot run or a tool that fails (with what it printed).
GpuParts build_gpu_parts(const std::string& name, const passes::PipelineResult& compiled,
                         const std::vector<std::string>& archs, const CudaTools& tools,
                         const std::string& weights, const kiln::detail::TempDir& dir, Loc loc);

}  // namespace kiln::aot::detail
