// runtime/cuda/cublaslt_api.h against the CUDA toolkit's cublasLt.h: every entry point of
// CublasLtApi has the type of the real function (the header's enums read as int, its opaque and
// by-value structs as Kiln's), every constant has the header's value, and the structs Kiln
// declares have the real sizes and field offsets. Part of cublaslt_test when KILN_ENABLE_CUDA is
// on; a mismatch fails the build, not the run.
#include <cublasLt.h>

#include <catch2/catch.hpp>

#include <cstddef>
#include <type_traits>

#include "api_check_util.h"
#include "kiln/runtime/cuda/cublaslt_api.h"

// How cublasLt.h's enums and handle structs are spelled in cublaslt_api.h.
KILN_OURS(cublasStatus_t, int)
KILN_OURS(cublasComputeType_t, int)
KILN_OURS(cudaDataType, int)
KILN_OURS(cublasOperation_t, int)
KILN_OURS(cublasLtMatmulDescAttributes_t, int)
KILN_OURS(cublasLtMatrixLayoutAttribute_t, int)
KILN_OURS(cublasLtMatmulPreferenceAttributes_t, int)
KILN_OURS(cublasLtContext, kiln::runtime::cuda::cublasLtContext)
KILN_OURS(cublasLtMatmulDescOpaque_t, kiln::runtime::cuda::cublasLtMatmulDescOpaque_t)
KILN_OURS(cublasLtMatrixLayoutOpaque_t, kiln::runtime::cuda::cublasLtMatrixLayoutOpaque_t)
KILN_OURS(cublasLtMatmulPreferenceOpaque_t, kiln::runtime::cuda::cublasLtMatmulPreferenceOpaque_t)
KILN_OURS(cublasLtMatmulAlgo_t, kiln::runtime::cuda::cublasLtMatmulAlgo_t)
KILN_OURS(cublasLtMatmulHeuristicResult_t, kiln::runtime::cuda::cublasLtMatmulHeuristicResult_t)
KILN_OURS(CUstream_st, kiln::runtime::cuda::CUstream_st)

namespace {

namespace kc = kiln::runtime::cuda;

using kiln::testing::api_check::ours_t;

#define KILN_CHECK_ENTRY_POINT(result, name, ...)                                       \
  static_assert(std::is_same_v<ours_t<decltype(::name)>,                                \
                               std::remove_pointer_t<decltype(kc::CublasLtApi::name)>>, \
                #name " in cublaslt_api.h differs from cublasLt.h");
KILN_CUBLASLT_ENTRY_POINTS(KILN_CHECK_ENTRY_POINT)
#undef KILN_CHECK_ENTRY_POINT

// The enums are int-sized, as the table passes them.
static_assert(sizeof(::cublasStatus_t) == sizeof(kc::cublasStatus_t));
static_assert(sizeof(::cublasComputeType_t) == sizeof(kc::cublasComputeType_t));
static_assert(sizeof(::cudaDataType) == sizeof(kc::cudaDataType_t));
static_assert(sizeof(::cublasOperation_t) == sizeof(kc::cublasOperation_t));
static_assert(sizeof(::cublasLtEpilogue_t) == sizeof(kc::cublasLtEpilogue_t));
static_assert(std::is_same_v<ours_t<::cudaStream_t>, kc::cudaStream_t>);

#define KILN_CHECK_SIZE(type) \
  static_assert(sizeof(::type) == sizeof(kc::type), #type " differs in size from cublasLt.h");
KILN_CHECK_SIZE(cublasLtMatmulDescOpaque_t)
KILN_CHECK_SIZE(cublasLtMatrixLayoutOpaque_t)
KILN_CHECK_SIZE(cublasLtMatmulPreferenceOpaque_t)
KILN_CHECK_SIZE(cublasLtMatmulAlgo_t)
KILN_CHECK_SIZE(cublasLtMatmulHeuristicResult_t)
#undef KILN_CHECK_SIZE
#define KILN_CHECK_FIELD(field)                                                   \
  static_assert(offsetof(::cublasLtMatmulHeuristicResult_t, field) ==             \
                    offsetof(kc::cublasLtMatmulHeuristicResult_t, field),         \
                "cublasLtMatmulHeuristicResult_t::" #field " differs in offset"); \
  static_assert(sizeof(::cublasLtMatmulHeuristicResult_t::field) ==               \
                sizeof(kc::cublasLtMatmulHeuristicResult_t::field));
KILN_CHECK_FIELD(algo)
KILN_CHECK_FIELD(workspaceSize)
KILN_CHECK_FIELD(state)
KILN_CHECK_FIELD(wavesCount)
KILN_CHECK_FIELD(reserved)
#undef KILN_CHECK_FIELD

#define KILN_CHECK_CONSTANT(name)                                                   \
  static_assert(static_cast<long long>(kc::name) == static_cast<long long>(::name), \
                #name " differs from cublasLt.h");
KILN_CHECK_CONSTANT(CUBLAS_STATUS_SUCCESS)
KILN_CHECK_CONSTANT(CUBLAS_STATUS_NOT_INITIALIZED)
KILN_CHECK_CONSTANT(CUBLAS_STATUS_ALLOC_FAILED)
KILN_CHECK_CONSTANT(CUBLAS_STATUS_INVALID_VALUE)
KILN_CHECK_CONSTANT(CUBLAS_STATUS_ARCH_MISMATCH)
KILN_CHECK_CONSTANT(CUBLAS_STATUS_MAPPING_ERROR)
KILN_CHECK_CONSTANT(CUBLAS_STATUS_EXECUTION_FAILED)
KILN_CHECK_CONSTANT(CUBLAS_STATUS_INTERNAL_ERROR)
KILN_CHECK_CONSTANT(CUBLAS_STATUS_NOT_SUPPORTED)
KILN_CHECK_CONSTANT(CUBLAS_STATUS_LICENSE_ERROR)
KILN_CHECK_CONSTANT(CUBLAS_COMPUTE_32F)
KILN_CHECK_CONSTANT(CUBLAS_COMPUTE_32F_FAST_TF32)
KILN_CHECK_CONSTANT(CUBLAS_COMPUTE_64F)
KILN_CHECK_CONSTANT(CUDA_R_32F)
KILN_CHECK_CONSTANT(CUDA_R_64F)
KILN_CHECK_CONSTANT(CUBLAS_OP_N)
KILN_CHECK_CONSTANT(CUBLAS_OP_T)
KILN_CHECK_CONSTANT(CUBLASLT_MATMUL_DESC_COMPUTE_TYPE)
KILN_CHECK_CONSTANT(CUBLASLT_MATMUL_DESC_SCALE_TYPE)
KILN_CHECK_CONSTANT(CUBLASLT_MATMUL_DESC_TRANSA)
KILN_CHECK_CONSTANT(CUBLASLT_MATMUL_DESC_TRANSB)
KILN_CHECK_CONSTANT(CUBLASLT_MATMUL_DESC_EPILOGUE)
KILN_CHECK_CONSTANT(CUBLASLT_MATMUL_DESC_BIAS_POINTER)
KILN_CHECK_CONSTANT(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE)
KILN_CHECK_CONSTANT(CUBLASLT_EPILOGUE_DEFAULT)
KILN_CHECK_CONSTANT(CUBLASLT_EPILOGUE_RELU)
KILN_CHECK_CONSTANT(CUBLASLT_EPILOGUE_BIAS)
KILN_CHECK_CONSTANT(CUBLASLT_EPILOGUE_RELU_BIAS)
KILN_CHECK_CONSTANT(CUBLASLT_MATRIX_LAYOUT_TYPE)
KILN_CHECK_CONSTANT(CUBLASLT_MATRIX_LAYOUT_ORDER)
KILN_CHECK_CONSTANT(CUBLASLT_MATRIX_LAYOUT_ROWS)
KILN_CHECK_CONSTANT(CUBLASLT_MATRIX_LAYOUT_COLS)
KILN_CHECK_CONSTANT(CUBLASLT_MATRIX_LAYOUT_LD)
KILN_CHECK_CONSTANT(CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT)
KILN_CHECK_CONSTANT(CUBLASLT_ORDER_COL)
KILN_CHECK_CONSTANT(CUBLASLT_ORDER_ROW)
KILN_CHECK_CONSTANT(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES)
KILN_CHECK_CONSTANT(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES)
KILN_CHECK_CONSTANT(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES)
KILN_CHECK_CONSTANT(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES)
KILN_CHECK_CONSTANT(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES)
#undef KILN_CHECK_CONSTANT

}  // namespace

TEST_CASE("cublaslt: cublaslt_api.h was checked against the toolkit's cublasLt.h") {
  // The checks above ran at compile time; this case only makes the check visible in test runs.
  CHECK(CUBLAS_VER_MAJOR >= 12);
}
