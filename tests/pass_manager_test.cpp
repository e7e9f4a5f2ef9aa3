#include <catch2/catch.hpp>

#include <cstdlib>

#include "kiln/ir/error.h"
#include "kiln/ir/parser.h"
#include "kiln/ir/printer.h"
#include "kiln/passes/dce.h"
#include "kiln/passes/pass_manager.h"

namespace {
using kiln::passes::PassManager;

const char* kIr = R"(func @f(%x: f32[4]) -> f32[4] {
  %0 = exp(%x) : f32[4]
  %1 = neg(%x) : f32[4]
  return %0
})";

bool no_change(kiln::ir::Function&) {
  return false;
}

// Breaks the IR: a node whose declared result type is not what its op infers.
bool break_types(kiln::ir::Function& f) {
  f.append_unchecked(kiln::ir::Op::exp, {f.param(0)}, {}, {{kiln::ir::DType::f32, {5}}});
  return true;
}
}  // namespace

TEST_CASE("pass manager runs passes in order and records which changed the function",
          "[passes][pass_manager]") {
  kiln::ir::Function f = kiln::ir::parse(kIr);
  std::vector<std::string> order;
  PassManager pm({.verify = true, .print_after = {}});
  pm.add("first", [&](kiln::ir::Function&) {
      order.push_back("first");
      return false;
    }).add("dce", [&](kiln::ir::Function& g) {
    order.push_back("dce");
    return kiln::passes::eliminate_dead_code(g);
  });
  CHECK(pm.run(f));
  CHECK(order == std::vector<std::string>{"first", "dce"});
  CHECK(pm.changed() == std::vector<std::string>{"dce"});
  CHECK(f.nodes().size() == 1);
  CHECK_FALSE(pm.run(f));
  CHECK(pm.changed().empty());
}

TEST_CASE("pass manager verifies between passes and names the pass that broke the IR",
          "[passes][pass_manager]") {
  kiln::ir::Function f = kiln::ir::parse(kIr);
  PassManager pm({.verify = true, .print_after = {}});
  pm.add("fine", no_change).add("breaker", break_types).add("never", no_change);
  CHECK_THROWS_AS(pm.run(f), kiln::InternalError);
  kiln::ir::Function g = kiln::ir::parse(kIr);
  CHECK_THROWS_WITH(pm.run(g), Catch::Contains("after pass 'breaker'"));

  kiln::ir::Function h = kiln::ir::parse(kIr);
  PassManager unchecked({.verify = false, .print_after = {}});
  unchecked.add("breaker", break_types);
  CHECK_NOTHROW(unchecked.run(h));
}

TEST_CASE("pass manager prints the IR after the named passes to its sink",
          "[passes][pass_manager]") {
  std::string printed;
  auto sink = [&](std::string_view text) { printed += text; };
  kiln::ir::Function f = kiln::ir::parse(kIr);
  PassManager pm({.verify = true, .print_after = {"dce"}, .sink = sink});
  pm.add("nothing", no_change).add("dce", kiln::passes::eliminate_dead_code);
  pm.run(f);
  CHECK(printed == R"(// ----- after dce -----
func @f(%x: f32[4]) -> f32[4] {
  %0 = exp(%x) : f32[4]
  return %0
}
)");
  printed.clear();
  PassManager all({.verify = true, .print_after = {"all"}, .sink = sink});
  all.add("nothing", no_change).add("dce", kiln::passes::eliminate_dead_code);
  all.run(f);
  CHECK(printed == R"(// ----- after nothing -----
// (unchanged)
func @f(%x: f32[4]) -> f32[4] {
  %0 = exp(%x) : f32[4]
  return %0
}
// ----- after dce -----
// (unchanged)
func @f(%x: f32[4]) -> f32[4] {
  %0 = exp(%x) : f32[4]
  return %0
}
)");
}

TEST_CASE("pass manager reads KILN_PRINT_AFTER and KILN_VERIFY", "[passes][pass_manager]") {
  setenv("KILN_PRINT_AFTER", "cse, fusion,,dce", 1);
  CHECK(kiln::passes::print_after_from_env() == std::vector<std::string>{"cse", "fusion", "dce"});
  PassManager pm;
  CHECK(pm.prints_after("fusion"));
  CHECK_FALSE(pm.prints_after("canonicalize"));
  unsetenv("KILN_PRINT_AFTER");
  CHECK(kiln::passes::print_after_from_env().empty());

  setenv("KILN_VERIFY", "1", 1);
  CHECK(kiln::passes::verify_by_default());
  setenv("KILN_VERIFY", "0", 1);
  CHECK_FALSE(kiln::passes::verify_by_default());
  unsetenv("KILN_VERIFY");
}

TEST_CASE("pass manager stops after the pass it is told to", "[passes][pass_manager]") {
  kiln::ir::Function f = kiln::ir::parse(kIr);
  std::vector<std::string> order;
  auto record = [&](const std::string& name) {
    return [&order, name](kiln::ir::Function&) {
      order.push_back(name);
      return false;
    };
  };
  PassManager pm({.verify = true, .print_after = {}});
  pm.add("a", record("a")).add("b", record("b")).add("dce", kiln::passes::eliminate_dead_code);
  CHECK_FALSE(pm.run(f, "b"));
  CHECK(order == std::vector<std::string>{"a", "b"});
  CHECK(f.nodes().size() == 2);  // dce did not run
  CHECK(pm.run(f));              // no stop: every pass
  CHECK(order == std::vector<std::string>{"a", "b", "a", "b"});
  CHECK(f.nodes().size() == 1);
}
