// A CUDA driver that runs on the host, for tests on machines without a GPU (all of CI). It
// answers the DriverApi table like the real driver, errors included: device memory is aligned
// host memory (so a host function may dereference a CUdeviceptr), tracked so that double frees,
// unknown pointers and copies past an allocation fail with CUDA_ERROR_INVALID_VALUE; calls that
// need a context fail with CUDA_ERROR_INVALID_CONTEXT unless the calling thread made a retained
// one current; streams run work at once. Its one kind of device, "Kiln mock GPU", is an sm_90
// with a configurable amount of memory, so tests can run out of it.
//
// Kernels: a test (later, the codegen host shim) registers an image, any address standing for a
// PTX text or fatbin, with a host function per kernel name. cuModuleLoadData(image) finds the
// image by address (unknown: CUDA_ERROR_INVALID_IMAGE), cuModuleGetFunction finds the name
// (unknown: CUDA_ERROR_NOT_FOUND), and cuLaunchKernel calls the host function once with the
// launch's kernelParams, grid and block: the function runs the whole grid itself.
//
// The JIT linker (cuLinkCreate ... cuLinkComplete) takes PTX with a .version and a .target of
// sm_90 or older and gives a "cubin" that is kMockCubinMagic followed by the PTX; other input
// fails with CUDA_ERROR_INVALID_PTX and a line in the error log. Such a cubin loads like any
// image: register its address.
//
// Use: `MockDriver mock; ScopedDriverOverride use(mock.api());`, then the device layer
// (device.h) as usual. One MockDriver may exist at a time; destroy it only while no other thread
// calls its table. Calls after it is gone return CUDA_ERROR_DEINITIALIZED.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "kiln/runtime/cuda/driver_api.h"

namespace kiln::runtime::cuda {

// The first bytes of the mock linker's cubins.
inline constexpr const char* kMockCubinMagic = "KILN MOCK CUBIN sm_90\n";

// A kernel's host build: `args` is cuLaunchKernel's kernelParams (a pointer to each parameter's
// value); it runs every thread of `grid` x `block`.
using MockKernel = std::function<void(void** args, Dim3 grid, Dim3 block)>;

// How the mock behaves.
struct MockOptions {
  std::size_t total_memory = std::size_t{1} << 30;  // per device
  int device_count = 1;
  CUresult init_result = CUDA_SUCCESS;  // what cuInit returns (CUDA_ERROR_NO_DEVICE, ...)
  int driver_version = 13000;
};

// What the mock has been asked to do so far.
struct MockCounters {
  long long launches = 0;
  long long links = 0;              // successful cuLinkComplete calls
  long long allocations = 0;        // successful cuMemAlloc calls
  long long frees = 0;              // successful cuMemFree calls
  std::size_t bytes_allocated = 0;  // live now
  std::size_t bytes_to_device = 0, bytes_to_host = 0, bytes_device_to_device = 0, bytes_set = 0;
};

struct MockState;

// The mock driver; see the top of this file.
class MockDriver {
 public:
  // The name cuDeviceGetName gives.
  static constexpr const char* kDeviceName = "Kiln mock GPU";

  // Becomes the table's backing state. Throws std::logic_error while another MockDriver lives.
  explicit MockDriver(MockOptions options = {});
  ~MockDriver();
  MockDriver(const MockDriver&) = delete;
  MockDriver& operator=(const MockDriver&) = delete;

  // The entry points (static: they outlive this object and then fail cleanly).
  const DriverApi& api() const;
  // Makes cuModuleLoadData(image) load `kernels`; a later registration of the same address
  // replaces the earlier one for modules loaded afterwards.
  void register_image(const void* image, std::map<std::string, MockKernel> kernels);
  MockCounters counters() const;

 private:
  std::unique_ptr<MockState> state_;
};

}  // namespace kiln::runtime::cuda
