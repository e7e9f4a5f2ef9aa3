// One row per op in ops.def: a small function using the op with valid attributes (docs/ops.md)
// must print, parse and print again to the same text, the op's rule must infer the result
// types written in the row, and the row compiled (the op's emitter) must match the interpreter
// (its kernel).
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <memory>
#include <random>
#include <set>

#include "kiln/ir/infer.h"
#include "kiln/ir/parser.h"
#include "kiln/ir/printer.h"
#include "kiln/ir/verifier.h"

#include "codegen_test_util.h"

using namespace kiln;
using namespace kiln::ir;

namespace {

TensorType T(DType dtype, std::initializer_list<int64_t> dims) {
  return {dtype, Shape(dims)};
}
constexpr DType f32 = DType::f32, f64 = DType::f64, i32 = DType::i32, i64 = DType::i64,
                boolean = DType::boolean;

struct Row {
  Op op;
  std::vector<TensorType> inputs;
  Attrs attrs;
  std::vector<TensorType> outputs;  // as docs/ops.md says, computed by hand
};

Attrs A() {
  return Attrs();
}

HostTensor small_constant() {
  std::vector<float> v = {1.5f, -2.0f, 0.25f};
  return HostTensor::from_values<float>(Shape{3}, v);
}

// scan's attributes: carry += x, y = carry, over 3 steps of f32[2] (more in scan_ir_test.cpp).
Attrs scan_attrs() {
  auto body = std::make_shared<Function>("step");
  Value* c = body->add_param(T(f32, {2}), "c");
  Value* x = body->add_param(T(f32, {2}), "x");
  Value* next = body->append(Op::add, {c, x})->output();
  body->set_outputs({next, next});
  Attrs a;
  a.set_int("carries", 1).set_int("xs", 1).set_int("length", 3).set_bool("reverse", false);
  a.set_bool("save_carries", true).set_function("body", std::move(body));
  return a;
}

std::vector<Row> rows() {
  const auto fl = [](DType d, std::initializer_list<int64_t> dims) { return T(d, dims); };
  std::vector<TensorType> x23 = {fl(f32, {2, 3})};
  return {
      // creation
      {Op::constant, {}, A().set_tensor("value", small_constant()), {fl(f32, {3})}},
      {Op::fill,
       {},
       A().set_ints("shape", {2, 3}).set_dtype("dtype", f32).set_float("value", 1.5),
       {fl(f32, {2, 3})}},
      {Op::range,
       {},
       A().set_int("start", 0).set_int("limit", 5).set_int("delta", 2).set_dtype("dtype", i64),
       {fl(i64, {3})}},
      {Op::linspace,
       {},
       A().set_float("start", 0.0).set_float("stop", 1.0).set_int("num", 5).set_dtype("dtype", f64),
       {fl(f64, {5})}},
      {Op::random_uniform,
       {},
       A().set_ints("shape", {3, 2})
           .set_dtype("dtype", f32)
           .set_float("minval", -1.0)
           .set_float("maxval", 1.0)
           .set_int("seed", 42),
       {fl(f32, {3, 2})}},
      {Op::random_uniform_at,
       {fl(i64, {})},
       A().set_ints("shape", {3, 2})
           .set_dtype("dtype", f32)
           .set_float("minval", 0.0)
           .set_float("maxval", 1.0)
           .set_int("seed", 7),
       {fl(f32, {3, 2})}},
      {Op::random_normal,
       {},
       A().set_ints("shape", {4})
           .set_dtype("dtype", f64)
           .set_float("mean", 0.0)
           .set_float("stddev", 2.0)
           .set_int("seed", -7),
       {fl(f64, {4})}},
      {Op::one_hot,
       {fl(i32, {3})},
       A().set_int("depth", 4)
           .set_float("on_value", 1.0)
           .set_float("off_value", 0.0)
           .set_int("axis", -1)
           .set_dtype("dtype", f32),
       {fl(f32, {3, 4})}},
      // elementwise unary
      {Op::neg, {fl(i32, {5})}, {}, {fl(i32, {5})}},
      {Op::abs, {fl(f64, {2, 2})}, {}, {fl(f64, {2, 2})}},
      {Op::sign, {fl(i64, {3})}, {}, {fl(i64, {3})}},
      {Op::exp, x23, {}, x23},
      {Op::log, x23, {}, x23},
      {Op::sqrt, x23, {}, x23},
      {Op::rsqrt, {fl(f64, {4})}, {}, {fl(f64, {4})}},
      {Op::square, {fl(i32, {0, 3})}, {}, {fl(i32, {0, 3})}},
      {Op::reciprocal, x23, {}, x23},
      {Op::sin, x23, {}, x23},
      {Op::cos, x23, {}, x23},
      {Op::tanh, {fl(f32, {})}, {}, {fl(f32, {})}},
      {Op::sigmoid, x23, {}, x23},
      {Op::relu, {fl(i64, {4})}, {}, {fl(i64, {4})}},
      {Op::elu, x23, A().set_float("alpha", 0.5), x23},
      {Op::softplus, x23, {}, x23},
      {Op::gelu, x23, A().set_bool("approximate", true), x23},
      {Op::erf, {fl(f64, {4})}, {}, {fl(f64, {4})}},
      {Op::log1p, x23, {}, x23},
      {Op::expm1, {fl(f32, {})}, {}, {fl(f32, {})}},
      {Op::floor, x23, {}, x23},
      {Op::ceil, x23, {}, x23},
      {Op::round, {fl(f64, {1, 1})}, {}, {fl(f64, {1, 1})}},
      {Op::logical_not, {fl(boolean, {4})}, {}, {fl(boolean, {4})}},
      {Op::cast, {fl(f32, {3})}, A().set_dtype("dtype", i64), {fl(i64, {3})}},
      // elementwise binary and select
      {Op::add, {fl(f32, {2, 3}), fl(f32, {3})}, {}, {fl(f32, {2, 3})}},
      {Op::sub, {fl(i32, {4}), fl(i32, {4})}, {}, {fl(i32, {4})}},
      {Op::mul, {fl(f64, {2, 1}), fl(f64, {1, 3})}, {}, {fl(f64, {2, 3})}},
      {Op::div, {fl(f32, {4}), fl(f32, {})}, {}, {fl(f32, {4})}},
      {Op::pow, {fl(f32, {2}), fl(f32, {2})}, {}, {fl(f32, {2})}},
      {Op::maximum, {fl(i64, {3}), fl(i64, {1})}, {}, {fl(i64, {3})}},
      {Op::minimum, {fl(f32, {3}), fl(f32, {3})}, {}, {fl(f32, {3})}},
      {Op::equal, {fl(f32, {3}), fl(f32, {3})}, {}, {fl(boolean, {3})}},
      {Op::not_equal, {fl(boolean, {2}), fl(boolean, {2})}, {}, {fl(boolean, {2})}},
      {Op::less, {fl(i32, {2, 2}), fl(i32, {2})}, {}, {fl(boolean, {2, 2})}},
      {Op::less_equal, {fl(f32, {3}), fl(f32, {3})}, {}, {fl(boolean, {3})}},
      {Op::greater, {fl(f64, {1}), fl(f64, {4})}, {}, {fl(boolean, {4})}},
      {Op::greater_equal, {fl(i64, {3}), fl(i64, {3})}, {}, {fl(boolean, {3})}},
      {Op::logical_and, {fl(boolean, {3}), fl(boolean, {3})}, {}, {fl(boolean, {3})}},
      {Op::logical_or, {fl(boolean, {2, 1}), fl(boolean, {3})}, {}, {fl(boolean, {2, 3})}},
      {Op::select, {fl(boolean, {2, 3}), fl(f32, {3}), fl(f32, {2, 1})}, {}, {fl(f32, {2, 3})}},
      // reductions
      {Op::reduce_sum, x23, A().set_ints("axes", {1}), {fl(f32, {2})}},
      {Op::reduce_mean,
       x23,
       A().set_ints("axes", {0, 1}).set_bool("keepdims", true),
       {fl(f32, {1, 1})}},
      {Op::reduce_max, {fl(i32, {4, 5})}, A().set_ints("axes", {-1}), {fl(i32, {4})}},
      {Op::reduce_min, {fl(f64, {3})}, A().set_ints("axes", {}), {fl(f64, {3})}},
      {Op::reduce_prod, {fl(f32, {2, 3, 4})}, A().set_ints("axes", {0, 2}), {fl(f32, {3})}},
      {Op::argmax, x23, A().set_int("axis", 1).set_dtype("dtype", i64), {fl(i64, {2})}},
      {Op::argmin, x23, A().set_int("axis", 0).set_dtype("dtype", i32), {fl(i32, {3})}},
      // linear algebra
      {Op::matmul,
       {fl(f32, {5, 3, 2}), fl(f32, {4, 3})},
       A().set_bool("transpose_a", true).set_bool("transpose_b", true),
       {fl(f32, {5, 2, 4})}},
      // shape and data movement
      {Op::reshape, x23, A().set_ints("shape", {3, -1}), {fl(f32, {3, 2})}},
      {Op::transpose, {fl(f32, {2, 3, 4})}, A().set_ints("perm", {2, 0, 1}), {fl(f32, {4, 2, 3})}},
      {Op::squeeze, {fl(f32, {1, 3, 1})}, A().set_ints("axes", {0, -1}), {fl(f32, {3})}},
      {Op::expand_dims, x23, A().set_int("axis", -1), {fl(f32, {2, 3, 1})}},
      {Op::broadcast_to, {fl(f32, {3})}, A().set_ints("shape", {2, 3}), {fl(f32, {2, 3})}},
      {Op::concat,
       {fl(f32, {2, 3}), fl(f32, {4, 3}), fl(f32, {0, 3})},
       A().set_int("axis", 0),
       {fl(f32, {6, 3})}},
      {Op::split,
       {fl(f32, {5, 2})},
       A().set_int("axis", 0).set_ints("sizes", {2, 0, 3}),
       {fl(f32, {2, 2}), fl(f32, {0, 2}), fl(f32, {3, 2})}},
      {Op::slice,
       {fl(f32, {5, 4})},
       A().set_ints("begin", {1, 3}).set_ints("end", {4, -1}).set_ints("strides", {2, -1}),
       {fl(f32, {2, 4})}},
      {Op::gather,
       {fl(f32, {5, 3}), fl(i32, {2, 2})},
       A().set_int("axis", 0),
       {fl(f32, {2, 2, 3})}},
      {Op::check_index,
       {fl(i64, {2, 3})},
       A().set_int("limit", 10).set_string("what", "label"),
       {fl(i64, {2, 3})}},
      {Op::pad,
       x23,
       A().set_ints("paddings", {1, 0, 2, 2}).set_float("value", -1.0),
       {fl(f32, {3, 7})}},
      {Op::tile, x23, A().set_ints("multiples", {2, 1}), {fl(f32, {4, 3})}},
      // neural-network ops
      {Op::conv2d,
       {fl(f32, {1, 5, 5, 2}), fl(f32, {3, 3, 2, 4})},
       A().set_ints("strides", {2, 2}).set_string("padding", "same").set_ints("dilations", {1, 1}),
       {fl(f32, {1, 3, 3, 4})}},
      {Op::max_pool2d,
       {fl(f32, {1, 4, 4, 3})},
       A().set_ints("ksize", {2, 2}).set_ints("strides", {2, 2}).set_string("padding", "valid"),
       {fl(f32, {1, 2, 2, 3})}},
      {Op::avg_pool2d,
       {fl(f64, {2, 5, 5, 1})},
       A().set_ints("ksize", {3, 3}).set_ints("strides", {2, 2}).set_string("padding", "same"),
       {fl(f64, {2, 3, 3, 1})}},
      {Op::conv2d_filter_grad,
       {fl(f32, {1, 5, 5, 2}), fl(f32, {1, 3, 3, 4})},
       A().set_ints("ksize", {3, 3}).set_ints("strides", {2, 2}).set_string("padding", "same"),
       {fl(f32, {3, 3, 2, 4})}},
      {Op::max_pool2d_grad,
       {fl(f64, {2, 5, 5, 1}), fl(f64, {2, 3, 3, 1}), fl(f64, {2, 3, 3, 1})},
       A().set_ints("ksize", {3, 3}).set_ints("strides", {2, 2}).set_string("padding", "same"),
       {fl(f64, {2, 5, 5, 1})}},
      {Op::softmax, x23, A().set_int("axis", -1), x23},
      {Op::log_softmax, {fl(f64, {4})}, A().set_int("axis", 0), {fl(f64, {4})}},
      // images
      {Op::image_resize,
       {fl(f32, {2, 4, 6, 3})},
       A().set_ints("size", {3, 9}).set_string("method", "bilinear"),
       {fl(f32, {2, 3, 9, 3})}},
      {Op::image_transform,
       {fl(f64, {2, 5, 5, 1}), fl(f64, {2, 8})},
       A().set_string("interpolation", "nearest")
           .set_string("fill_mode", "constant")
           .set_float("fill_value", -1.5),
       {fl(f64, {2, 5, 5, 1})}},
      // control flow
      {Op::scan,
       {fl(f32, {2}), fl(f32, {3, 2})},
       scan_attrs(),
       {fl(f32, {2}), fl(f32, {3, 2}), fl(f32, {3, 2})}},
      // a few more rows for dtype and attribute variety
      {Op::constant,
       {},
       A().set_tensor("value", HostTensor::scalar<int64_t>(INT64_MIN)),
       {fl(i64, {})}},
      {Op::conv2d,
       {fl(f32, {1, 5, 5, 2}), fl(f32, {3, 3, 2, 4})},
       A().set_string("padding", "valid"),
       {fl(f32, {1, 3, 3, 4})}},
      {Op::fill,
       {},
       A().set_ints("shape", {2}).set_dtype("dtype", boolean).set_int("value", 1),
       {fl(boolean, {2})}},
  };
}

// A function with one parameter per operand and the row's node (scope and location set).
Function build(const Row& row, bool infer) {
  Function f(fmt::format("{}_test", op_name(row.op)));
  std::vector<Value*> params;
  for (size_t i = 0; i < row.inputs.size(); ++i) {
    params.push_back(f.add_param(row.inputs[i], std::string(1, static_cast<char>('a' + i))));
  }
  std::string scope = fmt::format("model/{}", op_name(row.op));
  SourceLoc loc{"model.cpp", 10, 3};
  Node* node = infer ? f.append(row.op, params, row.attrs, scope, loc)
                     : f.append_unchecked(row.op, params, row.attrs, row.outputs, scope, loc);
  std::vector<Value*> outputs;
  for (size_t i = 0; i < node->num_outputs(); ++i)
    outputs.push_back(node->output(i));
  f.set_outputs(outputs);
  return f;
}

void check_round_trip(const Function& f, const ParseOptions& options) {
  for (bool locations : {false, true}) {
    std::string text = print(f, {.locations = locations});
    INFO(text);
    Function g = parse(text, options);
    CHECK(print(g, {.locations = locations}) == text);
    REQUIRE(g.nodes().size() == 1);
    CHECK(g.nodes()[0]->attrs() == f.nodes()[0]->attrs());
    CHECK(g.nodes()[0]->output_types() == f.nodes()[0]->output_types());
    CHECK(g.nodes()[0]->scope() == f.nodes()[0]->scope());
    if (locations) CHECK(g.nodes()[0]->loc() == f.nodes()[0]->loc());
  }
}

}  // namespace

TEST_CASE("the round-trip table covers every op in ops.def", "[ir][roundtrip]") {
  std::set<Op> covered;
  for (const Row& row : rows())
    covered.insert(row.op);
  for (int i = 0; i < kNumOps; ++i) {
    INFO("op " << op_name(static_cast<Op>(i)) << " has no row");
    CHECK(covered.count(static_cast<Op>(i)) == 1);
  }
}

TEST_CASE("every op's text round-trips (no inference)", "[ir][roundtrip]") {
  for (const Row& row : rows()) {
    DYNAMIC_SECTION(op_name(row.op)) {
      check_round_trip(build(row, false), ParseOptions{.verify = false});
    }
  }
}

TEST_CASE("every op's rule infers the documented result types", "[ir][roundtrip]") {
  for (const Row& row : rows()) {
    DYNAMIC_SECTION(op_name(row.op)) {
      std::vector<TensorType> got;
      REQUIRE_NOTHROW(got = infer_types(row.op, row.inputs, row.attrs));
      CHECK(types_to_string(got) == types_to_string(row.outputs));
    }
  }
}

TEST_CASE("every op round-trips through the verifying parser", "[ir][roundtrip]") {
  for (const Row& row : rows()) {
    DYNAMIC_SECTION(op_name(row.op)) {
      Function f = build(row, true);
      CHECK_NOTHROW(verify(f));
      check_round_trip(f, ParseOptions{});
    }
  }
}

TEST_CASE("every op has an interpreter kernel and an emitter that agree on its row",
          "[ir][roundtrip][codegen]") {
  for (const Row& row : rows()) {
    // A scan kernel needs its body's plans (plan_kernels makes them): scan_codegen_test.cpp.
    if (row.op == Op::scan) continue;
    DYNAMIC_SECTION(op_name(row.op)) {
      Function f = build(row, true);
      // Floats and bools sampled; integer operands (indices, steps) 0, valid for every row.
      std::vector<HostTensor> args;
      uint32_t seed = 1;
      for (const TensorType& t : row.inputs) {
        const bool integer = is_numeric(t.dtype) && !is_floating(t.dtype);
        args.push_back(integer ? HostTensor(t) : kiln::testing::sample(t, seed++, false));
      }
      kiln::testing::check_against_interpreter(f, args, 1e-5);
    }
  }
}

TEST_CASE("mutated rows parse or throw ParseError (rules see odd attributes)",
          "[ir][roundtrip][fuzz]") {
  std::mt19937 rng(99);
  const std::vector<std::string> numbers = {"0",
                                            "-1",
                                            "1",
                                            "-9223372036854775808",
                                            "9223372036854775807",
                                            "4611686018427387904",
                                            "2147483648",
                                            "-3",
                                            "1000000"};
  for (const Row& row : rows()) {
    std::string base = print(build(row, false));
    for (int iter = 0; iter < 60; ++iter) {
      std::string text = base;
      for (int e = 0; e < 2; ++e) {
        size_t pos = text.find_first_of("0123456789", rng() % text.size());
        if (pos == std::string::npos) continue;
        size_t end = text.find_first_not_of("0123456789", pos);
        text.replace(pos, end - pos, numbers[rng() % numbers.size()]);
      }
      INFO(text);
      try {
        Function f = parse(text);
        CHECK_NOTHROW(verify(f));
      } catch (const ParseError&) {
        // rejected with a position: fine
      }
    }
  }
}
