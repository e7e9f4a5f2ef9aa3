// The machine's ceilings, which the other benchmarks are reported against: f32 FMA peak (a
// register-only loop of independent FMAs, the most a GEMM could reach) and memory bandwidth
// (memcpy and the STREAM triad on arrays far larger than the caches), on 1 and 2 threads.
// Built with -march=native (bench/CMakeLists.txt) so the loop uses the widest FMA the host has.
//
//   build/bench/machine_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <thread>
#include <vector>

namespace {

#if defined(__AVX512F__)
using Vec = __m512;
inline Vec fma(Vec a, Vec b, Vec c) {
  return _mm512_fmadd_ps(a, b, c);
}
inline Vec splat(float x) {
  return _mm512_set1_ps(x);
}
inline float first(Vec v) {
  return _mm512_cvtss_f32(v);
}
#elif defined(__FMA__)
using Vec = __m256;
inline Vec fma(Vec a, Vec b, Vec c) {
  return _mm256_fmadd_ps(a, b, c);
}
inline Vec splat(float x) {
  return _mm256_set1_ps(x);
}
inline float first(Vec v) {
  return _mm256_cvtss_f32(v);
}
#else
#error "machine_bench needs FMA (build with -march=native on an x86-64 with FMA)"
#endif

constexpr int kLanes = sizeof(Vec) / sizeof(float);
// Independent accumulators: enough to cover FMA latency × FMA ports (4 cycles × 2 on Zen 4/5).
constexpr int kChains = 12;
constexpr int64_t kInner = 1 << 20;

// kInner × kChains FMAs on registers only; returns a value so none is dropped. Not inlined, and
// fed opaque arguments, so the compiler can neither fold it nor hoist it out of the timing loop.
[[gnu::noinline]] float fma_loop(float a, float b) {
  Vec acc[kChains];
  for (int c = 0; c < kChains; ++c)
    acc[c] = splat(static_cast<float>(c));
  Vec va = splat(a), vb = splat(b);
  for (int64_t i = 0; i < kInner; ++i) {
    for (int c = 0; c < kChains; ++c)
      acc[c] = fma(acc[c], va, vb);
  }
  float sum = 0;
  for (int c = 0; c < kChains; ++c)
    sum += first(acc[c]);
  return sum;
}

// With Threads(n), Google Benchmark sums counters over the threads and divides the time by n, so
// the rate is averaged over threads (kAvgThreads) to come out as the whole machine's.
void BM_FmaPeak(benchmark::State& state) {
  float a = 0.999f, b = 0.001f;
  for (auto _ : state) {
    benchmark::DoNotOptimize(a);
    benchmark::DoNotOptimize(b);
    benchmark::DoNotOptimize(fma_loop(a, b));
  }
  double flops = 2.0 * kLanes * kChains * kInner;
  state.counters["FLOPS"] = benchmark::Counter(
      flops, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kAvgThreads);
}
BENCHMARK(BM_FmaPeak)->Threads(1)->Threads(2)->UseRealTime();

struct Arrays {
  static constexpr size_t kFloats = size_t{1} << 26;  // 256 MiB per array
  static float* allocate() {
    void* p = std::aligned_alloc(64, kFloats * sizeof(float));
    if (!p) throw std::bad_alloc();
    return static_cast<float*>(p);
  }
  std::unique_ptr<float, void (*)(void*)> a{allocate(), std::free};
  std::unique_ptr<float, void (*)(void*)> b{allocate(), std::free};
  std::unique_ptr<float, void (*)(void*)> c{allocate(), std::free};
  Arrays() {
    for (size_t i = 0; i < kFloats; ++i) {
      a.get()[i] = 0.f;
      b.get()[i] = 1.f;
      c.get()[i] = 2.f;
    }
  }
};

Arrays& arrays() {
  static Arrays arrays;
  return arrays;
}

// Runs body(begin, end) over [0, n) split across `threads` std::threads.
template <class Body>
void split(size_t n, int threads, Body body) {
  if (threads == 1) return body(size_t{0}, n);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back(body, n * t / threads, n * (t + 1) / threads);
  for (std::thread& th : pool)
    th.join();
}

// Bytes counted: read + written (no write-allocate traffic), as STREAM counts them; GB/s are
// 10⁹ bytes per second.
void BM_Memcpy(benchmark::State& state) {
  Arrays& m = arrays();
  int threads = static_cast<int>(state.range(0));
  for (auto _ : state) {
    split(Arrays::kFloats, threads, [&](size_t begin, size_t end) {
      std::memcpy(m.a.get() + begin, m.b.get() + begin, (end - begin) * 4);
    });
    benchmark::ClobberMemory();
  }
  state.counters["bytes"] =
      benchmark::Counter(2.0 * Arrays::kFloats * 4, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Memcpy)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();

void BM_Triad(benchmark::State& state) {
  Arrays& m = arrays();
  int threads = static_cast<int>(state.range(0));
  for (auto _ : state) {
    split(Arrays::kFloats, threads, [&](size_t begin, size_t end) {
      float* a = m.a.get();
      const float* b = m.b.get();
      const float* c = m.c.get();
      for (size_t i = begin; i < end; ++i)
        a[i] = b[i] + 3.f * c[i];
    });
    benchmark::ClobberMemory();
  }
  state.counters["bytes"] =
      benchmark::Counter(3.0 * Arrays::kFloats * 4, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Triad)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();

}  // namespace
