// Tensors on GPUs inside the frontend: copies between host and device memory, the device an op's
// operands put it on, the one place where ops on a GPU run (run_on_device), and the mapping of the
// CUDA driver layer's failures (runtime/cuda) to kiln::Errors.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <source_location>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/frontend/core/device.h"
#include "kiln/frontend/core/tensor.h"
#include "kiln/ir/attrs.h"
#include "kiln/ir/host_tensor.h"
#include "kiln/ir/op.h"

namespace kiln::passes {
struct PipelineResult;
}  // namespace kiln::passes
namespace kiln::codegen {
struct GpuModule;
}  // namespace kiln::codegen
namespace kiln::runtime::cuda {
class Context;
class Module;
class DeviceExecutable;
struct LaunchPlan;
}  // namespace kiln::runtime::cuda

namespace kiln::detail {

// Throws DeviceError (decorated as `op` on `operands` at `loc`) unless `device` can hold tensors:
// the CPU always can; a GPU needs a usable driver and an index below the device count.
void check_device_usable(const Device& device, std::string_view op,
                         std::span<const Tensor> operands, const std::source_location& loc);

// A copy of `value` in new memory on GPU `device` (which must be usable: check_device_usable).
// Driver failures become kiln::Errors decorated as `op` on `operands` at `loc`.
Tensor copy_to_device(const ir::HostTensor& value, const Device& device, std::string_view op,
                      std::span<const Tensor> operands, const std::source_location& loc);
inline Tensor copy_to_device(const ir::HostTensor& value, const Device& device, std::string_view op,
                             std::initializer_list<Tensor> operands,
                             const std::source_location& loc) {
  return copy_to_device(value, device, op,
                        std::span<const Tensor>(operands.begin(), operands.size()), loc);
}
// A copy on the host of `t`, which lives on a GPU; failures are decorated like copy_to_device's.
ir::HostTensor copy_to_host(const Tensor& t, std::string_view op, const std::source_location& loc);

// The device an op on `operands` (concrete, at least one on a GPU) runs on: the GPU they share.
// 0-d tensors on the cpu (scalar operands such as the 1 of `x + 1.f`) go along with any device,
// as in PyTorch. Operands on two devices are a DeviceError naming both, the op and `loc`.
Device operands_device(ir::Op op, std::span<const Tensor> operands,
                       const std::source_location& loc);

// Runs `op` on GPU `device` with operands there (and 0-d cpu ones, copied there first), giving
// results of `out_types` on it: the op's one-node function compiled for the device's architecture
// (codegen::compile_gpu), loaded once per device and signature and cached, then its launch plan.
// A 2-D f32/f64 matmul big enough for a GEMM runs on cuBLASLt instead (a batched one is a
// DeviceError saying so). A bad gather index is the IndexError the CPU raises; driver and
// cuBLASLt failures are decorated as in rethrow_device_failure.
std::vector<Tensor> run_on_device(ir::Op op, std::span<const Tensor> operands,
                                  const ir::Attrs& attrs, std::span<const ir::TensorType> out_types,
                                  const Device& device, const std::source_location& loc);

// Loads the kernels of `gpu`, compiled from `compiled` with PTX for `arch`, into `context`.
using GpuModuleLoader = std::function<std::shared_ptr<const runtime::cuda::Module>(
    const std::shared_ptr<const runtime::cuda::Context>& context,
    const passes::PipelineResult& compiled, const codegen::GpuModule& gpu,
    const std::string& arch)>;
// The loader run_on_device uses: by default, gpu.ptx_for(arch) loaded as PTX with
// runtime::cuda::Module. Tests on the mock driver, which cannot run PTX, install one that builds
// the host shim (codegen::GpuHostModule) and registers its kernels with the MockDriver; an empty
// loader restores the default. Either way the device kernel cache is emptied, since its modules
// came from the previous loader.
void set_gpu_module_loader_for_testing(GpuModuleLoader loader);

// The launch plan of `gpu` in the runtime's terms (runtime/cuda/launch_plan.h): kernel launches
// and cuBLASLt GEMM steps, in order; f32 GEMMs compute in TF32 when `tf32` says so. Every launch
// must be supported.
runtime::cuda::LaunchPlan to_launch_plan(const codegen::GpuModule& gpu, bool tf32 = false);

// `gpu` (compiled from `compiled` with PTX for `arch`) made runnable in `context`: its module
// loaded with `loader` (empty: the current one, gpu_module_loader()) unless the plan launches
// no kernel, and its GEMMs planned with cuBLASLt (f32 ones in TF32 when `tf32`). Throws the
// driver's and cuBLASLt's failures.
std::unique_ptr<runtime::cuda::DeviceExecutable> make_device_executable(
    const std::shared_ptr<const runtime::cuda::Context>& context,
    const passes::PipelineResult& compiled, const codegen::GpuModule& gpu, const std::string& arch,
    bool tf32 = false, const GpuModuleLoader& loader = {});

// The module loader in use: the default one or a test's.
GpuModuleLoader gpu_module_loader();

// The device kernel cache of run_on_device: kernels held, lookups that found one, compiles.
struct DeviceKernelCacheInfo {
  int64_t kernels = 0, hits = 0, compiles = 0;
};
DeviceKernelCacheInfo device_kernel_cache_info();
// Drops every cached device kernel (and its loaded module) and zeroes the counters.
void clear_device_kernel_cache();
// The architecture PTX is compiled for on a GPU of compute capability major.minor: "sm_XY" up to
// sm_90, the newest LLVM 19 knows; "sm_90" for newer GPUs, whose driver compiles that PTX.
std::string ptx_arch_for(int major, int minor);

// Moves the results of a creation op (one without operands) to the innermost DeviceScope's device
// when that is a GPU.
void place_created(std::vector<Tensor>& results, const std::source_location& loc);

// Rethrows the exception being handled, a failure of the CUDA driver layer on `device`, as a
// kiln::Error decorated as `op` on `operands` at `loc`: no usable driver (or no cuBLASLt, for a
// GEMM) is a DeviceError saying why, out of memory a ResourceError naming the sizes, any other CUDA
// error a DeviceError with its code. Exceptions of other kinds are rethrown unchanged. Call only
// inside a catch block.
[[noreturn]] void rethrow_device_failure(const Device& device, std::string_view op,
                                         std::span<const Tensor> operands,
                                         const std::source_location& loc);

}  // namespace kiln::detail
