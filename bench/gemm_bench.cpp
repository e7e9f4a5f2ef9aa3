// SGEMM throughput of Kiln's generated GEMM (codegen/gemm.h) against OpenBLAS's cblas_sgemm on
// the same shapes in the same run (when libopenblas-dev was found at configure time). Shapes
// are M×K×N: C[M, N] = A[M, K] · B[K, N], row-major; 2·M·N·K flops per call ("FLOPS" counter).
//
// Threads: Kiln's pool reads KILN_NUM_THREADS once, when it starts, so run the binary once per
// thread count; OpenBLAS is set to the same count with openblas_set_num_threads.
//   KILN_NUM_THREADS=1 build/bench/gemm_bench --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true
//   KILN_NUM_THREADS=2 build/bench/gemm_bench (same flags)
// OPENBLAS_CORETYPE (this machine's environment sets it to Haswell, which halves OpenBLAS on
// AVX-512) is read when OpenBLAS loads, before main; if it is set, main removes it and re-executes
// the binary, so OpenBLAS picks its kernels for the real CPU. KILN_GEMM_KEEP_CORETYPE=1 keeps it.
#include <benchmark/benchmark.h>

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "kiln/codegen/compiler.h"
#include "kiln/ir/function.h"
#include "kiln/passes/pipeline.h"
#include "kiln/runtime/kiln_rt.h"

#ifdef KILN_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace k = kiln;

namespace {

struct Buffer {
  std::unique_ptr<float, decltype(&kiln_rt_free)> data;
  explicit Buffer(int64_t n)
      : data(static_cast<float*>(kiln_rt_alloc(static_cast<size_t>(n) * sizeof(float))),
             kiln_rt_free) {
    std::mt19937 gen(static_cast<uint32_t>(n));
    std::uniform_real_distribution<float> d(-1.f, 1.f);
    for (int64_t i = 0; i < n; ++i)
      data.get()[i] = d(gen);
  }
  float* get() const { return data.get(); }
};

void set_counters(benchmark::State& state, int64_t m, int64_t k, int64_t n) {
  state.counters["FLOPS"] = benchmark::Counter(2.0 * static_cast<double>(m * n * k),
                                               benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = kiln_rt_num_threads();
}

void BM_KilnSgemm(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  // Optional fourth argument: 1 = A transposed (A is [K, M]), 2 = B transposed (B is [N, K]).
  const int64_t transposed = state.range(3);
  k::ir::Function f("sgemm");
  k::ir::Value* a =
      f.add_param({k::ir::DType::f32, transposed == 1 ? k::ir::Shape{k, m} : k::ir::Shape{m, k}});
  k::ir::Value* b =
      f.add_param({k::ir::DType::f32, transposed == 2 ? k::ir::Shape{n, k} : k::ir::Shape{k, n}});
  k::ir::Attrs attrs;
  attrs.set_bool("transpose_a", transposed == 1).set_bool("transpose_b", transposed == 2);
  f.set_outputs({f.append(k::ir::Op::matmul, {a, b}, std::move(attrs))->output()});
  k::passes::PipelineResult planned = k::passes::run_pipeline(std::move(f));
  auto module = k::codegen::compile_jit(planned.function, planned.kernels, planned.memory);
  Buffer x(m * k), y(k * n), out(m * n), workspace(module->workspace_bytes() / 4 + 16);
  void* inputs[] = {x.get(), y.get()};
  void* outputs[] = {out.get()};
  kiln_frame frame{inputs, outputs, workspace.get(), nullptr};
  for (auto _ : state) {
    module->entry()(&frame);
    benchmark::ClobberMemory();
  }
  set_counters(state, m, k, n);
}

// relu(x·w + bias): the GEMM with its fused epilogue, as a dense layer compiles.
void BM_KilnDenseBiasRelu(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  k::ir::Function f("dense");
  k::ir::Value* x = f.add_param({k::ir::DType::f32, k::ir::Shape{m, k}});
  k::ir::Value* w = f.add_param({k::ir::DType::f32, k::ir::Shape{k, n}});
  k::ir::Value* bias = f.add_param({k::ir::DType::f32, k::ir::Shape{n}});
  k::ir::Value* mm = f.append(k::ir::Op::matmul, {x, w})->output();
  k::ir::Value* sum = f.append(k::ir::Op::add, {mm, bias})->output();
  f.set_outputs({f.append(k::ir::Op::relu, {sum})->output()});
  k::passes::PipelineResult planned = k::passes::run_pipeline(std::move(f));
  auto module = k::codegen::compile_jit(planned.function, planned.kernels, planned.memory);
  Buffer a(m * k), b(k * n), c(n), out(m * n), workspace(module->workspace_bytes() / 4 + 16);
  void* inputs[] = {a.get(), b.get(), c.get()};
  void* outputs[] = {out.get()};
  kiln_frame frame{inputs, outputs, workspace.get(), nullptr};
  for (auto _ : state) {
    module->entry()(&frame);
    benchmark::ClobberMemory();
  }
  set_counters(state, m, k, n);
}

#ifdef KILN_HAVE_OPENBLAS
void BM_OpenblasSgemm(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  openblas_set_num_threads(kiln_rt_num_threads());
  Buffer x(m * k), y(k * n), out(m * n);
  const auto mi = static_cast<blasint>(m), ki = static_cast<blasint>(k),
             ni = static_cast<blasint>(n);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, mi, ni, ki, 1.f, x.get(), ki, y.get(),
                ni, 0.f, out.get(), ni);
    benchmark::ClobberMemory();
  }
  set_counters(state, m, k, n);
  state.SetLabel(openblas_get_corename());
}
#endif

void shapes(benchmark::internal::Benchmark* bench) {
  bench->ArgNames({"M", "K", "N", "T"});
  bench->Args({128, 784, 512, 0})->Args({128, 512, 10, 0})->Args({512, 512, 512, 0});
  bench->Args({1024, 1024, 1024, 0})->Args({2048, 2048, 2048, 0});
  bench->Unit(benchmark::kMicrosecond)->UseRealTime();
}

BENCHMARK(BM_KilnSgemm)->Apply(shapes);
// The convnet's dense layer 3136 → 1024 at batch 128: forward, input gradient (B transposed),
// weight gradient (A transposed).
BENCHMARK(BM_KilnSgemm)
    ->ArgNames({"M", "K", "N", "T"})
    ->Args({128, 3136, 1024, 0})
    ->Args({128, 1024, 3136, 2})
    ->Args({3136, 128, 1024, 1})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_KilnDenseBiasRelu)
    ->ArgNames({"M", "K", "N"})
    ->Args({128, 784, 512})
    ->Args({128, 512, 10})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
#ifdef KILN_HAVE_OPENBLAS
BENCHMARK(BM_OpenblasSgemm)->Apply(shapes);
#endif

#ifdef KILN_HAVE_OPENBLAS
// The command line, from /proc/self/cmdline, for re-executing.
std::vector<std::string> own_arguments() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  for (size_t begin = 0; begin < all.size();) {
    size_t end = all.find('\0', begin);
    if (end == std::string::npos) end = all.size();
    args.push_back(all.substr(begin, end - begin));
    begin = end + 1;
  }
  return args;
}
#endif

// Re-executes without OPENBLAS_CORETYPE (see the top of the file); returns if it cannot.
void drop_openblas_coretype() {
#ifdef KILN_HAVE_OPENBLAS
  const char* keep = std::getenv("KILN_GEMM_KEEP_CORETYPE");
  if (std::getenv("OPENBLAS_CORETYPE") == nullptr || (keep != nullptr && *keep == '1')) return;
  unsetenv("OPENBLAS_CORETYPE");
  std::vector<std::string> args = own_arguments();
  std::vector<char*> argv;
  for (std::string& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  execv("/proc/self/exe", argv.data());
#endif
}

}  // namespace

int main(int argc, char** argv) {
  drop_openblas_coretype();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
