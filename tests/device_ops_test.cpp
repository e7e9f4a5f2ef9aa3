// Eager ops on GPU tensors (issue 14): each op's one-node function compiled for the device
// (codegen::compile_gpu), loaded, cached per device and signature, and run from its launch plan
// by runtime::cuda::DeviceExecutable. Here, without a GPU, on the mock driver: the loader that
// MockGpu (mock_gpu_test_util.h) installs builds the host shim of the same function and
// registers its kernels with the MockDriver under the image it loads, so the launches run the GPU
// kernels' logic on the CPU.
// Every result is compared with the CPU eager path's.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "error_test_util.h"
#include "kiln/codegen/compiler.h"
#include "kiln/codegen/gpu.h"
#include "kiln/frontend/core/device_ops.h"
#include "kiln/kiln.h"
#include "kiln/passes/pipeline.h"
#include "kiln/runtime/cuda/cublaslt.h"
#include "kiln/runtime/cuda/device.h"
#include "kiln/runtime/cuda/driver.h"
#include "kiln/runtime/cuda/launch_plan.h"
#include "kiln/runtime/cuda/mock_cublaslt.h"
#include "kiln/runtime/cuda/mock_driver.h"
#include "mock_gpu_test_util.h"

namespace {

namespace k = kiln;
namespace cu = kiln::runtime::cuda;
using Catch::Contains;

// The mock driver and cuBLASLt, with the host-shim module loader (mock_gpu_test_util.h).
using kiln::testing::have_libdevice;
using kiln::testing::MockGpu;

const k::Device gpu = k::Device::cuda(0);

// Both results on their devices, and equal elementwise (to a few ulps: the shim's math calls
// need not round like the CPU's vectorized ones).
void check_same(const k::Tensor& cpu, const k::Tensor& on_gpu) {
  kiln::testing::check_on_device(cpu, on_gpu, gpu, 1e-5, 1e-6);
}

template <class E, class F>
std::string message_of(F&& f) {
  return kiln::testing::error_of<E>(std::forward<F>(f));
}

}  // namespace

TEST_CASE("device ops: elementwise, broadcast and unary ops equal the CPU's") {
  MockGpu mock;
  const k::Tensor a = k::random_uniform({3, 5}, -2.0, 2.0, 1);
  const k::Tensor b = k::random_uniform({5}, 0.5, 1.5, 2);
  const k::Tensor ga = a.to(gpu), gb = b.to(gpu);
  check_same(a + b, ga + gb);
  check_same(a * a - b, ga * ga - gb);
  check_same(a / b, ga / gb);
  check_same(k::relu(a), k::relu(ga));
  if (have_libdevice()) {
    check_same(k::exp(a), k::exp(ga));
    check_same(k::tanh(a), k::tanh(ga));
  }
  check_same(k::greater(a, b), k::greater(ga, gb));
  check_same(k::cast(a, k::i32), k::cast(ga, k::i32));
  const k::Tensor d = k::random_uniform({4, 1, 3}, -1.0, 1.0, 3, k::f64);
  const k::Tensor e = k::random_uniform({2, 1}, -1.0, 1.0, 4, k::f64);
  check_same(d * e + d, d.to(gpu) * e.to(gpu) + d.to(gpu));
  const k::Tensor n = k::constant({{1, 2, 3}, {4, 5, 6}});
  check_same(n * n + n, n.to(gpu) * n.to(gpu) + n.to(gpu));
}

TEST_CASE("device ops: reductions, softmax, shape ops and gather equal the CPU's") {
  MockGpu mock;
  const k::Tensor a = k::random_uniform({6, 7}, -3.0, 3.0, 5);
  const k::Tensor ga = a.to(gpu);
  check_same(k::reduce_sum(a, {1}), k::reduce_sum(ga, {1}));
  check_same(k::reduce_max(a, {0}), k::reduce_max(ga, {0}));
  check_same(k::reduce_mean(a), k::reduce_mean(ga));
  check_same(k::argmax(a, 1), k::argmax(ga, 1));
  if (have_libdevice()) {
    check_same(k::softmax(a), k::softmax(ga));
    check_same(k::log_softmax(a, 0), k::log_softmax(ga, 0));
  }
  check_same(k::transpose(a), k::transpose(ga));
  check_same(k::concat({a, a * 2.f}, 1), k::concat({ga, ga * 2.f}, 1));
  check_same(k::reshape(a, {7, 6}), k::reshape(ga, {7, 6}));
  const k::Tensor idx = k::constant({4, 0, 5, 5});
  check_same(k::gather(a, idx), k::gather(ga, idx.to(gpu)));
  check_same(k::gather(a, idx, 1), k::gather(ga, idx.to(gpu), 1));
}

TEST_CASE("device ops: a 0-d cpu operand is copied to the device, and results stay there") {
  MockGpu mock;
  const k::Tensor x = k::random_uniform({4, 3}, 0.0, 1.0, 6);
  const k::Tensor gx = x.to(gpu);
  const k::Tensor y = gx + 1.f;
  CHECK(y.device() == gpu);
  check_same(x + 1.f, y);
  check_same(2.f * x - 0.5f, 2.f * gx - 0.5f);
  check_same(k::relu(k::reduce_sum(x, {0}) + 1.f), k::relu(k::reduce_sum(gx, {0}) + 1.f));
  // Zero-size tensors run no launch.
  const k::Tensor empty = k::zeros({0, 3}).to(gpu);
  const long long launches = mock.driver.counters().launches;
  const k::Tensor r = empty * 2.f;
  CHECK(r.device() == gpu);
  CHECK(r.shape() == k::Shape{0, 3});
  CHECK(mock.driver.counters().launches == launches);
}

TEST_CASE("device ops: a bad gather index is the CPU's IndexError") {
  MockGpu mock;
  const k::Tensor p = k::random_uniform({3, 2}, 0.0, 1.0, 7);
  const k::Tensor bad = k::constant({0, 3, 1});
  auto gather = [](const k::Tensor& params, const k::Tensor& indices) {
    return k::gather(params, indices);  // one line, so both messages name it
  };
  const std::string on_cpu = message_of<k::IndexError>([&] { (void)gather(p, bad); });
  const std::string on_gpu =
      message_of<k::IndexError>([&] { (void)gather(p.to(gpu), bad.to(gpu)); });
  CHECK_THAT(on_gpu, Contains("gather"));
  CHECK_THAT(on_gpu, Contains("3"));
  CHECK(on_gpu == on_cpu);
  // The kernel is cached and still checks; good indices then run.
  CHECK_THROWS_AS(gather(p.to(gpu), k::constant({-1, 0, 0}).to(gpu)), k::IndexError);
  check_same(gather(p, k::constant({2, 0, 1})), gather(p.to(gpu), k::constant({2, 0, 1}).to(gpu)));
}

TEST_CASE("device ops: kernels are cached per device and signature") {
  MockGpu mock;
  const k::Tensor x = k::random_uniform({8}, -1.0, 1.0, 8).to(gpu);
  CHECK(k::detail::device_kernel_cache_info().kernels == 0);
  const k::Tensor first = k::relu(x);
  k::detail::DeviceKernelCacheInfo info = k::detail::device_kernel_cache_info();
  CHECK(info.compiles == 1);
  CHECK(info.hits == 0);
  CHECK(mock.loads == 1);
  const long long launches = mock.driver.counters().launches;
  const k::Tensor second = k::relu(x);
  info = k::detail::device_kernel_cache_info();
  CHECK(info.compiles == 1);
  CHECK(info.hits == 1);
  CHECK(mock.loads == 1);
  CHECK(mock.driver.counters().launches > launches);
  CHECK(second.to_vector<float>() == first.to_vector<float>());
  // Another shape is another kernel.
  (void)k::relu(k::ones({9}).to(gpu));
  CHECK(k::detail::device_kernel_cache_info().compiles == 2);
  k::detail::clear_device_kernel_cache();
  CHECK(k::detail::device_kernel_cache_info().kernels == 0);
}

TEST_CASE("device ops: a GradientTape step on device tensors gives the CPU's gradients") {
  MockGpu mock;
  if (!have_libdevice()) return;
  const k::Tensor x = k::random_uniform({3, 4}, -1.0, 1.0, 9);
  const k::Tensor w = k::random_uniform({4}, -1.0, 1.0, 10);
  auto step = [](const k::Tensor& xs, const k::Tensor& ws) {
    k::GradientTape tape;
    tape.watch(xs);
    tape.watch(ws);
    const k::Tensor loss = k::reduce_mean(k::tanh(xs * ws) + xs * xs);
    return tape.gradient(loss, std::span<const k::Tensor>(std::vector<k::Tensor>{xs, ws}));
  };
  const std::vector<k::Tensor> on_cpu = step(x, w);
  const std::vector<k::Tensor> on_gpu = step(x.to(gpu), w.to(gpu));
  REQUIRE(on_gpu.size() == 2);
  check_same(on_cpu[0], on_gpu[0]);
  check_same(on_cpu[1], on_gpu[1]);
}

TEST_CASE("device ops: GEMM matmuls run on cuBLASLt and equal the CPU's") {
  MockGpu mock;
  const k::Tensor a = k::random_uniform({64, 48}, -1.0, 1.0, 11);
  const k::Tensor b = k::random_uniform({48, 80}, -1.0, 1.0, 12);
  const k::Tensor ga = a.to(gpu), gb = b.to(gpu);
  check_same(k::matmul(a, b), k::matmul(ga, gb));
  CHECK(mock.lt.counters().matmuls == 1);
  CHECK(mock.loads == 0);  // no PTX module: the GEMM is cuBLASLt's
  check_same(k::matmul(b, a, true, true), k::matmul(gb, ga, true, true));
  const k::Tensor c = k::random_uniform({64, 64}, -1.0, 1.0, 13, k::f64);
  check_same(k::matmul(c, c, false, true), k::matmul(c.to(gpu), c.to(gpu), false, true));
  // The plan is cached with the kernel: the second run plans nothing.
  const long long heuristics = mock.lt.counters().heuristics;
  check_same(k::matmul(a, b), k::matmul(ga, gb));
  CHECK(mock.lt.counters().heuristics == heuristics);
  // K = 0: zeros, which cuBLASLt is not asked for.
  const k::Tensor p = k::ones({128, 0}), q = k::ones({0, 96});
  check_same(k::matmul(p, q), k::matmul(p.to(gpu), q.to(gpu)));
  // Small integer matmuls are loop kernels, and run too.
  const k::Tensor n = k::constant({{1, 2}, {3, 4}});
  check_same(k::matmul(n, n), k::matmul(n.to(gpu), n.to(gpu)));
}

TEST_CASE("device ops: batched and broadcast GEMMs run on cuBLASLt, one call per matrix") {
  MockGpu mock;
  const k::Tensor a = k::random_uniform({2, 64, 48}, -1.0, 1.0, 14);
  const k::Tensor b = k::random_uniform({48, 40}, -1.0, 1.0, 16);
  check_same(k::matmul(a, b), k::matmul(a.to(gpu), b.to(gpu)));
  CHECK(mock.lt.counters().matmuls == 2);
  const k::Tensor c = k::random_uniform({3, 1, 40, 64}, -1.0, 1.0, 17, k::f64);
  const k::Tensor d = k::random_uniform({2, 48, 64}, -1.0, 1.0, 18, k::f64);
  check_same(k::matmul(c, d, false, true), k::matmul(c.to(gpu), d.to(gpu), false, true));
}

TEST_CASE("device ops: without cuBLASLt, a GEMM is a DeviceError saying why") {
  MockGpu mock;
  const cu::CublasLtApi none{};
  cu::ScopedCublasLtOverride missing(none, "no cuBLASLt here");
  const k::Tensor a = k::random_uniform({64, 64}, 0.0, 1.0, 15).to(gpu);
  const std::string message = message_of<k::DeviceError>([&] { (void)k::matmul(a, a); });
  CHECK_THAT(message, Contains("matmul: cuda:0 cannot run GEMMs: no cuBLASLt: no cuBLASLt here"));
}

TEST_CASE("device ops: without the test loader, the mock cannot load the kernels: a DeviceError") {
  cu::MockDriver driver;
  cu::ScopedDriverOverride use(driver.api(), "mock");
  k::detail::clear_device_kernel_cache();
  const k::Tensor x = k::ones({3}).to(gpu);
  const std::string message = message_of<k::DeviceError>([&] { (void)k::relu(x); });
  CHECK_THAT(message, Contains("relu: cuda:0 failed: cuModuleLoadData"));
  // (The default loader has the driver's linker make a cubin of the PTX first, through the disk
  // cache: cubin_cache_test checks that path; the mock's cubin is an image its cuModuleLoadData
  // does not know either way.)
  k::detail::clear_device_kernel_cache();
}

TEST_CASE("device ops: PTX is compiled for the GPU's architecture, up to sm_90") {
  CHECK(k::detail::ptx_arch_for(8, 0) == "sm_80");
  CHECK(k::detail::ptx_arch_for(8, 9) == "sm_89");
  CHECK(k::detail::ptx_arch_for(9, 0) == "sm_90");
  CHECK(k::detail::ptx_arch_for(10, 0) == "sm_90");
  CHECK(k::detail::ptx_arch_for(12, 0) == "sm_90");
}

TEST_CASE("device ops: a launch plan runs kernels with their buffers and item count") {
  cu::MockDriver driver;
  cu::ScopedDriverOverride use(driver.api(), "mock");
  static const char image = 0;
  std::vector<int64_t> seen;
  driver.register_image(&image, {{"fill", [&](void** params, cu::Dim3 grid, cu::Dim3 block) {
                                    auto* out = *static_cast<float**>(params[0]);
                                    const auto* ws = *static_cast<float**>(params[1]);
                                    const int64_t items = *static_cast<int64_t*>(params[2]);
                                    seen = {items, grid.x, block.x};
                                    for (int64_t i = 0; i < items; ++i)
                                      out[i] = static_cast<float>(i) + (ws != nullptr ? 0.5f : 0.f);
                                  }}});
  cu::ContextPtr context = cu::Context::retain(0);
  auto module = std::make_shared<const cu::Module>(context, &image);
  cu::LaunchPlan plan;
  plan.workspace_bytes = 256;
  plan.launches.push_back(
      {"fill",
       {{cu::LaunchArg::Kind::output, 0, 0}, {cu::LaunchArg::Kind::workspace, 0, 64}},
       5,
       1,
       32,
       "a test",
       {},
       {}});
  plan.launches.push_back(
      {"fill", {{cu::LaunchArg::Kind::output, 0, 0}}, 0, 1, 0, "nothing", {}, {}});
  cu::DeviceExecutable exe(context, module, plan, 0, 1);
  cu::DeviceBuffer out(context, 5 * sizeof(float));
  const cu::CUdeviceptr outputs[] = {out.get()};
  CHECK_FALSE(exe.run({}, outputs).failed());
  CHECK(seen == std::vector<int64_t>{5, 1, 32});
  std::vector<float> host(5);
  out.copy_to_host(host.data(), 5 * sizeof(float));
  CHECK(host == std::vector<float>{0.5f, 1.5f, 2.5f, 3.5f, 4.5f});
  CHECK_THROWS_AS(exe.run({}, {}), std::invalid_argument);
  CHECK_THROWS_AS(cu::DeviceExecutable(context, module, plan, 0, 0), std::invalid_argument);
  CHECK_THROWS_AS(cu::DeviceExecutable(context, nullptr, plan, 0, 1), std::invalid_argument);
  // A warm executable reuses its workspace.
  CHECK_FALSE(exe.run({}, outputs).failed());
  CHECK(exe.workspaces_allocated() == 1);
  plan.launches[0].symbol = "missing";
  CHECK_THROWS_AS(cu::DeviceExecutable(context, module, plan, 0, 1), cu::CudaError);
}

TEST_CASE("device ops: a result the device has no memory for is a ResourceError") {
  MockGpu mock({.total_memory = std::size_t{1} << 20});
  const k::Tensor a = k::ones({512, 1}).to(gpu);
  const k::Tensor b = k::ones({1, 1024}).to(gpu);
  const std::string message = message_of<k::ResourceError>([&] { (void)(a + b); });
  CHECK_THAT(message, Contains("add: out of memory on cuda:0"));
  CHECK_THAT(message, Contains("2.0 MiB"));
  CHECK_THAT(message, Contains("device_ops_test.cpp"));
  // Nothing was left allocated by the failed op, and a smaller one still runs.
  check_same(k::ones({512, 1}) + k::ones({1, 16}), a + k::ones({1, 16}).to(gpu));
}

TEST_CASE("device ops: f32 GEMMs compute in FP32 unless TF32 is enabled") {
  MockGpu mock;
  REQUIRE_FALSE(k::cuda::tf32_enabled());
  const k::Tensor a = k::random_uniform({64, 64}, -1.0, 1.0, 31).to(gpu);
  (void)k::matmul(a, a);
  REQUIRE(mock.lt.last_matmul());
  CHECK(mock.lt.last_matmul()->desc.compute_type == cu::CUBLAS_COMPUTE_32F);
  k::cuda::set_tf32_enabled(true);
  (void)k::matmul(a, a);  // a kernel of its own: the compute type is part of the cache key
  CHECK(mock.lt.last_matmul()->desc.compute_type == cu::CUBLAS_COMPUTE_32F_FAST_TF32);
  // f64 GEMMs stay f64.
  const k::Tensor d = k::cast(a, k::f64);
  (void)k::matmul(d, d);
  CHECK(mock.lt.last_matmul()->desc.compute_type == cu::CUBLAS_COMPUTE_64F);
  k::cuda::set_tf32_enabled(false);
  (void)k::matmul(a, a);
  CHECK(mock.lt.last_matmul()->desc.compute_type == cu::CUBLAS_COMPUTE_32F);
}
