// Throughput of Kiln's implicit-GEMM convolution (codegen/gemm.cpp: the micro-kernel reads each
// window tap straight from the padded NHWC input) on the convolutions of one training step of
// the tutorial convnet (batch 128; examples/main_job_models.h), as the pass pipeline leaves them:
// "valid" convolutions of inputs already padded. 2·outputs·KH·KW·C flops per call ("FLOPS").
//
//   build/bench/conv_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <random>

#include "kiln/codegen/compiler.h"
#include "kiln/ir/function.h"
#include "kiln/passes/pipeline.h"
#include "kiln/runtime/kiln_rt.h"

namespace k = kiln;

namespace {

struct Case {
  const char* name;
  k::ir::Shape input, second;  // the filter, or for a filter gradient dy
  bool filter_grad = false;
};

// The five convolutions of a convnet step: conv1 and conv2 forward, conv2's input gradient (dy
// padded, the flipped filter), and both filter gradients (conv2d_filter_grad of the padded input
// and dy, 5×5 windows).
const Case kCases[] = {
    {"conv1", {128, 32, 32, 1}, {5, 5, 1, 32}},
    {"conv2", {128, 18, 18, 32}, {5, 5, 32, 64}},
    {"conv2_input_grad", {128, 18, 18, 64}, {5, 5, 64, 32}},
    {"conv2_filter_grad", {128, 18, 18, 32}, {128, 14, 14, 64}, true},
    {"conv1_filter_grad", {128, 32, 32, 1}, {128, 28, 28, 32}, true},
};

void fill(float* p, int64_t n) {
  std::mt19937 gen(static_cast<uint32_t>(n));
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  for (int64_t i = 0; i < n; ++i)
    p[i] = d(gen);
}

void BM_KilnConv(benchmark::State& state) {
  const Case& c = kCases[state.range(0)];
  k::ir::Function f("conv");
  k::ir::Value* x = f.add_param({k::ir::DType::f32, c.input});
  k::ir::Value* w = f.add_param({k::ir::DType::f32, c.second});
  k::ir::Attrs attrs;
  attrs.set_string("padding", "valid");
  if (c.filter_grad) attrs.set_ints("ksize", {5, 5});
  k::ir::Value* y = f.append(c.filter_grad ? k::ir::Op::conv2d_filter_grad : k::ir::Op::conv2d,
                             {x, w}, std::move(attrs))
                        ->output();
  f.set_outputs({y});
  const k::ir::Shape out = y->type().shape;
  k::passes::PipelineResult planned = k::passes::run_pipeline(std::move(f));
  auto module = k::codegen::compile_jit(planned.function, planned.kernels, planned.memory);
  std::vector<float> xs(static_cast<size_t>(c.input.num_elements())),
      ws(static_cast<size_t>(c.second.num_elements())), ys(static_cast<size_t>(out.num_elements())),
      workspace(static_cast<size_t>(module->workspace_bytes() / 4 + 16));
  fill(xs.data(), c.input.num_elements());
  fill(ws.data(), c.second.num_elements());
  void* inputs[] = {xs.data(), ws.data()};
  void* outputs[] = {ys.data()};
  kiln_frame frame{inputs, outputs, workspace.data(), nullptr};
  for (auto _ : state) {
    module->entry()(&frame);
    benchmark::ClobberMemory();
  }
  // Multiply-adds: result elements times the depth each sums over, the product of the second
  // operand's first three dims either way (KH·KW·C of a filter, N·OH·OW of dy).
  const int64_t depth = c.second[0] * c.second[1] * c.second[2];
  const double flops = 2.0 * static_cast<double>(out.num_elements() * depth);
  state.counters["FLOPS"] =
      benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(c.name);
}

BENCHMARK(BM_KilnConv)->DenseRange(0, 4)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
