// `scan` on the GPU path (issue 15): a scan kernel is a loop of the launch plan (the body's
// launches repeated once per step, its rows found by a per-step byte stride, the carries copied
// between two workspace blocks). The host shim and the mock driver equal the interpreter, the
// body's PTX assembles, the launch plan's blob keeps the loops, and a Keras LSTM predicts and
// trains on the mock GPU as on the CPU.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "codegen_test_util.h"
#include "grad_check_util.h"
#include "kiln/ir/parser.h"
#include "kiln/passes/autodiff.h"
#include "kiln/passes/fusion.h"
#include "kiln/passes/memory_plan.h"
#include "kiln/runtime/cuda/launch_plan_blob.h"
#include "mock_gpu_test_util.h"
#include "ptxas_test_util.h"
#include "random_program.h"
#include "scan_test_programs.h"

namespace {

namespace k = kiln;
namespace ir = kiln::ir;
namespace passes = kiln::passes;
namespace codegen = kiln::codegen;
namespace cu = kiln::runtime::cuda;
using Catch::Contains;
using kiln::testing::kScanRnn;
using kiln::testing::MockGpu;
using kiln::testing::scan_cumsum;
using kiln::testing::scan_lstm;

codegen::KernelJit& jit() {
  static codegen::KernelJit instance;
  return instance;
}

// Two carries (a running sum and a running product) over two xs, a constant operand and two ys.
const char* kMultiCarry =
    R"(func @multi(%s0: f32[3], %p0: f32[3], %xs: f32[4,3], %ws: f32[4,3], %k: f32[3]) -> (f32[3], f32[3], f32[4,3], f32[4,3]) {
  %0, %1, %2, %3 = scan(%s0, %p0, %xs, %ws, %k) {carries = 2, length = 4, reverse = true, save_carries = false, xs = 2} : f32[3], f32[3], f32[4,3], f32[4,3]
    body func @step(%s: f32[3], %p: f32[3], %x: f32[3], %w: f32[3], %k: f32[3]) -> (f32[3], f32[3], f32[3], f32[3]) {
      %0 = mul(%x, %k) : f32[3]
      %1 = add(%s, %0) : f32[3]
      %2 = mul(%p, %w) : f32[3]
      %3 = sub(%1, %2) : f32[3]
      return %1, %2, %3, %p
    }
  return %0, %1, %2, %3
}
)";

// The sum of an LSTM's outputs, with its gradients (passes::differentiate) as more results: the
// forward scan saves its carries and the gradient is a reverse scan over them.
ir::Function lstm_with_gradients() {
  std::string text = scan_lstm("f64", false);
  text.replace(text.find("-> (f64[2,2], f64[2,2], f64[3,2,2])"),
               std::string("-> (f64[2,2], f64[2,2], f64[3,2,2])").size(), "-> f64[]");
  text.replace(text.find("  return %0, %1, %2\n}"), std::string("  return %0, %1, %2\n}").size(),
               "  %3 = reduce_sum(%2) {axes = [0, 1, 2], keepdims = false} : f64[]\n"
               "  %4 = reduce_sum(%1) {axes = [0, 1], keepdims = false} : f64[]\n"
               "  %5 = add(%3, %4) : f64[]\n  return %5\n}");
  ir::Function f = ir::parse(text);
  kiln::passes::differentiate(f);
  return f;
}

std::vector<ir::HostTensor> sample_args(const ir::Function& f) {
  std::vector<ir::HostTensor> args;
  for (size_t i = 0; i < f.params().size(); ++i) {
    args.push_back(k::testing::sample(f.param(i)->type(), static_cast<uint32_t>(7 + i), false));
  }
  return args;
}

std::vector<ir::HostTensor> expected(const ir::Function& f,
                                     const std::vector<ir::HostTensor>& args) {
  ir::EvalResult want = ir::evaluate(f, args);
  std::vector<ir::HostTensor> all = want.outputs;
  all.insert(all.end(), want.updates.begin(), want.updates.end());
  return all;
}

std::vector<ir::HostTensor> run_shim(const codegen::GpuHostModule& module, const ir::Function& f,
                                     const std::vector<ir::HostTensor>& args,
                                     const codegen::GpuGrid& grid) {
  return k::testing::run_frame(f, args, module.workspace_bytes(),
                               [&](const kiln_frame& frame) { module.run(frame, grid); });
}

// `module`'s launches as the runtime runs them on a GPU, on the mock driver (kernels by the shim,
// GEMMs by the mock cuBLASLt): results, then updates.
std::vector<ir::HostTensor> run_on_mock(const std::shared_ptr<const codegen::GpuHostModule>& module,
                                        const ir::Function& f,
                                        const std::vector<ir::HostTensor>& args, MockGpu& mock) {
  codegen::GpuModule gpu;
  gpu.launches = module->launches();
  gpu.workspace_bytes = module->workspace_bytes();
  mock.driver.register_image(module.get(), k::testing::host_shim_kernels(module));
  cu::ContextPtr context = cu::Context::retain(0);
  cu::LaunchPlan plan = k::detail::to_launch_plan(gpu);
  // Through the AOT libraries' bytes too.
  const std::string blob = cu::serialize_launch_plan(plan);
  plan = cu::parse_launch_plan(blob.data(), blob.size());
  std::shared_ptr<const cu::Module> loaded;
  if (plan.uses_kernels()) loaded = std::make_shared<const cu::Module>(context, module.get());
  std::vector<ir::TensorType> out_types;
  for (const ir::Value* v : f.outputs())
    out_types.push_back(v->type());
  cu::DeviceExecutable exe(context, loaded, std::move(plan), args.size(), out_types.size());
  std::vector<cu::DeviceBuffer> buffers;
  std::vector<cu::CUdeviceptr> inputs, outputs;
  for (const ir::HostTensor& a : args) {
    buffers.emplace_back(context, std::max<size_t>(a.nbytes(), 1));
    if (a.nbytes() != 0) buffers.back().copy_from_host(a.raw(), a.nbytes());
    inputs.push_back(buffers.back().get());
  }
  for (const ir::TensorType& t : out_types) {
    buffers.emplace_back(context, std::max<size_t>(t.nbytes(), 1));
    outputs.push_back(buffers.back().get());
  }
  CHECK_FALSE(exe.run(inputs, outputs).failed());
  std::vector<ir::HostTensor> results;
  for (size_t i = 0; i < out_types.size(); ++i) {
    results.push_back(ir::HostTensor::uninitialized(out_types[i]));
    if (results.back().nbytes() != 0)
      buffers[args.size() + i].copy_to_host(results.back().raw(), results.back().nbytes());
  }
  return results;
}

// `f` (already planned as `kernels` and `memory`) on the host shim over two grids and on the mock
// driver, each against the interpreter.
void check_planned(const ir::Function& f, const passes::KernelPlan& kernels,
                   const passes::MemoryPlan& memory, const std::vector<ir::HostTensor>& args,
                   MockGpu& mock, double tol) {
  const std::vector<ir::HostTensor> want = expected(f, args);
  auto module = std::make_shared<const codegen::GpuHostModule>(f, kernels, memory, jit());
  for (codegen::GpuGrid grid : {codegen::GpuGrid{}, codegen::GpuGrid{2, 33}}) {
    INFO("shim, grid " << grid.blocks << " x " << grid.threads);
    CHECK(k::testing::compare_results(run_shim(*module, f, args, grid), want, tol, tol) == "");
  }
  INFO("mock driver");
  CHECK(k::testing::compare_results(run_on_mock(module, f, args, mock), want, tol, tol) == "");
}

void check_gpu(const ir::Function& f, MockGpu& mock, double tol = 1e-5) {
  const std::vector<ir::HostTensor> args = sample_args(f);
  for (bool fuse : {true, false}) {
    INFO((fuse ? "fused" : "unfused"));
    passes::PipelineOptions options;
    options.fuse = fuse;
    options.print_after = {};
    passes::PipelineResult r = passes::run_pipeline(f.clone(), options);
    check_planned(r.function, r.kernels, r.memory, args, mock, tol);
  }
}

const codegen::GpuLaunch* find_loop(const std::vector<codegen::GpuLaunch>& launches) {
  auto it = std::find_if(launches.begin(), launches.end(),
                         [](const codegen::GpuLaunch& l) { return l.loop.has_value(); });
  return it == launches.end() ? nullptr : &*it;
}

}  // namespace

TEST_CASE("gpu scan: cumulative sums forwards, backwards, saved, and of length 1", "[gpu][scan]") {
  MockGpu mock;
  for (int64_t length : {1, 2, 5}) {
    for (bool reverse : {false, true}) {
      for (bool save : {false, true}) {
        INFO("length " << length << (reverse ? " reverse" : "") << (save ? " save" : ""));
        check_gpu(ir::parse(scan_cumsum(length, reverse, save)), mock);
      }
    }
  }
}

TEST_CASE("gpu scan: a scan of length 0 gives its initial carries and no rows", "[gpu][scan]") {
  MockGpu mock;
  // Planned without the pipeline, whose scan pass would replace the scan by its carries.
  ir::Function f = ir::parse(scan_cumsum(0, false, false));
  passes::KernelPlan kernels = passes::plan_kernels(f);
  passes::MemoryPlan memory = passes::plan_memory(f, kernels);
  check_planned(f, kernels, memory, sample_args(f), mock, 0);
  CHECK(find_loop(codegen::gpu_launch_plan(f, kernels, memory)) == nullptr);
}

TEST_CASE("gpu scan: two carries, two xs, a constant operand and a reverse order", "[gpu][scan]") {
  MockGpu mock;
  check_gpu(ir::parse(kMultiCarry), mock);
}

TEST_CASE("gpu scan: recurrences with a GEMM in the body (RNN, LSTM) and an LSTM's gradient",
          "[gpu][scan]") {
  MockGpu mock;
  {
    INFO("rnn");
    check_gpu(ir::parse(kScanRnn), mock);
  }
  for (bool reverse : {false, true}) {
    INFO("lstm f32" << (reverse ? " reverse" : ""));
    check_gpu(ir::parse(scan_lstm("f32", reverse)), mock, 1e-4);
  }
  INFO("lstm gradient");
  check_gpu(lstm_with_gradients(), mock);
}

TEST_CASE("gpu scan: the launch plan loops over one step's launches", "[gpu][scan]") {
  ir::Function f = ir::parse(scan_cumsum(5, true, true));
  passes::PipelineOptions options;
  options.print_after = {};
  passes::PipelineResult r = passes::run_pipeline(f.clone(), options);
  const std::vector<codegen::GpuLaunch> launches =
      codegen::gpu_launch_plan(r.function, r.kernels, r.memory);
  const std::string text = codegen::print_launch_plan(launches);
  INFO(text);
  const codegen::GpuLaunch* loop = find_loop(launches);
  REQUIRE(loop != nullptr);
  CHECK(loop->loop->trips == 5);
  // The body's add, its y copied from the new carry (one value, two results), the saved
  // carry-in and the carry copied back: 4 launches a step.
  CHECK(loop->loop->count == 4);
  CHECK_THAT(text, Contains("loop 5x4: "));
  // Reverse: row 4 first, 16 bytes back per step.
  CHECK_THAT(text, Contains("in1+64-16t"));
  CHECK_THAT(text, Contains("kiln_s0_"));
  CHECK(std::count_if(launches.begin(), launches.end(),
                      [](const codegen::GpuLaunch& l) { return l.loop.has_value(); }) == 1);
  // Every launch, the body's included, belongs to the scan kernel.
  for (const codegen::GpuLaunch& l : launches)
    CHECK(l.plan_kernel == 0);
  // The loop's symbols are distinct from the plan's.
  std::vector<std::string> symbols;
  for (const codegen::GpuLaunch& l : launches)
    symbols.push_back(l.symbol);
  std::sort(symbols.begin(), symbols.end());
  CHECK(std::adjacent_find(symbols.begin(), symbols.end()) == symbols.end());
}

TEST_CASE("gpu scan: ptxas assembles the body kernels' PTX", "[gpu][scan][ptxas]") {
  const std::string ptxas = k::testing::ptxas_path();
  if (ptxas.empty()) {
    WARN("no ptxas (no CUDA toolkit at build time): PTX not assembled");
    return;
  }
  if (!k::testing::have_libdevice()) return;
  for (const ir::Function& f :
       {ir::parse(scan_lstm("f32", true)), lstm_with_gradients(), ir::parse(kMultiCarry)}) {
    INFO(f.name());
    passes::PipelineResult r = passes::run_pipeline(f.clone());
    codegen::GpuModule module =
        codegen::compile_gpu(r.function, r.kernels, r.memory, {.gpu_arch = "sm_80,sm_90"});
    REQUIRE(find_loop(module.launches) != nullptr);
    for (const auto& [arch, text] : module.ptx) {
      INFO(arch);
      CHECK_THAT(text, Contains(".entry kiln_s"));
      CHECK(k::testing::ptxas_errors(ptxas, text, arch) == "");
    }
  }
}

TEST_CASE("gpu scan: a nested scan is a CompileError", "[gpu][scan]") {
  const char* nested = R"(func @nested(%init: f64[], %xs: f64[2,2,3]) -> (f64[], f64[2]) {
  %0, %1 = scan(%init, %xs) {carries = 1, length = 2, reverse = false, save_carries = false, xs = 1} : f64[], f64[2]
    body func @outer(%c: f64[], %x: f64[2,3]) -> (f64[], f64[]) {
      %0, %1 = scan(%c, %x) {carries = 1, length = 2, reverse = true, save_carries = false, xs = 1} : f64[], f64[2,3]
        body func @inner(%d: f64[], %row: f64[3]) -> (f64[], f64[3]) {
          %0 = reduce_sum(%row) {axes = [0], keepdims = false} : f64[]
          %1 = add(%d, %0) : f64[]
          return %1, %row
        }
      return %0, %0
    }
  return %0, %1
}
)";
  passes::PipelineResult r = passes::run_pipeline(ir::parse(nested));
  CHECK_THROWS_WITH(codegen::gpu_launch_plan(r.function, r.kernels, r.memory),
                    Contains("kernel 0 (scan: scan)") &&
                        Contains("a scan inside a scan body does not run on the GPU path yet"));
}

TEST_CASE("gpu scan: a constant xs is staged in the workspace, then stepped through",
          "[gpu][scan]") {
  MockGpu mock;
  const char* constant_xs = R"(func @f(%init: f32[2]) -> f32[2] {
  %xs = constant() {value = dense<f32[3,2]: 1.0, 2.0, 3.0, 4.0, 5.0, 6.0>} : f32[3,2]
  %0, %1 = scan(%init, %xs) {carries = 1, length = 3, reverse = false, save_carries = false, xs = 1} : f32[2], f32[3,2]
    body func @step(%c: f32[2], %x: f32[2]) -> (f32[2], f32[2]) {
      %0 = add(%c, %x) : f32[2]
      return %0, %0
    }
  return %0
}
)";
  ir::Function g = ir::parse(constant_xs);
  passes::KernelPlan kernels = passes::plan_kernels(g);
  passes::MemoryPlan memory = passes::plan_memory(g, kernels);
  check_planned(g, kernels, memory, sample_args(g), mock, 0);
  const codegen::GpuHostModule shim(g, kernels, memory, jit());
  CHECK(shim.workspace_bytes() >= memory.workspace_bytes + 24);
  CHECK_THAT(codegen::print_launch_plan(shim.launches()), Contains("xs 0 staged"));
}

TEST_CASE("gpu scan: launch plan blobs keep loops and strides; version 1 is refused",
          "[gpu][scan]") {
  cu::LaunchPlan plan;
  plan.workspace_bytes = 512;
  cu::KernelLaunch step;
  step.symbol = "kiln_s0_k0_0";
  step.items = 4;
  step.grid = 1;
  step.block = 32;
  step.args = {{cu::LaunchArg::Kind::input, 1, 96, -32},
               {cu::LaunchArg::Kind::workspace, 0, 64, 0}};
  step.loop = cu::LaunchLoop{4, 2};
  cu::KernelLaunch copy = step;
  copy.symbol = "kiln_k0_next0";
  copy.loop.reset();
  copy.args = {{cu::LaunchArg::Kind::workspace, 0, 0, 0}, {cu::LaunchArg::Kind::output, 0, 0, 32}};
  plan.launches = {step, copy};
  const std::string bytes = cu::serialize_launch_plan(plan);
  const cu::LaunchPlan back = cu::parse_launch_plan(bytes.data(), bytes.size());
  REQUIRE(back.launches.size() == 2);
  REQUIRE(back.launches[0].loop);
  CHECK(back.launches[0].loop->trips == 4);
  CHECK(back.launches[0].loop->count == 2);
  CHECK_FALSE(back.launches[1].loop);
  CHECK(back.launches[0].args[0].offset == 96);
  CHECK(back.launches[0].args[0].step_bytes == -32);
  CHECK(back.launches[1].args[1].step_bytes == 32);
  CHECK(cu::serialize_launch_plan(back) == bytes);
  // Every truncation is an error.
  for (size_t n = 0; n < bytes.size(); ++n) {
    INFO(n << " bytes");
    CHECK_THROWS_AS(cu::parse_launch_plan(bytes.data(), n), std::invalid_argument);
  }
  // A library built by a Kiln before loops (format 1) is refused, saying what to do.
  std::string old = bytes;
  old[8] = 1;
  CHECK_THROWS_WITH(
      cu::parse_launch_plan(old.data(), old.size()),
      Contains("version 1, this runtime reads version 2") && Contains("rebuild the library"));
}

TEST_CASE("gpu scan: the executable refuses loops that nest, overrun or step out of bounds",
          "[gpu][scan]") {
  MockGpu mock;
  cu::ContextPtr context = cu::Context::retain(0);
  auto launch = [](std::optional<cu::LaunchLoop> loop, cu::LaunchArg arg) {
    cu::KernelLaunch l;
    l.gemm = cu::GemmCall{};  // no module needed; K = 0 plans nothing
    l.gemm->a = l.gemm->b = l.gemm->d = arg;
    l.loop = loop;
    l.label = "step";
    return l;
  };
  const cu::LaunchArg ws{cu::LaunchArg::Kind::workspace, 0, 0, 0};
  auto make = [&](std::vector<cu::KernelLaunch> launches) {
    cu::LaunchPlan plan;
    plan.workspace_bytes = 256;
    plan.launches = std::move(launches);
    return cu::DeviceExecutable(context, nullptr, std::move(plan), 1, 1);
  };
  CHECK_NOTHROW(make({launch(cu::LaunchLoop{3, 2}, ws), launch(std::nullopt, ws)}));
  CHECK_THROWS_WITH(make({launch(cu::LaunchLoop{3, 3}, ws), launch(std::nullopt, ws)}),
                    Contains("outside the plan"));
  CHECK_THROWS_WITH(make({launch(cu::LaunchLoop{3, 0}, ws)}), Contains("a loop of 3 trips"));
  CHECK_THROWS_WITH(make({launch(cu::LaunchLoop{-1, 1}, ws)}), Contains("a loop of -1 trips"));
  CHECK_THROWS_WITH(make({launch(cu::LaunchLoop{3, 2}, ws), launch(cu::LaunchLoop{2, 1}, ws)}),
                    Contains("a loop inside a loop"));
  // The last trip's buffer past the workspace, or before an input's start.
  CHECK_THROWS_WITH(
      make({launch(cu::LaunchLoop{3, 1}, {cu::LaunchArg::Kind::workspace, 0, 0, 200})}),
      Contains("a buffer outside the plan's buffers"));
  CHECK_THROWS_WITH(make({launch(cu::LaunchLoop{3, 1}, {cu::LaunchArg::Kind::input, 0, 32, -32})}),
                    Contains("a buffer outside the plan's buffers"));
  CHECK_NOTHROW(make({launch(cu::LaunchLoop{2, 1}, {cu::LaunchArg::Kind::input, 0, 32, -32})}));
}

TEST_CASE("gpu scan: a Keras LSTM predicts and trains on the mock GPU as on the CPU",
          "[gpu][scan][recurrent]") {
  namespace L = k::layers;
  MockGpu mock;
  const k::Device gpu = k::Device::cuda(0);
  const k::Tensor x = k::random_uniform({8, 5, 3}, -1.f, 1.f, 21);
  const k::Tensor y = k::random_uniform({8, 1}, -1.f, 1.f, 22);
  auto make = [] {
    return k::Sequential(
        {L::LSTM(4, {.return_sequences = true, .input_shape = {5, 3}}), L::GRU(3), L::Dense(1)});
  };
  k::set_random_seed(3);
  k::Sequential on_cpu = make();
  // (Built as it is made: its first layer declares the input shape.)
  k::Sequential on_gpu = [&] {
    k::DeviceScope on(gpu);
    return make();
  }();
  for (size_t i = 0; i < on_cpu.weights().size(); ++i)
    on_gpu.weights()[i].assign(on_cpu.weights()[i].value().to(gpu));
  k::testing::check_on_device(on_cpu.predict(x), on_gpu.predict(x.to(gpu)).to(gpu), gpu, 1e-4);
  const int loads = mock.loads;
  CHECK(loads > 0);  // the model ran as GPU modules, not elsewhere
  // Called directly too.
  k::testing::check_on_device(on_cpu(x), on_gpu(x.to(gpu)), gpu, 1e-4);

  for (k::Sequential* m : {&on_cpu, &on_gpu})
    m->compile("adam", "mse");
  const k::FitOptions options{.epochs = 2, .batch_size = 4, .shuffle = false, .verbose = 0};
  const k::History want = on_cpu.fit(x, y, options);
  const k::History got = on_gpu.fit(x, y, options);
  CHECK(got.history.at("loss")[1] == Approx(want.history.at("loss")[1]).epsilon(1e-4));
  for (size_t i = 0; i < on_cpu.weights().size(); ++i) {
    INFO(on_cpu.weights()[i].name());
    k::testing::check_on_device(on_cpu.weights()[i].value(), on_gpu.weights()[i].value(), gpu,
                                1e-4);
  }
}

TEST_CASE("gpu scan: an eager kiln::scan of GPU tensors runs there and equals the CPU's",
          "[gpu][scan]") {
  MockGpu mock;
  const k::Device gpu = k::Device::cuda(0);
  const k::Tensor xs = k::random_uniform({6, 2, 3}, -1.f, 1.f, 5);
  const k::Tensor h0 = k::random_uniform({2, 3}, -1.f, 1.f, 6);
  const k::Tensor u = k::random_uniform({3, 3}, -0.5f, 0.5f, 7);
  for (bool reverse : {false, true}) {
    INFO((reverse ? "reverse" : "forward"));
    k::ScanOptions options;
    options.reverse = reverse;
    auto run = [&](const k::Tensor& h, const k::Tensor& x, const k::Tensor& w) {
      return k::scan(
          [&](std::span<const k::Tensor> c, std::span<const k::Tensor> step) {
            k::Tensor next = k::tanh(k::matmul(c[0], w) + step[0]);
            return std::pair{std::vector{next}, std::vector{next, c[0]}};
          },
          {h}, {x}, options);
    };
    const k::ScanResult want = run(h0, xs, u);
    const k::ScanResult got = run(h0.to(gpu), xs.to(gpu), u.to(gpu));
    k::testing::check_on_device(want.carries[0], got.carries[0], gpu, 1e-5);
    k::testing::check_on_device(want.ys[0], got.ys[0], gpu, 1e-5);
    k::testing::check_on_device(want.ys[1], got.ys[1], gpu, 1e-5);
  }
  CHECK(mock.loads > 0);
}

TEST_CASE("gpu scan: a bad index in a body sets the status words as the CPU code does",
          "[gpu][scan][errors]") {
  ir::Function f = ir::parse(R"(func @bad(%c: i64[], %xs: i64[3]) -> (i64[], i64[3]) {
  %0, %1 = scan(%c, %xs) {carries = 1, length = 3, reverse = false, save_carries = false, xs = 1} : i64[], i64[3]
    body func @step(%c: i64[], %x: i64[]) -> (i64[], i64[]) {
      %0 = check_index(%x) {limit = 3, what = "label"} : i64[]
      %1 = add(%c, %0) : i64[]
      return %1, %0
    }
  return %0, %1
}
)");
  passes::PipelineResult r = passes::run_pipeline(f.clone());
  const std::vector<ir::HostTensor> args{
      ir::HostTensor::scalar<int64_t>(0),
      ir::HostTensor::from_values<int64_t>(ir::Shape{3}, std::vector<int64_t>{0, 5, 1})};
  auto cpu = codegen::compile_jit(r.function, r.kernels, r.memory);
  std::array<int64_t, 4> want{}, got{};
  k::testing::run_compiled(*cpu, r.function, args, &want);
  const codegen::GpuHostModule shim(r.function, r.kernels, r.memory, jit());
  k::testing::run_frame(
      r.function, args, shim.workspace_bytes(), [&](const kiln_frame& frame) { shim.run(frame); },
      &got);
  // The body's kernel, numbered as passes::number_kernels does, index 5 of 3.
  CHECK(want[0] > static_cast<int64_t>(r.kernels.kernels.size()));
  CHECK(got == want);
}
