#include <catch2/catch.hpp>

#include "kiln/passes/cse.h"
#include "pass_test_util.h"

namespace {
std::string cse(const std::string& in, bool* changed = nullptr) {
  return kiln::testing::run_pass(kiln::passes::eliminate_common_subexpressions, in, changed);
}
}  // namespace

TEST_CASE("cse merges nodes with the same op, operands and attributes", "[passes][cse]") {
  bool changed = false;
  CHECK(cse(R"(func @f(%x: f32[2,3]) -> (f32[2,3], f32[3], f32[3,2]) {
  %0 = exp(%x) : f32[2,3]
  %1 = exp(%x) : f32[2,3]
  %2 = add(%0, %1) : f32[2,3]
  %3 = reduce_sum(%0) {axes = [0]} : f32[3]
  %4 = reduce_sum(%1) {axes = [0]} : f32[3]
  %5 = add(%3, %4) : f32[3]
  %6 = transpose(%2) {perm = [1, 0]} : f32[3,2]
  return %2, %5, %6
  update %x = %1
})",
            &changed) == R"(func @f(%x: f32[2,3]) -> (f32[2,3], f32[3], f32[3,2]) {
  %0 = exp(%x) : f32[2,3]
  %1 = add(%0, %0) : f32[2,3]
  %2 = reduce_sum(%0) {axes = [0]} : f32[3]
  %3 = add(%2, %2) : f32[3]
  %4 = transpose(%1) {perm = [1, 0]} : f32[3,2]
  return %1, %3, %4
  update %x = %0
}
)");
  CHECK(changed);
}

TEST_CASE("cse merges equal constants and random ops with the same seed", "[passes][cse]") {
  CHECK(cse(R"(func @f(%x: f32[2]) -> (f32[2], f32[2]) {
  %0 = constant() {value = dense<f32[2]: 1.0, 2.0>} : f32[2]
  %1 = constant() {value = dense<f32[2]: 1.0, 2.0>} : f32[2]
  %2 = random_uniform() {dtype = f32, maxval = 1.0, minval = 0.0, seed = 7, shape = [2]} : f32[2]
  %3 = random_uniform() {dtype = f32, maxval = 1.0, minval = 0.0, seed = 7, shape = [2]} : f32[2]
  %4 = add(%0, %2) : f32[2]
  %5 = add(%1, %3) : f32[2]
  return %4, %5
})") == R"(func @f(%x: f32[2]) -> (f32[2], f32[2]) {
  %0 = constant() {value = dense<f32[2]: 1.0, 2.0>} : f32[2]
  %1 = random_uniform() {dtype = f32, maxval = 1.0, minval = 0.0, seed = 7, shape = [2]} : f32[2]
  %2 = add(%0, %1) : f32[2]
  return %2, %2
}
)");
}

TEST_CASE("cse keeps nodes that differ in attributes, operands, order or results",
          "[passes][cse]") {
  const std::string in =
      R"(func @f(%x: f32[2,2], %y: f32[2,2]) -> (f32[2], f32[2], f32[2,2], f32[2,2], f32[2,2], f32[2,2], f32[2,2], f32[2,2], f32[2,2]) {
  %0 = reduce_sum(%x) {axes = [0]} : f32[2]
  %1 = reduce_sum(%x) {axes = [1]} : f32[2]
  %2 = sub(%x, %y) : f32[2,2]
  %3 = sub(%y, %x) : f32[2,2]
  %4 = constant() {value = dense<f32[2,2]: 1.0, 2.0, 3.0, 4.0>} : f32[2,2]
  %5 = constant() {value = dense<f32[2,2]: 1.0, 2.0, 3.0, 5.0>} : f32[2,2]
  %6 = random_normal() {dtype = f32, mean = 0.0, seed = 1, shape = [2, 2], stddev = 1.0} : f32[2,2]
  %7 = random_normal() {dtype = f32, mean = 0.0, seed = 2, shape = [2, 2], stddev = 1.0} : f32[2,2]
  %8 = neg(%x) : f32[2,2]
  return %0, %1, %2, %3, %4, %5, %6, %7, %8
}
)";
  bool changed = true;
  CHECK(cse(in, &changed) == in);
  CHECK_FALSE(changed);
}
