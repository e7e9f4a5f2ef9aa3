// GradientTape, the grad / value_and_grad transforms and higher derivatives, eager and traced.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <cmath>
#include <numbers>
#include <vector>

namespace k = kiln;
using Catch::Contains;

namespace {
auto poly = [](const k::Tensor& x) { return 10.f * x * x - 5.f * x + 4.f; };
}  // namespace

TEST_CASE("the tape differentiates a polynomial of a Variable", "[tape]") {
  k::Variable x(5.0f);
  k::GradientTape tape;
  k::Tensor y = poly(x);
  k::Tensor dy_dx = tape.gradient(y, x);
  CHECK(dy_dx.item<float>() == 95.f);
}

TEST_CASE("grad and value_and_grad transforms, second and third derivatives", "[tape]") {
  auto [value, grad] = k::value_and_grad(poly)(k::constant(2.f));
  CHECK(value.item<float>() == 34.f);
  CHECK(grad.item<float>() == 35.f);
  CHECK(k::grad(poly)(k::constant(2.f)).item<float>() == 35.f);
  CHECK(k::grad(k::grad(poly))(k::constant(2.f)).item<float>() == 20.f);
  // d³/dx³ of x·sin(x) = −3 sin x − x cos x
  auto f = [](const k::Tensor& x) { return x * k::sin(x); };
  double x0 = 0.7;
  double third = k::grad(k::grad(k::grad(f)))(k::constant(x0)).item<double>();
  CHECK(third == Approx(-3 * std::sin(x0) - x0 * std::cos(x0)).epsilon(1e-12));
}

TEST_CASE("a tape inside kiln::function compiles the gradient with the step", "[tape]") {
  auto make = [] {
    return std::pair{k::Variable(k::constant({{1.f}, {-1.f}}), "w"), k::Variable(0.5f, "b")};
  };
  auto [w1, b1] = make();
  auto [w2, b2] = make();
  auto body = [](k::Variable& w, k::Variable& b, const k::Tensor& xb, const k::Tensor& yb) {
    k::GradientTape t;
    k::Tensor p = k::sigmoid(k::matmul(xb, w) + b);
    k::Tensor loss = k::reduce_mean(k::square(p - yb));
    std::vector<k::Tensor> g = t.gradient(loss, {w, b});
    w.assign_sub(0.5f * g[0]);
    b.assign_sub(0.5f * g[1]);
    return loss;
  };
  auto step = k::function(
      [&](const k::Tensor& xb, const k::Tensor& yb) { return body(w1, b1, xb, yb); }, "step");
  k::Tensor xb = k::constant({{1.f, 2.f}, {-1.f, 0.5f}, {0.f, -2.f}});
  k::Tensor yb = k::constant({{1.f}, {0.f}, {1.f}});
  for (int i = 0; i < 5; ++i) {
    float traced = step(xb, yb).item<float>();
    float eager = body(w2, b2, xb, yb).item<float>();
    CHECK(traced == Approx(eager).epsilon(1e-6));
  }
  CHECK(step.trace_count() == 1);
  CHECK(w1.value().to_vector<float>()[0] == Approx(w2.value().to_vector<float>()[0]));
  CHECK(b1.value().item<float>() == Approx(b2.value().item<float>()));
}

TEST_CASE("tape errors say what and where", "[tape]") {
  k::Tensor x = k::constant(3.f);
  k::Tensor unseen = k::constant(1.f);
  k::GradientTape tape;
  tape.watch(x);
  k::Tensor y = x * x;
  CHECK_THROWS_AS(tape.gradient(y, unseen), k::ValueError);
  CHECK_THROWS_WITH(tape.gradient(y, unseen),
                    Contains("never saw") && Contains("gradient_tape_test.cpp"));
  CHECK(tape.gradient(y, x).item<float>() == 6.f);
  CHECK_THROWS_WITH(tape.gradient(y, x), Contains("non-persistent"));
}

TEST_CASE("persistent tapes, watch, unconnected sources, output gradients", "[tape]") {
  k::Tensor x = k::constant({1.f, 2.f, 3.f});
  k::Tensor z = k::constant({4.f, 5.f, 6.f});
  k::GradientTape tape(/*persistent=*/true);
  tape.watch(x);
  tape.watch(z);
  k::Tensor y = x * x;  // non-scalar: the gradient of its sum
  CHECK(tape.gradient(y, x).to_vector<float>() == std::vector<float>{2, 4, 6});
  CHECK_FALSE(tape.gradient(y, z).defined());
  CHECK(tape.gradient(y, z, k::Tensor(), k::UnconnectedGradients::zero).to_vector<float>() ==
        std::vector<float>{0, 0, 0});
  k::Tensor w = k::constant({1.f, 0.f, -1.f});
  CHECK(tape.gradient(y, x, w).to_vector<float>() == std::vector<float>{2, 0, -6});
  k::Tensor s = k::stop_gradient(x) * x;
  CHECK(tape.gradient(s, x).to_vector<float>() == std::vector<float>{1, 2, 3});
  // A non-trainable variable is not watched unless asked.
  k::Variable frozen(2.f, "frozen", /*trainable=*/false);
  k::GradientTape t2;
  k::Tensor q = frozen * frozen;
  CHECK_THROWS_WITH(t2.gradient(q, frozen), Contains("Variable 'frozen'"));
}

TEST_CASE("the exact gelu and its gradient keep their digits far into the negative tail in f32",
          "[tape]") {
  // There 1 + erf(x/√2) is 0 in f32, while Φ(x) is 1e-9 (x = −6) to 1e-23 (x = −10).
  const std::vector<double> xs = {-6, -8, -10};
  auto check = [&](const k::Tensor& value, const k::Tensor& slope) {
    const std::vector<float> v = value.to_vector<float>();
    const std::vector<float> s = slope.to_vector<float>();
    REQUIRE(v.size() == xs.size());
    REQUIRE(s.size() == xs.size());
    for (size_t i = 0; i < xs.size(); ++i) {
      const double x = xs[i];
      const double cdf = 0.5 * std::erfc(-x / std::sqrt(2.0));
      const double pdf = std::exp(-0.5 * x * x) / std::sqrt(2 * std::numbers::pi);
      const double want_value = x * cdf, want_slope = cdf + x * pdf;
      INFO("x = " << x << ": gelu " << v[i] << " (want " << want_value << "), gelu' " << s[i]
                  << " (want " << want_slope << ")");
      CHECK(std::abs(v[i] - want_value) < 1e-4 * std::abs(want_value));
      CHECK(std::abs(s[i] - want_slope) < 1e-4 * std::abs(want_slope));
    }
  };
  const k::Tensor x = k::constant({-6.f, -8.f, -10.f});
  auto sum_gelu = [](const k::Tensor& t) { return k::reduce_sum(k::gelu(t)); };
  SECTION("eager, on compiled kernels") {
    check(k::gelu(x), k::grad(sum_gelu)(x));
  }
  SECTION("eager, on the interpreter") {
    const k::EagerMode mode = k::eager_mode();
    k::set_eager_mode(k::EagerMode::interpret);
    check(k::gelu(x), k::grad(sum_gelu)(x));
    k::set_eager_mode(mode);
  }
  SECTION("traced") {
    auto f = k::function([&](const k::Tensor& t) {
      return std::vector<k::Tensor>{k::gelu(t), k::grad(sum_gelu)(t)};
    });
    std::vector<k::Tensor> out = f(x);
    check(out[0], out[1]);
  }
  SECTION("the gradient is differentiable on both sides of its tail (f64)") {
    // gelu''(x) = φ(x)·(2 − x²)
    const std::vector<double> at = {-7, -3, -1.5, -1, -0.5, 0, 2};
    auto sum_slope = [&](const k::Tensor& t) { return k::reduce_sum(k::grad(sum_gelu)(t)); };
    std::vector<double> got = k::grad(sum_slope)(k::constant(at)).to_vector<double>();
    REQUIRE(got.size() == at.size());
    for (size_t i = 0; i < at.size(); ++i) {
      const double t = at[i];
      INFO("x = " << t);
      const double pdf = std::exp(-0.5 * t * t) / std::sqrt(2 * std::numbers::pi);
      CHECK(got[i] == Approx(pdf * (2 - t * t)).epsilon(1e-9).margin(1e-300));
    }
  }
}

TEST_CASE("a compiled function called under a tape is differentiated through", "[tape]") {
  k::Variable w(k::constant({1.f, 2.f}), "w");
  auto f = k::function([&](const k::Tensor& x) {
    w.assign_add(x);
    return k::reduce_sum(w * x);
  });
  k::Tensor x = k::constant({3.f, 4.f});
  f(x);  // compiled: w = [4, 6]
  k::GradientTape tape;
  tape.watch(x);
  k::Tensor y = f(x);  // recorded: w becomes [7, 10], y = Σ (w + x)·x with w read before
  CHECK(y.item<float>() == 7.f * 3.f + 10.f * 4.f);
  CHECK(w.value().to_vector<float>() == std::vector<float>{7, 10});
  // dy/dx = w_before + 2x = [4 + 6, 6 + 8]; dy/dw = x
  std::vector<k::Tensor> g = tape.gradient(y, {x, w});
  CHECK(g[0].to_vector<float>() == std::vector<float>{10, 14});
  CHECK(g[1].to_vector<float>() == std::vector<float>{3, 4});
  CHECK(f.trace_count() == 1);
}
