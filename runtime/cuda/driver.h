// The CUDA driver, loaded at run time with dlopen("libcuda.so.1") and never linked: a program
// (or an AOT library) built with CUDA support still starts where there is no NVIDIA driver, and
// says why the GPU is unavailable instead. The library is loaded once per process, on first use;
// KILN_CUDA_DRIVER=/path/to/libcuda.so.1 picks a specific file. Tests install a table of their
// own (the mock, mock_driver.h) with ScopedDriverOverride. Nothing here aborts or prints: failures
// are values (DriverStatus) or exceptions (CudaError, UnavailableError) that the frontend maps to
// kiln::Errors.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include "kiln/runtime/cuda/driver_api.h"

namespace kiln::runtime::cuda {

// Why the driver cannot be used, or that it can.
enum class Reason {
  available,
  no_driver,  // no library to load, or one that is not a CUDA driver
  stub,       // the toolkit's stub libcuda.so: cuInit returns CUDA_ERROR_STUB_LIBRARY
  too_old,    // cuInit: 35, 36, 222 or 803, or the library lacks entry points Kiln calls
  no_device,  // cuInit: CUDA_ERROR_NO_DEVICE, or no devices counted
  error,      // cuInit or cuDeviceGetCount failed otherwise (the code says how)
};

// "available", "no driver", "stub", "driver too old", "no device", "error".
const char* reason_name(Reason reason);

// What loading and initialising a driver found.
struct DriverStatus {
  Reason reason = Reason::no_driver;
  std::string library;           // the path given to dlopen, or the name of an installed table
  std::string loaded_from;       // the file dlopen found (empty when it found none)
  CUresult code = CUDA_SUCCESS;  // the CUDA error behind `reason`, if one
  int version = 0;               // cuDriverGetVersion: 13000 is CUDA 13.0; 0 if unknown
  int device_count = 0;
  std::string message;  // one sentence: why it is unavailable, or which driver is in use

  // Whether the driver can be used.
  bool available() const { return reason == Reason::available; }
};

// A failed driver call: "cuMemAlloc: CUDA_ERROR_OUT_OF_MEMORY (2): out of memory[: detail]".
class CudaError : public std::runtime_error {
 public:
  CudaError(std::string call, CUresult code, std::string name, const std::string& message);
  // The entry point that failed, as cuda.h names it ("cuMemAlloc").
  const std::string& call() const { return call_; }
  CUresult code() const { return code_; }
  // The code's name, "CUDA_ERROR_OUT_OF_MEMORY".
  const std::string& name() const { return name_; }

 private:
  std::string call_;
  CUresult code_;
  std::string name_;
};

// The driver was needed but is not usable; what() is the status message.
class UnavailableError : public std::runtime_error {
 public:
  explicit UnavailableError(const DriverStatus& status);
  Reason reason() const { return reason_; }
  CUresult code() const { return code_; }

 private:
  Reason reason_;
  CUresult code_;
};

// A code's name ("CUDA_ERROR_NO_DEVICE"): the driver's, when `api` can say, else Kiln's table,
// else "CUDA_ERROR_UNKNOWN_<code>".
std::string error_name(const DriverApi* api, CUresult code);
// A code's description ("no CUDA-capable device is detected"), from the same sources.
std::string error_string(const DriverApi* api, CUresult code);
// Kiln's own table of the codes it meets: a code's name, or nullptr for one it does not know.
const char* known_error_name(CUresult code);
// Kiln's own table: a code's description, or nullptr for one it does not know.
const char* known_error_string(CUresult code);
// "NAME (code): description", as error messages show a code.
std::string describe_error(const DriverApi* api, CUresult code);

// Throws the CudaError of a failed `call`; `detail` ends the message.
[[noreturn]] void throw_cuda_error(const DriverApi& api, CUresult code, const char* call,
                                   std::string_view detail = {});
// Throws CudaError for `call` unless `code` is CUDA_SUCCESS; `detail` ends the message.
inline void check(const DriverApi& api, CUresult code, const char* call,
                  std::string_view detail = {}) {
  if (code != CUDA_SUCCESS) throw_cuda_error(api, code, call, detail);
}

// A driver library loaded with dlopen: its entry points and what initialising it found.
struct LoadedDriver {
  DriverApi api;
  DriverStatus status;
};

// Loads `path` (a file, or a name the dynamic loader searches for), looks up every entry point
// and probes it (probe_driver). Every call loads again; libraries are never unloaded (the real
// driver starts threads and exit handlers). Never throws but std::bad_alloc.
LoadedDriver load_driver(const std::string& path);
// Initialises a table (cuInit(0)) and counts its devices; `library` names it in messages.
DriverStatus probe_driver(const DriverApi& api, const std::string& library);
// The library the process loads: $KILN_CUDA_DRIVER when set and not empty, else "libcuda.so.1".
std::string driver_path();

// The driver this process uses: a table installed by ScopedDriverOverride, else the library at
// driver_path(), loaded once (thread-safe) on the first call. Never throws but std::bad_alloc.
const DriverStatus& driver_status();
// Whether driver_status() is available.
bool available();
// The entry points of the driver in use; throws UnavailableError when it is not available.
const DriverApi& driver();

// Makes `api` the process's driver while it lives (tests: the mock), probed on construction;
// the previous one comes back on destruction. Overrides nest; install them only while no other
// thread uses the driver. `api` must outlive the override.
class ScopedDriverOverride {
 public:
  explicit ScopedDriverOverride(const DriverApi& api, std::string name = "test driver");
  ~ScopedDriverOverride();
  ScopedDriverOverride(const ScopedDriverOverride&) = delete;
  ScopedDriverOverride& operator=(const ScopedDriverOverride&) = delete;

  // What probing the installed table found.
  const DriverStatus& status() const { return status_; }
  const DriverApi& api() const { return *api_; }

 private:
  const DriverApi* api_;
  DriverStatus status_;
  const ScopedDriverOverride* previous_;
};

}  // namespace kiln::runtime::cuda
