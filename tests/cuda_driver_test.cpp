// The CUDA driver layer (runtime/cuda/): loading the driver and saying why it is unavailable (no
// library, the toolkit's stub, a library that is not a driver, every answer of cuInit), and the
// device layer over the mock driver: device properties, memory and copies, out of memory, bad
// pointers, streams, modules and launches through registered host functions. Needs no GPU.
#include <catch2/catch.hpp>

#include "env_test_util.h"

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "kiln/runtime/cuda/device.h"
#include "kiln/runtime/cuda/driver.h"
#include "kiln/runtime/cuda/mock_driver.h"

#include "process_test_util.h"

namespace {

using namespace kiln::runtime::cuda;
using Catch::Contains;

#ifdef KILN_CUDA_STUB
constexpr const char* kStubPath = KILN_CUDA_STUB;
#else
constexpr const char* kStubPath = "/usr/local/cuda/lib64/stubs/libcuda.so";
#endif

using kiln::testing::ScopedEnv;

// A mock installed as the process's driver, and the primary context of its device 0.
struct MockDevice {
  explicit MockDevice(MockOptions options = {}) : mock(options), use(mock.api(), "mock") {}
  MockDriver mock;
  ScopedDriverOverride use;
  ContextPtr context = Context::retain(0);
};

// The address the tests register kernels under: any address will do, as for a real PTX text.
const char kSaxpyImage[] = "// stands for the PTX of saxpy";

// saxpy's host build: y[i] = a * x[i] + y[i] for every thread i < n of a 1-D launch.
void saxpy(void** args, Dim3 grid, Dim3 block) {
  const int n = *static_cast<int*>(args[0]);
  const float a = *static_cast<float*>(args[1]);
  const auto* x = reinterpret_cast<const float*>(*static_cast<CUdeviceptr*>(args[2]));
  auto* y = reinterpret_cast<float*>(*static_cast<CUdeviceptr*>(args[3]));
  for (unsigned b = 0; b < grid.x; ++b)
    for (unsigned t = 0; t < block.x; ++t) {
      const unsigned long long i = 1ull * b * block.x + t;
      if (i < static_cast<unsigned long long>(n)) y[i] = a * x[i] + y[i];
    }
}

}  // namespace

TEST_CASE("cuda: the process's driver: unavailable here, saying why") {
  const DriverStatus& status = driver_status();
  CHECK(status.library == driver_path());
  if (status.available()) {
    WARN("a CUDA driver is present: " << status.message);
    CHECK(device_count() == status.device_count);
    return;
  }
  CHECK_FALSE(available());
  CHECK(device_count() == 0);
  CHECK_FALSE(status.message.empty());
  try {
    (void)driver();
    FAIL("driver() did not throw");
  } catch (const UnavailableError& e) {
    CHECK(e.reason() == status.reason);
    CHECK(std::string(e.what()) == status.message);
  }
  CHECK_THROWS_AS(Context::retain(0), UnavailableError);
  CHECK_THROWS_AS(device_info(0), UnavailableError);
  if (status.reason == Reason::no_driver) {  // this machine: no libcuda.so.1 at all
    CHECK(std::string(reason_name(status.reason)) == "no driver");
    CHECK_THAT(status.message, Contains("no CUDA driver: cannot load " + status.library));
    CHECK_THAT(status.message, Contains("KILN_CUDA_DRIVER"));
  }
}

TEST_CASE("cuda: KILN_CUDA_DRIVER names the library to load") {
  {
    ScopedEnv env("KILN_CUDA_DRIVER", "/opt/nvidia/libcuda.so.1");
    CHECK(driver_path() == "/opt/nvidia/libcuda.so.1");
  }
  {
    ScopedEnv env("KILN_CUDA_DRIVER", "");
    CHECK(driver_path() == "libcuda.so.1");
  }
  {
    ScopedEnv env("KILN_CUDA_DRIVER", nullptr);
    CHECK(driver_path() == "libcuda.so.1");
  }
}

// Run by the next case in a child process: the process's driver is loaded once, so only a fresh
// process sees the environment variable.
TEST_CASE("cuda: child: print the process's driver status", "[.cuda_child]") {
  std::cout << "reason: " << reason_name(driver_status().reason) << "\n"
            << "message: " << driver_status().message << "\n";
}

TEST_CASE("cuda: KILN_CUDA_DRIVER picks the process's driver") {
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  {
    ScopedEnv env("KILN_CUDA_DRIVER", "/nonexistent/kiln/libcuda.so.1");
    const kiln::testing::Outcome child = kiln::testing::run({self, "[.cuda_child]"});
    CHECK(child.status == 0);
    CHECK_THAT(child.out, Contains("reason: no driver"));
    CHECK_THAT(child.out, Contains("cannot load /nonexistent/kiln/libcuda.so.1 ("));
    CHECK_THAT(child.out, Contains("(the path comes from KILN_CUDA_DRIVER)"));
  }
  if (std::filesystem::exists(kStubPath)) {
    ScopedEnv env("KILN_CUDA_DRIVER", kStubPath);
    const kiln::testing::Outcome child = kiln::testing::run({self, "[.cuda_child]"});
    CHECK(child.status == 0);
    CHECK_THAT(child.out, Contains("reason: stub"));
    CHECK_THAT(child.out, Contains("cuInit: CUDA_ERROR_STUB_LIBRARY (34)"));
  } else {
    WARN("the stub case is skipped: no CUDA stub library at " << kStubPath);
  }
}

TEST_CASE("cuda: a driver path with no file is 'no driver', naming the path") {
  const LoadedDriver loaded = load_driver("/nonexistent/kiln/libcuda.so.1");
  CHECK(loaded.status.reason == Reason::no_driver);
  CHECK_FALSE(loaded.status.available());
  CHECK(loaded.status.loaded_from.empty());
  CHECK(loaded.status.device_count == 0);
  CHECK_THAT(loaded.status.message,
             Contains("no CUDA driver: cannot load /nonexistent/kiln/libcuda.so.1 ("));
  CHECK(loaded.api.cuInit == nullptr);
}

TEST_CASE("cuda: a library that is not a CUDA driver is 'no driver'") {
  const LoadedDriver loaded = load_driver("libz.so.1");  // loadable, but no cuInit
  CHECK(loaded.status.reason == Reason::no_driver);
  CHECK_THAT(loaded.status.message, Contains("libz.so.1 is not a CUDA driver (it has no cuInit)"));
}

TEST_CASE("cuda: the toolkit's stub libcuda is 'stub'") {
  if (!std::filesystem::exists(kStubPath)) {
    WARN("skipped: no CUDA stub library at " << kStubPath);
    return;
  }
  const LoadedDriver loaded = load_driver(kStubPath);
  CHECK(loaded.status.reason == Reason::stub);
  CHECK(std::string(reason_name(loaded.status.reason)) == "stub");
  CHECK(loaded.status.code == CUDA_ERROR_STUB_LIBRARY);
  CHECK_THAT(loaded.status.loaded_from, Contains("libcuda.so"));
  CHECK_THAT(loaded.status.message,
             Contains(std::string(kStubPath) + " is the CUDA toolkit's stub"));
  CHECK_THAT(loaded.status.message, Contains("cuInit: CUDA_ERROR_STUB_LIBRARY (34)"));
  // The stub exports every entry point Kiln uses.
#define KILN_EXPECT_ENTRY_POINT(name, ...) CHECK(loaded.api.name != nullptr);
  KILN_CUDA_DRIVER_ENTRY_POINTS(KILN_EXPECT_ENTRY_POINT)
#undef KILN_EXPECT_ENTRY_POINT
}

TEST_CASE("cuda: every answer of cuInit gives its reason") {
  struct Row {
    CUresult init;
    int devices;
    Reason reason;
    const char* says;
  };
  const Row rows[] = {
      {CUDA_SUCCESS, 1, Reason::available, "the CUDA driver 13.0 at mock, 1 device"},
      {CUDA_SUCCESS, 0, Reason::no_device, "no CUDA device: the CUDA driver 13.0 at mock counts 0"},
      {CUDA_ERROR_NO_DEVICE, 1, Reason::no_device, "cuInit: CUDA_ERROR_NO_DEVICE (100)"},
      {CUDA_ERROR_STUB_LIBRARY, 1, Reason::stub, "cuInit: CUDA_ERROR_STUB_LIBRARY (34)"},
      {CUDA_ERROR_INSUFFICIENT_DRIVER, 1, Reason::too_old, "CUDA_ERROR_INSUFFICIENT_DRIVER (35)"},
      {CUDA_ERROR_UNSUPPORTED_PTX_VERSION, 1, Reason::too_old, "(222)"},
      {CUDA_ERROR_SYSTEM_DRIVER_MISMATCH, 1, Reason::too_old,
       "is too old or does not match its kernel module (cuInit: CUDA_ERROR_SYSTEM_DRIVER_MISMATCH"},
      {CUDA_ERROR_UNKNOWN, 1, Reason::error,
       "failed to initialise (cuInit: CUDA_ERROR_UNKNOWN (999): unknown error)"},
      {12345, 1, Reason::error, "CUDA_ERROR_UNKNOWN_12345 (12345)"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.init, row.devices);
    MockDriver mock({.device_count = row.devices, .init_result = row.init});
    ScopedDriverOverride use(mock.api(), "mock");
    CHECK(driver_status().reason == row.reason);
    CHECK(driver_status().code == (row.devices == 0 ? CUDA_ERROR_NO_DEVICE : row.init));
    CHECK_THAT(driver_status().message, Contains(row.says));
    CHECK(available() == (row.reason == Reason::available));
    CHECK(device_count() == (row.reason == Reason::available ? 1 : 0));
    if (row.reason != Reason::available) {
      CHECK_THROWS_AS(driver(), UnavailableError);
      CHECK_THROWS_WITH(Context::retain(0), driver_status().message);
    }
  }
}

TEST_CASE("cuda: overrides nest and restore the process's driver") {
  MockDriver mock;
  {
    ScopedDriverOverride outer(mock.api(), "outer");
    {
      ScopedDriverOverride inner(mock.api(), "inner");
      CHECK(driver_status().library == "inner");
    }
    CHECK(driver_status().library == "outer");
    CHECK(&driver() == &mock.api());
  }
  CHECK(driver_status().library == driver_path());
}

TEST_CASE("cuda: error names come from the driver, else Kiln's table") {
  CHECK(error_name(nullptr, CUDA_ERROR_OUT_OF_MEMORY) == "CUDA_ERROR_OUT_OF_MEMORY");
  CHECK(error_name(nullptr, 4242) == "CUDA_ERROR_UNKNOWN_4242");
  CHECK(describe_error(nullptr, CUDA_ERROR_NO_DEVICE) ==
        "CUDA_ERROR_NO_DEVICE (100): no CUDA-capable device is detected");
  DriverApi api;  // a driver that names codes its own way
  api.cuGetErrorName = [](CUresult, const char** name) {
    *name = "DRIVER_NAME";
    return CUDA_SUCCESS;
  };
  CHECK(error_name(&api, CUDA_ERROR_OUT_OF_MEMORY) == "DRIVER_NAME");
  CHECK(error_string(&api, CUDA_ERROR_OUT_OF_MEMORY) == "out of memory");
  try {
    check(api, CUDA_ERROR_INVALID_VALUE, "cuMemFree", "at 0x10");
    FAIL("check did not throw");
  } catch (const CudaError& e) {
    CHECK(e.code() == CUDA_ERROR_INVALID_VALUE);
    CHECK(e.name() == "DRIVER_NAME");
    CHECK(e.call() == "cuMemFree");
    CHECK(std::string(e.what()) == "cuMemFree: DRIVER_NAME (1): invalid argument: at 0x10");
  }
  CHECK_NOTHROW(check(api, CUDA_SUCCESS, "cuInit"));
}

TEST_CASE("cuda: sizes in messages") {
  CHECK(format_bytes(0) == "0 bytes");
  CHECK(format_bytes(1) == "1 byte");
  CHECK(format_bytes(1023) == "1023 bytes");
  CHECK(format_bytes(1536) == "1.5 KiB (1536 bytes)");
  CHECK(format_bytes(std::size_t{3} << 30) == "3.0 GiB (3221225472 bytes)");
}

TEST_CASE("cuda mock: device properties") {
  MockDevice device({.total_memory = std::size_t{80} << 30});
  CHECK(available());
  CHECK(device_count() == 1);
  const DeviceInfo info = device_info(0);
  CHECK(info.name == "Kiln mock GPU");
  CHECK(info.major == 9);
  CHECK(info.minor == 0);
  CHECK(info.arch() == "sm_90");
  CHECK(info.sm_count == 132);
  CHECK(info.max_threads_per_block == 1024);
  CHECK(info.max_shared_memory_per_block == 48 * 1024);
  CHECK(info.total_memory == std::size_t{80} << 30);
  CHECK(device.context->info().name == info.name);
  const MemoryInfo memory = device.context->memory_info();
  CHECK(memory.free == memory.total);
  CHECK(memory.total == info.total_memory);
  try {
    (void)device_info(1);
    FAIL("device_info(1) did not throw");
  } catch (const CudaError& e) {
    CHECK(e.code() == CUDA_ERROR_INVALID_DEVICE);
    CHECK_THAT(e.what(), Contains("cuDeviceGet: CUDA_ERROR_INVALID_DEVICE (101)"));
    CHECK_THAT(e.what(), Contains("device 1"));
  }
  CHECK_THROWS_AS(Context::retain(1), CudaError);
}

TEST_CASE("cuda mock: host to device to device to host, synchronous and on a stream") {
  MockDevice device;
  std::vector<float> in(1000);
  for (std::size_t i = 0; i < in.size(); ++i)
    in[i] = 0.5f * static_cast<float>(i) - 7;
  const std::size_t bytes = in.size() * sizeof(float);
  {
    DeviceBuffer a(device.context, bytes), b(device.context, bytes);
    CHECK(a.get() % 256 == 0);
    CHECK(device.context->memory_info().free == device.context->memory_info().total - 2 * bytes);
    a.copy_from_host(in.data(), bytes);
    b.copy_from(a, bytes);
    std::vector<float> out(in.size());
    b.copy_to_host(out.data(), bytes);
    CHECK(out == in);

    Stream stream(device.context);
    std::vector<float> back(in.size(), -1.f);
    b.fill(0, &stream);
    b.copy_from(a, 400, 100, 200, &stream);  // floats 25..124 of a to 50..149 of b
    b.copy_to_host(back.data(), bytes, 0, &stream);
    stream.synchronize();
    for (std::size_t i = 0; i < back.size(); ++i) {
      const float expected = i >= 50 && i < 150 ? in[i - 25] : 0.f;
      if (back[i] != expected) FAIL("element " << i << ": " << back[i] << " != " << expected);
    }
    a.copy_from_host(in.data() + 10, 40, 4 * 10, &stream);  // an offset upload
    a.copy_to_host(out.data(), 40, 4 * 10);
    CHECK(out[0] == in[10]);

    const MockCounters counters = device.mock.counters();
    CHECK(counters.allocations == 2);
    CHECK(counters.bytes_allocated == 2 * bytes);
    CHECK(counters.bytes_to_device == bytes + 40);
    CHECK(counters.bytes_to_host == 2 * bytes + 40);
    CHECK(counters.bytes_device_to_device == bytes + 400);
    CHECK(counters.bytes_set == bytes);

    DeviceBuffer moved = std::move(a);
    CHECK(a.get() == 0);
    CHECK(moved.size() == bytes);
    DeviceBuffer empty(device.context, 0);
    CHECK(empty.get() == 0);
    CHECK_NOTHROW(empty.copy_from_host(nullptr, 0));
  }
  const MockCounters counters = device.mock.counters();
  CHECK(counters.frees == 2);
  CHECK(counters.bytes_allocated == 0);
}

TEST_CASE("cuda mock: out of memory names the request and the free and total memory") {
  MockDevice device({.total_memory = std::size_t{1} << 20});
  std::optional<DeviceBuffer> big(std::in_place, device.context, 768 * 1024);
  try {
    DeviceBuffer more(device.context, 512 * 1024);
    FAIL("the allocation did not throw");
  } catch (const CudaError& e) {
    CHECK(e.code() == CUDA_ERROR_OUT_OF_MEMORY);
    CHECK(e.call() == "cuMemAlloc");
    CHECK(std::string(e.what()) ==
          "cuMemAlloc: CUDA_ERROR_OUT_OF_MEMORY (2): out of memory: cannot allocate 512.0 KiB "
          "(524288 bytes) on device 0 (Kiln mock GPU): 256.0 KiB (262144 bytes) free of 1.0 MiB "
          "(1048576 bytes)");
  }
  big.reset();
  CHECK_NOTHROW(DeviceBuffer(device.context, 512 * 1024));
}

TEST_CASE("cuda mock: bad pointers, handles and contexts fail as the real driver's do") {
  MockDevice device;
  const DriverApi& api = device.mock.api();
  device.context->make_current();
  CUdeviceptr p = 0;
  REQUIRE(api.cuMemAlloc_v2(&p, 64) == CUDA_SUCCESS);
  char host[128] = {};
  CHECK(api.cuMemcpyHtoD_v2(p + 32, host, 32) == CUDA_SUCCESS);
  CHECK(api.cuMemcpyHtoD_v2(p + 32, host, 33) == CUDA_ERROR_INVALID_VALUE);  // past the end
  CHECK(api.cuMemcpyDtoH_v2(host, p - 1, 8) == CUDA_ERROR_INVALID_VALUE);    // before it
  CHECK(api.cuMemcpyDtoD_v2(p, p + 8, 64) == CUDA_ERROR_INVALID_VALUE);
  CHECK(api.cuMemsetD8_v2(p, 0, 65) == CUDA_ERROR_INVALID_VALUE);
  CHECK(api.cuMemcpyHtoD_v2(0x10, host, 8) == CUDA_ERROR_INVALID_VALUE);  // unknown
  CHECK(api.cuMemcpyHtoDAsync_v2(p, host, 8, reinterpret_cast<CUstream>(0x8)) ==
        CUDA_ERROR_INVALID_HANDLE);
  CHECK(api.cuMemAlloc_v2(&p, 0) == CUDA_ERROR_INVALID_VALUE);
  CHECK(api.cuMemFree_v2(p) == CUDA_SUCCESS);
  CHECK(api.cuMemFree_v2(p) == CUDA_ERROR_INVALID_VALUE);              // twice
  CHECK(api.cuMemcpyHtoD_v2(p, host, 8) == CUDA_ERROR_INVALID_VALUE);  // freed
  CHECK(api.cuStreamDestroy_v2(reinterpret_cast<CUstream>(0x8)) == CUDA_ERROR_INVALID_HANDLE);
  CHECK(api.cuCtxSetCurrent(reinterpret_cast<CUcontext>(0x8)) == CUDA_ERROR_INVALID_CONTEXT);
  CHECK(api.cuDevicePrimaryCtxRelease_v2(3) == CUDA_ERROR_INVALID_DEVICE);

  // The current context belongs to a thread: a thread that set none gets none.
  CUresult other_thread = CUDA_SUCCESS;
  std::thread([&] { other_thread = api.cuMemAlloc_v2(&p, 64); }).join();
  CHECK(other_thread == CUDA_ERROR_INVALID_CONTEXT);

  // The device layer checks its own ranges before the driver sees them.
  DeviceBuffer buffer(device.context, 16);
  CHECK_THROWS_AS(buffer.copy_from_host(host, 17), std::out_of_range);
  CHECK_THROWS_WITH(buffer.copy_to_host(host, 8, 12),
                    "copy to the host: 8 bytes at offset 12 overrun a device buffer of 16 bytes");
  DeviceBuffer small(device.context, 8);
  CHECK_THROWS_AS(small.copy_from(buffer, 16), std::out_of_range);
}

TEST_CASE("cuda mock: a launch runs the registered host function over the grid") {
  MockDevice device;
  device.mock.register_image(kSaxpyImage, {{"saxpy", saxpy}});
  Module module(device.context, kSaxpyImage);
  const Kernel kernel = module.function("saxpy");
  CHECK(kernel.name == "saxpy");
  CHECK(module.function("saxpy").handle == kernel.handle);  // one handle per name

  int n = 1000;
  float a = 2.f;
  std::vector<float> x(n), y(n);
  for (int i = 0; i < n; ++i) {
    x[i] = static_cast<float>(i);
    y[i] = 1.f - static_cast<float>(i);
  }
  DeviceBuffer dx(device.context, n * sizeof(float)), dy(device.context, n * sizeof(float));
  dx.copy_from_host(x.data(), n * sizeof(float));
  dy.copy_from_host(y.data(), n * sizeof(float));
  CUdeviceptr px = dx.get(), py = dy.get();
  void* args[] = {&n, &a, &px, &py};
  const unsigned block = 128, grid = (n + block - 1) / block;
  launch(kernel, {grid}, {block}, 0, nullptr, args);
  Stream stream(device.context);
  launch(kernel, {grid}, {block}, 0, &stream, args);  // again, on a stream: y = 4x + y
  stream.synchronize();
  std::vector<float> out(n);
  dy.copy_to_host(out.data(), n * sizeof(float));
  for (int i = 0; i < n; ++i)
    if (out[i] != 4.f * x[i] + y[i]) FAIL("y[" << i << "] = " << out[i]);
  CHECK(device.mock.counters().launches == 2);
}

TEST_CASE("cuda mock: module and launch errors") {
  MockDevice device;
  const char unknown_image[] = "// registered nowhere";
  try {
    Module module(device.context, unknown_image);
    FAIL("loading an unknown image did not throw");
  } catch (const CudaError& e) {
    CHECK(e.code() == CUDA_ERROR_INVALID_IMAGE);
    CHECK_THAT(e.what(), Contains("cuModuleLoadData: CUDA_ERROR_INVALID_IMAGE (200)"));
  }

  device.mock.register_image(kSaxpyImage,
                             {{"saxpy", saxpy}, {"fails", [](void**, Dim3, Dim3) {
                                                   throw std::runtime_error("kernel fault");
                                                 }}});
  Module module(device.context, kSaxpyImage);
  try {
    (void)module.function("saxpi");
    FAIL("an unknown kernel did not throw");
  } catch (const CudaError& e) {
    CHECK(e.code() == CUDA_ERROR_NOT_FOUND);
    CHECK(std::string(e.what()) ==
          "cuModuleGetFunction: CUDA_ERROR_NOT_FOUND (500): named symbol not found: kernel "
          "\"saxpi\"");
  }

  const Kernel kernel = module.function("saxpy");
  try {
    launch(kernel, {1}, {2048}, 0, nullptr, {});
    FAIL("a block of 2048 threads did not throw");
  } catch (const CudaError& e) {
    CHECK(e.code() == CUDA_ERROR_INVALID_VALUE);
    CHECK_THAT(e.what(), Contains("cuLaunchKernel: CUDA_ERROR_INVALID_VALUE (1)"));
    CHECK_THAT(e.what(), Contains("kernel \"saxpy\", grid 1x1x1, block 2048x1x1"));
  }
  CHECK_THROWS_AS(launch(kernel, {0}, {32}, 0, nullptr, {}), CudaError);
  CHECK_THROWS_AS(launch(kernel, {1}, {32}, 64 * 1024, nullptr, {}), CudaError);
  CHECK_THROWS_AS(launch(Kernel{}, {1}, {32}, 0, nullptr, {}), std::invalid_argument);
  try {
    launch(module.function("fails"), {1}, {1}, 0, nullptr, {});
    FAIL("a failing kernel did not throw");
  } catch (const CudaError& e) {
    CHECK(e.code() == CUDA_ERROR_LAUNCH_FAILED);
  }

  // A function of an unloaded module is a stale handle.
  const DriverApi& api = device.mock.api();
  CUmodule raw = nullptr;
  CUfunction function = nullptr;
  REQUIRE(api.cuModuleLoadData(&raw, kSaxpyImage) == CUDA_SUCCESS);
  REQUIRE(api.cuModuleGetFunction(&function, raw, "saxpy") == CUDA_SUCCESS);
  REQUIRE(api.cuModuleUnload(raw) == CUDA_SUCCESS);
  CHECK(api.cuModuleUnload(raw) == CUDA_ERROR_INVALID_HANDLE);
  CHECK(api.cuLaunchKernel(function, 1, 1, 1, 1, 1, 1, 0, nullptr, nullptr, nullptr) ==
        CUDA_ERROR_INVALID_HANDLE);
  CHECK(api.cuModuleGetFunction(&function, raw, "saxpy") == CUDA_ERROR_INVALID_HANDLE);
}

TEST_CASE("cuda mock: before cuInit, a second mock, and objects outliving the mock") {
  std::optional<DeviceBuffer> survivor;
  {
    MockDriver mock;
    CHECK_THROWS_AS(MockDriver(), std::logic_error);
    int count = -1;
    CHECK(mock.api().cuDeviceGetCount(&count) == CUDA_ERROR_NOT_INITIALIZED);
    ScopedDriverOverride use(mock.api(), "mock");  // probing calls cuInit
    CHECK(mock.api().cuDeviceGetCount(&count) == CUDA_SUCCESS);
    CHECK(count == 1);
    survivor.emplace(Context::retain(0), 64);
  }
  int count = -1;
  CHECK(survivor->context()->api().cuDeviceGetCount(&count) == CUDA_ERROR_DEINITIALIZED);
  CHECK_NOTHROW(survivor.reset());  // its free fails quietly
}
