// A compiled function's GPU launches as plain data (no LLVM, no ir/), and the executable that runs
// them on a device: the kernels of a loaded Module called in order, each with cuLaunchKernel
// parameters taken from the run's buffers, and the GEMMs between them run by cuBLASLt. codegen
// lists the launches (codegen/gpu.h, GpuLaunch); the frontend converts them to this form, so an
// AOT library can run them with the runtime alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kiln/runtime/cuda/cublaslt.h"
#include "kiln/runtime/cuda/device.h"
#include "kiln/runtime/executable.h"

namespace kiln::runtime::cuda {

// One buffer a kernel parameter points to.
struct LaunchArg {
  enum class Kind {
    input,      // the run's inputs[index]
    output,     // the run's outputs[index]
    workspace,  // the run's workspace, `offset` bytes in
    status,     // KILN_RT_STATUS_WORDS int64 status words (kiln_rt.h), zeroed before the run
  };
  Kind kind = Kind::workspace;
  int64_t index = 0;
  int64_t offset = 0;  // bytes past the buffer's start (not for status)
  // Inside a loop (KernelLaunch::loop): bytes added per trip, so trip i passes the buffer at
  // offset + i·step_bytes (a scan step's row; negative for a reverse scan).
  int64_t step_bytes = 0;
};

// A loop of the plan (a scan over time): the launch carrying it and the `count` - 1 after it run
// `trips` times in order. Loops do not nest.
struct LaunchLoop {
  int64_t trips = 0;
  int64_t count = 0;
};

// A GEMM step: D = epilogue(op(A) · op(B) [+ bias]) by cuBLASLt (GemmDesc says the shape,
// transposes, type and epilogue), once per matrix of a batch. D is packed: the batch's matrices
// follow each other, M·N elements apart. A's and B's matrices are found by broadcasting: batch
// index (i0, i1, ...) over `batch_shape` starts A at Σ i_d · a_batch_strides[d] elements (a
// stride of 0 repeats one matrix). K = 0 fills D with zeros and runs no GEMM (cuBLASLt refuses
// that shape); the epilogue of such a GEMM is then left to a later kernel.
struct GemmCall {
  GemmDesc desc;
  LaunchArg a, b, d;
  LaunchArg bias;                    // read only when desc.epilogue adds a bias: N elements
  std::vector<int64_t> batch_shape;  // empty: one matrix
  std::vector<int64_t> a_batch_strides, b_batch_strides;  // elements, one per batch dimension
  // The number of matrices: the product of batch_shape.
  int64_t batch() const;
};

// One step of a plan: a kernel launch, symbol(pointer per arg..., int64 items) over grid x block
// threads; or, when `gemm` is set, a cuBLASLt GEMM (symbol, args, items, grid and block unused).
struct KernelLaunch {
  std::string symbol;
  std::vector<LaunchArg> args;
  int64_t items = 0;  // a launch of 0 items is skipped
  int64_t grid = 1;   // blocks
  int block = 1;      // threads per block
  std::string label;  // what it computes, for messages
  std::optional<GemmCall> gemm;
  std::optional<LaunchLoop> loop;  // set on a loop's first launch

  bool is_gemm() const { return gemm.has_value(); }
};

// The launches of one compiled function, in the order they run (loops repeated).
struct LaunchPlan {
  std::vector<KernelLaunch> launches;
  std::size_t workspace_bytes = 0;
  // Whether a launch writes the status words (an index check).
  bool uses_status() const;
  // Whether any step is a GEMM (the executable then needs cuBLASLt).
  bool uses_gemm() const;
  // Whether any step is a kernel launch (the executable then needs a loaded Module).
  bool uses_kernels() const;
};

// A LaunchPlan bound to `context`, the Module holding its kernels (looked up once, here; null
// when the plan launches no kernel) and, for its GEMMs, cuBLASLt plans made once, here. Throws
// std::invalid_argument for a launch that cannot be made (an arg out of the plan's buffers, a
// grid or block out of range, a GEMM cuBLASLt cannot describe, a loop that nests or runs past
// the plan or steps a buffer before the workspace's start), CudaError for a symbol the
// module lacks, CublasLtUnavailableError or CublasError when a GEMM cannot be planned.
class DeviceExecutable {
 public:
  DeviceExecutable(ContextPtr context, std::shared_ptr<const Module> module, LaunchPlan plan,
                   std::size_t num_inputs, std::size_t num_outputs);
  ~DeviceExecutable();

  const LaunchPlan& plan() const { return plan_; }
  const ContextPtr& context() const { return context_; }
  // Runs every step on `stream` (nullptr: the default stream); device pointers are one per input
  // and one per output, in the order of the plan's indices. The workspace (the plan's, plus the
  // GEMMs') comes from a pool of idle ones, so a warm executable allocates nothing; concurrent
  // runs get one each. With status words, waits for the launches and returns what the kernels
  // reported; otherwise returns at once (the work runs asynchronously). Throws
  // std::invalid_argument for a wrong number of buffers, CudaError for a failed launch or
  // allocation, CublasError for a failed GEMM.
  RunStatus run(std::span<const CUdeviceptr> inputs, std::span<const CUdeviceptr> outputs,
                const Stream* stream = nullptr) const;
  // Workspaces allocated so far (for tests: a warm executable allocates no more).
  int64_t workspaces_allocated() const;

 private:
  struct Gemms;
  struct Workspace;
  struct Pool;
  CublasLtHandlePtr gemm_handle();
  std::unique_ptr<Workspace> acquire_workspace() const;
  void release_workspace(std::unique_ptr<Workspace> workspace) const;
  void check_loops() const;
  void run_gemm(std::size_t step, CUdeviceptr a, CUdeviceptr b, CUdeviceptr d, CUdeviceptr bias,
                CUdeviceptr workspace, const Stream* stream) const;

  ContextPtr context_;
  std::shared_ptr<const Module> module_;
  LaunchPlan plan_;
  std::size_t num_inputs_ = 0, num_outputs_ = 0;
  std::unique_ptr<Pool> pool_;
  std::vector<Kernel> kernels_;     // per launch (empty for a GEMM)
  std::unique_ptr<Gemms> gemms_;    // null without GEMMs
  CublasLtHandlePtr handle_;        // made for the first GEMM
  std::size_t gemm_workspace_ = 0;  // bytes after the plan's workspace, for cuBLASLt
};

}  // namespace kiln::runtime::cuda
