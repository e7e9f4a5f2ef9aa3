// kiln::function on a GPU: a traced function compiled for one device (pass pipeline, GPU kernels
// and cuBLASLt GEMMs: codegen/gpu.h) and run there by a runtime::cuda::DeviceExecutable.
// function.cpp makes one per signature whose tensors live on a GPU.
#pragma once

#include <memory>
#include <span>
#include <string>

#include "kiln/frontend/core/device.h"
#include "kiln/frontend/core/tensor.h"
#include "kiln/ir/function.h"

namespace kiln::detail {

class DeviceFunction {
 public:
  // Runs the pass pipeline on `function` and compiles it for `device`, a usable GPU (see
  // check_device_usable), for that GPU's architecture. Throws CompileError if code generation
  // fails and the driver's and cuBLASLt's failures as kiln::Errors (rethrow_device_failure).
  DeviceFunction(ir::Function function, const Device& device);
  ~DeviceFunction();
  DeviceFunction(const DeviceFunction&) = delete;
  DeviceFunction& operator=(const DeviceFunction&) = delete;

  const Device& device() const;
  // Runs on `args`, one per parameter, of the parameters' types, on the device (0-d cpu tensors
  // are copied there). Returns the results, then the updates, on the device, in new memory. A
  // bad index the kernels report is the interpreter's IndexError; driver failures are
  // DeviceErrors (ResourceError for out of memory) naming the function. May run on several
  // threads at once.
  std::vector<Tensor> run(std::span<const Tensor* const> args) const;
  // The IR after the pass pipeline with the kernel plan, then the GPU launch plan.
  std::string compiled_ir() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace kiln::detail
