// max_pool2d_grad, the op max_pool2d's gradient rule emits: its values against the composition
// it replaced (per tap a strided slice of the NaN-padded input, equal, select, spread and pad,
// summed; rebuilt below from the gradient builder's ops) over window shapes, ties, NaN and ±inf,
// in the interpreter and compiled; its own gradient against that composition's and against
// finite differences; and its shape rule's errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "codegen_test_util.h"
#include "grad_check_util.h"
#include "kiln/ir/infer.h"
#include "kiln/ir/ops/window.h"
#include "kiln/ir/printer.h"
#include "kiln/passes/grad_builder.h"
#include "kiln/passes/pipeline.h"

using namespace kiln::testing;
using Catch::Matchers::Contains;
using kiln::ir::Value;

namespace {

namespace grad = kiln::passes::grad;

struct PoolCase {
  Shape x;
  std::vector<int64_t> ksize, strides;
  std::string padding;
};

// 2x2/2 valid (the tutorial convnet's), overlapping windows (3x3/2 and 3x3/1 same), sizes the
// stride does not divide, stride above the kernel (positions no window reads), 1x1 and a window
// as large as the input.
const std::vector<PoolCase> kCases = {
    {{2, 6, 6, 3}, {2, 2}, {2, 2}, "valid"}, {{2, 7, 7, 3}, {3, 3}, {2, 2}, "same"},
    {{1, 6, 5, 2}, {3, 3}, {1, 1}, "same"},  {{2, 7, 5, 3}, {2, 3}, {2, 1}, "valid"},
    {{1, 9, 8, 2}, {2, 2}, {3, 3}, "same"},  {{1, 5, 7, 2}, {1, 1}, {2, 2}, "valid"},
    {{1, 5, 4, 3}, {5, 4}, {1, 1}, "valid"}, {{2, 5, 5, 1}, {3, 2}, {1, 2}, "same"},
    {{1, 7, 6, 2}, {2, 2}, {2, 2}, "same"},
};

Attrs pool_attrs(const PoolCase& c) {
  Attrs a;
  a.set_ints("ksize", c.ksize).set_ints("strides", c.strides).set_string("padding", c.padding);
  return a;
}

Shape pooled_shape(const PoolCase& c) {
  TensorType x{DType::f32, c.x};
  return kiln::ir::infer_types(Op::max_pool2d, {&x, 1}, pool_attrs(c))[0].shape;
}

// Grows `x` along `axis` by `before` and `after` elements of `value`; negative amounts cut.
grad::V resize(grad::V x, int64_t axis, int64_t before, int64_t after, double value = 0.0) {
  std::vector<int64_t> paddings(2 * x.rank(), 0);
  paddings[2 * axis] = std::max<int64_t>(before, 0);
  paddings[2 * axis + 1] = std::max<int64_t>(after, 0);
  x = grad::pad(x, paddings, value);
  if (before >= 0 && after >= 0) return x;
  std::vector<int64_t> begin(x.rank(), 0), end = x.shape().dims(), strides(x.rank(), 1);
  if (before < 0) begin[axis] = -before;
  if (after < 0) end[axis] += after;
  return grad::slice(x, begin, end, strides);
}

// The composition max_pool2d's rule built before max_pool2d_grad existed, verbatim.
grad::V old_rule(grad::V x, grad::V y, grad::V dy, const Attrs& attrs) {
  kiln::ir::Window2D win = kiln::ir::pool_window(x.shape(), attrs);
  const Shape& s = x.shape();
  const int64_t n = s[0], ch = s[3], oh = win.h.out, ow = win.w.out;
  const int64_t extent_h = (oh - 1) * win.h.stride + win.h.kernel;
  const int64_t extent_w = (ow - 1) * win.w.stride + win.w.kernel;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  grad::V xp = resize(x, 1, win.h.pad_before, extent_h - win.h.pad_before - s[1], nan);
  xp = resize(xp, 2, win.w.pad_before, extent_w - win.w.pad_before - s[2], nan);
  grad::V zero = grad::zeros_like(dy), rest = dy, sum;
  for (int64_t i = 0; i < win.h.kernel; ++i) {
    for (int64_t j = 0; j < win.w.kernel; ++j) {
      grad::V tap =
          grad::slice(xp, {0, i, j, 0},
                      {n, i + (oh - 1) * win.h.stride + 1, j + (ow - 1) * win.w.stride + 1, ch},
                      {1, win.h.stride, win.w.stride, 1});
      grad::V hit = grad::equal(tap, y);
      grad::V g = grad::select(hit, rest, zero);
      g = grad::spread_out(grad::spread_out(g, 1, win.h.stride), 2, win.w.stride);
      grad::V part = grad::pad(
          g, {0, 0, i, extent_h - i - g.shape()[1], j, extent_w - j - g.shape()[2], 0, 0});
      sum = sum ? sum + part : part;
      if (i + 1 < win.h.kernel || j + 1 < win.w.kernel) rest = grad::select(hit, zero, rest);
    }
  }
  grad::V dx = resize(sum, 1, -win.h.pad_before, s[1] + win.h.pad_before - extent_h);
  return resize(dx, 2, -win.w.pad_before, s[2] + win.w.pad_before - extent_w);
}

// @f(x, dy) -> dx for y = max_pool2d(x): through the new op, or through the old composition.
Function grad_function(const PoolCase& c, DType dtype, bool old) {
  Function f(old ? "old_rule" : "max_pool2d_grad");
  Value* x = f.add_param({dtype, c.x}, "x");
  Value* dy = f.add_param({dtype, pooled_shape(c)}, "dy");
  Value* y = f.append(Op::max_pool2d, {x}, pool_attrs(c))->output();
  if (old) {
    grad::Builder b(f);
    f.set_outputs({old_rule(b.wrap(x), b.wrap(y), b.wrap(dy), pool_attrs(c)).value});
  } else {
    f.set_outputs({f.append(Op::max_pool2d_grad, {x, y, dy}, pool_attrs(c))->output()});
  }
  return f;
}

// Values drawn from `values` (with `seed`), so that windows hold ties and specials.
HostTensor drawn(DType dtype, const Shape& shape, const std::vector<double>& values,
                 uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<double> v(static_cast<size_t>(shape.num_elements()));
  for (double& e : v)
    e = values[gen() % values.size()];
  HostTensor t(dtype, shape);
  kiln::ir::visit_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_floating_point_v<T>) {
      for (size_t i = 0; i < v.size(); ++i)
        t.data<T>()[i] = static_cast<T>(v[i]);
    }
  });
  return t;
}

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Inputs for one case: distinct random values; few values (ties everywhere); ties with NaN,
// ±inf and ±0 among them. dy random, once with NaN and inf in it.
std::vector<std::vector<HostTensor>> input_sets(const PoolCase& c, DType dtype) {
  const Shape dy = pooled_shape(c);
  std::vector<std::vector<HostTensor>> sets;
  sets.push_back({sample({dtype, c.x}, 1, false), sample({dtype, dy}, 2, false)});
  sets.push_back({drawn(dtype, c.x, {-1, 0, 1, 2}, 3), sample({dtype, dy}, 4, false)});
  sets.push_back({drawn(dtype, c.x, {kNan, kInf, -kInf, -0.0, 0.0, 1.5, 1.5, -2, 3e9}, 5),
                  sample({dtype, dy}, 6, false)});
  sets.push_back({drawn(dtype, c.x, {-kInf, -kInf, -kInf, 7}, 7),
                  drawn(dtype, dy, {kNan, kInf, 0.5, -1.25, 3, -0.0}, 8)});
  sets.push_back({sample({dtype, c.x}, 9, true), sample({dtype, dy}, 10, true)});
  return sets;
}

// Equal values (NaN equals NaN; +0 equals −0), element by element.
void check_equal(const HostTensor& got, const HostTensor& want) {
  REQUIRE(got.type() == want.type());
  int bad = 0;
  for (int64_t i = 0; i < want.num_elements() && bad < 5; ++i) {
    const double g = got.element_as_double(i), w = want.element_as_double(i);
    if (!(g == w || (std::isnan(g) && std::isnan(w)))) {
      ++bad;
      FAIL_CHECK("element " << i << ": got " << g << ", want " << w);
    }
  }
}

HostTensor only_output(const Function& f, const std::vector<HostTensor>& args) {
  return kiln::ir::evaluate(f, args).outputs.at(0);
}

}  // namespace

TEST_CASE("max_pool2d_grad equals the composition it replaced", "[autodiff][pool]") {
  for (const PoolCase& c : kCases) {
    for (DType dtype : {DType::f32, DType::f64}) {
      Function now = grad_function(c, dtype, false);
      Function old = grad_function(c, dtype, true);
      INFO(kiln::ir::print(now));
      for (const auto& args : input_sets(c, dtype))
        check_equal(only_output(now, args), only_output(old, args));
    }
  }
}

TEST_CASE("max_pool2d_grad by hand: first maximum, overlaps, padding, NaN", "[autodiff][pool]") {
  auto dx = [](const PoolCase& c, std::vector<double> x, std::vector<double> dy) {
    Function f = grad_function(c, DType::f64, false);
    HostTensor g =
        only_output(f, {tensor_of(DType::f64, c.x, x), tensor_of(DType::f64, pooled_shape(c), dy)});
    return values_of(g);
  };
  // A tie: the top-left of the window takes it all.
  CHECK(dx({{1, 2, 2, 1}, {2, 2}, {2, 2}, "valid"}, {5, 5, 5, 5}, {3}) ==
        std::vector<double>{3, 0, 0, 0});
  // 2x2 windows at stride 1 over a 3x3 with its maximum in the centre: all four route there.
  CHECK(dx({{1, 3, 3, 1}, {2, 2}, {1, 1}, "valid"}, {0, 0, 0, 0, 9, 0, 0, 0, 0}, {1, 2, 4, 8}) ==
        std::vector<double>{0, 0, 0, 0, 15, 0, 0, 0, 0});
  // "same" 1x3 windows (pad, 0, -1), (0, -1, -2), (-1, -2, pad): padding never wins.
  CHECK(dx({{1, 1, 3, 1}, {1, 3}, {1, 1}, "same"}, {0, -1, -2}, {1, 10, 100}) ==
        std::vector<double>{11, 100, 0});
  // A window holding NaN has a NaN maximum, which equals nothing: its dy goes nowhere.
  std::vector<double> g =
      dx({{1, 2, 4, 1}, {2, 2}, {2, 2}, "valid"}, {1, kNan, 4, 3, 2, 0, 3, 4}, {5, 7});
  CHECK(g == std::vector<double>{0, 0, 7, 0, 0, 0, 0, 0});
  // An all −inf window routes to its first element; +inf wins over finite values.
  CHECK(dx({{1, 2, 4, 1}, {2, 2}, {2, 2}, "valid"}, {-kInf, -kInf, 1, kInf, -kInf, -kInf, kInf, 2},
           {5, 7}) == std::vector<double>{5, 0, 0, 7, 0, 0, 0, 0});
}

TEST_CASE("compiled max_pool2d_grad matches the interpreter and the old composition",
          "[autodiff][codegen][pool]") {
  for (const PoolCase& c : kCases) {
    for (DType dtype : {DType::f32, DType::f64}) {
      Function now = grad_function(c, dtype, false);
      Function old = grad_function(c, dtype, true);
      INFO(kiln::ir::print(now));
      const auto sets = input_sets(c, dtype);
      // One kernel per node, and the optimized pipeline.
      auto module =
          kiln::codegen::compile_jit(now, simple_plans(now).kernels, simple_plans(now).memory);
      kiln::passes::PipelineResult r =
          kiln::passes::run_pipeline(kiln::ir::parse(kiln::ir::print(now)));
      auto optimized = kiln::codegen::compile_jit(r.function, r.kernels, r.memory);
      for (const auto& args : sets) {
        const HostTensor want = only_output(old, args);
        check_equal(only_output(now, args), want);
        check_equal(run_compiled(*module, now, args).at(0), want);
        check_equal(run_compiled(*optimized, r.function, args).at(0), want);
      }
    }
  }
}

TEST_CASE("a convnet-sized max_pool2d_grad is one kernel and matches the old composition",
          "[autodiff][codegen][pool]") {
  // The tutorial convnet's shape class: enough elements for the parallel loops.
  const PoolCase c = {{8, 28, 28, 16}, {2, 2}, {2, 2}, "valid"};
  Function now = grad_function(c, DType::f32, false);
  Function old = grad_function(c, DType::f32, true);
  kiln::passes::PipelineResult r =
      kiln::passes::run_pipeline(kiln::ir::parse(kiln::ir::print(now)));
  int grads = 0;
  for (const auto& k : r.kernels.kernels) {
    for (const kiln::ir::Node* node : k.nodes)
      grads += node->op() == Op::max_pool2d_grad ? 1 : 0;
  }
  CHECK(grads == 1);
  auto module = kiln::codegen::compile_jit(r.function, r.kernels, r.memory);
  const std::vector<HostTensor> args = {drawn(DType::f32, c.x, {-1, 0, 1, 2, 3, 4, 5}, 11),
                                        sample({DType::f32, pooled_shape(c)}, 12, false)};
  check_equal(run_compiled(*module, r.function, args).at(0), only_output(old, args));
}

TEST_CASE("max_pool2d's gradient still matches finite differences through a model",
          "[autodiff][gradcheck][pool]") {
  // conv2d → tanh → 3x3/2 "same" max pool → 2x2/2 "valid" max pool; gradients of x and w.
  Function f("model");
  Value* x = f.add_param({DType::f64, Shape{2, 9, 9, 2}}, "x");
  Value* w = f.add_param({DType::f64, Shape{2, 2, 2, 3}}, "w");
  Attrs conv;
  conv.set_ints("strides", {1, 1}).set_string("padding", "same");
  Value* h = f.append(Op::conv2d, {x, w}, conv)->output();
  h = f.append(Op::tanh, {h})->output();
  h = f.append(Op::max_pool2d, {h}, pool_attrs({{}, {3, 3}, {2, 2}, "same"}))->output();
  h = f.append(Op::max_pool2d, {h}, pool_attrs({{}, {2, 2}, {2, 2}, "valid"}))->output();
  f.set_outputs({h});
  check_gradients(kiln::ir::print(f), {random_f64({2, 9, 9, 2}, 21), random_f64({2, 2, 2, 3}, 22)},
                  1e-6, 1e-5);
}

namespace {

// The gradient with respect to dy of Σ w·dx, for dx = max_pool2d_grad (or the old composition)
// of y = max_pool2d(x) with x a constant, as a function of dy and w.
Function second_order(const PoolCase& c, const HostTensor& x, bool old) {
  Function f("second");
  Value* dy = f.add_param({DType::f64, pooled_shape(c)}, "dy");
  Value* w = f.add_param({DType::f64, c.x}, "w");
  Attrs value;
  value.set_tensor("value", x);
  Value* xc = f.append(Op::constant, {}, value)->output();
  Value* y = f.append(Op::max_pool2d, {xc}, pool_attrs(c))->output();
  Value* dx;
  if (old) {
    grad::Builder b(f);
    dx = old_rule(b.wrap(xc), b.wrap(y), b.wrap(dy), pool_attrs(c)).value;
  } else {
    dx = f.append(Op::max_pool2d_grad, {xc, y, dy}, pool_attrs(c))->output();
  }
  Value* wdx = f.append(Op::mul, {dx, w})->output();
  Attrs all;
  all.set_ints("axes", {0, 1, 2, 3});
  f.set_outputs({f.append(Op::reduce_sum, {wdx}, all)->output()});
  kiln::passes::differentiate(f);
  f.set_outputs({f.outputs().at(1)});
  return f;
}

}  // namespace

TEST_CASE("max_pool2d_grad's gradient equals the old composition's, ties and NaN included",
          "[autodiff][pool]") {
  for (const PoolCase& c : kCases) {
    for (const std::vector<double>& values :
         {std::vector<double>{-1, 0, 1, 2}, std::vector<double>{kNan, kInf, -kInf, 0.0, -0.0, 1}}) {
      const HostTensor x = drawn(DType::f64, c.x, values, 31);
      Function now = second_order(c, x, false);
      Function old = second_order(c, x, true);
      INFO(kiln::ir::print(now));
      const std::vector<HostTensor> args = {random_f64(pooled_shape(c), 32), random_f64(c.x, 33)};
      check_equal(only_output(now, args), only_output(old, args));
      // And compiled, through the optimizing pipeline.
      kiln::passes::PipelineResult r =
          kiln::passes::run_pipeline(kiln::ir::parse(kiln::ir::print(now)));
      check_against_interpreter(r.function, Plans{std::move(r.kernels), std::move(r.memory)}, args,
                                0.0);
    }
  }
}

TEST_CASE("max_pool2d's gradient is differentiable again", "[autodiff][gradcheck][pool]") {
  // The gradient of Σ max_pool2d(x)² is 2·max_pool2d_grad(x, y, y): its own gradient goes
  // through y (dy) only, which finite differences see too (inputs without ties).
  for (const PoolCase& c : {PoolCase{{1, 5, 5, 2}, {3, 3}, {2, 2}, "same"},
                            PoolCase{{1, 6, 4, 1}, {2, 2}, {2, 2}, "valid"},
                            PoolCase{{1, 4, 5, 1}, {3, 3}, {1, 1}, "same"}}) {
    Function f("f");
    Value* x = f.add_param({DType::f64, c.x}, "x");
    Value* y = f.append(Op::max_pool2d, {x}, pool_attrs(c))->output();
    f.set_outputs({f.append(Op::mul, {y, y})->output()});
    kiln::passes::differentiate(f);
    f.set_outputs({f.outputs().at(1)});
    const std::string text = kiln::ir::print(f);
    INFO(text);
    CHECK(text.find("max_pool2d_grad") != std::string::npos);
    check_gradients(text, {random_f64(c.x, 41, -3.0, -1.0)}, 1e-6, 1e-5);
  }
  // Linear in dy whatever x holds, so finite differences in dy hold at ties too.
  const PoolCase c = {{1, 5, 5, 2}, {3, 3}, {1, 1}, "same"};
  Function f("f");
  Attrs value;
  value.set_tensor("value", drawn(DType::f64, c.x, {-1, 0, 1}, 42));
  Value* x = f.append(Op::constant, {}, value)->output();
  Value* dy = f.add_param({DType::f64, pooled_shape(c)}, "dy");
  Value* y = f.append(Op::max_pool2d, {x}, pool_attrs(c))->output();
  f.set_outputs({f.append(Op::max_pool2d_grad, {x, y, dy}, pool_attrs(c))->output()});
  check_gradients(kiln::ir::print(f), {random_f64(pooled_shape(c), 43)});
}

TEST_CASE("max_pool2d_grad rejects bad operands", "[autodiff][pool]") {
  const PoolCase c = {{2, 6, 6, 3}, {2, 2}, {2, 2}, "valid"};
  auto infer = [&](std::vector<TensorType> inputs, const Attrs& attrs) {
    return kiln::ir::infer_types(Op::max_pool2d_grad, inputs, attrs);
  };
  const TensorType x{DType::f32, c.x}, y{DType::f32, {2, 3, 3, 3}};
  CHECK(infer({x, y, y}, pool_attrs(c)) == std::vector<TensorType>{x});
  CHECK_THROWS_AS(infer({x, {DType::f32, {2, 3, 3, 2}}, y}, pool_attrs(c)), kiln::ShapeError);
  CHECK_THROWS_WITH(infer({x, {DType::f32, {2, 3, 3, 2}}, y}, pool_attrs(c)),
                    Contains("max_pool2d_grad") &&
                        Contains("y must have the pool's result shape") &&
                        Contains("(2, 3, 3, 3)"));
  CHECK_THROWS_WITH(infer({x, y, {DType::f32, {2, 4, 4, 3}}}, pool_attrs(c)),
                    Contains("dy must have the pool's result shape"));
  CHECK_THROWS_AS(infer({x, y, {DType::f64, {2, 3, 3, 3}}}, pool_attrs(c)), kiln::TypeError);
  CHECK_THROWS_WITH(infer({x, y, {DType::f64, {2, 3, 3, 3}}}, pool_attrs(c)),
                    Contains("dy must have the dtype of x (f32), got f64"));
  CHECK_THROWS_AS(infer({{DType::i32, c.x}, {DType::i32, {2, 3, 3, 3}}, {DType::i32, {2, 3, 3, 3}}},
                        pool_attrs(c)),
                  kiln::TypeError);
  CHECK_THROWS_AS(infer({{DType::f32, {6, 6, 3}}, y, y}, pool_attrs(c)), kiln::ShapeError);
  CHECK_THROWS_AS(infer({x, y}, pool_attrs(c)), kiln::Error);
  Attrs no_ksize;
  no_ksize.set_ints("strides", {2, 2}).set_string("padding", "valid");
  CHECK_THROWS_AS(infer({x, y, y}, no_ksize), kiln::Error);
  // Through a function, the verifier reports it too.
  Function f("bad");
  Value* px = f.add_param(x, "x");
  Value* py = f.add_param({DType::f32, {2, 2, 2, 3}}, "y");
  CHECK_THROWS_AS(f.append(Op::max_pool2d_grad, {px, py, py}, pool_attrs(c)), kiln::ShapeError);
}

TEST_CASE("a fused max_pool2d_grad never writes its result over the x it still reads",
          "[autodiff][codegen][pool]") {
  // x = abs(p) dies in the kernel that fuses the gradient with a multiply, whose result stays in
  // the workspace (a transpose reads it): an elementwise kernel could take x's block for its
  // result, but the gradient reads x at the window's other taps. All of p's magnitudes are
  // equal, so every tap ties and only the first may take dy.
  Function f = kiln::ir::parse(R"(func @f(%p: f32[4,8,8,16], %dy: f32[4,4,4,16]) -> f32[4,8,8,16] {
  %x = abs(%p) : f32[4,8,8,16]
  %y = max_pool2d(%x) {ksize = [2, 2], padding = "valid", strides = [2, 2]} : f32[4,4,4,16]
  %g = max_pool2d_grad(%x, %y, %dy) {ksize = [2, 2], padding = "valid", strides = [2, 2]} : f32[4,8,8,16]
  %r = mul(%g, %g) : f32[4,8,8,16]
  %t = transpose(%r) {perm = [0, 2, 1, 3]} : f32[4,8,8,16]
  return %t
})");
  kiln::passes::PipelineResult r = kiln::passes::run_pipeline(f.clone());
  for (const auto& [out, in] : r.memory.in_place)
    CHECK(in->type().shape != kiln::ir::Shape{4, 8, 8, 16});
  auto module = kiln::codegen::compile_jit(r.function, r.kernels, r.memory);
  HostTensor p(DType::f32, kiln::ir::Shape{4, 8, 8, 16});
  for (int64_t i = 0; i < p.num_elements(); ++i)
    p.data<float>()[i] = i % 2 == 0 ? 1.5f : -1.5f;
  const std::vector<HostTensor> args = {p, sample({DType::f32, {4, 4, 4, 16}}, 13, false)};
  check_equal(run_compiled(*module, r.function, args).at(0), only_output(f, args));
}
