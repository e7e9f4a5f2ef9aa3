// The gradient table: one or more central finite-difference cases (f64, through
// passes::append_gradients) for every op of ir/ops.def with the kDifferentiable trait, and a test
// that walks the op table so a differentiable op without a case — or a case for an op that is not
// differentiable — fails, naming the op; each case's gradient graph is checked the same way
// again (second order). Inputs stay away from kinks and discontinuities (relu and
// abs away from 0, floor/ceil/round away from integers and halves, max/min without ties, log and
// sqrt on positive numbers), where a rule's convention and the finite difference may rightly
// disagree; those points have hand-computed tests in autodiff_ops_test.cpp and
// autodiff_conv_test.cpp, which also sweep shapes and attributes more widely.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <vector>

#include "grad_check_util.h"
#include "kiln/ir/op.h"
#include "kiln/ir/printer.h"

using namespace kiln::testing;

namespace {

// One finite-difference check: the gradient of the first output of `text` with respect to each
// f64 parameter, at `args`.
struct GradCase {
  Op op;  // the op this case checks; `text` must apply it
  std::string text;
  std::vector<HostTensor> args;
  GradCheckOptions options = {};
};

// The text of `@f(%p0, %p1, ...)` applying `op` once to its parameters and returning the op's
// result number `result` (types inferred by the op's rule).
std::string apply_text(Op op, const std::vector<TensorType>& params, const Attrs& attrs = {},
                       size_t result = 0) {
  Function f("f");
  std::vector<kiln::ir::Value*> inputs;
  for (size_t i = 0; i < params.size(); ++i)
    inputs.push_back(f.add_param(params[i], fmt::format("p{}", i)));
  f.set_outputs({f.append(op, inputs, attrs)->output(result)});
  return kiln::ir::print(f);
}

// A case applying `op` to parameters holding `args` (f64 ones are checked; indices and
// conditions pass through), with the parameter types read off them.
GradCase apply_case(Op op, std::vector<HostTensor> args, const Attrs& attrs = {},
                    size_t result = 0) {
  std::vector<TensorType> params;
  for (const HostTensor& a : args)
    params.push_back({a.dtype(), a.shape()});
  return {op, apply_text(op, params, attrs, result), std::move(args)};
}

Attrs ints(const char* name, std::vector<int64_t> v) {
  Attrs a;
  a.set_ints(name, std::move(v));
  return a;
}

Attrs axes(std::vector<int64_t> axes, bool keepdims) {
  Attrs a = ints("axes", std::move(axes));
  a.set_bool("keepdims", keepdims);
  return a;
}

Attrs axis(int64_t v) {
  Attrs a;
  a.set_int("axis", v);
  return a;
}

HostTensor any(const Shape& shape, uint32_t seed) {
  return random_f64(shape, seed, -2.0, 2.0);
}

HostTensor positive(const Shape& shape, uint32_t seed) {
  return random_f64(shape, seed, 0.3, 2.0);
}

HostTensor nonzero(const Shape& shape, uint32_t seed) {
  return random_f64_nonzero(shape, seed);
}

HostTensor values(const Shape& shape, const std::vector<double>& v) {
  return tensor_of(DType::f64, shape, v);
}

void add_unary(std::vector<GradCase>& cases) {
  Attrs alpha;
  alpha.set_float("alpha", 0.5);
  Attrs tanh_form;
  tanh_form.set_bool("approximate", true);
  cases.push_back(apply_case(Op::neg, {any({2, 3}, 1)}));
  cases.push_back(apply_case(Op::abs, {nonzero({2, 3}, 2)}));
  cases.push_back(apply_case(Op::sign, {nonzero({2, 3}, 3)}));  // zero, both ways
  cases.push_back(apply_case(Op::exp, {any({2, 3}, 4)}));
  cases.push_back(apply_case(Op::log, {positive({2, 3}, 5)}));
  cases.push_back(apply_case(Op::sqrt, {positive({2, 3}, 6)}));
  cases.push_back(apply_case(Op::rsqrt, {positive({2, 3}, 7)}));
  cases.push_back(apply_case(Op::square, {any({2, 3}, 8)}));
  cases.push_back(apply_case(Op::reciprocal, {nonzero({2, 3}, 9)}));
  cases.push_back(apply_case(Op::sin, {any({2, 3}, 10)}));
  cases.push_back(apply_case(Op::cos, {any({2, 3}, 11)}));
  cases.push_back(apply_case(Op::tanh, {any({2, 3}, 12)}));
  cases.push_back(apply_case(Op::sigmoid, {any({2, 3}, 13)}));
  cases.push_back(apply_case(Op::relu, {nonzero({2, 3}, 14)}));
  cases.push_back(apply_case(Op::elu, {nonzero({2, 3}, 15)}));
  cases.push_back(apply_case(Op::elu, {nonzero({2, 3}, 16)}, alpha));
  cases.push_back(apply_case(Op::softplus, {any({2, 3}, 17)}));
  cases.push_back(apply_case(Op::gelu, {any({2, 3}, 18)}));
  cases.push_back(apply_case(Op::gelu, {any({2, 3}, 19)}, tanh_form));
  cases.push_back(apply_case(Op::erf, {any({2, 3}, 20)}));
  cases.push_back(apply_case(Op::log1p, {random_f64({2, 3}, 21, -0.5, 2.0)}));
  cases.push_back(apply_case(Op::expm1, {any({2, 3}, 22)}));
  // Piecewise constant: no gradient, and zero finite differences away from the jumps (integers
  // for floor and ceil, halves for round).
  HostTensor steps = values({2, 3}, {-1.7, -0.3, 0.2, 0.8, 1.4, 2.6});
  for (Op op : {Op::floor, Op::ceil, Op::round}) {
    GradCase c = apply_case(op, {steps});
    c.options.no_gradient = {0};
    cases.push_back(std::move(c));
  }
  // cast: f64 → f32 → f64 passes the gradient back (f32 rounding limits the differences); to an
  // integer it stops (x has none, y still has one).
  cases.push_back({Op::cast,
                   R"(func @f(%x: f64[2,3]) -> f64[2,3] {
  %0 = cast(%x) {dtype = f32} : f32[2,3]
  %1 = cast(%0) {dtype = f64} : f64[2,3]
  %2 = mul(%1, %x) : f64[2,3]
  return %2
})",
                   {any({2, 3}, 23)},
                   {.eps = 1e-2, .tolerance = 1e-4, .no_gradient = {}}});
  cases.push_back({Op::cast,
                   R"(func @f(%x: f64[2,3], %y: f64[3]) -> f64[2,3] {
  %0 = cast(%x) {dtype = i64} : i64[2,3]
  %1 = cast(%0) {dtype = f64} : f64[2,3]
  %2 = mul(%1, %y) : f64[2,3]
  return %2
})",
                   {steps, any({3}, 24)},
                   {.no_gradient = {0}}});
}

void add_binary(std::vector<GradCase>& cases) {
  // Each binary op with equal shapes and with both operands broadcast.
  for (Op op : {Op::add, Op::sub, Op::mul}) {
    cases.push_back(apply_case(op, {any({2, 3}, 31), any({2, 3}, 32)}));
    cases.push_back(apply_case(op, {any({2, 1}, 33), any({1, 3}, 34)}));
  }
  cases.push_back(apply_case(Op::div, {any({2, 3}, 35), nonzero({2, 3}, 36)}));
  cases.push_back(apply_case(Op::div, {any({3}, 37), nonzero({2, 1}, 38)}));
  cases.push_back(apply_case(Op::pow, {positive({2, 3}, 39), any({2, 3}, 40)}));
  cases.push_back(apply_case(Op::pow, {positive({2, 1}, 41), any({3}, 42)}));
  // A negative base with a constant integer exponent: d/da a³ = 3a².
  cases.push_back({Op::pow,
                   R"(func @f(%a: f64[4]) -> f64[4] {
  %0 = constant() {value = dense<f64[]: 3.0>} : f64[]
  %1 = pow(%a, %0) : f64[4]
  return %1
})",
                   {values({4}, {-1.5, -0.4, 0.3, 1.2})}});
  // No ties: every pair differs by at least 0.1.
  HostTensor a = values({2, 3}, {0.5, -1.2, 2.0, -0.3, 0.9, 1.6});
  HostTensor b = values({3}, {0.1, -0.7, 1.1});
  for (Op op : {Op::maximum, Op::minimum}) {
    cases.push_back(apply_case(op, {a, b}));
    cases.push_back(apply_case(op, {b, a}));
  }
  cases.push_back(apply_case(
      Op::select, {tensor_of(DType::boolean, {2, 1}, {1, 0}), any({3}, 43), any({2, 3}, 44)}));
  cases.push_back(apply_case(Op::select, {tensor_of(DType::boolean, {2, 3}, {1, 0, 0, 1, 1, 0}),
                                          any({}, 45), any({2, 3}, 46)}));
}

void add_reductions(std::vector<GradCase>& cases) {
  for (Op op : {Op::reduce_sum, Op::reduce_mean}) {
    cases.push_back(apply_case(op, {any({2, 3, 4}, 51)}, axes({1}, false)));
    cases.push_back(apply_case(op, {any({2, 3, 4}, 52)}, axes({0, 2}, true)));
  }
  // Distinct values (no ties) for max and min: a permutation of −11..12, divided by 4.
  std::vector<double> distinct(24);
  for (size_t i = 0; i < distinct.size(); ++i)
    distinct[i] = static_cast<double>((i * 7) % 24) / 4.0 - 2.75;
  HostTensor x = values({2, 3, 4}, distinct);
  for (Op op : {Op::reduce_max, Op::reduce_min}) {
    cases.push_back(apply_case(op, {x}, axes({1}, false)));
    cases.push_back(apply_case(op, {x}, axes({0, 2}, true)));
    cases.push_back(apply_case(op, {x}, axes({0, 1, 2}, false)));
  }
  cases.push_back(apply_case(Op::reduce_prod, {nonzero({2, 3, 4}, 53)}, axes({1}, false)));
  cases.push_back(apply_case(Op::reduce_prod, {nonzero({2, 3, 2}, 54)}, axes({0, 2}, true)));
}

void add_linear_algebra(std::vector<GradCase>& cases) {
  cases.push_back(apply_case(Op::matmul, {any({3, 4}, 61), any({4, 2}, 62)}));
  Attrs transposes;
  transposes.set_bool("transpose_a", true).set_bool("transpose_b", true);
  // Batch broadcasting with both transposes.
  cases.push_back(apply_case(Op::matmul, {any({2, 1, 4, 3}, 63), any({3, 2, 4}, 64)}, transposes));
}

void add_shape(std::vector<GradCase>& cases) {
  cases.push_back(apply_case(Op::reshape, {any({2, 3, 4}, 71)}, ints("shape", {-1, 3, 2})));
  cases.push_back(apply_case(Op::transpose, {any({2, 3, 4}, 72)}, ints("perm", {2, 0, 1})));
  cases.push_back(apply_case(Op::squeeze, {any({2, 1, 3, 1}, 73)}, ints("axes", {1, -1})));
  cases.push_back(apply_case(Op::expand_dims, {any({2, 3}, 74)}, axis(-1)));
  cases.push_back(apply_case(Op::broadcast_to, {any({2, 1, 3}, 75)}, ints("shape", {4, 2, 5, 3})));
  cases.push_back(
      apply_case(Op::concat, {any({2, 1}, 76), any({2, 3}, 77), any({2, 2}, 78)}, axis(1)));
  Attrs split;
  split.set_int("axis", 0).set_ints("sizes", {2, 1, 2});
  cases.push_back(apply_case(Op::split, {any({5, 3}, 79)}, split, 1));
  // Two results used: the unused middle one contributes zeros.
  cases.push_back({Op::split,
                   R"(func @f(%x: f64[6,2]) -> f64[2,2] {
  %0, %1, %2 = split(%x) {axis = 0, sizes = [2, 2, 2]} : f64[2,2], f64[2,2], f64[2,2]
  %3 = mul(%0, %2) : f64[2,2]
  return %3
})",
                   {any({6, 2}, 80)}});
  Attrs strided;
  strided.set_ints("begin", {0, 1}).set_ints("end", {7, 6}).set_ints("strides", {2, 2});
  cases.push_back(apply_case(Op::slice, {any({7, 6}, 81)}, strided));
  Attrs reversed;
  reversed.set_ints("begin", {6, 5}).set_ints("end", {-1, -1}).set_ints("strides", {-3, -2});
  cases.push_back(apply_case(Op::slice, {any({7, 6}, 82)}, reversed));
  // Repeated indices add up.
  cases.push_back(apply_case(
      Op::gather, {any({4, 3}, 83), tensor_of(DType::i32, {5}, {0, 2, 2, 3, 0})}, axis(0)));
  cases.push_back(apply_case(
      Op::gather, {any({2, 4, 3}, 84), tensor_of(DType::i64, {2, 2}, {3, 1, 1, 1})}, axis(1)));
  Attrs pad = ints("paddings", {1, 0, 2, 1});
  pad.set_float("value", 1.5);
  cases.push_back(apply_case(Op::pad, {any({2, 3}, 85)}, pad));
  cases.push_back(apply_case(Op::tile, {any({2, 1, 3}, 86)}, ints("multiples", {1, 3, 2})));
}

Attrs window(const char* size_name, std::vector<int64_t> size, std::vector<int64_t> strides,
             const char* padding) {
  Attrs a = ints(size_name, std::move(size));
  a.set_ints("strides", std::move(strides)).set_string("padding", padding);
  return a;
}

void add_nn(std::vector<GradCase>& cases) {
  // conv2d: "same" with stride 2 (the extra padded row at the end), "valid" with dilations.
  Attrs same = ints("strides", {2, 2});
  same.set_string("padding", "same");
  cases.push_back(apply_case(Op::conv2d, {any({1, 5, 4, 2}, 91), any({3, 3, 2, 2}, 92)}, same));
  Attrs dilated = ints("strides", {1, 1});
  dilated.set_string("padding", "valid").set_ints("dilations", {2, 1});
  cases.push_back(apply_case(Op::conv2d, {any({2, 5, 4, 1}, 93), any({2, 2, 1, 2}, 94)}, dilated));
  // conv2d's filter gradient, on the same windows: x and dy (conv2d's result shape).
  Attrs same_3x3 = same;
  same_3x3.set_ints("ksize", {3, 3});
  cases.push_back(apply_case(Op::conv2d_filter_grad,
                             {any({1, 5, 4, 2}, 103), any({1, 3, 2, 2}, 104)}, same_3x3));
  Attrs dilated_2x2 = dilated;
  dilated_2x2.set_ints("ksize", {2, 2});
  cases.push_back(apply_case(Op::conv2d_filter_grad,
                             {any({2, 5, 4, 1}, 105), any({2, 3, 3, 2}, 106)}, dilated_2x2));
  // Below zero, so a padded position would beat every real element if the pool counted it;
  // random values, so no window holds a tie.
  cases.push_back(apply_case(Op::max_pool2d, {random_f64({1, 5, 5, 2}, 95, -3.0, -1.0)},
                             window("ksize", {2, 2}, {2, 2}, "same")));
  cases.push_back(apply_case(Op::max_pool2d, {random_f64({1, 5, 6, 1}, 96, -3.0, -1.0)},
                             window("ksize", {3, 3}, {1, 2}, "valid")));
  // max_pool2d_grad as max_pool2d's rule applies it, to y = max_pool2d(x) of a constant x
  // without ties: linear in dy. (It gives x no gradient: moving x moves y with it, so the routing
  // stays; max_pool_grad_test.cpp checks that through the pool's own gradient.)
  {
    Function f("f");
    const Attrs pool = window("ksize", {3, 3}, {2, 2}, "same");
    Attrs value;
    value.set_tensor("value", random_f64({1, 5, 4, 2}, 101, -3.0, -1.0));
    kiln::ir::Value* x = f.append(Op::constant, {}, value)->output();
    kiln::ir::Value* dy = f.add_param({DType::f64, Shape{1, 3, 2, 2}}, "dy");
    kiln::ir::Value* y = f.append(Op::max_pool2d, {x}, pool)->output();
    f.set_outputs({f.append(Op::max_pool2d_grad, {x, y, dy}, pool)->output()});
    cases.push_back({Op::max_pool2d_grad, kiln::ir::print(f), {any({1, 3, 2, 2}, 102)}});
  }
  cases.push_back(
      apply_case(Op::avg_pool2d, {any({1, 5, 4, 2}, 97)}, window("ksize", {3, 2}, {2, 1}, "same")));
  cases.push_back(apply_case(Op::avg_pool2d, {any({1, 5, 5, 1}, 98)},
                             window("ksize", {2, 2}, {2, 2}, "valid")));
  for (Op op : {Op::softmax, Op::log_softmax}) {
    cases.push_back(apply_case(op, {any({3, 4}, 99)}, axis(0)));
    cases.push_back(apply_case(op, {any({2, 3, 4}, 100)}, axis(-1)));
  }
}

void add_control(std::vector<GradCase>& cases) {
  // scan: a tanh RNN step with a const weight and a reverse scan (its gradient is a forward
  // scan); more cases in scan_grad_test.cpp.
  cases.push_back({Op::scan,
                   R"(func @f(%h0: f64[2], %xs: f64[3,2], %u: f64[2,2]) -> f64[3,2] {
  %0, %1 = scan(%h0, %xs, %u) {carries = 1, length = 3, reverse = true, save_carries = false, xs = 1} : f64[2], f64[3,2]
    body func @cell(%h: f64[2], %x: f64[2], %u: f64[2,2]) -> (f64[2], f64[2]) {
      %0 = reshape(%h) {shape = [1, 2]} : f64[1,2]
      %1 = matmul(%0, %u) : f64[1,2]
      %2 = reshape(%1) {shape = [2]} : f64[2]
      %3 = add(%2, %x) : f64[2]
      %4 = tanh(%3) : f64[2]
      return %4, %4
    }
  return %1
}
)",
                   {any({2}, 111), any({3, 2}, 112), any({2, 2}, 113)}});
}

// Every case of the table, grouped by op family.
const std::vector<GradCase>& gradient_cases() {
  static const std::vector<GradCase> cases = [] {
    std::vector<GradCase> all;
    add_unary(all);
    add_binary(all);
    add_reductions(all);
    add_linear_algebra(all);
    add_shape(all);
    add_nn(all);
    add_control(all);
    return all;
  }();
  return cases;
}

bool applies(const std::string& text, Op op) {
  Function f = kiln::ir::parse(text);
  return std::any_of(f.nodes().begin(), f.nodes().end(),
                     [op](const auto& node) { return node->op() == op; });
}

}  // namespace

TEST_CASE("the gradient table has a case for every differentiable op, and only those",
          "[autodiff][gradcheck]") {
  const std::vector<GradCase>& cases = gradient_cases();
  for (int i = 0; i < kiln::ir::kNumOps; ++i) {
    const Op op = static_cast<Op>(i);
    const bool differentiable = kiln::ir::has_trait(op, kiln::ir::kDifferentiable);
    const bool listed =
        std::any_of(cases.begin(), cases.end(), [op](const GradCase& c) { return c.op == op; });
    if (differentiable && !listed)
      FAIL_CHECK(fmt::format("{} is differentiable but has no case in gradient_table_test.cpp",
                             kiln::ir::op_name(op)));
    if (!differentiable && listed)
      FAIL_CHECK(
          fmt::format("gradient_table_test.cpp has a case for {}, which is not "
                      "differentiable (no kDifferentiable in ir/ops.def)",
                      kiln::ir::op_name(op)));
  }
  // A case counts for its op only if its function applies that op.
  for (const GradCase& c : cases) {
    INFO(kiln::ir::op_name(c.op) << " case:\n" << c.text);
    CHECK(applies(c.text, c.op));
  }
}

TEST_CASE("every case of the gradient table matches central finite differences in f64",
          "[autodiff][gradcheck]") {
  for (const GradCase& c : gradient_cases()) {
    INFO(kiln::ir::op_name(c.op) << " case:\n" << c.text);
    check_gradients(c.text, c.args, c.options);
  }
}

// The rules build their gradients from ops of the table, so each gradient graph is itself
// differentiable: the gradient with respect to each f64 parameter of y² (so even linear ops have
// a non-constant gradient), checked again by finite differences. Skipped: cases without a
// gradient, sign (its gradient is a constant zero, so its own has none) and the f32 round trip
// (too coarse for a second difference).
TEST_CASE("every case's gradient graph matches finite differences too", "[autodiff][gradcheck]") {
  for (const GradCase& c : gradient_cases()) {
    if (!c.options.no_gradient.empty() || c.op == Op::sign || c.op == Op::cast) continue;
    // differentiate() appends one gradient per floating parameter, in parameter order.
    size_t floating = 0;
    for (const HostTensor& arg : c.args) {
      if (arg.dtype() != DType::f64) continue;
      Function f = kiln::ir::parse(c.text);
      kiln::ir::Value* y = f.outputs().at(0);
      f.set_outputs({f.append(Op::mul, {y, y})->output()});
      kiln::passes::differentiate(f);
      f.set_outputs({f.outputs().at(1 + floating++)});
      std::string text = kiln::ir::print(f);
      INFO(kiln::ir::op_name(c.op)
           << " case, gradient of y² with respect to f64 parameter " << floating - 1 << ":\n"
           << text);
      check_gradients(text, c.args, /*eps=*/1e-6, /*tolerance=*/1e-5);
    }
  }
}
