// The GPU half of an ahead-of-time model instance (aot_model.h, kiln_aot_create_cuda): the
// library's fatbin loaded into a device's primary context, its launch plan bound to it, the state
// resident in device memory, and runs from host or device buffers. Internal to the runtime: the
// instance in aot_model.cpp owns one and maps its exceptions to kiln_aot_last_error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kiln/runtime/aot_model.h"
#include "kiln/runtime/aot_weights.h"
#include "kiln/runtime/executable.h"

namespace kiln::runtime::detail {

// What the instance knows of its function: the same tables kiln_aot_model reads.
struct AotSignature {
  std::string name;
  const std::vector<TensorInfo>* inputs = nullptr;
  const std::vector<TensorInfo>* outputs = nullptr;
  const std::vector<TensorInfo>* state = nullptr;
  const std::vector<TensorInfo>* checks = nullptr;
  const std::vector<int32_t>* update_state = nullptr;
};

class AotCudaModel;

// The GPU half's operations, reached through this table so that a CPU library, whose glue never
// calls kiln_aot_create_cuda, links none of the CUDA runtime. Every member throws (a Failure,
// CudaError, UnavailableError, ...) with the reason, except commit and destroy.
struct AotCudaOps {
  // Loads the driver, retains GPU `device`'s primary context, loads `desc`'s fatbin, parses and
  // binds its launch plan, and uploads the state (`state_host[s]`: state s's bytes on the host).
  AotCudaModel* (*create)(const AotSignature& signature, const kiln_aot_cuda_desc& desc,
                          int32_t device, const std::vector<void*>& state_host);
  // Runs once from host buffers (copied in, and the outputs copied out), writing the check
  // values to `checks_host`; the updates are kept aside until commit. Returns what the kernels
  // reported (a bad gather index).
  RunStatus (*run)(AotCudaModel& model, const void* const* inputs, void* const* outputs,
                   const std::vector<void*>& checks_host);
  // The same from device addresses on the instance's device; returns when the outputs are written.
  RunStatus (*run_device)(AotCudaModel& model, const uint64_t* inputs, const uint64_t* outputs,
                          const std::vector<void*>& checks_host);
  // Makes the last run's updates the state.
  void (*commit)(AotCudaModel& model) noexcept;
  // Copies state `index` to `host` (its size in bytes).
  void (*download)(const AotCudaModel& model, std::size_t index, void* host);
  void (*destroy)(AotCudaModel* model) noexcept;
};

// kiln_aot_create_cuda's work, in aot_model.cpp: a new instance whose GPU half `ops` makes, or
// NULL with kiln_aot_last_error(NULL) set.
kiln_aot_model* create_aot_model(const kiln_aot_desc* desc, const kiln_aot_cuda_desc* cuda,
                                 const char* weights_path, int32_t device, const AotCudaOps& ops);

}  // namespace kiln::runtime::detail

extern "C" {
// For tests only, not in any public header: makes `driver_api` (a kiln::runtime::cuda::DriverApi*)
// and `cublaslt_api` (a CublasLtApi*, or NULL) the driver and cuBLASLt of this copy of the runtime,
// the way ScopedDriverOverride does in-process; both NULL uninstalls them. A test that dlopens an
// AOT library reaches it through the library's NAME_kiln_testing_use_cuda. Returns 0.
int kiln_aot_testing_use_cuda(const void* driver_api, const void* cublaslt_api);
}
