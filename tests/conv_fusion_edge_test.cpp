// Edge cases of the implicit-GEMM convolutions, fused max-pool gradients and pad chains that a
// review found failing (27e1645, 1ec2e5a): in-place writes over a value a fused gradient still
// reads, -0.0 pad values, oversized filter gradients, pads and max-pool gradients in flat loops,
// convolutions without channels. Each compares the compiled pipeline with the interpreter.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "codegen_test_util.h"
#include "kiln/ir/parser.h"
#include "kiln/passes/pipeline.h"

using kiln::ir::DType;
using kiln::ir::Function;
using kiln::ir::HostTensor;
using kiln::ir::Shape;

namespace {

std::vector<HostTensor> compiled(const Function& f, const std::vector<HostTensor>& args) {
  kiln::passes::PipelineResult r = kiln::passes::run_pipeline(f.clone());
  auto module = kiln::codegen::compile_jit(r.function, r.kernels, r.memory);
  return kiln::testing::run_compiled(*module, r.function, args);
}

}  // namespace

TEST_CASE("a fused max_pool2d_grad's x computed in the kernel is not overwritten",
          "[conv_edges][memory_plan][pool]") {
  // x = abs(a) joins the gradient's loop kernel as a producer, so the kernel's input is a (read
  // only by abs, an elementwise op) and memory_plan's read_elementwise lets the kernel's result
  // (%r) take a's block. But the gradient recomputes x = abs(a) at the window's other taps:
  // once r is written over a, later elements see abs(r) there. All |a| tie at 1.5 = y, so only each
  // window's first tap may take dy; with the block shared every tap does.
  Function f = kiln::ir::parse(
      R"(func @f(%p: f32[4,8,8,16], %y: f32[4,4,4,16], %dy: f32[4,4,4,16]) -> f32[4,8,8,16] {
  %a = transpose(%p) {perm = [0, 2, 1, 3]} : f32[4,8,8,16]
  %x = abs(%a) : f32[4,8,8,16]
  %g = max_pool2d_grad(%x, %y, %dy) {ksize = [2, 2], padding = "valid", strides = [2, 2]} : f32[4,8,8,16]
  %r = mul(%g, %g) : f32[4,8,8,16]
  %t = transpose(%r) {perm = [0, 2, 1, 3]} : f32[4,8,8,16]
  return %t
})");
  HostTensor p(DType::f32, Shape{4, 8, 8, 16});
  for (int64_t i = 0; i < p.num_elements(); ++i)
    p.data<float>()[i] = i % 2 == 0 ? 1.5f : -1.5f;
  HostTensor y(DType::f32, Shape{4, 4, 4, 16});
  for (int64_t i = 0; i < y.num_elements(); ++i)
    y.data<float>()[i] = 1.5f;
  HostTensor dy(DType::f32, Shape{4, 4, 4, 16});
  for (int64_t i = 0; i < dy.num_elements(); ++i)
    dy.data<float>()[i] = static_cast<float>(i % 7 + 1);
  const std::vector<HostTensor> args = {p, y, dy};

  kiln::passes::PipelineResult r = kiln::passes::run_pipeline(f.clone());
  for (const auto& [out, in] : r.memory.in_place) {
    INFO("an output took the block of a value of type " << in->type().to_string());
    CHECK(in->type().shape != Shape{4, 8, 8, 16});
  }
  const HostTensor want = kiln::ir::evaluate(f, args).outputs.at(0);
  kiln::testing::check_same(compiled(f, args).at(0), want, 0.0);
}

TEST_CASE("merging pad(pad(x)) keeps a -0.0 pad value", "[conv_edges][canonicalize]") {
  // The inner pad fills with -0.0, the outer with +0.0; pad_chain compares the values with ==
  // (equal) and keeps the outer's, so the inner border turns +0.0: 1/x gives +inf, not -inf.
  Function f = kiln::ir::parse(R"(func @f(%x: f32[2,2]) -> f32[6,2] {
  %0 = pad(%x) {paddings = [1, 1, 0, 0], value = -0.0} : f32[4,2]
  %1 = pad(%0) {paddings = [1, 1, 0, 0], value = 0.0} : f32[6,2]
  %2 = reciprocal(%1) : f32[6,2]
  return %2
})");
  HostTensor x(DType::f32, Shape{2, 2});
  for (int64_t i = 0; i < 4; ++i)
    x.data<float>()[i] = static_cast<float>(i + 1);
  const std::vector<HostTensor> args = {x};
  const HostTensor want = kiln::ir::evaluate(f, args).outputs.at(0);
  const HostTensor got = compiled(f, args).at(0);
  REQUIRE(std::isinf(want.data<float>()[2]));
  CHECK(want.data<float>()[2] < 0);  // row 1: the inner pad's -0.0
  for (int64_t i = 0; i < want.num_elements(); ++i) {
    INFO("element " << i);
    CHECK(got.data<float>()[i] == want.data<float>()[i]);
  }
}

TEST_CASE("conv2d_filter_grad rejects a ksize whose result overflows",
          "[conv_edges][conv][errors]") {
  // ksize makes the result's shape [KH, KW, C, O] (no operand has it): 2^32 · 2^32 · 3 · 4
  // elements wrap int64 (to 0). With padding "same" any window size is valid, so only a size
  // check (shape.cpp's result_type) can catch it; the parser's own check on the written result
  // type catches it in IR text, but not through Function::append.
  Function f("big");
  auto* x = f.add_param({DType::f32, Shape{2, 5, 5, 3}}, "x");
  auto* dy = f.add_param({DType::f32, Shape{2, 5, 5, 4}}, "dy");
  kiln::ir::Attrs attrs;
  attrs.set_ints("ksize", {int64_t{1} << 32, int64_t{1} << 32}).set_string("padding", "same");
  CHECK_THROWS_AS(f.append(kiln::ir::Op::conv2d_filter_grad, {x, dy}, attrs), kiln::Error);
}

TEST_CASE("a pad of a one-element tensor fused into a loop kernel pads",
          "[conv_edges][fusion][codegen]") {
  // fusion pulls the pad into add's loop kernel; every kernel input then has the result's
  // element count or one element, so KernelLoops::is_flat picks emit_flat, whose linear index
  // the pad's emitter reads as a 2-D one: s lands at element 1, not at the centre (4).
  Function f = kiln::ir::parse(R"(func @f(%s: f32[1,1], %z: f32[3,3]) -> f32[3,3] {
  %p = pad(%s) {paddings = [1, 1, 1, 1], value = 0.0} : f32[3,3]
  %r = add(%p, %z) : f32[3,3]
  return %r
})");
  HostTensor s(DType::f32, Shape{1, 1});
  s.data<float>()[0] = 5.0f;
  HostTensor z(DType::f32, Shape{3, 3});
  for (int64_t i = 0; i < 9; ++i)
    z.data<float>()[i] = 1.0f;
  const std::vector<HostTensor> args = {s, z};
  const HostTensor want = kiln::ir::evaluate(f, args).outputs.at(0);
  kiln::testing::check_same(compiled(f, args).at(0), want, 0.0);
}

// The last two crash the test program on 27e1645 (SIGSEGV, SIGFPE), so they come last.
TEST_CASE("the relu mask after a 3x3/1 'same' max-pool gradient compiles",
          "[conv_edges][fusion][codegen][pool]") {
  // A stride-1 'same' pool keeps the shape, so x, y and dy have dx's element count: the fused
  // kernel {max_pool2d_grad, greater, select} is 'flat' (emit_flat), and max_pool_grad reads
  // index[1..3] of a one-entry index: out-of-range vector reads, SIGSEGV while compiling.
  Function f = kiln::ir::parse(
      R"(func @f(%x: f32[2,8,8,4], %y: f32[2,8,8,4], %dy: f32[2,8,8,4]) -> f32[2,8,8,4] {
  %g = max_pool2d_grad(%x, %y, %dy) {ksize = [3, 3], padding = "same", strides = [1, 1]} : f32[2,8,8,4]
  %z = fill() {dtype = f32, shape = [], value = 0.0} : f32[]
  %m = greater(%x, %z) : bool[2,8,8,4]
  %r = select(%m, %g, %z) : f32[2,8,8,4]
  return %r
})");
  const kiln::ir::TensorType t{DType::f32, Shape{2, 8, 8, 4}};
  HostTensor x = kiln::testing::sample(t, 3, false);
  // y = max_pool2d(x) so that the routing is the real one.
  Function pool = kiln::ir::parse(R"(func @p(%x: f32[2,8,8,4]) -> f32[2,8,8,4] {
  %y = max_pool2d(%x) {ksize = [3, 3], padding = "same", strides = [1, 1]} : f32[2,8,8,4]
  return %y
})");
  const std::vector<HostTensor> pool_args = {x};
  HostTensor y = kiln::ir::evaluate(pool, pool_args).outputs.at(0);
  const std::vector<HostTensor> args = {x, y, kiln::testing::sample(t, 4, false)};
  const HostTensor want = kiln::ir::evaluate(f, args).outputs.at(0);
  kiln::testing::check_same(compiled(f, args).at(0), want, 0.0);
}

// Last: on 27e1645 this one dies of SIGFPE while compiling (Gemm's kc / conv->channels).
TEST_CASE("a conv2d with zero input channels compiles and gives zeros",
          "[conv_edges][codegen][gemm][conv]") {
  // gemm_handles takes it (y's 15376 elements × max(KH·KW·C, 1) ≥ kGemmMinWork), then the
  // Gemm constructor divides the schedule's kc by C = 0.
  Function f = kiln::ir::parse(R"(func @f(%x: f32[1,64,64,0], %w: f32[3,3,0,4]) -> f32[1,62,62,4] {
  %0 = conv2d(%x, %w) {padding = "valid"} : f32[1,62,62,4]
  return %0
})");
  const std::vector<HostTensor> args = {HostTensor(DType::f32, Shape{1, 64, 64, 0}),
                                        HostTensor(DType::f32, Shape{3, 3, 0, 4})};
  const HostTensor want = kiln::ir::evaluate(f, args).outputs.at(0);
  kiln::testing::check_same(compiled(f, args).at(0), want, 0.0);
}
