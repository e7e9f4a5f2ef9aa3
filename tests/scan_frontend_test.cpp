// kiln::scan (issue 15): eager runs, traced bodies (lifting of outer values, captured tensors and
// Variable reads), the user errors, the compiled path and tape gradients.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <cmath>
#include <set>
#include <vector>

#include "kiln/frontend/core/trace.h"
#include "kiln/ir/interpreter.h"

#include "error_test_util.h"

namespace k = kiln;
using Catch::Contains;
using kiln::testing::error_of;

namespace {

using Pair = std::pair<std::vector<k::Tensor>, std::vector<k::Tensor>>;

k::ScanOptions reversed(bool reverse) {
  k::ScanOptions options;
  options.reverse = reverse;
  return options;
}

k::ScanOptions steps(int64_t length) {
  k::ScanOptions options;
  options.length = length;
  return options;
}

std::vector<double> values(const k::Tensor& t) {
  return t.to_vector<double>();
}

k::Tensor f64(const std::vector<double>& v, const k::Shape& shape) {
  return k::constant(v, shape, k::f64);
}

void check_close(const k::Tensor& a, const k::Tensor& b, double tol = 1e-12) {
  REQUIRE(a.type() == b.type());
  std::vector<double> x = values(a), y = values(b);
  for (size_t i = 0; i < x.size(); ++i) {
    INFO("element " << i);
    CHECK(x[i] == Approx(y[i]).margin(tol).epsilon(tol));
  }
}

// h' = tanh(h·U + x + b): a simple RNN cell using an outer weight U and bias b.
k::ScanResult rnn(const k::Tensor& h0, const k::Tensor& xs, const k::Tensor& u, const k::Tensor& b,
                  bool reverse = false) {
  return k::scan(
      [&](std::span<const k::Tensor> c, std::span<const k::Tensor> x) {
        k::Tensor h = k::tanh(k::matmul(c[0], u) + x[0] + b);
        return Pair{{h}, {h}};
      },
      {h0}, {xs}, reversed(reverse));
}

// The same recurrence unrolled with ordinary ops.
std::pair<k::Tensor, k::Tensor> rnn_unrolled(const k::Tensor& h0, const k::Tensor& xs,
                                             const k::Tensor& u, const k::Tensor& b,
                                             bool reverse = false) {
  int64_t T = xs.shape()[0];
  std::vector<k::Tensor> ys(static_cast<size_t>(T));
  k::Tensor h = h0;
  for (int64_t i = 0; i < T; ++i) {
    int64_t t = reverse ? T - 1 - i : i;
    k::Tensor x = xs.index({t});
    h = k::tanh(k::matmul(h, u) + x + b);
    ys[static_cast<size_t>(t)] = h;
  }
  return {h, k::stack(ys)};
}

struct RnnData {
  k::Tensor h0 = f64({0.1, -0.2, 0.3, 0.4, -0.5, 0.6}, {2, 3});
  k::Tensor xs = k::cast(k::random_uniform({4, 2, 3}, -1.0, 1.0, 3), k::f64);
  k::Tensor u = k::cast(k::random_uniform({3, 3}, -0.5, 0.5, 4), k::f64);
  k::Tensor b = f64({0.05, -0.1, 0.2}, {3});
};

}  // namespace

TEST_CASE("scan runs eagerly: cumulative sum, reverse, length 0", "[scan][frontend]") {
  auto cumsum = [](std::span<const k::Tensor> c, std::span<const k::Tensor> x) {
    k::Tensor s = c[0] + x[0];
    return Pair{{s}, {s}};
  };
  k::Tensor xs = f64({1, 2, 3, 4, 5, 6}, {3, 2});
  for (k::EagerMode mode : {k::EagerMode::compiled, k::EagerMode::interpret}) {
    k::set_eager_mode(mode);
    k::ScanResult r = k::scan(cumsum, {f64({0, 10}, {2})}, {xs});
    CHECK(values(r.carries[0]) == std::vector<double>{9, 22});
    CHECK(values(r.ys[0]) == std::vector<double>{1, 12, 4, 16, 9, 22});
    k::ScanResult back = k::scan(cumsum, {f64({0, 10}, {2})}, {xs}, reversed(true));
    CHECK(values(back.ys[0]) == std::vector<double>{9, 22, 8, 20, 5, 16});
    k::ScanResult none = k::scan(cumsum, {f64({3, 4}, {2})}, {k::zeros({0, 2}, k::f64)});
    CHECK(values(none.carries[0]) == std::vector<double>{3, 4});
    CHECK(none.ys[0].shape() == k::Shape{0, 2});
  }
  k::detail::reread_eager_environment();
}

TEST_CASE("scan without xs takes its length from the options", "[scan][frontend]") {
  k::Tensor step = k::constant(2.0, k::f64);
  k::ScanResult r = k::scan(
      [&](std::span<const k::Tensor> c, std::span<const k::Tensor>) {
        k::Tensor p = c[0] * step;  // `step` is captured: an operand of the scan
        return Pair{{p}, {p, c[0]}};
      },
      {k::constant(1.0, k::f64)}, {}, steps(4));
  CHECK(r.carries[0].item<double>() == 16);
  CHECK(values(r.ys[0]) == std::vector<double>{2, 4, 8, 16});
  CHECK(values(r.ys[1]) == std::vector<double>{1, 2, 4, 8});
}

TEST_CASE("eager scan equals the unrolled loop, forward and reverse", "[scan][frontend]") {
  RnnData d;
  for (bool reverse : {false, true}) {
    k::ScanResult r = rnn(d.h0, d.xs, d.u, d.b, reverse);
    auto [h, ys] = rnn_unrolled(d.h0, d.xs, d.u, d.b, reverse);
    check_close(r.carries[0], h);
    check_close(r.ys[0], ys);
  }
}

TEST_CASE("a traced scan lifts outer values, captures and Variable reads", "[scan][frontend]") {
  RnnData d;
  k::Variable bias(d.b, "bias");
  k::ScanResult eager = rnn(d.h0, d.xs, d.u, bias.value());

  // Trace: h0 and xs are arguments; U is one too (a symbolic tensor of the outer trace, lifted
  // into the body); the bias is a Variable read inside the body.
  k::Tensor offset = k::zeros_like(d.h0);
  k::detail::Trace trace("f", {});
  {
    k::detail::TraceScope scope(trace);
    k::Tensor h0 = trace.add_argument(d.h0.type());
    k::Tensor xs = trace.add_argument(d.xs.type());
    k::Tensor u = trace.add_argument(d.u.type());
    k::ScanResult r = k::scan(
        [&](std::span<const k::Tensor> c, std::span<const k::Tensor> x) {
          k::Tensor h = k::tanh(k::matmul(c[0], u) + x[0] + bias.value());
          k::Tensor h2 = h + offset;  // a captured concrete tensor
          return Pair{{h2}, {h2}};
        },
        {h0}, {xs});
    trace.finish(std::vector<k::Tensor>{r.carries[0], r.ys[0]});
  }
  const k::ir::Function& f = trace.function();
  REQUIRE(f.nodes().size() == 1);
  const k::ir::Node& node = *f.nodes()[0];
  CHECK(node.op() == k::ir::Op::scan);
  // init, xs, then the lifted U, bias (read through the outer trace: its variable parameter) and
  // the captured zeros.
  REQUIRE(node.inputs().size() == 5);
  // (U and the bias in the order the body's expression evaluated them)
  CHECK(std::set<const k::ir::Value*>{node.input(2), node.input(3)} ==
        std::set<const k::ir::Value*>{f.param(2), f.param(3)});
  CHECK(f.param(3)->name() == "bias");
  CHECK(node.input(4) == f.param(4));
  CHECK(trace.bindings()[3].kind == k::detail::Binding::Kind::variable);
  CHECK(trace.bindings()[4].kind == k::detail::Binding::Kind::captured);
  CHECK_FALSE(node.attrs().get_bool("save_carries"));
  CHECK(node.attrs().get_function("body").function().name() == "scan_body");

  std::vector<k::ir::HostTensor> args = {d.h0.host(), d.xs.host(), d.u.host(), bias.value().host(),
                                         trace.bindings()[4].tensor.host()};
  k::ir::EvalResult traced = k::ir::evaluate(f, args);
  check_close(k::Tensor(traced.outputs[0]), eager.carries[0]);
  check_close(k::Tensor(traced.outputs[1]), eager.ys[0]);
}

TEST_CASE("nested scans lift through each level", "[scan][frontend]") {
  k::Tensor scale = k::constant(0.5, k::f64);  // captured by the inner body, two levels down
  k::Tensor xs = f64({1, 2, 3, 4, 5, 6}, {2, 3});
  k::ScanResult r = k::scan(
      [&](std::span<const k::Tensor> c, std::span<const k::Tensor> x) {
        k::Tensor outer_carry = c[0];
        k::ScanResult inner = k::scan(
            [&](std::span<const k::Tensor> d, std::span<const k::Tensor> e) {
              // uses the outer body's carry (a value of the enclosing trace) and `scale`
              k::Tensor s = d[0] + e[0] * scale + outer_carry * 0.0;
              return Pair{{s}, {}};
            },
            {outer_carry}, {x[0]});
        return Pair{{inner.carries[0]}, {inner.carries[0]}};
      },
      {k::constant(0.0, k::f64)}, {xs});
  CHECK(r.carries[0].item<double>() == 10.5);
  CHECK(values(r.ys[0]) == std::vector<double>{3, 10.5});
}

TEST_CASE("assigning a Variable inside a scan body is a ValueError at the user's line",
          "[scan][frontend][errors]") {
  k::Variable v(k::constant(1.0, k::f64), "acc");
  int line = 0;
  std::string msg = error_of<k::ValueError>([&] {
    k::scan(
        [&](std::span<const k::Tensor> c, std::span<const k::Tensor>) {
          line = __LINE__ + 1;
          v.assign(c[0]);
          return Pair{{c[0]}, {}};
        },
        {k::constant(2.0, k::f64)}, {}, steps(2));
  });
  kiln::testing::check_message_at(msg, {"a scan body cannot assign variables", "'acc'"},
                                  "scan_frontend_test.cpp", line);
  CHECK(v.value().item<double>() == 1.0);
}

TEST_CASE("a carry whose type changes is a TypeError at the scan's line",
          "[scan][frontend][errors]") {
  int line = 0;
  std::string msg = error_of<k::TypeError>([&] {
    line = __LINE__ + 1;
    k::scan(
        [](std::span<const k::Tensor> c, std::span<const k::Tensor>) {
          return Pair{{k::cast(c[0], k::f32)}, {}};
        },
        {k::constant(2.0, k::f64)}, {}, steps(2));
  });
  kiln::testing::check_message_at(msg,
                                  {"carry 0: the body returned f32[] for a carry of type f64[]"},
                                  "scan_frontend_test.cpp", line);
  std::string shape = error_of<k::TypeError>([&] {
    k::scan(
        [](std::span<const k::Tensor> c, std::span<const k::Tensor>) {
          return Pair{{k::concat({c[0], c[0]}, 0)}, {}};
        },
        {f64({1, 2}, {2})}, {}, steps(2));
  });
  CHECK_THAT(shape, Contains("carry 0: the body returned f64[4] for a carry of type f64[2]"));
}

TEST_CASE("scan rejects bad arguments", "[scan][frontend][errors]") {
  auto same = [](std::span<const k::Tensor> c, std::span<const k::Tensor>) {
    return Pair{{c[0]}, {}};
  };
  k::Tensor c = k::constant(1.0, k::f64);
  CHECK_THAT(error_of<k::ValueError>([&] { k::scan(same, {c}, {}); }),
             Contains("a scan without xs needs its number of steps"));
  CHECK_THAT(error_of<k::ValueError>([&] { k::scan(same, {c}, {}, steps(-1)); }),
             Contains("length must be >= 0, got -1"));
  CHECK_THAT(error_of<k::ShapeError>([&] { k::scan(same, {c}, {c}); }),
             Contains("xs 0 is a scalar"));
  CHECK_THAT(error_of<k::ShapeError>([&] {
               k::scan(same, {c}, {k::zeros({3}), k::zeros({4})});
             }),
             Contains("xs 1 has 4 steps (leading dimension) but xs 0 has 3"));
  CHECK_THAT(error_of<k::ShapeError>([&] { k::scan(same, {c}, {k::zeros({3})}, steps(2)); }),
             Contains("xs 0 has 3 steps (leading dimension) but length has 2"));
  CHECK_THAT(error_of<k::ValueError>([&] {
               k::scan(
                   [](std::span<const k::Tensor>, std::span<const k::Tensor>) {
                     return Pair{{}, {}};
                   },
                   {c}, {}, steps(1));
             }),
             Contains("the body returned 0 carries for 1 initial carries"));
  CHECK_THAT(error_of<k::ValueError>([&] { k::scan(same, {k::Tensor()}, {}, steps(1)); }),
             Contains("carry 0 is an undefined Tensor"));
}

TEST_CASE("a kiln::function with a scan compiles it (the CPU path)", "[scan][frontend]") {
  auto f = k::function(
      [](const k::Tensor& x) {
        k::ScanResult r = k::scan(
            [](std::span<const k::Tensor> c, std::span<const k::Tensor> xs) {
              return Pair{{c[0] + xs[0]}, {}};
            },
            {k::zeros({2})}, {x});
        return r.carries[0];
      },
      "uses_scan");
  CHECK(f(k::ones({3, 2})).to_vector<float>() == std::vector<float>{3, 3});
}

TEST_CASE("a tape differentiates through an eager scan as through the unrolled loop",
          "[scan][frontend][tape]") {
  RnnData d;
  for (bool reverse : {false, true}) {
    k::Variable u(d.u, "u");
    k::Tensor h0 = d.h0, xs = d.xs;
    k::Tensor w = k::cast(k::random_uniform({4, 2, 3}, -1.0, 1.0, 9), k::f64);
    std::vector<k::Tensor> scanned, unrolled;
    {
      k::GradientTape tape;
      tape.watch(h0);
      tape.watch(xs);
      k::ScanResult r = rnn(h0, xs, u.value(), d.b, reverse);
      k::Tensor loss = k::reduce_sum(r.ys[0] * w) + k::reduce_sum(r.carries[0]);
      scanned = tape.gradient(loss, {h0, xs, u});
    }
    {
      k::GradientTape tape;
      tape.watch(h0);
      tape.watch(xs);
      auto [h, ys] = rnn_unrolled(h0, xs, u.value(), d.b, reverse);
      k::Tensor loss = k::reduce_sum(ys * w) + k::reduce_sum(h);
      unrolled = tape.gradient(loss, {h0, xs, u});
    }
    for (size_t i = 0; i < 3; ++i) {
      INFO("source " << i << (reverse ? " (reverse)" : ""));
      check_close(scanned[i], unrolled[i], 1e-10);
    }
  }
}

TEST_CASE("a Variable read inside the body gets its gradient through the tape",
          "[scan][frontend][tape]") {
  k::Variable a(k::constant(0.5, k::f64), "a");
  k::Tensor xs = f64({1, 2, 3}, {3});
  k::GradientTape tape;
  k::ScanResult r = k::scan(
      [&](std::span<const k::Tensor> c, std::span<const k::Tensor> x) {
        k::Tensor h = c[0] * a.value() + x[0];
        return Pair{{h}, {}};
      },
      {k::constant(1.0, k::f64)}, {xs});
  // h3 = a³ + a²·1 + a·2 + 3, dh3/da = 3a² + 2a + 2 = 3.75
  CHECK(r.carries[0].item<double>() == Approx(0.125 + 0.25 + 1 + 3));
  CHECK(tape.gradient(r.carries[0], a).item<double>() == Approx(3.75));
}

TEST_CASE("a tape inside a trace saves carries and appends one reverse scan",
          "[scan][frontend][tape]") {
  RnnData d;
  k::Tensor eager_grad;
  {
    k::Tensor h0 = d.h0;
    k::GradientTape tape;
    tape.watch(h0);
    k::ScanResult r = rnn(h0, d.xs, d.u, d.b);
    eager_grad = tape.gradient(k::reduce_sum(r.ys[0]), h0);
  }
  k::detail::Trace trace("train_step", {});
  {
    k::detail::TraceScope scope(trace);
    k::Tensor h0 = trace.add_argument(d.h0.type());
    k::GradientTape tape;
    tape.watch(h0);
    k::ScanResult r = rnn(h0, d.xs, d.u, d.b);
    k::Tensor g = tape.gradient(k::reduce_sum(r.ys[0]), h0);
    trace.finish(std::vector<k::Tensor>{g});
  }
  const k::ir::Function& f = trace.function();
  std::vector<const k::ir::Node*> scans;
  for (const auto& node : f.nodes())
    if (node->op() == k::ir::Op::scan) scans.push_back(node.get());
  REQUIRE(scans.size() == 2);  // the forward (saving its carries) and the gradient
  CHECK(scans[0]->attrs().get_bool("save_carries"));
  CHECK(scans[1]->attrs().get_bool("reverse"));
  std::vector<k::ir::HostTensor> args = {d.h0.host()};
  for (size_t i = 1; i < trace.bindings().size(); ++i)
    args.push_back(trace.bindings()[i].tensor.host());  // xs, U and b, captured
  check_close(k::Tensor(k::ir::evaluate(f, args).outputs[0]), eager_grad, 1e-12);
}

TEST_CASE("check_numerics inside a scan body is a ValueError at the user's line",
          "[scan][frontend][errors]") {
  int line = 0;
  std::string msg = error_of<k::ValueError>([&] {
    k::scan(
        [&](std::span<const k::Tensor> c, std::span<const k::Tensor>) {
          line = __LINE__ + 1;
          k::Tensor checked = k::check_numerics(c[0], "carry");
          return Pair{{checked}, {}};
        },
        {k::constant(2.0, k::f64)}, {}, steps(2));
  });
  kiln::testing::check_message_at(msg, {"check_numerics is not supported inside a scan body"},
                                  "scan_frontend_test.cpp", line);
}

TEST_CASE("a symbolic tensor of an unrelated trace is still refused in a body",
          "[scan][frontend][errors]") {
  k::Tensor stray;
  {
    k::detail::Trace other("other", {});
    k::detail::TraceScope scope(other);
    stray = other.add_argument(k::ir::TensorType{k::f64, k::Shape{}});
  }
  std::string msg = error_of<k::ValueError>([&] {
    k::scan(
        [&](std::span<const k::Tensor> c, std::span<const k::Tensor>) {
          return Pair{{c[0] + stray}, {}};
        },
        {k::constant(2.0, k::f64)}, {}, steps(2));
  });
  CHECK_THAT(msg, Contains("a symbolic tensor from another trace"));
}
