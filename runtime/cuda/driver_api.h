// Kiln's own declarations of the part of the CUDA driver API it calls, so that the runtime builds
// without the CUDA toolkit and never links libcuda: the driver is loaded with dlopen into a
// DriverApi table (driver.h), which tests replace with a mock (mock_driver.h). The types and
// constants mirror cuda.h (CUDA 12/13, 64-bit); tests/cuda_driver_api_check.cpp checks every
// entry point and constant against the real cuda.h when the toolkit is present at build time.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kiln::runtime::cuda {

// cuda.h's CUresult and CUdevice_attribute are enums; the ABI passes them as int.
using CUresult = int;
using CUdevice_attribute = int;
using CUdevice = int;
// cuda.h's own spelling: uint64_t is `unsigned long` on LP64, a different C++ type of the same
// size, and the signature check compares types exactly.
using CUdeviceptr = unsigned long long;
static_assert(sizeof(CUdeviceptr) == 8, "the driver API's device pointers are 64-bit");

struct CUctx_st;
struct CUmod_st;
struct CUfunc_st;
struct CUstream_st;
struct CUlinkState_st;
using CUcontext = CUctx_st*;
using CUmodule = CUmod_st*;
using CUfunction = CUfunc_st*;
using CUstream = CUstream_st*;
using CUlinkState = CUlinkState_st*;
// cuda.h's CUjit_option and CUjitInputType are enums too.
using CUjit_option = int;
using CUjitInputType = int;

// The error codes Kiln tells apart or that the mock returns (values from cuda.h).
inline constexpr CUresult CUDA_SUCCESS = 0;
inline constexpr CUresult CUDA_ERROR_INVALID_VALUE = 1;
inline constexpr CUresult CUDA_ERROR_OUT_OF_MEMORY = 2;
inline constexpr CUresult CUDA_ERROR_NOT_INITIALIZED = 3;
inline constexpr CUresult CUDA_ERROR_DEINITIALIZED = 4;
inline constexpr CUresult CUDA_ERROR_STUB_LIBRARY = 34;
// Not in cuda.h: the runtime API's cudaErrorInsufficientDriver, which drivers have been seen to
// return from cuInit too; treated as "driver too old".
inline constexpr CUresult CUDA_ERROR_INSUFFICIENT_DRIVER = 35;
inline constexpr CUresult CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER = 36;
inline constexpr CUresult CUDA_ERROR_NO_DEVICE = 100;
inline constexpr CUresult CUDA_ERROR_INVALID_DEVICE = 101;
inline constexpr CUresult CUDA_ERROR_INVALID_IMAGE = 200;
inline constexpr CUresult CUDA_ERROR_INVALID_CONTEXT = 201;
inline constexpr CUresult CUDA_ERROR_NO_BINARY_FOR_GPU = 209;
inline constexpr CUresult CUDA_ERROR_INVALID_PTX = 218;
inline constexpr CUresult CUDA_ERROR_UNSUPPORTED_PTX_VERSION = 222;
inline constexpr CUresult CUDA_ERROR_INVALID_HANDLE = 400;
inline constexpr CUresult CUDA_ERROR_NOT_FOUND = 500;
inline constexpr CUresult CUDA_ERROR_ILLEGAL_ADDRESS = 700;
inline constexpr CUresult CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES = 701;
inline constexpr CUresult CUDA_ERROR_LAUNCH_FAILED = 719;
inline constexpr CUresult CUDA_ERROR_NOT_SUPPORTED = 801;
inline constexpr CUresult CUDA_ERROR_SYSTEM_DRIVER_MISMATCH = 803;
inline constexpr CUresult CUDA_ERROR_UNKNOWN = 999;

// The device attributes Kiln reads.
inline constexpr CUdevice_attribute CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK = 1;
inline constexpr CUdevice_attribute CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK = 8;
inline constexpr CUdevice_attribute CU_DEVICE_ATTRIBUTE_WARP_SIZE = 10;
inline constexpr CUdevice_attribute CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
inline constexpr CUdevice_attribute CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
inline constexpr CUdevice_attribute CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;

// The JIT linker's options and input kinds Kiln uses (cuLinkCreate, cuLinkAddData). A log
// buffer's size is passed by value in the void* option value, as cuda.h documents.
inline constexpr CUjit_option CU_JIT_INFO_LOG_BUFFER = 3;
inline constexpr CUjit_option CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES = 4;
inline constexpr CUjit_option CU_JIT_ERROR_LOG_BUFFER = 5;
inline constexpr CUjit_option CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6;
inline constexpr CUjitInputType CU_JIT_INPUT_CUBIN = 0;
inline constexpr CUjitInputType CU_JIT_INPUT_PTX = 1;

// A launch's grid or block extent (the driver API passes the three numbers separately).
struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
  // x * y * z, the number of blocks or threads.
  unsigned long long count() const { return 1ull * x * y * z; }
};

// Every entry point, as X(name, parameter types...), named as libcuda exports them: the
// versioned names (cuMemAlloc_v2) are the ones cuda.h's macros select, the unversioned ones are
// older ABIs (32-bit sizes). All return CUresult. The one list serves the table, the loader and
// the signature check.
// clang-format off
#define KILN_CUDA_DRIVER_ENTRY_POINTS(X)                                                \
  X(cuInit, unsigned int)                                                               \
  X(cuDriverGetVersion, int*)                                                           \
  X(cuGetErrorName, CUresult, const char**)                                             \
  X(cuGetErrorString, CUresult, const char**)                                           \
  X(cuDeviceGetCount, int*)                                                             \
  X(cuDeviceGet, CUdevice*, int)                                                        \
  X(cuDeviceGetName, char*, int, CUdevice)                                              \
  X(cuDeviceGetAttribute, int*, CUdevice_attribute, CUdevice)                           \
  X(cuDeviceTotalMem_v2, std::size_t*, CUdevice)                                        \
  X(cuDevicePrimaryCtxRetain, CUcontext*, CUdevice)                                     \
  X(cuDevicePrimaryCtxRelease_v2, CUdevice)                                             \
  X(cuCtxSetCurrent, CUcontext)                                                         \
  X(cuMemGetInfo_v2, std::size_t*, std::size_t*)                                        \
  X(cuMemAlloc_v2, CUdeviceptr*, std::size_t)                                           \
  X(cuMemFree_v2, CUdeviceptr)                                                          \
  X(cuMemcpyHtoD_v2, CUdeviceptr, const void*, std::size_t)                             \
  X(cuMemcpyDtoH_v2, void*, CUdeviceptr, std::size_t)                                   \
  X(cuMemcpyDtoD_v2, CUdeviceptr, CUdeviceptr, std::size_t)                             \
  X(cuMemcpyHtoDAsync_v2, CUdeviceptr, const void*, std::size_t, CUstream)              \
  X(cuMemcpyDtoHAsync_v2, void*, CUdeviceptr, std::size_t, CUstream)                    \
  X(cuMemcpyDtoDAsync_v2, CUdeviceptr, CUdeviceptr, std::size_t, CUstream)              \
  X(cuMemsetD8_v2, CUdeviceptr, unsigned char, std::size_t)                             \
  X(cuMemsetD8Async, CUdeviceptr, unsigned char, std::size_t, CUstream)                 \
  X(cuStreamCreate, CUstream*, unsigned int)                                            \
  X(cuStreamDestroy_v2, CUstream)                                                       \
  X(cuStreamSynchronize, CUstream)                                                      \
  X(cuModuleLoadData, CUmodule*, const void*)                                           \
  X(cuModuleUnload, CUmodule)                                                           \
  X(cuModuleGetFunction, CUfunction*, CUmodule, const char*)                            \
  X(cuLaunchKernel, CUfunction, unsigned int, unsigned int, unsigned int, unsigned int, \
    unsigned int, unsigned int, unsigned int, CUstream, void**, void**)                 \
  X(cuLinkCreate_v2, unsigned int, CUjit_option*, void**, CUlinkState*)                 \
  X(cuLinkAddData_v2, CUlinkState, CUjitInputType, void*, std::size_t, const char*,     \
    unsigned int, CUjit_option*, void**)                                                \
  X(cuLinkComplete, CUlinkState, void**, std::size_t*)                                  \
  X(cuLinkDestroy, CUlinkState)
// clang-format on

// The driver's entry points: filled by dlsym from libcuda (driver.h) or by the mock. A null
// member is an entry point the library lacks.
struct DriverApi {
#define KILN_CUDA_DECLARE_ENTRY_POINT(name, ...) CUresult (*name)(__VA_ARGS__) = nullptr;
  KILN_CUDA_DRIVER_ENTRY_POINTS(KILN_CUDA_DECLARE_ENTRY_POINT)
#undef KILN_CUDA_DECLARE_ENTRY_POINT
};

}  // namespace kiln::runtime::cuda
