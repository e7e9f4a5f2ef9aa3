// The cuBLASLt layer (runtime/cuda/cublaslt.h): loading the library and saying why it cannot be
// used, status names, the descriptors Kiln builds checked against the real library (which needs
// no GPU for them), and Kiln's row-major GEMM on the mock driver and mock cuBLASLt: every
// transpose pair, epilogue, type and odd size against a host reference, alpha/beta, row strides,
// TF32 only when asked, plans and workspaces, and every error. Needs no GPU.
#include <catch2/catch.hpp>

#include "env_test_util.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "kiln/runtime/cuda/cublaslt.h"
#include "kiln/runtime/cuda/device.h"
#include "kiln/runtime/cuda/driver.h"
#include "kiln/runtime/cuda/mock_cublaslt.h"
#include "kiln/runtime/cuda/mock_driver.h"

#include "process_test_util.h"

namespace {

using namespace kiln::runtime::cuda;
using Catch::Contains;

#ifdef KILN_CUBLASLT_LIB
constexpr const char* kRealLibrary = KILN_CUBLASLT_LIB;
#else
constexpr const char* kRealLibrary = "libcublasLt.so.13";
#endif

// The real cuBLASLt, loaded once for the tests that use it; nullopt where it is not installed.
const LoadedCublasLt* real_cublaslt() {
  static const std::optional<LoadedCublasLt> loaded = []() -> std::optional<LoadedCublasLt> {
    LoadedCublasLt lib = load_cublaslt(kRealLibrary);
    if (!lib.status.available) return std::nullopt;
    return lib;
  }();
  return loaded ? &*loaded : nullptr;
}

using kiln::testing::ScopedEnv;

// The mock driver and mock cuBLASLt installed as the process's, a context and a handle.
struct MockGpu {
  explicit MockGpu(MockCublasLtOptions options = {}) : lt(driver.api(), options) {}
  MockDriver driver;
  MockCublasLt lt;
  ScopedDriverOverride use_driver{driver.api(), "mock"};
  ScopedCublasLtOverride use_lt{lt.api(), "mock cuBLASLt"};
  ContextPtr context = Context::retain(0);
  CublasLtHandlePtr handle = CublasLtHandle::create(context);
};

// Deterministic values in [-1, 1].
template <class T>
std::vector<T> values(std::size_t n, unsigned seed) {
  std::vector<T> out(n);
  std::uint32_t state = seed * 2654435761u + 12345u;
  for (T& x : out) {
    state = state * 1664525u + 1013904223u;
    x = static_cast<T>((state >> 8) / double(1 << 24) * 2.0 - 1.0);
  }
  return out;
}

template <class T>
DeviceBuffer upload(const ContextPtr& context, const std::vector<T>& host) {
  DeviceBuffer buffer(context, host.size() * sizeof(T));
  if (!host.empty()) buffer.copy_from_host(host.data(), host.size() * sizeof(T));
  return buffer;
}

template <class T>
std::vector<T> download(const DeviceBuffer& buffer) {
  std::vector<T> host(buffer.size() / sizeof(T));
  if (!host.empty()) buffer.copy_to_host(host.data(), buffer.size());
  return host;
}

// Stored sizes (elements) of A, B and C/D of a row-major GEMM, with its row strides.
struct Sizes {
  std::int64_t lda, ldb, ldc, a, b, c;
};
Sizes sizes(const GemmDesc& d) {
  Sizes s;
  s.lda = d.lda != 0 ? d.lda : (d.transpose_a ? d.m : d.k);
  s.ldb = d.ldb != 0 ? d.ldb : (d.transpose_b ? d.k : d.n);
  s.ldc = d.ldc != 0 ? d.ldc : d.n;
  s.a = (d.transpose_a ? d.k : d.m) * s.lda;
  s.b = (d.transpose_b ? d.n : d.k) * s.ldb;
  s.c = d.m * s.ldc;
  return s;
}

// The host reference, row-major, in double: D = epilogue(alpha op(A) op(B) + beta C [+ bias]).
// Elements of D outside the rows (row-stride padding) keep C's values when C is D.
template <class T>
std::vector<double> reference(const GemmDesc& d, const std::vector<T>& a, const std::vector<T>& b,
                              const std::vector<T>& c, const std::vector<T>& bias, double alpha,
                              double beta) {
  const Sizes s = sizes(d);
  std::vector<double> out(c.begin(), c.end());
  for (std::int64_t i = 0; i < d.m; ++i)
    for (std::int64_t j = 0; j < d.n; ++j) {
      double acc = 0;
      for (std::int64_t p = 0; p < d.k; ++p) {
        const double x = d.transpose_a ? a[p * s.lda + i] : a[i * s.lda + p];
        const double y = d.transpose_b ? b[j * s.ldb + p] : b[p * s.ldb + j];
        acc += x * y;
      }
      double v = alpha * acc + (beta != 0 ? beta * double(c[i * s.ldc + j]) : 0.0);
      if (d.epilogue == GemmEpilogue::bias || d.epilogue == GemmEpilogue::bias_relu) v += bias[j];
      if (d.epilogue == GemmEpilogue::relu || d.epilogue == GemmEpilogue::bias_relu)
        v = std::max(v, 0.0);
      out[i * s.ldc + j] = v;
    }
  return out;
}

// Runs `desc` on the mock with fresh operands (D starts as C: accumulate in place) and returns
// the largest error against the reference, relative to 1 + |reference|.
template <class T>
double run_and_compare(MockGpu& gpu, GemmPlan& plan, double alpha = 1, double beta = 0,
                       unsigned seed = 1) {
  const GemmDesc& d = plan.desc();
  const Sizes s = sizes(d);
  const std::vector<T> a = values<T>(s.a, seed), b = values<T>(s.b, seed + 1),
                       c = values<T>(s.c, seed + 2), bias = values<T>(d.n, seed + 3);
  DeviceBuffer da = upload(gpu.context, a), db = upload(gpu.context, b),
               dd = upload(gpu.context, c);
  DeviceBuffer dbias;
  const bool with_bias = d.epilogue == GemmEpilogue::bias || d.epilogue == GemmEpilogue::bias_relu;
  if (with_bias) dbias = upload(gpu.context, bias);
  plan.run({.a = da.get(),
            .b = db.get(),
            .d = dd.get(),
            .bias = dbias.get(),
            .alpha = alpha,
            .beta = beta});
  const std::vector<T> got = download<T>(dd);
  const std::vector<double> want = reference(d, a, b, c, bias, alpha, beta);
  double worst = 0;
  for (std::size_t i = 0; i < want.size(); ++i)
    worst = std::max(worst, std::abs(double(got[i]) - want[i]) / (1 + std::abs(want[i])));
  return worst;
}

template <class E, class F>
std::string thrown(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  FAIL("nothing was thrown");
  return "";
}

// What a descriptor set says through the library's Get functions.
struct ReadBack {
  std::int32_t compute = -1, scale = -1, trans_a = -1, trans_b = -1;
  std::uint32_t epilogue = 0;
  const void* bias = nullptr;
  struct Layout {
    std::uint32_t type = 99;
    std::uint64_t rows = 0, cols = 0;
    std::int64_t ld = 0;
    std::int32_t order = -1;
    bool operator==(const Layout&) const = default;
  } a, b, d;
  bool operator==(const ReadBack&) const = default;
};

ReadBack read_back(const CublasLtApi& api, const GemmDescriptors& g) {
  ReadBack r;
  std::size_t written = 0;
  const auto get = [&](cublasLtMatmulDescAttributes_t attribute, auto& value) {
    REQUIRE(api.cublasLtMatmulDescGetAttribute(g.matmul(), attribute, &value, sizeof value,
                                               &written) == CUBLAS_STATUS_SUCCESS);
    CHECK(written == sizeof value);
  };
  get(CUBLASLT_MATMUL_DESC_COMPUTE_TYPE, r.compute);
  get(CUBLASLT_MATMUL_DESC_SCALE_TYPE, r.scale);
  get(CUBLASLT_MATMUL_DESC_TRANSA, r.trans_a);
  get(CUBLASLT_MATMUL_DESC_TRANSB, r.trans_b);
  get(CUBLASLT_MATMUL_DESC_EPILOGUE, r.epilogue);
  get(CUBLASLT_MATMUL_DESC_BIAS_POINTER, r.bias);
  const auto layout = [&](cublasLtMatrixLayout_t l, ReadBack::Layout& out) {
    const auto one = [&](cublasLtMatrixLayoutAttribute_t attribute, auto& value) {
      REQUIRE(api.cublasLtMatrixLayoutGetAttribute(l, attribute, &value, sizeof value, &written) ==
              CUBLAS_STATUS_SUCCESS);
    };
    one(CUBLASLT_MATRIX_LAYOUT_TYPE, out.type);
    one(CUBLASLT_MATRIX_LAYOUT_ROWS, out.rows);
    one(CUBLASLT_MATRIX_LAYOUT_COLS, out.cols);
    one(CUBLASLT_MATRIX_LAYOUT_LD, out.ld);
    one(CUBLASLT_MATRIX_LAYOUT_ORDER, out.order);
  };
  layout(g.a(), r.a);
  layout(g.b(), r.b);
  layout(g.d(), r.d);
  return r;
}

constexpr GemmEpilogue kEpilogues[] = {GemmEpilogue::none, GemmEpilogue::bias, GemmEpilogue::relu,
                                       GemmEpilogue::bias_relu};

}  // namespace

TEST_CASE("cublaslt: statuses are named, with Kiln's table when the library cannot say") {
  CHECK(describe_cublas_status(nullptr, CUBLAS_STATUS_NOT_SUPPORTED) ==
        "CUBLAS_STATUS_NOT_SUPPORTED (15): the requested functionality is not supported");
  CHECK(cublas_status_name(nullptr, CUBLAS_STATUS_NOT_INITIALIZED) ==
        "CUBLAS_STATUS_NOT_INITIALIZED");
  CHECK(cublas_status_name(nullptr, 99) == "CUBLAS_STATUS_UNKNOWN_99");
  CHECK_THAT(describe_cublas_status(nullptr, 99), Contains("(99)"));
  try {
    throw_cublas_error(nullptr, CUBLAS_STATUS_EXECUTION_FAILED, "cublasLtMatmul", "gemm f32");
  } catch (const CudaError& e) {  // a CublasError is a CudaError
    CHECK(std::string(e.what()) ==
          "cublasLtMatmul: CUBLAS_STATUS_EXECUTION_FAILED (13): the GPU program failed to "
          "execute: gemm f32");
    CHECK(e.code() == 13);
    CHECK(e.name() == "CUBLAS_STATUS_EXECUTION_FAILED");
    CHECK(e.call() == "cublasLtMatmul");
    CHECK(dynamic_cast<const CublasError*>(&e) != nullptr);
  }
  if (const LoadedCublasLt* real = real_cublaslt()) {  // the library agrees with the table
    for (cublasStatus_t s : {0, 1, 3, 7, 8, 11, 13, 14, 15, 16})
      CHECK(std::string(real->api.cublasLtGetStatusName(s)) == cublas_status_name(nullptr, s));
    CHECK(cublas_status_name(&real->api, 99) == "CUBLAS_STATUS_UNKNOWN_99");
  }
}

TEST_CASE("cublaslt: the real library loads and describes GEMMs without a GPU") {
  const LoadedCublasLt* real = real_cublaslt();
  if (real == nullptr) {
    WARN("skipped: cannot load " << kRealLibrary << ": "
                                 << load_cublaslt(kRealLibrary).status.message);
    return;
  }
  CHECK(real->status.version >= kMinCublasLtVersion);
  CHECK_THAT(real->status.message, Contains("cuBLASLt 1"));
  CHECK_FALSE(real->status.loaded_from.empty());
#define KILN_EXPECT_ENTRY_POINT(result, name, ...) CHECK(real->api.name != nullptr);
  KILN_CUBLASLT_ENTRY_POINTS(KILN_EXPECT_ENTRY_POINT)
#undef KILN_EXPECT_ENTRY_POINT
  // Without a driver cublasLtCreate cannot initialise (gpu-notes.md: NOT_INITIALIZED).
  if (!available()) {
    cublasLtHandle_t handle = nullptr;
    CHECK(real->api.cublasLtCreate(&handle) == CUBLAS_STATUS_NOT_INITIALIZED);
    CHECK(handle == nullptr);
  }
  // Descriptors need no GPU: Kiln's for a Dense-like GEMM, read back from the real library.
  const GemmDesc desc{
      .m = 7, .n = 5, .k = 3, .transpose_a = true, .epilogue = GemmEpilogue::bias_relu, .lda = 9};
  GemmDescriptors g(real->api, desc, kDefaultGemmWorkspace);
  const ReadBack r = read_back(real->api, g);
  CHECK(r.compute == CUBLAS_COMPUTE_32F);
  CHECK(r.scale == CUDA_R_32F);
  CHECK(r.trans_a == CUBLAS_OP_N);  // cuBLASLt's A is Kiln's B, stored [K,N]
  CHECK(r.trans_b == CUBLAS_OP_T);  // cuBLASLt's B is Kiln's A, stored [K,M]
  CHECK(r.epilogue == CUBLASLT_EPILOGUE_RELU_BIAS);
  CHECK(r.bias == reinterpret_cast<const void*>(std::uintptr_t{16}));  // the alignment stand-in
  CHECK(r.a == ReadBack::Layout{CUDA_R_32F, 5, 3, 5, CUBLASLT_ORDER_COL});
  CHECK(r.b == ReadBack::Layout{CUDA_R_32F, 7, 3, 9, CUBLASLT_ORDER_COL});
  CHECK(r.d == ReadBack::Layout{CUDA_R_32F, 5, 7, 5, CUBLASLT_ORDER_COL});  // bias: D's 5 rows
}

TEST_CASE("cublaslt: the mock records what the real library does for every kind of GEMM") {
  const LoadedCublasLt* real = real_cublaslt();
  if (real == nullptr) {
    WARN("skipped: cannot load " << kRealLibrary);
    return;
  }
  MockDriver driver;
  MockCublasLt lt(driver.api());
  for (GemmType type : {GemmType::f32, GemmType::f64})
    for (bool tf32 : {false, true})
      for (int t = 0; t < 4; ++t)
        for (GemmEpilogue e : kEpilogues) {
          if (tf32 && type == GemmType::f64) continue;
          const GemmDesc desc{.type = type,
                              .m = 3,
                              .n = 17,
                              .k = 64,
                              .transpose_a = (t & 1) != 0,
                              .transpose_b = (t & 2) != 0,
                              .epilogue = e,
                              .tf32 = tf32};
          INFO(describe(desc));
          GemmDescriptors theirs(real->api, desc, 1 << 20);
          GemmDescriptors ours(lt.api(), desc, 1 << 20);
          CHECK(read_back(real->api, theirs) == read_back(lt.api(), ours));
        }
}

TEST_CASE("cublaslt: a missing file or a library that is not cuBLASLt is unavailable") {
  const LoadedCublasLt missing = load_cublaslt("/nonexistent/kiln/libcublasLt.so.13");
  CHECK_FALSE(missing.status.available);
  CHECK_THAT(missing.status.message,
             Contains("no cuBLASLt: cannot load /nonexistent/kiln/libcublasLt.so.13 ("));
  CHECK(missing.api.cublasLtCreate == nullptr);
  const LoadedCublasLt other = load_cublaslt("libz.so.1");
  CHECK_FALSE(other.status.available);
  CHECK_THAT(other.status.message,
             Contains("libz.so.1 is not a cuBLASLt library (it has no cublasLtCreate)"));
}

TEST_CASE("cublaslt: KILN_CUBLASLT names the library to load") {
  {
    ScopedEnv env("KILN_CUBLASLT", "/opt/cuda/libcublasLt.so.13");
    CHECK(cublaslt_path() == "/opt/cuda/libcublasLt.so.13");
  }
  {
    ScopedEnv env("KILN_CUBLASLT", "");
    CHECK(cublaslt_path() == "libcublasLt.so.13");
  }
}

// Run by the next case in a child process: the process's cuBLASLt is loaded once, so only a
// fresh process sees the environment variable.
TEST_CASE("cublaslt: child: print the process's cuBLASLt status", "[.cublaslt_child]") {
  std::cout << "available: " << cublaslt_status().available << "\n"
            << "message: " << cublaslt_status().message << "\n";
  try {
    cublaslt();
    std::cout << "cublaslt(): ok\n";
  } catch (const CublasLtUnavailableError& e) {
    std::cout << "cublaslt(): " << e.what() << "\n";
  }
}

TEST_CASE("cublaslt: KILN_CUBLASLT picks the process's library") {
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  ScopedEnv env("KILN_CUBLASLT", "/nonexistent/kiln/libcublasLt.so.13");
  const kiln::testing::Outcome child = kiln::testing::run({self, "[.cublaslt_child]"});
  CHECK(child.status == 0);
  CHECK_THAT(child.out, Contains("available: 0"));
  CHECK_THAT(child.out, Contains("cublaslt(): no cuBLASLt: cannot load "
                                 "/nonexistent/kiln/libcublasLt.so.13 ("));
  CHECK_THAT(child.out, Contains("(the path comes from KILN_CUBLASLT)"));
}

TEST_CASE("cublaslt: an incomplete table is unavailable and handles say so") {
  MockDriver driver;
  ScopedDriverOverride use_driver(driver.api(), "mock");
  const CublasLtApi empty;
  ScopedCublasLtOverride use(empty, "empty table");
  CHECK_FALSE(cublaslt_status().available);
  CHECK_THROWS_AS(cublaslt(), CublasLtUnavailableError);
  const std::string message =
      thrown<CublasLtUnavailableError>([] { CublasLtHandle::create(Context::retain(0)); });
  CHECK_THAT(message, Contains("empty table lacks entry points"));
}

TEST_CASE("cublaslt: every transpose pair, epilogue, type and odd size equals the reference") {
  MockGpu gpu;
  GemmPlanCache cache(gpu.handle);
  const std::int64_t dims[] = {1, 3, 17, 64};
  long long cases = 0;
  for (GemmType type : {GemmType::f32, GemmType::f64})
    for (int t = 0; t < 4; ++t)
      for (GemmEpilogue e : kEpilogues)
        for (std::int64_t m : dims)
          for (std::int64_t n : dims)
            for (std::int64_t k : dims) {
              const GemmDesc desc{.type = type,
                                  .m = m,
                                  .n = n,
                                  .k = k,
                                  .transpose_a = (t & 1) != 0,
                                  .transpose_b = (t & 2) != 0,
                                  .epilogue = e};
              GemmPlan& plan = cache.plan(desc);
              const double error = type == GemmType::f32
                                       ? run_and_compare<float>(gpu, plan, 1, 0, unsigned(cases))
                                       : run_and_compare<double>(gpu, plan, 1, 0, unsigned(cases));
              INFO(describe(desc) << ": " << gpu.lt.last_rejection());
              REQUIRE(error <= (type == GemmType::f32 ? 1e-6 : 1e-14));
              ++cases;
            }
  CHECK(cases == 2 * 4 * 4 * 64);
  CHECK(gpu.lt.counters().matmuls == cases);
  CHECK(gpu.lt.counters().rejected == 0);
}

TEST_CASE("cublaslt: alpha and beta, with C apart or accumulated in place") {
  MockGpu gpu;
  for (GemmType type : {GemmType::f32, GemmType::f64}) {
    const GemmDesc desc{
        .type = type, .m = 17, .n = 3, .k = 5, .transpose_b = true, .epilogue = GemmEpilogue::bias};
    GemmPlan plan(gpu.handle, desc);
    INFO(describe(desc));
    const double tol = type == GemmType::f32 ? 1e-6 : 1e-14;
    CHECK((type == GemmType::f32 ? run_and_compare<float>(gpu, plan, 0.5, 2.0)
                                 : run_and_compare<double>(gpu, plan, 0.5, 2.0)) <= tol);
    CHECK((type == GemmType::f32 ? run_and_compare<float>(gpu, plan, -1.0, 1.0)
                                 : run_and_compare<double>(gpu, plan, -1.0, 1.0)) <= tol);
  }
  // C apart from D: D is overwritten, C is left alone.
  const GemmDesc desc{.m = 2, .n = 2, .k = 1};
  GemmPlan plan(gpu.handle, desc);
  DeviceBuffer a = upload<float>(gpu.context, {1, 2}), b = upload<float>(gpu.context, {3, 4}),
               c = upload<float>(gpu.context, {1, 1, 1, 1}),
               d = upload<float>(gpu.context, {9, 9, 9, 9});
  plan.run({.a = a.get(), .b = b.get(), .c = c.get(), .d = d.get(), .alpha = 2, .beta = 10});
  CHECK(download<float>(d) == std::vector<float>{16, 18, 22, 26});
  CHECK(download<float>(c) == std::vector<float>{1, 1, 1, 1});
  CHECK(gpu.lt.last_matmul()->c_ptr == c.get());
  CHECK(gpu.lt.last_matmul()->alpha == 2);
  CHECK(gpu.lt.last_matmul()->beta == 10);
  // beta = 0 never reads C: NaNs there do not leak into D.
  DeviceBuffer nan = upload<float>(gpu.context, std::vector<float>(4, std::nanf("")));
  plan.run({.a = a.get(), .b = b.get(), .c = nan.get(), .d = d.get()});
  CHECK(download<float>(d) == std::vector<float>{3, 4, 6, 8});
}

TEST_CASE("cublaslt: padded row strides are honoured and D's padding is left alone") {
  MockGpu gpu;
  for (int t = 0; t < 4; ++t) {
    const GemmDesc desc{.m = 5,
                        .n = 3,
                        .k = 4,
                        .transpose_a = (t & 1) != 0,
                        .transpose_b = (t & 2) != 0,
                        .epilogue = GemmEpilogue::bias_relu,
                        .lda = 8,
                        .ldb = 7,
                        .ldc = 6};
    GemmPlan plan(gpu.handle, desc);
    INFO(describe(desc));
    // run_and_compare compares the whole of D, padding included (the reference keeps C there).
    CHECK(run_and_compare<float>(gpu, plan, 1.5, 0.5) <= 1e-6);
    CHECK(gpu.lt.last_matmul()->d.ld == 6);
  }
}

TEST_CASE("cublaslt: the mapping cuBLASLt sees: Dᵀ = op(B)ᵀ op(A)ᵀ, bias over D's rows") {
  MockGpu gpu;
  // M > N and a bias of exactly N elements: a bias indexed by Kiln's rows would read past it.
  const GemmDesc desc{
      .m = 64, .n = 3, .k = 17, .transpose_a = true, .epilogue = GemmEpilogue::bias};
  GemmPlan plan(gpu.handle, desc);
  CHECK(run_and_compare<float>(gpu, plan) <= 1e-6);
  const MockMatmulCall call = *gpu.lt.last_matmul();
  CHECK(call.d.rows == 3);
  CHECK(call.d.cols == 64);
  CHECK(call.desc.trans_a == CUBLAS_OP_N);  // Kiln's B, [17,3]
  CHECK(call.a.rows == 3);
  CHECK(call.a.cols == 17);
  CHECK(call.desc.trans_b == CUBLAS_OP_T);  // Kiln's A, stored [17,64]
  CHECK(call.b.rows == 64);
  CHECK(call.b.cols == 17);
  CHECK(call.desc.epilogue == CUBLASLT_EPILOGUE_BIAS);
  CHECK(call.desc.bias != 0);
  const CublasLtGemm g = to_cublaslt(desc);
  CHECK(g.m == 3);
  CHECK(g.n == 64);
  CHECK(g.k == 17);
}

TEST_CASE("cublaslt: FP32 compute by default, TF32 only when asked") {
  MockGpu gpu;
  // Values with low mantissa bits set: TF32 rounds them away.
  const std::vector<float> a = {1.0f + 0x1p-20f, 1.0f}, b = {1.0f + 0x1p-20f, 1.0f};
  std::vector<float> results;
  for (bool tf32 : {false, true}) {
    GemmPlan plan(gpu.handle, {.m = 1, .n = 1, .k = 2, .tf32 = tf32});
    DeviceBuffer da = upload(gpu.context, a), db = upload(gpu.context, b),
                 dd = upload<float>(gpu.context, {0});
    plan.run({.a = da.get(), .b = db.get(), .d = dd.get()});
    CHECK(gpu.lt.last_matmul()->desc.compute_type ==
          (tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F));
    CHECK(gpu.lt.last_matmul()->desc.scale_type == CUDA_R_32F);
    results.push_back(download<float>(dd)[0]);
  }
  CHECK(results[0] == 2.0f + 0x1p-19f);
  CHECK(results[1] == 2.0f);
  GemmPlan f64(gpu.handle, {.type = GemmType::f64, .m = 1, .n = 1, .k = 1});
  DeviceBuffer x = upload<double>(gpu.context, {3}), y = upload<double>(gpu.context, {0});
  f64.run({.a = x.get(), .b = x.get(), .d = y.get()});
  CHECK(gpu.lt.last_matmul()->desc.compute_type == CUBLAS_COMPUTE_64F);
  CHECK(download<double>(y)[0] == 9.0);
}

TEST_CASE("cublaslt: GEMMs that cannot be described are clear errors") {
  MockGpu gpu;
  const auto plan_error = [&](const GemmDesc& desc) {
    return thrown<std::invalid_argument>([&] { GemmPlan plan(gpu.handle, desc); });
  };
  CHECK_THAT(plan_error({.m = -1, .n = 2, .k = 2}),
             Contains("gemm f32 D[-1,2] = A[-1,2] * B[2,2]: dimensions must not be negative"));
  CHECK_THAT(plan_error({.m = 2, .n = 2, .k = 0}), Contains("K is 0"));
  CHECK_THAT(plan_error({.type = GemmType::f64, .m = 2, .n = 2, .k = 2, .tf32 = true}),
             Contains("TF32 applies to f32 GEMMs only"));
  CHECK_THAT(plan_error({.m = 2, .n = 2, .k = 4, .lda = 3}),
             Contains("the row stride of A (3) is less than its row width (4)"));
  CHECK_THAT(plan_error({.m = 2, .n = 5, .k = 4, .transpose_b = true, .ldb = 2}),
             Contains("the row stride of B (2) is less than its row width (4)"));
  CHECK_THAT(plan_error({.m = 2, .n = 5, .k = 4, .ldc = 4}),
             Contains("the row stride of C/D (4) is less than its row width (5)"));
  CHECK_THAT(plan_error({.type = GemmType::f64, .m = 2, .n = 2, .k = 2, .alignment = 4}),
             Contains("alignment 4 is not a power of two of at least the element size (8 bytes)"));
  CHECK_THAT(plan_error({.m = 2, .n = 2, .k = 2, .alignment = 24}),
             Contains("is not a power of two"));
  CHECK_THAT(plan_error({.m = std::int64_t{1} << 31, .n = 2, .k = 2}),
             Contains("cuBLASLt takes dimensions up to 2^31-1"));
  CHECK(gpu.lt.counters().descs == 0);  // nothing leaked by the failed constructions

  GemmPlan plan(gpu.handle, {.m = 2, .n = 3, .k = 4, .epilogue = GemmEpilogue::bias});
  DeviceBuffer a(gpu.context, 64), b(gpu.context, 64), d(gpu.context, 64), bias(gpu.context, 64);
  const auto run_error = [&](const GemmOperands& operands) {
    return thrown<std::invalid_argument>([&] { plan.run(operands); });
  };
  CHECK_THAT(run_error({.a = 0, .b = b.get(), .d = d.get(), .bias = bias.get()}),
             Contains("+ bias[3]: the device pointer of A is null"));
  CHECK_THAT(run_error({.a = a.get() + 4, .b = b.get(), .d = d.get(), .bias = bias.get()}),
             Contains("the device pointer of A is not aligned to 16 bytes"));
  CHECK_THAT(run_error({.a = a.get(), .b = b.get(), .d = d.get()}),
             Contains("the device pointer of the bias is null"));
  CHECK_THAT(thrown<std::invalid_argument>([&] {
               plan.run({.a = a.get(), .b = b.get(), .d = d.get(), .bias = bias.get()}, nullptr, 0,
                        0);
             }),
             Contains("the workspace (0 bytes) is smaller than the algorithm needs (4.0 KiB"));
  GemmPlan plain(gpu.handle, {.m = 2, .n = 3, .k = 4});
  CHECK_THAT(thrown<std::invalid_argument>([&] {
               plain.run({.a = a.get(), .b = b.get(), .d = d.get(), .bias = bias.get()});
             }),
             Contains("a bias was given, but the epilogue adds none"));
  CHECK(gpu.lt.counters().matmuls == 0);
}

TEST_CASE("cublaslt: a status from the library is a CublasError naming it") {
  MockGpu gpu;
  GemmPlan plan(gpu.handle, {.m = 2, .n = 2, .k = 2});
  DeviceBuffer a(gpu.context, 16), d(gpu.context, 16);
  gpu.lt.fail_next("cublasLtMatmul", CUBLAS_STATUS_NOT_SUPPORTED);
  try {
    plan.run({.a = a.get(), .b = a.get(), .d = d.get()});
    FAIL("no error");
  } catch (const CublasError& e) {
    CHECK(e.status() == CUBLAS_STATUS_NOT_SUPPORTED);
    CHECK(e.name() == "CUBLAS_STATUS_NOT_SUPPORTED");
    CHECK(std::string(e.what()) ==
          "cublasLtMatmul: CUBLAS_STATUS_NOT_SUPPORTED (15): the requested functionality is not "
          "supported: gemm f32 D[2,2] = A[2,2] * B[2,2]");
  }
  plan.run({.a = a.get(), .b = a.get(), .d = d.get()});  // the next one runs

  gpu.lt.fail_next("cublasLtMatmulAlgoGetHeuristic", CUBLAS_STATUS_ARCH_MISMATCH);
  CHECK_THAT(thrown<CublasError>([&] { GemmPlan p(gpu.handle, {.m = 1, .n = 1, .k = 1}); }),
             Contains("cublasLtMatmulAlgoGetHeuristic: CUBLAS_STATUS_ARCH_MISMATCH (8)"));
  gpu.lt.fail_next("cublasLtMatrixLayoutCreate", CUBLAS_STATUS_ALLOC_FAILED);
  CHECK_THAT(thrown<CublasError>([&] { GemmPlan p(gpu.handle, {.m = 1, .n = 1, .k = 1}); }),
             Contains("cublasLtMatrixLayoutCreate: CUBLAS_STATUS_ALLOC_FAILED (3)"));
  gpu.lt.fail_next("cublasLtCreate", CUBLAS_STATUS_NOT_INITIALIZED);
  CHECK_THAT(thrown<CudaError>([&] { CublasLtHandle::create(gpu.context); }),
             Contains("cublasLtCreate: CUBLAS_STATUS_NOT_INITIALIZED (1): the library was not "
                      "initialized: on device 0 (Kiln mock GPU)"));
  // The failed plans destroyed what they had created.
  CHECK(gpu.lt.counters().descs == 1);
  CHECK(gpu.lt.counters().layouts == 3);
  CHECK(gpu.lt.counters().preferences == 1);
}

TEST_CASE("cublaslt: the mock rejects descriptors that disagree") {
  MockGpu gpu;
  const CublasLtApi& api = gpu.lt.api();
  const GemmDesc desc{.m = 4, .n = 3, .k = 2, .epilogue = GemmEpilogue::bias};
  GemmDescriptors g(api, desc, 0);
  cublasLtHandle_t h = gpu.handle->handle();
  cublasLtMatmulHeuristicResult_t result{};
  int count = 0;
  REQUIRE(api.cublasLtMatmulAlgoGetHeuristic(h, g.matmul(), g.a(), g.b(), g.d(), g.d(),
                                             g.preference(), 1, &result,
                                             &count) == CUBLAS_STATUS_SUCCESS);
  CHECK(result.workspaceSize == 0);  // the preference allows none
  // A and B swapped: op(A) has 2 rows where D has 3.
  CHECK(api.cublasLtMatmulAlgoGetHeuristic(h, g.matmul(), g.b(), g.a(), g.d(), g.d(),
                                           g.preference(), 1, &result,
                                           &count) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK_THAT(gpu.lt.last_rejection(), Contains("op(A) has 2 rows, D has 3"));
  // An ld below the rows.
  cublasLtMatrixLayout_t narrow = nullptr;
  REQUIRE(api.cublasLtMatrixLayoutCreate(&narrow, CUDA_R_32F, 3, 4, 2) == CUBLAS_STATUS_SUCCESS);
  CHECK(api.cublasLtMatmulAlgoGetHeuristic(h, g.matmul(), g.a(), g.b(), narrow, narrow,
                                           g.preference(), 1, &result,
                                           &count) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK_THAT(gpu.lt.last_rejection(), Contains("C's ld is less than its rows"));
  api.cublasLtMatrixLayoutDestroy(narrow);
  // f64 layouts under an f32 compute type.
  GemmDescriptors f64(api, {.type = GemmType::f64, .m = 4, .n = 3, .k = 2}, 0);
  CHECK(api.cublasLtMatmulAlgoGetHeuristic(h, g.matmul(), f64.a(), f64.b(), f64.d(), f64.d(),
                                           g.preference(), 1, &result,
                                           &count) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK_THAT(gpu.lt.last_rejection(), Contains("A has data type 1, the compute type needs 0"));

  // The matmul: a bias epilogue without a bias pointer, an algorithm of another problem, a
  // workspace smaller than the algorithm's.
  REQUIRE(api.cublasLtMatmulAlgoGetHeuristic(h, g.matmul(), g.a(), g.b(), g.d(), g.d(),
                                             g.preference(), 1, &result,
                                             &count) == CUBLAS_STATUS_SUCCESS);
  DeviceBuffer a(gpu.context, 64), d(gpu.context, 64);
  void* pa = reinterpret_cast<void*>(a.get());
  void* pd = reinterpret_cast<void*>(d.get());
  const float one = 1, zero = 0;
  g.set_bias(0);
  CHECK(api.cublasLtMatmul(h, g.matmul(), &one, pa, g.a(), pa, g.b(), &zero, pd, g.d(), pd, g.d(),
                           &result.algo, nullptr, 0, nullptr) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK_THAT(gpu.lt.last_rejection(), Contains("the epilogue adds a bias but none is set"));
  g.set_bias(a.get());
  cublasLtMatmulAlgo_t other = result.algo;
  other.data[1] ^= 1;
  CHECK(api.cublasLtMatmul(h, g.matmul(), &one, pa, g.a(), pa, g.b(), &zero, pd, g.d(), pd, g.d(),
                           &other, nullptr, 0, nullptr) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK_THAT(gpu.lt.last_rejection(), Contains("the algorithm was chosen for another problem"));
  cublasLtMatmulAlgo_t greedy = result.algo;
  greedy.data[2] = 1024;
  CHECK(api.cublasLtMatmul(h, g.matmul(), &one, pa, g.a(), pa, g.b(), &zero, pd, g.d(), pd, g.d(),
                           &greedy, nullptr, 0, nullptr) == CUBLAS_STATUS_INVALID_VALUE);
  CHECK_THAT(gpu.lt.last_rejection(), Contains("is smaller than the algorithm needs (1024)"));
  // A pointer outside every allocation: the driver refuses the read.
  void* outside = reinterpret_cast<void*>(a.get() + 48);  // 48 + 4*3*4 bytes > 64
  CHECK(api.cublasLtMatmul(h, g.matmul(), &one, outside, g.a(), pa, g.b(), &zero, pd, g.d(), pd,
                           g.d(), &result.algo, nullptr, 0,
                           nullptr) == CUBLAS_STATUS_EXECUTION_FAILED);
  CHECK_THAT(gpu.lt.last_rejection(), Contains("A is not inside a device allocation"));
  CHECK(api.cublasLtMatmul(h, g.matmul(), &one, pa, g.a(), pa, g.b(), &zero, pd, g.d(), pd, g.d(),
                           &result.algo, nullptr, 0, nullptr) == CUBLAS_STATUS_SUCCESS);
}

TEST_CASE("cublaslt: a wrong attribute size is refused, as by the real library") {
  MockGpu gpu;
  GemmDescriptors g(gpu.lt.api(), {.m = 1, .n = 1, .k = 1}, 0);
  const std::int64_t wide = CUBLAS_OP_T;
  CHECK(gpu.lt.api().cublasLtMatmulDescSetAttribute(g.matmul(), CUBLASLT_MATMUL_DESC_TRANSA, &wide,
                                                    sizeof wide) == CUBLAS_STATUS_INVALID_VALUE);
  if (const LoadedCublasLt* real = real_cublaslt()) {
    GemmDescriptors theirs(real->api, {.m = 1, .n = 1, .k = 1}, 0);
    CHECK(real->api.cublasLtMatmulDescSetAttribute(theirs.matmul(), CUBLASLT_MATMUL_DESC_TRANSA,
                                                   &wide,
                                                   sizeof wide) == CUBLAS_STATUS_INVALID_VALUE);
  }
}

TEST_CASE("cublaslt: plans are made once per shape and share one workspace") {
  MockGpu gpu(MockCublasLtOptions{.workspace_bytes = 8192});
  {
    GemmPlanCache cache(gpu.handle);
    const GemmDesc x{.m = 3, .n = 4, .k = 5}, y{.m = 3, .n = 4, .k = 5, .transpose_a = true};
    GemmPlan& first = cache.plan(x);
    CHECK(&cache.plan(x) == &first);
    cache.plan(y);
    CHECK(cache.size() == 2);
    CHECK(gpu.lt.counters().heuristics == 2);
    CHECK(cache.workspace_size() == 8192);
    // One shared workspace for both plans, run in order.
    DeviceBuffer workspace(gpu.context, cache.workspace_size());
    DeviceBuffer a(gpu.context, 256), b(gpu.context, 256), d(gpu.context, 256);
    a.fill(0);
    b.fill(0);
    const long long allocations = gpu.driver.counters().allocations;
    for (const GemmDesc& desc : {x, y})
      cache.plan(desc).run({.a = a.get(), .b = b.get(), .d = d.get()}, nullptr, workspace.get(),
                           workspace.size());
    CHECK(gpu.driver.counters().allocations == allocations);
    CHECK(gpu.lt.last_matmul()->workspace_bytes == 8192);
    // A plan's own workspace: allocated once, on the first run.
    first.run({.a = a.get(), .b = b.get(), .d = d.get()});
    first.run({.a = a.get(), .b = b.get(), .d = d.get()});
    CHECK(gpu.driver.counters().allocations == allocations + 1);
    CHECK(gpu.lt.counters().matmuls == 4);
    CHECK(gpu.lt.counters().descs == 2);
  }
  // Plans destroy their descriptors.
  CHECK(gpu.lt.counters().descs == 0);
  CHECK(gpu.lt.counters().layouts == 0);
  CHECK(gpu.lt.counters().preferences == 0);
  // A workspace limit below the algorithm's picks one that needs none.
  GemmPlan small(gpu.handle, {.m = 2, .n = 2, .k = 2}, 1024);
  CHECK(small.workspace_size() == 0);
}

TEST_CASE("cublaslt: an empty GEMM does nothing") {
  MockGpu gpu;
  GemmPlan plan(gpu.handle, {.m = 0, .n = 5, .k = 3});
  plan.run({});
  GemmPlan none(gpu.handle, {.m = 4, .n = 0, .k = 0});
  none.run({});
  CHECK(gpu.lt.counters().matmuls == 0);
  CHECK(gpu.lt.counters().descs == 0);
  CHECK_THROWS_AS(
      GemmPlan(gpu.handle, {.type = GemmType::f64, .m = 0, .n = 1, .k = 1, .tf32 = true}),
      std::invalid_argument);
}

TEST_CASE("cublaslt: a plan runs from any thread: it makes its context current") {
  MockGpu gpu;
  GemmPlan plan(gpu.handle, {.m = 2, .n = 2, .k = 2});
  DeviceBuffer a(gpu.context, 16), d(gpu.context, 16);
  a.fill(0);
  // Another thread with no current context: the plan makes its context current itself.
  std::string error;
  std::thread other([&] {
    try {
      plan.run({.a = a.get(), .b = a.get(), .d = d.get()});
    } catch (const std::exception& e) {
      error = e.what();
    }
  });
  other.join();
  CHECK(error.empty());
  CHECK(gpu.lt.counters().matmuls == 1);
  CHECK(gpu.lt.counters().handles == 1);
}

TEST_CASE("cublaslt: runs go on a stream of the handle's device, not another's") {
  MockDriver driver(MockOptions{.device_count = 2});
  MockCublasLt lt(driver.api());
  ScopedDriverOverride use_driver(driver.api(), "mock");
  ScopedCublasLtOverride use_lt(lt.api(), "mock cuBLASLt");
  const ContextPtr zero = Context::retain(0);
  GemmPlan plan(CublasLtHandle::create(zero), {.m = 2, .n = 2, .k = 2});
  DeviceBuffer a(zero, 16), d(zero, 16);
  a.fill(0);
  const Stream same(Context::retain(0));  // another retain of the same primary context
  plan.run({.a = a.get(), .b = a.get(), .d = d.get()}, &same);
  CHECK(lt.last_matmul()->stream == same.handle());
  const Stream other(Context::retain(1));
  CHECK_THAT(thrown<std::invalid_argument>(
                 [&] { plan.run({.a = a.get(), .b = a.get(), .d = d.get()}, &other); }),
             Contains("the stream belongs to another context than the cuBLASLt handle"));
  CHECK(lt.counters().matmuls == 1);
}
