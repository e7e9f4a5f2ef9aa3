#include "kiln/runtime/cuda/mock_driver.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <stdexcept>
#include <utility>
#include <vector>

#include "kiln/runtime/cuda/driver.h"

namespace kiln::runtime::cuda {

struct MockState {
  struct Allocation {
    std::unique_ptr<void, decltype(&std::free)> memory{nullptr, &std::free};
    std::size_t size = 0;
  };
  struct Module {
    std::map<std::string, MockKernel> kernels;
    std::map<std::string, std::uintptr_t> functions;  // handed out so far, by name
  };
  struct Function {
    std::uintptr_t module = 0;
    MockKernel kernel;
  };

  MockOptions options;
  mutable std::mutex mutex;
  bool initialized = false;
  std::vector<std::uintptr_t> contexts;  // the primary context of each device
  std::vector<int> context_refs;
  std::map<std::uintptr_t, Allocation> allocations;  // by address
  std::size_t used = 0;
  std::set<std::uintptr_t> streams;
  std::map<const void*, std::map<std::string, MockKernel>> images;
  std::map<std::uintptr_t, Module> modules;
  std::map<std::uintptr_t, Function> functions;
  struct Link {
    char* error_log = nullptr;  // the caller's CU_JIT_ERROR_LOG_BUFFER, if given
    std::size_t error_log_size = 0;
    std::string cubin;  // the "compiled" inputs: kMockCubinMagic, then each PTX text
  };
  std::map<std::uintptr_t, Link> links;
  MockCounters counters;
};

namespace {

// Alignment of allocations: the real driver's is at least 256 bytes.
constexpr std::size_t kAlignment = 256;
constexpr int kMaxThreadsPerBlock = 1024;
constexpr int kMaxSharedPerBlock = 48 * 1024;

std::atomic<MockState*> g_mock{nullptr};
// Handles of contexts, streams, modules and functions: never reused in a process, so a stale
// handle is always recognised as one.
std::atomic<std::uintptr_t> g_next_handle{0x1000};
// The calling thread's current context, as cuCtxSetCurrent keeps one per thread.
thread_local std::uintptr_t t_current_context = 0;

std::uintptr_t new_handle() {
  return g_next_handle.fetch_add(16);
}

template <class T>
T* as_handle(std::uintptr_t value) {
  return reinterpret_cast<T*>(value);
}

std::uintptr_t handle_value(const void* handle) {
  return reinterpret_cast<std::uintptr_t>(handle);
}

// Runs `body` on the live mock, locked; the real driver's answers when it cannot.
template <class Body>
CUresult with_mock(Body&& body) {
  MockState* mock = g_mock.load(std::memory_order_acquire);
  if (mock == nullptr) return CUDA_ERROR_DEINITIALIZED;
  std::lock_guard lock(mock->mutex);
  if (!mock->initialized) return CUDA_ERROR_NOT_INITIALIZED;
  return body(*mock);
}

bool valid_device(const MockState& mock, CUdevice device) {
  return device >= 0 && device < mock.options.device_count;
}

bool has_context(const MockState& mock) {
  for (std::size_t d = 0; d < mock.contexts.size(); ++d)
    if (mock.contexts[d] == t_current_context) return mock.context_refs[d] > 0;
  return false;
}

bool valid_stream(const MockState& mock, CUstream stream) {
  return stream == nullptr || mock.streams.count(handle_value(stream)) != 0;
}

// Whether [ptr, ptr + bytes) lies inside one allocation.
bool valid_range(const MockState& mock, CUdeviceptr ptr, std::size_t bytes) {
  auto it = mock.allocations.upper_bound(static_cast<std::uintptr_t>(ptr));
  if (it == mock.allocations.begin()) return false;
  --it;
  const std::uintptr_t offset = static_cast<std::uintptr_t>(ptr) - it->first;
  return offset < it->second.size && bytes <= it->second.size - offset;
}

void* host(CUdeviceptr ptr) {
  return reinterpret_cast<void*>(static_cast<std::uintptr_t>(ptr));
}

CUresult mock_init(unsigned int flags) {
  MockState* mock = g_mock.load(std::memory_order_acquire);
  if (mock == nullptr) return CUDA_ERROR_DEINITIALIZED;
  if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard lock(mock->mutex);
  if (mock->options.init_result != CUDA_SUCCESS) return mock->options.init_result;
  mock->initialized = true;
  return CUDA_SUCCESS;
}

CUresult mock_driver_get_version(int* version) {
  MockState* mock = g_mock.load(std::memory_order_acquire);
  if (mock == nullptr) return CUDA_ERROR_DEINITIALIZED;
  if (version == nullptr) return CUDA_ERROR_INVALID_VALUE;
  *version = mock->options.driver_version;
  return CUDA_SUCCESS;
}

// Like the real driver's, these work without cuInit and without a mock.
CUresult mock_get_error_name(CUresult code, const char** name) {
  if (name == nullptr) return CUDA_ERROR_INVALID_VALUE;
  *name = known_error_name(code);
  return *name != nullptr ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

CUresult mock_get_error_string(CUresult code, const char** text) {
  if (text == nullptr) return CUDA_ERROR_INVALID_VALUE;
  *text = known_error_string(code);
  return *text != nullptr ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

CUresult mock_device_get_count(int* count) {
  return with_mock([&](MockState& mock) {
    if (count == nullptr) return CUDA_ERROR_INVALID_VALUE;
    *count = mock.options.device_count;
    return CUDA_SUCCESS;
  });
}

CUresult mock_device_get(CUdevice* device, int ordinal) {
  return with_mock([&](MockState& mock) {
    if (device == nullptr) return CUDA_ERROR_INVALID_VALUE;
    if (!valid_device(mock, ordinal)) return CUDA_ERROR_INVALID_DEVICE;
    *device = ordinal;
    return CUDA_SUCCESS;
  });
}

CUresult mock_device_get_name(char* name, int length, CUdevice device) {
  return with_mock([&](MockState& mock) {
    if (name == nullptr || length <= 0) return CUDA_ERROR_INVALID_VALUE;
    if (!valid_device(mock, device)) return CUDA_ERROR_INVALID_DEVICE;
    const std::size_t n =
        std::min(std::strlen(MockDriver::kDeviceName), static_cast<std::size_t>(length) - 1);
    std::memcpy(name, MockDriver::kDeviceName, n);
    name[n] = '\0';
    return CUDA_SUCCESS;
  });
}

CUresult mock_device_get_attribute(int* value, CUdevice_attribute which, CUdevice device) {
  return with_mock([&](MockState& mock) {
    if (value == nullptr) return CUDA_ERROR_INVALID_VALUE;
    if (!valid_device(mock, device)) return CUDA_ERROR_INVALID_DEVICE;
    switch (which) {
      case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR:
        *value = 9;
        return CUDA_SUCCESS;
      case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR:
        *value = 0;
        return CUDA_SUCCESS;
      case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT:
        *value = 132;  // an H100 SXM's
        return CUDA_SUCCESS;
      case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK:
        *value = kMaxThreadsPerBlock;
        return CUDA_SUCCESS;
      case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK:
        *value = kMaxSharedPerBlock;
        return CUDA_SUCCESS;
      case CU_DEVICE_ATTRIBUTE_WARP_SIZE:
        *value = 32;
        return CUDA_SUCCESS;
      default:
        return CUDA_ERROR_INVALID_VALUE;
    }
  });
}

CUresult mock_device_total_mem(std::size_t* bytes, CUdevice device) {
  return with_mock([&](MockState& mock) {
    if (bytes == nullptr) return CUDA_ERROR_INVALID_VALUE;
    if (!valid_device(mock, device)) return CUDA_ERROR_INVALID_DEVICE;
    *bytes = mock.options.total_memory;
    return CUDA_SUCCESS;
  });
}

CUresult mock_primary_ctx_retain(CUcontext* context, CUdevice device) {
  return with_mock([&](MockState& mock) {
    if (context == nullptr) return CUDA_ERROR_INVALID_VALUE;
    if (!valid_device(mock, device)) return CUDA_ERROR_INVALID_DEVICE;
    ++mock.context_refs[device];
    *context = as_handle<CUctx_st>(mock.contexts[device]);
    return CUDA_SUCCESS;
  });
}

CUresult mock_primary_ctx_release(CUdevice device) {
  return with_mock([&](MockState& mock) {
    if (!valid_device(mock, device)) return CUDA_ERROR_INVALID_DEVICE;
    if (mock.context_refs[device] == 0) return CUDA_ERROR_INVALID_CONTEXT;
    --mock.context_refs[device];
    return CUDA_SUCCESS;
  });
}

CUresult mock_ctx_set_current(CUcontext context) {
  return with_mock([&](MockState& mock) {
    const std::uintptr_t value = handle_value(context);
    if (value != 0) {
      auto it = std::find(mock.contexts.begin(), mock.contexts.end(), value);
      if (it == mock.contexts.end() || mock.context_refs[it - mock.contexts.begin()] == 0)
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    t_current_context = value;
    return CUDA_SUCCESS;
  });
}

CUresult mock_mem_get_info(std::size_t* free, std::size_t* total) {
  return with_mock([&](MockState& mock) {
    if (!has_context(mock)) return CUDA_ERROR_INVALID_CONTEXT;
    if (free == nullptr || total == nullptr) return CUDA_ERROR_INVALID_VALUE;
    *total = mock.options.total_memory;
    *free = mock.options.total_memory - mock.used;
    return CUDA_SUCCESS;
  });
}

CUresult mock_mem_alloc(CUdeviceptr* ptr, std::size_t bytes) {
  return with_mock([&](MockState& mock) {
    if (!has_context(mock)) return CUDA_ERROR_INVALID_CONTEXT;
    if (ptr == nullptr || bytes == 0) return CUDA_ERROR_INVALID_VALUE;
    if (bytes > mock.options.total_memory - mock.used) return CUDA_ERROR_OUT_OF_MEMORY;
    MockState::Allocation allocation;
    const std::size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    allocation.memory.reset(std::aligned_alloc(kAlignment, rounded));
    if (allocation.memory == nullptr) return CUDA_ERROR_OUT_OF_MEMORY;
    allocation.size = bytes;
    const auto address = reinterpret_cast<std::uintptr_t>(allocation.memory.get());
    mock.allocations.emplace(address, std::move(allocation));
    mock.used += bytes;
    ++mock.counters.allocations;
    mock.counters.bytes_allocated = mock.used;
    *ptr = address;
    return CUDA_SUCCESS;
  });
}

CUresult mock_mem_free(CUdeviceptr ptr) {
  return with_mock([&](MockState& mock) {
    if (!has_context(mock)) return CUDA_ERROR_INVALID_CONTEXT;
    if (ptr == 0) return CUDA_SUCCESS;
    auto it = mock.allocations.find(static_cast<std::uintptr_t>(ptr));
    if (it == mock.allocations.end()) return CUDA_ERROR_INVALID_VALUE;  // unknown, or freed
    mock.used -= it->second.size;
    mock.allocations.erase(it);
    ++mock.counters.frees;
    mock.counters.bytes_allocated = mock.used;
    return CUDA_SUCCESS;
  });
}

// The copies' and memset's checks, then the work; `stream` is checked for the async forms.
CUresult mock_copy(CUdeviceptr dst, bool dst_on_device, CUdeviceptr src, bool src_on_device,
                   std::size_t bytes, CUstream stream) {
  return with_mock([&](MockState& mock) {
    if (!has_context(mock)) return CUDA_ERROR_INVALID_CONTEXT;
    if (!valid_stream(mock, stream)) return CUDA_ERROR_INVALID_HANDLE;
    if (bytes == 0) return CUDA_SUCCESS;
    if (dst == 0 || src == 0) return CUDA_ERROR_INVALID_VALUE;
    if (dst_on_device && !valid_range(mock, dst, bytes)) return CUDA_ERROR_INVALID_VALUE;
    if (src_on_device && !valid_range(mock, src, bytes)) return CUDA_ERROR_INVALID_VALUE;
    std::memmove(host(dst), host(src), bytes);
    std::size_t& counter = !src_on_device   ? mock.counters.bytes_to_device
                           : !dst_on_device ? mock.counters.bytes_to_host
                                            : mock.counters.bytes_device_to_device;
    counter += bytes;
    return CUDA_SUCCESS;
  });
}

CUdeviceptr host_address(const void* ptr) {
  return reinterpret_cast<std::uintptr_t>(ptr);
}

CUresult mock_memcpy_htod(CUdeviceptr dst, const void* src, std::size_t bytes) {
  return mock_copy(dst, true, host_address(src), false, bytes, nullptr);
}
CUresult mock_memcpy_dtoh(void* dst, CUdeviceptr src, std::size_t bytes) {
  return mock_copy(host_address(dst), false, src, true, bytes, nullptr);
}
CUresult mock_memcpy_dtod(CUdeviceptr dst, CUdeviceptr src, std::size_t bytes) {
  return mock_copy(dst, true, src, true, bytes, nullptr);
}
CUresult mock_memcpy_htod_async(CUdeviceptr dst, const void* src, std::size_t bytes, CUstream s) {
  return mock_copy(dst, true, host_address(src), false, bytes, s);
}
CUresult mock_memcpy_dtoh_async(void* dst, CUdeviceptr src, std::size_t bytes, CUstream s) {
  return mock_copy(host_address(dst), false, src, true, bytes, s);
}
CUresult mock_memcpy_dtod_async(CUdeviceptr dst, CUdeviceptr src, std::size_t bytes, CUstream s) {
  return mock_copy(dst, true, src, true, bytes, s);
}

CUresult mock_memset_async(CUdeviceptr dst, unsigned char value, std::size_t bytes, CUstream s) {
  return with_mock([&](MockState& mock) {
    if (!has_context(mock)) return CUDA_ERROR_INVALID_CONTEXT;
    if (!valid_stream(mock, s)) return CUDA_ERROR_INVALID_HANDLE;
    if (bytes == 0) return CUDA_SUCCESS;
    if (!valid_range(mock, dst, bytes)) return CUDA_ERROR_INVALID_VALUE;
    std::memset(host(dst), value, bytes);
    mock.counters.bytes_set += bytes;
    return CUDA_SUCCESS;
  });
}

CUresult mock_memset(CUdeviceptr dst, unsigned char value, std::size_t bytes) {
  return mock_memset_async(dst, value, bytes, nullptr);
}

CUresult mock_stream_create(CUstream* stream, unsigned int flags) {
  return with_mock([&](MockState& mock) {
    if (!has_context(mock)) return CUDA_ERROR_INVALID_CONTEXT;
    if (stream == nullptr || flags > 1) return CUDA_ERROR_INVALID_VALUE;  // 1: non-blocking
    const std::uintptr_t handle = new_handle();
    mock.streams.insert(handle);
    *stream = as_handle<CUstream_st>(handle);
    return CUDA_SUCCESS;
  });
}

CUresult mock_stream_destroy(CUstream stream) {
  return with_mock([&](MockState& mock) {
    if (!has_context(mock)) return CUDA_ERROR_INVALID_CONTEXT;
    return mock.streams.erase(handle_value(stream)) != 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
  });
}

CUresult mock_stream_synchronize(CUstream stream) {
  return with_mock([&](MockState& mock) {
    if (!has_context(mock)) return CUDA_ERROR_INVALID_CONTEXT;
    return valid_stream(mock, stream) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
  });
}

CUresult mock_module_load_data(CUmodule* module, const void* image) {
  return with_mock([&](MockState& mock) {
    if (!has_context(mock)) return CUDA_ERROR_INVALID_CONTEXT;
    if (module == nullptr || image == nullptr) return CUDA_ERROR_INVALID_VALUE;
    auto it = mock.images.find(image);
    if (it == mock.images.end()) return CUDA_ERROR_INVALID_IMAGE;
    const std::uintptr_t handle = new_handle();
    mock.modules[handle].kernels = it->second;  // a copy: later registrations do not change it
    *module = as_handle<CUmod_st>(handle);
    return CUDA_SUCCESS;
  });
}

CUresult mock_module_unload(CUmodule module) {
  return with_mock([&](MockState& mock) {
    if (!has_context(mock)) return CUDA_ERROR_INVALID_CONTEXT;
    auto it = mock.modules.find(handle_value(module));
    if (it == mock.modules.end()) return CUDA_ERROR_INVALID_HANDLE;
    for (const auto& [name, function] : it->second.functions)
      mock.functions.erase(function);
    mock.modules.erase(it);
    return CUDA_SUCCESS;
  });
}

CUresult mock_module_get_function(CUfunction* function, CUmodule module, const char* name) {
  return with_mock([&](MockState& mock) {
    if (!has_context(mock)) return CUDA_ERROR_INVALID_CONTEXT;
    if (function == nullptr || name == nullptr) return CUDA_ERROR_INVALID_VALUE;
    auto it = mock.modules.find(handle_value(module));
    if (it == mock.modules.end()) return CUDA_ERROR_INVALID_HANDLE;
    MockState::Module& loaded = it->second;
    auto kernel = loaded.kernels.find(name);
    if (kernel == loaded.kernels.end()) return CUDA_ERROR_NOT_FOUND;
    auto [known, inserted] = loaded.functions.try_emplace(name, 0);
    if (inserted) {  // the same name gives the same handle, as with the real driver
      known->second = new_handle();
      mock.functions[known->second] = {it->first, kernel->second};
    }
    *function = as_handle<CUfunc_st>(known->second);
    return CUDA_SUCCESS;
  });
}

CUresult mock_launch_kernel(CUfunction function, unsigned grid_x, unsigned grid_y, unsigned grid_z,
                            unsigned block_x, unsigned block_y, unsigned block_z,
                            unsigned shared_bytes, CUstream stream, void** params, void** extra) {
  MockKernel kernel;
  const Dim3 grid{grid_x, grid_y, grid_z}, block{block_x, block_y, block_z};
  const CUresult checked = with_mock([&](MockState& mock) {
    if (!has_context(mock)) return CUDA_ERROR_INVALID_CONTEXT;
    auto it = mock.functions.find(handle_value(function));
    if (it == mock.functions.end()) return CUDA_ERROR_INVALID_HANDLE;
    if (!valid_stream(mock, stream)) return CUDA_ERROR_INVALID_HANDLE;
    if (grid.count() == 0 || block.count() == 0) return CUDA_ERROR_INVALID_VALUE;
    if (block.count() > kMaxThreadsPerBlock || shared_bytes > kMaxSharedPerBlock)
      return CUDA_ERROR_INVALID_VALUE;
    if (extra != nullptr) return CUDA_ERROR_NOT_SUPPORTED;  // Kiln passes kernelParams only
    ++mock.counters.launches;
    kernel = it->second.kernel;
    return CUDA_SUCCESS;
  });
  if (checked != CUDA_SUCCESS) return checked;
  // Unlocked: the host function may take as long as it likes and touch device memory freely.
  // A real kernel's fault shows at the next synchronisation; the mock's shows here.
  try {
    kernel(params, grid, block);
  } catch (...) {
    return CUDA_ERROR_LAUNCH_FAILED;
  }
  return CUDA_SUCCESS;
}

// The JIT linker: PTX in, a "cubin" out that is the magic line and the PTX texts. The PTX must
// look like PTX (a .version and a .target directive) for an architecture the mock's sm_90 runs
// (sm_90 or older); otherwise CUDA_ERROR_INVALID_PTX with a line in the error log, as ptxas
// would say it.
void write_log(MockState::Link& link, const std::string& text) {
  if (link.error_log == nullptr || link.error_log_size == 0) return;
  const std::size_t n = std::min(text.size(), link.error_log_size - 1);
  std::memcpy(link.error_log, text.data(), n);
  link.error_log[n] = '\0';
}

CUresult mock_link_create(unsigned int num_options, CUjit_option* options, void** values,
                          CUlinkState* state) {
  return with_mock([&](MockState& mock) {
    if (!has_context(mock)) return CUDA_ERROR_INVALID_CONTEXT;
    if (state == nullptr || (num_options > 0 && (options == nullptr || values == nullptr)))
      return CUDA_ERROR_INVALID_VALUE;
    MockState::Link link;
    link.cubin = kMockCubinMagic;
    for (unsigned i = 0; i < num_options; ++i) {
      if (options[i] == CU_JIT_ERROR_LOG_BUFFER) link.error_log = static_cast<char*>(values[i]);
      if (options[i] == CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES)
        link.error_log_size = reinterpret_cast<std::uintptr_t>(values[i]);
    }
    write_log(link, "");
    const std::uintptr_t handle = new_handle();
    mock.links[handle] = std::move(link);
    *state = as_handle<CUlinkState_st>(handle);
    return CUDA_SUCCESS;
  });
}

CUresult mock_link_add_data(CUlinkState state, CUjitInputType type, void* data, std::size_t size,
                            const char* /*name*/, unsigned int /*num_options*/,
                            CUjit_option* /*options*/, void** /*values*/) {
  return with_mock([&](MockState& mock) {
    auto it = mock.links.find(handle_value(state));
    if (it == mock.links.end()) return CUDA_ERROR_INVALID_HANDLE;
    if (data == nullptr || size == 0) return CUDA_ERROR_INVALID_VALUE;
    if (type != CU_JIT_INPUT_PTX) return CUDA_ERROR_NOT_SUPPORTED;
    std::string ptx(static_cast<const char*>(data), size);
    if (!ptx.empty() && ptx.back() == '\0') ptx.pop_back();
    const std::size_t target = ptx.find(".target sm_");
    if (ptx.find(".version") == std::string::npos || target == std::string::npos) {
      write_log(it->second, "ptxas fatal   : (mock) not PTX: no .version or .target directive");
      return CUDA_ERROR_INVALID_PTX;
    }
    const int arch = std::atoi(ptx.c_str() + target + 11);
    if (arch > 90) {
      write_log(it->second, "ptxas fatal   : (mock) PTX for sm_" + std::to_string(arch) +
                                " cannot be compiled for the mock's sm_90");
      return CUDA_ERROR_INVALID_PTX;
    }
    it->second.cubin += ptx;
    return CUDA_SUCCESS;
  });
}

CUresult mock_link_complete(CUlinkState state, void** cubin, std::size_t* size) {
  return with_mock([&](MockState& mock) {
    auto it = mock.links.find(handle_value(state));
    if (it == mock.links.end()) return CUDA_ERROR_INVALID_HANDLE;
    if (cubin == nullptr || size == nullptr) return CUDA_ERROR_INVALID_VALUE;
    if (it->second.cubin.size() == std::strlen(kMockCubinMagic)) {
      write_log(it->second, "nvlink error   : (mock) nothing to link");
      return CUDA_ERROR_INVALID_VALUE;
    }
    ++mock.counters.links;
    // Owned by the link state, as the driver's is: valid until cuLinkDestroy.
    *cubin = it->second.cubin.data();
    *size = it->second.cubin.size();
    return CUDA_SUCCESS;
  });
}

CUresult mock_link_destroy(CUlinkState state) {
  return with_mock([&](MockState& mock) {
    return mock.links.erase(handle_value(state)) == 1 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
  });
}

constexpr DriverApi kMockApi = [] {
  DriverApi api;
  api.cuInit = mock_init;
  api.cuDriverGetVersion = mock_driver_get_version;
  api.cuGetErrorName = mock_get_error_name;
  api.cuGetErrorString = mock_get_error_string;
  api.cuDeviceGetCount = mock_device_get_count;
  api.cuDeviceGet = mock_device_get;
  api.cuDeviceGetName = mock_device_get_name;
  api.cuDeviceGetAttribute = mock_device_get_attribute;
  api.cuDeviceTotalMem_v2 = mock_device_total_mem;
  api.cuDevicePrimaryCtxRetain = mock_primary_ctx_retain;
  api.cuDevicePrimaryCtxRelease_v2 = mock_primary_ctx_release;
  api.cuCtxSetCurrent = mock_ctx_set_current;
  api.cuMemGetInfo_v2 = mock_mem_get_info;
  api.cuMemAlloc_v2 = mock_mem_alloc;
  api.cuMemFree_v2 = mock_mem_free;
  api.cuMemcpyHtoD_v2 = mock_memcpy_htod;
  api.cuMemcpyDtoH_v2 = mock_memcpy_dtoh;
  api.cuMemcpyDtoD_v2 = mock_memcpy_dtod;
  api.cuMemcpyHtoDAsync_v2 = mock_memcpy_htod_async;
  api.cuMemcpyDtoHAsync_v2 = mock_memcpy_dtoh_async;
  api.cuMemcpyDtoDAsync_v2 = mock_memcpy_dtod_async;
  api.cuMemsetD8_v2 = mock_memset;
  api.cuMemsetD8Async = mock_memset_async;
  api.cuStreamCreate = mock_stream_create;
  api.cuStreamDestroy_v2 = mock_stream_destroy;
  api.cuStreamSynchronize = mock_stream_synchronize;
  api.cuModuleLoadData = mock_module_load_data;
  api.cuModuleUnload = mock_module_unload;
  api.cuModuleGetFunction = mock_module_get_function;
  api.cuLaunchKernel = mock_launch_kernel;
  api.cuLinkCreate_v2 = mock_link_create;
  api.cuLinkAddData_v2 = mock_link_add_data;
  api.cuLinkComplete = mock_link_complete;
  api.cuLinkDestroy = mock_link_destroy;
  return api;
}();

}  // namespace

MockDriver::MockDriver(MockOptions options) : state_(std::make_unique<MockState>()) {
  state_->options = options;
  state_->options.device_count = std::max(0, options.device_count);
  for (int d = 0; d < state_->options.device_count; ++d)
    state_->contexts.push_back(new_handle());
  state_->context_refs.assign(state_->contexts.size(), 0);
  MockState* expected = nullptr;
  if (!g_mock.compare_exchange_strong(expected, state_.get()))
    throw std::logic_error("MockDriver: another MockDriver is alive; one may exist at a time");
}

MockDriver::~MockDriver() {
  MockState* expected = state_.get();
  g_mock.compare_exchange_strong(expected, nullptr);
}

const DriverApi& MockDriver::api() const {
  return kMockApi;
}

void MockDriver::register_image(const void* image, std::map<std::string, MockKernel> kernels) {
  std::lock_guard lock(state_->mutex);
  state_->images[image] = std::move(kernels);
}

MockCounters MockDriver::counters() const {
  std::lock_guard lock(state_->mutex);
  return state_->counters;
}

}  // namespace kiln::runtime::cuda
