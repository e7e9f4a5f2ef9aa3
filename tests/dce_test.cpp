#include <catch2/catch.hpp>

#include "kiln/ir/parser.h"
#include "kiln/ir/printer.h"
#include "kiln/passes/dce.h"

namespace {
// Runs DCE on `in` and returns whether it changed anything and the printed result.
std::pair<bool, std::string> run_dce(const std::string& in) {
  kiln::ir::Function f = kiln::ir::parse(in);
  bool changed = kiln::passes::eliminate_dead_code(f);
  return {changed, kiln::ir::print(f)};
}
}  // namespace

TEST_CASE("dce removes nodes that reach no output", "[passes][dce]") {
  auto [changed, out] = run_dce(R"(func @f(%x: f32[4]) -> f32[4] {
  %a = exp(%x) : f32[4]
  %b = neg(%x) : f32[4]
  %c = add(%b, %b) : f32[4]
  return %a
})");
  CHECK(changed);
  CHECK(out == R"(func @f(%x: f32[4]) -> f32[4] {
  %0 = exp(%x) : f32[4]
  return %0
}
)");
}

TEST_CASE("dce keeps values that feed updates and all results of a live node", "[passes][dce]") {
  const std::string in = R"(func @f(%x: f32[4], %w: f32[4]) -> f32[2] {
  %0, %1 = split(%x) {axis = 0, sizes = [2, 2]} : f32[2], f32[2]
  %2 = add(%w, %x) : f32[4]
  return %0
  update %w = %2
}
)";
  auto [changed, out] = run_dce(in);
  CHECK_FALSE(changed);
  CHECK(out == in);
}
