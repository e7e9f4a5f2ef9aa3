// cuBLASLt, loaded at run time with dlopen("libcublasLt.so.13") and never linked, and Kiln's GEMM
// on top of it. The library is loaded once per process, on first use;
// KILN_CUBLASLT=/path/to/libcublasLt.so.13 picks a file. Tests install a table of their own (the
// mock, mock_cublaslt.h) with ScopedCublasLtOverride.
//
// The GEMM speaks Kiln's terms: row-major C[M,N] = op(A)[M,K] · op(B)[K,N], an optional bias of
// length N added to every row (a Dense layer's) and an optional ReLU, fused into cuBLASLt's
// epilogue. cuBLASLt is column-major, and a row-major matrix read column-major is its transpose,
// so Kiln asks it for Cᵀ[N,M] = op(B)ᵀ · op(A)ᵀ: cuBLASLt's A is Kiln's B and its B is Kiln's A,
// no data moves, and the bias cuBLASLt indexes by D's rows is Kiln's length-N bias.
//
// Nothing here aborts or prints: failures throw CublasError (a CudaError), UnavailableError or
// CublasLtUnavailableError, or std::invalid_argument for a GEMM that cannot be described.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "kiln/runtime/cuda/cublaslt_api.h"
#include "kiln/runtime/cuda/device.h"
#include "kiln/runtime/cuda/driver.h"

namespace kiln::runtime::cuda {

// The oldest cuBLASLt whose ABI matches cublaslt_api.h (cublasLtGetVersion: 12.0.0).
inline constexpr std::size_t kMinCublasLtVersion = 120000;

// What loading a cuBLASLt library found.
struct CublasLtStatus {
  bool available = false;
  std::string library;      // the path given to dlopen, or the name of an installed table
  std::string loaded_from;  // the file dlopen found (empty when it found none)
  std::size_t version = 0;  // cublasLtGetVersion: 130100 is 13.1.0; 0 if unknown
  std::string message;      // one sentence: why it is unavailable, or which library is in use
};

// A failed cuBLASLt call: "cublasLtMatmul: CUBLAS_STATUS_NOT_SUPPORTED (15): the requested
// functionality is not supported[: detail]". code() and status() are the cublasStatus_t, and
// name() its name; catching CudaError catches every failure of the device runtime.
class CublasError : public CudaError {
 public:
  CublasError(std::string call, cublasStatus_t status, std::string name,
              const std::string& message);
  cublasStatus_t status() const { return code(); }
};

// cuBLASLt was needed but cannot be loaded; what() is the status message.
class CublasLtUnavailableError : public std::runtime_error {
 public:
  explicit CublasLtUnavailableError(const CublasLtStatus& status);
};

// A status's name ("CUBLAS_STATUS_NOT_SUPPORTED"): Kiln's table, else the library's, else
// "CUBLAS_STATUS_UNKNOWN_<status>".
std::string cublas_status_name(const CublasLtApi* api, cublasStatus_t status);
// "NAME (status): description", as error messages show a status.
std::string describe_cublas_status(const CublasLtApi* api, cublasStatus_t status);
// Throws the CublasError of a failed `call`; `detail` ends the message.
[[noreturn]] void throw_cublas_error(const CublasLtApi* api, cublasStatus_t status,
                                     const char* call, std::string_view detail = {});
// Throws CublasError for `call` unless `status` is CUBLAS_STATUS_SUCCESS.
inline void check_cublas(const CublasLtApi* api, cublasStatus_t status, const char* call,
                         std::string_view detail = {}) {
  if (status != CUBLAS_STATUS_SUCCESS) throw_cublas_error(api, status, call, detail);
}

// A cuBLASLt library loaded with dlopen: its entry points and what loading it found.
struct LoadedCublasLt {
  CublasLtApi api;
  CublasLtStatus status;
};

// Loads `path` (a file, or a name the dynamic loader searches for) and looks up every entry
// point. Loads again on every call; libraries are never unloaded. Needs no driver or GPU. Never
// throws but std::bad_alloc.
LoadedCublasLt load_cublaslt(const std::string& path);
// The library the process loads: $KILN_CUBLASLT when set and not empty, else
// "libcublasLt.so.13".
std::string cublaslt_path();
// The cuBLASLt this process uses: a table installed by ScopedCublasLtOverride, else the library
// at cublaslt_path(), loaded once (thread-safe) on first call. Never throws but std::bad_alloc.
const CublasLtStatus& cublaslt_status();
// The entry points of the cuBLASLt in use; throws CublasLtUnavailableError when it is not
// available.
const CublasLtApi& cublaslt();

// Makes `api` the process's cuBLASLt while it lives (tests: the mock); the previous one comes
// back on destruction. Overrides nest; install them only while no other thread uses cuBLASLt.
// `api` must outlive the override.
class ScopedCublasLtOverride {
 public:
  explicit ScopedCublasLtOverride(const CublasLtApi& api, std::string name = "test cuBLASLt");
  ~ScopedCublasLtOverride();
  ScopedCublasLtOverride(const ScopedCublasLtOverride&) = delete;
  ScopedCublasLtOverride& operator=(const ScopedCublasLtOverride&) = delete;

  const CublasLtStatus& status() const { return status_; }
  const CublasLtApi& api() const { return *api_; }

 private:
  const CublasLtApi* api_;
  CublasLtStatus status_;
  const ScopedCublasLtOverride* previous_;
};

// A cuBLASLt handle bound to a context: made with that context current, destroyed on
// destruction. Keeps the context and the cuBLASLt table it was made with.
class CublasLtHandle {
 public:
  // cublasLtCreate in `context`, with the process's cuBLASLt. Throws CublasLtUnavailableError,
  // or CublasError (CUBLAS_STATUS_NOT_INITIALIZED where the driver cannot run it).
  static std::shared_ptr<const CublasLtHandle> create(ContextPtr context);
  ~CublasLtHandle();
  CublasLtHandle(const CublasLtHandle&) = delete;
  CublasLtHandle& operator=(const CublasLtHandle&) = delete;

  cublasLtHandle_t handle() const { return handle_; }
  const CublasLtApi& api() const { return *api_; }
  const ContextPtr& context() const { return context_; }

 private:
  CublasLtHandle(const CublasLtApi& api, ContextPtr context, cublasLtHandle_t handle);

  const CublasLtApi* api_;
  ContextPtr context_;
  cublasLtHandle_t handle_;
};

using CublasLtHandlePtr = std::shared_ptr<const CublasLtHandle>;

// The element type of a GEMM's matrices (and of its compute and scale types).
enum class GemmType { f32, f64 };
// What the epilogue adds after alpha·op(A)·op(B) + beta·C: a bias row, a ReLU, or both (bias
// first, then ReLU).
enum class GemmEpilogue { none, bias, relu, bias_relu };

// "f32", "f64".
const char* gemm_type_name(GemmType type);
// "none", "bias", "relu", "bias+relu".
const char* gemm_epilogue_name(GemmEpilogue epilogue);

// One GEMM in Kiln's row-major terms: D[M,N] = epilogue(alpha · op(A) · op(B) + beta · C), where
// op(A) is [M,K] (A is stored [M,K], or [K,M] when transpose_a) and op(B) is [K,N] (B is stored
// [K,N], or [N,K] when transpose_b). C and D are [M,N]. The bias has N elements.
struct GemmDesc {
  GemmType type = GemmType::f32;
  std::int64_t m = 0, n = 0, k = 0;
  bool transpose_a = false, transpose_b = false;
  GemmEpilogue epilogue = GemmEpilogue::none;
  // f32 only: let cuBLASLt round A and B to TF32 (10-bit mantissas) on tensor cores. Off by
  // default: results then differ from the CPU's in the third or fourth digit.
  bool tf32 = false;
  // Row strides in elements of A, B and C/D as stored; 0: packed (the stored width).
  std::int64_t lda = 0, ldb = 0, ldc = 0;
  // Bytes every pointer passed to run() is aligned to (a power of two, at least the element
  // size); cuBLASLt picks only algorithms that work at this alignment.
  std::uint32_t alignment = 16;

  friend bool operator==(const GemmDesc&, const GemmDesc&) = default;
  friend auto operator<=>(const GemmDesc&, const GemmDesc&) = default;
};

// "gemm f32 D[3,5] = A[4,3]^T · B[4,5] + bias, relu": the GEMM, in error messages.
std::string describe(const GemmDesc& desc);

// What cuBLASLt is asked for, column-major: D'[m,n] = op(A')[m,k] · op(B')[k,n] with
// A' = Kiln's B, B' = Kiln's A, D' = Dᵀ. Layouts are (rows, cols, ld) of the stored data read
// column-major. Validates `desc`: throws std::invalid_argument naming the GEMM and the problem.
struct CublasLtGemm {
  cublasComputeType_t compute_type;
  cudaDataType_t data_type;  // of A, B, C, D, alpha, beta and the bias
  cublasOperation_t trans_a, trans_b;
  cublasLtEpilogue_t epilogue;
  std::uint64_t m, n, k;
  struct Layout {
    std::uint64_t rows, cols;
    std::int64_t ld;
  } a, b, d;  // C shares D's layout
};
CublasLtGemm to_cublaslt(const GemmDesc& desc);

// The descriptors of one GEMM (matmul descriptor, layouts, preference), created with `api` and
// destroyed with it; they need no GPU, so tests build them with the real library too.
class GemmDescriptors {
 public:
  GemmDescriptors(const CublasLtApi& api, const GemmDesc& desc, std::size_t max_workspace);
  ~GemmDescriptors();
  GemmDescriptors(const GemmDescriptors&) = delete;
  GemmDescriptors& operator=(const GemmDescriptors&) = delete;

  const CublasLtGemm& gemm() const { return gemm_; }
  cublasLtMatmulDesc_t matmul() const { return matmul_; }
  cublasLtMatrixLayout_t a() const { return a_; }  // cuBLASLt's A: Kiln's B
  cublasLtMatrixLayout_t b() const { return b_; }  // cuBLASLt's B: Kiln's A
  cublasLtMatrixLayout_t d() const { return d_; }  // C and D
  cublasLtMatmulPreference_t preference() const { return preference_; }
  // Sets the bias pointer of the matmul descriptor.
  void set_bias(CUdeviceptr bias);

 private:
  void destroy() noexcept;

  const CublasLtApi* api_;
  CublasLtGemm gemm_;
  cublasLtMatmulDesc_t matmul_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr, b_ = nullptr, d_ = nullptr;
  cublasLtMatmulPreference_t preference_ = nullptr;
};

// The device pointers and scalars of one run. Every pointer is aligned to the desc's alignment.
struct GemmOperands {
  CUdeviceptr a = 0, b = 0;
  CUdeviceptr c = 0;  // read only when beta != 0; 0 means D itself (accumulate in place)
  CUdeviceptr d = 0;
  CUdeviceptr bias = 0;  // N elements, with a bias epilogue only
  double alpha = 1, beta = 0;
};

// The default workspace cuBLASLt may use per GEMM: 32 MiB, NVIDIA's advice for Hopper.
inline constexpr std::size_t kDefaultGemmWorkspace = std::size_t{32} << 20;

// One GEMM shape, ready to run: its descriptors and the algorithm cuBLASLt's heuristic chose,
// made once and reused by every run. Not for concurrent runs (the bias pointer is set in the
// shared descriptor). An M or N of 0 is a GEMM with nothing to do: runs return at once.
class GemmPlan {
 public:
  // Validates `desc`, creates the descriptors and asks the heuristic for an algorithm that needs
  // at most `max_workspace` bytes. Throws std::invalid_argument, or CublasError
  // (CUBLAS_STATUS_NOT_SUPPORTED when no algorithm fits).
  GemmPlan(CublasLtHandlePtr handle, const GemmDesc& desc,
           std::size_t max_workspace = kDefaultGemmWorkspace);
  ~GemmPlan();
  GemmPlan(const GemmPlan&) = delete;
  GemmPlan& operator=(const GemmPlan&) = delete;

  const GemmDesc& desc() const { return desc_; }
  // Workspace bytes the chosen algorithm needs (at most max_workspace; often 0).
  std::size_t workspace_size() const { return workspace_size_; }
  const cublasLtMatmulAlgo_t& algorithm() const { return algo_; }

  // Queues the GEMM on `stream` (nullptr: the default stream) with `workspace_bytes` of device
  // memory at `workspace` (at least workspace_size(); shared by plans that run in order).
  // Checks the operands (null or misaligned pointers, workspace too small) first: throws
  // std::invalid_argument, or CublasError for cuBLASLt's failures.
  void run(const GemmOperands& operands, const Stream* stream, CUdeviceptr workspace,
           std::size_t workspace_bytes);
  // The same, with a workspace of the plan's own, allocated on first use.
  void run(const GemmOperands& operands, const Stream* stream = nullptr);

 private:
  CublasLtHandlePtr handle_;
  GemmDesc desc_;
  std::unique_ptr<GemmDescriptors> descriptors_;  // null for an empty GEMM
  cublasLtMatmulAlgo_t algo_{};
  std::size_t workspace_size_ = 0;
  DeviceBuffer own_workspace_;
};

// Plans by GemmDesc for one handle: a compiled function's GEMMs, each planned once.
class GemmPlanCache {
 public:
  explicit GemmPlanCache(CublasLtHandlePtr handle,
                         std::size_t max_workspace = kDefaultGemmWorkspace);
  // The plan of `desc`, made on first request.
  GemmPlan& plan(const GemmDesc& desc);
  std::size_t size() const { return plans_.size(); }
  // The largest workspace_size() of the plans so far: one workspace of this size serves all.
  std::size_t workspace_size() const;
  const CublasLtHandlePtr& handle() const { return handle_; }

 private:
  CublasLtHandlePtr handle_;
  std::size_t max_workspace_;
  std::map<GemmDesc, std::unique_ptr<GemmPlan>> plans_;
};

}  // namespace kiln::runtime::cuda
