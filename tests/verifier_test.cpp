// ir::verify: a well-formed function passes; each kind of ill-formed function is rejected with a
// message naming the node, the op, its scope and location.
#include <catch2/catch.hpp>

#include <utility>

#include "kiln/ir/parser.h"
#include "kiln/ir/printer.h"
#include "kiln/ir/verifier.h"

using namespace kiln;
using namespace kiln::ir;

namespace {

TensorType f32(std::initializer_list<int64_t> dims) {
  return {DType::f32, Shape(dims)};
}

const char* const kValid = R"(func @valid(%x: f32[4], %w: f32[2,2]) -> (f32[4], f32[2,2]) {
  %0 = mul(%x, %x) : f32[4]
  %1 = constant() {value = dense<f32[]: 10.0>} : f32[]
  %2 = mul(%0, %1) : f32[4]  scope "dense_1/matmul"
  %3, %4 = split(%x) {axis = 0, sizes = [2, 2]} : f32[2], f32[2]
  %5 = add(%w, %w) : f32[2,2]  scope "s" loc "file.cpp":12:5
  return %2, %5
  update %w = %5
}
)";

// Parses text the verifier should reject, without the parser's own checks.
Function unchecked(const char* text) {
  return parse(text, ParseOptions{.verify = false});
}

}  // namespace

TEST_CASE("verify accepts well-formed functions", "[ir][verifier]") {
  CHECK_NOTHROW(verify(parse(kValid)));
  Function f("built");
  Value* x = f.add_param(f32({2, 3}), "x");
  Node* n = f.append(Op::reduce_sum, {x}, Attrs().set_ints("axes", {1}));
  f.set_outputs({n->output(), x});
  f.add_update(x, x);
  CHECK_NOTHROW(verify(f));
  CHECK_NOTHROW(verify(Function("empty")));
}

TEST_CASE("verify: operand not defined before use", "[ir][verifier]") {
  Function f("order");
  Value* x = f.add_param(f32({4}), "x");
  Node* a = f.append_unchecked(Op::neg, {x}, {}, {f32({4})}, "blk/a", SourceLoc{"model.cpp", 3, 9});
  Node* b = f.append_unchecked(Op::abs, {a->output()}, {}, {f32({4})}, "blk/b",
                               SourceLoc{"model.cpp", 4, 9});
  f.set_outputs({b->output()});
  CHECK_NOTHROW(verify(f));
  std::swap(f.mutable_nodes()[0], f.mutable_nodes()[1]);  // abs now reads neg's result too early
  CHECK_THROWS_AS(verify(f), VerifyError);
  CHECK_THROWS_WITH(verify(f),
                    Catch::StartsWith("invalid IR in @order: node 0 `%0 = abs(%1) : f32[4]"));
  CHECK_THROWS_WITH(verify(f), Catch::Contains("operand 0 is not defined before use"));
  CHECK_THROWS_WITH(verify(f), Catch::Contains("at model.cpp:4:9 (scope blk/b)"));

  Function other("other");
  Value* foreign = other.add_param(f32({4}), "y");
  Function g("foreign");
  g.add_param(f32({4}), "x");
  g.append_unchecked(Op::neg, {foreign}, {}, {f32({4})});
  CHECK_THROWS_WITH(verify(g),
                    Catch::Contains("node 0 `%0 = neg(%<undefined y>) : f32[4]`: operand 0 "
                                    "is not defined before use"));
}

TEST_CASE("verify: result types differ from the op's rule", "[ir][verifier]") {
  Function f = unchecked(R"(func @f(%x: f32[4]) -> f32[5] {
  %0 = neg(%x) : f32[5]  scope "s1" loc "a.cpp":1:2
  return %0
})");
  CHECK_THROWS_AS(verify(f), VerifyError);
  CHECK_THROWS_WITH(verify(f),
                    Catch::Contains("result types are (f32[5]) but the op's rule infers (f32[4])"));
  CHECK_THROWS_WITH(verify(f), Catch::Contains("`%0 = neg(%x) : f32[5]  scope \"s1\"`"));
  CHECK_THROWS_WITH(verify(f), Catch::Contains("at a.cpp:1:2 (scope s1)"));

  Function g = unchecked(R"(func @g(%x: i32[4]) -> (f32[4], f32[4]) {
  %0, %1 = neg(%x) : f32[4], f32[4]
  return %0, %1
})");
  CHECK_THROWS_WITH(
      verify(g),
      Catch::Contains("result types are (f32[4], f32[4]) but the op's rule infers (i32[4])"));
}

TEST_CASE("verify: the op's rule rejects the node", "[ir][verifier]") {
  Function f = unchecked(R"(func @f(%x: f32[4]) -> (f32[2], f32[1]) {
  %0, %1 = split(%x) {axis = 0, sizes = [2, 1]} : f32[2], f32[1]  scope "sp"
  return %0, %1
})");
  CHECK_THROWS_AS(verify(f), VerifyError);
  CHECK_THROWS_WITH(verify(f),
                    Catch::Contains("node 0 `%0, %1 = split(%x) {axis = 0, sizes = [2, 1]}"));
  CHECK_THROWS_WITH(verify(f), Catch::Contains("the op's rule rejects it: split: "));
  CHECK_THROWS_WITH(verify(f), Catch::Contains("(scope sp)"));

  Function g = unchecked(R"(func @g(%x: bool[4]) -> f32[4] {
  %0 = sqrt(%x) : f32[4]
  return %0
})");
  CHECK_THROWS_WITH(verify(g), Catch::Contains("the op's rule rejects it: sqrt: "));
  Function h = unchecked(R"(func @h(%x: f32[4]) -> f32[4] {
  %0 = add(%x) : f32[4]
  return %0
})");
  CHECK_THROWS_WITH(verify(h), Catch::Contains("add: expects 2 operands, got 1"));
}

TEST_CASE("verify: outputs must be values of the function", "[ir][verifier]") {
  Function other("other");
  Value* foreign = other.add_param(f32({4}), "y");
  Function f("f");
  Value* x = f.add_param(f32({4}), "x");
  f.set_outputs({x, foreign});
  CHECK_THROWS_AS(verify(f), VerifyError);
  CHECK_THROWS_WITH(verify(f),
                    Catch::Contains("output 1 (%<undefined y>) is not a value of this function"));
  f.set_outputs({nullptr});
  CHECK_THROWS_WITH(verify(f), Catch::Contains("output 0 is null"));
}

TEST_CASE("verify: updates", "[ir][verifier]") {
  const char* not_param = R"(func @f(%x: f32[4]) -> () {
  %0 = neg(%x) : f32[4]
  return
  update %0 = %x
})";
  CHECK_THROWS_AS(verify(unchecked(not_param)), VerifyError);
  CHECK_THROWS_WITH(
      verify(unchecked(not_param)),
      Catch::Contains("`update %0 = %x`: the update target is not a parameter of this function"));

  const char* wrong_type = R"(func @f(%x: f32[4], %y: f32[2]) -> () {
  return
  update %x = %y
})";
  CHECK_THROWS_WITH(
      verify(unchecked(wrong_type)),
      Catch::Contains(
          "`update %x = %y`: parameter of type f32[4] updated with a value of type f32[2]"));

  const char* twice = R"(func @f(%x: f32[4]) -> () {
  %0 = neg(%x) : f32[4]
  return
  update %x = %0
  update %x = %x
})";
  CHECK_THROWS_WITH(verify(unchecked(twice)),
                    Catch::Contains("`update %x = %x`: the parameter is updated more than once"));

  Function other("other");
  Value* foreign = other.add_param(f32({4}), "y");
  Function f("f");
  Value* x = f.add_param(f32({4}), "x");
  f.add_update(x, foreign);
  CHECK_THROWS_WITH(
      verify(f),
      Catch::Contains(
          "`update %x = %<undefined y>`: the new value is not a value of this function"));
  Function g("g");
  g.add_param(f32({4}), "x");
  g.add_update(foreign, foreign);
  CHECK_THROWS_WITH(verify(g),
                    Catch::Contains("the update target is not a parameter of this function"));
}
