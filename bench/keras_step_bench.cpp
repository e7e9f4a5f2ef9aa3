// One Sequential.fit training step of the two main-job models on a batch of 128 random
// Fashion-MNIST-shaped images: the MLP 784-512-10 (RMSprop) and the TensorFlow tutorial convnet
// (Conv2D 32 5×5, MaxPool, Conv2D 64 5×5, MaxPool, Dense 1024, Dropout 0.4, Dense 10; Adam).
// Each iteration is a one-epoch fit over `kSteps` batches after a warm-up fit that traces and
// compiles, so the time per step is the time reported divided by kSteps.
//
//   KILN_CACHE=off build/bench/keras_step_bench --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include "../examples/main_job_models.h"
#include "kiln/kiln.h"

namespace k = kiln;

namespace {

constexpr int64_t kBatch = 128, kSteps = 4;

template <typename Opt>
void run_steps(benchmark::State& state, k::Sequential model, const Opt& optimizer) {
  model.compile(optimizer, k::losses::SparseCategoricalCrossentropy(), {"accuracy"});
  k::Tensor x = k::random_uniform({kBatch * kSteps, 28, 28}, 0.0, 1.0, 1);
  k::Tensor y = k::cast(k::random_uniform({kBatch * kSteps}, 0.0, 9.99, 2), k::i32);
  k::FitOptions options{.epochs = 1, .batch_size = kBatch, .shuffle = false, .verbose = 0};
  model.fit(x, y, options);  // traces and compiles
  for (auto _ : state)
    model.fit(x, y, options);
  state.counters["steps_per_s"] =
      benchmark::Counter(double(kSteps), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_MlpFitStep(benchmark::State& state) {
  run_steps(state, main_job::mlp(), k::optimizers::RMSprop(1e-3));
}
BENCHMARK(BM_MlpFitStep)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_ConvnetFitStep(benchmark::State& state) {
  run_steps(state, main_job::convnet(), k::optimizers::Adam(1e-3));
}
BENCHMARK(BM_ConvnetFitStep)->Unit(benchmark::kMillisecond)->UseRealTime();

// fit's first call on a fresh model: tracing and compiling the training step (KILN_CACHE=off for
// a cold compile; GEMM helpers prebuilt with Kiln or compiled by an earlier iteration are linked,
// not compiled), then the same kSteps steps as above, whose time it includes.
void BM_ConvnetFirstFit(benchmark::State& state) {
  k::Tensor x = k::random_uniform({kBatch * kSteps, 28, 28}, 0.0, 1.0, 1);
  k::Tensor y = k::cast(k::random_uniform({kBatch * kSteps}, 0.0, 9.99, 2), k::i32);
  k::FitOptions options{.epochs = 1, .batch_size = kBatch, .shuffle = false, .verbose = 0};
  for (auto _ : state) {
    k::Sequential model = main_job::convnet();
    model.compile(k::optimizers::Adam(1e-3), k::losses::SparseCategoricalCrossentropy(),
                  {"accuracy"});
    model.fit(x, y, options);
  }
}
BENCHMARK(BM_ConvnetFirstFit)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
