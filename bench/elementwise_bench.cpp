// A fused chain of 5 elementwise ops, y = relu(x·a + b)·c − x, over 16M floats, against a
// plain memory copy of the same 16M floats, both in GB/s of memory traffic (bytes read plus
// bytes written: 2 × 64 MiB per call for either). Three views of the chain:
//   ChainFunction: through kiln::function (includes allocating the 64 MiB result every call);
//   ChainEntry:    the generated entry on preallocated buffers (the kernel alone).
// The thread pool is created once per process, so run once per thread count:
//   KILN_NUM_THREADS=1 build/bench/elementwise_bench --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true
//   KILN_NUM_THREADS=2 build/bench/elementwise_bench ...
// Copy uses the same pool (kiln_rt_parallel_for) so its thread count matches.
#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

#include "entry_bench_util.h"
#include "kiln/codegen/compiler.h"
#include "kiln/frontend/core/trace.h"
#include "kiln/kiln.h"
#include "kiln/passes/pipeline.h"
#include "kiln/runtime/kiln_rt.h"

namespace k = kiln;

namespace {

constexpr int64_t kElements = int64_t{16} << 20;
constexpr int64_t kBytesPerCall = 2 * kElements * static_cast<int64_t>(sizeof(float));

k::Tensor chain(const k::Tensor& x) {
  return k::relu(x * 1.5f + 0.25f) * 0.75f - x;
}

k::Tensor input() {
  k::ir::HostTensor host(k::f32, k::Shape{kElements});
  float* p = host.data<float>();
  for (int64_t i = 0; i < kElements; ++i)
    p[i] = static_cast<float>(i % 1000) * 0.01f - 5.f;
  return k::Tensor(std::move(host));
}

void report(benchmark::State& state) {
  state.SetBytesProcessed(state.iterations() * kBytesPerCall);
  state.counters["threads"] = kiln_rt_num_threads();
}

void BM_ChainFunction(benchmark::State& state) {
  auto f = k::function(chain, "chain");
  k::Tensor x = input();
  f(x);  // trace and compile outside the loop
  for (auto _ : state)
    benchmark::DoNotOptimize(f(x));
  report(state);
}
BENCHMARK(BM_ChainFunction)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_ChainEntry(benchmark::State& state) {
  auto f = k::function(chain, "chain");
  k::Tensor x = input();
  k::bench::EntryRunner entry(f.graph(x), x);
  entry.run();  // touch the output's pages once
  for (auto _ : state) {
    entry.run();
    benchmark::ClobberMemory();
  }
  report(state);
}
BENCHMARK(BM_ChainEntry)->Unit(benchmark::kMillisecond)->UseRealTime();

struct CopyJob {
  const float* from;
  float* to;
};

void copy_range(void* context, int64_t begin, int64_t end) {
  auto* job = static_cast<CopyJob*>(context);
  std::memcpy(job->to + begin, job->from + begin, static_cast<size_t>(end - begin) * sizeof(float));
}

void BM_Memcpy(benchmark::State& state) {
  std::vector<float> from(static_cast<size_t>(kElements), 1.f), to(static_cast<size_t>(kElements));
  CopyJob job{from.data(), to.data()};
  for (auto _ : state) {
    kiln_rt_parallel_for(kElements, int64_t{1} << 14, copy_range, &job);
    benchmark::ClobberMemory();
  }
  report(state);
}
BENCHMARK(BM_Memcpy)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
