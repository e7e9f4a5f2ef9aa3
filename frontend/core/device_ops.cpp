#include "kiln/frontend/core/device_ops.h"

#include <fmt/format.h>

#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <unordered_map>

#include "kiln/codegen/gpu.h"
#include "kiln/codegen/gpu_cache.h"
#include "kiln/frontend/core/compile.h"
#include "kiln/frontend/core/eager.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/ir/ops/matmul.h"
#include "kiln/passes/pipeline.h"
#include "kiln/runtime/cuda/cubin.h"
#include "kiln/runtime/cuda/cublaslt.h"
#include "kiln/runtime/cuda/device.h"
#include "kiln/runtime/cuda/driver.h"
#include "kiln/runtime/cuda/launch_plan.h"

namespace kiln::detail {

namespace cu = runtime::cuda;

namespace {

// ---- the device kernel cache -----------------------------------------------------------------

// What a device kernel is specialised for: the device (its context: a new driver, such as a
// test's mock, makes a new one), the op, its attributes and its operands' types.
struct DeviceKernelKey {
  int device = 0;
  const void* context = nullptr;
  ir::Op op;
  ir::Attrs attrs;
  std::vector<ir::TensorType> params;
  bool tf32 = false;  // cuda::tf32_enabled() when it was compiled: its GEMMs' compute type

  bool operator==(const DeviceKernelKey& other) const {
    return device == other.device && context == other.context && op == other.op &&
           tf32 == other.tf32 && params == other.params && attrs == other.attrs;
  }
};

struct DeviceKernelKeyHash {
  // Attributes are left out: keys that differ only in them are few and compare unequal.
  size_t operator()(const DeviceKernelKey& key) const {
    size_t h = std::hash<int>()(key.device) ^ (static_cast<size_t>(key.op) << 8);
    for (const ir::TensorType& t : key.params) {
      h = h * 1000003u + static_cast<size_t>(t.dtype) + 77;
      for (int64_t d : t.shape.dims())
        h = h * 1000003u + static_cast<size_t>(d);
    }
    return h;
  }
};

// One op compiled for one device and signature: its launch plan (kernels and cuBLASLt GEMMs).
struct DeviceKernel {
  passes::PipelineResult compiled;  // index errors are located in it
  std::unique_ptr<cu::DeviceExecutable> executable;
};

// Loads the PTX as a cubin the driver's linker made, kept in the disk cache under the PTX, the
// device's architecture and the driver's version, so a later process skips the driver's JIT. If
// the linker refuses, cuModuleLoadData gets the PTX itself (and reports what is wrong with it).
GpuModuleLoader default_loader() {
  return [](const cu::ContextPtr& context, const passes::PipelineResult&,
            const codegen::GpuModule& gpu,
            const std::string& arch) -> std::shared_ptr<const cu::Module> {
    const std::string& ptx = gpu.ptx_for(arch);
    std::string cubin;
    try {
      cubin = cu::cached_cubin(*context, ptx);
    } catch (const cu::CudaError&) {
      cubin.clear();
    }
    return std::make_shared<const cu::Module>(
        context, cubin.empty() ? static_cast<const void*>(ptx.c_str()) : cubin.data());
  };
}

// The op's one-node function, planned as the CPU eager path plans it, compiled for `context`'s
// device.
std::shared_ptr<const DeviceKernel> compile_device_kernel(const DeviceKernelKey& key,
                                                          const cu::ContextPtr& context,
                                                          const GpuModuleLoader& loader) {
  auto kernel = std::make_shared<DeviceKernel>();
  kernel->compiled = plan_one_op(key.op, key.attrs, key.params, passes::ConvLowering::im2col);
  const passes::PipelineResult& compiled = kernel->compiled;
  const cu::DeviceInfo& info = context->info();
  codegen::GpuOptions gpu_options;
  gpu_options.gpu_arch = ptx_arch_for(info.major, info.minor);
  const codegen::GpuModule gpu = codegen::compile_gpu_cached(compiled.function, compiled.kernels,
                                                             compiled.memory, gpu_options);
  kernel->executable =
      make_device_executable(context, compiled, gpu, gpu_options.gpu_arch, key.tf32, loader);
  return kernel;
}

class DeviceKernelCache {
 public:
  std::shared_ptr<const DeviceKernel> get(const DeviceKernelKey& key,
                                          const cu::ContextPtr& context) {
    GpuModuleLoader loader;
    {
      std::lock_guard lock(mutex_);
      auto it = map_.find(key);
      if (it != map_.end()) {
        order_.splice(order_.begin(), order_, it->second.position);
        ++info_.hits;
        return it->second.kernel;
      }
      loader = loader_ ? loader_ : default_loader();
      if (capacity_ == 0) capacity_ = eager_capacity_from_env();
    }
    // Compiled outside the lock, as the CPU cache does; a second thread missing the same key
    // compiles too, and its result is dropped.
    std::shared_ptr<const DeviceKernel> kernel = compile_device_kernel(key, context, loader);
    std::lock_guard lock(mutex_);
    ++info_.compiles;
    auto [it, inserted] = map_.try_emplace(key, Slot{kernel, {}});
    if (!inserted) return it->second.kernel;
    order_.push_front(&it->first);
    it->second.position = order_.begin();
    while (static_cast<int64_t>(map_.size()) > capacity_) {
      map_.erase(*order_.back());
      order_.pop_back();
    }
    return kernel;
  }

  GpuModuleLoader loader() {
    std::lock_guard lock(mutex_);
    return loader_ ? loader_ : default_loader();
  }

  void set_loader(GpuModuleLoader loader) {
    std::lock_guard lock(mutex_);
    loader_ = std::move(loader);
    clear_locked();
  }

  DeviceKernelCacheInfo info() {
    std::lock_guard lock(mutex_);
    DeviceKernelCacheInfo info = info_;
    info.kernels = static_cast<int64_t>(map_.size());
    return info;
  }

  void clear() {
    std::lock_guard lock(mutex_);
    clear_locked();
  }

 private:
  struct Slot {
    std::shared_ptr<const DeviceKernel> kernel;  // shared: a running op keeps an evicted one
    std::list<const DeviceKernelKey*>::iterator position;
  };

  void clear_locked() {
    map_.clear();
    order_.clear();
    info_ = {};
  }

  std::mutex mutex_;
  std::unordered_map<DeviceKernelKey, Slot, DeviceKernelKeyHash> map_;
  std::list<const DeviceKernelKey*> order_;  // most recently used first
  DeviceKernelCacheInfo info_;
  int64_t capacity_ = 0;    // 0: not read from KILN_EAGER_CACHE_SIZE yet
  GpuModuleLoader loader_;  // empty: default_loader()
};

DeviceKernelCache& device_cache() {
  static DeviceKernelCache* instance = new DeviceKernelCache();  // kernels may run during exit
  return *instance;
}

// Ops that only reinterpret their operand's bytes: their result shares its device memory.
bool is_view(ir::Op op) {
  return op == ir::Op::reshape || op == ir::Op::squeeze || op == ir::Op::expand_dims;
}

// Results of `out_types` on `device`, in new memory of `context`.
std::vector<Tensor> allocate_results(std::span<const ir::TensorType> out_types,
                                     const cu::ContextPtr& context, const Device& device) {
  std::vector<Tensor> results;
  for (const ir::TensorType& type : out_types) {
    auto buffer = std::make_shared<cu::DeviceBuffer>(context, type.nbytes());
    results.push_back(TensorAccess::on_device(type, device, std::move(buffer)));
  }
  return results;
}

cu::CUdeviceptr pointer(const Tensor& t) {
  return TensorAccess::device_buffer(t)->get();
}

// Runs `kernel` (a launch plan or a GEMM) on `operands`; throws the CPU's IndexError for a bad
// index the kernels report, and the driver's and cuBLASLt's failures as they come.
std::vector<Tensor> run_kernel(const DeviceKernel& kernel, std::span<const Tensor> operands,
                               std::span<const ir::TensorType> out_types,
                               const cu::ContextPtr& context, const Device& device, ir::Op op,
                               const std::source_location& loc) {
  std::vector<Tensor> results = allocate_results(out_types, context, device);
  // 0-d cpu operands (the 1 of x + 1.f) go to the device first.
  std::vector<Tensor> moved;
  std::vector<cu::CUdeviceptr> inputs;
  for (const Tensor& t : operands) {
    if (TensorAccess::device_buffer(t) == nullptr) {
      moved.push_back(
          copy_to_device(*TensorAccess::host_value(t), device, ir::op_name(op), operands, loc));
      inputs.push_back(pointer(moved.back()));
    } else {
      inputs.push_back(pointer(t));
    }
  }
  std::vector<cu::CUdeviceptr> outputs;
  for (const Tensor& t : results)
    outputs.push_back(pointer(t));
  const runtime::RunStatus status = kernel.executable->run(inputs, outputs);
  if (status.failed()) throw_index_error(kernel.compiled, status);
  return results;
}

}  // namespace

Tensor copy_to_device(const ir::HostTensor& value, const Device& device, std::string_view op,
                      std::span<const Tensor> operands, const std::source_location& loc) {
  KILN_CHECK(device.is_cuda(), "copy_to_device to the cpu");
  try {
    auto buffer =
        std::make_shared<cu::DeviceBuffer>(cu::Context::retain(device.index()), value.nbytes());
    if (value.nbytes() != 0) buffer->copy_from_host(value.raw(), value.nbytes());
    return TensorAccess::on_device(value.type(), device, std::move(buffer));
  } catch (const std::runtime_error&) {
    rethrow_device_failure(device, op, operands, loc);
  }
}

ir::HostTensor copy_to_host(const Tensor& t, std::string_view op, const std::source_location& loc) {
  const std::shared_ptr<cu::DeviceBuffer>& buffer = TensorAccess::device_buffer(t);
  KILN_CHECK(buffer != nullptr, "copy_to_host of a tensor that is not on a GPU");
  // Allocated before the copy, so host memory that cannot be had is the host's ResourceError.
  ir::HostTensor host = ir::HostTensor::uninitialized(t.type());
  try {
    if (host.nbytes() != 0) buffer->copy_to_host(host.raw(), host.nbytes());
  } catch (const std::runtime_error&) {
    rethrow_device_failure(t.device(), op, {&t, 1}, loc);
  }
  return host;
}

Device operands_device(ir::Op op, std::span<const Tensor> operands,
                       const std::source_location& loc) {
  // The first operand on a GPU decides; then every operand must be there too, or be a 0-d cpu
  // tensor, which goes along (a scalar is an argument rather than data to move).
  size_t first = 0;
  while (first < operands.size() && operands[first].device().is_cpu())
    ++first;
  KILN_CHECK(first < operands.size(), "operands_device without an operand on a GPU");
  const Device device = operands[first].device();
  for (size_t i = 0; i < operands.size(); ++i) {
    const Device other = operands[i].device();
    if (other == device || (other.is_cpu() && operands[i].rank() == 0)) continue;
    const size_t a = std::min(i, first), b = std::max(i, first);
    raise<DeviceError>(
        ir::op_name(op), operands,
        fmt::format("operands on {} and {} (operand {} is on {}, operand {} on {}); move them to "
                    "one device with .to(...)",
                    operands[a].device().to_string(), operands[b].device().to_string(), a,
                    operands[a].device().to_string(), b, operands[b].device().to_string()),
        loc);
  }
  return device;
}

std::vector<Tensor> run_on_device(ir::Op op, std::span<const Tensor> operands,
                                  const ir::Attrs& attrs, std::span<const ir::TensorType> out_types,
                                  const Device& device, const std::source_location& loc) {
  if (is_view(op) && out_types.size() == 1 && operands.size() == 1) {
    return {
        TensorAccess::on_device(out_types[0], device, TensorAccess::device_buffer(operands[0]))};
  }
  std::shared_ptr<const DeviceKernel> kernel;
  std::vector<Tensor> results;
  try {
    // The context of the operands' memory: the device's primary context, retained already.
    cu::ContextPtr context;
    for (const Tensor& t : operands) {
      if (const auto& buffer = TensorAccess::device_buffer(t)) {
        context = buffer->context();
        break;
      }
    }
    if (context == nullptr) context = cu::Context::retain(device.index());
    DeviceKernelKey key{device.index(), context->handle(), op, attrs, {}, cuda::tf32_enabled()};
    key.params.reserve(operands.size());
    for (const Tensor& t : operands)
      key.params.push_back(t.type());
    kernel = device_cache().get(key, context);
    results = run_kernel(*kernel, operands, out_types, context, device, op, loc);
  } catch (InternalError&) {
    throw;
  } catch (DeviceError&) {
    throw;  // copy_to_device's, decorated already
  } catch (ResourceError&) {
    throw;
  } catch (Error& e) {
    // As apply decorates the CPU path's failures: the operands, then the user's line.
    std::vector<TensorType> types;
    for (const Tensor& t : operands)
      types.push_back(t.type());
    if (!types.empty()) e.add_context(fmt::format("operands: {}", ir::types_to_string(types)));
    add_user_location(e, loc);
    throw;
  } catch (const std::invalid_argument& e) {
    // A GEMM cuBLASLt cannot describe (a dimension past 2^31 - 1).
    raise<DeviceError>(ir::op_name(op), operands,
                       fmt::format("{} cannot run this: {}", device.to_string(), e.what()), loc);
  } catch (const std::runtime_error&) {
    rethrow_device_failure(device, ir::op_name(op), operands, loc);
  }
  return results;
}

cu::LaunchPlan to_launch_plan(const codegen::GpuModule& gpu, bool tf32) {
  // codegen sees only runtime's ABI header (DESIGN.md), so it lists the launch plan's buffer
  // kinds and cuBLASLt's epilogues again, in the same order (plus constants, never a parameter).
  using Ref = codegen::GpuBufferRef::Kind;
  using Arg = cu::LaunchArg::Kind;
  static_assert(static_cast<int>(Ref::input) == static_cast<int>(Arg::input) &&
                static_cast<int>(Ref::output) == static_cast<int>(Arg::output) &&
                static_cast<int>(Ref::workspace) == static_cast<int>(Arg::workspace) &&
                static_cast<int>(Ref::status) == static_cast<int>(Arg::status));
  using Epilogue = codegen::GpuGemm::Epilogue;
  using CuEpilogue = cu::GemmEpilogue;
  static_assert(static_cast<int>(Epilogue::none) == static_cast<int>(CuEpilogue::none) &&
                static_cast<int>(Epilogue::bias) == static_cast<int>(CuEpilogue::bias) &&
                static_cast<int>(Epilogue::relu) == static_cast<int>(CuEpilogue::relu) &&
                static_cast<int>(Epilogue::bias_relu) == static_cast<int>(CuEpilogue::bias_relu));
  auto convert = [](const codegen::GpuBufferRef& ref) {
    KILN_CHECK(ref.kind != Ref::constant, "a launch passes a constant as a parameter");
    cu::LaunchArg arg;
    arg.index = ref.index;
    arg.offset = ref.offset;
    arg.step_bytes = ref.step_bytes;
    arg.kind = static_cast<Arg>(ref.kind);
    return arg;
  };
  cu::LaunchPlan plan;
  plan.workspace_bytes = static_cast<size_t>(gpu.workspace_bytes);
  for (const codegen::GpuLaunch& launch : gpu.launches) {
    KILN_CHECK(launch.supported, "to_launch_plan of an unsupported launch");
    cu::KernelLaunch l;
    l.label = launch.label;
    if (launch.loop) l.loop = cu::LaunchLoop{launch.loop->trips, launch.loop->count};
    if (const std::optional<codegen::GpuGemm>& g = launch.gemm) {
      cu::GemmCall call;
      call.desc.type = g->dtype == ir::DType::f64 ? cu::GemmType::f64 : cu::GemmType::f32;
      call.desc.m = g->m;
      call.desc.n = g->n;
      call.desc.k = g->k;
      call.desc.transpose_a = g->transpose_a;
      call.desc.transpose_b = g->transpose_b;
      call.desc.alignment = static_cast<uint32_t>(g->alignment);
      call.desc.tf32 = g->dtype == ir::DType::f32 && tf32;
      call.desc.epilogue = static_cast<CuEpilogue>(g->epilogue);
      call.a = convert(g->a);
      call.b = convert(g->b);
      call.d = convert(g->d);
      if (call.desc.epilogue == cu::GemmEpilogue::bias ||
          call.desc.epilogue == cu::GemmEpilogue::bias_relu)
        call.bias = convert(g->bias);
      call.batch_shape = g->batch_shape;
      call.a_batch_strides = g->a_batch_strides;
      call.b_batch_strides = g->b_batch_strides;
      l.gemm = std::move(call);
    } else {
      l.symbol = launch.symbol;
      l.items = launch.items;
      l.grid = launch.grid_size;
      l.block = launch.block_size;
      for (const codegen::GpuBufferRef& ref : launch.args)
        l.args.push_back(convert(ref));
    }
    plan.launches.push_back(std::move(l));
  }
  return plan;
}

std::unique_ptr<cu::DeviceExecutable> make_device_executable(const cu::ContextPtr& context,
                                                             const passes::PipelineResult& compiled,
                                                             const codegen::GpuModule& gpu,
                                                             const std::string& arch, bool tf32,
                                                             const GpuModuleLoader& loader) {
  cu::LaunchPlan plan = to_launch_plan(gpu, tf32);
  // A plan of GEMMs alone loads no module.
  std::shared_ptr<const cu::Module> module;
  if (plan.uses_kernels())
    module = (loader ? loader : gpu_module_loader())(context, compiled, gpu, arch);
  const size_t num_outputs =
      compiled.function.outputs().size() + compiled.function.updates().size();
  return std::make_unique<cu::DeviceExecutable>(context, std::move(module), std::move(plan),
                                                compiled.function.params().size(), num_outputs);
}

GpuModuleLoader gpu_module_loader() {
  return device_cache().loader();
}

void set_gpu_module_loader_for_testing(GpuModuleLoader loader) {
  device_cache().set_loader(std::move(loader));
}

DeviceKernelCacheInfo device_kernel_cache_info() {
  return device_cache().info();
}

void clear_device_kernel_cache() {
  device_cache().clear();
}

std::string ptx_arch_for(int major, int minor) {
  if (major > 9 || (major == 9 && minor > 0)) return "sm_90";
  return fmt::format("sm_{}{}", major, minor);
}

void place_created(std::vector<Tensor>& results, const std::source_location& loc) {
  const Device device = current_device();
  if (device.is_cpu()) return;
  for (Tensor& t : results)
    t = t.to(device, loc);
}

void rethrow_device_failure(const Device& device, std::string_view op,
                            std::span<const Tensor> operands, const std::source_location& loc) {
  try {
    throw;
  } catch (const cu::UnavailableError& e) {
    raise<DeviceError>(op, operands,
                       fmt::format("{} cannot be used ({}): {}", device.to_string(),
                                   cu::reason_name(e.reason()), e.what()),
                       loc);
  } catch (const cu::CublasLtUnavailableError& e) {
    raise<DeviceError>(op, operands,
                       fmt::format("{} cannot run GEMMs: {}", device.to_string(), e.what()), loc);
  } catch (const cu::CudaError& e) {
    if (e.code() == cu::CUDA_ERROR_OUT_OF_MEMORY) {
      raise<ResourceError>(
          op, operands, fmt::format("out of memory on {}: {}", device.to_string(), e.what()), loc);
    }
    raise<DeviceError>(op, operands, fmt::format("{} failed: {}", device.to_string(), e.what()),
                       loc);
  }
}

}  // namespace kiln::detail
