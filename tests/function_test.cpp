#include "kiln/frontend/core/function.h"

#include <catch2/catch.hpp>

#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "file_test_util.h"
#include "kiln/frontend/core/log.h"
#include "kiln/frontend/core/ops.h"
#include "kiln/ir/printer.h"
#include "log_test_util.h"

namespace k = kiln;
using Catch::Contains;
using kiln::testing::count_of;

namespace {

using kiln::testing::LogCapture;

template <class T>
std::vector<T> values(const k::Tensor& t) {
  return t.to_vector<T>();
}

std::string here(int line) {
  return "function_test.cpp:" + std::to_string(line);
}

enum class Mode { sum, product };

}  // namespace

TEST_CASE("the issue's contract: poly traces once per signature", "[function]") {
  LogCapture log;
  auto f = k::function([](const k::Tensor& x) {
    k::Tensor a = k::constant(10.f), b = k::constant(-5.f), c = k::constant(4.f);
    return a * x * x + b * x + c;
  });
  k::Tensor y = f(k::constant({1.f, 2.f, 3.f, 4.f}));
  CHECK(values<float>(y) == std::vector<float>{9, 34, 79, 144});
  CHECK(values<float>(f(k::constant({5.f, 6.f, 7.f, 8.f}))) ==
        std::vector<float>{229, 334, 459, 604});
  CHECK(f.trace_count() == 1);
  CHECK(log.lines.empty());

  // f64, new shape: retraces and says what changed. k::constant(10.f) without a dtype is weakly
  // typed, so the f64 trace computes in f64.
  CHECK(values<double>(f(k::constant({1.0, 2.0}))) == std::vector<double>{9, 34});
  REQUIRE(log.lines.size() == 1);
  CHECK(log.lines[0] ==
        "retracing function 'function' (trace 2): argument 0: dtype f32 → f64, shape (4,) → (2,)");
  CHECK(f.trace_count() == 2);

  const k::ir::Function& g = f.graph(k::constant({1.f, 2.f, 3.f, 4.f}));
  std::string text = k::ir::print(g);
  // C++ leaves the order of operator operands open, so check the lines, not their order.
  CHECK_THAT(text, Contains("func @function(%arg0: f32[4]) -> f32[4] {\n"
                            "  %0 = constant() {value = dense<f32[]: 10.0>} : f32[]\n"
                            "  %1 = constant() {value = dense<f32[]: -5.0>} : f32[]\n"
                            "  %2 = constant() {value = dense<f32[]: 4.0>} : f32[]\n"));
  CHECK(count_of(text, " = mul(") == 3);
  CHECK(count_of(text, " = add(") == 2);
  CHECK_THAT(text, Contains("  %7 = add(%6, %2) : f32[4]\n  return %7\n}\n"));
  std::string opt = f.compiled_ir(k::constant({1.f, 2.f, 3.f, 4.f}));
  CHECK_THAT(opt, Contains("@function"));
  CHECK(f.trace_count() == 2);
}

TEST_CASE("a dtype-generic poly retraces for f64 and runs", "[function]") {
  LogCapture log;
  auto poly = k::function([](const k::Tensor& x) { return 10.f * x * x - 5.f * x + 4.f; }, "poly");
  CHECK(values<float>(poly(k::constant({1.f, 2.f, 3.f, 4.f}))) ==
        std::vector<float>{9, 34, 79, 144});
  CHECK(values<double>(poly(k::constant({1.0, 2.0}))) == std::vector<double>{9, 34});
  CHECK(poly.trace_count() == 2);
  CHECK(poly.name() == "poly");
  REQUIRE(log.lines.size() == 1);
  CHECK(log.lines[0] ==
        "retracing function 'poly' (trace 2): argument 0: dtype f32 → f64, shape (4,) → (2,)");
  // Both signatures stay cached.
  poly(k::constant({0.f, 0.f, 0.f, 0.f}));
  poly(k::constant({0.0, 1.0}));
  CHECK(poly.trace_count() == 2);
  CHECK_THAT(k::ir::print(poly.graph(k::constant({1.0, 2.0}))),
             Contains("func @poly(%arg0: f64[2]) -> f64[2]"));
}

TEST_CASE("the retrace message compares with the closest cached signature", "[function]") {
  LogCapture log;
  auto f = k::function(
      [](const k::Tensor& a, const k::Tensor& b, int n) { return std::make_pair(a * n, b * n); });
  f(k::constant({1.f, 2.f}), k::constant({1, 2}), 1);
  f(k::constant({1.0, 2.0, 3.0}), k::constant({1, 2}), 1);
  // Closest to the second trace: only argument 2 changed.
  f(k::constant({1.0, 2.0, 3.0}), k::constant({1, 2}), 2);
  // Closest to the first: argument 1's shape and dtype.
  f(k::constant({1.f, 2.f}), k::constant({{1.f}, {2.f}}), 1);
  CHECK(f.trace_count() == 4);
  CHECK(log.lines == std::vector<std::string>{
                         "retracing function 'function' (trace 2): argument 0: dtype f32 → f64, "
                         "shape (2,) → (3,)",
                         "retracing function 'function' (trace 3): argument 2: 1 → 2",
                         "retracing function 'function' (trace 4): argument 1: dtype i32 → f32, "
                         "shape (2,) → (2, 1)",
                     });
}

TEST_CASE("after 5 retraces a warning names what keeps changing", "[function]") {
  LogCapture log;
  auto f = k::function([](const k::Tensor& x, int scale) { return x * scale; }, "scaled");
  for (int n = 1; n <= 6; ++n)
    f(k::zeros({n}), n);
  CHECK(f.trace_count() == 6);
  REQUIRE(log.lines.size() == 6);
  CHECK(log.lines[4] ==
        "retracing function 'scaled' (trace 6): argument 0: shape (5,) → (6,); argument 1: 5 → 6");
  CHECK(log.lines[5] ==
        "warning: function 'scaled' was retraced 5 times; what keeps changing: argument 0 shape "
        "(5 of 5), argument 1 value (5 of 5). Each retrace traces and compiles the function "
        "again: pass values that change as Tensors rather than plain C++ values, keep shapes and "
        "dtypes steady (pad or bucket the inputs), and create each kiln::function once, outside "
        "loops");
  // The warning comes once.
  f(k::zeros({7}), 7);
  CHECK(log.lines.size() == 7);
}

TEST_CASE("tuples, pairs and vectors of tensors in and out", "[function]") {
  auto f = k::function([](const std::vector<k::Tensor>& xs, std::pair<k::Tensor, k::Tensor> ab) {
    k::Tensor sum = k::zeros({2});
    for (const k::Tensor& x : xs)
      sum = sum + x;
    std::vector<k::Tensor> out{sum * ab.first, sum * ab.second, sum};
    return std::make_tuple(out, std::make_pair(ab.second, ab.first));
  });
  auto [v, p] = f(std::vector<k::Tensor>{k::constant({1.f, 2.f}), k::constant({3.f, 4.f})},
                  std::make_pair(k::constant({2.f, 2.f}), k::constant({0.f, 1.f})));
  REQUIRE(v.size() == 3);
  CHECK(values<float>(v[0]) == std::vector<float>{8, 12});
  CHECK(values<float>(v[1]) == std::vector<float>{0, 6});
  CHECK(values<float>(v[2]) == std::vector<float>{4, 6});
  CHECK(values<float>(p.first) == std::vector<float>{0, 1});
  CHECK(values<float>(p.second) == std::vector<float>{2, 2});
  CHECK(f.trace_count() == 1);

  LogCapture log;
  f(std::vector<k::Tensor>{k::constant({1.f, 2.f})},
    std::make_pair(k::constant({2.f, 2.f}), k::constant({0.f, 1.f})));
  CHECK(f.trace_count() == 2);
  REQUIRE(log.lines.size() == 1);
  CHECK(log.lines[0] ==
        "retracing function 'function' (trace 2): argument 0: 2 tensors → 1 tensors");
  // i32 meets f32 in mul: the trace fails, after saying what changed.
  CHECK_THROWS_AS(f(std::vector<k::Tensor>{k::constant({1.f, 2.f})},
                    std::make_pair(k::constant({2.f, 2.f}), k::constant({0, 1}))),
                  k::TypeError);
  CHECK(log.lines.back() ==
        "retracing function 'function' (trace 3): argument 1[1]: dtype f32 → i32");
}

TEST_CASE("plain C++ arguments are part of the signature and baked in", "[function]") {
  LogCapture log;
  auto f = k::function(
      [](const k::Tensor& x, int n, double scale, bool negate, std::string op, Mode mode) {
        k::Tensor y = op == "square" ? x * x : x;
        for (int i = 1; i < n; ++i)
          y = mode == Mode::sum ? y + x : y * x;
        y = y * scale;
        return negate ? -y : y;
      },
      "plain");
  k::Tensor x = k::constant({1.f, 2.f});
  CHECK(values<float>(f(x, 3, 0.5, false, "id", Mode::sum)) == std::vector<float>{1.5, 3});
  CHECK(values<float>(f(x, 3, 0.5, false, "id", Mode::product)) == std::vector<float>{0.5, 4});
  CHECK(values<float>(f(x, 1, 1.0, true, "square", Mode::sum)) == std::vector<float>{-1, -4});
  CHECK(f.trace_count() == 3);
  f(k::constant({5.f, 6.f}), 3, 0.5, false, std::string("id"), Mode::sum);
  CHECK(f.trace_count() == 3);
  REQUIRE(log.lines.size() == 2);
  CHECK(log.lines[0] ==
        "retracing function 'plain' (trace 2): argument 5: "
        "(anonymous namespace)::Mode(0) → (anonymous namespace)::Mode(1)");

  f(x, 2, 0.25, false, "id", Mode::sum);
  REQUIRE(log.lines.size() == 3);
  CHECK(log.lines[2] ==
        "retracing function 'plain' (trace 4): argument 1: 3 → 2; argument 2: "
        "0.5 → 0.25");
  f(x, 2, 0.25, true, "cube", Mode::product);
  CHECK_THAT(log.lines.back(), Contains("argument 3: false → true; argument 4: \"id\" → \"cube\"; "
                                        "argument 5: "));
  CHECK_THAT(log.lines.back(), Contains("Mode(0) → "));
  // Values are baked in: the IR of (x, 2, 0.25, ...) holds 0.25 as a constant, and no
  // parameter other than x.
  std::string text = k::ir::print(f.graph(x, 2, 0.25, false, "id", Mode::sum));
  CHECK_THAT(text, Contains("func @plain(%arg0: f32[2]) -> f32[2]"));
  CHECK_THAT(text, Contains("dense<f32[]: 0.25>"));
}

TEST_CASE("captured eager tensors are implicit inputs, not constants", "[function]") {
  k::Tensor offset = k::constant({100.f, 200.f, 300.f});
  auto f = k::function([&](const k::Tensor& x) { return x + offset; }, "shift");
  CHECK(values<float>(f(k::constant({1.f, 2.f, 3.f}))) == std::vector<float>{101, 202, 303});
  std::string text = k::ir::print(f.graph(k::constant({1.f, 2.f, 3.f})));
  CHECK(text ==
        "func @shift(%arg0: f32[3], %capture0: f32[3]) -> f32[3] {\n"
        "  %0 = add(%arg0, %capture0) : f32[3]\n"
        "  return %0\n"
        "}\n");
  CHECK_THAT(text, !Contains("100.0"));

  // Tensors are immutable; state that changes between calls lives in a Variable, whose value
  // a trace reads on every call.
  k::Variable bias(k::constant({1.f, 1.f, 1.f}), "bias");
  auto g = k::function([&](const k::Tensor& x) { return x + bias; }, "biased");
  CHECK(values<float>(g(k::constant({1.f, 2.f, 3.f}))) == std::vector<float>{2, 3, 4});
  bias.assign(k::constant({10.f, 20.f, 30.f}));
  CHECK(values<float>(g(k::constant({1.f, 2.f, 3.f}))) == std::vector<float>{11, 22, 33});
  CHECK(g.trace_count() == 1);
  CHECK_THAT(k::ir::print(g.graph(k::constant({1.f, 2.f, 3.f}))),
             Contains("func @biased(%arg0: f32[3], %bias: f32[3]) -> f32[3]"));
}

TEST_CASE("one captured tensor used twice is one input", "[function]") {
  k::Tensor c = k::constant(2.f);
  auto f = k::function([&](const k::Tensor& x) { return x * c + c; });
  CHECK(values<float>(f(k::constant({1.f, 2.f}))) == std::vector<float>{4, 6});
  CHECK(f.graph(k::constant({1.f, 2.f})).params().size() == 2);
}

TEST_CASE("variable updates in a traced step are applied after each call", "[function]") {
  k::Variable w(k::constant({0.f, 0.f}), "w");
  k::Variable steps(k::constant(0), "steps");
  auto step = k::function(
      [&](const k::Tensor& x) {
        w.assign_add(x);
        steps.assign_add(k::constant(1));
        return w.value() * 2.f;  // reads see the assigned value
      },
      "step");
  for (int i = 0; i < 3; ++i)
    step(k::constant({1.f, 0.5f}));
  CHECK(values<float>(w.value()) == std::vector<float>{3, 1.5});
  CHECK(steps.value().item<int32_t>() == 3);
  CHECK(values<float>(step(k::constant({1.f, 1.f}))) == std::vector<float>{8, 5});
  CHECK(step.trace_count() == 1);
  CHECK(k::ir::print(step.graph(k::constant({1.f, 1.f}))) ==
        "func @step(%arg0: f32[2], %w: f32[2], %steps: i32[]) -> f32[2] {\n"
        "  %0 = add(%w, %arg0) : f32[2]\n"
        "  %1 = constant() {value = dense<i32[]: 1>} : i32[]\n"
        "  %2 = add(%steps, %1) : i32[]\n"
        "  %3 = constant() {value = dense<f32[]: 2.0>} : f32[]\n"
        "  %4 = mul(%0, %3) : f32[2]\n"
        "  return %4\n"
        "  update %w = %0\n"
        "  update %steps = %2\n"
        "}\n");
}

TEST_CASE("Variable arguments bind to the variable passed on each call", "[function]") {
  auto sgd = k::function([](k::Variable& v, const k::Tensor& grad, float lr) {
    v.assign_sub(grad * lr);
    v.assign(v.value() * 1.f);  // a second update of the same variable: the last one wins
  });
  k::Variable a(k::constant({1.f, 1.f}), "a");
  k::Variable b(k::constant({5.f, 5.f}), "b");
  sgd(a, k::constant({1.f, 2.f}), 0.5f);
  sgd(b, k::constant({1.f, 2.f}), 0.5f);
  CHECK(sgd.trace_count() == 1);
  CHECK(values<float>(a.value()) == std::vector<float>{0.5, 0});
  CHECK(values<float>(b.value()) == std::vector<float>{4.5, 4});

  // The same variable twice is another signature (one input instead of two).
  LogCapture log;
  auto swap = k::function([](k::Variable x, k::Variable y) {
    k::Tensor old_x = x.value();
    x.assign(y.value());
    y.assign(old_x);
  });
  swap(a, b);
  CHECK(values<float>(a.value()) == std::vector<float>{4.5, 4});
  CHECK(values<float>(b.value()) == std::vector<float>{0.5, 0});
  swap(a, a);
  CHECK(values<float>(a.value()) == std::vector<float>{4.5, 4});
  CHECK(swap.trace_count() == 2);
  REQUIRE(log.lines.size() == 1);
  CHECK(log.lines[0] ==
        "retracing function 'function' (trace 2): argument 1: a distinct Variable "
        "→ the same Variable as argument 0");
}

TEST_CASE("constants, fills and seeded random numbers inside become nodes", "[function]") {
  auto f = k::function([](const k::Tensor& x) {
    return x + k::zeros({3}) + k::random_uniform({3}, 0.0, 1.0, 42) + k::range(3, k::f32);
  });
  k::Tensor x = k::constant({0.f, 0.f, 0.f});
  k::Tensor eager = k::random_uniform({3}, 0.0, 1.0, 42) + k::range(3, k::f32);
  CHECK(values<float>(f(x)) == values<float>(eager));
  CHECK(values<float>(f(x)) == values<float>(eager));  // stateless: same numbers every call
  std::string text = k::ir::print(f.graph(x));
  CHECK_THAT(text, Contains("fill() {dtype = f32, shape = [3], value = 0.0}"));
  CHECK_THAT(text,
             Contains("random_uniform() {dtype = f32, maxval = 1.0, minval = 0.0, seed = 42"));
  CHECK_THAT(text, Contains("range()"));
  CHECK(f.graph(x).params().size() == 1);
}

TEST_CASE("a function called inside another is inlined", "[function]") {
  auto inner = k::function([](const k::Tensor& x) { return x * x; }, "inner");
  auto outer = k::function(
      [&](const k::Tensor& x) {
        k::Tensor a = inner(x);
        k::Tensor b = inner(x + 1.f);
        return a + b;
      },
      "outer");
  CHECK(values<float>(outer(k::constant({1.f, 2.f}))) == std::vector<float>{5, 13});
  CHECK(values<float>(outer(k::constant({3.f, 4.f}))) == std::vector<float>{25, 41});
  CHECK(outer.trace_count() == 1);
  CHECK(inner.trace_count() == 0);  // inlined calls do not trace on their own
  CHECK(k::ir::print(outer.graph(k::constant({1.f, 2.f}))) ==
        "func @outer(%arg0: f32[2]) -> f32[2] {\n"
        "  %0 = mul(%arg0, %arg0) : f32[2]\n"
        "  %1 = constant() {value = dense<f32[]: 1.0>} : f32[]\n"
        "  %2 = add(%arg0, %1) : f32[2]\n"
        "  %3 = mul(%2, %2) : f32[2]\n"
        "  %4 = add(%0, %3) : f32[2]\n"
        "  return %4\n"
        "}\n");
  // Called on its own, the inner function traces and caches as usual.
  CHECK(values<float>(inner(k::constant({3.f}))) == std::vector<float>{9});
  CHECK(inner.trace_count() == 1);
}

TEST_CASE("results may be arguments, captures or nothing at all", "[function]") {
  k::Tensor c = k::constant({7, 8});
  auto f = k::function([&](const k::Tensor& x) { return std::make_pair(x, c); });
  auto [x, y] = f(k::constant({1, 2}));
  CHECK(values<int32_t>(x) == std::vector<int32_t>{1, 2});
  CHECK(values<int32_t>(y) == std::vector<int32_t>{7, 8});
  auto nothing = k::function([](int) {});
  nothing(1);
  CHECK(nothing.trace_count() == 1);
}

TEST_CASE("wrong arity or argument types name the function and its signature", "[function]") {
  auto f = k::function([](const k::Tensor& x, int n) { return x * n; }, "poly");
  CHECK(f.signature() == "poly(Tensor, int)");
  CHECK_THROWS_AS(f(k::constant(1.f)), k::TypeError);
  CHECK_THROWS_WITH(f(k::constant(1.f)),
                    "function 'poly' takes 2 arguments, but was called with 1 argument (Tensor); "
                    "the function's signature is poly(Tensor, int)");
  CHECK_THROWS_WITH(f(k::constant(1.f), 1, 2),
                    Contains("takes 2 arguments, but was called with 3 arguments"));
  CHECK_THROWS_AS(f(1, 1), k::TypeError);
  CHECK_THROWS_WITH(f(1, 1),
                    "argument 0 of function 'poly' must be Tensor, got int; the "
                    "function's signature is poly(Tensor, int)");
  CHECK_THROWS_WITH(f(k::constant(1.f), std::string("x")),
                    Contains("argument 1 of function 'poly' must be int, got std::string"));
  CHECK_THROWS_AS(f(k::Tensor(), 1), k::ValueError);
  CHECK_THROWS_WITH(f(k::Tensor(), 1),
                    "argument 0 of function 'poly' is an undefined Tensor; "
                    "the function's signature is poly(Tensor, int)");
  auto g = k::function([](k::Variable& v) { return v.value(); }, "g");
  k::Variable undefined;
  CHECK_THROWS_AS(g(undefined), k::ValueError);
  CHECK(f.trace_count() == 0);
}

TEST_CASE("an op error while tracing points at the user's line", "[function]") {
  static int line = 0;
  auto f = k::function(
      [](const k::Tensor& x) {
        line = __LINE__ + 1;
        return k::matmul(x, x);
      },
      "bad");
  CHECK_THROWS_AS(f(k::constant({1.f, 2.f})), k::ShapeError);
  CHECK_THROWS_WITH(f(k::constant({1.f, 2.f})), Contains(here(line)));
  CHECK_THROWS_WITH(f(k::constant({1.f, 2.f})), Contains("while tracing bad(f32[2])"));
  CHECK(f.trace_count() == 0);
  // The failed trace left nothing behind: a good signature still works.
  CHECK(values<float>(f(k::constant({{2.f}}))) == std::vector<float>{4});
}

TEST_CASE("reading a symbolic tensor's value while tracing is a clear error", "[function]") {
  static int line = 0;
  auto f = k::function([](const k::Tensor& x) {
    line = __LINE__ + 1;
    if (x.item<float>() > 0) return x;  // C++ control flow on a value
    return -x;
  });
  CHECK_THROWS_AS(f(k::constant(1.f)), k::ValueError);
  CHECK_THROWS_WITH(f(k::constant(1.f)),
                    Contains("cannot read the value of a symbolic tensor while tracing;"));
  CHECK_THROWS_WITH(f(k::constant(1.f)), Contains(here(line)));

  k::Tensor leaked;
  auto g = k::function([&](const k::Tensor& x) {
    leaked = x * 2.f;
    return x;
  });
  g(k::constant(1.f));
  CHECK(leaked.is_symbolic());
  CHECK(leaked.shape() == k::Shape{});
  CHECK_THROWS_AS(leaked + 1.f, k::ValueError);
  CHECK_THROWS_WITH(leaked + 1.f, Contains("a symbolic tensor was used outside the kiln::function "
                                           "trace that made it"));
  CHECK_THROWS_WITH(leaked.host(), Contains("cannot read the value of a symbolic tensor"));
  CHECK_THROWS_WITH(g(leaked), Contains("argument 0 of function 'function' is a symbolic tensor"));
  // Using it inside another function's trace is caught too.
  auto h = k::function([&](const k::Tensor& x) { return x + leaked; });
  CHECK_THROWS_WITH(h(k::constant(1.f)), Contains("a symbolic tensor from another trace"));
}

TEST_CASE("creating a Variable while tracing is an error", "[function]") {
  auto f = k::function([](const k::Tensor& x) {
    k::Variable v(x, "v");
    return v.value();
  });
  CHECK_THROWS_AS(f(k::constant(1.f)), k::ValueError);
  CHECK_THROWS_WITH(f(k::constant(1.f)), Contains("cannot create a Variable while tracing"));
}

TEST_CASE("concurrent calls trace once and share the cache", "[function]") {
  auto f = k::function([](const k::Tensor& x) { return x * 3.f + 1.f; });
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        float v = static_cast<float>(t * 100 + i);
        ok[t] += f(k::constant({v})).to_vector<float>()[0] == v * 3 + 1;
        // Eager ops on this thread are unaffected by traces on others.
        ok[t] += (k::constant(v) * 2.f).item<float>() == v * 2;
      }
    });
  }
  for (std::thread& th : threads)
    th.join();
  CHECK(ok == std::vector<int>(4, 100));
  CHECK(f.trace_count() == 1);
}

TEST_CASE("copies of a function share one cache", "[function]") {
  auto f = k::function([](const k::Tensor& x) { return x + 1; });
  auto g = f;
  f(k::constant({1, 2}));
  g(k::constant({3, 4}));
  CHECK(g.trace_count() == 1);
  CHECK(f.trace_count() == 1);
}
