// The gradient of `scan` (a reverse scan whose body is the gradient of the step), checked against
// central finite differences in f64 and against hand-computed values.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "grad_check_util.h"
#include "kiln/ir/printer.h"
#include "kiln/ir/verifier.h"
#include "scan_test_programs.h"

using namespace kiln::testing;

namespace {

// h' = a·h + x over 3 steps of f64[2]; returns `ret` (%0 the final carry, %1 the stacked ys).
std::string linear(bool reverse, const char* ret, const char* ret_type) {
  return fmt::format(R"(func @f(%h0: f64[2], %xs: f64[3,2], %a: f64[]) -> {2} {{
  %0, %1 = scan(%h0, %xs, %a) {{carries = 1, length = 3, reverse = {0}, save_carries = false, xs = 1}} : f64[2], f64[3,2]
    body func @step(%h: f64[2], %x: f64[2], %a: f64[]) -> (f64[2], f64[2]) {{
      %0 = mul(%h, %a) : f64[2]
      %1 = add(%0, %x) : f64[2]
      return %1, %1
    }}
  return {1}
}}
)",
                     reverse ? "true" : "false", ret, ret_type);
}

std::vector<HostTensor> linear_args(double a = 0.7) {
  return {random_f64({2}, 1), random_f64({3, 2}, 2), tensor_of(DType::f64, {}, {a})};
}

// An LSTM cell (gates i, f, c, o) on a hoisted input projection xw; returns `ret`.
std::string lstm(const char* ret, const char* ret_type) {
  return fmt::format(
      R"(func @f(%h0: f64[2,2], %c0: f64[2,2], %xw: f64[3,2,8], %u: f64[2,8]) -> {1} {{
  %0, %1, %2 = scan(%h0, %c0, %xw, %u) {{carries = 2, length = 3, reverse = false, save_carries = false, xs = 1}} : f64[2,2], f64[2,2], f64[3,2,2]
    body func @lstm(%h: f64[2,2], %c: f64[2,2], %xw: f64[2,8], %u: f64[2,8]) -> (f64[2,2], f64[2,2], f64[2,2]) {{
      %0 = matmul(%h, %u) : f64[2,8]
      %1 = add(%0, %xw) : f64[2,8]
      %2, %3, %4, %5 = split(%1) {{axis = 1, sizes = [2, 2, 2, 2]}} : f64[2,2], f64[2,2], f64[2,2], f64[2,2]
      %6 = sigmoid(%2) : f64[2,2]
      %7 = sigmoid(%3) : f64[2,2]
      %8 = tanh(%4) : f64[2,2]
      %9 = sigmoid(%5) : f64[2,2]
      %10 = mul(%7, %c) : f64[2,2]
      %11 = mul(%6, %8) : f64[2,2]
      %12 = add(%10, %11) : f64[2,2]
      %13 = tanh(%12) : f64[2,2]
      %14 = mul(%9, %13) : f64[2,2]
      return %14, %12, %14
    }}
  return {0}
}}
)",
      ret, ret_type);
}

std::vector<HostTensor> lstm_args() {
  return {random_f64({2, 2}, 11), random_f64({2, 2}, 12), random_f64({3, 2, 8}, 13),
          random_f64({2, 8}, 14, -0.5, 0.5)};
}

size_t count_scans(const Function& f) {
  size_t n = 0;
  for (const auto& node : f.nodes())
    n += node->op() == Op::scan;
  return n;
}

}  // namespace

TEST_CASE("scan gradient: linear recurrence, ys and final carry, forward and reverse",
          "[autodiff][scan]") {
  for (bool reverse : {false, true}) {
    INFO((reverse ? "reverse" : "forward"));
    check_gradients(linear(reverse, "%1", "f64[3,2]"), linear_args());
    check_gradients(linear(reverse, "%0", "f64[2]"), linear_args());  // ys unused
  }
}

TEST_CASE("scan gradient: hand-computed values of the linear recurrence", "[autodiff][scan]") {
  // final h = a³h0 + a²x0 + a·x1 + x2 (elementwise); d sum / d h0 = a³, d / d x_t = a^(2-t),
  // d / da = Σ 3a²h0 + 2a·x0 + x1.
  const double a = 0.5;
  std::vector<HostTensor> args = {tensor_of(DType::f64, {2}, {1, 2}),
                                  tensor_of(DType::f64, {3, 2}, {1, 1, 2, 2, 3, 3}),
                                  tensor_of(DType::f64, {}, {a})};
  std::vector<HostTensor> g = sum_gradients(linear(false, "%0", "f64[2]"), args);
  CHECK(values_of(g[0]) == std::vector<double>{0.125, 0.125});
  CHECK(values_of(g[1]) == std::vector<double>{0.25, 0.25, 0.5, 0.5, 1, 1});
  CHECK(values_of(g[2])[0] == Approx(3 * a * a * 3 + 2 * a * 2 + 4));
}

TEST_CASE("scan gradient: tanh RNN cell", "[autodiff][scan]") {
  check_gradients(kScanRnn, {random_f64({2, 3}, 21), random_f64({4, 2, 3}, 22),
                             random_f64({3, 3}, 23, -0.5, 0.5)});
}

TEST_CASE("scan gradient: LSTM cell, through h and c", "[autodiff][scan]") {
  check_gradients(lstm("%2", "f64[3,2,2]"), lstm_args());
  check_gradients(lstm("%1", "f64[2,2]"), lstm_args());
}

TEST_CASE("scan gradient: an integer carry gets none and is replayed", "[autodiff][scan]") {
  const char* text = R"(func @f(%h0: f64[2], %n0: i64[], %xs: f64[3,2]) -> f64[3,2] {
  %0, %1, %2 = scan(%h0, %n0, %xs) {carries = 2, length = 3, reverse = false, save_carries = false, xs = 1} : f64[2], i64[], f64[3,2]
    body func @step(%h: f64[2], %n: i64[], %x: f64[2]) -> (f64[2], i64[], f64[2]) {
      %0 = cast(%n) {dtype = f64} : f64[]
      %1 = mul(%h, %0) : f64[2]
      %2 = add(%1, %x) : f64[2]
      %3 = constant() {value = dense<i64[]: 1>} : i64[]
      %4 = add(%n, %3) : i64[]
      %5 = sin(%2) : f64[2]
      return %5, %4, %2
    }
  return %2
}
)";
  check_gradients(text,
                  {random_f64({2}, 31), HostTensor::scalar<int64_t>(1), random_f64({3, 2}, 32)});
}

TEST_CASE("scan gradient: saved carries used as results", "[autodiff][scan]") {
  const char* text = R"(func @f(%h0: f64[2], %xs: f64[3,2]) -> f64[3,2] {
  %0, %1, %2 = scan(%h0, %xs) {carries = 1, length = 3, reverse = true, save_carries = true, xs = 1} : f64[2], f64[3,2], f64[3,2]
    body func @step(%h: f64[2], %x: f64[2]) -> (f64[2], f64[2]) {
      %0 = mul(%h, %x) : f64[2]
      %1 = sin(%0) : f64[2]
      return %1, %0
    }
  %3 = add(%1, %2) : f64[3,2]
  return %3
}
)";
  check_gradients(text, {random_f64({2}, 41), random_f64({3, 2}, 42)});
}

TEST_CASE("scan gradient: length 0 passes the carry's gradient through", "[autodiff][scan]") {
  const char* text = R"(func @f(%h0: f64[2], %xs: f64[0,2], %a: f64[]) -> f64[2] {
  %0, %1 = scan(%h0, %xs, %a) {carries = 1, length = 0, reverse = false, save_carries = false, xs = 1} : f64[2], f64[0,2]
    body func @step(%h: f64[2], %x: f64[2], %a: f64[]) -> (f64[2], f64[2]) {
      %0 = mul(%h, %a) : f64[2]
      %1 = add(%0, %x) : f64[2]
      return %1, %1
    }
  return %0
}
)";
  std::vector<HostTensor> g =
      sum_gradients(text, {tensor_of(DType::f64, {2}, {1, 2}), HostTensor(DType::f64, Shape{0, 2}),
                           tensor_of(DType::f64, {}, {0.5})});
  CHECK(values_of(g[0]) == std::vector<double>{1, 1});
  CHECK(g[1].shape() == Shape{0, 2});
  CHECK(values_of(g[2]) == std::vector<double>{0});
}

TEST_CASE("the gradient of a scan is a reverse scan over the saved carries", "[autodiff][scan]") {
  Function f = kiln::ir::parse(linear(false, "%0", "f64[2]"));
  kiln::passes::differentiate(f);
  INFO(kiln::ir::print(f));
  // the forward, its copy that saves carries (the forward did not), the gradient scan
  REQUIRE(count_scans(f) == 3);
  const kiln::ir::Node* grad = nullptr;
  for (const auto& node : f.nodes())
    if (node->op() == Op::scan) grad = node.get();
  CHECK(grad->attrs().get_bool("reverse"));
  CHECK(grad->attrs().get_function("body").function().name() == "step_grad");
  CHECK(grad->scope().rfind("gradients", 0) == 0);
  // With save_carries set, no copy.
  std::string saving = linear(false, "%0", "f64[2]");
  saving.replace(saving.find("save_carries = false"), 20, "save_carries = true");
  saving.replace(saving.find("%0, %1 = scan"), 13, "%0, %1, %2 = scan");
  saving.replace(saving.find(": f64[2], f64[3,2]\n"), 18, ": f64[2], f64[3,2], f64[3,2]");
  Function g = kiln::ir::parse(saving);
  kiln::passes::differentiate(g);
  CHECK(count_scans(g) == 2);
  CHECK_NOTHROW(kiln::ir::verify(g));
}

TEST_CASE("scan gradient of the gradient (second order)", "[autodiff][scan]") {
  Function f = kiln::ir::parse(kScanRnn);
  kiln::ir::Value* y = f.outputs().at(0);
  f.set_outputs({f.append(Op::mul, {y, y})->output()});
  kiln::passes::differentiate(f);
  f.set_outputs({f.outputs().at(3)});  // d/dU
  check_gradients(
      kiln::ir::print(f),
      {random_f64({2, 3}, 21), random_f64({4, 2, 3}, 22), random_f64({3, 3}, 23, -0.5, 0.5)}, 1e-6,
      1e-5);
}
