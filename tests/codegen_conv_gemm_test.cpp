// Differential tests of the implicit-GEMM convolutions (codegen/gemm.cpp) against the
// interpreter: conv2d (the micro-kernel reads window taps straight from the padded input: tiles
// within one output row take the kernel's own strided micro-kernel, others the gathering one)
// and conv2d_filter_grad (A panels packed from the padded input: panels within one tap are
// contiguous loads, others gathers), through the whole pass pipeline, for paddings, strides,
// dilations, channel counts below, at and across the micro-tile, f32 and f64, and a fused
// bias + relu epilogue.
#include "codegen_test_util.h"

#include <fmt/format.h>

#include "kiln/ir/infer.h"
#include "kiln/passes/pipeline.h"

using namespace kiln;
using ir::Attrs;
using ir::DType;
using ir::Op;
using ir::Shape;

namespace {

using testing::check_close;
using testing::uniform;

struct Geometry {
  Shape input, filter;
  std::string padding;
  std::vector<int64_t> strides, dilations;
  DType dtype = DType::f32;
};

Attrs window(const Geometry& g) {
  Attrs a;
  a.set_string("padding", g.padding)
      .set_ints("strides", g.strides)
      .set_ints("dilations", g.dilations);
  return a;
}

const Geometry kGeometries[] = {
    // Few channels, OW below the micro-tile: every tile gathers; filter-gradient panels span taps.
    {Shape{2, 9, 9, 3}, Shape{3, 3, 3, 20}, "same", {1, 1}, {1, 1}},
    // The tutorial convnet's second layer: OW = 14 rows per tile, strided micro-kernel.
    {Shape{3, 14, 14, 32}, Shape{5, 5, 32, 64}, "same", {1, 1}, {1, 1}},
    // Its first layer: one channel, OW = 28.
    {Shape{4, 28, 28, 1}, Shape{5, 5, 1, 32}, "same", {1, 1}, {1, 1}},
    // Strides and dilations that differ by axis, an odd column count, valid windows.
    {Shape{2, 29, 30, 5}, Shape{3, 2, 5, 33}, "valid", {2, 1}, {1, 2}},
    {Shape{1, 31, 31, 17}, Shape{3, 3, 17, 8}, "same", {2, 2}, {1, 1}},
    // Channels that fill one micro-tile and a bit: filter-gradient panels within and across
    // taps.
    {Shape{2, 16, 15, 15}, Shape{2, 3, 15, 16}, "same", {1, 1}, {2, 1}},
    {Shape{2, 15, 16, 6}, Shape{3, 3, 6, 40}, "same", {1, 1}, {1, 1}, DType::f64},
    // f64 (two vectors per panel column) with filter-gradient panels across two taps.
    {Shape{2, 9, 8, 20}, Shape{3, 3, 20, 12}, "same", {1, 1}, {1, 1}, DType::f64},
};

Shape infer_conv_shape(const Geometry& g) {
  const ir::TensorType operands[] = {{g.dtype, g.input}, {g.dtype, g.filter}};
  return ir::infer_types(Op::conv2d, operands, window(g))[0].shape;
}

std::string describe(const Geometry& g) {
  return fmt::format("input {} filter {} {} strides [{}, {}] dilations [{}, {}] {}",
                     g.input.to_string(), g.filter.to_string(), g.padding, g.strides[0],
                     g.strides[1], g.dilations[0], g.dilations[1], ir::dtype_name(g.dtype));
}

// Compiles `f` through the whole pipeline and checks every result against the interpreter;
// Every one of `markers` must appear in the generated code (the implicit GEMM's part body ran,
// and the epilogue when one is fused).
void check_pipeline(const ir::Function& f, const std::vector<ir::HostTensor>& args,
                    const std::vector<std::string>& markers, int64_t depth) {
  passes::PipelineResult planned = passes::run_pipeline(f.clone());
  auto module = codegen::compile_jit(planned.function, planned.kernels, planned.memory);
  for (const std::string& marker : markers)
    CHECK(module->llvm_ir().find(marker) != std::string::npos);
  std::vector<ir::HostTensor> got = testing::run_compiled(*module, planned.function, args);
  ir::EvalResult want = ir::evaluate(f, args);
  REQUIRE(got.size() == want.outputs.size());
  for (size_t i = 0; i < got.size(); ++i)
    check_close(got[i], want.outputs[i], depth);
}

}  // namespace

TEST_CASE("implicit-GEMM conv2d matches the interpreter", "[codegen][gemm][conv]") {
  uint32_t seed = 1;
  for (const Geometry& g : kGeometries) {
    INFO(describe(g));
    ir::Function f("conv");
    ir::Value* x = f.add_param({g.dtype, g.input});
    ir::Value* w = f.add_param({g.dtype, g.filter});
    f.set_outputs({f.append(Op::conv2d, {x, w}, window(g))->output()});
    check_pipeline(f, {uniform(g.dtype, g.input, seed), uniform(g.dtype, g.filter, seed + 1)},
                   {"_ua_conv("}, g.filter[0] * g.filter[1] * g.filter[2]);
    seed += 2;
  }
}

TEST_CASE("implicit-GEMM conv2d with a fused bias and relu", "[codegen][gemm][conv]") {
  const Geometry& g = kGeometries[1];
  ir::Function f("conv_bias_relu");
  ir::Value* x = f.add_param({g.dtype, g.input});
  ir::Value* w = f.add_param({g.dtype, g.filter});
  ir::Value* bias = f.add_param({g.dtype, Shape{g.filter[3]}});
  ir::Value* y = f.append(Op::conv2d, {x, w}, window(g))->output();
  y = f.append(Op::add, {y, bias})->output();
  f.set_outputs({f.append(Op::relu, {y})->output()});
  check_pipeline(f,
                 {uniform(g.dtype, g.input, 7), uniform(g.dtype, g.filter, 8),
                  uniform(g.dtype, Shape{g.filter[3]}, 9)},
                 {"_ua_conv(", "_epilogue("}, g.filter[0] * g.filter[1] * g.filter[2]);
}

TEST_CASE("implicit-GEMM conv2d_filter_grad matches the interpreter", "[codegen][gemm][conv]") {
  uint32_t seed = 100;
  for (const Geometry& g : kGeometries) {
    INFO(describe(g));
    const Shape dy_shape = infer_conv_shape(g);
    ir::Function f("filter_grad");
    ir::Value* x = f.add_param({g.dtype, g.input});
    ir::Value* dy = f.add_param({g.dtype, dy_shape});
    Attrs attrs = window(g);
    attrs.set_ints("ksize", {g.filter[0], g.filter[1]});
    f.set_outputs({f.append(Op::conv2d_filter_grad, {x, dy}, std::move(attrs))->output()});
    check_pipeline(f, {uniform(g.dtype, g.input, seed), uniform(g.dtype, dy_shape, seed + 1)},
                   {"_ta_patches("}, dy_shape[0] * dy_shape[1] * dy_shape[2]);
    seed += 2;
  }
}

TEST_CASE("conv2d_filter_grad rejects operands that do not fit", "[codegen][conv][errors]") {
  ir::Function f("bad");
  ir::Value* x = f.add_param({DType::f32, Shape{2, 8, 8, 3}});
  ir::Value* dy = f.add_param({DType::f32, Shape{2, 7, 8, 4}});  // "same" would give 8×8
  Attrs attrs;
  attrs.set_string("padding", "same").set_ints("ksize", {3, 3});
  CHECK_THROWS_AS(f.append(Op::conv2d_filter_grad, {x, dy}, attrs), ShapeError);
  ir::Value* dy_int = f.add_param({DType::i32, Shape{2, 8, 8, 4}});
  CHECK_THROWS_AS(f.append(Op::conv2d_filter_grad, {x, dy_int}, attrs), TypeError);
  Attrs no_ksize;
  no_ksize.set_string("padding", "same");
  ir::Value* dy_ok = f.add_param({DType::f32, Shape{2, 8, 8, 4}});
  CHECK_THROWS_AS(f.append(Op::conv2d_filter_grad, {x, dy_ok}, no_ksize), ValueError);
}
