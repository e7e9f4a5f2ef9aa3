#include "kiln/runtime/cuda/mock_cublaslt.h"

#include <atomic>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace kiln::runtime::cuda {

struct MockCublasLtState {
  const DriverApi* driver = nullptr;
  MockCublasLtOptions options;
  mutable std::mutex mutex;
  std::set<std::uintptr_t> handles;
  std::map<std::uintptr_t, MockMatmulDesc> descs;
  std::map<std::uintptr_t, MockLayout> layouts;
  std::map<std::uintptr_t, std::uint64_t> preferences;  // max workspace bytes
  std::map<std::string, cublasStatus_t> failures;       // injected, by entry point
  MockCublasLtCounters counters;
  std::optional<MockMatmulCall> last_matmul;
  std::string last_rejection;
};

namespace {

std::atomic<MockCublasLtState*> g_mock{nullptr};
// Handles are never reused in a process, so a stale one is always recognised.
std::atomic<std::uintptr_t> g_next_handle{0x10000};
// algo.data[0] of the mock's algorithms.
constexpr std::uint64_t kAlgoMagic = 0x4b494c4e4c54ull;  // "KILNLT"

std::uintptr_t new_handle() {
  return g_next_handle.fetch_add(64);
}

template <class T>
std::uintptr_t value_of(T* handle) {
  return reinterpret_cast<std::uintptr_t>(handle);
}

// Runs `body` on the live mock, locked, unless a failure was injected for `entry`.
template <class Body>
cublasStatus_t with_mock(const char* entry, Body&& body) {
  MockCublasLtState* mock = g_mock.load(std::memory_order_acquire);
  if (mock == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  std::lock_guard lock(mock->mutex);
  if (auto it = mock->failures.find(entry); it != mock->failures.end()) {
    const cublasStatus_t status = it->second;
    mock->failures.erase(it);
    return status;
  }
  return body(*mock);
}

cublasStatus_t reject(MockCublasLtState& mock, std::string why) {
  ++mock.counters.rejected;
  mock.last_rejection = std::move(why);
  return CUBLAS_STATUS_INVALID_VALUE;
}

std::string layout_text(const MockLayout& l) {
  return std::to_string(l.rows) + "x" + std::to_string(l.cols) + " ld " + std::to_string(l.ld);
}

// Why the problem is inconsistent, or "" when it is not: what the real library checks before it
// looks for (or runs) an algorithm.
std::string check_problem(const MockMatmulDesc& desc, const MockLayout& a, const MockLayout& b,
                          const MockLayout& c, const MockLayout& d) {
  cudaDataType_t type;
  if (desc.compute_type == CUBLAS_COMPUTE_32F || desc.compute_type == CUBLAS_COMPUTE_32F_FAST_TF32)
    type = CUDA_R_32F;
  else if (desc.compute_type == CUBLAS_COMPUTE_64F)
    type = CUDA_R_64F;
  else
    return "compute type " + std::to_string(desc.compute_type) + " is not one the mock runs";
  if (desc.scale_type != type)
    return "scale type " + std::to_string(desc.scale_type) + " does not match compute type " +
           std::to_string(desc.compute_type);
  const struct {
    const char* name;
    const MockLayout& layout;
  } all[] = {{"A", a}, {"B", b}, {"C", c}, {"D", d}};
  for (const auto& [name, l] : all) {
    if (l.type != type)
      return std::string(name) + " has data type " + std::to_string(l.type) +
             ", the compute type needs " + std::to_string(type);
    if (l.order != CUBLASLT_ORDER_COL) return std::string(name) + " is not column-major";
    if (l.rows < 1 || l.cols < 1) return std::string(name) + " is empty: " + layout_text(l);
    if (l.ld < static_cast<std::int64_t>(l.rows))
      return std::string(name) + "'s ld is less than its rows: " + layout_text(l);
  }
  for (cublasOperation_t op : {desc.trans_a, desc.trans_b})
    if (op != CUBLAS_OP_N && op != CUBLAS_OP_T)
      return "transpose " + std::to_string(op) + " is neither N nor T";
  if (desc.epilogue != CUBLASLT_EPILOGUE_DEFAULT && desc.epilogue != CUBLASLT_EPILOGUE_RELU &&
      desc.epilogue != CUBLASLT_EPILOGUE_BIAS && desc.epilogue != CUBLASLT_EPILOGUE_RELU_BIAS)
    return "epilogue " + std::to_string(desc.epilogue) + " is not one the mock runs";
  if (desc.bias_data_type != -1 && desc.bias_data_type != type)
    return "the bias data type differs from D's";
  const std::uint64_t m = d.rows, n = d.cols;
  if (c.rows != m || c.cols != n)
    return "C (" + layout_text(c) + ") and D (" + layout_text(d) + ") differ in shape";
  const bool ta = desc.trans_a == CUBLAS_OP_T, tb = desc.trans_b == CUBLAS_OP_T;
  const std::uint64_t a_rows = ta ? a.cols : a.rows, k = ta ? a.rows : a.cols;
  if (a_rows != m)
    return std::string("op(A) has ") + std::to_string(a_rows) + " rows, D has " +
           std::to_string(m) + " (A " + layout_text(a) + (ta ? ", transposed)" : ")");
  const std::uint64_t b_rows = tb ? b.cols : b.rows, b_cols = tb ? b.rows : b.cols;
  if (b_rows != k)
    return "op(B) has " + std::to_string(b_rows) + " rows, op(A) has " + std::to_string(k) +
           " columns (B " + layout_text(b) + (tb ? ", transposed)" : ")");
  if (b_cols != n)
    return "op(B) has " + std::to_string(b_cols) + " columns, D has " + std::to_string(n);
  return "";
}

// What an algorithm was made for: everything of the problem but the pointers.
std::uint64_t signature(const MockMatmulDesc& desc, const MockLayout& a, const MockLayout& b,
                        const MockLayout& d) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a over the fields
  const auto mix = [&](std::uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xff;
      h *= 1099511628211ull;
    }
  };
  mix(static_cast<std::uint64_t>(desc.compute_type));
  mix(static_cast<std::uint64_t>(desc.trans_a));
  mix(static_cast<std::uint64_t>(desc.trans_b));
  mix(desc.epilogue);
  for (const MockLayout* l : {&a, &b, &d}) {
    mix(static_cast<std::uint64_t>(l->type));
    mix(l->rows);
    mix(l->cols);
    mix(static_cast<std::uint64_t>(l->ld));
  }
  return h;
}

bool has_bias(cublasLtEpilogue_t e) {
  return e == CUBLASLT_EPILOGUE_BIAS || e == CUBLASLT_EPILOGUE_RELU_BIAS;
}

// Elements a column-major layout spans in memory.
std::size_t span(const MockLayout& l) {
  return static_cast<std::size_t>((l.cols - 1) * static_cast<std::uint64_t>(l.ld) + l.rows);
}

float round_to_tf32(float x) {
  if (!std::isfinite(x)) return x;
  std::uint32_t bits;
  std::memcpy(&bits, &x, 4);
  bits = (bits + 0x1000u) & 0xffffe000u;  // 10 mantissa bits, rounded half away from zero
  std::memcpy(&x, &bits, 4);
  return x;
}

template <class T>
struct DeviceCopy {
  std::vector<T> host;
  bool ok = false;
};

// Reads a layout's span at `ptr` through the driver; !ok when the driver refuses.
template <class T>
DeviceCopy<T> read(const DriverApi& driver, CUdeviceptr ptr, const MockLayout& l) {
  DeviceCopy<T> out;
  out.host.resize(span(l));
  out.ok =
      driver.cuMemcpyDtoH_v2(out.host.data(), ptr, out.host.size() * sizeof(T)) == CUDA_SUCCESS;
  return out;
}

// D = epilogue(alpha · op(A) · op(B) + beta · C), column-major, accumulated in double.
template <class T>
cublasStatus_t run_gemm(MockCublasLtState& mock, const MockMatmulCall& call) {
  const DriverApi& driver = *mock.driver;
  DeviceCopy<T> a = read<T>(driver, call.a_ptr, call.a);
  DeviceCopy<T> b = read<T>(driver, call.b_ptr, call.b);
  DeviceCopy<T> d = read<T>(driver, call.d_ptr, call.d);
  DeviceCopy<T> c;
  if (call.beta != 0) c = read<T>(driver, call.c_ptr, call.c);
  const std::uint64_t m = call.d.rows, n = call.d.cols;
  DeviceCopy<T> bias;
  if (has_bias(call.desc.epilogue))
    bias = read<T>(driver, call.desc.bias,
                   MockLayout{call.d.type, m, 1, static_cast<std::int64_t>(m)});
  const auto fail = [&](const char* what) {
    mock.last_rejection =
        std::string(what) + " is not inside a device allocation (or no context is current)";
    return CUBLAS_STATUS_EXECUTION_FAILED;
  };
  if (!a.ok) return fail("A");
  if (!b.ok) return fail("B");
  if (!d.ok) return fail("D");
  if (call.beta != 0 && !c.ok) return fail("C");
  if (has_bias(call.desc.epilogue) && !bias.ok) return fail("the bias");
  if constexpr (sizeof(T) == 4) {
    if (call.desc.compute_type == CUBLAS_COMPUTE_32F_FAST_TF32) {
      for (T& x : a.host)
        x = round_to_tf32(x);
      for (T& x : b.host)
        x = round_to_tf32(x);
    }
  }
  const bool ta = call.desc.trans_a == CUBLAS_OP_T, tb = call.desc.trans_b == CUBLAS_OP_T;
  const std::uint64_t k = ta ? call.a.rows : call.a.cols;
  const auto at = [&](const std::vector<T>& v, const MockLayout& l, std::uint64_t r,
                      std::uint64_t col) { return v[col * static_cast<std::uint64_t>(l.ld) + r]; };
  std::vector<T> result(d.host);
  for (std::uint64_t j = 0; j < n; ++j)
    for (std::uint64_t i = 0; i < m; ++i) {
      double acc = 0;
      for (std::uint64_t p = 0; p < k; ++p) {
        const double x = ta ? at(a.host, call.a, p, i) : at(a.host, call.a, i, p);
        const double y = tb ? at(b.host, call.b, j, p) : at(b.host, call.b, p, j);
        acc += x * y;
      }
      double value = call.alpha * acc;
      if (call.beta != 0) value += call.beta * static_cast<double>(at(c.host, call.c, i, j));
      if (has_bias(call.desc.epilogue)) value += static_cast<double>(bias.host[i]);
      if (call.desc.epilogue == CUBLASLT_EPILOGUE_RELU ||
          call.desc.epilogue == CUBLASLT_EPILOGUE_RELU_BIAS)
        value = value > 0 ? value : 0;
      result[j * static_cast<std::uint64_t>(call.d.ld) + i] = static_cast<T>(value);
    }
  if (driver.cuMemcpyHtoD_v2(call.d_ptr, result.data(), result.size() * sizeof(T)) != CUDA_SUCCESS)
    return fail("D");
  return CUBLAS_STATUS_SUCCESS;
}

// Copies an attribute value of exactly `size` bytes, as the real library insists.
template <class T>
bool take(T& out, const void* buf, std::size_t size) {
  if (buf == nullptr || size != sizeof(T)) return false;
  std::memcpy(&out, buf, sizeof(T));
  return true;
}

template <class T>
cublasStatus_t give(const T& value, void* buf, std::size_t size, std::size_t* written) {
  if (written != nullptr) *written = sizeof(T);
  if (buf == nullptr && size == 0) return CUBLAS_STATUS_SUCCESS;  // a size query
  if (buf == nullptr || size != sizeof(T)) return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(buf, &value, sizeof(T));
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t mock_create(cublasLtHandle_t* handle) {
  return with_mock("cublasLtCreate", [&](MockCublasLtState& mock) {
    if (handle == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
    const std::uintptr_t h = new_handle();
    mock.handles.insert(h);
    ++mock.counters.handles;
    *handle = reinterpret_cast<cublasLtHandle_t>(h);
    return CUBLAS_STATUS_SUCCESS;
  });
}

cublasStatus_t mock_destroy(cublasLtHandle_t handle) {
  return with_mock("cublasLtDestroy", [&](MockCublasLtState& mock) {
    if (mock.handles.erase(value_of(handle)) == 0) return CUBLAS_STATUS_NOT_INITIALIZED;
    --mock.counters.handles;
    return CUBLAS_STATUS_SUCCESS;
  });
}

std::size_t mock_get_version() {
  MockCublasLtState* mock = g_mock.load(std::memory_order_acquire);
  return mock != nullptr ? mock->options.version : 0;
}

const char* mock_status_name(cublasStatus_t) {
  return "unrecognized status";  // makes Kiln use its own table, as for an unknown status
}

const char* mock_status_string(cublasStatus_t) {
  return "unrecognized status";
}

cublasStatus_t mock_desc_create(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute,
                                cudaDataType_t scale) {
  return with_mock("cublasLtMatmulDescCreate", [&](MockCublasLtState& mock) {
    if (desc == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
    const std::uintptr_t h = new_handle();
    MockMatmulDesc& d = mock.descs[h];
    d.compute_type = compute;
    d.scale_type = scale;
    ++mock.counters.descs;
    *desc = reinterpret_cast<cublasLtMatmulDesc_t>(h);
    return CUBLAS_STATUS_SUCCESS;
  });
}

cublasStatus_t mock_desc_destroy(cublasLtMatmulDesc_t desc) {
  return with_mock("cublasLtMatmulDescDestroy", [&](MockCublasLtState& mock) {
    if (mock.descs.erase(value_of(desc)) == 0) return CUBLAS_STATUS_INVALID_VALUE;
    --mock.counters.descs;
    return CUBLAS_STATUS_SUCCESS;
  });
}

cublasStatus_t mock_desc_set(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attribute,
                             const void* buf, std::size_t size) {
  return with_mock("cublasLtMatmulDescSetAttribute", [&](MockCublasLtState& mock) {
    auto it = mock.descs.find(value_of(desc));
    if (it == mock.descs.end()) return reject(mock, "unknown matmul descriptor");
    MockMatmulDesc& d = it->second;
    bool ok = false;
    switch (attribute) {
      case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE:
        ok = take(d.compute_type, buf, size);
        break;
      case CUBLASLT_MATMUL_DESC_SCALE_TYPE:
        ok = take(d.scale_type, buf, size);
        break;
      case CUBLASLT_MATMUL_DESC_TRANSA:
        ok = take(d.trans_a, buf, size);
        break;
      case CUBLASLT_MATMUL_DESC_TRANSB:
        ok = take(d.trans_b, buf, size);
        break;
      case CUBLASLT_MATMUL_DESC_EPILOGUE:
        ok = take(d.epilogue, buf, size);
        break;
      case CUBLASLT_MATMUL_DESC_BIAS_POINTER: {
        const void* p = nullptr;
        ok = take(p, buf, size);
        if (ok) d.bias = reinterpret_cast<std::uintptr_t>(p);
        break;
      }
      case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE:
        ok = take(d.bias_data_type, buf, size);
        break;
      default:
        return reject(
            mock, "matmul attribute " + std::to_string(attribute) + " is not one the mock knows");
    }
    return ok ? CUBLAS_STATUS_SUCCESS
              : reject(mock, "matmul attribute " + std::to_string(attribute) + " given " +
                                 std::to_string(size) + " bytes");
  });
}

cublasStatus_t mock_desc_get(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attribute,
                             void* buf, std::size_t size, std::size_t* written) {
  return with_mock("cublasLtMatmulDescGetAttribute", [&](MockCublasLtState& mock) {
    auto it = mock.descs.find(value_of(desc));
    if (it == mock.descs.end()) return CUBLAS_STATUS_INVALID_VALUE;
    const MockMatmulDesc& d = it->second;
    switch (attribute) {
      case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE:
        return give(d.compute_type, buf, size, written);
      case CUBLASLT_MATMUL_DESC_SCALE_TYPE:
        return give(d.scale_type, buf, size, written);
      case CUBLASLT_MATMUL_DESC_TRANSA:
        return give(d.trans_a, buf, size, written);
      case CUBLASLT_MATMUL_DESC_TRANSB:
        return give(d.trans_b, buf, size, written);
      case CUBLASLT_MATMUL_DESC_EPILOGUE:
        return give(d.epilogue, buf, size, written);
      case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
        return give(reinterpret_cast<const void*>(static_cast<std::uintptr_t>(d.bias)), buf, size,
                    written);
      case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE:
        return give(d.bias_data_type, buf, size, written);
      default:
        return CUBLAS_STATUS_INVALID_VALUE;
    }
  });
}

cublasStatus_t mock_layout_create(cublasLtMatrixLayout_t* layout, cudaDataType_t type,
                                  std::uint64_t rows, std::uint64_t cols, std::int64_t ld) {
  return with_mock("cublasLtMatrixLayoutCreate", [&](MockCublasLtState& mock) {
    if (layout == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
    // Like the real library, no checks here: a bad ld shows at the heuristic or the matmul.
    const std::uintptr_t h = new_handle();
    mock.layouts[h] = MockLayout{type, rows, cols, ld, CUBLASLT_ORDER_COL};
    ++mock.counters.layouts;
    *layout = reinterpret_cast<cublasLtMatrixLayout_t>(h);
    return CUBLAS_STATUS_SUCCESS;
  });
}

cublasStatus_t mock_layout_destroy(cublasLtMatrixLayout_t layout) {
  return with_mock("cublasLtMatrixLayoutDestroy", [&](MockCublasLtState& mock) {
    if (mock.layouts.erase(value_of(layout)) == 0) return CUBLAS_STATUS_INVALID_VALUE;
    --mock.counters.layouts;
    return CUBLAS_STATUS_SUCCESS;
  });
}

cublasStatus_t mock_layout_get(cublasLtMatrixLayout_t layout,
                               cublasLtMatrixLayoutAttribute_t attribute, void* buf,
                               std::size_t size, std::size_t* written) {
  return with_mock("cublasLtMatrixLayoutGetAttribute", [&](MockCublasLtState& mock) {
    auto it = mock.layouts.find(value_of(layout));
    if (it == mock.layouts.end()) return CUBLAS_STATUS_INVALID_VALUE;
    const MockLayout& l = it->second;
    switch (attribute) {
      case CUBLASLT_MATRIX_LAYOUT_TYPE:
        return give(static_cast<std::uint32_t>(l.type), buf, size, written);
      case CUBLASLT_MATRIX_LAYOUT_ORDER:
        return give(l.order, buf, size, written);
      case CUBLASLT_MATRIX_LAYOUT_ROWS:
        return give(l.rows, buf, size, written);
      case CUBLASLT_MATRIX_LAYOUT_COLS:
        return give(l.cols, buf, size, written);
      case CUBLASLT_MATRIX_LAYOUT_LD:
        return give(l.ld, buf, size, written);
      case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT:
        return give(std::int32_t{1}, buf, size, written);
      default:
        return CUBLAS_STATUS_INVALID_VALUE;
    }
  });
}

cublasStatus_t mock_preference_create(cublasLtMatmulPreference_t* preference) {
  return with_mock("cublasLtMatmulPreferenceCreate", [&](MockCublasLtState& mock) {
    if (preference == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
    const std::uintptr_t h = new_handle();
    mock.preferences[h] = 0;  // the real default: no workspace
    ++mock.counters.preferences;
    *preference = reinterpret_cast<cublasLtMatmulPreference_t>(h);
    return CUBLAS_STATUS_SUCCESS;
  });
}

cublasStatus_t mock_preference_destroy(cublasLtMatmulPreference_t preference) {
  return with_mock("cublasLtMatmulPreferenceDestroy", [&](MockCublasLtState& mock) {
    if (mock.preferences.erase(value_of(preference)) == 0) return CUBLAS_STATUS_INVALID_VALUE;
    --mock.counters.preferences;
    return CUBLAS_STATUS_SUCCESS;
  });
}

cublasStatus_t mock_preference_set(cublasLtMatmulPreference_t preference,
                                   cublasLtMatmulPreferenceAttributes_t attribute, const void* buf,
                                   std::size_t size) {
  return with_mock("cublasLtMatmulPreferenceSetAttribute", [&](MockCublasLtState& mock) {
    auto it = mock.preferences.find(value_of(preference));
    if (it == mock.preferences.end()) return reject(mock, "unknown preference");
    switch (attribute) {
      case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES:
        return take(it->second, buf, size)
                   ? CUBLAS_STATUS_SUCCESS
                   : reject(mock, "MAX_WORKSPACE_BYTES given " + std::to_string(size) + " bytes");
      case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES:
      case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES:
      case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES:
      case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: {
        std::uint32_t alignment = 0;
        return take(alignment, buf, size)
                   ? CUBLAS_STATUS_SUCCESS
                   : reject(mock, "MIN_ALIGNMENT given " + std::to_string(size) + " bytes");
      }
      default:
        return reject(mock, "preference attribute " + std::to_string(attribute) +
                                " is not one the mock knows");
    }
  });
}

// The recorded descriptor and layouts of a call, or a rejection.
struct Problem {
  const MockMatmulDesc* desc = nullptr;
  const MockLayout *a = nullptr, *b = nullptr, *c = nullptr, *d = nullptr;
};

cublasStatus_t find_problem(MockCublasLtState& mock, cublasLtHandle_t handle,
                            cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a,
                            cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
                            cublasLtMatrixLayout_t d, Problem& out) {
  if (mock.handles.count(value_of(handle)) == 0) return CUBLAS_STATUS_NOT_INITIALIZED;
  auto found_desc = mock.descs.find(value_of(desc));
  if (found_desc == mock.descs.end()) return reject(mock, "unknown matmul descriptor");
  out.desc = &found_desc->second;
  const struct {
    const char* name;
    cublasLtMatrixLayout_t handle;
    const MockLayout** slot;
  } layouts[] = {{"A", a, &out.a}, {"B", b, &out.b}, {"C", c, &out.c}, {"D", d, &out.d}};
  for (const auto& [name, h, slot] : layouts) {
    auto it = mock.layouts.find(value_of(h));
    if (it == mock.layouts.end()) return reject(mock, std::string("unknown layout of ") + name);
    *slot = &it->second;
  }
  const std::string why = check_problem(*out.desc, *out.a, *out.b, *out.c, *out.d);
  return why.empty() ? CUBLAS_STATUS_SUCCESS : reject(mock, why);
}

cublasStatus_t mock_heuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                              cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                              cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                              cublasLtMatmulPreference_t preference, int requested,
                              cublasLtMatmulHeuristicResult_t* results, int* count) {
  return with_mock("cublasLtMatmulAlgoGetHeuristic", [&](MockCublasLtState& mock) {
    if (requested < 1 || results == nullptr || count == nullptr)
      return reject(mock, "the heuristic was asked for no result");
    auto pref = mock.preferences.find(value_of(preference));
    if (pref == mock.preferences.end()) return reject(mock, "unknown preference");
    Problem p;
    if (const cublasStatus_t s = find_problem(mock, handle, desc, a, b, c, d, p);
        s != CUBLAS_STATUS_SUCCESS)
      return s;
    cublasLtMatmulHeuristicResult_t r{};
    r.algo.data[0] = kAlgoMagic;
    r.algo.data[1] = signature(*p.desc, *p.a, *p.b, *p.d);
    r.workspaceSize =
        mock.options.workspace_bytes <= pref->second ? mock.options.workspace_bytes : 0;
    r.algo.data[2] = r.workspaceSize;
    r.state = CUBLAS_STATUS_SUCCESS;
    r.wavesCount = 1.0f;
    results[0] = r;
    *count = 1;
    ++mock.counters.heuristics;
    return CUBLAS_STATUS_SUCCESS;
  });
}

cublasStatus_t mock_matmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void* alpha,
                           const void* a, cublasLtMatrixLayout_t a_layout, const void* b,
                           cublasLtMatrixLayout_t b_layout, const void* beta, const void* c,
                           cublasLtMatrixLayout_t c_layout, void* d,
                           cublasLtMatrixLayout_t d_layout, const cublasLtMatmulAlgo_t* algo,
                           void* workspace, std::size_t workspace_bytes, cudaStream_t stream) {
  return with_mock("cublasLtMatmul", [&](MockCublasLtState& mock) {
    Problem p;
    if (const cublasStatus_t s =
            find_problem(mock, handle, desc, a_layout, b_layout, c_layout, d_layout, p);
        s != CUBLAS_STATUS_SUCCESS)
      return s;
    const MockMatmulDesc& md = *p.desc;
    if (alpha == nullptr || beta == nullptr) return reject(mock, "alpha or beta is null");
    if (a == nullptr || b == nullptr || d == nullptr) return reject(mock, "A, B or D is null");
    const bool f32 = p.d->type == CUDA_R_32F;
    const std::size_t elem = f32 ? 4 : 8;
    MockMatmulCall call;
    call.desc = md;
    call.a = *p.a;
    call.b = *p.b;
    call.c = *p.c;
    call.d = *p.d;
    call.a_ptr = reinterpret_cast<std::uintptr_t>(a);
    call.b_ptr = reinterpret_cast<std::uintptr_t>(b);
    call.c_ptr = reinterpret_cast<std::uintptr_t>(c);
    call.d_ptr = reinterpret_cast<std::uintptr_t>(d);
    call.alpha = f32 ? *static_cast<const float*>(alpha) : *static_cast<const double*>(alpha);
    call.beta = f32 ? *static_cast<const float*>(beta) : *static_cast<const double*>(beta);
    call.workspace_bytes = workspace_bytes;
    call.stream = stream;
    if (c == nullptr && call.beta != 0) return reject(mock, "C is null but beta is not 0");
    if (call.c_ptr == call.d_ptr && p.c->ld != p.d->ld)
      return reject(mock, "C is D (in place) but their ld differ");
    for (CUdeviceptr ptr : {call.a_ptr, call.b_ptr, call.c_ptr, call.d_ptr})
      if (ptr % elem != 0) return reject(mock, "a matrix pointer is not aligned to its elements");
    if (has_bias(md.epilogue) != (md.bias != 0))
      return reject(mock, has_bias(md.epilogue) ? "the epilogue adds a bias but none is set"
                                                : "a bias is set but the epilogue adds none");
    if (md.bias % elem != 0) return reject(mock, "the bias is not aligned to its elements");
    if (algo == nullptr || algo->data[0] != kAlgoMagic)
      return reject(mock, "no algorithm from the heuristic was given");
    if (algo->data[1] != signature(md, *p.a, *p.b, *p.d))
      return reject(mock, "the algorithm was chosen for another problem");
    if (workspace_bytes < algo->data[2])
      return reject(mock, "the workspace (" + std::to_string(workspace_bytes) +
                              " bytes) is smaller than the algorithm needs (" +
                              std::to_string(algo->data[2]) + ")");
    if (workspace_bytes > 0 && workspace == nullptr)
      return reject(mock, "a workspace size without a workspace");
    if (mock.driver->cuStreamSynchronize(stream) != CUDA_SUCCESS)
      return reject(mock, "the stream is not one of the driver's (or no context is current)");
    const cublasStatus_t s = f32 ? run_gemm<float>(mock, call) : run_gemm<double>(mock, call);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    ++mock.counters.matmuls;
    mock.last_matmul = call;
    return CUBLAS_STATUS_SUCCESS;
  });
}

constexpr CublasLtApi kMockApi = [] {
  CublasLtApi api;
  api.cublasLtCreate = mock_create;
  api.cublasLtDestroy = mock_destroy;
  api.cublasLtGetVersion = mock_get_version;
  api.cublasLtGetStatusName = mock_status_name;
  api.cublasLtGetStatusString = mock_status_string;
  api.cublasLtMatmulDescCreate = mock_desc_create;
  api.cublasLtMatmulDescDestroy = mock_desc_destroy;
  api.cublasLtMatmulDescSetAttribute = mock_desc_set;
  api.cublasLtMatmulDescGetAttribute = mock_desc_get;
  api.cublasLtMatrixLayoutCreate = mock_layout_create;
  api.cublasLtMatrixLayoutDestroy = mock_layout_destroy;
  api.cublasLtMatrixLayoutGetAttribute = mock_layout_get;
  api.cublasLtMatmulPreferenceCreate = mock_preference_create;
  api.cublasLtMatmulPreferenceDestroy = mock_preference_destroy;
  api.cublasLtMatmulPreferenceSetAttribute = mock_preference_set;
  api.cublasLtMatmulAlgoGetHeuristic = mock_heuristic;
  api.cublasLtMatmul = mock_matmul;
  return api;
}();

}  // namespace

MockCublasLt::MockCublasLt(const DriverApi& driver, MockCublasLtOptions options)
    : state_(std::make_unique<MockCublasLtState>()) {
  state_->driver = &driver;
  state_->options = options;
  MockCublasLtState* expected = nullptr;
  if (!g_mock.compare_exchange_strong(expected, state_.get()))
    throw std::logic_error("MockCublasLt: another MockCublasLt is alive; one may exist at a time");
}

MockCublasLt::~MockCublasLt() {
  MockCublasLtState* expected = state_.get();
  g_mock.compare_exchange_strong(expected, nullptr);
}

const CublasLtApi& MockCublasLt::api() const {
  return kMockApi;
}

MockCublasLtCounters MockCublasLt::counters() const {
  std::lock_guard lock(state_->mutex);
  return state_->counters;
}

std::optional<MockMatmulCall> MockCublasLt::last_matmul() const {
  std::lock_guard lock(state_->mutex);
  return state_->last_matmul;
}

std::string MockCublasLt::last_rejection() const {
  std::lock_guard lock(state_->mutex);
  return state_->last_rejection;
}

void MockCublasLt::fail_next(const std::string& name, cublasStatus_t status) {
  std::lock_guard lock(state_->mutex);
  state_->failures[name] = status;
}

}  // namespace kiln::runtime::cuda
