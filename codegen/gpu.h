// GPU code generation (DESIGN.md, "Codegen and runtime"): the loop kernels of a planned function
// become NVPTX kernels built from the same kernel_loops/elemental code as the CPU's, each loop's
// range body under a thread/block index mapping, plus the launch plan that runs them in order.
// The same kernels also compile for the host (the "host shim"), so their logic runs and is tested
// on machines without a GPU. Loop kernels take no VectorUnit (only the CPU's GEMM does): the GPU
// build drops their prefer-vector-width hint, and each thread runs scalar code.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
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
  int64_t offset = 0;  // bytes past the buffer's start (of any kind but status and constant)
  // Inside a loop (GpuLaunch::loop): bytes added per trip, so trip i passes
  // start + offset + i·step_bytes (a scan's per-step rows; negative for a reverse scan).
  int64_t step_bytes = 0;

  // "in0", "out1", "ws+128", "status" or "const"; "in2+96-32t" with an offset and a step.
  std::string to_string() const;
};

// A loop of the launch plan (a scan's steps): the launch that carries it and the `count` - 1
// after it run `trips` times in order, trip i with each buffer at its offset + i·step_bytes.
struct GpuLoop {
  int64_t trips = 0;
  int64_t count = 0;
};

// A GEMM the launch plan runs through cuBLASLt instead of a kernel: an f32/f64 matmul plan kernel
// big enough for the CPU's packed GEMM, with the bias add and ReLU that follow it fused into
// cuBLASLt's epilogue; the rest of such a kernel's epilogue is a loop kernel launched right after,
// in place on D. D[batch..., m, n] = epilogue(op(A) · op(B)), row-major, D packed; A's and B's
// matrices of batch index (i0, i1, ...) start Σ i_d · *_batch_strides[d] elements into their
// buffers (0: broadcast). K = 0 fills D with zeros (cuBLASLt refuses it), and then nothing is
// fused: the whole epilogue is the loop kernel.
struct GpuGemm {
  enum class Epilogue { none, bias, relu, bias_relu };
  ir::DType dtype = ir::DType::f32;  // f32 or f64
  int64_t m = 0, n = 0, k = 0;
  bool transpose_a = false, transpose_b = false;  // A stored [k, m], B stored [n, k]
  Epilogue epilogue = Epilogue::none;
  GpuBufferRef a, b, d;
  GpuBufferRef bias;  // with a bias epilogue: n elements
  std::vector<int64_t> batch_shape;
  std::vector<int64_t> a_batch_strides, b_batch_strides;
  int alignment = 16;  // bytes every matrix pointer of every batch index is aligned to

  // "gemm f32 D[128,10] = A[128,784] · B[784,10] + bias, relu (a=in0 b=in1 bias=in2 d=out0)".
  std::string to_string() const;
};

// One step of the launch plan: a kernel launch, a cuBLASLt GEMM, or a plan kernel the GPU path
// cannot lower yet.
struct GpuLaunch {
  int64_t plan_kernel = -1;  // index into KernelPlan::kernels; -1 for the copies of results
  std::string label;         // "kernel 2 (loop: mul, add)" or "copy to output 1"
  // False for a kernel the GPU path does not lower (an f32/f64 GEMM, for cuBLASLt): `reason`
  // says why, `args` lists the plan kernel's inputs then outputs, and there is no symbol.
  bool supported = true;
  std::string reason;
  // The kernel's entry, void symbol(ptr args..., i64 items): every thread strides over
  // [0, items) from blockIdx.x·blockDim.x + threadIdx.x by blockDim.x·gridDim.x; in a cooperative
  // reduction or softmax (gpu_reduce.h) each warp or block takes an item (a row or a column tile)
  // at a time instead. Any grid and any block of up to 1024 threads computes the same result.
  std::string symbol;
  std::vector<GpuBufferRef> args;
  int64_t items = 0;
  int block_size = 0;     // suggested threads per block
  int64_t grid_size = 0;  // suggested blocks (threads stride over the items beyond)
  // Set for a GEMM step (supported, no symbol; items, block_size and grid_size unused).
  std::optional<GpuGemm> gemm;
  // Set on the first launch of a loop (loops do not nest).
  std::optional<GpuLoop> loop;

  // One line: "kiln_k0_0<<<4, 256>>>(in0, ws+0) items 1000  # kernel 0 (loop: mul)", after
  // "loop 30x7: " on a loop's first launch.
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
  // Reductions and softmax whose outputs each fold at least warp_reduce_elements elements run
  // cooperatively (codegen/gpu_reduce.h): a warp per row, a block per row from
  // block_reduce_elements on, and a block per tile of 32 columns for a reduction that keeps the
  // innermost axis. Shorter ones run a thread per output. (0 and 0: every one cooperatively.)
  int64_t warp_reduce_elements = 32;
  int64_t block_reduce_elements = 2048;

  // The libdevice path found at build time, or "".
  static std::string default_libdevice_path();
};

// The names in a gpu_arch list ("sm_80, sm_90,sm_80" → {"sm_80", "sm_90"}): trimmed of spaces and
// tabs, without empty or repeated ones, in order; the names themselves are not checked.
std::vector<std::string> split_gpu_archs(std::string_view list);

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
// bound to thread-local variables that a host loop sets for every (block, thread) of the grid.
// Kernels without barriers run one (block, thread) after another. Kernels whose threads wait for
// each other (the cooperative reductions and softmax of gpu_reduce.h) run block by block under a
// scheduler that runs each thread of the block as a fiber, switching at every barrier and warp
// shuffle; shared memory is one buffer that the blocks use in turn.
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
  // Runs launch `i` over `frame`'s buffers on `grid`, as trip `trip` of its loop (buffers at
  // offset + trip·step_bytes). Throws CompileError for an unsupported one.
  void launch(size_t i, const kiln_frame& frame, const GpuGrid& grid = {}, int64_t trip = 0) const;
  // Runs launch `i`'s kernel as cuLaunchKernel would (for a mock driver): `params` points to each
  // parameter's value, the buffers' addresses and then the i64 item count; `grid` is 1-D.
  void launch_with_params(size_t i, void* const* params, const GpuGrid& grid) const;
  // Runs every launch in order, loops repeated, as kiln_entry runs the CPU kernels.
  void run(const kiln_frame& frame, const GpuGrid& grid = {}) const;

 private:
  std::shared_ptr<void> code_;
  std::vector<GpuLaunch> launches_;
  std::vector<void*> entries_;  // per launch, its host wrapper void(ptr* args, i64 items), or null
  std::vector<bool> synchronizes_;  // per launch: its threads meet at barriers and shuffles
  int64_t workspace_bytes_ = 0;
};

}  // namespace kiln::codegen
