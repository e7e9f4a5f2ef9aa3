// Call overhead: f(x) = 10x² − 5x + 4 on 4 floats, eagerly and through kiln::function. The
// arithmetic is a few nanoseconds; everything measured here is the cost of getting there. The
// lower layers are timed too, so the frontend's share is visible: CompiledFunction::run (the
// compiled code with its argument checks and output allocation) and the bare entry point.
//
//   build/bench/call_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <vector>

#include "entry_bench_util.h"
#include "kiln/codegen/compiler.h"
#include "kiln/frontend/core/compile.h"
#include "kiln/frontend/core/trace.h"
#include "kiln/kiln.h"
#include "kiln/passes/pipeline.h"

namespace k = kiln;

namespace {

k::Tensor poly(const k::Tensor& x) {
  return 10.f * x * x - 5.f * x + 4.f;
}

k::Tensor input() {
  return k::constant({1.f, 2.f, 3.f, 4.f});
}

void BM_PolyEager(benchmark::State& state) {
  k::Tensor x = input();
  for (auto _ : state)
    benchmark::DoNotOptimize(poly(x));
}
BENCHMARK(BM_PolyEager);

void BM_PolyTraced(benchmark::State& state) {
  auto f = k::function(poly, "poly");
  k::Tensor x = input();
  f(x);  // trace and compile outside the loop
  for (auto _ : state)
    benchmark::DoNotOptimize(f(x));
}
BENCHMARK(BM_PolyTraced);

// The compiled function below the frontend: argument checks, output allocation, the kernels.
void BM_PolyCompiledRun(benchmark::State& state) {
  auto f = k::function(poly, "poly");
  k::Tensor x = input();
  std::unique_ptr<k::CompiledFunction> compiled = k::compile(f.graph(x).clone());
  std::vector<k::ir::HostTensor> args{x.host()};
  for (auto _ : state)
    benchmark::DoNotOptimize(compiled->run(args));
}
BENCHMARK(BM_PolyCompiledRun);

// The floor: the generated entry on preallocated buffers.
void BM_PolyEntry(benchmark::State& state) {
  auto f = k::function(poly, "poly");
  k::Tensor x = input();
  k::bench::EntryRunner entry(f.graph(x), x);
  for (auto _ : state) {
    entry.run();
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_PolyEntry);

}  // namespace
