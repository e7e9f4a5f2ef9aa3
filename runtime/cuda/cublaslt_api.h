// Kiln's own declarations of the part of cuBLASLt it calls, so that the runtime builds without
// the CUDA toolkit and never links libcublasLt: the library is loaded with dlopen into a
// CublasLtApi table (cublaslt.h), which tests replace with a mock (mock_cublaslt.h). Types and
// constants mirror cublasLt.h of cuBLAS 13 (64-bit Linux); tests/cublaslt_api_check.cpp checks
// every entry point, constant and struct layout against the real header when the toolkit is
// present at build time.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kiln/runtime/cuda/driver_api.h"

namespace kiln::runtime::cuda {

// cublas_api.h and library_types.h declare these as enums; the ABI passes them as int.
using cublasStatus_t = int;
using cublasComputeType_t = int;
using cudaDataType_t = int;
using cublasOperation_t = int;
using cublasLtMatmulDescAttributes_t = int;
using cublasLtMatrixLayoutAttribute_t = int;
using cublasLtMatmulPreferenceAttributes_t = int;
// cudaStream_t and the driver's CUstream are the same type (struct CUstream_st*).
using cudaStream_t = CUstream;

// Handles. The descriptor structs are the library's storage, created and owned by it
// (cublasLt*Create); Kiln only holds pointers to them, but declares their real sizes.
struct cublasLtContext;
using cublasLtHandle_t = cublasLtContext*;
struct cublasLtMatmulDescOpaque_t {
  std::uint64_t data[32];
};
using cublasLtMatmulDesc_t = cublasLtMatmulDescOpaque_t*;
struct cublasLtMatrixLayoutOpaque_t {
  std::uint64_t data[8];
};
using cublasLtMatrixLayout_t = cublasLtMatrixLayoutOpaque_t*;
struct cublasLtMatmulPreferenceOpaque_t {
  std::uint64_t data[8];
};
using cublasLtMatmulPreference_t = cublasLtMatmulPreferenceOpaque_t*;

// An algorithm the heuristic chose; passed by value and by pointer, so its size is ABI.
struct cublasLtMatmulAlgo_t {
  std::uint64_t data[8];
};
static_assert(sizeof(cublasLtMatmulAlgo_t) == 64);

// One answer of cublasLtMatmulAlgoGetHeuristic; the caller allocates an array of them.
struct cublasLtMatmulHeuristicResult_t {
  cublasLtMatmulAlgo_t algo;
  std::size_t workspaceSize;  // bytes of workspace the algorithm needs
  cublasStatus_t state;       // CUBLAS_STATUS_SUCCESS when the other fields are valid
  float wavesCount;           // 1.0: one full wave of the GPU
  int reserved[4];
};
static_assert(sizeof(cublasLtMatmulHeuristicResult_t) == 96);
static_assert(offsetof(cublasLtMatmulHeuristicResult_t, workspaceSize) == 64);
static_assert(offsetof(cublasLtMatmulHeuristicResult_t, state) == 72);

// cublasStatus_t.
inline constexpr cublasStatus_t CUBLAS_STATUS_SUCCESS = 0;
inline constexpr cublasStatus_t CUBLAS_STATUS_NOT_INITIALIZED = 1;
inline constexpr cublasStatus_t CUBLAS_STATUS_ALLOC_FAILED = 3;
inline constexpr cublasStatus_t CUBLAS_STATUS_INVALID_VALUE = 7;
inline constexpr cublasStatus_t CUBLAS_STATUS_ARCH_MISMATCH = 8;
inline constexpr cublasStatus_t CUBLAS_STATUS_MAPPING_ERROR = 11;
inline constexpr cublasStatus_t CUBLAS_STATUS_EXECUTION_FAILED = 13;
inline constexpr cublasStatus_t CUBLAS_STATUS_INTERNAL_ERROR = 14;
inline constexpr cublasStatus_t CUBLAS_STATUS_NOT_SUPPORTED = 15;
inline constexpr cublasStatus_t CUBLAS_STATUS_LICENSE_ERROR = 16;

// cublasComputeType_t: FP32 (no TF32 unless asked), FP32 allowed to round inputs to TF32, FP64.
inline constexpr cublasComputeType_t CUBLAS_COMPUTE_32F = 68;
inline constexpr cublasComputeType_t CUBLAS_COMPUTE_32F_FAST_TF32 = 77;
inline constexpr cublasComputeType_t CUBLAS_COMPUTE_64F = 70;

// cudaDataType_t.
inline constexpr cudaDataType_t CUDA_R_32F = 0;
inline constexpr cudaDataType_t CUDA_R_64F = 1;

// cublasOperation_t.
inline constexpr cublasOperation_t CUBLAS_OP_N = 0;
inline constexpr cublasOperation_t CUBLAS_OP_T = 1;

// cublasLtMatmulDescAttributes_t, with the C type of each value.
inline constexpr cublasLtMatmulDescAttributes_t CUBLASLT_MATMUL_DESC_COMPUTE_TYPE = 0;  // int32_t
inline constexpr cublasLtMatmulDescAttributes_t CUBLASLT_MATMUL_DESC_SCALE_TYPE = 1;    // int32_t
inline constexpr cublasLtMatmulDescAttributes_t CUBLASLT_MATMUL_DESC_TRANSA = 3;        // int32_t
inline constexpr cublasLtMatmulDescAttributes_t CUBLASLT_MATMUL_DESC_TRANSB = 4;        // int32_t
inline constexpr cublasLtMatmulDescAttributes_t CUBLASLT_MATMUL_DESC_EPILOGUE = 7;      // uint32_t
// const void*: a device pointer to D-rows values; the heuristic reads its alignment only.
inline constexpr cublasLtMatmulDescAttributes_t CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8;
// int32_t cudaDataType_t; -1 (the default) means D's type.
inline constexpr cublasLtMatmulDescAttributes_t CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE = 26;

// cublasLtEpilogue_t (a uint32_t attribute).
using cublasLtEpilogue_t = std::uint32_t;
inline constexpr cublasLtEpilogue_t CUBLASLT_EPILOGUE_DEFAULT = 1;
inline constexpr cublasLtEpilogue_t CUBLASLT_EPILOGUE_RELU = 2;
inline constexpr cublasLtEpilogue_t CUBLASLT_EPILOGUE_BIAS = 4;
inline constexpr cublasLtEpilogue_t CUBLASLT_EPILOGUE_RELU_BIAS = 6;

// cublasLtMatrixLayoutAttribute_t, with the C type of each value.
inline constexpr cublasLtMatrixLayoutAttribute_t CUBLASLT_MATRIX_LAYOUT_TYPE = 0;   // uint32_t
inline constexpr cublasLtMatrixLayoutAttribute_t CUBLASLT_MATRIX_LAYOUT_ORDER = 1;  // int32_t
inline constexpr cublasLtMatrixLayoutAttribute_t CUBLASLT_MATRIX_LAYOUT_ROWS = 2;   // uint64_t
inline constexpr cublasLtMatrixLayoutAttribute_t CUBLASLT_MATRIX_LAYOUT_COLS = 3;   // uint64_t
inline constexpr cublasLtMatrixLayoutAttribute_t CUBLASLT_MATRIX_LAYOUT_LD = 4;     // int64_t
inline constexpr cublasLtMatrixLayoutAttribute_t CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT = 5;  // int32_t

// cublasLtOrder_t: Kiln keeps cuBLASLt's default, column-major, and transposes views instead.
inline constexpr std::int32_t CUBLASLT_ORDER_COL = 0;
inline constexpr std::int32_t CUBLASLT_ORDER_ROW = 1;

// cublasLtMatmulPreferenceAttributes_t: uint64_t bytes; the default, 0, allows no workspace.
inline constexpr cublasLtMatmulPreferenceAttributes_t CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1;
// uint32_t bytes each; the default, 256, excludes nothing but assumes 256-byte aligned buffers.
inline constexpr cublasLtMatmulPreferenceAttributes_t CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES =
    5;
inline constexpr cublasLtMatmulPreferenceAttributes_t CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES =
    6;
inline constexpr cublasLtMatmulPreferenceAttributes_t CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES =
    7;
inline constexpr cublasLtMatmulPreferenceAttributes_t CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES =
    8;

// Every entry point, as X(return type, name, parameter types...), named as libcublasLt exports
// them. The one list serves the table, the loader and the signature check.
#define KILN_CUBLASLT_ENTRY_POINTS(X)                                                          \
  X(cublasStatus_t, cublasLtCreate, cublasLtHandle_t*)                                         \
  X(cublasStatus_t, cublasLtDestroy, cublasLtHandle_t)                                         \
  X(std::size_t, cublasLtGetVersion, void)                                                     \
  X(const char*, cublasLtGetStatusName, cublasStatus_t)                                        \
  X(const char*, cublasLtGetStatusString, cublasStatus_t)                                      \
  X(cublasStatus_t, cublasLtMatmulDescCreate, cublasLtMatmulDesc_t*, cublasComputeType_t,      \
    cudaDataType_t)                                                                            \
  X(cublasStatus_t, cublasLtMatmulDescDestroy, cublasLtMatmulDesc_t)                           \
  X(cublasStatus_t, cublasLtMatmulDescSetAttribute, cublasLtMatmulDesc_t,                      \
    cublasLtMatmulDescAttributes_t, const void*, std::size_t)                                  \
  X(cublasStatus_t, cublasLtMatmulDescGetAttribute, cublasLtMatmulDesc_t,                      \
    cublasLtMatmulDescAttributes_t, void*, std::size_t, std::size_t*)                          \
  X(cublasStatus_t, cublasLtMatrixLayoutCreate, cublasLtMatrixLayout_t*, cudaDataType_t,       \
    std::uint64_t, std::uint64_t, std::int64_t)                                                \
  X(cublasStatus_t, cublasLtMatrixLayoutDestroy, cublasLtMatrixLayout_t)                       \
  X(cublasStatus_t, cublasLtMatrixLayoutGetAttribute, cublasLtMatrixLayout_t,                  \
    cublasLtMatrixLayoutAttribute_t, void*, std::size_t, std::size_t*)                         \
  X(cublasStatus_t, cublasLtMatmulPreferenceCreate, cublasLtMatmulPreference_t*)               \
  X(cublasStatus_t, cublasLtMatmulPreferenceDestroy, cublasLtMatmulPreference_t)               \
  X(cublasStatus_t, cublasLtMatmulPreferenceSetAttribute, cublasLtMatmulPreference_t,          \
    cublasLtMatmulPreferenceAttributes_t, const void*, std::size_t)                            \
  X(cublasStatus_t, cublasLtMatmulAlgoGetHeuristic, cublasLtHandle_t, cublasLtMatmulDesc_t,    \
    cublasLtMatrixLayout_t, cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,                    \
    cublasLtMatrixLayout_t, cublasLtMatmulPreference_t, int, cublasLtMatmulHeuristicResult_t*, \
    int*)                                                                                      \
  X(cublasStatus_t, cublasLtMatmul, cublasLtHandle_t, cublasLtMatmulDesc_t, const void*,       \
    const void*, cublasLtMatrixLayout_t, const void*, cublasLtMatrixLayout_t, const void*,     \
    const void*, cublasLtMatrixLayout_t, void*, cublasLtMatrixLayout_t,                        \
    const cublasLtMatmulAlgo_t*, void*, std::size_t, cudaStream_t)

// cuBLASLt's entry points: filled by dlsym from libcublasLt (cublaslt.h) or by the mock. A null
// member is an entry point the library lacks.
struct CublasLtApi {
#define KILN_CUBLASLT_DECLARE_ENTRY_POINT(result, name, ...) result (*name)(__VA_ARGS__) = nullptr;
  KILN_CUBLASLT_ENTRY_POINTS(KILN_CUBLASLT_DECLARE_ENTRY_POINT)
#undef KILN_CUBLASLT_DECLARE_ENTRY_POINT
};

}  // namespace kiln::runtime::cuda
