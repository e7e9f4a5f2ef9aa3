#include <catch2/catch.hpp>

#include "kiln/passes/canonicalize.h"
#include "kiln/passes/dce.h"
#include "pass_test_util.h"

namespace {
// Canonicalizes `in` (then removes what it left dead) and returns the result as text.
std::string canon(const std::string& in, bool* changed = nullptr) {
  return kiln::testing::run_pass(
      [](kiln::ir::Function& f) {
        bool c = kiln::passes::canonicalize(f);
        kiln::passes::eliminate_dead_code(f);
        return c;
      },
      in, changed);
}
}  // namespace

TEST_CASE("canonicalize removes x*1, 1*x, x/1, x+0, 0+x and x-0", "[passes][canonicalize]") {
  bool changed = false;
  CHECK(canon(R"(func @f(%x: f32[3], %i: i32[2,2]) -> (f32[3], i32[2,2]) {
  %0 = constant() {value = dense<f32[]: 1.0>} : f32[]
  %1 = constant() {value = dense<f32[3]: 0.0, 0.0, 0.0>} : f32[3]
  %2 = fill() {dtype = i32, shape = [2], value = 1} : i32[2]
  %3 = mul(%x, %0) : f32[3]
  %4 = mul(%0, %3) : f32[3]
  %5 = div(%4, %0) : f32[3]
  %6 = add(%5, %1) : f32[3]
  %7 = add(%1, %6) : f32[3]
  %8 = sub(%7, %1) : f32[3]
  %9 = mul(%i, %2) : i32[2,2]
  return %8, %9
})",
              &changed) == R"(func @f(%x: f32[3], %i: i32[2,2]) -> (f32[3], i32[2,2]) {
  return %x, %i
}
)");
  CHECK(changed);
}

TEST_CASE("canonicalize keeps identities that broadcast or are not identities",
          "[passes][canonicalize]") {
  // x * ones([4]) with x: f32[] broadcasts; 0 - x, 1 / x and x * 2 are not x.
  const std::string in = R"(func @f(%x: f32[], %y: f32[4]) -> (f32[4], f32[4], f32[4], f32[4]) {
  %0 = constant() {value = dense<f32[4]: 1.0, 1.0, 1.0, 1.0>} : f32[4]
  %1 = mul(%x, %0) : f32[4]
  %2 = constant() {value = dense<f32[]: 0.0>} : f32[]
  %3 = sub(%2, %y) : f32[4]
  %4 = constant() {value = dense<f32[]: 1.0>} : f32[]
  %5 = div(%4, %y) : f32[4]
  %6 = constant() {value = dense<f32[4]: 1.0, 1.0, 2.0, 1.0>} : f32[4]
  %7 = mul(%y, %6) : f32[4]
  return %1, %3, %5, %7
}
)";
  bool changed = true;
  CHECK(canon(in, &changed) == in);
  CHECK_FALSE(changed);
}

TEST_CASE("canonicalize removes double negation and no-op shape ops and casts",
          "[passes][canonicalize]") {
  CHECK(canon(R"(func @f(%x: f32[2,3]) -> (f32[2,3], f32[2,3], f32[2,3]) {
  %0 = neg(%x) : f32[2,3]
  %1 = neg(%0) : f32[2,3]
  %2 = reshape(%1) {shape = [2, -1]} : f32[2,3]
  %3 = broadcast_to(%2) {shape = [2, 3]} : f32[2,3]
  %4 = cast(%3) {dtype = f32} : f32[2,3]
  %5 = transpose(%4) {perm = [0, 1]} : f32[2,3]
  %6 = squeeze(%5) {axes = []} : f32[2,3]
  return %6, %0, %4
})") == R"(func @f(%x: f32[2,3]) -> (f32[2,3], f32[2,3], f32[2,3]) {
  %0 = neg(%x) : f32[2,3]
  return %x, %0, %x
}
)");
}

TEST_CASE("canonicalize composes transposes and reshape chains", "[passes][canonicalize]") {
  CHECK(canon(R"(func @f(%x: f32[2,3,4]) -> (f32[4,2,3], f32[2,3,4], f32[6,4], f32[1,24]) {
  %0 = transpose(%x) {perm = [1, 2, 0]} : f32[3,4,2]
  %1 = transpose(%0) {perm = [1, 2, 0]} : f32[4,2,3]
  %2 = transpose(%1) {perm = [1, 2, 0]} : f32[2,3,4]
  %3 = reshape(%x) {shape = [24]} : f32[24]
  %4 = expand_dims(%3) {axis = 0} : f32[1,24]
  %5 = squeeze(%4) {axes = [0]} : f32[24]
  %6 = reshape(%5) {shape = [6, 4]} : f32[6,4]
  return %1, %2, %6, %4
})") == R"(func @f(%x: f32[2,3,4]) -> (f32[4,2,3], f32[2,3,4], f32[6,4], f32[1,24]) {
  %0 = transpose(%x) {perm = [2, 0, 1]} : f32[4,2,3]
  %1 = reshape(%x) {shape = [1, 24]} : f32[1,24]
  %2 = reshape(%x) {shape = [6, 4]} : f32[6,4]
  return %0, %x, %2, %1
}
)");
}

TEST_CASE("canonicalize picks the branch of a select with a constant condition",
          "[passes][canonicalize]") {
  CHECK(canon(R"(func @f(%a: f32[3], %b: f32[3], %c: bool[3]) -> (f32[3], f32[3], f32[3]) {
  %0 = constant() {value = dense<bool[]: true>} : bool[]
  %1 = select(%0, %a, %b) : f32[3]
  %2 = fill() {dtype = bool, shape = [3], value = false} : bool[3]
  %3 = select(%2, %a, %b) : f32[3]
  %4 = select(%c, %a, %b) : f32[3]
  return %1, %3, %4
})") == R"(func @f(%a: f32[3], %b: f32[3], %c: bool[3]) -> (f32[3], f32[3], f32[3]) {
  %0 = select(%c, %a, %b) : f32[3]
  return %a, %b, %0
}
)");
}

TEST_CASE("canonicalize folds constants through the interpreter", "[passes][canonicalize]") {
  CHECK(canon(R"(func @f(%x: f32[2]) -> f32[2] {
  %0 = constant() {value = dense<f32[2]: 1.0, 2.0>} : f32[2]
  %1 = constant() {value = dense<f32[]: 3.0>} : f32[]
  %2 = mul(%0, %1) : f32[2]
  %3 = exp(%2) : f32[2]
  %4 = reduce_sum(%3) {axes = [0]} : f32[]
  %5 = add(%x, %4) : f32[2]
  return %5
}
)") == R"(func @f(%x: f32[2]) -> f32[2] {
  %0 = constant() {value = dense<f32[]: 423.51434>} : f32[]
  %1 = add(%x, %0) : f32[2]
  return %1
}
)");
}

TEST_CASE("canonicalize leaves folds that would fail or be too large", "[passes][canonicalize]") {
  // An out-of-range gather index fails at run time, not at compile time; a huge broadcast stays
  // a node instead of a 4-million-element constant.
  const std::string in = R"(func @f() -> (f32[1], f32[2048,2048]) {
  %0 = constant() {value = dense<f32[2]: 1.0, 2.0>} : f32[2]
  %1 = constant() {value = dense<i32[1]: 5>} : i32[1]
  %2 = gather(%0, %1) {axis = 0} : f32[1]
  %3 = constant() {value = dense<f32[]: 1.0>} : f32[]
  %4 = broadcast_to(%3) {shape = [2048, 2048]} : f32[2048,2048]
  return %2, %4
}
)";
  kiln::ir::Function f = kiln::ir::parse(in);
  CHECK_FALSE(kiln::passes::canonicalize(f));
  CHECK(kiln::ir::print(f) == in);
}

TEST_CASE("canonicalize keeps scope and location on the nodes it creates",
          "[passes][canonicalize]") {
  kiln::ir::Function f = kiln::ir::parse(R"(func @f(%x: f32[2,3,4]) -> f32[4,2,3] {
  %0 = transpose(%x) {perm = [1, 2, 0]} : f32[3,4,2]
  %1 = transpose(%0) {perm = [1, 2, 0]} : f32[4,2,3]  scope "block/t" loc "model.cpp":7:3
  return %1
})");
  CHECK(kiln::passes::canonicalize(f));
  kiln::passes::eliminate_dead_code(f);
  CHECK(kiln::ir::print(f, {.locations = true}) == R"(func @f(%x: f32[2,3,4]) -> f32[4,2,3] {
  %0 = transpose(%x) {perm = [2, 0, 1]} : f32[4,2,3]  scope "block/t" loc "model.cpp":7:3
  return %0
}
)");
}
