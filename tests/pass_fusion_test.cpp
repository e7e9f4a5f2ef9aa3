#include <catch2/catch.hpp>

#include "kiln/ir/parser.h"
#include "kiln/passes/fusion.h"

namespace {
// Plans the kernels of `ir` and returns the plan as text.
std::string plan(const std::string& ir, bool fuse = true) {
  kiln::ir::Function f = kiln::ir::parse(ir);
  return kiln::passes::print_plan(f, kiln::passes::plan_kernels(f, {.fuse = fuse}));
}

const char* kPoly = R"(func @poly(%x: f32[4]) -> f32[4] {
  %0 = constant() {value = dense<f32[]: 10.0>} : f32[]
  %1 = constant() {value = dense<f32[]: -5.0>} : f32[]
  %2 = constant() {value = dense<f32[]: 4.0>} : f32[]
  %3 = mul(%0, %x) : f32[4]
  %4 = mul(%3, %x) : f32[4]
  %5 = mul(%1, %x) : f32[4]
  %6 = add(%4, %5) : f32[4]
  %7 = add(%6, %2) : f32[4]
  return %7
})";
}  // namespace

TEST_CASE("fusion puts an elementwise chain with scalar constants in one loop",
          "[passes][fusion]") {
  CHECK(plan(kPoly) == R"(kernel 0 loop(%0, %x, %1, %2) -> %7 {
  %3 = mul(%0, %x) : f32[4]
  %4 = mul(%3, %x) : f32[4]
  %5 = mul(%1, %x) : f32[4]
  %6 = add(%4, %5) : f32[4]
  %7 = add(%6, %2) : f32[4]
}
)");
}

TEST_CASE("fusion off gives one kernel per non-constant node", "[passes][fusion]") {
  CHECK(plan(kPoly, false) == R"(kernel 0 loop(%0, %x) -> %3 {
  %3 = mul(%0, %x) : f32[4]
}
kernel 1 loop(%3, %x) -> %4 {
  %4 = mul(%3, %x) : f32[4]
}
kernel 2 loop(%1, %x) -> %5 {
  %5 = mul(%1, %x) : f32[4]
}
kernel 3 loop(%4, %5) -> %6 {
  %6 = add(%4, %5) : f32[4]
}
kernel 4 loop(%6, %2) -> %7 {
  %7 = add(%6, %2) : f32[4]
}
)");
  CHECK(plan(R"(func @f(%a: f32[2,3], %b: f32[3,2]) -> (f32[2,2], i64[2], f32[6], f32[2,2]) {
  %0 = matmul(%a, %b) : f32[2,2]
  %1 = argmax(%a) {axis = 1} : i64[2]
  %2 = reshape(%a) {shape = [6]} : f32[6]
  %3 = relu(%0) : f32[2,2]
  return %0, %1, %2, %3
})",
             false) == R"(kernel 0 matmul(%a, %b) -> %0 {
  %0 = matmul(%a, %b) : f32[2,2]
}
kernel 1 reduction(%a) -> %1 {
  %1 = argmax(%a) {axis = 1} : i64[2]
}
kernel 2 op(%a) -> %2 {
  %2 = reshape(%a) {shape = [6]} : f32[6]
}
kernel 3 loop(%0) -> %3 {
  %3 = relu(%0) : f32[2,2]
}
)");
}

TEST_CASE("fusion makes a reduction the root of its elementwise producers", "[passes][fusion]") {
  CHECK(plan(R"(func @f(%x: f32[2,3], %y: f32[3]) -> f32[2] {
  %0 = sub(%x, %y) : f32[2,3]
  %1 = exp(%0) : f32[2,3]
  %2 = reduce_sum(%1) {axes = [1]} : f32[2]
  %3 = sqrt(%2) : f32[2]
  return %3
})") == R"(kernel 0 reduction(%x, %y) -> %2 {
  %0 = sub(%x, %y) : f32[2,3]
  %1 = exp(%0) : f32[2,3]
  %2 = reduce_sum(%1) {axes = [1]} : f32[2]
}
kernel 1 loop(%2) -> %3 {
  %3 = sqrt(%2) : f32[2]
}
)");
}

TEST_CASE("fusion puts bias and activation epilogues into matmul and conv2d", "[passes][fusion]") {
  CHECK(plan(R"(func @f(%a: f32[4,3], %w: f32[3,5], %b: f32[5]) -> f32[4,5] {
  %0 = matmul(%a, %w) : f32[4,5]
  %1 = add(%0, %b) : f32[4,5]
  %2 = relu(%1) : f32[4,5]
  return %2
})") == R"(kernel 0 matmul(%a, %w, %b) -> %2 {
  %0 = matmul(%a, %w) : f32[4,5]
  %1 = add(%0, %b) : f32[4,5]
  %2 = relu(%1) : f32[4,5]
}
)");
  CHECK(plan(R"(func @f(%x: f32[1,4,4,2], %k: f32[3,3,2,3], %b: f32[3]) -> f32[1,4,4,3] {
  %0 = conv2d(%x, %k) {padding = "same"} : f32[1,4,4,3]
  %1 = add(%0, %b) : f32[1,4,4,3]
  %2 = tanh(%1) : f32[1,4,4,3]
  return %2
})") == R"(kernel 0 conv2d(%x, %k, %b) -> %2 {
  %0 = conv2d(%x, %k) {padding = "same"} : f32[1,4,4,3]
  %1 = add(%0, %b) : f32[1,4,4,3]
  %2 = tanh(%1) : f32[1,4,4,3]
}
)");
}

TEST_CASE("fusion stops an epilogue at a value read twice or returned", "[passes][fusion]") {
  CHECK(plan(R"(func @f(%a: f32[2,2], %b: f32[2,2]) -> (f32[2,2], f32[2,2]) {
  %0 = matmul(%a, %b) : f32[2,2]
  %1 = neg(%0) : f32[2,2]
  %2 = exp(%1) : f32[2,2]
  return %1, %2
})") == R"(kernel 0 matmul(%a, %b) -> %1 {
  %0 = matmul(%a, %b) : f32[2,2]
  %1 = neg(%0) : f32[2,2]
}
kernel 1 loop(%1) -> %2 {
  %2 = exp(%1) : f32[2,2]
}
)");
}

TEST_CASE("fusion makes a returned producer one more output of its loop", "[passes][fusion]") {
  CHECK(plan(R"(func @f(%x: f32[3]) -> (f32[3], f32[3]) {
  %0 = exp(%x) : f32[3]
  %1 = add(%0, %x) : f32[3]
  return %0, %1
})") == R"(kernel 0 loop(%x) -> %0, %1 {
  %0 = exp(%x) : f32[3]
  %1 = add(%0, %x) : f32[3]
}
)");
}

TEST_CASE("fusion keeps producers of another shape or with outside readers apart",
          "[passes][fusion]") {
  // %0 has a smaller shape than the add; %2 is read by a reduction and a loop.
  CHECK(plan(R"(func @f(%x: f32[4], %y: f32[3,4]) -> (f32[3,4], f32[3], f32[3,4]) {
  %0 = exp(%x) : f32[4]
  %1 = add(%0, %y) : f32[3,4]
  %2 = neg(%1) : f32[3,4]
  %3 = reduce_max(%2) {axes = [1]} : f32[3]
  %4 = abs(%2) : f32[3,4]
  return %1, %3, %4
})") == R"(kernel 0 loop(%x) -> %0 {
  %0 = exp(%x) : f32[4]
}
kernel 1 loop(%0, %y) -> %1, %2 {
  %1 = add(%0, %y) : f32[3,4]
  %2 = neg(%1) : f32[3,4]
}
kernel 2 reduction(%2) -> %3 {
  %3 = reduce_max(%2) {axes = [1]} : f32[3]
}
kernel 3 loop(%2) -> %4 {
  %4 = abs(%2) : f32[3,4]
}
)");
}

TEST_CASE("fusion fuses broadcast_to into loops and leaves shape ops and split alone",
          "[passes][fusion]") {
  CHECK(plan(R"(func @f(%x: f32[4], %y: f32[2,4]) -> (f32[2,4], f32[2], f32[2]) {
  %0 = broadcast_to(%x) {shape = [2, 4]} : f32[2,4]
  %1 = mul(%0, %y) : f32[2,4]
  %2 = transpose(%1) {perm = [1, 0]} : f32[4,2]
  %3, %4 = split(%2) {axis = 0, sizes = [1, 3]} : f32[1,2], f32[3,2]
  %5 = reshape(%3) {shape = [2]} : f32[2]
  %6 = reduce_sum(%4) {axes = [0]} : f32[2]
  return %1, %5, %6
})") == R"(kernel 0 loop(%x, %y) -> %1 {
  %0 = broadcast_to(%x) {shape = [2, 4]} : f32[2,4]
  %1 = mul(%0, %y) : f32[2,4]
}
kernel 1 op(%1) -> %2 {
  %2 = transpose(%1) {perm = [1, 0]} : f32[4,2]
}
kernel 2 op(%2) -> %3, %4 {
  %3, %4 = split(%2) {axis = 0, sizes = [1, 3]} : f32[1,2], f32[3,2]
}
kernel 3 op(%3) -> %5 {
  %5 = reshape(%3) {shape = [2]} : f32[2]
}
kernel 4 reduction(%4) -> %6 {
  %6 = reduce_sum(%4) {axes = [0]} : f32[2]
}
)");
}

TEST_CASE("fusion keeps a producer apart when a reduction between reads it too",
          "[passes][fusion]") {
  // %1 is read inside the loop (by %3) and by the reduction %2, whose result %3 also reads:
  // fusing %1 into %3's loop would need %2 before and after that loop, so it stays apart.
  CHECK(plan(R"(func @f(%x: f32[2,2]) -> f32[2,2] {
  %0 = exp(%x) : f32[2,2]
  %1 = neg(%0) : f32[2,2]
  %2 = reduce_sum(%1) {axes = [1], keepdims = true} : f32[2,1]
  %3 = sub(%1, %2) : f32[2,2]
  return %3
})") == R"(kernel 0 loop(%x) -> %1 {
  %0 = exp(%x) : f32[2,2]
  %1 = neg(%0) : f32[2,2]
}
kernel 1 reduction(%1) -> %2 {
  %2 = reduce_sum(%1) {axes = [1], keepdims = true} : f32[2,1]
}
kernel 2 loop(%1, %2) -> %3 {
  %3 = sub(%1, %2) : f32[2,2]
}
)");
}

TEST_CASE("fusion cuts groups where a path from the root would pass max_depth nodes",
          "[passes][fusion]") {
  // A chain of five, depth 2: the root pulls one producer, and so on from the back.
  const char* chain = R"(func @chain(%x: f32[4]) -> f32[4] {
  %0 = exp(%x) : f32[4]
  %1 = neg(%0) : f32[4]
  %2 = exp(%1) : f32[4]
  %3 = neg(%2) : f32[4]
  %4 = exp(%3) : f32[4]
  return %4
})";
  kiln::ir::Function f = kiln::ir::parse(chain);
  CHECK(kiln::passes::print_plan(f, kiln::passes::plan_kernels(f, {.max_depth = 2})) ==
        R"(kernel 0 loop(%x) -> %0 {
  %0 = exp(%x) : f32[4]
}
kernel 1 loop(%0) -> %2 {
  %1 = neg(%0) : f32[4]
  %2 = exp(%1) : f32[4]
}
kernel 2 loop(%2) -> %4 {
  %3 = neg(%2) : f32[4]
  %4 = exp(%3) : f32[4]
}
)");
  // A diamond counts its longest path: %1 is one below %3 but two below %4 through %2 and %3,
  // so with depth 3 it stays out while %2 and %3 join %4's group.
  kiln::ir::Function diamond = kiln::ir::parse(R"(func @d(%x: f32[4]) -> f32[4] {
  %0 = exp(%x) : f32[4]
  %1 = neg(%0) : f32[4]
  %2 = exp(%1) : f32[4]
  %3 = add(%1, %2) : f32[4]
  %4 = mul(%3, %x) : f32[4]
  return %4
})");
  CHECK(kiln::passes::print_plan(diamond, kiln::passes::plan_kernels(diamond, {.max_depth = 3})) ==
        R"(kernel 0 loop(%x) -> %1 {
  %0 = exp(%x) : f32[4]
  %1 = neg(%0) : f32[4]
}
kernel 1 loop(%1, %x) -> %4 {
  %2 = exp(%1) : f32[4]
  %3 = add(%1, %2) : f32[4]
  %4 = mul(%3, %x) : f32[4]
}
)");
  // Without a limit that bites, one kernel as before.
  CHECK(kiln::passes::plan_kernels(diamond).kernels.size() == 1);
}
