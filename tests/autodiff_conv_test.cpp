// Gradients of conv2d (input and filter), max_pool2d and avg_pool2d: central finite differences
// in f64 over strides, dilations, paddings and sizes the stride does not divide; hand-computed
// values for pool tie-breaking and averaging counts; second derivatives through the gradient
// graphs; and the gradient graphs compiled and run against the interpreter.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "codegen_test_util.h"
#include "grad_check_util.h"
#include "kiln/ir/printer.h"
#include "kiln/passes/pipeline.h"

using namespace kiln::testing;

namespace {

struct ConvCase {
  Shape x, w;
  std::vector<int64_t> strides, dilations;
  std::string padding;
};

Function conv_function(const ConvCase& c, DType dtype = DType::f64) {
  Function f("conv");
  kiln::ir::Value* x = f.add_param({dtype, c.x}, "x");
  kiln::ir::Value* w = f.add_param({dtype, c.w}, "w");
  Attrs attrs;
  attrs.set_ints("strides", c.strides)
      .set_ints("dilations", c.dilations)
      .set_string("padding", c.padding);
  f.set_outputs({f.append(Op::conv2d, {x, w}, attrs)->output()});
  return f;
}

struct PoolCase {
  Shape x;
  std::vector<int64_t> ksize, strides;
  std::string padding;
};

Function pool_function(Op op, const PoolCase& c, DType dtype = DType::f64) {
  Function f("pool");
  kiln::ir::Value* x = f.add_param({dtype, c.x}, "x");
  Attrs attrs;
  attrs.set_ints("ksize", c.ksize).set_ints("strides", c.strides).set_string("padding", c.padding);
  f.set_outputs({f.append(op, {x}, attrs)->output()});
  return f;
}

// The gradient of reduce_sum(f's output) with respect to f's one parameter, evaluated at x.
std::vector<double> gradient_of_sum(Function f, const HostTensor& x) {
  kiln::passes::differentiate(f);
  f.set_outputs({f.outputs().at(1)});
  HostTensor g = kiln::ir::evaluate(f, {&x, 1}).outputs.at(0);
  return {g.data<double>(), g.data<double>() + g.num_elements()};
}

HostTensor image(Shape shape, std::vector<double> values) {
  return HostTensor::from_values<double>(std::move(shape), values);
}

}  // namespace

TEST_CASE("conv2d gradients match finite differences", "[autodiff][conv2d]") {
  const std::vector<ConvCase> cases = {
      {{2, 5, 5, 2}, {3, 3, 2, 3}, {1, 1}, {1, 1}, "same"},
      {{2, 5, 5, 2}, {3, 3, 2, 2}, {1, 1}, {1, 1}, "valid"},
      // Stride 2: 5 and 4 rows; the last column is never read with "valid".
      {{2, 5, 4, 2}, {3, 3, 2, 2}, {2, 2}, {1, 1}, "valid"},
      {{2, 5, 4, 2}, {3, 3, 2, 2}, {2, 2}, {1, 1}, "same"},
      // An even kernel: "same" pads one more at the end.
      {{1, 6, 5, 3}, {2, 3, 3, 2}, {2, 1}, {1, 1}, "same"},
      {{1, 7, 5, 3}, {2, 3, 3, 2}, {2, 1}, {1, 1}, "valid"},
      // Dilations.
      {{1, 7, 7, 1}, {3, 3, 1, 2}, {1, 1}, {2, 2}, "same"},
      {{1, 7, 6, 2}, {2, 3, 2, 2}, {1, 1}, {2, 2}, "valid"},
      {{1, 7, 6, 2}, {2, 3, 2, 2}, {2, 2}, {2, 2}, "valid"},
      {{1, 6, 7, 2}, {3, 2, 2, 2}, {2, 1}, {1, 2}, "same"},
      // 1x1 kernels, with and without strides.
      {{2, 4, 5, 3}, {1, 1, 3, 2}, {1, 1}, {1, 1}, "same"},
      {{2, 4, 5, 3}, {1, 1, 3, 2}, {2, 2}, {1, 1}, "same"},
      {{2, 5, 5, 3}, {1, 1, 3, 2}, {3, 2}, {1, 1}, "valid"},
      // A stride larger than the kernel skips rows and columns.
      {{1, 7, 7, 2}, {2, 2, 2, 2}, {3, 3}, {1, 1}, "valid"},
      {{1, 7, 8, 2}, {2, 2, 2, 1}, {3, 3}, {1, 1}, "same"},
  };
  for (const ConvCase& c : cases) {
    std::string text = kiln::ir::print(conv_function(c));
    INFO(text);
    check_gradients(text, {random_f64(c.x, 1), random_f64(c.w, 2)});
  }
}

// Windows for both pools: ksize 2, 3 and 2×3; strides 1 to 3; sizes the stride does not divide.
const std::vector<PoolCase> kPoolCases = {
    {{2, 5, 5, 2}, {2, 2}, {2, 2}, "same"},  {{2, 5, 5, 2}, {2, 2}, {2, 2}, "valid"},
    {{1, 5, 6, 2}, {3, 3}, {1, 1}, "same"},  {{1, 5, 6, 2}, {3, 3}, {1, 1}, "valid"},
    {{1, 7, 8, 2}, {3, 3}, {2, 2}, "same"},  {{1, 7, 8, 2}, {3, 3}, {3, 3}, "valid"},
    {{1, 8, 7, 2}, {3, 3}, {3, 3}, "same"},  {{2, 6, 5, 1}, {2, 3}, {1, 3}, "same"},
    {{1, 7, 7, 1}, {2, 2}, {3, 3}, "valid"},
};

TEST_CASE("max_pool2d gradient matches finite differences", "[autodiff][pool]") {
  for (const PoolCase& c : kPoolCases) {
    std::string text = kiln::ir::print(pool_function(Op::max_pool2d, c));
    INFO(text);
    // All inputs below zero, so padded positions would be larger than every real element.
    check_gradients(text, {random_f64(c.x, 3, -3.0, -1.0)});
  }
}

TEST_CASE("avg_pool2d gradient matches finite differences", "[autodiff][pool]") {
  for (const PoolCase& c : kPoolCases) {
    std::string text = kiln::ir::print(pool_function(Op::avg_pool2d, c));
    INFO(text);
    check_gradients(text, {random_f64(c.x, 4)});
  }
}

TEST_CASE("max_pool2d sends a tied window's gradient to its first maximum only",
          "[autodiff][pool]") {
  // One 2x2 window of equal values: all of dy goes to the top-left element.
  CHECK(gradient_of_sum(pool_function(Op::max_pool2d, {{1, 2, 2, 1}, {2, 2}, {2, 2}, "valid"}),
                        image({1, 2, 2, 1}, {5, 5, 5, 5})) == std::vector<double>{1, 0, 0, 0});
  // Overlapping 2x2 windows over a constant 3x3 image: each window picks its own top-left.
  CHECK(gradient_of_sum(pool_function(Op::max_pool2d, {{1, 3, 3, 1}, {2, 2}, {1, 1}, "valid"}),
                        image({1, 3, 3, 1}, std::vector<double>(9, 2.0))) ==
        std::vector<double>{1, 1, 0, 1, 1, 0, 0, 0, 0});
  // Ties between the second row and a later one: the earlier row wins.
  CHECK(gradient_of_sum(pool_function(Op::max_pool2d, {{1, 3, 2, 1}, {2, 2}, {2, 2}, "same"}),
                        image({1, 3, 2, 1}, {-4, -3, -1, -1, -1, -2})) ==
        std::vector<double>{0, 0, 1, 0, 1, 0});
  // Padding never takes the gradient, not even when a window's maximum is 0 and the padded
  // position comes first in it: windows (pad, 0, -1), (0, -1, -2), (-1, -2, pad).
  CHECK(gradient_of_sum(pool_function(Op::max_pool2d, {{1, 1, 3, 1}, {1, 3}, {1, 1}, "same"}),
                        image({1, 1, 3, 1}, {0, -1, -2})) == std::vector<double>{2, 1, 0});
}

TEST_CASE("avg_pool2d divides by the number of real elements in each window", "[autodiff][pool]") {
  // 3x3 with 2x2 windows, stride 2, "same": the windows hold 4, 2, 2 and 1 real elements.
  CHECK(gradient_of_sum(pool_function(Op::avg_pool2d, {{1, 3, 3, 1}, {2, 2}, {2, 2}, "same"}),
                        image({1, 3, 3, 1}, std::vector<double>(9, 7.0))) ==
        std::vector<double>{0.25, 0.25, 0.5, 0.25, 0.25, 0.5, 0.5, 0.5, 1.0});
  // 3x3 windows at stride 1 over 3x3, "same": corners count 4, edges 6, the centre 9; element
  // (r, c) collects 1/count from every window that holds it.
  std::vector<double> g =
      gradient_of_sum(pool_function(Op::avg_pool2d, {{1, 3, 3, 1}, {3, 3}, {1, 1}, "same"}),
                      image({1, 3, 3, 1}, std::vector<double>(9, 1.0)));
  const double corner = 1.0 / 4 + 2.0 / 6 + 1.0 / 9;
  const double edge = 2.0 / 4 + 3.0 / 6 + 1.0 / 9;
  const double centre = 4.0 / 4 + 4.0 / 6 + 1.0 / 9;
  const std::vector<double> want = {corner, edge, corner, edge, centre, edge, corner, edge, corner};
  for (size_t i = 0; i < want.size(); ++i)
    CHECK(g[i] == Approx(want[i]));
}

namespace {

// f with its output squared, differentiated (passes::differentiate), keeping only the gradient
// with respect to parameter `which`: a function of all of f's parameters, as text.
std::string gradient_text(Function f, size_t which) {
  kiln::ir::Value* y = f.outputs().at(0);
  f.set_outputs({f.append(Op::mul, {y, y})->output()});
  kiln::passes::differentiate(f);
  f.set_outputs({f.outputs().at(1 + which)});
  return kiln::ir::print(f);
}

}  // namespace

TEST_CASE("the conv2d and pool gradients are differentiable again", "[autodiff][conv2d]") {
  const ConvCase conv = {{1, 5, 4, 2}, {3, 2, 2, 2}, {2, 1}, {1, 2}, "same"};
  for (size_t which : {0, 1}) {
    std::string text = gradient_text(conv_function(conv), which);
    INFO(text);
    check_gradients(text, {random_f64(conv.x, 5), random_f64(conv.w, 6)}, 1e-6, 1e-5);
  }
  const PoolCase pool = {{1, 5, 4, 2}, {2, 3}, {2, 1}, "same"};
  for (Op op : {Op::max_pool2d, Op::avg_pool2d}) {
    std::string text = gradient_text(pool_function(op, pool), 0);
    INFO(text);
    check_gradients(text, {random_f64(pool.x, 7)}, 1e-6, 1e-5);
  }
}

TEST_CASE("compiled conv2d and pool gradients match the interpreter", "[autodiff][codegen]") {
  const ConvCase conv = {{2, 7, 6, 3}, {3, 2, 3, 4}, {2, 1}, {1, 2}, "same"};
  const ConvCase conv_valid = {{2, 7, 6, 3}, {2, 3, 3, 2}, {2, 2}, {1, 1}, "valid"};
  const PoolCase pool = {{2, 7, 6, 3}, {3, 2}, {2, 2}, "same"};
  const PoolCase pool_valid = {{2, 7, 6, 3}, {3, 3}, {3, 2}, "valid"};
  for (DType dtype : {DType::f32, DType::f64}) {
    std::vector<Function> functions;
    functions.push_back(conv_function(conv, dtype));
    functions.push_back(conv_function(conv_valid, dtype));
    for (Op op : {Op::max_pool2d, Op::avg_pool2d}) {
      functions.push_back(pool_function(op, pool, dtype));
      functions.push_back(pool_function(op, pool_valid, dtype));
    }
    for (Function& f : functions) {
      kiln::passes::differentiate(f);
      std::vector<HostTensor> args;
      for (size_t i = 0; i < f.params().size(); ++i)
        args.push_back(sample(f.param(i)->type(), uint32_t(10 + i), false));
      INFO(kiln::ir::print(f));
      // f64: one kernel per node; f32: the optimized, fused pipeline.
      if (dtype == DType::f64) {
        check_against_interpreter(f, args, 1e-5);
        continue;
      }
      kiln::passes::PipelineResult r =
          kiln::passes::run_pipeline(kiln::ir::parse(kiln::ir::print(f)));
      check_against_interpreter(r.function, Plans{std::move(r.kernels), std::move(r.memory)}, args,
                                1e-5);
    }
  }
}
