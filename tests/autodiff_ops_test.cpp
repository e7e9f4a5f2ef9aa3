// Finite-difference checks of every gradient rule except conv2d and the pools
// (autodiff_conv_test.cpp), on the IR directly: each differentiable op of ir/ops.def over
// broadcasting shapes, axis sets and attribute variants; ops without a gradient; hand-computed
// values at ties and zeros; two small networks; and second derivatives through the gradient
// graphs the rules build.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "grad_check_util.h"
#include "kiln/ir/printer.h"

using namespace kiln::testing;

namespace {

TensorType f64(Shape shape) {
  return {DType::f64, std::move(shape)};
}

// The text of `@f(%p0, %p1, ...)` applying `op` once to its parameters and returning the op's
// result number `result` (types inferred by the op's rule).
std::string op_text(Op op, const std::vector<TensorType>& params, const Attrs& attrs = {},
                    size_t result = 0) {
  Function f("f");
  std::vector<kiln::ir::Value*> inputs;
  for (size_t i = 0; i < params.size(); ++i)
    inputs.push_back(f.add_param(params[i], fmt::format("p{}", i)));
  f.set_outputs({f.append(op, inputs, attrs)->output(result)});
  return kiln::ir::print(f);
}

// The function of `text` with its output squared (so even linear ops have a non-constant
// gradient), differentiated, returning only the gradient with respect to floating parameter
// `which`: a function of the same parameters whose own gradient checks the rules a second time.
std::string gradient_text(const std::string& text, size_t which) {
  Function f = kiln::ir::parse(text);
  kiln::ir::Value* y = f.outputs().at(0);
  f.set_outputs({f.append(Op::mul, {y, y})->output()});
  kiln::passes::differentiate(f);
  f.set_outputs({f.outputs().at(1 + which)});
  return kiln::ir::print(f);
}

Attrs axes_attr(std::vector<int64_t> axes, bool keepdims) {
  Attrs a;
  a.set_ints("axes", std::move(axes)).set_bool("keepdims", keepdims);
  return a;
}

Attrs slice_attr(std::vector<int64_t> begin, std::vector<int64_t> end,
                 std::vector<int64_t> strides) {
  Attrs a;
  a.set_ints("begin", std::move(begin)).set_ints("end", std::move(end));
  a.set_ints("strides", std::move(strides));
  return a;
}

Attrs int_attr(const char* name, int64_t v) {
  Attrs a;
  a.set_int(name, v);
  return a;
}

Attrs ints_attr(const char* name, std::vector<int64_t> v) {
  Attrs a;
  a.set_ints(name, std::move(v));
  return a;
}

enum class Domain { any, positive, nonzero };

HostTensor sample(Domain d, const Shape& shape, uint32_t seed) {
  switch (d) {
    case Domain::positive:
      return random_f64(shape, seed, 0.2, 2.0);
    case Domain::nonzero:
      return random_f64_nonzero(shape, seed);
    case Domain::any:
      break;
  }
  return random_f64(shape, seed, -2.0, 2.0);
}

}  // namespace

// The harness itself: at relu's kink the rule's convention (0) and the central difference
// (0.5) disagree, and check_gradients must say so.
TEST_CASE("check_gradients reports a gradient that disagrees with finite differences",
          "[autodiff][!shouldfail]") {
  check_gradients(op_text(Op::relu, {f64({2})}), {tensor_of(DType::f64, {2}, {0.0, 1.0})});
}

TEST_CASE("unary elementwise gradients match finite differences", "[autodiff][elementwise]") {
  Attrs alpha;
  alpha.set_float("alpha", 0.5);
  Attrs tanh_form;
  tanh_form.set_bool("approximate", true);
  struct Row {
    Op op;
    Domain domain;
    Attrs attrs;
  };
  const std::vector<Row> rows = {
      {Op::neg, Domain::any, {}},         {Op::abs, Domain::nonzero, {}},
      {Op::exp, Domain::any, {}},         {Op::log, Domain::positive, {}},
      {Op::sqrt, Domain::positive, {}},   {Op::rsqrt, Domain::positive, {}},
      {Op::square, Domain::any, {}},      {Op::reciprocal, Domain::nonzero, {}},
      {Op::sin, Domain::any, {}},         {Op::cos, Domain::any, {}},
      {Op::tanh, Domain::any, {}},        {Op::sigmoid, Domain::any, {}},
      {Op::relu, Domain::nonzero, {}},    {Op::elu, Domain::nonzero, {}},
      {Op::elu, Domain::nonzero, alpha},  {Op::softplus, Domain::any, {}},
      {Op::sign, Domain::nonzero, {}},    {Op::gelu, Domain::any, {}},
      {Op::gelu, Domain::any, tanh_form}, {Op::erf, Domain::any, {}},
      {Op::log1p, Domain::positive, {}},  {Op::expm1, Domain::any, {}},
  };
  // Rank 0 and 2 for the unary ops of the first releases; that every differentiable op has a
  // finite-difference case is gradient_table_test's walk of the op table.
  for (const Row& row : rows) {
    for (const Shape& shape : {Shape{}, Shape{2, 3}}) {
      std::string text = op_text(row.op, {f64(shape)}, row.attrs);
      INFO(text);
      check_gradients(text, {sample(row.domain, shape, 11)});
    }
  }
}

TEST_CASE("sign has a zero gradient; floor, ceil and round have none", "[autodiff][elementwise]") {
  HostTensor x = tensor_of(DType::f64, {2, 3}, {-1.7, -0.3, 0.2, 0.8, 1.4, 2.6});
  std::string sign = op_text(Op::sign, {f64({2, 3})});
  CHECK(values_of(sum_gradients(sign, {x}).at(0)) == std::vector<double>(6, 0.0));
  for (Op op : {Op::floor, Op::ceil, Op::round}) {
    std::string text = op_text(op, {f64({2, 3})});
    INFO(text);
    check_gradients(text, {x}, GradCheckOptions{.no_gradient = {0}});
  }
  // Through the pass form, a parameter with no gradient gets zeros.
  CHECK(values_of(sum_gradients(op_text(Op::floor, {f64({2, 3})}), {x}).at(0)) ==
        std::vector<double>(6, 0.0));
}

TEST_CASE("cast gradients: float round trips pass it back, integers stop it", "[autodiff][cast]") {
  // f64 → f32 → f64 passes the gradient through both casts; f32 rounding limits the differences.
  std::string round_trip = R"(func @f(%x: f64[2,3]) -> f64[2,3] {
  %0 = cast(%x) {dtype = f32} : f32[2,3]
  %1 = cast(%0) {dtype = f64} : f64[2,3]
  %2 = mul(%1, %1) : f64[2,3]
  return %2
})";
  check_gradients(round_trip, {random_f64({2, 3}, 3)},
                  /*eps=*/1e-2, /*tolerance=*/1e-4);
  // To an integer and back: x has no gradient, y still has one.
  for (const char* type : {"i32", "i64"}) {
    std::string to_int = fmt::format(R"(func @f(%x: f64[2,3], %y: f64[3]) -> f64[2,3] {{
  %0 = cast(%x) {{dtype = {0}}} : {0}[2,3]
  %1 = cast(%0) {{dtype = f64}} : f64[2,3]
  %2 = mul(%1, %y) : f64[2,3]
  return %2
}})",
                                     type);
    INFO(to_int);
    check_gradients(
        to_int,
        {tensor_of(DType::f64, {2, 3}, {-1.7, -0.3, 0.2, 0.8, 1.4, 2.6}), random_f64({3}, 4)},
        GradCheckOptions{.no_gradient = {0}});
  }
}

TEST_CASE("binary elementwise gradients with broadcasting", "[autodiff][elementwise]") {
  struct Row {
    Op op;
    Domain a, b;
  };
  const std::vector<Row> rows = {
      {Op::add, Domain::any, Domain::any},      {Op::sub, Domain::any, Domain::any},
      {Op::mul, Domain::any, Domain::any},      {Op::div, Domain::any, Domain::nonzero},
      {Op::pow, Domain::positive, Domain::any}, {Op::maximum, Domain::any, Domain::any},
      {Op::minimum, Domain::any, Domain::any},
  };
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{2, 3}, {2, 3}}, {{2, 3}, {3}}, {{3}, {2, 3}},       {{2, 1}, {1, 3}},
      {{}, {2, 3}},     {{2, 3}, {}},  {{4, 1, 3}, {2, 1}}, {{2, 1, 2}, {3, 1}},
  };
  for (const Row& row : rows) {
    for (const auto& [sa, sb] : shapes) {
      std::string text = op_text(row.op, {f64(sa), f64(sb)});
      INFO(text);
      check_gradients(text, {sample(row.a, sa, 21), sample(row.b, sb, 22)});
    }
  }
}

TEST_CASE("pow gradients at negative and zero bases", "[autodiff][elementwise]") {
  // A constant integer exponent: d/da a³ = 3a² holds for negative a too.
  std::string cube = R"(func @f(%a: f64[4]) -> f64[4] {
  %0 = constant() {value = dense<f64[]: 3.0>} : f64[]
  %1 = pow(%a, %0) : f64[4]
  return %1
})";
  check_gradients(cube, {tensor_of(DType::f64, {4}, {-1.5, -0.4, 0.3, 1.2})});
  // At a = 0 with b = 2: d/da = 0 and d/db is taken as 0 (a^b is 0 on both sides).
  std::string text = op_text(Op::pow, {f64({2}), f64({2})});
  std::vector<HostTensor> g = sum_gradients(
      text, {tensor_of(DType::f64, {2}, {0.0, 2.0}), tensor_of(DType::f64, {2}, {2.0, 3.0})});
  CHECK(values_of(g[0]) == std::vector<double>{0.0, 12.0});
  CHECK(g[1].data<double>()[0] == 0.0);
  CHECK(g[1].data<double>()[1] == Approx(8 * std::log(2.0)));
}

TEST_CASE("maximum and minimum send a tie's gradient to the first operand",
          "[autodiff][elementwise]") {
  HostTensor a = tensor_of(DType::f64, {3}, {1.0, 2.0, 5.0});
  HostTensor b = tensor_of(DType::f64, {3}, {1.0, 3.0, 4.0});
  std::vector<HostTensor> gmax = sum_gradients(op_text(Op::maximum, {f64({3}), f64({3})}), {a, b});
  CHECK(values_of(gmax[0]) == std::vector<double>{1, 0, 1});
  CHECK(values_of(gmax[1]) == std::vector<double>{0, 1, 0});
  std::vector<HostTensor> gmin = sum_gradients(op_text(Op::minimum, {f64({3}), f64({3})}), {a, b});
  CHECK(values_of(gmin[0]) == std::vector<double>{1, 1, 0});
  CHECK(values_of(gmin[1]) == std::vector<double>{0, 0, 1});
}

TEST_CASE("select gradients with a broadcast condition and operands", "[autodiff][select]") {
  struct Row {
    Shape cond, a, b;
  };
  const std::vector<Row> rows = {
      {{2, 3}, {2, 3}, {2, 3}}, {{2, 1}, {3}, {2, 3}},    {{3}, {}, {2, 3}},
      {{}, {2, 3}, {1, 3}},     {{2, 1, 3}, {4, 1}, {3}},
  };
  for (const Row& row : rows) {
    std::string text = op_text(Op::select, {{DType::boolean, row.cond}, f64(row.a), f64(row.b)});
    INFO(text);
    HostTensor cond = random_f64(row.cond, 31);
    HostTensor bools(DType::boolean, row.cond);
    for (int64_t i = 0; i < cond.num_elements(); ++i)
      bools.data<bool>()[i] = cond.data<double>()[i] > 0;
    check_gradients(text, {bools, random_f64(row.a, 32), random_f64(row.b, 33)});
  }
  // By hand: cond [true, false] against a scalar a and a vector b.
  std::string text = op_text(Op::select, {{DType::boolean, {2}}, f64({}), f64({2})});
  std::vector<HostTensor> g =
      sum_gradients(text, {tensor_of(DType::boolean, {2}, {1, 0}), tensor_of(DType::f64, {}, {7}),
                           tensor_of(DType::f64, {2}, {1, 2})});
  REQUIRE(g.size() == 2);
  CHECK(values_of(g[0]) == std::vector<double>{1});
  CHECK(values_of(g[1]) == std::vector<double>{0, 1});
}

TEST_CASE("reduction gradients over axis sets, with and without keepdims",
          "[autodiff][reduction]") {
  const std::vector<std::vector<int64_t>> axis_sets = {{},     {0},    {1},      {-1},
                                                       {0, 2}, {2, 0}, {0, 1, 2}};
  for (Op op : {Op::reduce_sum, Op::reduce_mean, Op::reduce_max, Op::reduce_min, Op::reduce_prod}) {
    for (const auto& axes : axis_sets) {
      for (bool keepdims : {false, true}) {
        std::string text = op_text(op, {f64({2, 3, 4})}, axes_attr(axes, keepdims));
        INFO(text);
        check_gradients(text, {random_f64({2, 3, 4}, 41, -1.5, 1.5)});
      }
    }
  }
  // A reduced axis of size 1.
  for (Op op : {Op::reduce_sum, Op::reduce_max, Op::reduce_prod}) {
    std::string text = op_text(op, {f64({3, 1})}, axes_attr({1}, false));
    check_gradients(text, {random_f64({3, 1}, 42)});
  }
}

TEST_CASE("reduce_prod gradients with zeros in a slice", "[autodiff][reduction]") {
  // Row 0 holds one zero, row 1 two, row 2 none: ∂/∂xᵢ = Π_{j≠i} xⱼ.
  HostTensor x = tensor_of(DType::f64, {3, 3}, {2, 0, 3, 0, 4, 0, 2, -1, 0.5});
  for (bool keepdims : {false, true}) {
    std::string text = op_text(Op::reduce_prod, {f64({3, 3})}, axes_attr({1}, keepdims));
    INFO(text);
    CHECK(values_of(sum_gradients(text, {x}).at(0)) ==
          std::vector<double>{0, 6, 0, 0, 0, 0, -0.5, 1, -2});
    check_gradients(text, {x});
  }
  // Over both axes: two zeros in the whole tensor, so every element's gradient is 0.
  std::string all = op_text(Op::reduce_prod, {f64({3, 3})}, axes_attr({0, 1}, false));
  CHECK(values_of(sum_gradients(all, {x}).at(0)) == std::vector<double>(9, 0.0));
  check_gradients(all, {x});
  // One zero in the whole tensor: only that element gets the product of the others (-24).
  HostTensor one = tensor_of(DType::f64, {2, 2}, {2, 0, 3, -4});
  std::string both = op_text(Op::reduce_prod, {f64({2, 2})}, axes_attr({0, 1}, true));
  CHECK(values_of(sum_gradients(both, {one}).at(0)) == std::vector<double>{0, -24, 0, 0});
  check_gradients(both, {one});
  // Reducing no axes: y = x, so every element's gradient is 1, zeros included.
  std::string none = op_text(Op::reduce_prod, {f64({3})}, axes_attr({}, false));
  CHECK(values_of(sum_gradients(none, {tensor_of(DType::f64, {3}, {0, 2, 0})}).at(0)) ==
        std::vector<double>{1, 1, 1});
}

TEST_CASE("reduce_max and reduce_min share a tie's gradient evenly", "[autodiff][reduction]") {
  HostTensor x = tensor_of(DType::f64, {2, 3}, {1, 3, 3, -2, -2, -2});
  std::string max = op_text(Op::reduce_max, {f64({2, 3})}, axes_attr({1}, false));
  CHECK(values_of(sum_gradients(max, {x}).at(0)) ==
        std::vector<double>{0, 0.5, 0.5, 1.0 / 3, 1.0 / 3, 1.0 / 3});
  std::string min = op_text(Op::reduce_min, {f64({2, 3})}, axes_attr({0}, true));
  CHECK(values_of(sum_gradients(min, {x}).at(0)) == std::vector<double>{0, 0, 0, 1, 1, 1});
}

TEST_CASE("matmul gradients: transposes and batch broadcasting", "[autodiff][matmul]") {
  struct Row {
    Shape a, b;
    bool ta, tb;
  };
  const std::vector<Row> rows = {
      {{3, 4}, {4, 5}, false, false},          {{4, 3}, {4, 5}, true, false},
      {{3, 4}, {5, 4}, false, true},           {{4, 3}, {5, 4}, true, true},
      {{2, 3, 4}, {4, 5}, false, false},       {{3, 4}, {2, 4, 5}, false, false},
      {{2, 1, 3, 4}, {3, 4, 2}, false, false}, {{2, 1, 4, 3}, {3, 2, 4}, true, true},
      {{2, 4, 3}, {2, 4, 5}, true, false},     {{1, 3, 4}, {2, 5, 4}, false, true},
      {{1, 1}, {1, 3}, false, false},          {{3, 1, 2, 4}, {1, 2, 4, 3}, false, false},
  };
  for (const Row& row : rows) {
    Attrs attrs;
    attrs.set_bool("transpose_a", row.ta).set_bool("transpose_b", row.tb);
    std::string text = op_text(Op::matmul, {f64(row.a), f64(row.b)}, attrs);
    INFO(text);
    check_gradients(text, {random_f64(row.a, 51), random_f64(row.b, 52)});
  }
}

TEST_CASE("reshape, transpose, squeeze, expand_dims, broadcast_to gradients", "[autodiff][shape]") {
  struct Row {
    Op op;
    Shape x;
    Attrs attrs;
  };
  const std::vector<Row> rows = {
      {Op::reshape, {2, 3, 4}, ints_attr("shape", {4, 6})},
      {Op::reshape, {2, 3, 4}, ints_attr("shape", {-1, 3, 2})},
      {Op::reshape, {1, 1}, ints_attr("shape", {})},
      {Op::transpose, {2, 3, 4}, ints_attr("perm", {2, 0, 1})},
      {Op::transpose, {2, 3, 4}, ints_attr("perm", {1, 2, 0})},
      {Op::transpose, {2, 3}, ints_attr("perm", {1, 0})},
      {Op::squeeze, {2, 1, 3, 1}, ints_attr("axes", {1, 3})},
      {Op::squeeze, {2, 1, 3, 1}, ints_attr("axes", {-1})},
      {Op::expand_dims, {2, 3}, int_attr("axis", 1)},
      {Op::expand_dims, {2, 3}, int_attr("axis", -1)},
      {Op::expand_dims, {}, int_attr("axis", 0)},
      {Op::broadcast_to, {3}, ints_attr("shape", {2, 3})},
      {Op::broadcast_to, {2, 1}, ints_attr("shape", {2, 4})},
      {Op::broadcast_to, {1, 3}, ints_attr("shape", {2, 2, 3})},
      {Op::broadcast_to, {}, ints_attr("shape", {2, 3})},
      {Op::broadcast_to, {2, 1, 3}, ints_attr("shape", {4, 2, 5, 3})},
  };
  for (const Row& row : rows) {
    std::string text = op_text(row.op, {f64(row.x)}, row.attrs);
    INFO(text);
    check_gradients(text, {random_f64(row.x, 61)});
  }
}

TEST_CASE("concat and split gradients", "[autodiff][shape]") {
  struct Cat {
    std::vector<Shape> xs;
    int64_t axis;
  };
  const std::vector<Cat> cats = {
      {{{1, 3}, {2, 3}, {3, 3}}, 0},           {{{2, 1}, {2, 2}, {2, 3}}, 1},
      {{{2, 2, 1}, {2, 2, 3}, {2, 2, 2}}, -1}, {{{4}}, 0},
      {{{2, 3}, {0, 3}, {1, 3}}, 0},
  };
  for (const Cat& c : cats) {
    std::vector<TensorType> params;
    std::vector<HostTensor> args;
    for (const Shape& s : c.xs) {
      params.push_back(f64(s));
      args.push_back(random_f64(s, 70 + uint32_t(args.size())));
    }
    std::string text = op_text(Op::concat, params, int_attr("axis", c.axis));
    INFO(text);
    check_gradients(text, args);
  }
  // split: the function returns one result; the gradient is zero where the others came from.
  Attrs split;
  split.set_int("axis", 0).set_ints("sizes", {2, 1, 2});
  for (size_t result : {0, 1, 2}) {
    std::string text = op_text(Op::split, {f64({5, 3})}, split, result);
    INFO(text);
    check_gradients(text, {random_f64({5, 3}, 72)});
    std::vector<double> want(15, 0.0);
    size_t first = result == 0 ? 0 : result == 1 ? 2 : 3, rows = result == 1 ? 1 : 2;
    for (size_t i = 3 * first; i < 3 * (first + rows); ++i)
      want[i] = 1.0;
    CHECK(values_of(sum_gradients(text, {random_f64({5, 3}, 72)}).at(0)) == want);
  }
  Attrs split1;
  split1.set_int("axis", -1).set_ints("sizes", {1, 0, 3});
  for (size_t result : {0, 2})
    check_gradients(op_text(Op::split, {f64({2, 4})}, split1, result), {random_f64({2, 4}, 73)});
  // Two results used: the unused middle one contributes zeros.
  std::string two = R"(func @f(%x: f64[6,2]) -> f64[2,2] {
  %0, %1, %2 = split(%x) {axis = 0, sizes = [2, 2, 2]} : f64[2,2], f64[2,2], f64[2,2]
  %3 = mul(%0, %2) : f64[2,2]
  return %3
})";
  check_gradients(two, {random_f64({6, 2}, 74)});
}

TEST_CASE("slice gradients with strides 1, 2, 3 and negative strides", "[autodiff][shape]") {
  const std::vector<Attrs> slices = {
      slice_attr({1, 0}, {5, 6}, {1, 1}),     slice_attr({0, 1}, {7, 6}, {2, 2}),
      slice_attr({1, 0}, {7, 5}, {3, 3}),     slice_attr({2, 2}, {3, 5}, {3, 1}),
      slice_attr({6, 5}, {-1, -1}, {-1, -2}), slice_attr({5, 4}, {0, 0}, {-2, -3}),
      slice_attr({0, 5}, {7, 0}, {3, -1}),    slice_attr({6, 0}, {-1, 6}, {-3, 2}),
      slice_attr({3, 3}, {4, 4}, {1, 1}),     slice_attr({3, 1}, {3, 6}, {1, 1}),
  };
  for (const Attrs& attrs : slices) {
    std::string text = op_text(Op::slice, {f64({7, 6})}, attrs);
    INFO(text);
    check_gradients(text, {random_f64({7, 6}, 81)});
  }
  // By hand: x[4:0:-2] of [0..5] takes elements 4 and 2.
  std::string text = op_text(Op::slice, {f64({6})}, slice_attr({4}, {0}, {-2}));
  CHECK(values_of(sum_gradients(text, {random_f64({6}, 82)}).at(0)) ==
        std::vector<double>{0, 0, 1, 0, 1, 0});
  check_gradients(
      op_text(Op::slice, {f64({2, 5, 3})}, slice_attr({1, 4, 0}, {2, -1, 3}, {1, -2, 2})),
      {random_f64({2, 5, 3}, 83)});
}

TEST_CASE("gather gradients add up repeated indices", "[autodiff][shape]") {
  struct Row {
    Shape params;
    DType index_dtype;
    Shape index_shape;
    std::vector<double> index_values;
    int64_t axis;
  };
  const std::vector<Row> rows = {
      {{4, 3}, DType::i32, {5}, {0, 2, 2, 3, 0}, 0},
      {{4, 3}, DType::i64, {2, 2}, {1, 1, 1, 3}, 0},
      {{2, 4, 3}, DType::i64, {2, 2}, {3, 1, 1, 1}, 1},
      {{2, 4, 3}, DType::i32, {4}, {2, 0, 2, 2}, -1},
      {{3}, DType::i32, {}, {1}, 0},
  };
  for (const Row& row : rows) {
    std::string text = op_text(Op::gather, {f64(row.params), {row.index_dtype, row.index_shape}},
                               int_attr("axis", row.axis));
    INFO(text);
    HostTensor indices = tensor_of(row.index_dtype, row.index_shape, row.index_values);
    check_gradients(text, {random_f64(row.params, 91), indices});
  }
  // By hand: rows 0, 2, 2, 3, 0 of a [4, 1] column: row 0 read twice, row 2 twice, row 1 never.
  std::string text = op_text(Op::gather, {f64({4, 1}), {DType::i32, {5}}}, int_attr("axis", 0));
  std::vector<HostTensor> g =
      sum_gradients(text, {random_f64({4, 1}, 92), tensor_of(DType::i32, {5}, {0, 2, 2, 3, 0})});
  REQUIRE(g.size() == 1);
  CHECK(values_of(g[0]) == std::vector<double>{2, 0, 2, 1});
}

TEST_CASE("pad and tile gradients", "[autodiff][shape]") {
  Attrs pad_zero = ints_attr("paddings", {1, 0, 2, 1});
  Attrs pad_value = ints_attr("paddings", {0, 2, 0, 0});
  pad_value.set_float("value", 1.5);
  for (const Attrs& attrs : {pad_zero, pad_value}) {
    std::string text = op_text(Op::pad, {f64({2, 3})}, attrs);
    INFO(text);
    check_gradients(text, {random_f64({2, 3}, 101)});
  }
  check_gradients(op_text(Op::pad, {f64({})}, ints_attr("paddings", {})), {random_f64({}, 102)});
  struct Tile {
    Shape x;
    std::vector<int64_t> multiples;
  };
  const std::vector<Tile> tiles = {
      {{2, 3}, {2, 1}}, {{1, 2}, {3, 2}}, {{2, 1, 3}, {1, 3, 2}},
      {{3}, {1}},       {{2}, {3}},       {{2, 3}, {0, 1}},
  };
  for (const Tile& t : tiles) {
    std::string text = op_text(Op::tile, {f64(t.x)}, ints_attr("multiples", t.multiples));
    INFO(text);
    check_gradients(text, {random_f64(t.x, 103)});
  }
}

TEST_CASE("softmax and log_softmax gradients", "[autodiff][nn]") {
  for (Op op : {Op::softmax, Op::log_softmax}) {
    for (int64_t axis : {0, -1, 1}) {
      std::string text = op_text(op, {f64({3, 4})}, int_attr("axis", axis));
      INFO(text);
      check_gradients(text, {random_f64({3, 4}, 111, -2.0, 2.0)});
    }
    std::string text = op_text(op, {f64({2, 3, 4})}, int_attr("axis", 1));
    check_gradients(text, {random_f64({2, 3, 4}, 112, -2.0, 2.0)});
    check_gradients(op_text(op, {f64({5})}, int_attr("axis", 0)), {random_f64({5}, 113)});
    check_gradients(op_text(op, {f64({2, 3})}), {random_f64({2, 3}, 114)});  // default axis
  }
}

TEST_CASE("a two-layer MLP with softmax cross-entropy", "[autodiff][composite]") {
  // Labels as integer classes through one_hot (no gradient), log_softmax cross-entropy.
  std::string mlp =
      R"(func @mlp(%x: f64[4,3], %w1: f64[3,5], %b1: f64[5], %w2: f64[5,3], %b2: f64[3], %labels: i32[4]) -> f64[] {
  %0 = matmul(%x, %w1) : f64[4,5]
  %1 = add(%0, %b1) : f64[4,5]
  %2 = tanh(%1) : f64[4,5]
  %3 = matmul(%2, %w2) : f64[4,3]
  %4 = add(%3, %b2) : f64[4,3]
  %5 = log_softmax(%4) {axis = -1} : f64[4,3]
  %6 = one_hot(%labels) {depth = 3, dtype = f64, off_value = 0.0, on_value = 1.0} : f64[4,3]
  %7 = mul(%6, %5) : f64[4,3]
  %8 = reduce_sum(%7) {axes = [1], keepdims = false} : f64[4]
  %9 = neg(%8) : f64[4]
  %10 = reduce_mean(%9) {axes = [0], keepdims = false} : f64[]
  return %10
})";
  std::vector<HostTensor> args = {
      random_f64({4, 3}, 121), random_f64({3, 5}, 122), random_f64({5}, 123),
      random_f64({5, 3}, 124), random_f64({3}, 125),    tensor_of(DType::i32, {4}, {0, 2, 1, 2})};
  check_gradients(mlp, args);
  // The same network with relu, softmax and an explicit log, with a transposed second layer.
  std::string relu =
      R"(func @mlp(%x: f64[4,3], %w1: f64[3,5], %b1: f64[5], %w2: f64[3,5], %b2: f64[3], %onehot: f64[4,3]) -> f64[] {
  %0 = matmul(%x, %w1) : f64[4,5]
  %1 = add(%0, %b1) : f64[4,5]
  %2 = relu(%1) : f64[4,5]
  %3 = matmul(%2, %w2) {transpose_b = true} : f64[4,3]
  %4 = add(%3, %b2) : f64[4,3]
  %5 = softmax(%4) {axis = 1} : f64[4,3]
  %6 = log(%5) : f64[4,3]
  %7 = mul(%onehot, %6) : f64[4,3]
  %8 = reduce_sum(%7) {axes = [0, 1], keepdims = false} : f64[]
  %9 = neg(%8) : f64[]
  return %9
})";
  HostTensor onehot = tensor_of(DType::f64, {4, 3}, {0, 1, 0, 1, 0, 0, 0, 0, 1, 0, 1, 0});
  check_gradients(relu, {random_f64({4, 3}, 126), random_f64({3, 5}, 127), random_f64({5}, 128),
                         random_f64({3, 5}, 129), random_f64({3}, 130), onehot});
}

TEST_CASE("second derivatives through the gradient graphs", "[autodiff][second-order]") {
  struct Row {
    std::string text;
    std::vector<HostTensor> args;
    size_t floating_params;
  };
  Attrs reduce = axes_attr({1}, false);
  Attrs split;
  split.set_int("axis", 0).set_ints("sizes", {2, 1, 2});
  Attrs mm;
  mm.set_bool("transpose_a", false).set_bool("transpose_b", true);
  const std::vector<Row> rows = {
      {op_text(Op::tanh, {f64({2, 3})}), {random_f64({2, 3}, 141)}, 1},
      {op_text(Op::sigmoid, {f64({2, 3})}), {random_f64({2, 3}, 142)}, 1},
      {op_text(Op::div, {f64({2, 3}), f64({3})}),
       {random_f64({2, 3}, 143), random_f64_nonzero({3}, 144)},
       2},
      {op_text(Op::pow, {f64({2, 3}), f64({2, 1})}),
       {random_f64({2, 3}, 145, 0.5, 2.0), random_f64({2, 1}, 146)},
       2},
      {op_text(Op::softmax, {f64({3, 4})}, int_attr("axis", -1)), {random_f64({3, 4}, 147)}, 1},
      {op_text(Op::log_softmax, {f64({3, 4})}, int_attr("axis", 0)), {random_f64({3, 4}, 148)}, 1},
      {op_text(Op::reduce_max, {f64({3, 4})}, reduce), {random_f64({3, 4}, 149)}, 1},
      {op_text(Op::reduce_prod, {f64({3, 4})}, reduce), {random_f64({3, 4}, 150)}, 1},
      {op_text(Op::matmul, {f64({2, 3, 4}), f64({5, 4})}, mm),
       {random_f64({2, 3, 4}, 151), random_f64({5, 4}, 152)},
       2},
      {op_text(Op::slice, {f64({7, 6})}, slice_attr({6, 0}, {-1, 6}, {-3, 2})),
       {random_f64({7, 6}, 153)},
       1},
      {op_text(Op::gather, {f64({4, 3}), {DType::i32, {5}}}, int_attr("axis", 0)),
       {random_f64({4, 3}, 154), tensor_of(DType::i32, {5}, {0, 2, 2, 3, 0})},
       1},
      {op_text(Op::maximum, {f64({2, 3}), f64({3})}),
       {random_f64({2, 3}, 155), random_f64({3}, 156)},
       2},
      {op_text(Op::elu, {f64({2, 3})}), {random_f64_nonzero({2, 3}, 157)}, 1},
      {op_text(Op::rsqrt, {f64({2, 3})}), {random_f64({2, 3}, 158, 0.3, 2.0)}, 1},
      {op_text(Op::abs, {f64({2, 3})}), {random_f64_nonzero({2, 3}, 159)}, 1},
      {op_text(Op::reduce_mean, {f64({2, 3, 2})}, axes_attr({0, 2}, true)),
       {random_f64({2, 3, 2}, 160)},
       1},
      {op_text(Op::concat, {f64({2, 1}), f64({2, 2})}, int_attr("axis", 1)),
       {random_f64({2, 1}, 161), random_f64({2, 2}, 162)},
       2},
      {op_text(Op::pad, {f64({2, 2})}, ints_attr("paddings", {1, 0, 0, 2})),
       {random_f64({2, 2}, 163)},
       1},
      {op_text(Op::split, {f64({5, 2})}, split, 1), {random_f64({5, 2}, 165)}, 1},
      {op_text(Op::select, {{DType::boolean, {2, 1}}, f64({3}), f64({2, 3})}),
       {tensor_of(DType::boolean, {2, 1}, {1, 0}), random_f64({3}, 166), random_f64({2, 3}, 167)},
       2},
      {op_text(Op::tile, {f64({1, 2})}, ints_attr("multiples", {2, 2})),
       {random_f64({1, 2}, 164)},
       1},
      {op_text(Op::gelu, {f64({2, 3})}), {random_f64({2, 3}, 168)}, 1},
      {op_text(Op::gelu, {f64({2, 3})}, Attrs().set_bool("approximate", true)),
       {random_f64({2, 3}, 169)},
       1},
      {op_text(Op::erf, {f64({2, 3})}), {random_f64({2, 3}, 170)}, 1},
      {op_text(Op::log1p, {f64({2, 3})}), {random_f64({2, 3}, 171, -0.5, 2.0)}, 1},
      {op_text(Op::expm1, {f64({2, 3})}), {random_f64({2, 3}, 172)}, 1},
  };
  for (const Row& row : rows) {
    for (size_t which = 0; which < row.floating_params; ++which) {
      std::string text = gradient_text(row.text, which);
      INFO(text);
      check_gradients(text, row.args, /*eps=*/1e-6, /*tolerance=*/1e-5);
    }
  }
}
