// The autodiff pass on IR text: the gradient nodes it appends, and their scope and location.
#include <catch2/catch.hpp>

#include <cmath>

#include "kiln/ir/interpreter.h"
#include "kiln/ir/parser.h"
#include "kiln/ir/printer.h"
#include "kiln/passes/autodiff.h"
#include "kiln/passes/canonicalize.h"
#include "kiln/passes/dce.h"
#include "kiln/passes/grad_rules.h"

namespace {
std::string differentiate(const std::string& in, bool simplify) {
  kiln::ir::Function f = kiln::ir::parse(in);
  kiln::passes::differentiate(f);
  if (simplify) {
    kiln::passes::canonicalize(f);
    kiln::passes::eliminate_dead_code(f);
  }
  return kiln::ir::print(f);
}
}  // namespace

TEST_CASE("autodiff appends the gradient of every floating parameter", "[passes][autodiff]") {
  std::string out = differentiate(R"(func @f(%x: f32[3], %n: i32[3]) -> f32[3] {
  %0 = tanh(%x) : f32[3]
  return %0
})",
                                  false);
  CHECK(out == R"(func @f(%x: f32[3], %n: i32[3]) -> (f32[3], f32[3]) {
  %0 = tanh(%x) : f32[3]
  %1 = fill() {dtype = f32, shape = [3], value = 1.0} : f32[3]
  %2 = mul(%0, %0) : f32[3]  scope "gradients"
  %3 = fill() {dtype = f32, shape = [], value = 1.0} : f32[]  scope "gradients"
  %4 = sub(%3, %2) : f32[3]  scope "gradients"
  %5 = mul(%1, %4) : f32[3]  scope "gradients"
  return %0, %5
}
)");
}

TEST_CASE("gradient nodes carry the forward node's location under a gradients scope",
          "[passes][autodiff]") {
  kiln::ir::Function f = kiln::ir::parse(R"(func @f(%a: f32[2,3], %b: f32[3]) -> f32[2,3] {
  %0 = mul(%a, %b) : f32[2,3]  scope "dense" loc "model.cpp":7:3
  return %0
})");
  kiln::passes::differentiate(f);
  std::string out = kiln::ir::print(f, kiln::ir::PrintOptions{.locations = true});
  CHECK(
      out.find(
          R"(reduce_sum(%3) {axes = [0], keepdims = false} : f32[3]  scope "gradients/dense" loc "model.cpp":7:3)") !=
      std::string::npos);
}

TEST_CASE("autodiff gives zeros for a parameter the output does not depend on",
          "[passes][autodiff]") {
  std::string out = differentiate(R"(func @f(%x: f32[2], %y: f32[2]) -> f32[2] {
  %0 = exp(%x) : f32[2]
  %1 = greater(%y, %x) : bool[2]
  %2 = select(%1, %0, %0) : f32[2]
  return %2
})",
                                  true);
  CHECK(out.find("-> (f32[2], f32[2], f32[2])") != std::string::npos);
  CHECK(
      out.find("%9 = constant() {value = dense<f32[2]: 0.0, 0.0>} : f32[2]\n  return %2, %8, %9") !=
      std::string::npos);
  // The values: d/dx = exp(x) whichever branch select takes, d/dy = 0.
  kiln::ir::Function f = kiln::ir::parse(out);
  std::vector<float> x{0.5f, -1.f}, y{2.f, -3.f};
  std::vector<kiln::ir::HostTensor> args{
      kiln::ir::HostTensor::from_values<float>(kiln::ir::Shape{2}, x),
      kiln::ir::HostTensor::from_values<float>(kiln::ir::Shape{2}, y)};
  std::vector<kiln::ir::HostTensor> got = kiln::ir::evaluate(f, args).outputs;
  for (int i = 0; i < 2; ++i) {
    CHECK(got[1].data<float>()[i] == Approx(std::exp(x[size_t(i)])));
    CHECK(got[2].data<float>()[i] == 0.f);
  }
}

TEST_CASE("every differentiable op has a gradient rule, and only those", "[passes][autodiff]") {
  for (int i = 0; i < kiln::ir::kNumOps; ++i) {
    auto op = static_cast<kiln::ir::Op>(i);
    INFO(kiln::ir::op_name(op));
    bool differentiable = kiln::ir::has_trait(op, kiln::ir::kDifferentiable);
    CHECK((kiln::passes::grad::rule_for(op) != nullptr) == differentiable);
  }
}

// Rules that build two nodes for one call's operands name them first (C++ leaves the order of
// a call's argument evaluation open), so the gradient IR is the same whichever compiler built
// Kiln: dA is built before dB, each in the order the rule's text reads.
TEST_CASE("gradient IR does not depend on the C++ compiler's argument order",
          "[passes][autodiff]") {
  std::string out = differentiate(R"(func @f(%a: f32[2,3], %b: f32[3]) -> f32[2,3] {
  %0 = div(%a, %b) : f32[2,3]
  %1 = mul(%0, %b) : f32[2,3]
  return %1
})",
                                  false);
  CHECK(out == R"(func @f(%a: f32[2,3], %b: f32[3]) -> (f32[2,3], f32[2,3], f32[3]) {
  %0 = div(%a, %b) : f32[2,3]
  %1 = mul(%0, %b) : f32[2,3]
  %2 = fill() {dtype = f32, shape = [2, 3], value = 1.0} : f32[2,3]
  %3 = mul(%2, %b) : f32[2,3]  scope "gradients"
  %4 = mul(%2, %0) : f32[2,3]  scope "gradients"
  %5 = reduce_sum(%4) {axes = [0], keepdims = false} : f32[3]  scope "gradients"
  %6 = div(%3, %b) : f32[2,3]  scope "gradients"
  %7 = neg(%3) : f32[2,3]  scope "gradients"
  %8 = mul(%7, %0) : f32[2,3]  scope "gradients"
  %9 = div(%8, %b) : f32[2,3]  scope "gradients"
  %10 = reduce_sum(%9) {axes = [0], keepdims = false} : f32[3]  scope "gradients"
  %11 = add(%5, %10) : f32[3]  scope "gradients"
  return %1, %6, %11
}
)");
}
