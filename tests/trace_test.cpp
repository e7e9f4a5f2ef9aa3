#include "kiln/frontend/core/trace.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "kiln/frontend/core/log.h"
#include "kiln/frontend/core/name_scope.h"
#include "kiln/frontend/core/ops.h"
#include "kiln/ir/printer.h"

namespace k = kiln;
using Catch::Contains;
using k::detail::Binding;
using k::detail::Trace;
using k::detail::TraceScope;

TEST_CASE("ops inside a trace append nodes and return symbolic tensors", "[trace]") {
  Trace trace("t", {});
  CHECK(k::detail::current_trace() == nullptr);
  {
    TraceScope scope(trace);
    CHECK(k::detail::current_trace() == &trace);
    k::Tensor x = trace.add_argument({k::f32, {3}});
    CHECK(x.is_symbolic());
    CHECK(x.shape() == k::Shape{3});
    CHECK(x.dtype() == k::f32);
    k::Tensor y;
    {
      k::name_scope s("layer");
      y = k::relu(x);
    }
    CHECK(y.is_symbolic());
    trace.finish(std::vector<k::Tensor>{y});
  }
  CHECK(k::detail::current_trace() == nullptr);
  // Eager again once the scope is gone.
  CHECK_FALSE((k::constant(1.f) + 1.f).is_symbolic());

  const k::ir::Function& f = trace.function();
  REQUIRE(f.nodes().size() == 1);
  CHECK(f.nodes()[0]->op() == k::ir::Op::relu);
  CHECK(f.nodes()[0]->scope() == "layer");
  CHECK_THAT(f.nodes()[0]->loc().file, Contains("trace_test.cpp"));
  CHECK(k::ir::print(f) ==
        "func @t(%arg0: f32[3]) -> f32[3] {\n"
        "  %0 = relu(%arg0) : f32[3]  scope \"layer\"\n"
        "  return %0\n"
        "}\n");
  REQUIRE(trace.bindings().size() == 1);
  CHECK(trace.bindings()[0].kind == Binding::Kind::argument);
}

TEST_CASE("concrete tensors used in a trace become one input each", "[trace]") {
  k::Tensor c = k::constant({1, 2});
  k::Tensor d = k::constant({3, 4});
  Trace trace("t", {});
  {
    TraceScope scope(trace);
    k::Tensor y = c + d + c;
    trace.finish(std::vector<k::Tensor>{y, d});
  }
  const auto& bindings = trace.bindings();
  REQUIRE(bindings.size() == 2);
  CHECK(bindings[0].kind == Binding::Kind::captured);
  CHECK(bindings[0].tensor.to_vector<int32_t>() == std::vector<int32_t>{1, 2});
  CHECK(bindings[1].tensor.to_vector<int32_t>() == std::vector<int32_t>{3, 4});
  CHECK(k::ir::print(trace.function()) ==
        "func @t(%capture0: i32[2], %capture1: i32[2]) -> (i32[2], i32[2]) {\n"
        "  %0 = add(%capture0, %capture1) : i32[2]\n"
        "  %1 = add(%0, %capture0) : i32[2]\n"
        "  return %1, %capture1\n"
        "}\n");
}

TEST_CASE("variable reads are inputs and assigns are updates", "[trace]") {
  k::Variable v(k::constant(1.f), "v");
  k::Variable arg(k::constant(2.f), "arg");
  k::Variable written(k::constant(0.f), "written");
  Trace trace("t", std::vector<k::Variable>{arg});
  {
    TraceScope scope(trace);
    k::Tensor first = v.value();
    v.assign_add(arg.value());
    CHECK(v.value().is_symbolic());
    written.assign(first);  // written without a read: still an input, then an update
    trace.finish(std::vector<k::Tensor>{v.value()});
  }
  // Nothing changed eagerly.
  CHECK(v.value().item<float>() == 1.f);
  CHECK(written.value().item<float>() == 0.f);
  CHECK(k::ir::print(trace.function()) ==
        "func @t(%v: f32[], %arg: f32[], %written: f32[]) -> f32[] {\n"
        "  %0 = add(%v, %arg) : f32[]\n"
        "  return %0\n"
        "  update %v = %0\n"
        "  update %written = %v\n"
        "}\n");
  const auto& b = trace.bindings();
  REQUIRE(b.size() == 3);
  CHECK(b[0].index == Binding::kCaptured);
  CHECK(b[0].variable.is(v));
  CHECK(b[1].index == 0);  // the first Variable argument
  CHECK(b[2].variable.is(written));
}

TEST_CASE("op errors inside a trace name the op and the user's line", "[trace]") {
  Trace trace("t", {});
  TraceScope scope(trace);
  k::Tensor x = trace.add_argument({k::f32, {2, 3}});
  int line = __LINE__ + 1;
  CHECK_THROWS_AS(k::matmul(x, x), k::ShapeError);
  try {
    k::matmul(x, x);
  } catch (const k::ShapeError& e) {
    std::string what = e.what();
    CHECK_THAT(what, Contains("matmul"));
    CHECK_THAT(what, Contains("f32[2,3], f32[2,3]"));
    CHECK_THAT(what, Contains("trace_test.cpp:" + std::to_string(line + 2)));
  }
  CHECK_THROWS_WITH(x.item<float>(), Contains("cannot read the value of a symbolic tensor"));
  CHECK_THROWS_WITH(x.to_vector<float>(), Contains("trace_test.cpp"));
}

TEST_CASE("a symbolic tensor of another trace is refused", "[trace]") {
  Trace a("a", {});
  Trace b("b", {});
  CHECK(a.id() != b.id());
  k::Tensor x;
  {
    TraceScope scope(a);
    x = a.add_argument({k::f32, {}});
  }
  TraceScope scope(b);
  CHECK_THROWS_AS(x + 1.f, k::ValueError);
  CHECK_THROWS_WITH(x + 1.f, Contains("a symbolic tensor from another trace was used while tracing "
                                      "function 'b'"));
  CHECK_THROWS_WITH(b.finish(std::vector<k::Tensor>{x}),
                    "function 'b' returned a symbolic tensor from another trace (result 0)");
  CHECK_THROWS_WITH(b.finish(std::vector<k::Tensor>{k::Tensor()}),
                    "function 'b' returned an undefined Tensor (result 0)");
}

TEST_CASE("traces nest per thread", "[trace]") {
  Trace outer("outer", {});
  Trace inner("inner", {});
  TraceScope s1(outer);
  {
    TraceScope s2(inner);
    CHECK(k::detail::current_trace() == &inner);
  }
  CHECK(k::detail::current_trace() == &outer);
}

TEST_CASE("Function::clone copies params, nodes, outputs and updates", "[trace]") {
  k::Variable v(k::constant({1.f, 2.f}), "v");
  Trace trace("t", {});
  {
    TraceScope scope(trace);
    k::Tensor x = trace.add_argument({k::f32, {2}});
    k::name_scope s("scope");
    v.assign(k::concat(k::split(x * v.value(), 2), 0) + k::constant(1.f));
    trace.finish(std::vector<k::Tensor>{x});
  }
  k::ir::Function copy = trace.function().clone();
  k::ir::PrintOptions with_locations{true};
  CHECK(k::ir::print(copy, with_locations) == k::ir::print(trace.function(), with_locations));
  CHECK(copy.updates().size() == 1);
  CHECK(copy.params()[0].get() != trace.function().params()[0].get());
}

TEST_CASE("the log sink can be replaced and restored", "[trace]") {
  std::vector<std::string> seen;
  k::LogSink previous = k::set_log_sink([&](std::string_view m) { seen.emplace_back(m); });
  k::log_message("hello");
  k::LogSink mine = k::set_log_sink(previous);
  CHECK(seen == std::vector<std::string>{"hello"});
  REQUIRE(mine);
  mine("direct");
  CHECK(seen.size() == 2);
}
