#include "kiln/runtime/cuda/device.h"

#include <cstdio>
#include <stdexcept>
#include <utility>

namespace kiln::runtime::cuda {
namespace {

CUstream stream_handle(const Stream* stream) {
  return stream != nullptr ? stream->handle() : nullptr;
}

int attribute(const DriverApi& api, CUdevice device, CUdevice_attribute which) {
  int value = 0;
  check(api, api.cuDeviceGetAttribute(&value, which, device), "cuDeviceGetAttribute");
  return value;
}

}  // namespace

std::string DeviceInfo::arch() const {
  return "sm_" + std::to_string(major) + std::to_string(minor);
}

int device_count() {
  const DriverStatus& status = driver_status();
  return status.available() ? status.device_count : 0;
}

DeviceInfo device_info(int ordinal) {
  const DriverApi& api = driver();
  CUdevice device = 0;
  check(api, api.cuDeviceGet(&device, ordinal), "cuDeviceGet", "device " + std::to_string(ordinal));
  DeviceInfo info;
  info.ordinal = ordinal;
  char name[256] = {};
  check(api, api.cuDeviceGetName(name, sizeof name - 1, device), "cuDeviceGetName");
  info.name = name;
  info.major = attribute(api, device, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
  info.minor = attribute(api, device, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
  info.sm_count = attribute(api, device, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
  info.max_threads_per_block = attribute(api, device, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK);
  info.max_shared_memory_per_block =
      attribute(api, device, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK);
  check(api, api.cuDeviceTotalMem_v2(&info.total_memory, device), "cuDeviceTotalMem");
  return info;
}

std::string format_bytes(std::size_t bytes) {
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return std::to_string(bytes) + (bytes == 1 ? " byte" : " bytes");
  double value = static_cast<double>(bytes) / 1024;
  int unit = 0;
  while (value >= 1024 && unit + 1 < 5) {
    value /= 1024;
    ++unit;
  }
  char text[64];
  std::snprintf(text, sizeof text, "%.1f %s (%zu bytes)", value, kUnits[unit], bytes);
  return text;
}

Context::Context(const DriverApi& api, DeviceInfo info, CUdevice device, CUcontext handle)
    : api_(&api), info_(std::move(info)), device_(device), handle_(handle) {}

std::shared_ptr<const Context> Context::retain(int ordinal) {
  const DriverApi& api = driver();
  DeviceInfo info = device_info(ordinal);
  CUdevice device = 0;
  check(api, api.cuDeviceGet(&device, ordinal), "cuDeviceGet");
  CUcontext handle = nullptr;
  check(api, api.cuDevicePrimaryCtxRetain(&handle, device), "cuDevicePrimaryCtxRetain");
  // Not make_shared: the constructor is private.
  return std::shared_ptr<const Context>(new Context(api, std::move(info), device, handle));
}

Context::~Context() {
  api_->cuDevicePrimaryCtxRelease_v2(device_);
}

void Context::make_current() const {
  check(*api_, api_->cuCtxSetCurrent(handle_), "cuCtxSetCurrent");
}

MemoryInfo Context::memory_info() const {
  make_current();
  MemoryInfo memory;
  check(*api_, api_->cuMemGetInfo_v2(&memory.free, &memory.total), "cuMemGetInfo");
  return memory;
}

Stream::Stream(ContextPtr context) : context_(std::move(context)) {
  context_->make_current();
  check(context_->api(), context_->api().cuStreamCreate(&handle_, 0), "cuStreamCreate");
}

Stream::~Stream() {
  const DriverApi& api = context_->api();
  if (api.cuCtxSetCurrent(context_->handle()) == CUDA_SUCCESS) api.cuStreamDestroy_v2(handle_);
}

void Stream::synchronize() const {
  context_->make_current();
  check(context_->api(), context_->api().cuStreamSynchronize(handle_), "cuStreamSynchronize");
}

DeviceBuffer::DeviceBuffer(ContextPtr context, std::size_t bytes) : context_(std::move(context)) {
  if (bytes == 0) return;  // the driver rejects empty allocations
  context_->make_current();
  const DriverApi& api = context_->api();
  const CUresult result = api.cuMemAlloc_v2(&ptr_, bytes);
  if (result == CUDA_SUCCESS) {
    size_ = bytes;
    return;
  }
  ptr_ = 0;
  std::string detail = "cannot allocate " + format_bytes(bytes) + " on device " +
                       std::to_string(context_->info().ordinal) + " (" + context_->info().name +
                       ")";
  MemoryInfo memory;
  if (result == CUDA_ERROR_OUT_OF_MEMORY &&
      api.cuMemGetInfo_v2(&memory.free, &memory.total) == CUDA_SUCCESS)
    detail += ": " + format_bytes(memory.free) + " free of " + format_bytes(memory.total);
  throw_cuda_error(api, result, "cuMemAlloc", detail);
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_ == 0) return;
  const DriverApi& api = context_->api();
  if (api.cuCtxSetCurrent(context_->handle()) == CUDA_SUCCESS) api.cuMemFree_v2(ptr_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : context_(std::move(other.context_)),
      ptr_(std::exchange(other.ptr_, 0)),
      size_(std::exchange(other.size_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    DeviceBuffer old(std::move(*this));  // freed at the end of this scope
    context_ = std::move(other.context_);
    ptr_ = std::exchange(other.ptr_, 0);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void DeviceBuffer::check_range(std::size_t offset, std::size_t bytes, const char* what) const {
  if (offset > size_ || bytes > size_ - offset)
    throw std::out_of_range(std::string(what) + ": " + std::to_string(bytes) + " bytes at offset " +
                            std::to_string(offset) + " overrun a device buffer of " +
                            std::to_string(size_) + " bytes");
}

void DeviceBuffer::copy_from_host(const void* src, std::size_t bytes, std::size_t offset,
                                  const Stream* stream) {
  check_range(offset, bytes, "copy to the device");
  if (bytes == 0) return;
  context_->make_current();
  const DriverApi& api = context_->api();
  if (stream != nullptr)
    check(api, api.cuMemcpyHtoDAsync_v2(ptr_ + offset, src, bytes, stream->handle()),
          "cuMemcpyHtoDAsync");
  else
    check(api, api.cuMemcpyHtoD_v2(ptr_ + offset, src, bytes), "cuMemcpyHtoD");
}

void DeviceBuffer::copy_to_host(void* dst, std::size_t bytes, std::size_t offset,
                                const Stream* stream) const {
  check_range(offset, bytes, "copy to the host");
  cuda::copy_to_host(*context_, dst, ptr_ + offset, bytes, stream);
}

void copy_to_host(const Context& context, void* dst, CUdeviceptr src, std::size_t bytes,
                  const Stream* stream) {
  if (bytes == 0) return;
  context.make_current();
  const DriverApi& api = context.api();
  if (stream != nullptr)
    check(api, api.cuMemcpyDtoHAsync_v2(dst, src, bytes, stream->handle()), "cuMemcpyDtoHAsync");
  else
    check(api, api.cuMemcpyDtoH_v2(dst, src, bytes), "cuMemcpyDtoH");
}

void DeviceBuffer::copy_from(const DeviceBuffer& src, std::size_t bytes, std::size_t src_offset,
                             std::size_t dst_offset, const Stream* stream) {
  src.check_range(src_offset, bytes, "device copy source");
  check_range(dst_offset, bytes, "device copy destination");
  if (bytes == 0) return;
  context_->make_current();
  const DriverApi& api = context_->api();
  if (stream != nullptr)
    check(
        api,
        api.cuMemcpyDtoDAsync_v2(ptr_ + dst_offset, src.ptr_ + src_offset, bytes, stream->handle()),
        "cuMemcpyDtoDAsync");
  else
    check(api, api.cuMemcpyDtoD_v2(ptr_ + dst_offset, src.ptr_ + src_offset, bytes),
          "cuMemcpyDtoD");
}

void DeviceBuffer::fill(unsigned char value, const Stream* stream) {
  if (size_ == 0) return;
  fill_bytes(*context_, ptr_, size_, value, stream);
}

void fill_bytes(const Context& context, CUdeviceptr ptr, std::size_t bytes, unsigned char value,
                const Stream* stream) {
  if (bytes == 0) return;
  context.make_current();
  const DriverApi& api = context.api();
  if (stream != nullptr)
    check(api, api.cuMemsetD8Async(ptr, value, bytes, stream->handle()), "cuMemsetD8Async");
  else
    check(api, api.cuMemsetD8_v2(ptr, value, bytes), "cuMemsetD8");
}

Module::Module(ContextPtr context, const void* image) : context_(std::move(context)) {
  context_->make_current();
  check(context_->api(), context_->api().cuModuleLoadData(&handle_, image), "cuModuleLoadData");
}

Module::~Module() {
  const DriverApi& api = context_->api();
  if (api.cuCtxSetCurrent(context_->handle()) == CUDA_SUCCESS) api.cuModuleUnload(handle_);
}

Kernel Module::function(const std::string& name) const {
  context_->make_current();
  Kernel kernel{context_.get(), nullptr, name};
  check(context_->api(), context_->api().cuModuleGetFunction(&kernel.handle, handle_, name.c_str()),
        "cuModuleGetFunction", "kernel \"" + name + "\"");
  return kernel;
}

void launch(const Kernel& kernel, Dim3 grid, Dim3 block, unsigned shared_bytes,
            const Stream* stream, std::span<void* const> args) {
  if (kernel.context == nullptr) throw std::invalid_argument("launch: the kernel is empty");
  kernel.context->make_current();
  const DriverApi& api = kernel.context->api();
  // The driver only reads kernelParams; its signature predates const.
  void** params = args.empty() ? nullptr : const_cast<void**>(args.data());
  const CUresult result =
      api.cuLaunchKernel(kernel.handle, grid.x, grid.y, grid.z, block.x, block.y, block.z,
                         shared_bytes, stream_handle(stream), params, nullptr);
  if (result != CUDA_SUCCESS)
    throw_cuda_error(api, result, "cuLaunchKernel",
                     "kernel \"" + kernel.name + "\", grid " + std::to_string(grid.x) + "x" +
                         std::to_string(grid.y) + "x" + std::to_string(grid.z) + ", block " +
                         std::to_string(block.x) + "x" + std::to_string(block.y) + "x" +
                         std::to_string(block.z) + ", " + std::to_string(shared_bytes) +
                         " shared bytes");
}

}  // namespace kiln::runtime::cuda
