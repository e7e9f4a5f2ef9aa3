// `scan` compiled for the CPU (issue 15): the whole pipeline (passes inside bodies, the scan
// kernel and its body plans, scratch, the step loop) against the interpreter, fused and unfused.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "codegen_test_util.h"
#include "grad_check_util.h"
#include "kiln/codegen/compiler.h"
#include "kiln/ir/parser.h"
#include "kiln/ir/printer.h"
#include "kiln/passes/autodiff.h"
#include "kiln/passes/fusion.h"
#include "kiln/passes/memory_plan.h"
#include "kiln/passes/pipeline.h"
#include "scan_test_programs.h"

using namespace kiln;
using namespace kiln::ir;
using Catch::Contains;
using kiln::testing::kScanRnn;
using kiln::testing::scan_cumsum;
using kiln::testing::scan_lstm;

namespace {

passes::PipelineResult optimized(const Function& f, bool fuse) {
  passes::PipelineOptions options;
  options.fuse = fuse;
  options.verify = true;
  options.print_after = {};
  return passes::run_pipeline(f.clone(), options);
}

// Compiles `f` through the whole pipeline, fused and unfused, and checks every result against
// ir::evaluate on `args`.
void check_compiled(const Function& f, const std::vector<HostTensor>& args, double tol = 4e-6) {
  EvalResult want = evaluate(f, args);
  for (bool fuse : {true, false}) {
    INFO((fuse ? "fused" : "unfused"));
    passes::PipelineResult r = optimized(f, fuse);
    auto module = codegen::compile_jit(r.function, r.kernels, r.memory);
    std::vector<HostTensor> got = testing::run_compiled(*module, r.function, args);
    REQUIRE(got.size() == want.outputs.size());
    for (size_t i = 0; i < got.size(); ++i) {
      INFO("result " << i);
      testing::check_same(got[i], want.outputs[i], tol);
    }
  }
}

void check_compiled(const std::string& text, const std::vector<HostTensor>& args) {
  check_compiled(parse(text), args);
}

// The function with its gradients (passes::differentiate) appended as outputs.
Function with_gradients(const std::string& text) {
  Function f = parse(text);
  passes::differentiate(f);
  return f;
}

HostTensor f64s(Shape shape, std::vector<double> values) {
  return HostTensor::from_values<double>(std::move(shape), values);
}

std::vector<HostTensor> lstm_args() {
  using testing::random_f64;
  return {random_f64({2, 2}, 11), random_f64({2, 2}, 12), random_f64({3, 2, 8}, 13),
          random_f64({2, 8}, 14, -0.5, 0.5)};
}

const char* kNested = R"(func @nested(%init: f64[], %xs: f64[2,2,3]) -> (f64[], f64[2]) {
  %0, %1 = scan(%init, %xs) {carries = 1, length = 2, reverse = false, save_carries = false, xs = 1} : f64[], f64[2]
    body func @outer(%c: f64[], %x: f64[2,3]) -> (f64[], f64[]) {
      %0, %1 = scan(%c, %x) {carries = 1, length = 2, reverse = true, save_carries = false, xs = 1} : f64[], f64[2,3]
        body func @inner(%d: f64[], %row: f64[3]) -> (f64[], f64[3]) {
          %0 = reduce_sum(%row) {axes = [0], keepdims = false} : f64[]
          %3 = constant() {value = dense<f64[]: 0.5>} : f64[]
          %1 = mul(%d, %3) : f64[]
          %2 = add(%1, %0) : f64[]
          return %2, %row
        }
      return %0, %0
    }
  return %0, %1
}
)";

}  // namespace

TEST_CASE("compiled scan: cumulative sum, forward, reverse, saved carries, T = 0 and 1",
          "[codegen][scan]") {
  for (int64_t length : {0, 1, 3, 6}) {
    for (bool reverse : {false, true}) {
      for (bool save : {false, true}) {
        INFO("length " << length << (reverse ? " reverse" : "") << (save ? " save" : ""));
        std::vector<double> xs(static_cast<size_t>(2 * length));
        for (size_t i = 0; i < xs.size(); ++i)
          xs[i] = static_cast<double>(i) * 0.5 - 1;
        check_compiled(scan_cumsum(length, reverse, save),
                       {f64s({2}, {3, -4}), f64s({length, 2}, xs)});
      }
    }
  }
}

TEST_CASE("compiled scan: scalar steps, a parameter returned unchanged", "[codegen][scan]") {
  check_compiled(R"(func @cumprod(%init: f64[], %xs: f64[4]) -> (f64[], f64[4]) {
  %0, %1 = scan(%init, %xs) {carries = 1, length = 4, reverse = false, save_carries = false, xs = 1} : f64[], f64[4]
    body func @step(%p: f64[], %x: f64[]) -> (f64[], f64[]) {
      %0 = mul(%p, %x) : f64[]
      return %0, %0
    }
  return %0, %1
}
)",
                 {f64s({}, {1}), f64s({4}, {2, 3, 4, 0.5})});
  check_compiled(R"(func @keep(%c: f64[2], %k: f64[2]) -> (f64[2], f64[3,2]) {
  %0, %1 = scan(%c, %k) {carries = 1, length = 3, reverse = false, save_carries = false, xs = 0} : f64[2], f64[3,2]
    body func @step(%c: f64[2], %k: f64[2]) -> (f64[2], f64[2]) {
      return %c, %k
    }
  return %0, %1
}
)",
                 {f64s({2}, {1, 2}), f64s({2}, {3, 4})});
}

TEST_CASE("compiled scan: several carries, xs, ys and consts, an integer carry",
          "[codegen][scan]") {
  check_compiled(
      R"(func @many(%a: f64[], %n: i64[], %u: f64[2,2], %v: f64[2], %w: f64[2], %b: f64[]) -> (f64[], i64[], f64[2], f64[2,2], i64[2]) {
  %0, %1, %2, %3, %4 = scan(%a, %n, %u, %v, %w, %b) {carries = 2, length = 2, reverse = false, save_carries = false, xs = 2} : f64[], i64[], f64[2], f64[2,2], i64[2]
    body func @step(%a: f64[], %n: i64[], %u: f64[2], %v: f64[], %w: f64[2], %b: f64[]) -> (f64[], i64[], f64[], f64[2], i64[]) {
      %0 = mul(%u, %w) : f64[2]
      %1 = reduce_sum(%0) {axes = [0], keepdims = false} : f64[]
      %2 = mul(%v, %b) : f64[]
      %3 = add(%a, %1) : f64[]
      %4 = add(%3, %2) : f64[]
      %5 = constant() {value = dense<i64[]: 1>} : i64[]
      %6 = add(%n, %5) : i64[]
      %7 = mul(%u, %v) : f64[2]
      return %4, %6, %4, %7, %n
    }
  return %0, %1, %2, %3, %4
}
)",
      {f64s({}, {0.5}), HostTensor::scalar<int64_t>(7), f64s({2, 2}, {1, 2, 3, 4}),
       f64s({2}, {10, -1}), f64s({2}, {0.5, 2}), f64s({}, {3})});
}

TEST_CASE("compiled scan: nested scans", "[codegen][scan]") {
  std::vector<double> xs(12);
  for (size_t i = 0; i < xs.size(); ++i)
    xs[i] = static_cast<double>(i) + 1;
  check_compiled(kNested, {f64s({}, {100}), f64s({2, 2, 3}, xs)});
}

TEST_CASE("compiled scan: RNN and LSTM cells (matmul, split, activations), f32 and f64",
          "[codegen][scan]") {
  using testing::random_f64;
  check_compiled(kScanRnn, {random_f64({2, 3}, 21), random_f64({4, 2, 3}, 22),
                            random_f64({3, 3}, 23, -0.5, 0.5)});
  for (bool reverse : {false, true}) {
    INFO((reverse ? "reverse" : "forward"));
    check_compiled(scan_lstm("f64", reverse), lstm_args());
    std::vector<HostTensor> args32;
    for (const HostTensor& a : lstm_args()) {
      TensorType type{DType::f32, a.shape()};
      args32.push_back(
          run_op(Op::cast, {&a, 1}, Attrs().set_dtype("dtype", DType::f32), {&type, 1}).at(0));
    }
    check_compiled(scan_lstm("f32", reverse), args32);
  }
}

TEST_CASE("compiled scan gradients equal the interpreter's", "[codegen][scan][autodiff]") {
  using testing::random_f64;
  SECTION("tanh RNN") {
    check_compiled(with_gradients(kScanRnn), {random_f64({2, 3}, 21), random_f64({4, 2, 3}, 22),
                                              random_f64({3, 3}, 23, -0.5, 0.5)});
  }
  SECTION("LSTM through the stacked h, forward and reverse") {
    for (bool reverse : {false, true}) {
      std::string text = scan_lstm("f64", reverse);
      text.replace(text.find("-> (f64[2,2], f64[2,2], f64[3,2,2])"), 35, "-> f64[3,2,2]");
      text.replace(text.find("return %0, %1, %2\n}"), 17, "return %2");
      check_compiled(with_gradients(text), lstm_args());
    }
  }
  SECTION("an integer carry and saved carries used as results") {
    check_compiled(with_gradients(R"(func @f(%h0: f64[2], %n0: i64[], %xs: f64[3,2]) -> f64[3,2] {
  %0, %1, %2 = scan(%h0, %n0, %xs) {carries = 2, length = 3, reverse = false, save_carries = false, xs = 1} : f64[2], i64[], f64[3,2]
    body func @step(%h: f64[2], %n: i64[], %x: f64[2]) -> (f64[2], i64[], f64[2]) {
      %0 = cast(%n) {dtype = f64} : f64[]
      %1 = mul(%h, %0) : f64[2]
      %2 = add(%1, %x) : f64[2]
      %3 = constant() {value = dense<i64[]: 1>} : i64[]
      %4 = add(%n, %3) : i64[]
      %5 = sin(%2) : f64[2]
      return %5, %4, %2
    }
  return %2
}
)"),
                   {random_f64({2}, 31), HostTensor::scalar<int64_t>(1), random_f64({3, 2}, 32)});
    check_compiled(with_gradients(R"(func @f(%h0: f64[2], %xs: f64[3,2]) -> f64[3,2] {
  %0, %1, %2 = scan(%h0, %xs) {carries = 1, length = 3, reverse = true, save_carries = true, xs = 1} : f64[2], f64[3,2], f64[3,2]
    body func @step(%h: f64[2], %x: f64[2]) -> (f64[2], f64[2]) {
      %0 = mul(%h, %x) : f64[2]
      %1 = sin(%0) : f64[2]
      return %1, %0
    }
  %3 = add(%1, %2) : f64[3,2]
  return %3
}
)"),
                   {random_f64({2}, 41), random_f64({3, 2}, 42)});
  }
  SECTION("length 0") {
    check_compiled(with_gradients(R"(func @f(%h0: f64[2], %xs: f64[0,2], %a: f64[]) -> f64[2] {
  %0, %1 = scan(%h0, %xs, %a) {carries = 1, length = 0, reverse = false, save_carries = false, xs = 1} : f64[2], f64[0,2]
    body func @step(%h: f64[2], %x: f64[2], %a: f64[]) -> (f64[2], f64[2]) {
      %0 = mul(%h, %a) : f64[2]
      %1 = add(%0, %x) : f64[2]
      return %1, %1
    }
  return %0
}
)"),
                   {f64s({2}, {1, 2}), HostTensor(DType::f64, Shape{0, 2}), f64s({}, {0.5})});
  }
  SECTION("nested scans") {
    Function f = parse(kNested);
    f.set_outputs({f.outputs().at(1)});
    passes::differentiate(f);
    std::vector<double> xs(12);
    for (size_t i = 0; i < xs.size(); ++i)
      xs[i] = static_cast<double>(i) * 0.1;
    check_compiled(f, {f64s({}, {1}), f64s({2, 2, 3}, xs)});
  }
}

TEST_CASE("a bad index inside a compiled scan body is reported for the body's node",
          "[codegen][scan][errors]") {
  Function f = parse(R"(func @bad(%c: i64[], %xs: i64[3]) -> (i64[], i64[3]) {
  %0, %1 = scan(%c, %xs) {carries = 1, length = 3, reverse = false, save_carries = false, xs = 1} : i64[], i64[3]
    body func @step(%c: i64[], %x: i64[]) -> (i64[], i64[]) {
      %0 = check_index(%x) {limit = 3, what = "label"} : i64[]
      %1 = add(%c, %0) : i64[]
      return %1, %0
    }
  return %0, %1
}
)");
  passes::PipelineResult r = optimized(f, true);
  auto module = codegen::compile_jit(r.function, r.kernels, r.memory);
  std::array<int64_t, 4> status{};
  testing::run_compiled(*module, r.function,
                        {HostTensor::scalar<int64_t>(0),
                         HostTensor::from_values<int64_t>(Shape{3}, std::vector<int64_t>{0, 5, 1})},
                        &status);
  // status[0] numbers the kernel as passes::number_kernels does: the body's come after the
  // function's own.
  std::vector<const passes::Kernel*> kernels = passes::number_kernels(r.kernels);
  REQUIRE(status[0] >= 1);
  REQUIRE(static_cast<size_t>(status[0]) <= kernels.size());
  const passes::Kernel& failed = *kernels[static_cast<size_t>(status[0] - 1)];
  CHECK(failed.nodes.front()->op() == Op::check_index);
  CHECK(status[1] == 5);
  CHECK(status[3] == 3);
}

TEST_CASE("the scan kernel's plan shows its body, and its scratch is live at it alone",
          "[codegen][scan][plan]") {
  passes::PipelineResult r = optimized(parse(kScanRnn), true);
  std::string plan = passes::print_plan(r.function, r.kernels);
  INFO(plan);
  CHECK_THAT(plan, Contains("kernel 0 scan(%h0, %xs, %u) -> %0, %1 {"));
  CHECK_THAT(plan, Contains("  body @cell:\n    kernel 0 matmul(%h, %u, %x) -> %2 {"));
  std::string memory = passes::print_memory_plan(r.function, r.kernels, r.memory);
  INFO(memory);
  // The unused final carry %0 takes the first block; then two blocks for the f64[2,3] carry
  // (48 bytes each, aligned to 64), then the body's workspace (none: its kernel writes the
  // step's outputs).
  CHECK_THAT(memory, Contains("kernel 0: %0 workspace+0 (48 bytes), %1 output 0 (192 bytes)\n"
                              "  scratch workspace+64 (128 bytes)\n"
                              "  body @cell:\n"
                              "    workspace 0 bytes\n"
                              "    kernel 0: %2 output 0 (48 bytes)\n"
                              "    copy output 1 <- %2 (48 bytes)\n"));
  CHECK_NOTHROW(passes::check_memory_plan(r.function, r.kernels, r.memory));
  REQUIRE(r.memory.scratch.contains(0));
  CHECK(r.memory.workspace_bytes == 192);
}

TEST_CASE("the pipeline runs inside scan bodies", "[passes][scan]") {
  Function f = parse(R"(func @f(%h0: f32[4], %xs: f32[3,4]) -> f32[3,4] {
  %0, %1 = scan(%h0, %xs) {carries = 1, length = 3, reverse = false, save_carries = false, xs = 1} : f32[4], f32[3,4]
    body func @step(%h: f32[4], %x: f32[4]) -> (f32[4], f32[4]) {
      %5 = constant() {value = dense<f32[]: 1.0>} : f32[]
      %0 = mul(%x, %5) : f32[4]
      %1 = add(%h, %0) : f32[4]
      %2 = add(%h, %0) : f32[4]
      %3 = exp(%2) : f32[4]
      %4 = neg(%1) : f32[4]
      return %1, %2
    }
  return %1
}
)");
  passes::PipelineOptions options;
  options.stop_after = "dce";
  options.print_after = {};
  std::string text = print(passes::run_pipeline(f.clone(), options).function);
  CHECK(text == R"(func @f(%h0: f32[4], %xs: f32[3,4]) -> f32[3,4] {
  %0, %1 = scan(%h0, %xs) {carries = 1, length = 3, reverse = false, save_carries = false, xs = 1} : f32[4], f32[3,4]
    body func @step(%h: f32[4], %x: f32[4]) -> (f32[4], f32[4]) {
      %0 = add(%h, %x) : f32[4]
      return %0, %0
    }
  return %1
}
)");
}

TEST_CASE("compiled code does not grow with the scan's length", "[codegen][scan]") {
  // Unoptimized (LLVM could unroll a short loop), as lines of LLVM IR: the length appears in
  // constants only.
  auto instructions = [](int64_t length) {
    passes::PipelineResult r = optimized(parse(scan_cumsum(length, false, true)), true);
    codegen::CodegenOptions options;
    options.opt_level = 0;
    auto module = codegen::compile_jit(r.function, r.kernels, r.memory, options);
    const std::string& ir = module->llvm_ir();
    return std::pair{std::count(ir.begin(), ir.end(), '\n'),
                     passes::number_kernels(r.kernels).size()};
  };
  auto [short_code, short_kernels] = instructions(10);
  auto [long_code, long_kernels] = instructions(1000);
  CHECK(short_kernels == long_kernels);
  CHECK(short_code == long_code);
}

TEST_CASE("compiled scan of length 0 without the scan pass copies the initial carries",
          "[codegen][scan]") {
  // The pipeline's scan step removes such a node; codegen still compiles one it is given.
  for (bool save : {false, true}) {
    Function f = parse(scan_cumsum(0, false, save));
    passes::KernelPlan kernels = passes::plan_kernels(f);
    passes::MemoryPlan memory = passes::plan_memory(f, kernels);
    REQUIRE(kernels.kernels.size() == 1);
    CHECK(kernels.kernels[0].kind == passes::KernelKind::scan);
    auto module = codegen::compile_jit(f, kernels, memory);
    std::vector<HostTensor> args = {f64s({2}, {3, -4}), HostTensor(DType::f64, Shape{0, 2})};
    std::vector<HostTensor> got = testing::run_compiled(*module, f, args);
    CHECK(got[0].values<double>()[0] == 3);
    CHECK(got[0].values<double>()[1] == -4);
  }
}

namespace {

std::string after_scan_pass(const std::string& text) {
  passes::PipelineOptions options;
  options.stop_after = "scan";
  options.print_after = {};
  options.verify = true;
  return print(passes::run_pipeline(parse(text), options).function);
}

}  // namespace

TEST_CASE("the scan pass drops unread stacked ys and saved carries", "[passes][scan]") {
  CHECK(after_scan_pass(R"(func @f(%h0: f32[4], %xs: f32[3,4]) -> f32[4] {
  %0, %1, %2, %3 = scan(%h0, %xs) {carries = 1, length = 3, reverse = true, save_carries = true, xs = 1} : f32[4], f32[3,4], f32[3,4], f32[3,4]
    body func @step(%h: f32[4], %x: f32[4]) -> (f32[4], f32[4], f32[4]) {
      %0 = add(%h, %x) : f32[4]
      %1 = exp(%x) : f32[4]
      return %0, %0, %1
    }
  return %0
}
)") == R"(func @f(%h0: f32[4], %xs: f32[3,4]) -> f32[4] {
  %0 = scan(%h0, %xs) {carries = 1, length = 3, reverse = true, save_carries = false, xs = 1} : f32[4]
    body func @step(%h: f32[4], %x: f32[4]) -> f32[4] {
      %0 = add(%h, %x) : f32[4]
      return %0
    }
  return %0
}
)");
  // A read y and the saved carries stay; the unread y goes.
  CHECK(after_scan_pass(R"(func @f(%h0: f32[4], %xs: f32[3,4]) -> (f32[3,4], f32[3,4]) {
  %0, %1, %2, %3 = scan(%h0, %xs) {carries = 1, length = 3, reverse = false, save_carries = true, xs = 1} : f32[4], f32[3,4], f32[3,4], f32[3,4]
    body func @step(%h: f32[4], %x: f32[4]) -> (f32[4], f32[4], f32[4]) {
      %0 = add(%h, %x) : f32[4]
      %1 = exp(%x) : f32[4]
      return %0, %0, %1
    }
  return %2, %3
}
)") == R"(func @f(%h0: f32[4], %xs: f32[3,4]) -> (f32[3,4], f32[3,4]) {
  %0, %1, %2 = scan(%h0, %xs) {carries = 1, length = 3, reverse = false, save_carries = true, xs = 1} : f32[4], f32[3,4], f32[3,4]
    body func @step(%h: f32[4], %x: f32[4]) -> (f32[4], f32[4]) {
      %0 = add(%h, %x) : f32[4]
      %1 = exp(%x) : f32[4]
      return %0, %1
    }
  return %1, %2
}
)");
}

TEST_CASE("the scan pass replaces a scan of length 0 by its initial carries", "[passes][scan]") {
  CHECK(after_scan_pass(R"(func @f(%h0: f32[4], %xs: f32[0,4]) -> (f32[4], f32[0,4]) {
  %0, %1 = scan(%h0, %xs) {carries = 1, length = 0, reverse = false, save_carries = false, xs = 1} : f32[4], f32[0,4]
    body func @step(%h: f32[4], %x: f32[4]) -> (f32[4], f32[4]) {
      %0 = add(%h, %x) : f32[4]
      return %0, %0
    }
  %2 = neg(%0) : f32[4]
  return %2, %1
}
)") == R"(func @f(%h0: f32[4], %xs: f32[0,4]) -> (f32[4], f32[0,4]) {
  %0 = constant() {value = dense<f32[0,4]>} : f32[0,4]
  %1 = neg(%h0) : f32[4]
  return %1, %0
}
)");
}
