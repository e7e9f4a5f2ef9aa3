#include "kiln/runtime/cuda/driver.h"

#include <dlfcn.h>

#include <atomic>
#include <cstdlib>
#include <string>

namespace kiln::runtime::cuda {
namespace {

struct KnownError {
  CUresult code;
  const char* name;
  const char* text;
};

// The names and descriptions of the codes Kiln meets, for when the driver cannot say: the stub
// answers every call with CUDA_ERROR_STUB_LIBRARY, and with no library there is nobody to ask.
constexpr KnownError kKnownErrors[] = {
    {0, "CUDA_SUCCESS", "no error"},
    {1, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {2, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {3, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {4, "CUDA_ERROR_DEINITIALIZED", "driver shutting down"},
    {34, "CUDA_ERROR_STUB_LIBRARY", "CUDA driver is a stub library"},
    {35, "CUDA_ERROR_INSUFFICIENT_DRIVER", "CUDA driver version is insufficient"},
    {36, "CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER", "the call requires a newer driver"},
    {46, "CUDA_ERROR_DEVICE_UNAVAILABLE", "CUDA-capable device(s) busy or unavailable"},
    {100, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {101, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {200, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
    {201, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
    {209, "CUDA_ERROR_NO_BINARY_FOR_GPU", "no kernel image is available for the device"},
    {218, "CUDA_ERROR_INVALID_PTX", "a PTX JIT compilation failed"},
    {222, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION", "the PTX is newer than the driver supports"},
    {400, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {500, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {700, "CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered"},
    {701, "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES", "too many resources requested for launch"},
    {719, "CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"},
    {801, "CUDA_ERROR_NOT_SUPPORTED", "operation not supported"},
    {803, "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
     "the driver and the kernel module versions do not match"},
    {999, "CUDA_ERROR_UNKNOWN", "unknown error"},
};

const KnownError* known_error(CUresult code) {
  for (const KnownError& e : kKnownErrors)
    if (e.code == code) return &e;
  return nullptr;
}

// "13.0" from cuDriverGetVersion's 13000.
std::string version_text(int version) {
  return std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10);
}

Reason classify(CUresult init_result) {
  switch (init_result) {
    case CUDA_ERROR_STUB_LIBRARY:
      return Reason::stub;
    case CUDA_ERROR_INSUFFICIENT_DRIVER:
    case CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER:
    case CUDA_ERROR_UNSUPPORTED_PTX_VERSION:
    case CUDA_ERROR_SYSTEM_DRIVER_MISMATCH:
      return Reason::too_old;
    case CUDA_ERROR_NO_DEVICE:
      return Reason::no_device;
    default:
      return Reason::error;
  }
}

// The installed override, if any; read on every driver() call, so lock-free.
std::atomic<const ScopedDriverOverride*> g_override{nullptr};

const LoadedDriver& process_driver() {
  // A magic static: the first caller loads, concurrent callers wait. The library stays loaded
  // until exit (LoadedDriver's destructor frees only strings), so buffers freed by late
  // destructors still reach the driver.
  static const LoadedDriver loaded = [] {
    LoadedDriver driver = load_driver(driver_path());
    const char* env = std::getenv("KILN_CUDA_DRIVER");
    const bool from_env = env != nullptr && *env != '\0';
    if (from_env && !driver.status.available())
      driver.status.message += " (the path comes from KILN_CUDA_DRIVER)";
    else if (driver.status.reason == Reason::no_driver)
      driver.status.message +=
          "; install the NVIDIA driver, or set KILN_CUDA_DRIVER to the "
          "path of its libcuda.so.1";
    return driver;
  }();
  return loaded;
}

}  // namespace

const char* reason_name(Reason reason) {
  switch (reason) {
    case Reason::available:
      return "available";
    case Reason::no_driver:
      return "no driver";
    case Reason::stub:
      return "stub";
    case Reason::too_old:
      return "driver too old";
    case Reason::no_device:
      return "no device";
    case Reason::error:
      return "error";
  }
  return "error";
}

CudaError::CudaError(std::string call, CUresult code, std::string name, const std::string& message)
    : std::runtime_error(message), call_(std::move(call)), code_(code), name_(std::move(name)) {}

UnavailableError::UnavailableError(const DriverStatus& status)
    : std::runtime_error(status.message), reason_(status.reason), code_(status.code) {}

const char* known_error_name(CUresult code) {
  const KnownError* known = known_error(code);
  return known != nullptr ? known->name : nullptr;
}

const char* known_error_string(CUresult code) {
  const KnownError* known = known_error(code);
  return known != nullptr ? known->text : nullptr;
}

std::string error_name(const DriverApi* api, CUresult code) {
  const char* name = nullptr;
  if (api != nullptr && api->cuGetErrorName != nullptr &&
      api->cuGetErrorName(code, &name) == CUDA_SUCCESS && name != nullptr)
    return name;
  if (const KnownError* known = known_error(code)) return known->name;
  return "CUDA_ERROR_UNKNOWN_" + std::to_string(code);
}

std::string error_string(const DriverApi* api, CUresult code) {
  const char* text = nullptr;
  if (api != nullptr && api->cuGetErrorString != nullptr &&
      api->cuGetErrorString(code, &text) == CUDA_SUCCESS && text != nullptr)
    return text;
  if (const KnownError* known = known_error(code)) return known->text;
  return "an error this version of Kiln does not know";
}

std::string describe_error(const DriverApi* api, CUresult code) {
  return error_name(api, code) + " (" + std::to_string(code) + "): " + error_string(api, code);
}

void throw_cuda_error(const DriverApi& api, CUresult code, const char* call,
                      std::string_view detail) {
  std::string message = std::string(call) + ": " + describe_error(&api, code);
  if (!detail.empty()) message.append(": ").append(detail);
  throw CudaError(call, code, error_name(&api, code), message);
}

LoadedDriver load_driver(const std::string& path) {
  LoadedDriver out;
  out.status.library = path;
  dlerror();  // clears a stale message
  // RTLD_LOCAL: the driver's symbols must not interpose anyone else's.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    out.status.message = "no CUDA driver: cannot load " + path + " (" +
                         (why != nullptr ? why : "dlopen failed") + ")";
    return out;
  }
  std::string missing;
#define KILN_CUDA_LOOK_UP(name, ...)                                             \
  out.api.name = reinterpret_cast<decltype(out.api.name)>(dlsym(handle, #name)); \
  if (out.api.name == nullptr) missing += (missing.empty() ? "" : ", ") + std::string(#name);
  KILN_CUDA_DRIVER_ENTRY_POINTS(KILN_CUDA_LOOK_UP)
#undef KILN_CUDA_LOOK_UP
  if (out.api.cuInit == nullptr) {
    out.status.message = "no CUDA driver: " + path + " is not a CUDA driver (it has no cuInit)";
    return out;
  }
  // Which file a name resolved to; messages show both, since a stub found under the real
  // driver's name (or already loaded under its soname) is the usual surprise.
  std::string loaded_from;
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(out.api.cuInit), &info) != 0 && info.dli_fname != nullptr)
    loaded_from = info.dli_fname;
  out.status = probe_driver(
      out.api, loaded_from.empty() || loaded_from == path ? path : path + " (" + loaded_from + ")");
  out.status.library = path;
  out.status.loaded_from = std::move(loaded_from);
  // A library that initialises but lacks an entry point is an older driver; a stub or a
  // failing one keeps the reason cuInit gave.
  if (out.status.available() && !missing.empty()) {
    out.status.reason = Reason::too_old;
    out.status.message = "the CUDA driver " + version_text(out.status.version) + " at " + path +
                         " is too old: it lacks " + missing + "; install a newer NVIDIA driver";
  }
  return out;
}

DriverStatus probe_driver(const DriverApi& api, const std::string& library) {
  DriverStatus status;
  status.library = library;
  if (api.cuInit == nullptr || api.cuDeviceGetCount == nullptr) {
    status.message = "no CUDA driver: " + library + " lacks cuInit or cuDeviceGetCount";
    return status;
  }
  if (api.cuDriverGetVersion == nullptr || api.cuDriverGetVersion(&status.version) != CUDA_SUCCESS)
    status.version = 0;
  const std::string driver = "the CUDA driver " +
                             (status.version > 0 ? version_text(status.version) + " " : "") +
                             "at " + library;
  CUresult result = api.cuInit(0);
  const char* call = "cuInit";
  if (result == CUDA_SUCCESS) {
    call = "cuDeviceGetCount";
    result = api.cuDeviceGetCount(&status.device_count);
    if (result != CUDA_SUCCESS) status.device_count = 0;
  }
  if (result != CUDA_SUCCESS) {
    status.code = result;
    status.reason = call == std::string_view("cuInit") ? classify(result) : Reason::error;
    const std::string error = std::string(call) + ": " + describe_error(&api, result);
    switch (status.reason) {
      case Reason::stub:
        status.message = library + " is the CUDA toolkit's stub library, not a driver (" + error +
                         "): this machine has no NVIDIA driver, or the stub is found first";
        break;
      case Reason::too_old:
        status.message = driver + " is too old or does not match its kernel module (" + error +
                         "); install a newer NVIDIA driver";
        break;
      case Reason::no_device:
        status.message = "no CUDA device: " + driver + " finds none (" + error + ")";
        break;
      default:
        status.message = driver + " failed to initialise (" + error + ")";
        break;
    }
    return status;
  }
  if (status.device_count <= 0) {
    status.device_count = 0;
    status.reason = Reason::no_device;
    status.code = CUDA_ERROR_NO_DEVICE;
    status.message = "no CUDA device: " + driver + " counts 0 devices";
    return status;
  }
  status.reason = Reason::available;
  status.message = driver + ", " + std::to_string(status.device_count) +
                   (status.device_count == 1 ? " device" : " devices");
  return status;
}

std::string driver_path() {
  const char* env = std::getenv("KILN_CUDA_DRIVER");
  return env != nullptr && *env != '\0' ? env : "libcuda.so.1";
}

const DriverStatus& driver_status() {
  if (const ScopedDriverOverride* override = g_override.load(std::memory_order_acquire))
    return override->status();
  return process_driver().status;
}

bool available() {
  return driver_status().available();
}

const DriverApi& driver() {
  if (const ScopedDriverOverride* override = g_override.load(std::memory_order_acquire)) {
    if (!override->status().available()) throw UnavailableError(override->status());
    return override->api();
  }
  const LoadedDriver& loaded = process_driver();
  if (!loaded.status.available()) throw UnavailableError(loaded.status);
  return loaded.api;
}

ScopedDriverOverride::ScopedDriverOverride(const DriverApi& api, std::string name)
    : api_(&api), status_(probe_driver(api, name)), previous_(g_override.exchange(this)) {}

ScopedDriverOverride::~ScopedDriverOverride() {
  g_override.store(previous_);
}

}  // namespace kiln::runtime::cuda
