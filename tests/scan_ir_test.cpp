// The `scan` op in the IR (issue 15): function-valued attributes, the op's shape rule, the
// verifier's recursion into bodies, the nested text form and the dot drawing.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <memory>

#include "kiln/ir/dot.h"
#include "kiln/ir/error.h"
#include "kiln/ir/infer.h"
#include "kiln/ir/ops/control.h"
#include "kiln/ir/parser.h"
#include "kiln/ir/printer.h"
#include "kiln/ir/verifier.h"
#include "kiln/passes/cse.h"

#include "error_test_util.h"

using namespace kiln;
using namespace kiln::ir;
using kiln::testing::error_of;

namespace {

TensorType T(DType dtype, std::initializer_list<int64_t> dims) {
  return {dtype, Shape(dims)};
}

// step(c, x, k) = (c + x * k, c): one carry, one xs, one const, one y.
std::shared_ptr<const Function> step_body(DType dtype = DType::f32, int64_t n = 2) {
  auto f = std::make_shared<Function>("step");
  Value* c = f->add_param(T(dtype, {n}), "c");
  Value* x = f->add_param(T(dtype, {n}), "x");
  Value* k = f->add_param(T(dtype, {}), "k");
  Value* xk = f->append(Op::mul, {x, k})->output();
  Value* next = f->append(Op::add, {c, xk})->output();
  f->set_outputs({next, c});
  return f;
}

Attrs scan_attrs_for(std::shared_ptr<const Function> body, int64_t carries, int64_t xs,
                     int64_t length, bool save = false) {
  Attrs a;
  a.set_int("carries", carries).set_int("xs", xs).set_int("length", length);
  a.set_bool("reverse", false).set_bool("save_carries", save);
  a.set_function("body", std::move(body));
  return a;
}

const char* kCumsum =
    R"(func @cumsum(%init: f32[2], %xs: f32[3,2], %k: f32[]) -> (f32[2], f32[3,2]) {
  %0, %1 = scan(%init, %xs, %k) {carries = 1, length = 3, reverse = false, save_carries = false, xs = 1} : f32[2], f32[3,2]  scope "rnn"
    body func @step(%c: f32[2], %x: f32[2], %k: f32[]) -> (f32[2], f32[2]) {
      %0 = mul(%x, %k) : f32[2]
      %1 = add(%c, %0) : f32[2]
      return %1, %c
    }
  return %0, %1
}
)";

// A scan whose body holds another scan (over the rows of a [2,2] step).
const char* kNested = R"(func @nested(%init: f64[], %xs: f64[3,2,2]) -> (f64[], f64[3,2,2]) {
  %0, %1, %2 = scan(%init, %xs) {carries = 1, length = 3, reverse = true, save_carries = true, xs = 1} : f64[], f64[3,2,2], f64[3]
    body func @outer(%c: f64[], %x: f64[2,2]) -> (f64[], f64[2,2]) {
      %0, %1 = scan(%c, %x) {carries = 1, length = 2, reverse = false, save_carries = false, xs = 1} : f64[], f64[2,2]
        body func @inner(%d: f64[], %row: f64[2]) -> (f64[], f64[2]) {
          %0 = reduce_sum(%row) {axes = [0], keepdims = false} : f64[]
          %1 = add(%d, %0) : f64[]
          %2 = mul(%row, %d) : f64[2]
          return %1, %2
        }
      return %0, %1
    }
  return %0, %1
}
)";

}  // namespace

// ---- step 1: FunctionAttr -----------------------------------------------------------------------

TEST_CASE("function attributes compare and hash by their text", "[ir][scan]") {
  FunctionAttr a(step_body());
  FunctionAttr b(step_body());  // built separately, same text
  FunctionAttr c(step_body(DType::f64));
  CHECK(&a.function() != &b.function());
  CHECK(a == b);
  CHECK(a.hash() == b.hash());
  CHECK(attr_equal(AttrValue(a), AttrValue(b)));
  CHECK_FALSE(a == c);
  CHECK_FALSE(attr_equal(AttrValue(a), AttrValue(c)));
  CHECK(a.text() == print(a.function()));
  CHECK(attr_to_string(AttrValue(a)) == "func @step");
}

TEST_CASE("Attrs hold functions: getter, equality, left out of the {...} text", "[ir][scan]") {
  Attrs attrs = scan_attrs_for(step_body(), 1, 1, 3);
  CHECK(attrs.get_function("body").function().name() == "step");
  CHECK(attrs == scan_attrs_for(step_body(), 1, 1, 3));
  CHECK_FALSE(attrs == scan_attrs_for(step_body(DType::f64), 1, 1, 3));
  CHECK(attrs.to_string() ==
        "{carries = 1, length = 3, reverse = false, save_carries = false, xs = 1}");
  CHECK(Attrs().set_function("f", step_body()).to_string().empty());
  CHECK_THAT(error_of<ValueError>([&] { attrs.get_function("nothing"); }),
             Catch::Contains("missing attribute 'nothing' (function)"));
  CHECK_THAT(error_of<ValueError>([&] { attrs.get_function("length"); }),
             Catch::Contains("attribute 'length' must be a function, got a int"));
  CHECK_THAT(error_of<ValueError>([&] { attrs.get_int("body"); }),
             Catch::Contains("got a function (func @step)"));
}

TEST_CASE("cloning a function shares its scan bodies", "[ir][scan]") {
  Function f = parse(kCumsum);
  Function g = f.clone();
  const auto& a = f.nodes()[0]->attrs().get_function("body");
  const auto& b = g.nodes()[0]->attrs().get_function("body");
  CHECK(a.shared().get() == b.shared().get());
  CHECK(print(g) == print(f));
}

TEST_CASE("CSE merges scans with the same operands and body text", "[ir][scan]") {
  Function f("two");
  Value* init = f.add_param(T(DType::f32, {2}), "init");
  Value* xs = f.add_param(T(DType::f32, {3, 2}), "xs");
  Value* k = f.add_param(T(DType::f32, {}), "k");
  Node* a = f.append(Op::scan, {init, xs, k}, scan_attrs_for(step_body(), 1, 1, 3));
  Node* b = f.append(Op::scan, {init, xs, k}, scan_attrs_for(step_body(), 1, 1, 3));
  Node* c = f.append(Op::scan, {init, xs, k}, scan_attrs_for(step_body(), 1, 1, 3, true));
  f.set_outputs({a->output(1), b->output(1), c->output(1)});
  CHECK(passes::eliminate_common_subexpressions(f));
  CHECK(f.outputs()[0] == f.outputs()[1]);
  CHECK(f.outputs()[0] != f.outputs()[2]);  // save_carries differs
  CHECK_NOTHROW(verify(f));
}

// ---- step 2: the op
// ------------------------------------------------------------------------------

TEST_CASE("scan infers final carries, stacked ys and saved carries", "[ir][scan]") {
  std::vector<TensorType> in = {T(DType::f32, {2}), T(DType::f32, {3, 2}), T(DType::f32, {})};
  CHECK(infer_types(Op::scan, in, scan_attrs_for(step_body(), 1, 1, 3)) ==
        std::vector<TensorType>{T(DType::f32, {2}), T(DType::f32, {3, 2})});
  CHECK(infer_types(Op::scan, in, scan_attrs_for(step_body(), 1, 1, 3, true)) ==
        std::vector<TensorType>{T(DType::f32, {2}), T(DType::f32, {3, 2}), T(DType::f32, {3, 2})});
  // length 0: empty stacks
  std::vector<TensorType> empty = {T(DType::f32, {2}), T(DType::f32, {0, 2}), T(DType::f32, {})};
  CHECK(infer_types(Op::scan, empty, scan_attrs_for(step_body(), 1, 1, 0)) ==
        std::vector<TensorType>{T(DType::f32, {2}), T(DType::f32, {0, 2})});
}

TEST_CASE("scan's rule rejects bad attributes", "[ir][scan]") {
  std::vector<TensorType> in = {T(DType::f32, {2}), T(DType::f32, {3, 2}), T(DType::f32, {})};
  CHECK_THAT(error_of<ValueError>(
                 [&] { infer_types(Op::scan, in, scan_attrs_for(step_body(), -1, 1, 3)); }),
             Catch::Contains("'carries' must be non-negative, got -1"));
  CHECK_THAT(error_of<ValueError>(
                 [&] { infer_types(Op::scan, in, scan_attrs_for(step_body(), 1, 1, -2)); }),
             Catch::Contains("'length' must be non-negative, got -2"));
  CHECK_THAT(error_of<ValueError>(
                 [&] { infer_types(Op::scan, in, scan_attrs_for(step_body(), 2, 2, 3)); }),
             Catch::Contains("carries = 2 and xs = 2 need at least 4 operands, got 3"));
  Attrs no_body = scan_attrs_for(step_body(), 1, 1, 3);
  no_body.set_int("body", 1);
  CHECK_THAT(error_of<ValueError>([&] { infer_types(Op::scan, in, no_body); }),
             Catch::Contains("attribute 'body' must be a function"));
  Attrs no_reverse = scan_attrs_for(step_body(), 1, 1, 3);
  no_reverse.set_int("reverse", 0);
  CHECK_THAT(error_of<ValueError>([&] { infer_types(Op::scan, in, no_reverse); }),
             Catch::Contains("attribute 'reverse' must be a bool"));
}

TEST_CASE("scan's rule rejects a body that does not fit the operands", "[ir][scan]") {
  std::vector<TensorType> in = {T(DType::f32, {2}), T(DType::f32, {3, 2}), T(DType::f32, {})};
  SECTION("parameter count") {
    std::vector<TensorType> two = {in[0], in[1]};
    CHECK_THAT(error_of<ValueError>(
                   [&] { infer_types(Op::scan, two, scan_attrs_for(step_body(), 1, 1, 3)); }),
               Catch::Contains("the body @step takes 3 parameters but the scan passes 2 (1 "
                               "carries, 1 xs, 0 consts)"));
  }
  SECTION("fewer results than carries") {
    auto body = std::make_shared<Function>("few");
    Value* c = body->add_param(in[0], "c");
    Value* d = body->add_param(in[0], "d");
    body->add_param(in[2], "k");
    body->set_outputs({c});
    (void)d;
    std::vector<TensorType> ops = {in[0], in[0], in[2]};
    CHECK_THAT(
        error_of<ValueError>([&] { infer_types(Op::scan, ops, scan_attrs_for(body, 2, 0, 3)); }),
        Catch::Contains("the body @few returns 1 values but the scan has 2 carries"));
  }
  SECTION("a body with state") {
    auto body = std::make_shared<Function>("stateful");
    Value* c = body->add_param(in[0], "c");
    Value* next = body->append(Op::neg, {c})->output();
    body->set_outputs({next});
    body->add_update(c, next);
    std::vector<TensorType> ops = {in[0]};
    CHECK_THAT(
        error_of<ValueError>([&] { infer_types(Op::scan, ops, scan_attrs_for(body, 1, 0, 3)); }),
        Catch::Contains("the body @stateful updates a parameter"));
  }
  SECTION("a scalar xs") {
    std::vector<TensorType> ops = {in[0], T(DType::f32, {}), in[2]};
    CHECK_THAT(error_of<ShapeError>(
                   [&] { infer_types(Op::scan, ops, scan_attrs_for(step_body(), 1, 1, 3)); }),
               Catch::Contains("xs 0 is a scalar (f32[])"));
  }
  SECTION("xs of another length") {
    std::vector<TensorType> ops = {in[0], T(DType::f32, {4, 2}), in[2]};
    CHECK_THAT(error_of<ShapeError>(
                   [&] { infer_types(Op::scan, ops, scan_attrs_for(step_body(), 1, 1, 3)); }),
               Catch::Contains("xs 0 (f32[4,2]) has leading dimension 4 but length = 3"));
  }
  SECTION("a carry of another dtype or shape") {
    std::vector<TensorType> ops = {T(DType::f64, {2}), in[1], in[2]};
    CHECK_THAT(error_of<TypeError>(
                   [&] { infer_types(Op::scan, ops, scan_attrs_for(step_body(), 1, 1, 3)); }),
               Catch::Contains("carry 0: the body's parameter %c has type f32[2] but the scan "
                               "passes f64[2]"));
    ops = {T(DType::f32, {5}), in[1], in[2]};
    CHECK_THAT(error_of<ShapeError>(
                   [&] { infer_types(Op::scan, ops, scan_attrs_for(step_body(), 1, 1, 3)); }),
               Catch::Contains("carry 0: the body's parameter %c has type f32[2]"));
  }
  SECTION("a step of xs of another shape") {
    std::vector<TensorType> ops = {in[0], T(DType::f32, {3, 4}), in[2]};
    CHECK_THAT(error_of<ShapeError>(
                   [&] { infer_types(Op::scan, ops, scan_attrs_for(step_body(), 1, 1, 3)); }),
               Catch::Contains("xs 0: the body's parameter %x has type f32[2] but the scan "
                               "passes f32[4] (one step)"));
  }
  SECTION("a const of another type") {
    std::vector<TensorType> ops = {in[0], in[1], T(DType::f32, {1})};
    CHECK_THAT(error_of<ShapeError>(
                   [&] { infer_types(Op::scan, ops, scan_attrs_for(step_body(), 1, 1, 3)); }),
               Catch::Contains("const 0: the body's parameter %k has type f32[] but the scan "
                               "passes f32[1]"));
  }
  SECTION("the body returns a carry of another type") {
    auto body = std::make_shared<Function>("grow");
    Value* c = body->add_param(T(DType::f32, {2}), "c");
    Value* wide = body->append(Op::concat, {c, c}, Attrs().set_int("axis", 0))->output();
    Value* as_int = body->append(Op::cast, {c}, Attrs().set_dtype("dtype", DType::i32))->output();
    body->set_outputs({wide});
    std::vector<TensorType> ops = {in[0]};
    CHECK_THAT(
        error_of<ShapeError>([&] { infer_types(Op::scan, ops, scan_attrs_for(body, 1, 0, 3)); }),
        Catch::Contains("carry 0: the body returns f32[4] for a carry of type f32[2]"));
    body->set_outputs({as_int});
    CHECK_THAT(
        error_of<TypeError>([&] { infer_types(Op::scan, ops, scan_attrs_for(body, 1, 0, 3)); }),
        Catch::Contains("carry 0: the body returns i32[2] for a carry of type f32[2]"));
  }
  SECTION("stacked results too large") {
    std::vector<TensorType> ops = {in[0], T(DType::f32, {INT64_MAX / 2, 2}), in[2]};
    CHECK_THROWS_AS(infer_types(Op::scan, ops, scan_attrs_for(step_body(), 1, 1, INT64_MAX / 2)),
                    ShapeError);
  }
}

TEST_CASE("scan text round-trips with its body nested under the node", "[ir][scan]") {
  for (const char* text : {kCumsum, kNested}) {
    INFO(text);
    Function f = parse(text);
    CHECK(print(f) == text);
    CHECK_NOTHROW(verify(f));
    std::string with_locs = print(f, {.locations = true});
    CHECK(print(parse(with_locs), {.locations = true}) == with_locs);
    // Unverified parsing reads the same.
    CHECK(print(parse(text, {.verify = false})) == text);
  }
  Function nested = parse(kNested);
  const Function& outer = nested.nodes()[0]->attrs().get_function("body").function();
  CHECK(outer.name() == "outer");
  CHECK(outer.nodes()[0]->attrs().get_function("body").function().name() == "inner");
}

TEST_CASE("a printed scan built in C++ parses back to the same attributes", "[ir][scan]") {
  Function f("built");
  Value* init = f.add_param(T(DType::f32, {2}), "init");
  Value* xs = f.add_param(T(DType::f32, {3, 2}), "xs");
  Value* k = f.add_param(T(DType::f32, {}), "k");
  Node* n = f.append(Op::scan, {init, xs, k}, scan_attrs_for(step_body(), 1, 1, 3, true), "s",
                     SourceLoc{"model.cpp", 7, 2});
  f.set_outputs({n->output(0), n->output(1), n->output(2)});
  Function g = parse(print(f, {.locations = true}));
  CHECK(g.nodes()[0]->attrs() == f.nodes()[0]->attrs());
  CHECK(g.nodes()[0]->loc() == f.nodes()[0]->loc());
  CHECK(print(g) == print(f));
}

TEST_CASE("the parser rejects malformed bodies with a position", "[ir][scan]") {
  auto body_line = [](std::string_view replace_with) {
    std::string text = kCumsum;
    std::string from = "    body func @step";
    text.replace(text.find(from), from.size(), std::string(replace_with));
    return text;
  };
  CHECK_THAT(error_of<ParseError>([&] { parse(body_line("    body @step")); }),
             Catch::Contains("expected 'func' after the function attribute name 'body'"));
  // A body can name only its own parameters.
  std::string outer_ref = kCumsum;
  outer_ref.replace(outer_ref.find("add(%c, %0)"), 11, "add(%init, %0)");
  CHECK_THAT(error_of<ParseError>([&] { parse(outer_ref); }),
             Catch::Contains("use of undefined value %init"));
  // The body's rule still applies: a body returning two carries for one.
  std::string two = kCumsum;
  two.replace(two.find("carries = 1"), 11, "carries = 2");
  CHECK_THAT(error_of<ParseError>([&] { parse(two); }),
             Catch::Contains("xs 0 is a scalar (f32[])"));  // %k is now the xs
  // An unknown op without results after a node is still an unknown op.
  std::string unknown = kCumsum;
  unknown.replace(unknown.find("  return %0, %1\n}"), 0, "  fooo(%k) : ()\n");
  CHECK_THAT(error_of<ParseError>([&] { parse(unknown); }), Catch::Contains("unknown op 'fooo'"));
  // A scan without its body.
  std::string none = R"(func @f(%c: f32[]) -> f32[] {
  %0 = scan(%c) {carries = 1, length = 2, reverse = false, save_carries = false, xs = 0} : f32[]
  return %0
}
)";
  CHECK_THAT(error_of<ParseError>([&] { parse(none); }),
             Catch::Contains("missing attribute 'body' (function)"));
  // A duplicate body.
  std::string dup = kCumsum;
  size_t at = dup.find("    body func");
  size_t end = dup.find("    }\n", at) + 6;
  dup.insert(end, dup.substr(at, end - at));
  CHECK_THAT(error_of<ParseError>([&] { parse(dup); }),
             Catch::Contains("duplicate attribute 'body'"));
}

TEST_CASE("bodies nested too deep are a ParseError, not a stack overflow", "[ir][scan][fuzz]") {
  // depth d: a scan whose body holds a scan ... whose innermost body negates its carry.
  auto nested = [](int depth) {
    std::string text = "func @f0(%c: f32[]) -> f32[] {\n  return %c\n}\n";
    for (int d = 1; d <= depth; ++d) {
      std::string indented;
      size_t start = 0;
      while (start < text.size()) {
        size_t end = text.find('\n', start);
        indented += "    " + text.substr(start, end - start) + "\n";
        start = end + 1;
      }
      text = fmt::format(
          "func @f{}(%c: f32[]) -> f32[] {{\n  %0 = scan(%c) {{carries = 1, length = 1, reverse = "
          "false, save_carries = false, xs = 0}} : f32[]\n{}  return %0\n}}\n",
          d, "    body " + indented.substr(4));
    }
    return text;
  };
  Function ok = parse(nested(32));
  CHECK(print(ok) == nested(32));
  CHECK_THAT(error_of<ParseError>([&] { parse(nested(33)); }),
             Catch::Contains("functions nested more than 32 deep"));
  CHECK_THROWS_AS(parse(nested(200)), ParseError);
}

TEST_CASE("the verifier checks scan bodies", "[ir][scan]") {
  // A body node whose written type disagrees with its rule.
  auto body = std::make_shared<Function>("bad");
  Value* c = body->add_param(T(DType::f32, {2}), "c");
  Node* wrong = body->append_unchecked(Op::neg, {c}, {}, {T(DType::f32, {2})});
  Node* n2 = body->append_unchecked(Op::add, {c, wrong->output()}, {}, {T(DType::f32, {3})});
  body->set_outputs({wrong->output(), n2->output()});
  Function f("outer");
  Value* init = f.add_param(T(DType::f32, {2}), "init");
  Node* scan =
      f.append_unchecked(Op::scan, {init}, scan_attrs_for(body, 1, 0, 4),
                         {T(DType::f32, {2}), T(DType::f32, {4, 3})}, "rnn", SourceLoc{"m.cpp", 3});
  f.set_outputs({scan->output(0)});
  std::string msg = error_of<VerifyError>([&] { verify(f); });
  CHECK_THAT(msg, Catch::Contains("invalid IR in @outer: node 0"));
  CHECK_THAT(msg, Catch::Contains("in the body of node 0: invalid IR in @bad: node 1"));
  CHECK_THAT(msg, Catch::Contains("result types are (f32[3])"));
  // The node's own result types are checked as for any op.
  auto good = step_body();
  Function g("outer");
  Value* gi = g.add_param(T(DType::f32, {2}), "init");
  Value* gx = g.add_param(T(DType::f32, {3, 2}), "xs");
  Value* gk = g.add_param(T(DType::f32, {}), "k");
  Node* gs = g.append_unchecked(Op::scan, {gi, gx, gk}, scan_attrs_for(good, 1, 1, 3),
                                {T(DType::f32, {2}), T(DType::f32, {2, 2})});
  g.set_outputs({gs->output(0)});
  CHECK_THAT(error_of<VerifyError>([&] { verify(g); }),
             Catch::Contains("but the op's rule infers (f32[2], f32[3,2])"));
}

TEST_CASE("dot draws a scan as one box naming its body", "[ir][scan]") {
  std::string dot = to_dot(parse(kCumsum), {.expand = true});
  CHECK_THAT(dot, Catch::Contains("scan\\nf32[2], f32[3,2]\\nbody: @step (2 nodes)"));
}
