#include "kiln/frontend/core/device_function.h"

#include <fmt/format.h>

#include <source_location>
#include <stdexcept>

#include "kiln/codegen/gpu.h"
#include "kiln/codegen/gpu_cache.h"
#include "kiln/frontend/core/compile.h"
#include "kiln/frontend/core/device_ops.h"
#include "kiln/frontend/core/inline_list.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/passes/pipeline.h"
#include "kiln/runtime/cuda/device.h"
#include "kiln/runtime/cuda/launch_plan.h"

namespace kiln::detail {

namespace cu = runtime::cuda;

struct DeviceFunction::State {
  Device device;
  passes::PipelineResult compiled;
  std::string launch_plan;  // printed, for compiled_ir()
  std::unique_ptr<cu::DeviceExecutable> executable;
  std::string who;  // "@name"
};

namespace {

// The driver's and cuBLASLt's failures while compiling or running `who` on `device`, as
// kiln::Errors; Kiln's own errors pass through.
template <typename Body>
auto on_device(const Device& device, const std::string& who, Body&& body) {
  try {
    return body();
  } catch (Error&) {
    throw;
  } catch (const std::invalid_argument& e) {
    // A GEMM cuBLASLt cannot describe (a dimension past 2^31 - 1).
    throw DeviceError(fmt::format("{}: {} cannot run this: {}", who, device.to_string(), e.what()));
  } catch (const std::runtime_error&) {
    rethrow_device_failure(device, who, {}, std::source_location());
  }
}

}  // namespace

DeviceFunction::DeviceFunction(ir::Function function, const Device& device)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.device = device;
  s.who = fmt::format("@{}", function.name());
  passes::PipelineOptions options;
  options.conv_lowering = passes::ConvLowering::im2col;  // cuBLASLt runs the GEMMs
  s.compiled = passes::run_pipeline(std::move(function), options);
  on_device(device, s.who, [&] {
    cu::ContextPtr context = cu::Context::retain(device.index());
    const cu::DeviceInfo& info = context->info();
    codegen::GpuOptions options;
    options.gpu_arch = ptx_arch_for(info.major, info.minor);
    const codegen::GpuModule gpu = codegen::compile_gpu_cached(
        s.compiled.function, s.compiled.kernels, s.compiled.memory, options);
    s.launch_plan = gpu.print_launch_plan();
    s.executable =
        make_device_executable(context, s.compiled, gpu, options.gpu_arch, cuda::tf32_enabled());
    return 0;
  });
}

DeviceFunction::~DeviceFunction() = default;

const Device& DeviceFunction::device() const {
  return state_->device;
}

std::vector<Tensor> DeviceFunction::run(std::span<const Tensor* const> args) const {
  const State& s = *state_;
  const ir::Function& f = s.compiled.function;
  if (args.size() != f.params().size()) {
    throw TypeError(
        fmt::format("{} takes {} arguments, got {}", s.who, f.params().size(), args.size()));
  }
  for (size_t i = 0; i < args.size(); ++i) {
    const ir::Value* p = f.param(i);
    if (args[i]->type() != p->type()) {
      throw TypeError(fmt::format("{}: argument %{} must be {}, got {}", s.who, p->name(),
                                  p->type().to_string(), args[i]->type().to_string()));
    }
  }
  const cu::ContextPtr& context = s.executable->context();
  return on_device(s.device, s.who, [&] {
    // 0-d cpu arguments (plain numbers) go to the device first.
    std::vector<Tensor> moved;
    moved.reserve(args.size());
    InlineList<cu::CUdeviceptr> inputs(args.size());
    for (size_t i = 0; i < args.size(); ++i) {
      const Tensor* t = args[i];
      if (TensorAccess::device_buffer(*t) == nullptr) {
        KILN_CHECK(t->rank() == 0, "a DeviceFunction argument on the cpu that is not 0-d");
        moved.push_back(copy_to_device(*TensorAccess::host_value(*t), s.device, s.who,
                                       std::span<const Tensor>(), std::source_location()));
        t = &moved.back();
      }
      inputs[i] = TensorAccess::device_buffer(*t)->get();
    }
    std::vector<Tensor> results;
    const size_t count = f.outputs().size() + f.updates().size();
    results.reserve(count);
    InlineList<cu::CUdeviceptr> outputs(count);
    for (size_t i = 0; i < count; ++i) {
      const ir::Value* v =
          i < f.outputs().size() ? f.outputs()[i] : f.updates()[i - f.outputs().size()].value;
      auto buffer = std::make_shared<cu::DeviceBuffer>(context, v->type().nbytes());
      outputs[i] = buffer->get();
      results.push_back(TensorAccess::on_device(v->type(), s.device, std::move(buffer)));
    }
    const runtime::RunStatus status = s.executable->run(inputs.span(), outputs.span());
    if (status.failed()) throw_index_error(s.compiled, status);
    return results;
  });
}

std::string DeviceFunction::compiled_ir() const {
  return passes::print_pipeline_result(state_->compiled) + "\nGPU launch plan (" +
         state_->device.to_string() + "):\n" + state_->launch_plan;
}

}  // namespace kiln::detail
