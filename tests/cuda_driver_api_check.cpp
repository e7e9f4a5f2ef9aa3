// runtime/cuda/driver_api.h against the CUDA toolkit's cuda.h: every entry point of DriverApi has
// the type of the real function (cuda.h's enums read as int, its opaque structs as Kiln's), and
// every constant has cuda.h's value. Part of cuda_driver_test when KILN_ENABLE_CUDA is on; a
// mismatch fails the build, not the run.
#include <cuda.h>

#include <catch2/catch.hpp>

#include <type_traits>

#include "api_check_util.h"
#include "kiln/runtime/cuda/driver_api.h"

// How cuda.h's enums and handle structs are spelled in driver_api.h.
KILN_OURS(CUresult, int)
KILN_OURS(CUdevice_attribute, int)
KILN_OURS(CUctx_st, kiln::runtime::cuda::CUctx_st)
KILN_OURS(CUmod_st, kiln::runtime::cuda::CUmod_st)
KILN_OURS(CUfunc_st, kiln::runtime::cuda::CUfunc_st)
KILN_OURS(CUstream_st, kiln::runtime::cuda::CUstream_st)
KILN_OURS(CUlinkState_st, kiln::runtime::cuda::CUlinkState_st)
KILN_OURS(CUjit_option, int)
KILN_OURS(CUjitInputType, int)

namespace {

namespace kc = kiln::runtime::cuda;

using kiln::testing::api_check::ours_t;

#define KILN_CHECK_ENTRY_POINT(name, ...)                                             \
  static_assert(std::is_same_v<ours_t<decltype(::name)>,                              \
                               std::remove_pointer_t<decltype(kc::DriverApi::name)>>, \
                #name " in driver_api.h differs from cuda.h");
KILN_CUDA_DRIVER_ENTRY_POINTS(KILN_CHECK_ENTRY_POINT)
#undef KILN_CHECK_ENTRY_POINT

static_assert(std::is_same_v<kc::CUdeviceptr, ::CUdeviceptr>);
static_assert(std::is_same_v<kc::CUdevice, ::CUdevice>);
static_assert(sizeof(kc::CUresult) == sizeof(::CUresult));

#define KILN_CHECK_CONSTANT(name) static_assert(kc::name == ::name, #name " differs from cuda.h");
KILN_CHECK_CONSTANT(CUDA_SUCCESS)
KILN_CHECK_CONSTANT(CUDA_ERROR_INVALID_VALUE)
KILN_CHECK_CONSTANT(CUDA_ERROR_OUT_OF_MEMORY)
KILN_CHECK_CONSTANT(CUDA_ERROR_NOT_INITIALIZED)
KILN_CHECK_CONSTANT(CUDA_ERROR_DEINITIALIZED)
KILN_CHECK_CONSTANT(CUDA_ERROR_STUB_LIBRARY)
KILN_CHECK_CONSTANT(CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER)
KILN_CHECK_CONSTANT(CUDA_ERROR_NO_DEVICE)
KILN_CHECK_CONSTANT(CUDA_ERROR_INVALID_DEVICE)
KILN_CHECK_CONSTANT(CUDA_ERROR_INVALID_IMAGE)
KILN_CHECK_CONSTANT(CUDA_ERROR_INVALID_CONTEXT)
KILN_CHECK_CONSTANT(CUDA_ERROR_NO_BINARY_FOR_GPU)
KILN_CHECK_CONSTANT(CUDA_ERROR_INVALID_PTX)
KILN_CHECK_CONSTANT(CUDA_ERROR_UNSUPPORTED_PTX_VERSION)
KILN_CHECK_CONSTANT(CUDA_ERROR_INVALID_HANDLE)
KILN_CHECK_CONSTANT(CUDA_ERROR_NOT_FOUND)
KILN_CHECK_CONSTANT(CUDA_ERROR_ILLEGAL_ADDRESS)
KILN_CHECK_CONSTANT(CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES)
KILN_CHECK_CONSTANT(CUDA_ERROR_LAUNCH_FAILED)
KILN_CHECK_CONSTANT(CUDA_ERROR_NOT_SUPPORTED)
KILN_CHECK_CONSTANT(CUDA_ERROR_SYSTEM_DRIVER_MISMATCH)
KILN_CHECK_CONSTANT(CUDA_ERROR_UNKNOWN)
KILN_CHECK_CONSTANT(CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK)
KILN_CHECK_CONSTANT(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK)
KILN_CHECK_CONSTANT(CU_DEVICE_ATTRIBUTE_WARP_SIZE)
KILN_CHECK_CONSTANT(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
KILN_CHECK_CONSTANT(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
KILN_CHECK_CONSTANT(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)
KILN_CHECK_CONSTANT(CU_JIT_INFO_LOG_BUFFER)
KILN_CHECK_CONSTANT(CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES)
KILN_CHECK_CONSTANT(CU_JIT_ERROR_LOG_BUFFER)
KILN_CHECK_CONSTANT(CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES)
KILN_CHECK_CONSTANT(CU_JIT_INPUT_CUBIN)
KILN_CHECK_CONSTANT(CU_JIT_INPUT_PTX)
#undef KILN_CHECK_CONSTANT

}  // namespace

TEST_CASE("cuda: driver_api.h was checked against the toolkit's cuda.h") {
  // The checks above ran at compile time; this case only makes the check visible in test runs.
  CHECK(CUDA_VERSION >= 12000);
}
