// A compiled function's GPU launches as plain data (no LLVM, no ir/), and the executable that runs
// them on a device: the kernels of a loaded Module called in order, each with cuLaunchKernel
// parameters taken from the run's buffers. codegen lists the launches (codegen/gpu.h, GpuLaunch);
// the frontend converts them to this form, so an AOT library can run them with the runtime alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

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
  int64_t offset = 0;
};

// One kernel launch: symbol(pointer per arg..., int64 items) over grid x block threads.
struct KernelLaunch {
  std::string symbol;
  std::vector<LaunchArg> args;
  int64_t items = 0;  // a launch of 0 items is skipped
  int64_t grid = 1;   // blocks
  int block = 1;      // threads per block
  std::string label;  // what it computes, for messages
};

// The launches of one compiled function, in the order they run.
struct LaunchPlan {
  std::vector<KernelLaunch> launches;
  std::size_t workspace_bytes = 0;
  // Whether a launch writes the status words (an index check).
  bool uses_status() const;
};

// A LaunchPlan bound to the Module holding its kernels (looked up once, here). Throws
// std::invalid_argument for a launch that cannot be made (an arg out of the plan's buffers, a
// grid or block out of range) and CudaError for a symbol the module lacks.
class DeviceExecutable {
 public:
  DeviceExecutable(std::shared_ptr<const Module> module, LaunchPlan plan, std::size_t num_inputs,
                   std::size_t num_outputs);

  const LaunchPlan& plan() const { return plan_; }
  // Runs every launch on `stream` (nullptr: the default stream) with a workspace of the plan's
  // size allocated for the run; device pointers are one per input and one per output, in the
  // order of the plan's indices. With status words, waits for the launches and returns what
  // the kernels reported; otherwise returns at once (the launches run asynchronously). Throws
  // std::invalid_argument for a wrong number of buffers, CudaError for a failed launch or
  // allocation.
  RunStatus run(std::span<const CUdeviceptr> inputs, std::span<const CUdeviceptr> outputs,
                const Stream* stream = nullptr) const;

 private:
  std::shared_ptr<const Module> module_;
  LaunchPlan plan_;
  std::size_t num_inputs_ = 0, num_outputs_ = 0;
  std::vector<Kernel> kernels_;  // per launch
};

}  // namespace kiln::runtime::cuda
