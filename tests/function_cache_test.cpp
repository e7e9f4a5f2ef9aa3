// The signature cache behind kiln::function's fast call path: the binary key must tell apart
// exactly the signatures the text signature tells apart, and compiled functions must reject
// arguments they cannot run on.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "kiln/frontend/core/compile.h"
#include "kiln/frontend/core/trace.h"
#include "kiln/kiln.h"

namespace k = kiln;
using Catch::Contains;

namespace {
// Silences retrace messages for the test's lifetime.
struct QuietLog {
  k::LogSink previous = k::set_log_sink([](std::string_view) {});
  ~QuietLog() { k::set_log_sink(previous); }
};
}  // namespace

TEST_CASE("shapes with the same element count are different signatures", "[function]") {
  QuietLog quiet;
  auto f = k::function([](const k::Tensor& x) { return x + 1.f; }, "inc");
  f(k::zeros({4}));
  f(k::zeros({2, 2}));
  f(k::zeros({4, 1}));
  f(k::zeros({4}, k::f64));
  CHECK(f.trace_count() == 4);
  // Each again: all cached, and each gives its own shape back.
  CHECK(f(k::zeros({4})).shape() == k::Shape{4});
  CHECK(f(k::zeros({2, 2})).shape() == k::Shape{2, 2});
  CHECK(f(k::zeros({4, 1})).shape() == k::Shape{4, 1});
  CHECK(f(k::zeros({4}, k::f64)).dtype() == k::f64);
  CHECK(f.trace_count() == 4);
}

TEST_CASE("vector lengths and plain values are part of the signature", "[function]") {
  QuietLog quiet;
  auto f = k::function(
      [](const std::vector<k::Tensor>& xs, const std::vector<k::Tensor>& ys, std::string tag) {
        k::Tensor sum = k::zeros({1});
        for (const k::Tensor& x : xs)
          sum = sum + x;
        for (const k::Tensor& y : ys)
          sum = sum - y;
        return sum + static_cast<float>(tag.size());
      },
      "sum");
  k::Tensor one = k::ones({1});
  // Same leaves, split differently between the two vectors.
  CHECK(f(std::vector{one, one}, std::vector{one}, "ab").to_vector<float>() ==
        std::vector<float>{3});
  CHECK(f(std::vector{one}, std::vector{one, one}, "ab").to_vector<float>() ==
        std::vector<float>{1});
  // A plain value is baked into the trace, so a new value is a new signature.
  CHECK(f(std::vector{one}, std::vector{one, one}, "abc").to_vector<float>() ==
        std::vector<float>{2});
  CHECK(f.trace_count() == 3);
  CHECK(f(std::vector{one, one}, std::vector{one}, "ab").to_vector<float>() ==
        std::vector<float>{3});
  CHECK(f.trace_count() == 3);
}

TEST_CASE("passing one Variable twice is a different signature", "[function]") {
  QuietLog quiet;
  k::Variable a(k::ones({2}), "a"), b(k::ones({2}), "b");
  auto f = k::function([](k::Variable x, k::Variable y) { x.assign_add(y.value()); }, "acc");
  f(a, b);
  CHECK(a.value().to_vector<float>() == std::vector<float>{2, 2});
  f(a, a);
  CHECK(a.value().to_vector<float>() == std::vector<float>{4, 4});
  CHECK(f.trace_count() == 2);
  f(b, a);
  f(b, b);
  CHECK(f.trace_count() == 2);
  CHECK(b.value().to_vector<float>() == std::vector<float>{10, 10});
}

TEST_CASE("a cached call still rejects undefined and symbolic tensors", "[function]") {
  auto f = k::function([](const k::Tensor& x) { return x * 2.f; }, "twice");
  f(k::ones({3}));
  CHECK_THROWS_WITH(f(k::Tensor()), Contains("argument 0 of function 'twice' is an undefined"));
  k::Variable undefined;
  auto g = k::function([](k::Variable v) { return v.value(); }, "read");
  CHECK_THROWS_AS(g(undefined), k::ValueError);
}

TEST_CASE("compiled functions check their arguments", "[function]") {
  auto f = k::function([](const k::Tensor& x) { return x * 2.f; }, "twice");
  k::Tensor x = k::ones({3});
  auto compiled = k::compile(f.graph(x).clone());
  std::vector<k::ir::HostTensor> ok{x.host()};
  CHECK(k::Tensor(compiled->run(ok).outputs.at(0)).to_vector<float>() ==
        std::vector<float>{2, 2, 2});
  // Repeated runs reuse one workspace and give the same result.
  CHECK(k::Tensor(compiled->run(ok).outputs.at(0)).to_vector<float>() ==
        std::vector<float>{2, 2, 2});
  std::vector<k::ir::HostTensor> undefined(1);
  CHECK_THROWS_AS(compiled->run(undefined), k::Error);
  std::vector<k::ir::HostTensor> wrong{k::ones({4}).host()};
  CHECK_THROWS_WITH(compiled->run(wrong), Contains("must be f32[3], got f32[4]"));
  CHECK_THROWS_AS(compiled->run(std::vector<k::ir::HostTensor>{}), k::TypeError);
}

TEST_CASE("set_log_retraces(false) silences a function's retrace messages", "[function]") {
  std::vector<std::string> messages;
  k::LogSink previous = k::set_log_sink([&](std::string_view m) { messages.emplace_back(m); });
  auto f = k::function([](const k::Tensor& x) { return x + 1.f; }, "quiet");
  f.set_log_retraces(false);
  for (int64_t n = 1; n <= 6; ++n)
    f(k::zeros({n}));
  CHECK(f.trace_count() == 6);
  CHECK(messages.empty());
  f.set_log_retraces(true);
  f(k::zeros({7}));
  CHECK(messages.size() == 1);
  k::set_log_sink(previous);
}
