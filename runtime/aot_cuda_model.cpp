// The GPU half of an ahead-of-time model (aot_cuda_model.h). Linked statically into every AOT
// library with the rest of the runtime: no LLVM, no IR, no fmt; the CUDA driver and cuBLASLt are
// loaded with dlopen on first use (runtime/cuda), so a library built for GPUs loads anywhere and
// says why it cannot run where there is no GPU.
#include "kiln/runtime/aot_cuda_model.h"

#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "kiln/runtime/cuda/cublaslt.h"
#include "kiln/runtime/cuda/device.h"
#include "kiln/runtime/cuda/driver.h"
#include "kiln/runtime/cuda/launch_plan.h"
#include "kiln/runtime/cuda/launch_plan_blob.h"

namespace kiln::runtime::detail {

namespace cu = kiln::runtime::cuda;

class AotCudaModel {
 public:
  std::string name;
  std::vector<int64_t> input_bytes, output_bytes, check_bytes;
  std::vector<int32_t> update_state;
  cu::ContextPtr context;
  std::shared_ptr<const cu::Module> module;  // null when the plan launches no kernel
  std::unique_ptr<cu::DeviceExecutable> executable;
  std::unique_ptr<cu::Stream> stream;
  std::vector<cu::DeviceBuffer> state, updates, checks, input_staging, output_staging;
  std::vector<cu::CUdeviceptr> frame_inputs;   // [inputs..., state...]
  std::vector<cu::CUdeviceptr> frame_outputs;  // [outputs..., checks..., updates...]
};

namespace {

std::vector<int64_t> sizes(const std::vector<TensorInfo>& tensors) {
  std::vector<int64_t> bytes;
  for (const TensorInfo& t : tensors)
    bytes.push_back(t.bytes);
  return bytes;
}

// Device memory for `what`; running out is a Failure that names the model, the tensor and sizes.
cu::DeviceBuffer device_buffer(const cu::ContextPtr& context, int64_t bytes,
                               const std::string& model, const std::string& what) {
  try {
    return cu::DeviceBuffer(context, static_cast<std::size_t>(bytes));
  } catch (const cu::CudaError& e) {
    fail(model + ": cannot allocate device memory for " + what + ": " + e.what());
  }
}

AotCudaModel* create_cuda_model(const AotSignature& sig, const kiln_aot_cuda_desc& desc,
                                int32_t device, const std::vector<void*>& state_host) {
  const std::string& name = sig.name;
  const std::string invalid = name + ": invalid descriptor: ";
  if (desc.plan == nullptr || desc.plan_bytes <= 0) fail(invalid + "no launch plan");
  if (desc.fatbin_bytes < 0 || (desc.fatbin_bytes > 0 && desc.fatbin == nullptr))
    fail(invalid + "a malformed fatbin");
  cu::LaunchPlan plan;
  try {
    plan = cu::parse_launch_plan(desc.plan, static_cast<std::size_t>(desc.plan_bytes));
  } catch (const std::invalid_argument& e) {
    fail(invalid + e.what());
  }
  if (plan.uses_kernels() && desc.fatbin_bytes == 0) fail(invalid + "kernels but no fatbin");

  auto model = std::make_unique<AotCudaModel>();
  model->name = name;
  model->input_bytes = sizes(*sig.inputs);
  model->output_bytes = sizes(*sig.outputs);
  model->check_bytes = sizes(*sig.checks);
  model->update_state = *sig.update_state;

  const std::string where = name + ": GPU " + std::to_string(device);
  const cu::DriverStatus& status = cu::driver_status();
  if (!status.available()) fail(name + ": cannot run on a GPU: " + status.message);
  if (device < 0 || device >= status.device_count) {
    fail(where + " does not exist: the CUDA driver counts " + std::to_string(status.device_count) +
         (status.device_count == 1 ? " device" : " devices"));
  }
  model->context = cu::Context::retain(device);
  const cu::DeviceInfo& info = model->context->info();
  if (plan.uses_kernels()) {
    try {
      model->module = std::make_shared<const cu::Module>(model->context, desc.fatbin);
    } catch (const cu::CudaError& e) {
      fail(where + " (" + info.name + ", " + info.arch() + ") cannot load the library's kernels" +
           (desc.gpu_arch != nullptr ? std::string(", built for ") + desc.gpu_arch : "") + ": " +
           e.what());
    }
  }
  const std::size_t num_inputs = sig.inputs->size() + sig.state->size();
  const std::size_t num_outputs =
      sig.outputs->size() + sig.checks->size() + sig.update_state->size();
  try {
    model->executable = std::make_unique<cu::DeviceExecutable>(
        model->context, model->module, std::move(plan), num_inputs, num_outputs);
  } catch (const std::invalid_argument& e) {
    fail(invalid + e.what());
  }
  model->stream = std::make_unique<cu::Stream>(model->context);

  const std::vector<TensorInfo>& state = *sig.state;
  for (std::size_t s = 0; s < state.size(); ++s) {
    model->state.push_back(
        device_buffer(model->context, state[s].bytes, name, "state '" + state[s].name + "'"));
    if (state[s].bytes > 0)
      model->state.back().copy_from_host(state_host[s], static_cast<std::size_t>(state[s].bytes));
  }
  for (int32_t s : model->update_state) {
    model->updates.push_back(device_buffer(model->context, state[s].bytes, name,
                                           "the update of '" + state[s].name + "'"));
  }
  for (const TensorInfo& t : *sig.checks)
    model->checks.push_back(device_buffer(model->context, t.bytes, name, "check '" + t.name + "'"));
  for (const TensorInfo& t : *sig.inputs) {
    model->input_staging.push_back(
        device_buffer(model->context, t.bytes, name, "input '" + t.name + "'"));
  }
  for (const TensorInfo& t : *sig.outputs) {
    model->output_staging.push_back(
        device_buffer(model->context, t.bytes, name, "output '" + t.name + "'"));
  }
  model->frame_inputs.assign(num_inputs, 0);
  model->frame_outputs.assign(num_outputs, 0);
  return model.release();
}

// Runs the plan on the frame the caller set up, then copies the check values to the host and
// waits for the stream.
RunStatus execute(AotCudaModel& m, const std::vector<void*>& checks_host) {
  const std::size_t ni = m.input_bytes.size(), no = m.output_bytes.size();
  const std::size_t nc = m.check_bytes.size();
  for (std::size_t s = 0; s < m.state.size(); ++s)
    m.frame_inputs[ni + s] = m.state[s].get();
  for (std::size_t c = 0; c < nc; ++c)
    m.frame_outputs[no + c] = m.checks[c].get();
  for (std::size_t u = 0; u < m.updates.size(); ++u)
    m.frame_outputs[no + nc + u] = m.updates[u].get();
  RunStatus status = m.executable->run(m.frame_inputs, m.frame_outputs, m.stream.get());
  for (std::size_t c = 0; c < nc; ++c) {
    if (m.check_bytes[c] > 0) {
      m.checks[c].copy_to_host(checks_host[c], static_cast<std::size_t>(m.check_bytes[c]), 0,
                               m.stream.get());
    }
  }
  m.stream->synchronize();
  return status;
}

RunStatus run_cuda_model(AotCudaModel& model, const void* const* inputs, void* const* outputs,
                         const std::vector<void*>& checks_host) {
  for (std::size_t i = 0; i < model.input_bytes.size(); ++i) {
    if (model.input_bytes[i] > 0) {
      model.input_staging[i].copy_from_host(
          inputs[i], static_cast<std::size_t>(model.input_bytes[i]), 0, model.stream.get());
    }
    model.frame_inputs[i] = model.input_staging[i].get();
  }
  for (std::size_t o = 0; o < model.output_bytes.size(); ++o)
    model.frame_outputs[o] = model.output_staging[o].get();
  RunStatus status = execute(model, checks_host);
  for (std::size_t o = 0; o < model.output_bytes.size(); ++o) {
    if (model.output_bytes[o] > 0) {
      model.output_staging[o].copy_to_host(
          outputs[o], static_cast<std::size_t>(model.output_bytes[o]), 0, model.stream.get());
    }
  }
  model.stream->synchronize();
  return status;
}

RunStatus run_cuda_model_device(AotCudaModel& model, const uint64_t* inputs,
                                const uint64_t* outputs, const std::vector<void*>& checks_host) {
  for (std::size_t i = 0; i < model.input_bytes.size(); ++i)
    model.frame_inputs[i] = static_cast<cu::CUdeviceptr>(inputs[i]);
  for (std::size_t o = 0; o < model.output_bytes.size(); ++o)
    model.frame_outputs[o] = static_cast<cu::CUdeviceptr>(outputs[o]);
  return execute(model, checks_host);
}

void commit_cuda_updates(AotCudaModel& model) noexcept {
  for (std::size_t u = 0; u < model.update_state.size(); ++u)
    std::swap(model.state[static_cast<std::size_t>(model.update_state[u])], model.updates[u]);
}

void download_cuda_state(const AotCudaModel& model, std::size_t index, void* host) {
  const cu::DeviceBuffer& buffer = model.state[index];
  if (buffer.size() > 0) buffer.copy_to_host(host, buffer.size(), 0, model.stream.get());
  model.stream->synchronize();
}

void destroy_cuda_model(AotCudaModel* model) noexcept {
  delete model;
}

constexpr AotCudaOps kCudaOps{create_cuda_model,   run_cuda_model,      run_cuda_model_device,
                              commit_cuda_updates, download_cuda_state, destroy_cuda_model};

}  // namespace

}  // namespace kiln::runtime::detail

extern "C" kiln_aot_model* kiln_aot_create_cuda(const kiln_aot_desc* desc,
                                                const kiln_aot_cuda_desc* cuda,
                                                const char* weights_path, int32_t device) {
  return kiln::runtime::detail::create_aot_model(desc, cuda, weights_path, device,
                                                 kiln::runtime::detail::kCudaOps);
}

namespace {

// The tables kiln_aot_testing_use_cuda installed, while installed.
struct TestingOverrides {
  std::mutex mutex;
  std::unique_ptr<kiln::runtime::cuda::ScopedCublasLtOverride> cublaslt;
  std::unique_ptr<kiln::runtime::cuda::ScopedDriverOverride> driver;
};

TestingOverrides& testing_overrides() {
  static TestingOverrides overrides;
  return overrides;
}

}  // namespace

extern "C" int kiln_aot_testing_use_cuda(const void* driver_api, const void* cublaslt_api) {
  namespace cu = kiln::runtime::cuda;
  TestingOverrides& o = testing_overrides();
  std::lock_guard lock(o.mutex);
  try {
    o.cublaslt.reset();
    o.driver.reset();
    if (driver_api != nullptr) {
      o.driver = std::make_unique<cu::ScopedDriverOverride>(
          *static_cast<const cu::DriverApi*>(driver_api), "test driver");
    }
    if (cublaslt_api != nullptr) {
      o.cublaslt = std::make_unique<cu::ScopedCublasLtOverride>(
          *static_cast<const cu::CublasLtApi*>(cublaslt_api), "test cuBLASLt");
    }
    return 0;
  } catch (...) {
    return 1;
  }
}
