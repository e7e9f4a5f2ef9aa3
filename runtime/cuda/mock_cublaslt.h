// A cuBLASLt that runs on the host, for tests on machines without a GPU, beside the mock driver
// (mock_driver.h). Its descriptor and layout functions record what they are given; its
// heuristic and its cublasLtMatmul first check that the descriptors agree with each other as the
// real library requires (layout dims against the transposes and D, leading dimensions, data,
// compute and scale types, the bias pointer present exactly when the epilogue reads it, the
// algorithm made for this problem, the workspace it needs) and answer
// CUBLAS_STATUS_INVALID_VALUE otherwise, with the reason in last_rejection(): a wrong mapping of
// Kiln's row-major GEMM fails loudly instead of computing something else.
//
// cublasLtMatmul then runs a reference GEMM (double accumulation; A and B rounded to TF32 under
// CUBLAS_COMPUTE_32F_FAST_TF32) on device memory. It reads and writes that memory through the
// driver table it is given (cuMemcpyDtoH/HtoD), so the mock driver checks every operand lies in
// an allocation and that a context is current; those copies count in MockDriver's counters too.
//
// Use: `MockDriver driver; MockCublasLt lt(driver.api()); ScopedDriverOverride d(driver.api());
// ScopedCublasLtOverride l(lt.api());`. One MockCublasLt may exist at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "kiln/runtime/cuda/cublaslt_api.h"
#include "kiln/runtime/cuda/driver_api.h"

namespace kiln::runtime::cuda {

// How the mock behaves.
struct MockCublasLtOptions {
  std::size_t version = 130100;  // what cublasLtGetVersion returns
  // The workspace an algorithm needs, when the preference allows that much; else it needs none.
  std::size_t workspace_bytes = 4096;
};

// A matmul descriptor as the mock recorded it.
struct MockMatmulDesc {
  cublasComputeType_t compute_type = 0;
  cudaDataType_t scale_type = 0;
  cublasOperation_t trans_a = CUBLAS_OP_N, trans_b = CUBLAS_OP_N;
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  CUdeviceptr bias = 0;
  std::int32_t bias_data_type = -1;  // -1: D's type
};

// A matrix layout as the mock recorded it.
struct MockLayout {
  cudaDataType_t type = 0;
  std::uint64_t rows = 0, cols = 0;
  std::int64_t ld = 0;
  std::int32_t order = CUBLASLT_ORDER_COL;
};

// One successful cublasLtMatmul: what it was given.
struct MockMatmulCall {
  MockMatmulDesc desc;
  MockLayout a, b, c, d;
  CUdeviceptr a_ptr = 0, b_ptr = 0, c_ptr = 0, d_ptr = 0;
  double alpha = 0, beta = 0;
  std::size_t workspace_bytes = 0;
  cudaStream_t stream = nullptr;
};

// What the mock has been asked to do so far.
struct MockCublasLtCounters {
  long long handles = 0, descs = 0, layouts = 0, preferences = 0;  // live now
  long long heuristics = 0;  // successful cublasLtMatmulAlgoGetHeuristic calls
  long long matmuls = 0;     // successful cublasLtMatmul calls
  long long rejected = 0;    // calls answered CUBLAS_STATUS_INVALID_VALUE by the checks
};

struct MockCublasLtState;

// The mock cuBLASLt; see the top of this file.
class MockCublasLt {
 public:
  // Reads and writes device memory through `driver` (the mock driver's table), which must
  // outlive this. Throws std::logic_error while another MockCublasLt lives.
  explicit MockCublasLt(const DriverApi& driver, MockCublasLtOptions options = {});
  ~MockCublasLt();
  MockCublasLt(const MockCublasLt&) = delete;
  MockCublasLt& operator=(const MockCublasLt&) = delete;

  // The entry points (static: calls after this is gone return CUBLAS_STATUS_NOT_INITIALIZED).
  const CublasLtApi& api() const;
  MockCublasLtCounters counters() const;
  // The last successful cublasLtMatmul's arguments, if any.
  std::optional<MockMatmulCall> last_matmul() const;
  // Why the last rejected call was rejected ("" if none was).
  std::string last_rejection() const;
  // Makes the next call of entry point `name` ("cublasLtMatmul", "cublasLtCreate", ...) return
  // `status` without doing anything.
  void fail_next(const std::string& name, cublasStatus_t status);

 private:
  std::unique_ptr<MockCublasLtState> state_;
};

}  // namespace kiln::runtime::cuda
