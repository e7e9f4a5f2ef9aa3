// Running compiled GPU kernels on the mock driver (runtime/cuda/mock_driver.h), for tests on
// machines without a GPU: the host shim (codegen::GpuHostModule) of a planned function, as the
// MockKernels the driver calls for the kernels of an image; and MockGpu, which makes the mock
// driver and the mock cuBLASLt the process's and installs a module loader that resolves every
// compiled module to its host shim (the only difference from a real GPU's path).
#pragma once

#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kiln/codegen/compiler.h"
#include "kiln/codegen/gpu.h"
#include "kiln/frontend/core/device_ops.h"
#include "kiln/kiln.h"
#include "kiln/passes/pipeline.h"
#include "kiln/runtime/cuda/cublaslt.h"
#include "kiln/runtime/cuda/device.h"
#include "kiln/runtime/cuda/driver.h"
#include "kiln/runtime/cuda/mock_cublaslt.h"
#include "kiln/runtime/cuda/mock_driver.h"

namespace kiln::testing {

// One JIT for the host shims of a test process.
inline codegen::KernelJit& host_shim_jit() {
  static codegen::KernelJit instance;
  return instance;
}

// The MockKernels of `host`'s kernels, by symbol; each keeps `host` alive.
inline std::map<std::string, runtime::cuda::MockKernel> host_shim_kernels(
    const std::shared_ptr<const codegen::GpuHostModule>& host) {
  std::map<std::string, runtime::cuda::MockKernel> kernels;
  for (size_t i = 0; i < host->launches().size(); ++i) {
    const codegen::GpuLaunch& launch = host->launches()[i];
    if (!launch.supported || launch.gemm || launch.symbol.empty()) continue;
    kernels[launch.symbol] = [host, i](void** params, runtime::cuda::Dim3 grid,
                                       runtime::cuda::Dim3 block) {
      host->launch_with_params(i, params,
                               {static_cast<int64_t>(grid.x), static_cast<int>(block.x)});
    };
  }
  return kernels;
}

// The host shim of `compiled`'s GPU kernels.
inline std::shared_ptr<const codegen::GpuHostModule> host_shim(
    const passes::PipelineResult& compiled) {
  return std::make_shared<const codegen::GpuHostModule>(compiled.function, compiled.kernels,
                                                        compiled.memory, host_shim_jit());
}

// The mock driver (and the mock cuBLASLt) as the process's, with a module loader that resolves
// every compiled module to its host shim.
struct MockGpu {
  explicit MockGpu(runtime::cuda::MockOptions options = {})
      : driver(options), use(driver.api(), "mock") {
    namespace cu = runtime::cuda;
    kiln::detail::set_gpu_module_loader_for_testing(
        [this](const cu::ContextPtr& context, const passes::PipelineResult& compiled,
               const codegen::GpuModule& gpu,
               const std::string& arch) -> std::shared_ptr<const cu::Module> {
          CHECK(arch == "sm_90");  // the mock device's
          CHECK_THAT(gpu.ptx_for(arch), Catch::Contains(".target sm_90"));
          std::shared_ptr<const codegen::GpuHostModule> host = host_shim(compiled);
          REQUIRE(host->launches().size() == gpu.launches.size());
          for (size_t i = 0; i < host->launches().size(); ++i)
            CHECK(host->launches()[i].symbol == gpu.launches[i].symbol);
          ++loads;
          ptx.push_back(gpu.ptx_for(arch));
          driver.register_image(host.get(), host_shim_kernels(host));
          return std::make_shared<const cu::Module>(context, host.get());
        });
  }
  ~MockGpu() { kiln::detail::set_gpu_module_loader_for_testing(nullptr); }

  runtime::cuda::MockDriver driver;
  runtime::cuda::ScopedDriverOverride use;
  runtime::cuda::MockCublasLt lt{driver.api()};
  runtime::cuda::ScopedCublasLtOverride use_lt{lt.api(), "mock cuBLASLt"};
  int loads = 0;
  std::vector<std::string> ptx;  // the PTX of every module loaded, in order
};

// `on_gpu` lives on `device` and `cpu` on the CPU, with one type, and they are equal elementwise
// within `epsilon` relative and `margin` absolute (the shim's math calls need not round like the
// CPU's vectorized ones).
inline void check_on_device(const Tensor& cpu, const Tensor& on_gpu, const Device& device,
                            double epsilon, double margin = -1) {
  REQUIRE(on_gpu.device() == device);
  REQUIRE(cpu.device() == Device::cpu());
  REQUIRE(on_gpu.type() == cpu.type());
  const std::vector<double> want = cast(cpu, f64).to_vector<double>();
  const std::vector<double> got = cast(on_gpu.to(Device::cpu()), f64).to_vector<double>();
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("element " << i);
    CHECK(got[i] == Approx(want[i]).epsilon(epsilon).margin(margin < 0 ? epsilon : margin));
  }
}

// Whether kernels calling math functions (exp, tanh) compile: they need CUDA's libdevice, found
// at build time with the toolkit. Without it their checks WARN and are left out.
inline bool have_libdevice() {
  if (!codegen::GpuOptions::default_libdevice_path().empty()) return true;
  WARN("no libdevice (built without the CUDA toolkit): math kernels are not checked");
  return false;
}

}  // namespace kiln::testing
