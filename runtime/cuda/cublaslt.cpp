#include "kiln/runtime/cuda/cublaslt.h"

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

namespace kiln::runtime::cuda {
namespace {

struct KnownStatus {
  cublasStatus_t status;
  const char* name;
  const char* text;
};

// Kiln's own names and descriptions: without a library there is nobody to ask, and names in
// messages should not depend on which one is loaded.
constexpr KnownStatus kKnownStatuses[] = {
    {0, "CUBLAS_STATUS_SUCCESS", "success"},
    {1, "CUBLAS_STATUS_NOT_INITIALIZED", "the library was not initialized"},
    {3, "CUBLAS_STATUS_ALLOC_FAILED", "the resource allocation failed"},
    {7, "CUBLAS_STATUS_INVALID_VALUE", "an invalid numeric value was used as an argument"},
    {8, "CUBLAS_STATUS_ARCH_MISMATCH", "an absent device architectural feature is required"},
    {11, "CUBLAS_STATUS_MAPPING_ERROR", "an access to GPU memory space failed"},
    {13, "CUBLAS_STATUS_EXECUTION_FAILED", "the GPU program failed to execute"},
    {14, "CUBLAS_STATUS_INTERNAL_ERROR", "an internal operation failed"},
    {15, "CUBLAS_STATUS_NOT_SUPPORTED", "the requested functionality is not supported"},
    {16, "CUBLAS_STATUS_LICENSE_ERROR", "error detected trying to check the license"},
};

const KnownStatus* known_status(cublasStatus_t status) {
  for (const KnownStatus& s : kKnownStatuses)
    if (s.status == status) return &s;
  return nullptr;
}

// "13.1.0" from cublasLtGetVersion's 130100.
std::string version_text(std::size_t version) {
  return std::to_string(version / 10000) + "." + std::to_string(version % 10000 / 100) + "." +
         std::to_string(version % 100);
}

std::atomic<const ScopedCublasLtOverride*> g_override{nullptr};

const LoadedCublasLt& process_cublaslt() {
  // Loaded once, on first use, and never unloaded (like the driver).
  static const LoadedCublasLt loaded = [] {
    LoadedCublasLt lib = load_cublaslt(cublaslt_path());
    const char* env = std::getenv("KILN_CUBLASLT");
    if (env != nullptr && *env != '\0' && !lib.status.available)
      lib.status.message += " (the path comes from KILN_CUBLASLT)";
    else if (!lib.status.available && lib.status.loaded_from.empty())
      lib.status.message +=
          "; install the CUDA toolkit's cuBLAS, or set KILN_CUBLASLT to the path of its "
          "libcublasLt.so.13";
    return lib;
  }();
  return loaded;
}

std::size_t element_size(GemmType type) {
  return type == GemmType::f32 ? 4 : 8;
}

bool has_bias(GemmEpilogue e) {
  return e == GemmEpilogue::bias || e == GemmEpilogue::bias_relu;
}

[[noreturn]] void invalid(const GemmDesc& desc, const std::string& why) {
  throw std::invalid_argument(describe(desc) + ": " + why);
}

// The one context switch before every cuBLASLt call that may touch the device.
void make_current(const CublasLtHandle& handle) {
  handle.context()->make_current();
}

}  // namespace

CublasError::CublasError(std::string call, cublasStatus_t status, std::string name,
                         const std::string& message)
    : CudaError(std::move(call), status, std::move(name), message) {}

CublasLtUnavailableError::CublasLtUnavailableError(const CublasLtStatus& status)
    : std::runtime_error(status.message) {}

std::string cublas_status_name(const CublasLtApi* api, cublasStatus_t status) {
  if (const KnownStatus* known = known_status(status)) return known->name;
  if (api != nullptr && api->cublasLtGetStatusName != nullptr) {
    // The library answers "unrecognized status" for codes it does not know either.
    const char* name = api->cublasLtGetStatusName(status);
    if (name != nullptr && std::strncmp(name, "CUBLAS_STATUS_", 14) == 0) return name;
  }
  return "CUBLAS_STATUS_UNKNOWN_" + std::to_string(status);
}

std::string describe_cublas_status(const CublasLtApi* api, cublasStatus_t status) {
  std::string text;
  if (api != nullptr && api->cublasLtGetStatusString != nullptr) {
    const char* s = api->cublasLtGetStatusString(status);
    if (s != nullptr) text = s;
  }
  if (text.empty() || text == "unrecognized status") {
    const KnownStatus* known = known_status(status);
    text = known != nullptr ? known->text : "a status this version of Kiln does not know";
  }
  return cublas_status_name(api, status) + " (" + std::to_string(status) + "): " + text;
}

void throw_cublas_error(const CublasLtApi* api, cublasStatus_t status, const char* call,
                        std::string_view detail) {
  std::string message = std::string(call) + ": " + describe_cublas_status(api, status);
  if (!detail.empty()) message.append(": ").append(detail);
  throw CublasError(call, status, cublas_status_name(api, status), message);
}

LoadedCublasLt load_cublaslt(const std::string& path) {
  LoadedCublasLt out;
  out.status.library = path;
  dlerror();
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    out.status.message =
        "no cuBLASLt: cannot load " + path + " (" + (why != nullptr ? why : "dlopen failed") + ")";
    return out;
  }
  std::string missing;
#define KILN_CUBLASLT_LOOK_UP(result, name, ...)                                 \
  out.api.name = reinterpret_cast<decltype(out.api.name)>(dlsym(handle, #name)); \
  if (out.api.name == nullptr) missing += (missing.empty() ? "" : ", ") + std::string(#name);
  KILN_CUBLASLT_ENTRY_POINTS(KILN_CUBLASLT_LOOK_UP)
#undef KILN_CUBLASLT_LOOK_UP
  Dl_info info{};
  void* probe = reinterpret_cast<void*>(out.api.cublasLtCreate);
  if (probe != nullptr && dladdr(probe, &info) != 0 && info.dli_fname != nullptr)
    out.status.loaded_from = info.dli_fname;
  if (out.api.cublasLtCreate == nullptr || out.api.cublasLtGetVersion == nullptr) {
    out.status.message =
        "no cuBLASLt: " + path + " is not a cuBLASLt library (it has no " +
        (out.api.cublasLtCreate == nullptr ? "cublasLtCreate" : "cublasLtGetVersion") + ")";
    return out;
  }
  out.status.version = out.api.cublasLtGetVersion();
  const std::string where = out.status.loaded_from.empty() || out.status.loaded_from == path
                                ? path
                                : path + " (" + out.status.loaded_from + ")";
  if (out.status.version < kMinCublasLtVersion || !missing.empty()) {
    out.status.message = "cuBLASLt " + version_text(out.status.version) + " at " + where +
                         " is too old" + (missing.empty() ? "" : ": it lacks " + missing) +
                         "; Kiln needs cuBLASLt " + version_text(kMinCublasLtVersion) + " or newer";
    return out;
  }
  out.status.available = true;
  out.status.message = "cuBLASLt " + version_text(out.status.version) + " at " + where;
  return out;
}

std::string cublaslt_path() {
  const char* env = std::getenv("KILN_CUBLASLT");
  return env != nullptr && *env != '\0' ? env : "libcublasLt.so.13";
}

const CublasLtStatus& cublaslt_status() {
  if (const ScopedCublasLtOverride* override = g_override.load(std::memory_order_acquire))
    return override->status();
  return process_cublaslt().status;
}

const CublasLtApi& cublaslt() {
  if (const ScopedCublasLtOverride* override = g_override.load(std::memory_order_acquire)) {
    if (!override->status().available) throw CublasLtUnavailableError(override->status());
    return override->api();
  }
  const LoadedCublasLt& loaded = process_cublaslt();
  if (!loaded.status.available) throw CublasLtUnavailableError(loaded.status);
  return loaded.api;
}

ScopedCublasLtOverride::ScopedCublasLtOverride(const CublasLtApi& api, std::string name)
    : api_(&api), previous_(nullptr) {
  status_.library = std::move(name);
  status_.version = api.cublasLtGetVersion != nullptr ? api.cublasLtGetVersion() : 0;
  bool complete = true;
#define KILN_CUBLASLT_PRESENT(result, entry, ...) complete = complete && api.entry != nullptr;
  KILN_CUBLASLT_ENTRY_POINTS(KILN_CUBLASLT_PRESENT)
#undef KILN_CUBLASLT_PRESENT
  status_.available = complete;
  status_.message = complete
                        ? "cuBLASLt " + version_text(status_.version) + " at " + status_.library
                        : "no cuBLASLt: " + status_.library + " lacks entry points";
  previous_ = g_override.exchange(this);
}

ScopedCublasLtOverride::~ScopedCublasLtOverride() {
  g_override.store(previous_);
}

std::shared_ptr<const CublasLtHandle> CublasLtHandle::create(ContextPtr context) {
  const CublasLtApi& api = cublaslt();
  context->make_current();
  cublasLtHandle_t handle = nullptr;
  check_cublas(
      &api, api.cublasLtCreate(&handle), "cublasLtCreate",
      "on device " + std::to_string(context->info().ordinal) + " (" + context->info().name + ")");
  return std::shared_ptr<const CublasLtHandle>(new CublasLtHandle(api, std::move(context), handle));
}

CublasLtHandle::CublasLtHandle(const CublasLtApi& api, ContextPtr context, cublasLtHandle_t handle)
    : api_(&api), context_(std::move(context)), handle_(handle) {}

CublasLtHandle::~CublasLtHandle() {
  try {
    context_->make_current();
  } catch (...) {
  }
  api_->cublasLtDestroy(handle_);
}

const char* gemm_type_name(GemmType type) {
  return type == GemmType::f32 ? "f32" : "f64";
}

const char* gemm_epilogue_name(GemmEpilogue epilogue) {
  switch (epilogue) {
    case GemmEpilogue::none:
      return "none";
    case GemmEpilogue::bias:
      return "bias";
    case GemmEpilogue::relu:
      return "relu";
    case GemmEpilogue::bias_relu:
      return "bias+relu";
  }
  return "none";
}

std::string describe(const GemmDesc& desc) {
  const auto dims = [](std::int64_t rows, std::int64_t cols) {
    // Appended piece by piece: g++ 12 warns falsely (-Wrestrict) on "[" + std::to_string(...).
    std::string text(1, '[');
    text.append(std::to_string(rows)).append(",").append(std::to_string(cols)).append("]");
    return text;
  };
  std::string out = std::string("gemm ") + gemm_type_name(desc.type) +
                    (desc.tf32 ? " (tf32)" : "") + " D" + dims(desc.m, desc.n) + " = A" +
                    (desc.transpose_a ? dims(desc.k, desc.m) + "^T" : dims(desc.m, desc.k)) +
                    " * B" +
                    (desc.transpose_b ? dims(desc.n, desc.k) + "^T" : dims(desc.k, desc.n));
  if (has_bias(desc.epilogue)) out += " + bias[" + std::to_string(desc.n) + "]";
  if (desc.epilogue == GemmEpilogue::relu || desc.epilogue == GemmEpilogue::bias_relu)
    out += ", relu";
  return out;
}

CublasLtGemm to_cublaslt(const GemmDesc& desc) {
  if (desc.m < 1 || desc.n < 1 || desc.k < 1)
    invalid(desc, "M, N and K must be at least 1 (M=" + std::to_string(desc.m) +
                      ", N=" + std::to_string(desc.n) + ", K=" + std::to_string(desc.k) + ")");
  if (desc.m > INT_MAX || desc.n > INT_MAX || desc.k > INT_MAX)
    invalid(desc, "cuBLASLt takes dimensions up to 2^31-1");
  if (desc.tf32 && desc.type != GemmType::f32) invalid(desc, "TF32 applies to f32 GEMMs only");
  const std::size_t elem = element_size(desc.type);
  if (desc.alignment < elem || (desc.alignment & (desc.alignment - 1)) != 0)
    invalid(desc, "alignment " + std::to_string(desc.alignment) +
                      " is not a power of two of at least the element size (" +
                      std::to_string(elem) + " bytes)");
  // Row-major storage: the row width each stored matrix has, and its row stride.
  const std::int64_t a_width = desc.transpose_a ? desc.m : desc.k;
  const std::int64_t b_width = desc.transpose_b ? desc.k : desc.n;
  const std::int64_t lda = desc.lda != 0 ? desc.lda : a_width;
  const std::int64_t ldb = desc.ldb != 0 ? desc.ldb : b_width;
  const std::int64_t ldc = desc.ldc != 0 ? desc.ldc : desc.n;
  const auto check_ld = [&](const char* name, std::int64_t ld, std::int64_t width) {
    if (ld < width)
      invalid(desc, std::string("the row stride of ") + name + " (" + std::to_string(ld) +
                        ") is less than its row width (" + std::to_string(width) + ")");
  };
  check_ld("A", lda, a_width);
  check_ld("B", ldb, b_width);
  check_ld("C/D", ldc, desc.n);

  CublasLtGemm g{};
  g.data_type = desc.type == GemmType::f32 ? CUDA_R_32F : CUDA_R_64F;
  g.compute_type = desc.type == GemmType::f64 ? CUBLAS_COMPUTE_64F
                   : desc.tf32                ? CUBLAS_COMPUTE_32F_FAST_TF32
                                              : CUBLAS_COMPUTE_32F;
  switch (desc.epilogue) {
    case GemmEpilogue::none:
      g.epilogue = CUBLASLT_EPILOGUE_DEFAULT;
      break;
    case GemmEpilogue::bias:
      g.epilogue = CUBLASLT_EPILOGUE_BIAS;
      break;
    case GemmEpilogue::relu:
      g.epilogue = CUBLASLT_EPILOGUE_RELU;
      break;
    case GemmEpilogue::bias_relu:
      g.epilogue = CUBLASLT_EPILOGUE_RELU_BIAS;
      break;
  }
  // Dᵀ[N,M] = op(B)ᵀ · op(A)ᵀ. A row-major [r,c] matrix with row stride ld, read column-major,
  // is a (c rows × r cols, ld) matrix: its transpose.
  g.m = static_cast<std::uint64_t>(desc.n);
  g.n = static_cast<std::uint64_t>(desc.m);
  g.k = static_cast<std::uint64_t>(desc.k);
  // cuBLASLt's A is Kiln's B: stored [K,N] reads as Bᵀ (N×K), used as is; stored [N,K] reads
  // as B (K×N), transposed.
  g.trans_a = desc.transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  g.a = {static_cast<std::uint64_t>(b_width),
         static_cast<std::uint64_t>(desc.transpose_b ? desc.n : desc.k), ldb};
  // cuBLASLt's B is Kiln's A: stored [M,K] reads as Aᵀ (K×M); stored [K,M] reads as A (M×K).
  g.trans_b = desc.transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  g.b = {static_cast<std::uint64_t>(a_width),
         static_cast<std::uint64_t>(desc.transpose_a ? desc.k : desc.m), lda};
  g.d = {static_cast<std::uint64_t>(desc.n), static_cast<std::uint64_t>(desc.m), ldc};
  return g;
}

GemmDescriptors::GemmDescriptors(const CublasLtApi& api, const GemmDesc& desc,
                                 std::size_t max_workspace)
    : api_(&api), gemm_(to_cublaslt(desc)) {
  try {
    const CublasLtGemm& g = gemm_;
    check_cublas(api_, api.cublasLtMatmulDescCreate(&matmul_, g.compute_type, g.data_type),
                 "cublasLtMatmulDescCreate", describe(desc));
    const auto set = [&](cublasLtMatmulDescAttributes_t attribute, const auto& value,
                         const char* what) {
      check_cublas(api_,
                   api.cublasLtMatmulDescSetAttribute(matmul_, attribute, &value, sizeof value),
                   "cublasLtMatmulDescSetAttribute", what);
    };
    const std::int32_t trans_a = g.trans_a, trans_b = g.trans_b;
    set(CUBLASLT_MATMUL_DESC_TRANSA, trans_a, "TRANSA");
    set(CUBLASLT_MATMUL_DESC_TRANSB, trans_b, "TRANSB");
    set(CUBLASLT_MATMUL_DESC_EPILOGUE, g.epilogue, "EPILOGUE");
    // The heuristic reads the bias pointer's alignment, not its data: until a run sets the real
    // one, a stand-in aligned to exactly `alignment` keeps it from assuming more.
    if (has_bias(desc.epilogue)) set_bias(CUdeviceptr{desc.alignment});
    const auto layout = [&](cublasLtMatrixLayout_t* out, const CublasLtGemm::Layout& l,
                            const char* which) {
      check_cublas(api_, api.cublasLtMatrixLayoutCreate(out, g.data_type, l.rows, l.cols, l.ld),
                   "cublasLtMatrixLayoutCreate", which);
    };
    layout(&a_, g.a, "A");
    layout(&b_, g.b, "B");
    layout(&d_, g.d, "D");
    check_cublas(api_, api.cublasLtMatmulPreferenceCreate(&preference_),
                 "cublasLtMatmulPreferenceCreate");
    const auto prefer = [&](cublasLtMatmulPreferenceAttributes_t attribute, const auto& value,
                            const char* what) {
      check_cublas(
          api_,
          api.cublasLtMatmulPreferenceSetAttribute(preference_, attribute, &value, sizeof value),
          "cublasLtMatmulPreferenceSetAttribute", what);
    };
    const std::uint64_t workspace = max_workspace;
    prefer(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, workspace, "MAX_WORKSPACE_BYTES");
    const std::uint32_t alignment = desc.alignment;
    prefer(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, alignment, "MIN_ALIGNMENT_A_BYTES");
    prefer(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, alignment, "MIN_ALIGNMENT_B_BYTES");
    prefer(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, alignment, "MIN_ALIGNMENT_C_BYTES");
    prefer(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, alignment, "MIN_ALIGNMENT_D_BYTES");
  } catch (...) {
    destroy();
    throw;
  }
}

GemmDescriptors::~GemmDescriptors() {
  destroy();
}

void GemmDescriptors::destroy() noexcept {
  if (preference_ != nullptr) api_->cublasLtMatmulPreferenceDestroy(preference_);
  if (d_ != nullptr) api_->cublasLtMatrixLayoutDestroy(d_);
  if (b_ != nullptr) api_->cublasLtMatrixLayoutDestroy(b_);
  if (a_ != nullptr) api_->cublasLtMatrixLayoutDestroy(a_);
  if (matmul_ != nullptr) api_->cublasLtMatmulDescDestroy(matmul_);
  preference_ = nullptr;
  a_ = b_ = d_ = nullptr;
  matmul_ = nullptr;
}

void GemmDescriptors::set_bias(CUdeviceptr bias) {
  const void* pointer = reinterpret_cast<const void*>(static_cast<std::uintptr_t>(bias));
  check_cublas(api_,
               api_->cublasLtMatmulDescSetAttribute(matmul_, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                    &pointer, sizeof pointer),
               "cublasLtMatmulDescSetAttribute", "BIAS_POINTER");
}

GemmPlan::GemmPlan(CublasLtHandlePtr handle, const GemmDesc& desc, std::size_t max_workspace)
    : handle_(std::move(handle)), desc_(desc) {
  if (handle_ == nullptr) throw std::invalid_argument(describe(desc) + ": no cuBLASLt handle");
  if (desc.m < 0 || desc.n < 0 || desc.k < 0) invalid(desc, "dimensions must not be negative");
  if (desc.m == 0 || desc.n == 0) {
    to_cublaslt({.type = desc.type,
                 .m = 1,
                 .n = 1,
                 .k = 1,
                 .tf32 = desc.tf32,
                 .alignment = desc.alignment});  // the other checks still apply
    return;
  }
  if (desc.k == 0)
    invalid(desc, "K is 0: an empty contraction is a fill of beta*C (+ bias), not a GEMM");
  const CublasLtApi& api = handle_->api();
  descriptors_ = std::make_unique<GemmDescriptors>(api, desc, max_workspace);
  make_current(*handle_);
  cublasLtMatmulHeuristicResult_t result{};
  int count = 0;
  check_cublas(&api,
               api.cublasLtMatmulAlgoGetHeuristic(handle_->handle(), descriptors_->matmul(),
                                                  descriptors_->a(), descriptors_->b(),
                                                  descriptors_->d(), descriptors_->d(),
                                                  descriptors_->preference(), 1, &result, &count),
               "cublasLtMatmulAlgoGetHeuristic", describe(desc));
  if (count < 1)
    throw_cublas_error(&api, CUBLAS_STATUS_NOT_SUPPORTED, "cublasLtMatmulAlgoGetHeuristic",
                       "no algorithm for " + describe(desc) + " within " +
                           format_bytes(max_workspace) + " of workspace");
  check_cublas(&api, result.state, "cublasLtMatmulAlgoGetHeuristic", describe(desc));
  algo_ = result.algo;
  workspace_size_ = result.workspaceSize;
}

GemmPlan::~GemmPlan() = default;

void GemmPlan::run(const GemmOperands& operands, const Stream* stream, CUdeviceptr workspace,
                   std::size_t workspace_bytes) {
  if (descriptors_ == nullptr) return;  // M or N is 0
  const auto check_pointer = [&](const char* name, CUdeviceptr p) {
    if (p == 0) invalid(desc_, std::string("the device pointer of ") + name + " is null");
    if (p % desc_.alignment != 0)
      invalid(desc_, std::string("the device pointer of ") + name + " is not aligned to " +
                         std::to_string(desc_.alignment) + " bytes");
  };
  check_pointer("A", operands.a);
  check_pointer("B", operands.b);
  check_pointer("D", operands.d);
  if (operands.c != 0) check_pointer("C", operands.c);
  if (has_bias(desc_.epilogue))
    check_pointer("the bias", operands.bias);
  else if (operands.bias != 0)
    invalid(desc_, "a bias was given, but the epilogue adds none");
  if (workspace_bytes < workspace_size_ || (workspace_size_ > 0 && workspace == 0))
    invalid(desc_, "the workspace (" + format_bytes(workspace == 0 ? 0 : workspace_bytes) +
                       ") is smaller than the algorithm needs (" + format_bytes(workspace_size_) +
                       ")");
  // Context objects are per retain; the primary context's handle is the device's identity.
  if (stream != nullptr && stream->context()->handle() != handle_->context()->handle())
    invalid(desc_, "the stream belongs to another context than the cuBLASLt handle");
  if (has_bias(desc_.epilogue)) descriptors_->set_bias(operands.bias);

  const CublasLtApi& api = handle_->api();
  const CUdeviceptr c = operands.c != 0 ? operands.c : operands.d;
  const auto ptr = [](CUdeviceptr p) {
    return reinterpret_cast<void*>(static_cast<std::uintptr_t>(p));
  };
  const float alpha32 = static_cast<float>(operands.alpha),
              beta32 = static_cast<float>(operands.beta);
  const bool f32 = desc_.type == GemmType::f32;
  const void* alpha = f32 ? static_cast<const void*>(&alpha32) : &operands.alpha;
  const void* beta = f32 ? static_cast<const void*>(&beta32) : &operands.beta;
  make_current(*handle_);
  // cuBLASLt's A is Kiln's B and its B is Kiln's A (see to_cublaslt).
  check_cublas(&api,
               api.cublasLtMatmul(handle_->handle(), descriptors_->matmul(), alpha, ptr(operands.b),
                                  descriptors_->a(), ptr(operands.a), descriptors_->b(), beta,
                                  ptr(c), descriptors_->d(), ptr(operands.d), descriptors_->d(),
                                  &algo_, workspace_bytes > 0 ? ptr(workspace) : nullptr,
                                  workspace_bytes, stream != nullptr ? stream->handle() : nullptr),
               "cublasLtMatmul", describe(desc_));
}

void GemmPlan::run(const GemmOperands& operands, const Stream* stream) {
  if (descriptors_ != nullptr && workspace_size_ > 0 && own_workspace_.size() < workspace_size_)
    own_workspace_ = DeviceBuffer(handle_->context(), workspace_size_);
  run(operands, stream, own_workspace_.get(), own_workspace_.size());
}

GemmPlanCache::GemmPlanCache(CublasLtHandlePtr handle, std::size_t max_workspace)
    : handle_(std::move(handle)), max_workspace_(max_workspace) {}

GemmPlan& GemmPlanCache::plan(const GemmDesc& desc) {
  auto it = plans_.find(desc);
  if (it == plans_.end())
    it = plans_.emplace(desc, std::make_unique<GemmPlan>(handle_, desc, max_workspace_)).first;
  return *it->second;
}

std::size_t GemmPlanCache::workspace_size() const {
  std::size_t most = 0;
  for (const auto& [desc, plan] : plans_)
    most = std::max(most, plan->workspace_size());
  return most;
}

}  // namespace kiln::runtime::cuda
