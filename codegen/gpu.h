// GPU code generation (DESIGN.md, "Codegen and runtime"): the loop kernels of a planned function
// become NVPTX kernels built from the same kernel_loops/elemental code as the CPU's, each loop's
// range body under a thread/block index mapping, plus the launch plan that runs them in order.
// The same kernels also compile for the host (the "host shim"), so their logic runs and is tested
// on machines without a GPU. Loop kernels take no VectorUnit (only the CPU's GEMM does): the GPU
// build drops their prefer-vector-width hint, and each thread runs scalar code.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/ir/function.h"
#include "kiln/passes/kernel_plan.h"
#include "kiln/runtime/kiln_rt.h"

namespace kiln::codegen {

class KernelJit;

// One buffer a launch passes: where kiln_entry would find it for the CPU kernel's call.
struct GpuBufferRef {
  enum class Kind {
    input,      // frame inputs[index]
    output,     // frame outputs[index] (results, then updates)
    workspace,  // workspace + offset bytes
    status,     // the frame's KILN_RT_STATUS_WORDS status words (index checks only)
    constant,   // a constant embedded in the module (only in unsupported launches' lists)
  };
  Kind kind = Kind::workspace;
  int64_t index = 0;
  int64_t offset = 0;

  // "in0", "out1", "ws+128", "status" or "const".
  std::string to_string() const;
};

// One step of the launch plan: a kernel launch, or a plan kernel the GPU path cannot lower yet.
struct GpuLaunch {
  int64_t plan_kernel = -1;  // index into KernelPlan::kernels; -1 for the copies of results
  std::string label;         // "kernel 2 (loop: mul, add)" or "copy to output 1"
  // False for a kernel the GPU path does not lower (an f32/f64 GEMM, for cuBLASLt): `reason`
  // says why, `args` lists the plan kernel's inputs then outputs, and there is no symbol.
  bool supported = true;
  std::string reason;
  // The kernel's entry, void symbol(ptr args..., i64 items): every thread strides over
  // [0, items) from blockIdx.x·blockDim.x + threadIdx.x by blockDim.x·gridDim.x.
  std::string symbol;
  std::vector<GpuBufferRef> args;
  int64_t items = 0;
  int block_size = 0;     // suggested threads per block
  int64_t grid_size = 0;  // suggested blocks (threads stride over the items beyond)

  // One line: "kiln_k0_0<<<4, 256>>>(in0, ws+0) items 1000  # kernel 0 (loop: mul)".
  std::string to_string() const;
};

struct GpuOptions {
  // Architectures to emit PTX for, comma-separated as `--gpu-arch` takes them: "sm_80,sm_90".
  // LLVM 19 knows sm_20 ... sm_90a; for newer GPUs emit sm_90 and let the driver JIT it.
  std::string gpu_arch = "sm_80,sm_90";
  // CUDA's libdevice.10.bc, linked for math functions (expf → __nv_expf); by default the one
  // found at build time (empty when there was no CUDA toolkit: then kernels that need a math
  // function fail to compile with a CompileError naming the kernel and the function).
  std::string libdevice = default_libdevice_path();
  int opt_level = 3;          // LLVM pipeline level for the PTX (0..3)
  int block_size = 256;       // suggested threads per block
  int64_t max_blocks = 8192;  // most blocks a launch suggests; threads stride beyond

  // The libdevice path found at build time, or "".
  static std::string default_libdevice_path();
};

// A planned function compiled for NVIDIA GPUs.
struct GpuModule {
  struct Ptx {
    std::string arch;  // "sm_90"
    std::string text;  // the PTX module
  };
  std::vector<Ptx> ptx;             // one per architecture asked for, in that order
  std::vector<GpuLaunch> launches;  // in the order they run
  int64_t workspace_bytes = 0;      // device workspace the launches' "ws+" buffers live in

  // The PTX for `arch`; throws CompileError if it was not compiled.
  const std::string& ptx_for(std::string_view arch) const;
  // Whether every launch is supported (no plan kernel was left to a later path).
  bool fully_supported() const;
  // The launch plan, one line per launch.
  std::string print_launch_plan() const;
};

// Compiles the loop kernels of `function` (as partitioned by `plan` and laid out by `memory`) to
// PTX for each of options.gpu_arch and lists the launches. Kernels the GPU path cannot lower are
// listed as unsupported launches, not skipped. Throws CompileError for an unknown architecture, a
// kernel that cannot be emitted, or a math function with no libdevice to provide it.
GpuModule compile_gpu(const ir::Function& function, const passes::KernelPlan& plan,
                      const passes::MemoryPlan& memory, const GpuOptions& options = {});

// The launches compile_gpu would list, without compiling PTX (no libdevice needed). Throws
// CompileError for a kernel that cannot be emitted.
std::vector<GpuLaunch> gpu_launch_plan(const ir::Function& function, const passes::KernelPlan& plan,
                                       const passes::MemoryPlan& memory,
                                       const GpuOptions& options = {});

// A launch plan as text, one line per launch (GpuLaunch::to_string).
std::string print_launch_plan(const std::vector<GpuLaunch>& launches);

// The blocks and threads per block a host-shim launch runs over; 0 takes the launch's suggestion.
struct GpuGrid {
  int64_t blocks = 0;
  int threads = 0;
};

// The host shim: the same GPU kernels compiled for this CPU, with their thread/block index reads
// bound to thread-local variables that a host loop sets for every (block, thread) of the grid,
// one after another. That is a faithful schedule only for kernels without barriers or shared
// memory, which is all the GPU path emits today (each thread computes its items alone; a
// reduction is one output row or column block per item).
class GpuHostModule {
 public:
  // Compiles the kernels in `jit` (which the code outlives); throws CompileError like compile_gpu.
  GpuHostModule(const ir::Function& function, const passes::KernelPlan& plan,
                const passes::MemoryPlan& memory, KernelJit& jit, const GpuOptions& options = {});
  ~GpuHostModule();
  GpuHostModule(const GpuHostModule&) = delete;
  GpuHostModule& operator=(const GpuHostModule&) = delete;

  const std::vector<GpuLaunch>& launches() const { return launches_; }
  int64_t workspace_bytes() const { return workspace_bytes_; }
  // Runs launch `i` over `frame`'s buffers on `grid`. Throws CompileError for an unsupported one.
  void launch(size_t i, const kiln_frame& frame, const GpuGrid& grid = {}) const;
  // Runs launch `i`'s kernel as cuLaunchKernel would (for a mock driver): `params` points to each
  // parameter's value, the buffers' addresses and then the i64 item count; `grid` is 1-D.
  void launch_with_params(size_t i, void* const* params, const GpuGrid& grid) const;
  // Runs every launch in order, as kiln_entry runs the CPU kernels.
  void run(const kiln_frame& frame, const GpuGrid& grid = {}) const;

 private:
  std::shared_ptr<void> code_;
  std::vector<GpuLaunch> launches_;
  std::vector<void*> entries_;  // per launch, its host wrapper void(ptr* args, i64 items), or null
  int64_t workspace_bytes_ = 0;
};

}  // namespace kiln::codegen
