// A thin RAII layer over the driver table (driver.h): device properties, primary contexts,
// device memory, streams, modules and kernel launches. Every object keeps the Context it was made
// in alive and makes it current before each driver call, so the context outlives its buffers,
// streams and modules, and any thread may use any object (cuCtxSetCurrent is a thread-local
// store). Each object also keeps the driver table it was made with, so a test's mock stays in
// use by the objects made under it. Failures throw CudaError (or UnavailableError when there is
// no driver); destructors never throw and ignore the driver's answer.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>

#include "kiln/runtime/cuda/driver.h"

namespace kiln::runtime::cuda {

// What the driver says about one device.
struct DeviceInfo {
  int ordinal = 0;
  std::string name;
  int major = 0, minor = 0;  // compute capability
  int sm_count = 0;
  int max_threads_per_block = 0;
  int max_shared_memory_per_block = 0;  // bytes, without opting in to more
  std::size_t total_memory = 0;         // bytes

  // The GPU architecture as ptxas names it: "sm_90".
  std::string arch() const;
};

// Free and total bytes of a device's memory (cuMemGetInfo).
struct MemoryInfo {
  std::size_t free = 0, total = 0;
};

// The number of devices; 0 when the driver is unavailable. Never throws but std::bad_alloc.
int device_count();
// The properties of device `ordinal`. Throws UnavailableError, or CudaError
// (CUDA_ERROR_INVALID_DEVICE) for an ordinal the driver does not know.
DeviceInfo device_info(int ordinal);
// "1.5 GiB (1610612736 bytes)", or "100 bytes" below 1 KiB: sizes in messages.
std::string format_bytes(std::size_t bytes);

// A device's primary context (the one cudart and cuBLASLt share), retained while this lives.
class Context {
 public:
  // Retains device `ordinal`'s primary context. Throws UnavailableError or CudaError.
  static std::shared_ptr<const Context> retain(int ordinal);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  const DeviceInfo& info() const { return info_; }
  CUcontext handle() const { return handle_; }
  // The driver table this context and everything made in it use.
  const DriverApi& api() const { return *api_; }
  // Makes this context current on the calling thread.
  void make_current() const;
  // The device's free and total memory now.
  MemoryInfo memory_info() const;

 private:
  Context(const DriverApi& api, DeviceInfo info, CUdevice device, CUcontext handle);

  const DriverApi* api_;
  DeviceInfo info_;
  CUdevice device_;
  CUcontext handle_;
};

using ContextPtr = std::shared_ptr<const Context>;

// A stream of the context's device; work on it runs in order, asynchronously to the host.
class Stream {
 public:
  // Creates a stream that also waits for work on the default stream (cuStreamCreate flags 0), so
  // the synchronous copies of DeviceBuffer are ordered with it.
  explicit Stream(ContextPtr context);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  CUstream handle() const { return handle_; }
  const ContextPtr& context() const { return context_; }
  // Waits until all work queued on this stream has finished; reports the first failure.
  void synchronize() const;

 private:
  ContextPtr context_;
  CUstream handle_ = nullptr;
};

// Device memory: one cuMemAlloc'd block, freed on destruction. Copies without a stream are
// synchronous; with one they are queued on it, and host memory must stay valid until the stream
// is synchronised. Offsets and sizes past the end throw std::out_of_range.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  // Allocates `bytes` on the context's device (nothing for 0 bytes). Out of memory throws a
  // CudaError whose message names the request and the device's free and total memory.
  DeviceBuffer(ContextPtr context, std::size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  // The device address (0 when empty).
  CUdeviceptr get() const { return ptr_; }
  std::size_t size() const { return size_; }
  const ContextPtr& context() const { return context_; }

  // Copies `bytes` from host memory `src` to this buffer at `offset`.
  void copy_from_host(const void* src, std::size_t bytes, std::size_t offset = 0,
                      const Stream* stream = nullptr);
  // Copies `bytes` from this buffer at `offset` to host memory `dst`.
  void copy_to_host(void* dst, std::size_t bytes, std::size_t offset = 0,
                    const Stream* stream = nullptr) const;
  // Copies `bytes` from `src` at `src_offset` to this buffer at `dst_offset`.
  void copy_from(const DeviceBuffer& src, std::size_t bytes, std::size_t src_offset = 0,
                 std::size_t dst_offset = 0, const Stream* stream = nullptr);
  // Sets every byte to `value`.
  void fill(unsigned char value, const Stream* stream = nullptr);

 private:
  void check_range(std::size_t offset, std::size_t bytes, const char* what) const;

  ContextPtr context_;
  CUdeviceptr ptr_ = 0;
  std::size_t size_ = 0;
};

// Sets `bytes` bytes at device address `ptr` (memory of `context`) to `value`, queued on `stream`
// (nullptr: synchronously on the default stream).
void fill_bytes(const Context& context, CUdeviceptr ptr, std::size_t bytes, unsigned char value,
                const Stream* stream = nullptr);

// Copies `bytes` bytes from device address `src` (memory of `context`) to host memory `dst`,
// queued on `stream` (nullptr: synchronously).
void copy_to_host(const Context& context, void* dst, CUdeviceptr src, std::size_t bytes,
                  const Stream* stream = nullptr);

// A kernel of a loaded Module; valid while the module lives.
struct Kernel {
  const Context* context = nullptr;
  CUfunction handle = nullptr;
  std::string name;
};

// Code loaded into a context: PTX text or a cubin/fatbin image; unloaded on destruction.
class Module {
 public:
  // Loads `image`: NUL-terminated PTX, or cubin/fatbin bytes (self-describing), passed to
  // cuModuleLoadData as is. Throws CudaError (CUDA_ERROR_INVALID_PTX, CUDA_ERROR_INVALID_IMAGE,
  // CUDA_ERROR_NO_BINARY_FOR_GPU, ...).
  Module(ContextPtr context, const void* image);
  ~Module();
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  CUmodule handle() const { return handle_; }
  // The context the module is loaded in.
  const ContextPtr& context() const { return context_; }
  // The kernel named `name`. Throws CudaError (CUDA_ERROR_NOT_FOUND) naming it.
  Kernel function(const std::string& name) const;

 private:
  ContextPtr context_;
  CUmodule handle_ = nullptr;
};

// Launches `kernel` over `grid` blocks of `block` threads with `shared_bytes` of dynamic shared
// memory, on `stream` (nullptr: the default stream). `args` holds a pointer to each parameter's
// value, in order (cuLaunchKernel's kernelParams). Asynchronous: errors inside the kernel show
// up at the next synchronisation. Throws CudaError naming the kernel.
void launch(const Kernel& kernel, Dim3 grid, Dim3 block, unsigned shared_bytes,
            const Stream* stream, std::span<void* const> args);

}  // namespace kiln::runtime::cuda
