// Compile time of a training-sized graph: one SGD step of a 784-512-10 MLP on a batch of 128
// (forward, softmax cross-entropy, a hand-written backward pass, four variable updates). Timed
// as a whole (kiln::function's first call: trace + pipeline + LLVM + one run) and by stage.
// The compiled step itself is timed too, for scale, and the same step with the backward pass
// made by GradientTape (compiled and eager), to show what autodiff costs over hand-written
// gradients.
//
//   build/bench/compile_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <memory>
#include <vector>

#include "kiln/codegen/compiler.h"
#include "kiln/frontend/core/trace.h"
#include "kiln/kiln.h"
#include "kiln/passes/pipeline.h"

namespace k = kiln;

namespace {

constexpr int64_t kBatch = 128, kIn = 784, kHidden = 512, kClasses = 10;
constexpr float kLearningRate = 0.1f;

struct Mlp {
  k::Variable w1{k::random_normal({kIn, kHidden}, 0.0, 0.05, 1), "w1"};
  k::Variable b1{k::zeros({kHidden}), "b1"};
  k::Variable w2{k::random_normal({kHidden, kClasses}, 0.0, 0.05, 2), "w2"};
  k::Variable b2{k::zeros({kClasses}), "b2"};
};

// One SGD step; returns the mean cross-entropy. Autodiff comes later, so the gradients are
// written out: d(logits) = (softmax − y) / batch, and the chain rule through dense and relu.
k::Tensor train_step(Mlp& m, const k::Tensor& x, const k::Tensor& y) {
  k::Tensor h_pre = k::matmul(x, m.w1) + m.b1;
  k::Tensor h = k::relu(h_pre);
  k::Tensor logits = k::matmul(h, m.w2) + m.b2;
  k::Tensor logp = k::log_softmax(logits);
  k::Tensor loss = -k::reduce_mean(k::reduce_sum(y * logp, 1));

  k::Tensor d_logits = (k::exp(logp) - y) / static_cast<float>(kBatch);
  k::Tensor d_w2 = k::matmul(h, d_logits, /*transpose_a=*/true);
  k::Tensor d_b2 = k::reduce_sum(d_logits, 0);
  k::Tensor d_h = k::matmul(d_logits, m.w2, false, /*transpose_b=*/true);
  k::Tensor d_h_pre = k::select(k::greater(h_pre, 0.f), d_h, 0.f);
  k::Tensor d_w1 = k::matmul(x, d_h_pre, /*transpose_a=*/true);
  k::Tensor d_b1 = k::reduce_sum(d_h_pre, 0);

  m.w1.assign_sub(kLearningRate * d_w1);
  m.b1.assign_sub(kLearningRate * d_b1);
  m.w2.assign_sub(kLearningRate * d_w2);
  m.b2.assign_sub(kLearningRate * d_b2);
  return loss;
}

// The same step with the gradients from a GradientTape.
k::Tensor tape_step(Mlp& m, const k::Tensor& x, const k::Tensor& y) {
  k::GradientTape tape;
  k::Tensor logits = k::matmul(k::relu(k::matmul(x, m.w1) + m.b1), m.w2) + m.b2;
  k::Tensor loss = -k::reduce_mean(k::reduce_sum(y * k::log_softmax(logits), 1));
  std::vector<k::Variable> vars{m.w1, m.b1, m.w2, m.b2};
  std::vector<k::Tensor> grads = tape.gradient(loss, vars);
  for (size_t i = 0; i < vars.size(); ++i)
    vars[i].assign_sub(kLearningRate * grads[i]);
  return loss;
}

struct Batch {
  k::Tensor x = k::random_uniform({kBatch, kIn}, 0.0, 1.0, 3);
  k::Tensor y = k::one_hot(k::cast(k::random_uniform({kBatch}, 0.0, 10.0, 4), k::i32), kClasses);
};

auto make_step(Mlp& m) {
  return k::function([&m](const k::Tensor& x, const k::Tensor& y) { return train_step(m, x, y); },
                     "mlp_step");
}

// Everything a user waits for on the first call.
void BM_MlpFirstCall(benchmark::State& state) {
  Mlp m;
  Batch b;
  for (auto _ : state) {
    auto step = make_step(m);
    benchmark::DoNotOptimize(step(b.x, b.y));
  }
}
BENCHMARK(BM_MlpFirstCall)->Unit(benchmark::kMillisecond)->UseRealTime();

// Tracing alone: the body run on symbolic tensors into an ir::Function.
void BM_MlpTrace(benchmark::State& state) {
  Mlp m;
  Batch b;
  for (auto _ : state) {
    k::detail::Trace trace("mlp_step", {});
    k::detail::TraceScope scope(trace);
    k::Tensor x = trace.add_argument(b.x.type());
    k::Tensor y = trace.add_argument(b.y.type());
    k::Tensor loss = train_step(m, x, y);
    trace.finish(std::vector<k::Tensor>{loss});
    benchmark::DoNotOptimize(trace.function().nodes().size());
  }
}
BENCHMARK(BM_MlpTrace)->Unit(benchmark::kMillisecond)->UseRealTime();

// The pass pipeline (canonicalize, cse, dce, fusion, memory planning) on the traced graph.
void BM_MlpPipeline(benchmark::State& state) {
  Mlp m;
  Batch b;
  auto step = make_step(m);
  const k::ir::Function& graph = step.graph(b.x, b.y);
  for (auto _ : state) {
    k::ir::Function copy = graph.clone();
    k::passes::PipelineResult planned = k::passes::run_pipeline(std::move(copy));
    benchmark::DoNotOptimize(planned.memory.workspace_bytes);
  }
}
BENCHMARK(BM_MlpPipeline)->Unit(benchmark::kMillisecond)->UseRealTime();

// LLVM: module construction, optimization and machine code, on the planned graph.
void BM_MlpCodegen(benchmark::State& state) {
  Mlp m;
  Batch b;
  auto step = make_step(m);
  k::passes::PipelineResult planned = k::passes::run_pipeline(step.graph(b.x, b.y).clone());
  for (auto _ : state) {
    auto module = k::codegen::compile_jit(planned.function, planned.kernels, planned.memory);
    benchmark::DoNotOptimize(module->entry());
  }
}
BENCHMARK(BM_MlpCodegen)->Unit(benchmark::kMillisecond)->UseRealTime();

// For scale: one compiled training step (≈ 6·128·784·512 + 6·128·512·10 FLOPs in the matmuls).
void BM_MlpStep(benchmark::State& state) {
  Mlp m;
  Batch b;
  auto step = make_step(m);
  step(b.x, b.y);
  for (auto _ : state)
    benchmark::DoNotOptimize(step(b.x, b.y));
  double flops = 6.0 * kBatch * kHidden * (kIn + kClasses);
  state.counters["FLOPS"] =
      benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_MlpStep)->Unit(benchmark::kMillisecond)->UseRealTime();

// The tape step: first call (trace, autodiff, pipeline, LLVM, one run), then compiled, then eager.
void BM_MlpTapeFirstCall(benchmark::State& state) {
  Mlp m;
  Batch b;
  for (auto _ : state) {
    auto step = k::function(
        [&m](const k::Tensor& x, const k::Tensor& y) { return tape_step(m, x, y); }, "tape_step");
    benchmark::DoNotOptimize(step(b.x, b.y));
  }
}
BENCHMARK(BM_MlpTapeFirstCall)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_MlpTapeStep(benchmark::State& state) {
  Mlp m;
  Batch b;
  auto step = k::function(
      [&m](const k::Tensor& x, const k::Tensor& y) { return tape_step(m, x, y); }, "tape_step");
  step(b.x, b.y);
  for (auto _ : state)
    benchmark::DoNotOptimize(step(b.x, b.y));
  double flops = 6.0 * kBatch * kHidden * (kIn + kClasses);
  state.counters["FLOPS"] =
      benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_MlpTapeStep)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_MlpTapeEagerStep(benchmark::State& state) {
  Mlp m;
  Batch b;
  for (auto _ : state)
    benchmark::DoNotOptimize(tape_step(m, b.x, b.y));
  double flops = 6.0 * kBatch * kHidden * (kIn + kClasses);
  state.counters["FLOPS"] =
      benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_MlpTapeEagerStep)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
