// gpu_check: the checks of Kiln's CUDA runtime that only a real GPU can settle, as one program
// that needs no LLVM, no libkiln and no toolchain on the machine it runs on (it links only the
// static runtime and the C++ runtime statically). scripts/gpu_check.sh builds it here and runs it
// on a lent GPU machine; `gpu_check --mock` runs the same code on the mock driver and mock
// cuBLASLt, which is how CI tests it.
//
// Parts: the driver and its devices; host<->device copies (round trips and bandwidth); cuBLASLt
// GEMMs (handle, heuristic, results against a CPU reference over a table of types, transposes,
// epilogues and shapes, in-place C==D, 16-byte aligned operands inside one buffer, nothing
// written outside D); GEMM timings. Phase 2 (phase2.h), when a bundle is given or lies next to
// the program: Kiln's AOT GPU libraries built here (bundle_builder.h), each result against the
// CPU's, timed against phase 1's cuBLASLt and D2D numbers. Exit: 0 every check passed, 1 a check
// failed, 2 bad usage, 77 no usable driver (the tests' skip code).
//
// Strings are formatted with snprintf, not fmt: fmt is a shared library here, and this program
// must run where only libc is.
#include <dlfcn.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "kiln/runtime/cuda/cublaslt.h"
#include "kiln/runtime/cuda/device.h"
#include "kiln/runtime/cuda/driver.h"
#include "kiln/runtime/cuda/mock_cublaslt.h"
#include "kiln/runtime/cuda/mock_driver.h"
#include "phase2.h"

namespace {

namespace cu = kiln::runtime::cuda;
using Clock = std::chrono::steady_clock;

constexpr int kExitPass = 0, kExitFailed = 1, kExitUsage = 2, kExitNoGpu = 77;
constexpr std::size_t kMiB = std::size_t{1} << 20;
// The failed GEMM cases printed in full per kind; the rest are counted.
constexpr int kMaxPrinted = 10;

struct Options {
  bool mock = false;      // the mock driver and mock cuBLASLt: small sizes, no timings
  bool timings = true;    // the GEMM timings (part 4)
  bool big_gemms = true;  // the 128x784x512 shape in the GEMM table
  // Phase 2's bundle (phase2.h): --phase2 DIR, else the program's own folder when it holds a
  // manifest; empty: no phase 2.
  std::string bundle;
  std::string table_file;  // --table FILE: the final table is written there too
  // --mock: the mock driver and cuBLASLt, which phase 2 hands each library it runs.
  cu::MockDriver* mock_driver = nullptr;
  cu::MockCublasLt* mock_cublaslt = nullptr;
};

using kiln::gpu_check::strf;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// Counts failed checks; each prints a FAIL line, unless told to be quiet.
class Checks {
 public:
  // Counts a failure; prints it unless `quiet` (the table's failures past the first few).
  void fail(const std::string& what, bool quiet = false) {
    ++failures_;
    if (!quiet) std::printf("  FAIL %s\n", what.c_str());
  }
  bool expect(bool ok, const std::string& what) {
    if (!ok) fail(what);
    return ok;
  }
  int failures() const { return failures_; }

 private:
  int failures_ = 0;
};

// Deterministic numbers (splitmix64), so a failure reproduces.
class Random {
 public:
  explicit Random(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [-1, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-52 - 1.0; }

 private:
  std::uint64_t state_;
};

// Runs one part of the report under a heading and prints how long it took.
void part(const char* title, const std::function<void()>& body) {
  std::printf("\n== %s\n", title);
  std::fflush(stdout);
  const auto start = Clock::now();
  body();
  std::printf("  [%s: %.2f s]\n", title, seconds_since(start));
  std::fflush(stdout);
}

// Part 1: the driver and its devices.
void report_driver(const cu::DriverStatus& s) {
  std::printf("  driver: %s (%s)\n", cu::reason_name(s.reason), s.message.c_str());
  std::printf("  library: %s%s%s\n", s.library.c_str(), s.loaded_from.empty() ? "" : " from ",
              s.loaded_from.c_str());
  std::printf("  version: %d.%d (%d), devices: %d\n", s.version / 1000, s.version % 1000 / 10,
              s.version, s.device_count);
  if (s.code != cu::CUDA_SUCCESS)
    std::printf("  code: %s\n", cu::describe_error(nullptr, s.code).c_str());
}

void report_devices(const cu::ContextPtr& context, Checks& checks) {
  for (int i = 0; i < cu::device_count(); ++i) {
    const cu::DeviceInfo info = cu::device_info(i);
    std::printf("  device %d: %s, %s, %d SMs, %s, %d threads/block, %d bytes shared/block\n", i,
                info.name.c_str(), info.arch().c_str(), info.sm_count,
                cu::format_bytes(info.total_memory).c_str(), info.max_threads_per_block,
                info.max_shared_memory_per_block);
    checks.expect(info.sm_count > 0 && info.total_memory > 0 && info.major > 0,
                  strf("device %d reports no SMs, memory or compute capability", i));
  }
  const cu::MemoryInfo memory = context->memory_info();
  std::printf("  device 0 memory: %s free of %s\n", cu::format_bytes(memory.free).c_str(),
              cu::format_bytes(memory.total).c_str());
  checks.expect(memory.free <= memory.total && memory.total > 0, "cuMemGetInfo: free > total");
}

// Part 2: copies. Round trips at odd offsets and sizes, a fill, and the bandwidth of one large
// copy each way and device to device (the ceiling of memory-bound kernels). Host memory is
// pageable (std::vector): the runtime has no pinned allocations yet, so H2D/D2H are below what
// pinned memory reaches. Each copy is queued on a stream and timed to its synchronisation.
void check_copies(const cu::ContextPtr& context, const Options& options, Checks& checks,
                  kiln::gpu_check::Baselines& baselines) {
  Random random(1);
  for (const std::size_t size : {std::size_t{1}, std::size_t{4097}, kMiB + 3}) {
    std::vector<unsigned char> src(size), dst(size);
    for (auto& b : src)
      b = static_cast<unsigned char>(random.next());
    cu::DeviceBuffer a(context, size + 64), b(context, size + 64);
    a.copy_from_host(src.data(), size, 5);
    b.copy_from(a, size, 5, 11);
    b.copy_to_host(dst.data(), size, 11);
    checks.expect(src == dst, strf("round trip of %zu bytes at offsets 5 -> 11 differs", size));
    b.fill(0xA5);
    b.copy_to_host(dst.data(), size, 11);
    checks.expect(std::all_of(dst.begin(), dst.end(), [](unsigned char c) { return c == 0xA5; }),
                  strf("fill 0xA5 of %zu bytes reads back otherwise", size));
    std::printf("  round trip %zu bytes (H2D at 5, D2D to 11, D2H; fill): ok\n", size);
  }

  const std::size_t size = options.mock ? 16 * kMiB : 256 * kMiB;
  std::vector<unsigned char> src(size), dst(size);
  for (std::size_t i = 0; i < size; i += 8) {
    const std::uint64_t r = random.next();
    std::memcpy(src.data() + i, &r, std::min<std::size_t>(8, size - i));
  }
  cu::DeviceBuffer a(context, size), b(context, size);
  cu::Stream stream(context);
  const int samples = options.mock ? 1 : 7;
  const auto measure = [&](const char* what, const std::function<void()>& copy) {
    copy();  // warm up (first touch, page tables)
    stream.synchronize();
    std::vector<double> times;
    for (int i = 0; i < samples; ++i) {
      const auto start = Clock::now();
      copy();
      stream.synchronize();
      times.push_back(seconds_since(start));
    }
    const double t = median(times);
    if (std::strncmp(what, "D2D", 3) == 0)
      baselines.d2d_bytes_per_s = static_cast<double>(size) / t;
    std::printf("  %s %s: %.3f ms, %.1f GB/s%s\n", what, cu::format_bytes(size).c_str(), t * 1e3,
                static_cast<double>(size) / t / 1e9,
                options.mock ? " (mock: not a measurement)" : "");
  };
  measure("H2D (pageable)", [&] { a.copy_from_host(src.data(), size, 0, &stream); });
  measure("D2D           ", [&] { b.copy_from(a, size, 0, 0, &stream); });
  measure("D2H (pageable)", [&] { b.copy_to_host(dst.data(), size, 0, &stream); });
  std::printf("  (D2D moves each byte twice, a read and a write: DRAM traffic is 2x the rate)\n");
  checks.expect(src == dst, strf("the %zu-byte H2D -> D2D -> D2H round trip differs", size));
}

// Part 3: the cuBLASLt table.

// The kinds of GEMM the table runs: f32 with FP32 compute, f32 with TF32, f64.
struct GemmKind {
  const char* name;
  cu::GemmType type;
  bool tf32;
  double tolerance;  // of the normalised error (see gemm_error)
};
constexpr GemmKind kGemmKinds[] = {
    {"f32 (FP32 compute)", cu::GemmType::f32, false, 1e-5},
    {"f32 (TF32 compute)", cu::GemmType::f32, true, 5e-3},
    {"f64", cu::GemmType::f64, false, 1e-12},
};

// How C enters: beta 0 with D full of NaN (C must not be read), a separate C, or C == D in place.
enum class CMode { none, separate, in_place };
const char* c_mode_name(CMode m) {
  return m == CMode::none ? "beta=0, D=NaN" : m == CMode::separate ? "C separate" : "C==D";
}

// What one kind's cases found.
struct KindStats {
  int cases = 0, failures = 0;
  double max_error = 0;
  std::string worst;
  int min_algos = 1 << 30, max_algos = 0;
  std::set<std::size_t> heuristic_workspaces, plan_workspaces;
};

std::size_t round_up(std::size_t x, std::size_t to) {
  return (x + to - 1) / to * to;
}

// One case: the operands in one buffer at 16-byte (not 32-byte) aligned offsets, every byte
// outside D checked unchanged afterwards.
template <class T>
void run_gemm_case(const cu::CublasLtHandlePtr& handle, const cu::Stream& stream,
                   const cu::DeviceBuffer& workspace, const GemmKind& kind, cu::GemmDesc desc,
                   CMode c_mode, Random& random, KindStats& stats, Checks& checks) {
  const std::size_t m = desc.m, n = desc.n, k = desc.k;
  const bool bias =
      desc.epilogue == cu::GemmEpilogue::bias || desc.epilogue == cu::GemmEpilogue::bias_relu;
  const bool relu =
      desc.epilogue == cu::GemmEpilogue::relu || desc.epilogue == cu::GemmEpilogue::bias_relu;
  const double alpha = c_mode == CMode::separate ? 1.25 : 1.0;
  const double beta = c_mode == CMode::none ? 0.0 : c_mode == CMode::separate ? -0.75 : 0.5;

  // Layout (bytes): [pad 16] A, B, C (separate only), bias, D, each at 256·i + 16.
  std::size_t end = 0;
  const auto place = [&](std::size_t elements) {
    const std::size_t at = round_up(end, 256) + 16;
    end = at + elements * sizeof(T);
    return at;
  };
  const std::size_t a_at = place(m * k), b_at = place(k * n);
  const std::size_t c_at = c_mode == CMode::separate ? place(m * n) : 0;
  const std::size_t bias_at = bias ? place(n) : 0;
  const std::size_t d_at = place(m * n);
  const std::size_t total = round_up(end, 256) + 256;
  std::vector<T> host(total / sizeof(T));
  for (auto& v : host)
    v = static_cast<T>(random.uniform());
  const auto at = [&](std::size_t byte) { return host.data() + byte / sizeof(T); };
  if (c_mode == CMode::none) std::fill_n(at(d_at), m * n, std::numeric_limits<T>::quiet_NaN());
  const T* a = at(a_at);
  const T* b = at(b_at);
  const T* c = at(c_mode == CMode::separate ? c_at : d_at);
  const T* bias_values = at(bias_at);

  cu::DeviceBuffer buffer(handle->context(), total);
  buffer.copy_from_host(host.data(), total);
  const cu::CUdeviceptr base = buffer.get();
  const std::string name =
      cu::describe(desc) + strf(" [%s, alpha %g, beta %g]", c_mode_name(c_mode), alpha, beta);
  ++stats.cases;
  const auto fail = [&](const std::string& why) {
    ++stats.failures;
    checks.fail(name + ": " + why, stats.failures > kMaxPrinted);
  };

  // The heuristic, asked for up to 8 algorithms, as the plan asks it.
  {
    cu::GemmDescriptors descriptors(handle->api(), desc, cu::kDefaultGemmWorkspace);
    if (bias) descriptors.set_bias(base + bias_at);
    handle->context()->make_current();
    cu::cublasLtMatmulHeuristicResult_t results[8] = {};
    int count = 0;
    const cu::cublasStatus_t status = handle->api().cublasLtMatmulAlgoGetHeuristic(
        handle->handle(), descriptors.matmul(), descriptors.a(), descriptors.b(), descriptors.d(),
        descriptors.d(), descriptors.preference(), 8, results, &count);
    if (status != cu::CUBLAS_STATUS_SUCCESS || count < 1)
      return fail("heuristic: " + cu::describe_cublas_status(&handle->api(), status) +
                  strf(", %d algorithms", count));
    stats.min_algos = std::min(stats.min_algos, count);
    stats.max_algos = std::max(stats.max_algos, count);
    for (int i = 0; i < count; ++i)
      stats.heuristic_workspaces.insert(results[i].workspaceSize);
  }

  cu::GemmPlan plan(handle, desc);
  stats.plan_workspaces.insert(plan.workspace_size());
  cu::GemmOperands operands{.a = base + a_at,
                            .b = base + b_at,
                            .c = c_mode == CMode::separate ? base + c_at : 0,
                            .d = base + d_at,
                            .bias = bias ? base + bias_at : 0,
                            .alpha = alpha,
                            .beta = beta};
  plan.run(operands, &stream, workspace.get(), workspace.size());
  stream.synchronize();
  std::vector<T> out(host.size());
  buffer.copy_to_host(out.data(), total);

  // Every byte outside D is as it was (NaN compares bytewise too).
  const std::size_t d_end = d_at + m * n * sizeof(T);
  const auto* before = reinterpret_cast<const unsigned char*>(host.data());
  const auto* after = reinterpret_cast<const unsigned char*>(out.data());
  if (std::memcmp(before, after, d_at) != 0 ||
      std::memcmp(before + d_end, after + d_end, total - d_end) != 0)
    return fail("bytes outside D changed");

  // The normalised error: |D - ref| / (|alpha|·Σ|a||b| + |beta·c| + |bias|), the bound a correct
  // summation order meets (K·eps at worst), so it is meaningful where D is near 0.
  double max_error = 0;
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      double sum = 0, scale = 0;
      for (std::size_t p = 0; p < k; ++p) {
        const double x = desc.transpose_a ? a[p * m + i] : a[i * k + p];
        const double y = desc.transpose_b ? b[j * k + p] : b[p * n + j];
        sum += x * y;
        scale += std::fabs(x * y);
      }
      double ref = alpha * sum;
      scale *= std::fabs(alpha);
      if (beta != 0) ref += beta * c[i * n + j], scale += std::fabs(beta * c[i * n + j]);
      if (bias) ref += bias_values[j], scale += std::fabs(bias_values[j]);
      if (relu) ref = std::max(ref, 0.0);
      const double got = out[d_at / sizeof(T) + i * n + j];
      const double error = std::fabs(got - ref) / std::max(scale, 1e-300);
      if (!(error <= max_error)) max_error = std::isnan(error) ? INFINITY : error;
    }
  if (max_error > stats.max_error) stats.max_error = max_error, stats.worst = name;
  if (!(max_error <= kind.tolerance))
    fail(strf("max normalised error %.3g > %.1g", max_error, kind.tolerance));
}

void check_gemms(const cu::ContextPtr& context, const Options& options, Checks& checks) {
  const cu::CublasLtStatus& status = cu::cublaslt_status();
  std::printf("  cuBLASLt: %s\n", status.message.c_str());
  if (!checks.expect(status.available,
                     "cuBLASLt is not available (set KILN_CUBLASLT=/path/libcublasLt.so.13)"))
    return;
  const cu::CublasLtApi& api = cu::cublaslt();
  const std::size_t version = api.cublasLtGetVersion();
  std::printf("  cublasLtGetVersion: %zu (%zu.%zu.%zu)\n", version, version / 10000,
              version / 100 % 100, version % 100);
  checks.expect(version >= cu::kMinCublasLtVersion, "cuBLASLt is older than 12.0");

  const cu::CublasLtHandlePtr handle = cu::CublasLtHandle::create(context);
  std::printf("  handle: created in device 0's primary context (driver API, no cudart call)\n");
  {
    std::ifstream maps("/proc/self/maps");
    std::string line;
    bool cudart = false;
    while (std::getline(maps, line))
      cudart = cudart || line.find("libcudart") != std::string::npos;
    std::printf("  libcudart mapped in this process: %s\n", cudart ? "yes (note)" : "no");
  }

  std::vector<std::array<std::int64_t, 3>> shapes;  // M, N, K
  for (const std::int64_t m : {1, 3, 17, 64})
    for (const std::int64_t n : {1, 3, 17, 64})
      for (const std::int64_t k : {1, 3, 17, 64})
        shapes.push_back({m, n, k});
  if (options.big_gemms) shapes.push_back({128, 784, 512});
  std::printf(
      "  table: %zu shapes (M,N,K each of 1,3,17,64%s) x 4 transposes x 4 epilogues, C "
      "rotating over {beta=0 with D=NaN, separate C, C==D in place}\n",
      shapes.size(), options.big_gemms ? "; and 128x784x512" : "");

  cu::Stream stream(context);
  cu::DeviceBuffer workspace(context, cu::kDefaultGemmWorkspace);
  Random random(2);
  int rotation = 0;
  for (const GemmKind& kind : kGemmKinds) {
    KindStats stats;
    for (const auto& [m, n, k] : shapes)
      for (const bool ta : {false, true})
        for (const bool tb : {false, true})
          for (const auto epilogue : {cu::GemmEpilogue::none, cu::GemmEpilogue::bias,
                                      cu::GemmEpilogue::relu, cu::GemmEpilogue::bias_relu}) {
            const cu::GemmDesc desc{.type = kind.type,
                                    .m = m,
                                    .n = n,
                                    .k = k,
                                    .transpose_a = ta,
                                    .transpose_b = tb,
                                    .epilogue = epilogue,
                                    .tf32 = kind.tf32};
            const CMode c_mode = static_cast<CMode>(rotation++ % 3);
            try {
              if (kind.type == cu::GemmType::f32)
                run_gemm_case<float>(handle, stream, workspace, kind, desc, c_mode, random, stats,
                                     checks);
              else
                run_gemm_case<double>(handle, stream, workspace, kind, desc, c_mode, random, stats,
                                      checks);
            } catch (const std::exception& e) {
              ++stats.failures;
              checks.fail(cu::describe(desc) + ": " + e.what(), stats.failures > kMaxPrinted);
            }
          }
    std::string workspaces, plan_workspaces;
    for (const std::size_t w : stats.heuristic_workspaces)
      workspaces += strf(" %zu", w);
    for (const std::size_t w : stats.plan_workspaces)
      plan_workspaces += strf(" %zu", w);
    if (stats.failures > kMaxPrinted)
      std::printf("  FAIL ... and %d more (not printed)\n", stats.failures - kMaxPrinted);
    std::printf("  %-19s %d cases, %d failed; max normalised error %.3g (tolerance %.0e)%s%s\n",
                kind.name, stats.cases, stats.failures, stats.max_error, kind.tolerance,
                stats.worst.empty() ? "" : " at ", stats.worst.c_str());
    std::printf(
        "  %-19s heuristic: %d..%d algorithms (of 8 asked); workspace bytes asked:%s; "
        "chosen:%s\n",
        "", stats.min_algos, stats.max_algos, workspaces.c_str(), plan_workspaces.c_str());
  }
}

// Part 4: GEMM timings. Each sample queues `reps` GEMMs on a stream and waits with
// cuStreamSynchronize, timed by steady_clock (no CUDA events in the driver table yet); reps is
// chosen so a sample lasts >= 5 ms, which makes the host's share negligible.
void time_gemms(const cu::ContextPtr& context, const Options& options, Checks& checks,
                kiln::gpu_check::Baselines& baselines) {
  if (!cu::cublaslt_status().available) return;  // reported by part 3
  const cu::CublasLtHandlePtr handle = cu::CublasLtHandle::create(context);
  cu::Stream stream(context);
  cu::DeviceBuffer workspace(context, cu::kDefaultGemmWorkspace);
  std::vector<std::array<std::int64_t, 3>> shapes;
  if (options.mock)
    shapes = {{64, 64, 64}};
  else
    shapes = {{1024, 1024, 1024}, {4096, 4096, 4096}, {8192, 8192, 8192}, {128, 784, 512}};
  Random random(3);
  for (const auto& [m, n, k] : shapes) {
    const std::size_t bytes = sizeof(float) * (m * k + k * n + m * n);
    const cu::MemoryInfo memory = context->memory_info();
    if (bytes + 512 * kMiB > memory.free) {
      std::printf("  %ldx%ldx%ld: skipped, needs %s, %s free\n", m, n, k,
                  cu::format_bytes(bytes).c_str(), cu::format_bytes(memory.free).c_str());
      continue;
    }
    std::vector<float> a(m * k), b(k * n), d(m * n);
    for (auto& v : a)
      v = static_cast<float>(random.uniform());
    for (auto& v : b)
      v = static_cast<float>(random.uniform());
    cu::DeviceBuffer da(context, a.size() * 4), db(context, b.size() * 4),
        dd(context, d.size() * 4);
    da.copy_from_host(a.data(), a.size() * 4);
    db.copy_from_host(b.data(), b.size() * 4);
    for (const bool tf32 : {false, true}) {
      const cu::GemmDesc desc{.type = cu::GemmType::f32, .m = m, .n = n, .k = k, .tf32 = tf32};
      try {
        cu::GemmPlan plan(handle, desc);
        const cu::GemmOperands ops{.a = da.get(), .b = db.get(), .d = dd.get()};
        const auto run = [&](int reps) {
          const auto start = Clock::now();
          for (int i = 0; i < reps; ++i)
            plan.run(ops, &stream, workspace.get(), workspace.size());
          stream.synchronize();
          return seconds_since(start);
        };
        run(3);  // warm up
        const double one = run(1);
        const int reps = options.mock ? 1 : std::clamp(static_cast<int>(5e-3 / one) + 1, 1, 2000);
        std::vector<double> times;
        for (int i = 0; i < (options.mock ? 1 : 15); ++i)
          times.push_back(run(reps) / reps);
        const double t = median(times), flops = 2.0 * m * n * k;
        if (!tf32) baselines.gemm_flops_per_s[{m, n, k}] = flops / t;
        dd.copy_to_host(d.data(), d.size() * 4);
        // Spot check 64 entries against the CPU.
        double max_error = 0;
        for (int s = 0; s < 64; ++s) {
          const std::size_t i = random.next() % m, j = random.next() % n;
          double sum = 0, scale = 0;
          for (std::int64_t p = 0; p < k; ++p)
            sum += double(a[i * k + p]) * b[p * n + j],
                scale += std::fabs(double(a[i * k + p]) * b[p * n + j]);
          max_error = std::max(max_error, std::fabs(d[i * n + j] - sum) / scale);
        }
        const double tolerance = tf32 ? 5e-3 : 1e-5;
        std::printf(
            "  f32 %s %5ldx%5ldx%5ld: %9.4f ms  %7.2f TFLOP/s  (min %.4f, max %.4f ms; "
            "%zu samples x %d) spot error %.2g%s\n",
            tf32 ? "TF32" : "FP32", m, n, k, t * 1e3, flops / t / 1e12,
            *std::min_element(times.begin(), times.end()) * 1e3,
            *std::max_element(times.begin(), times.end()) * 1e3, times.size(), reps, max_error,
            options.mock ? " (mock: not a measurement)" : "");
        checks.expect(max_error <= tolerance,
                      cu::describe(desc) + strf(": spot error %.3g > %.0e", max_error, tolerance));
      } catch (const std::exception& e) {
        checks.fail(cu::describe(desc) + ": " + e.what());
      }
    }
  }
  std::printf(
      "  (timed: steady_clock around reps GEMMs + cuStreamSynchronize; median of samples)\n");
}

// The final table: phase 1's baselines, then phase 2's libraries.
std::string final_table(const kiln::gpu_check::Baselines& baselines, const std::string& phase2,
                        bool mock) {
  std::string table = mock ? "phase 1 (the mock driver: not measurements):\n"
                           : "phase 1 (medians after warm-up):\n";
  table += baselines.d2d_bytes_per_s > 0
               ? strf("  D2D copy: %.1f GB/s\n", baselines.d2d_bytes_per_s / 1e9)
               : std::string("  D2D copy: not measured\n");
  for (const auto& [shape, flops] : baselines.gemm_flops_per_s)
    table += strf("  cuBLASLt alone, f32 FP32 compute, %ldx%ldx%ld: %.2f TFLOP/s\n", shape[0],
                  shape[1], shape[2], flops / 1e12);
  table += phase2.empty()
               ? std::string("phase 2: not run\n")
               : std::string(mock ? "phase 2 (the mock driver: not measurements):\n"
                                  : "phase 2 (run_device: inputs and outputs on the GPU; run: "
                                    "host pointers, copies included):\n") +
                     phase2;
  return table;
}

// Everything after the driver is known to be usable; `table` gets the final table.
void run_checks(const Options& options, Checks& checks, std::string& table) {
  cu::ContextPtr context;
  kiln::gpu_check::Baselines baselines;
  part("devices", [&] {
    context = cu::Context::retain(0);
    report_devices(context, checks);
  });
  const auto guarded = [&](const char* title, const std::function<void()>& body) {
    part(title, [&] {
      try {
        body();
      } catch (const std::exception& e) {
        checks.fail(std::string(title) + ": " + e.what());
      }
    });
  };
  guarded("copies", [&] { check_copies(context, options, checks, baselines); });
  guarded("cuBLASLt GEMMs vs CPU", [&] { check_gemms(context, options, checks); });
  if (options.timings)
    guarded("GEMM timings", [&] { time_gemms(context, options, checks, baselines); });
  std::string phase2;
  if (options.bundle.empty()) {
    std::printf(
        "\n== phase 2: AOT libraries\n  skipped: no bundle (--phase2 DIR, or a "
        "manifest.txt next to gpu_check)\n");
  } else {
    guarded("phase 2: AOT libraries", [&] {
      kiln::gpu_check::Phase2Options phase2_options;
      phase2_options.dir = options.bundle;
      phase2_options.timings = options.timings;
      if (options.mock) {
        // Most libraries' kernels would run as their host shims, which need LLVM, and gpu_check
        // links none; tests/gpu_bundle_test.cpp runs those on the mock. A small GEMM library's
        // plan launches no kernel, so its module needs none: it runs here.
        std::printf(
            "  on the mock driver: only the small GEMM libraries run (their plans launch no "
            "kernels); the others are loaded and their files checked\n");
        phase2_options.samples = 1;
        phase2_options.run_filter = [](const kiln::gpu_check::LibraryRecord& r) {
          return r.kind == "gemm" && 2.0 * r.m * r.n * r.k <= 1e9;
        };
        using Use = const void* (*)(const void*, const void*);
        const auto hook = [](void* handle, const std::string& name) {
          auto use =
              reinterpret_cast<Use>(dlsym(handle, (name + "_kiln_testing_use_cuda").c_str()));
          if (use == nullptr)
            throw std::runtime_error("no symbol " + name + "_kiln_testing_use_cuda");
          return use;
        };
        phase2_options.on_load = [&options, hook](void* handle, const std::string& name) {
          const void* fatbin =
              hook(handle, name)(&options.mock_driver->api(), &options.mock_cublaslt->api());
          options.mock_driver->register_image(fatbin, {});
        };
        phase2_options.on_unload = [hook](void* handle, const std::string& name) {
          hook(handle, name)(nullptr, nullptr);
        };
      }
      const kiln::gpu_check::Phase2Result result =
          kiln::gpu_check::run_phase2(context, phase2_options, baselines);
      for (int i = 0; i < result.failures; ++i)
        checks.fail("", /*quiet=*/true);  // each printed by phase 2
      phase2 = result.table;
    });
  }
  table = final_table(baselines, phase2, options.mock);
}

int run(const Options& options) {
  const auto start = Clock::now();
  std::printf("gpu_check: Kiln's CUDA runtime on %s\n",
              options.mock ? "the mock driver and mock cuBLASLt (--mock)" : "this machine's GPU");
  cu::DriverStatus status;
  part("driver", [&] {
    status = cu::driver_status();
    report_driver(status);
  });
  if (!status.available()) {
    std::printf(
        "\ngpu_check: SKIP: %s: %s (exit %d)\n",
        status.reason == cu::Reason::no_driver ? "no driver" : cu::reason_name(status.reason),
        status.message.c_str(), kExitNoGpu);
    return kExitNoGpu;
  }
  Checks checks;
  std::string table;
  try {
    run_checks(options, checks, table);
  } catch (const std::exception& e) {
    checks.fail(e.what());
  }
  if (!table.empty()) {
    std::printf("\n== table\n%s", table.c_str());
    if (!options.table_file.empty()) {
      std::ofstream out(options.table_file);
      out << table;
      if (checks.expect(static_cast<bool>(out), "cannot write the table to " + options.table_file))
        std::printf("  (written to %s)\n", options.table_file.c_str());
    }
  }
  std::printf("\ngpu_check: %s (%d failed checks) in %.1f s\n",
              checks.failures() == 0 ? "PASS" : "FAIL", checks.failures(), seconds_since(start));
  return checks.failures() == 0 ? kExitPass : kExitFailed;
}

constexpr const char* kUsage =
    "usage: gpu_check [--mock] [--no-timings] [--no-big] [--phase2 DIR | --no-phase2]\n"
    "                 [--table FILE]\n"
    "  Checks Kiln's CUDA runtime on GPU 0: driver, devices, copies, cuBLASLt GEMMs against a\n"
    "  CPU reference, GEMM timings; phase 2 runs a bundle of AOT GPU libraries against the CPU's\n"
    "  values and times them. Exit 0 pass, 1 a check failed, 2 usage, 77 no usable driver.\n"
    "  --mock        run on the mock driver and mock cuBLASLt (small sizes, no real timings)\n"
    "  --no-timings  skip the GEMM timings\n"
    "  --no-big      leave the 128x784x512 shape out of the GEMM table\n"
    "  --phase2 DIR  the bundle (scripts/gpu_check.sh); default: this program's folder when it\n"
    "                holds a manifest.txt\n"
    "  --no-phase2   no phase 2\n"
    "  --table FILE  also write the final table of timings to FILE\n"
    "  KILN_CUDA_DRIVER and KILN_CUBLASLT name the libraries to load.\n";

}  // namespace

int main(int argc, char** argv) {
  Options options;
  bool phase2_given = false, no_phase2 = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--mock") {
      options.mock = true;
    } else if (arg == "--no-timings") {
      options.timings = false;
    } else if (arg == "--no-big") {
      options.big_gemms = false;
    } else if (arg == "--phase2" && i + 1 < argc) {
      options.bundle = argv[++i];
      phase2_given = true;
    } else if (arg == "--no-phase2") {
      no_phase2 = true;
    } else if (arg == "--table" && i + 1 < argc) {
      options.table_file = argv[++i];
    } else if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return kExitPass;
    } else {
      std::fprintf(stderr, "gpu_check: unknown argument '%s'\n%s", arg.c_str(), kUsage);
      return kExitUsage;
    }
  }
  if (phase2_given && no_phase2) {
    std::fprintf(stderr, "gpu_check: --phase2 and --no-phase2 contradict each other\n%s", kUsage);
    return kExitUsage;
  }
  if (no_phase2) {
    options.bundle.clear();
  } else if (!phase2_given) {
    // A bundle staged by scripts/gpu_check.sh holds gpu_check next to its manifest.
    std::error_code error;
    const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
    if (!error && std::filesystem::exists(self.parent_path() / "manifest.txt", error))
      options.bundle = self.parent_path().string();
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  try {
    if (!options.mock) return run(options);
    options.big_gemms = false;  // the mock's reference GEMM is slow; the table's shapes suffice
    cu::MockDriver driver({.total_memory = std::size_t{2} << 30});
    cu::MockCublasLt cublaslt(driver.api());
    cu::ScopedDriverOverride use_driver(driver.api(), "mock driver");
    cu::ScopedCublasLtOverride use_cublaslt(cublaslt.api(), "mock cuBLASLt");
    options.mock_driver = &driver;
    options.mock_cublaslt = &cublaslt;
    return run(options);
  } catch (const std::exception& e) {
    std::printf("gpu_check: FAIL: %s\n", e.what());
    return kExitFailed;
  }
}
