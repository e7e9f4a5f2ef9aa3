// Functions that are chains of 100,000 elementwise nodes parse, print, verify, optimize,
// differentiate, trace, compile and run with the interpreter's results: no walk recurses along
// the chain (fusion cuts kernels at a bounded depth for the recursive expression emitter), and
// no pass rescans the function per rewrite. (tests/kiln_cli_test.cpp runs `kiln run` on one.)
#include <catch2/catch.hpp>

#include <fmt/format.h>
#include <kiln/kiln.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kiln/frontend/core/compile.h"
#include "kiln/ir/parser.h"
#include "kiln/ir/printer.h"
#include "kiln/ir/verifier.h"
#include "kiln/passes/autodiff.h"
#include "kiln/passes/fusion.h"
#include "kiln/passes/pipeline.h"

namespace k = kiln;
using k::ir::HostTensor;

namespace {

constexpr int kNodes = 100'000;

// IR text of `func @chain(params) -> type`, whose node i is line(i) (node 0 reads %x).
template <class Line>
std::string chain_text(const std::string& params, const std::string& type, Line line) {
  std::string text = fmt::format("func @chain({}) -> {} {{\n", params, type);
  for (int i = 0; i < kNodes; ++i)
    text += fmt::format("  %{} = {} : {}\n", i, line(i, i == 0 ? "%x" : fmt::format("%{}", i - 1)),
                        type);
  return text + fmt::format("  return %{}\n}}\n", kNodes - 1);
}

HostTensor f32s(k::Shape shape, std::vector<float> values) {
  return HostTensor::from_values<float>(std::move(shape), values);
}

// Compiles `f`, checks its result against the interpreter's and returns the compiled result's
// elements.
std::vector<double> check_compiled(k::ir::Function f, const std::vector<HostTensor>& args,
                                   double tolerance) {
  std::vector<HostTensor> want = k::ir::evaluate(f, args).outputs;
  auto compiled = k::compile(std::move(f));
  std::vector<HostTensor> got = compiled->run(args).outputs;
  REQUIRE(got.size() == 1);
  REQUIRE(got[0].type() == want[0].type());
  std::vector<double> values;
  for (int64_t i = 0; i < got[0].num_elements(); ++i) {
    double g = got[0].element_as_double(i), w = want[0].element_as_double(i);
    INFO("element " << i << ": " << g << " vs " << w);
    CHECK(std::abs(g - w) <= tolerance * std::max(1.0, std::abs(w)));
    values.push_back(g);
  }
  return values;
}

}  // namespace

TEST_CASE("a 100000-node add/mul chain round-trips as text and compiles", "[deep][heavy]") {
  // %i = add(%i-1, %x) or mul(%i-1, %x): with x in (0, 1] the values stay finite. Where x < 1
  // they settle on a fixed point; where x = 1 every add counts: 1 + 50,000 adds of 1.
  std::string text = chain_text("%x: f32[8]", "f32[8]", [](int i, const std::string& prev) {
    return fmt::format("{}({}, %x)", i % 2 ? "mul" : "add", prev);
  });
  k::ir::Function f = k::ir::parse(text);
  CHECK(k::ir::print(f) == text);
  k::ir::verify(f);
  std::vector<double> got = check_compiled(
      std::move(f), {f32s({8}, {1, 0.5f, 0.25f, 0.75f, 0.1f, 0.9f, 0.3f, 0.6f})}, 1e-5);
  CHECK(got[0] == 50'001.0);
}

TEST_CASE("a 100000-node chain mostly of unary ops compiles, every step counting",
          "[deep][heavy]") {
  // Nodes cycle through neg, floor, neg, add x, add x: on integers y -> y + 2x per cycle, so the
  // result depends on every cycle (unlike a chain that settles on a fixed point, where a lost or
  // reordered kernel would go unnoticed), and a kernel with an odd number of negs does not
  // commute with the others. 20,000 cycles from y = x give 40,001 x for integer x; for x = 0.5
  // the first cycle's floor makes y = 2, then y grows by 1 per cycle: 20,001. All exact in f32.
  std::string text = chain_text("%x: f32[4]", "f32[4]", [](int i, const std::string& prev) {
    switch (i % 5) {
      case 0:
      case 2:
        return fmt::format("neg({})", prev);
      case 1:
        return fmt::format("floor({})", prev);
      default:
        return fmt::format("add({}, %x)", prev);
    }
  });
  std::vector<double> got =
      check_compiled(k::ir::parse(text), {f32s({4}, {1.f, -2.f, 3.f, 0.5f})}, 0);
  CHECK(got == std::vector<double>{40'001, -80'002, 120'003, 20'001});
}

TEST_CASE("a 100000-node chain of broadcasts compiles", "[deep][heavy]") {
  // Every node broadcasts an operand ([8] over the rows, [4,1] over the columns), and every third
  // is an explicit broadcast_to (a no-op canonicalize removes, 33,333 rewrites in one sweep).
  // Node 0 is x + b, then 33,333 cycles of y -> y * c + b, one factor per row: with c = 1 every
  // cycle adds b (x + 33,334 b); with c = -1 the cycles alternate, an odd count leaving -x; with
  // |c| < 1 the row settles on b / (1 - c). x and b are multiples of 1/8 so the first two rows
  // are exact.
  std::string text = chain_text("%x: f32[4,8], %b: f32[8], %c: f32[4,1]", "f32[4,8]",
                                [](int i, const std::string& prev) -> std::string {
                                  if (i == 0) return "add(%x, %b)";
                                  if (i % 3 == 0)
                                    return fmt::format("broadcast_to({}) {{shape = [4, 8]}}", prev);
                                  return fmt::format("{}({}, {})", i % 3 == 1 ? "mul" : "add", prev,
                                                     i % 3 == 1 ? "%c" : "%b");
                                });
  std::vector<float> x(32), b(8);
  for (int i = 0; i < 32; ++i)
    x[size_t(i)] = 0.125f * float(i % 7);
  for (int i = 0; i < 8; ++i)
    b[size_t(i)] = 0.25f * float(i) - 1.f;
  const std::vector<float> c = {1.f, -1.f, 0.5f, -0.5f};
  std::vector<double> got =
      check_compiled(k::ir::parse(text), {f32s({4, 8}, x), f32s({8}, b), f32s({4, 1}, c)}, 1e-5);
  for (size_t col = 0; col < 8; ++col) {
    INFO("column " << col);
    CHECK(got[col] == double(x[col]) + 33'334.0 * double(b[col]));
    CHECK(got[8 + col] == -double(x[8 + col]));
    CHECK(got[16 + col] == Approx(2.0 * double(b[col])).margin(1e-6));
    CHECK(got[24 + col] == Approx(double(b[col]) / 1.5).margin(1e-6));
  }
}

TEST_CASE("fusion cuts a deep chain into kernels of bounded depth", "[deep][fusion]") {
  std::string text = chain_text("%x: f32[8]", "f32[8]", [](int, const std::string& prev) {
    return fmt::format("add({}, %x)", prev);
  });
  k::ir::Function f = k::ir::parse(text);
  const int depth = k::passes::FusionOptions::kMaxFusedDepth;
  k::passes::KernelPlan plan = k::passes::plan_kernels(f);
  CHECK(plan.kernels.size() == size_t((kNodes + depth - 1) / depth));
  for (const k::passes::Kernel& kernel : plan.kernels)
    CHECK(kernel.nodes.size() <= size_t(depth));
}

TEST_CASE("a 100000-node chain differentiates and goes through the pipeline passes",
          "[deep][autodiff][heavy]") {
  // y = x + x + ... (100,001 terms); dy/dx = 100,001. Interpreted: differentiation and the
  // passes are what is tested here (the compiled gradient would be a 300,000-node chain).
  std::string text = chain_text("%x: f64[2]", "f64[2]", [](int, const std::string& prev) {
    return fmt::format("add({}, %x)", prev);
  });
  k::ir::Function f = k::ir::parse(text);
  k::passes::differentiate(f);
  k::ir::verify(f);
  k::passes::PipelineOptions options;
  options.stop_after = "dce";
  k::passes::PipelineResult optimized = k::passes::run_pipeline(std::move(f), options);
  HostTensor x = HostTensor::from_values<double>(k::Shape{2}, std::vector<double>{1.0, -2.0});
  k::ir::EvalResult r = k::ir::evaluate(optimized.function, std::vector<HostTensor>{x});
  REQUIRE(r.outputs.size() == 2);
  CHECK(r.outputs[0].element_as_double(0) == Approx(100'001.0));
  CHECK(r.outputs[0].element_as_double(1) == Approx(-200'002.0));
  CHECK(r.outputs[1].element_as_double(0) == 100'001.0);
  CHECK(r.outputs[1].element_as_double(1) == 100'001.0);
}

TEST_CASE("a C++ loop of 100000 ops traces and compiles", "[deep][heavy][function]") {
  auto f = k::function(
      [](const k::Tensor& x) {
        k::Tensor y = x;
        for (int i = 0; i < kNodes; ++i)
          y = i % 2 ? k::multiply(y, x) : k::add(y, x);
        return y;
      },
      "loop");
  k::Tensor x = k::constant({0.5f, 0.9f, 1.0f, 0.25f});
  std::vector<float> got = f(x).to_vector<float>();
  // The oracle: the interpreter on the traced graph.
  HostTensor want = k::ir::evaluate(f.graph(x), std::vector<HostTensor>{x.host()}).outputs.at(0);
  CHECK(f.graph(x).nodes().size() == size_t(kNodes));
  for (size_t i = 0; i < got.size(); ++i)
    CHECK(got[i] == Approx(want.data<float>()[i]).epsilon(1e-5));
}
