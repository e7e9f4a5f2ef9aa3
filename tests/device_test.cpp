// Devices and placement (issue 14, frontend half): kiln::Device, kiln::cuda, Tensor::to,
// DeviceScope and the DeviceErrors around them. Without a GPU: this machine's real state (no
// driver), and the mock driver (runtime/cuda/mock_driver.h), whose device memory is host memory.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "kiln/kiln.h"
#include "kiln/runtime/cuda/driver.h"
#include "kiln/runtime/cuda/mock_driver.h"

namespace {

namespace k = kiln;
namespace cu = kiln::runtime::cuda;
using Catch::Contains;

// The message of the E that `f` throws; fails the test when it throws nothing.
template <class E, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  FAIL("no exception of the expected type was thrown");
  return {};
}

// "device_test.cpp:LINE", as errors name a line of this file.
std::string here(int line) {
  return fmt::format("device_test.cpp:{}", line);
}

// The mock installed as the process's driver for a scope.
struct Mock {
  explicit Mock(cu::MockOptions options = {}) : driver(options), use(driver.api(), "mock") {}
  cu::MockDriver driver;
  cu::ScopedDriverOverride use;
};

}  // namespace

TEST_CASE("devices: cpu and cuda(i), their names, equality and parsing") {
  CHECK(k::Device::cpu().kind() == k::DeviceKind::cpu);
  CHECK(k::Device().is_cpu());
  CHECK(k::Device::cpu().to_string() == "cpu");
  CHECK(k::Device::cuda(0).kind() == k::DeviceKind::cuda);
  CHECK(k::Device::cuda(3).index() == 3);
  CHECK(k::Device::cuda().to_string() == "cuda:0");
  CHECK(k::Device::cuda(1).to_string() == "cuda:1");
  CHECK(k::Device::cuda(1) == k::Device::cuda(1));
  CHECK(k::Device::cuda(0) != k::Device::cuda(1));
  CHECK(k::Device::cpu() != k::Device::cuda(0));
  std::ostringstream os;
  os << k::Device::cuda(2);
  CHECK(os.str() == "cuda:2");

  CHECK(k::Device::parse("cpu") == k::Device::cpu());
  CHECK(k::Device::parse("cuda") == k::Device::cuda(0));
  CHECK(k::Device::parse("cuda:0") == k::Device::cuda(0));
  CHECK(k::Device::parse("cuda:12") == k::Device::cuda(12));
  for (const k::Device& d : {k::Device::cpu(), k::Device::cuda(0), k::Device::cuda(7)})
    CHECK(k::Device::parse(d.to_string()) == d);
}

TEST_CASE("devices: bad device text and negative indices are ValueErrors") {
  for (const char* text : {"", "gpu", "CPU", "cuda:", "cuda:-1", "cuda:+1", "cuda:1x", "cuda: 1",
                           "cuda:99999999999", "cpu:0", " cpu"}) {
    INFO(text);
    const int line = __LINE__ + 1;
    std::string message = message_of<k::ValueError>([&] { (void)k::Device::parse(text); });
    CHECK_THAT(message, Contains(fmt::format("'{}' is not a device", text)));
    CHECK_THAT(message, Contains("\"cuda:N\""));
    CHECK_THAT(message, Contains(here(line)));
  }
  const int line = __LINE__ + 1;
  std::string message = message_of<k::ValueError>([] { (void)k::Device::cuda(-1); });
  CHECK_THAT(message, Contains("Device::cuda: the GPU index must be 0 or more, got -1"));
  CHECK_THAT(message, Contains(here(line)));
}

TEST_CASE("devices: this machine without a driver: unavailable, and saying why") {
  const cu::DriverStatus& status = cu::driver_status();
  if (status.available()) {
    WARN("a CUDA driver is present: " << status.message);
    CHECK(k::cuda::is_available());
    CHECK(k::cuda::device_count() == status.device_count);
    CHECK(k::cuda::unavailable_reason().empty());
    return;
  }
  CHECK_FALSE(k::cuda::is_available());
  CHECK(k::cuda::device_count() == 0);
  CHECK(k::cuda::unavailable_reason() == status.message);

  k::Tensor x = k::constant({1.f, 2.f});
  const int line = __LINE__ + 1;
  std::string message = message_of<k::DeviceError>([&] { (void)x.to(k::Device::cuda(0)); });
  CHECK_THAT(message,
             Contains("to: cuda:0 cannot be used (" + std::string(cu::reason_name(status.reason)) +
                      "): " + status.message));
  CHECK_THAT(message, Contains("operands: f32[2]"));
  CHECK_THAT(message, Contains(here(line)));
  if (status.reason == cu::Reason::no_driver) {
    CHECK_THAT(message, Contains("(no driver): no CUDA driver: cannot load libcuda.so.1"));
  }

  const int scope_line = __LINE__ + 1;
  message = message_of<k::DeviceError>([] { k::DeviceScope on(k::Device::cuda(0)); });
  CHECK_THAT(message, Contains("DeviceScope: cuda:0 cannot be used"));
  CHECK_THAT(message, Contains(here(scope_line)));
  CHECK(k::current_device() == k::Device::cpu());  // a failed scope leaves nothing behind

  // The CPU is always there, and a tensor moved to where it is stays the same handle.
  k::DeviceScope on_cpu(k::Device::cpu());
  CHECK(x.to(k::Device::cpu()).device() == k::Device::cpu());
  CHECK(k::detail::TensorAccess::identity(x.to(k::Device::cpu())) ==
        k::detail::TensorAccess::identity(x));
}

TEST_CASE("devices: every reason a driver is unusable is a DeviceError saying it") {
  struct Row {
    cu::CUresult init;
    const char* reason;
  };
  for (const Row& row : {Row{cu::CUDA_ERROR_STUB_LIBRARY, "stub"},
                         Row{cu::CUDA_ERROR_INSUFFICIENT_DRIVER, "driver too old"},
                         Row{cu::CUDA_ERROR_NO_DEVICE, "no device"}}) {
    INFO(row.reason);
    Mock mock({.init_result = row.init});
    CHECK_FALSE(k::cuda::is_available());
    CHECK(k::cuda::device_count() == 0);
    CHECK_FALSE(k::cuda::unavailable_reason().empty());
    const k::Device gpu = k::Device::cuda(0);
    const int line = __LINE__ + 1;
    std::string message = message_of<k::DeviceError>([&] { (void)k::zeros({2}).to(gpu); });
    CHECK_THAT(message, Contains(fmt::format("to: cuda:0 cannot be used ({}): {}", row.reason,
                                             k::cuda::unavailable_reason())));
    CHECK_THAT(message, Contains(here(line)));
  }
}

TEST_CASE("devices: the mock's GPU is available and counted") {
  Mock mock({.device_count = 2});
  CHECK(k::cuda::is_available());
  CHECK(k::cuda::device_count() == 2);
  CHECK(k::cuda::unavailable_reason().empty());
}

TEST_CASE("devices: tensors go to the GPU and back unchanged, copying each way once") {
  Mock mock;
  const k::Device gpu = k::Device::cuda(0);
  std::vector<k::Tensor> tensors = {
      k::random_uniform({5, 7}, 0.f, 1.f, 1),
      k::constant({1, -2, 3}),
      k::constant({true, false, true, true}),
      k::constant(std::vector<double>{0.5, -1.25}),
      k::zeros({0, 3}),
      k::constant(42.f),
  };
  for (const k::Tensor& x : tensors) {
    INFO(x.type().to_string());
    const cu::MockCounters before = mock.driver.counters();
    k::Tensor on_gpu = x.to(gpu);
    CHECK(on_gpu.device() == gpu);
    CHECK(on_gpu.type() == x.type());
    CHECK_FALSE(on_gpu.is_symbolic());
    CHECK(x.device() == k::Device::cpu());  // the original stays
    // Moving it where it is gives the same handle; copies share the GPU memory.
    CHECK(k::detail::TensorAccess::identity(on_gpu.to(gpu)) ==
          k::detail::TensorAccess::identity(on_gpu));
    k::Tensor copy = on_gpu;
    CHECK(k::detail::TensorAccess::device_buffer(copy) ==
          k::detail::TensorAccess::device_buffer(on_gpu));

    k::Tensor back = on_gpu.to(k::Device::cpu());
    CHECK(back.device() == k::Device::cpu());
    CHECK(back.host().bitwise_equal(x.host()));

    const cu::MockCounters after = mock.driver.counters();
    const size_t bytes = x.type().nbytes();
    CHECK(after.bytes_to_device - before.bytes_to_device == bytes);
    CHECK(after.bytes_to_host - before.bytes_to_host == bytes);
    CHECK(after.allocations - before.allocations == (bytes == 0 ? 0 : 1));
  }
  // The GPU memory goes when the last handle does.
  tensors.clear();
  CHECK(mock.driver.counters().bytes_allocated == 0);
}

TEST_CASE("devices: item, to_vector and printing copy a GPU tensor back; host() refuses") {
  Mock mock;
  const k::Device gpu = k::Device::cuda(0);
  k::Tensor v = k::constant({1.5f, 2.5f, -3.f}).to(gpu);
  k::Tensor s = k::constant(7).to(gpu);
  const size_t to_host = mock.driver.counters().bytes_to_host;

  CHECK(v.to_vector<float>() == std::vector<float>{1.5f, 2.5f, -3.f});
  CHECK(s.item<int32_t>() == 7);
  CHECK(mock.driver.counters().bytes_to_host - to_host == 3 * 4 + 4);
  CHECK(v.to_string() == "kiln.Tensor([ 1.5  2.5 -3. ], shape=(3,), dtype=float32, device=cuda:0)");
  std::ostringstream os;
  os << s;
  CHECK(os.str() == "kiln.Tensor(7, shape=(), dtype=int32, device=cuda:0)");
  // The checks of the accessors come first, and copy nothing.
  const size_t checked = mock.driver.counters().bytes_to_host;
  CHECK_THROWS_AS(v.item<float>(), k::ValueError);
  CHECK_THROWS_AS(v.to_vector<int32_t>(), k::TypeError);
  CHECK(mock.driver.counters().bytes_to_host == checked);

  std::string message = message_of<k::DeviceError>([&] { (void)v.host(); });
  CHECK_THAT(message, Contains("the tensor is on cuda:0, not in host memory"));
  CHECK_THAT(message, Contains(".to(k::Device::cpu())"));
}

TEST_CASE("devices: GPU to GPU goes through the host") {
  Mock mock({.device_count = 2});
  k::Tensor x = k::range(6).to(k::Device::cuda(0));
  k::Tensor y = x.to(k::Device::cuda(1));
  CHECK(y.device() == k::Device::cuda(1));
  CHECK(y.to_vector<int32_t>() == std::vector<int32_t>{0, 1, 2, 3, 4, 5});
  CHECK(mock.driver.counters().bytes_to_device == 2 * 6 * 4);
}

TEST_CASE("devices: a GPU index past the count is a DeviceError naming the count") {
  Mock mock;
  const k::Device gpu1 = k::Device::cuda(1);
  const int line = __LINE__ + 1;
  std::string message = message_of<k::DeviceError>([&] { (void)k::ones({2}).to(gpu1); });
  CHECK_THAT(message, Contains("to: cuda:1 does not exist: the CUDA driver sees 1 GPU (cuda:0)"));
  CHECK_THAT(message, Contains(here(line)));

  const int scope_line = __LINE__ + 1;
  message = message_of<k::DeviceError>([] { k::DeviceScope on(k::Device::cuda(5)); });
  CHECK_THAT(message, Contains("DeviceScope: cuda:5 does not exist"));
  CHECK_THAT(message, Contains(here(scope_line)));
}

TEST_CASE("devices: a GPU without the memory is a ResourceError naming the sizes") {
  Mock mock({.total_memory = 1 << 20});
  k::Tensor big = k::zeros({512, 1024});  // 2 MiB of f32
  const int line = __LINE__ + 1;
  std::string message = message_of<k::ResourceError>([&] { (void)big.to(k::Device::cuda(0)); });
  CHECK_THAT(message, Contains("to: out of memory on cuda:0"));
  CHECK_THAT(message, Contains("cannot allocate 2.0 MiB (2097152 bytes)"));
  CHECK_THAT(message, Contains("free of 1.0 MiB (1048576 bytes)"));
  CHECK_THAT(message, Contains("operands: f32[512,1024]"));
  CHECK_THAT(message, Contains(here(line)));
  CHECK(mock.driver.counters().bytes_allocated == 0);
}

TEST_CASE("devices: an op on tensors on two devices is a DeviceError naming both") {
  Mock mock({.device_count = 2});
  k::Tensor a = k::ones({2, 3});
  k::Tensor b = k::ones({2, 3}).to(k::Device::cuda(0));
  k::Tensor c = k::ones({2, 3}).to(k::Device::cuda(1));

  int line = __LINE__ + 1;
  std::string message = message_of<k::DeviceError>([&] { (void)(a + b); });
  CHECK_THAT(message, Contains("add: operands on cpu and cuda:0 (operand 0 is on cpu, operand 1 "
                               "on cuda:0); move them to one device with .to(...)"));
  CHECK_THAT(message, Contains("operands: f32[2,3], f32[2,3]"));
  CHECK_THAT(message, Contains(here(line)));

  line = __LINE__ + 1;
  message = message_of<k::DeviceError>([&] { (void)k::matmul(c, k::transpose(b)); });
  CHECK_THAT(message, Contains("transpose: cuda:0 failed: cuModuleLoadData"));
  line = __LINE__ + 1;
  message = message_of<k::DeviceError>([&] { (void)k::concat({b, c}, 0); });
  CHECK_THAT(message, Contains("concat: operands on cuda:0 and cuda:1"));
  CHECK_THAT(message, Contains(here(line)));

  // Mixed devices are reported before the shapes are looked at.
  k::Tensor d = k::ones({5});
  CHECK_THROWS_AS(b * d, k::DeviceError);
}

// Ops on GPU tensors compile PTX, which the mock cannot load (tests/device_ops_test.cpp installs
// a loader that runs the host shim instead): the load fails as a DeviceError at the user's line.
TEST_CASE("devices: ops on GPU tensors whose PTX the mock cannot load are DeviceErrors") {
  Mock mock;
  k::Tensor x = k::random_uniform({4, 3}, 0.f, 1.f, 1).to(k::Device::cuda(0));
  const long long launches = mock.driver.counters().launches;
  int line = __LINE__ + 1;
  std::string message = message_of<k::DeviceError>([&] { (void)k::relu(x); });
  CHECK_THAT(message, Contains("relu: cuda:0 failed: cuModuleLoadData: CUDA_ERROR_INVALID_IMAGE"));
  CHECK_THAT(message, Contains("operands: f32[4,3]"));
  CHECK_THAT(message, Contains(here(line)));
  // A C++ number (a 0-d cpu tensor) goes along with a GPU tensor, as in PyTorch.
  line = __LINE__ + 1;
  message = message_of<k::DeviceError>([&] { (void)(x + 1.f); });
  CHECK_THAT(message, Contains("add: cuda:0 failed: cuModuleLoadData"));
  CHECK_THAT(message, Contains(here(line)));
  // A shape error is still a ShapeError.
  CHECK_THROWS_AS(x + k::ones({7}).to(k::Device::cuda(0)), k::ShapeError);
  CHECK(mock.driver.counters().launches == launches);

  // The CPU path is untouched meanwhile.
  CHECK((x.to(k::Device::cpu()) * 0.f).to_vector<float>() == std::vector<float>(12, 0.f));
}

TEST_CASE("devices: a traced function does not mix devices, nor move symbolic tensors") {
  Mock mock;
  k::Tensor g = k::ones({2}).to(k::Device::cuda(0));
  auto captures = k::function([&](const k::Tensor& a) { return a + g; }, "captures");
  std::string message = message_of<k::DeviceError>([&] { (void)captures(k::ones({2})); });
  CHECK_THAT(message, Contains("function 'captures' reads tensors on cuda:0 and cpu"));
  auto f = k::function([](const k::Tensor& a) { return a * 2.f; });
  message = message_of<k::DeviceError>([&] { (void)f(g); });
  CHECK_THAT(message, Contains("cuda:0"));
  // Symbolic tensors are on the cpu, and cannot move yet.
  auto moves = k::function([](const k::Tensor& a) {
    CHECK(a.device() == k::Device::cpu());
    CHECK(k::detail::TensorAccess::identity(a.to(k::Device::cpu())) ==
          k::detail::TensorAccess::identity(a));
    return a.to(k::Device::cuda(0));
  });
  message = message_of<k::DeviceError>([&] { (void)moves(k::ones({2})); });
  CHECK_THAT(message, Contains("to: cannot move a symbolic tensor to cuda:0"));
}

TEST_CASE("devices: creation ops under a DeviceScope land on its device; scopes nest") {
  Mock mock({.device_count = 2});
  const k::Device gpu0 = k::Device::cuda(0), gpu1 = k::Device::cuda(1);
  CHECK(k::current_device() == k::Device::cpu());
  k::Tensor host = k::ones({2});
  {
    k::DeviceScope on(gpu0);
    CHECK(k::current_device() == gpu0);
    k::Tensor z = k::zeros({2, 2});
    k::Tensor f = k::fill({3}, 2.5f);
    k::Tensor c = k::constant({1, 2, 3});
    k::Tensor r = k::random_uniform({4}, 0.f, 1.f, 9);
    k::Tensor n = k::random_normal({4}, 0.f, 1.f, 9);
    for (const k::Tensor& t : {z, f, c, r, n})
      CHECK(t.device() == gpu0);
    CHECK(z.to_vector<float>() == std::vector<float>(4, 0.f));
    CHECK(f.to_vector<float>() == std::vector<float>(3, 2.5f));
    CHECK(c.to_vector<int32_t>() == std::vector<int32_t>{1, 2, 3});
    // The same numbers as made on the CPU.
    CHECK(r.to_vector<float>() == k::random_uniform({4}, 0.f, 1.f, 9).to_vector<float>());
    {
      k::DeviceScope inner(gpu1);
      CHECK(k::ones({1}).device() == gpu1);
      {
        k::DeviceScope host(k::Device::cpu());
        CHECK(k::ones({1}).device() == k::Device::cpu());
      }
      CHECK(k::current_device() == gpu1);
    }
    CHECK(k::current_device() == gpu0);
    // Ops with operands run where the operands are, not where the scope says, and scalar
    // operands stay on the host.
    CHECK((host + host * 2.f).to_vector<float>() == std::vector<float>{3.f, 3.f});
    CHECK((host + host).device() == k::Device::cpu());
    CHECK_THAT(message_of<k::DeviceError>([&] { (void)(z * 2.f); }),
               Contains("mul: cuda:0 failed: cuModuleLoadData"));
  }
  CHECK(k::current_device() == k::Device::cpu());
  CHECK(k::zeros({2}).device() == k::Device::cpu());
}

TEST_CASE("devices: an undefined tensor cannot move") {
  const int line = __LINE__ + 1;
  std::string message = message_of<k::ValueError>([] { (void)k::Tensor().to(k::Device::cpu()); });
  CHECK_THAT(message, Contains("to: the Tensor is undefined"));
  CHECK_THAT(message, Contains(here(line)));
  CHECK_THROWS_AS(k::Tensor().device(), k::ValueError);
}

TEST_CASE("devices: zeros_like and ones_like make their tensor where `like` lives") {
  Mock mock({.device_count = 2});
  k::Tensor g = k::constant({1, 2, 3}).to(k::Device::cuda(1));
  k::Tensor z = k::zeros_like(g);
  CHECK(z.device() == k::Device::cuda(1));
  CHECK(z.to_vector<int32_t>() == std::vector<int32_t>{0, 0, 0});
  CHECK(k::ones_like(g, k::f32).to_vector<float>() == std::vector<float>{1.f, 1.f, 1.f});
  k::DeviceScope on(k::Device::cuda(0));
  CHECK(k::ones_like(g).device() == k::Device::cuda(1));
  CHECK(k::zeros_like(k::constant(1.f).to(k::Device::cpu())).device() == k::Device::cpu());
  CHECK(k::zeros({1}).device() == k::Device::cuda(0));
}

TEST_CASE("devices: stop_gradient keeps a GPU tensor on its GPU, sharing its memory") {
  Mock mock;
  k::Tensor g = k::constant({1.f, 2.f}).to(k::Device::cuda(0));
  k::Tensor s = k::stop_gradient(g);
  CHECK(s.device() == k::Device::cuda(0));
  CHECK(k::detail::TensorAccess::identity(s) != k::detail::TensorAccess::identity(g));
  CHECK(k::detail::TensorAccess::device_buffer(s) == k::detail::TensorAccess::device_buffer(g));
  CHECK(s.to_vector<float>() == std::vector<float>{1.f, 2.f});
}

TEST_CASE("devices: a Variable keeps its device, and a value from another is a DeviceError") {
  Mock mock;
  k::Tensor g = k::constant({1.f, 2.f}).to(k::Device::cuda(0));
  k::Variable on_gpu(g, "g");
  CHECK(on_gpu.device() == k::Device::cuda(0));
  k::Variable v(k::zeros({2}), "w");
  int line = __LINE__ + 1;
  std::string message = message_of<k::DeviceError>([&] { v.assign(g); });
  CHECK_THAT(message, Contains("assign: Variable 'w' lives on cpu, but the value is on cuda:0"));
  CHECK_THAT(message, Contains(here(line)));
  CHECK(v.value().to_vector<float>() == std::vector<float>{0.f, 0.f});
}
