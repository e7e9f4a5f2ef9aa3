// Keras-style optimizers and schedules: the first updates against the Keras 3 formulas written out
// in double here, eagerly and inside kiln::function, in f32 and f64, plus the errors.
#include "kiln/frontend/keras/optimizers.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kiln/frontend/core/function.h"
#include "kiln/frontend/core/ops.h"

namespace k = kiln;
namespace opt = kiln::optimizers;
using Catch::Contains;

namespace {

using Vec = std::vector<double>;
// One reference update: changes w in place for gradient g at iteration t (0 for the first step).
using Reference = std::function<void(Vec& w, const Vec& g, int t)>;
using MakeOptimizer = std::function<std::shared_ptr<opt::Optimizer>()>;

const Vec kW0{1.0, -2.0};
const std::vector<Vec> kGrads{{0.5, -1.0}, {0.25, 0.75}, {-0.5, 2.0}};

Vec values(const k::Tensor& t) {
  if (t.dtype() == k::f64) return t.to_vector<double>();
  std::vector<float> f = t.to_vector<float>();
  return Vec(f.begin(), f.end());
}

k::Tensor tensor(const Vec& v, k::DType dtype) {
  return k::constant(v, k::Shape{static_cast<int64_t>(v.size())}, dtype);
}

void check_close(const Vec& actual, const Vec& expected, double rel = 1e-6) {
  REQUIRE(actual.size() == expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    INFO("element " << i);
    CHECK(actual[i] == Approx(expected[i]).epsilon(rel).margin(1e-12));
  }
}

// Runs three steps eagerly and three through a kiln::function (each with its own optimizer and
// variable), checking both against the reference after every step.
void check_optimizer(const MakeOptimizer& make, const std::function<Reference()>& make_reference,
                     size_t slots_per_variable) {
  for (k::DType dtype : {k::f32, k::f64}) {
    INFO("dtype " << k::ir::dtype_name(dtype));
    Reference reference = make_reference();
    Vec expected = kW0;

    std::shared_ptr<opt::Optimizer> eager = make();
    k::Variable w(tensor(kW0, dtype), "w");

    std::shared_ptr<opt::Optimizer> traced = make();
    k::Variable wt(tensor(kW0, dtype), "w");
    auto step = k::function(
        [&](const k::Tensor& g) {
          traced->apply_gradients({{g, wt}});
        },
        "train_step");
    CHECK(traced->variables().size() == 1);

    for (int t = 0; t < 3; ++t) {
      INFO("step " << t + 1);
      reference(expected, kGrads[t], t);
      eager->apply_gradients({{tensor(kGrads[t], dtype), w}});
      step(tensor(kGrads[t], dtype));
      // The slots were made on the first trace and are captured by it.
      CHECK(traced->variables().size() == 1 + slots_per_variable);
      check_close(values(w.value()), expected);
      check_close(values(wt.value()), expected);
      check_close(values(wt.value()), values(w.value()));
      CHECK(eager->iterations().value().item<int64_t>() == t + 1);
      CHECK(traced->iterations().value().item<int64_t>() == t + 1);
    }
    CHECK(step.trace_count() == 1);
    CHECK(eager->variables().size() == 1 + slots_per_variable);
    for (const k::Variable& slot : eager->variables()) {
      CHECK_FALSE(slot.trainable());
      if (slot.name() != "iteration") CHECK(slot.dtype() == dtype);
    }
  }
}

}  // namespace

TEST_CASE("SGD without momentum: var -= lr * g", "[optimizers]") {
  check_optimizer([] { return std::make_shared<opt::SGD>(0.1); },
                  [] {
                    return [](Vec& w, const Vec& g, int) {
                      for (size_t i = 0; i < w.size(); ++i)
                        w[i] -= 0.1 * g[i];
                    };
                  },
                  0);
  opt::SGD defaults;
  CHECK(defaults.learning_rate().item<float>() == 0.01f);
  CHECK(defaults.name() == "SGD");
}

TEST_CASE("SGD with momentum and with Nesterov momentum", "[optimizers]") {
  for (bool nesterov : {false, true}) {
    INFO("nesterov " << nesterov);
    check_optimizer([=] { return std::make_shared<opt::SGD>(0.1, 0.9, nesterov); },
                    [=] {
                      auto m = std::make_shared<Vec>(2, 0.0);
                      return [=](Vec& w, const Vec& g, int) {
                        for (size_t i = 0; i < w.size(); ++i) {
                          (*m)[i] = 0.9 * (*m)[i] - 0.1 * g[i];
                          w[i] += nesterov ? 0.9 * (*m)[i] - 0.1 * g[i] : (*m)[i];
                        }
                      };
                    },
                    1);
  }
}

TEST_CASE("RMSprop: plain, with momentum, centered, both", "[optimizers]") {
  // A large epsilon as well, so that where it goes (inside the square root) shows in the values.
  struct Case {
    double momentum;
    bool centered;
    double eps;
  };
  for (Case c : std::vector<Case>{{0.0, false, 1e-7},
                                  {0.5, false, 1e-7},
                                  {0.0, true, 1e-7},
                                  {0.5, true, 1e-7},
                                  {0.0, false, 0.1},
                                  {0.5, true, 0.1}}) {
    const double momentum = c.momentum, eps = c.eps;
    const bool centered = c.centered;
    INFO("momentum " << momentum << " centered " << centered << " epsilon " << eps);
    const double lr = 0.01, rho = 0.9;
    check_optimizer(
        [=] { return std::make_shared<opt::RMSprop>(lr, rho, momentum, eps, centered); },
        [=] {
          auto v = std::make_shared<Vec>(2, 0.0);
          auto a = std::make_shared<Vec>(2, 0.0);
          auto mom = std::make_shared<Vec>(2, 0.0);
          return [=](Vec& w, const Vec& g, int) {
            for (size_t i = 0; i < w.size(); ++i) {
              (*v)[i] = rho * (*v)[i] + (1 - rho) * g[i] * g[i];
              double denominator = (*v)[i] + eps;  // Keras 3: epsilon inside the sqrt
              if (centered) {
                (*a)[i] = rho * (*a)[i] + (1 - rho) * g[i];
                denominator = (*v)[i] - (*a)[i] * (*a)[i] + eps;
              }
              double increment = lr * g[i] / std::sqrt(denominator);
              if (momentum > 0) {
                (*mom)[i] = momentum * (*mom)[i] + increment;
                w[i] -= (*mom)[i];
              } else {
                w[i] -= increment;
              }
            }
          };
        },
        1 + (momentum > 0) + centered);
  }
  opt::RMSprop defaults;
  CHECK(defaults.learning_rate().item<float>() == 0.001f);
  CHECK(defaults.name() == "rmsprop");
}

TEST_CASE("Adam and AMSGrad follow the Keras 3 bias-corrected rule", "[optimizers]") {
  // lr 0.01: in f32, 1 - beta_2^t loses digits to cancellation (as in Keras), which a larger step
  // would magnify past the 1e-6 tolerance. A large epsilon shows that it goes outside the sqrt.
  for (int c = 0; c < 4; ++c) {
    const bool amsgrad = c % 2 == 1;
    const double eps = c < 2 ? 1e-7 : 0.1;
    INFO("amsgrad " << amsgrad << " epsilon " << eps);
    const double lr = 0.01, b1 = 0.9, b2 = 0.999;
    check_optimizer([=] { return std::make_shared<opt::Adam>(lr, b1, b2, eps, amsgrad); },
                    [=] {
                      auto m = std::make_shared<Vec>(2, 0.0);
                      auto v = std::make_shared<Vec>(2, 0.0);
                      auto v_hat = std::make_shared<Vec>(2, 0.0);
                      return [=](Vec& w, const Vec& g, int iteration) {
                        double t = iteration + 1;
                        double alpha = lr * std::sqrt(1 - std::pow(b2, t)) / (1 - std::pow(b1, t));
                        for (size_t i = 0; i < w.size(); ++i) {
                          (*m)[i] += (g[i] - (*m)[i]) * (1 - b1);
                          (*v)[i] += (g[i] * g[i] - (*v)[i]) * (1 - b2);
                          double second = (*v)[i];
                          if (amsgrad) second = (*v_hat)[i] = std::max((*v_hat)[i], (*v)[i]);
                          w[i] -= (*m)[i] * alpha / (std::sqrt(second) + eps);
                        }
                      };
                    },
                    amsgrad ? 3 : 2);
  }
  opt::Adam defaults;
  CHECK(defaults.learning_rate().item<float>() == 0.001f);
  CHECK(defaults.name() == "adam");
}

TEST_CASE("Adagrad accumulates squared gradients from initial_accumulator_value", "[optimizers]") {
  const double lr = 0.1, init = 0.1, eps = 1e-7;
  check_optimizer([=] { return std::make_shared<opt::Adagrad>(lr, init, eps); },
                  [=] {
                    auto acc = std::make_shared<Vec>(2, init);
                    return [=](Vec& w, const Vec& g, int) {
                      for (size_t i = 0; i < w.size(); ++i) {
                        (*acc)[i] += g[i] * g[i];
                        w[i] -= lr * g[i] / std::sqrt((*acc)[i] + eps);
                      }
                    };
                  },
                  1);
  opt::Adagrad defaults;
  k::Variable w(k::constant({1.f, 2.f}), "w");
  defaults.apply_gradients({{k::constant({0.f, 0.f}), w}});
  // The accumulator starts at initial_accumulator_value (0.1), not at zero.
  REQUIRE(defaults.variables().size() == 2);
  CHECK(defaults.variables()[1].name() == "w_accumulator");
  CHECK(values(defaults.variables()[1].value()) == Vec{0.1f, 0.1f});
}

TEST_CASE("variables() lists iterations first, then named slots", "[optimizers]") {
  opt::Adam adam(0.01, 0.9, 0.999, 1e-7, /*amsgrad=*/true);
  k::Variable a(k::constant({1.f, 2.f}), "a");
  k::Variable b(k::constant(3.0), "b");
  CHECK(adam.iterations().name() == "iteration");
  CHECK(adam.iterations().dtype() == k::i64);
  CHECK(adam.iterations().shape() == k::Shape{});
  CHECK(adam.iterations().value().item<int64_t>() == 0);
  adam.apply_gradients({k::constant({1.f, 1.f}), k::constant(1.0)}, {a, b});
  std::vector<std::string> names;
  for (const k::Variable& v : adam.variables())
    names.push_back(v.name());
  CHECK(names == std::vector<std::string>{"iteration", "a_momentum", "a_velocity", "a_velocity_hat",
                                          "b_momentum", "b_velocity", "b_velocity_hat"});
  CHECK(adam.variables()[4].dtype() == k::f64);
  // A second step reuses the slots.
  adam.apply_gradients({{k::constant({1.f, 1.f}), a}, {k::constant(1.0), b}});
  CHECK(adam.variables().size() == 7);
  CHECK(adam.iterations().value().item<int64_t>() == 2);
}

TEST_CASE("copies and clones of an optimizer share its state", "[optimizers]") {
  opt::SGD sgd(0.1, 0.5);
  opt::SGD copy = sgd;
  std::shared_ptr<opt::Optimizer> clone = sgd.clone();
  k::Variable w(k::constant({1.f}), "w");
  copy.apply_gradients({{k::constant({1.f}), w}});
  clone->apply_gradients({{k::constant({1.f}), w}});
  CHECK(sgd.iterations().value().item<int64_t>() == 2);
  CHECK(sgd.variables().size() == 2);
  // m1 = -0.1, w = 0.9; m2 = 0.5 * -0.1 - 0.1 = -0.15, w = 0.75 (one shared momentum slot).
  CHECK(values(w.value())[0] == Approx(0.75));
}

TEST_CASE("ExponentialDecay and PiecewiseConstantDecay give Keras's values", "[optimizers]") {
  opt::ExponentialDecay smooth(0.1, 10, 0.5);
  opt::ExponentialDecay stairs(0.1, 10, 0.5, /*staircase=*/true);
  for (double step : {0.0, 5.0, 10.0, 15.0, 25.0}) {
    INFO("step " << step);
    CHECK(smooth(k::constant(static_cast<float>(step))).item<float>() ==
          Approx(0.1 * std::pow(0.5, step / 10)).epsilon(1e-6));
    CHECK(stairs(k::constant(static_cast<float>(step))).item<float>() ==
          Approx(0.1 * std::pow(0.5, std::floor(step / 10))).epsilon(1e-6));
    CHECK(smooth(k::constant(step)).item<double>() ==
          Approx(0.1 * std::pow(0.5, step / 10)).epsilon(1e-12));
  }
  CHECK(smooth.name() == "ExponentialDecay");

  opt::PiecewiseConstantDecay piecewise({2, 4}, {1.0, 0.5, 0.1});
  const std::vector<std::pair<float, float>> table{{0, 1.0f}, {2, 1.0f}, {2.5f, 0.5f}, {3, 0.5f},
                                                   {4, 0.5f}, {5, 0.1f}, {100, 0.1f}};
  for (auto [step, lr] : table) {
    INFO("step " << step);
    CHECK(piecewise(k::constant(step)).item<float>() == lr);
  }
  CHECK(piecewise.name() == "PiecewiseConstantDecay");
}

TEST_CASE("an optimizer evaluates its schedule at iterations", "[optimizers]") {
  // A schedule object converts to a LearningRate by value; a shared_ptr does too.
  opt::SGD sgd(opt::ExponentialDecay(0.1, 2, 0.5));
  opt::SGD shared(std::make_shared<opt::PiecewiseConstantDecay>(std::vector<double>{1},
                                                                std::vector<double>{0.1, 0.01}));
  k::Variable w(k::constant({1.f}), "w");
  k::Variable u(k::constant({1.f}), "u");
  double expected_w = 1.0, expected_u = 1.0;
  for (int t = 0; t < 4; ++t) {
    INFO("step " << t);
    double lr = 0.1 * std::pow(0.5, t / 2.0);
    CHECK(sgd.learning_rate().item<float>() == Approx(lr).epsilon(1e-6));
    CHECK(sgd.learning_rate().dtype() == k::f32);
    sgd.apply_gradients({{k::constant({1.f}), w}});
    expected_w -= lr;
    CHECK(values(w.value())[0] == Approx(expected_w).epsilon(1e-6));

    shared.apply_gradients({{k::constant({1.f}), u}});
    expected_u -= t <= 1 ? 0.1 : 0.01;
    CHECK(values(u.value())[0] == Approx(expected_u).epsilon(1e-6));
  }
  opt::SGD from_int(1);
  CHECK(from_int.learning_rate().item<float>() == 1.f);
}

TEST_CASE("a schedule inside a traced training step", "[optimizers]") {
  opt::Adam eager(opt::ExponentialDecay(0.1, 1, 0.5));
  opt::Adam traced(opt::ExponentialDecay(0.1, 1, 0.5));
  opt::SGD piecewise(opt::PiecewiseConstantDecay({1}, {0.1, 0.01}));
  k::Variable w(k::constant({1.f, -2.f}), "w");
  k::Variable wt(k::constant({1.f, -2.f}), "w");
  k::Variable u(k::constant(1.0), "u");
  auto step = k::function(
      [&](const k::Tensor& g) {
        traced.apply_gradients({{g, wt}});
        piecewise.apply_gradients({{k::cast(k::reduce_sum(g), k::f64), u}});
        return traced.learning_rate();
      },
      "scheduled_step");
  double expected_u = 1.0;
  for (int t = 0; t < 3; ++t) {
    INFO("step " << t);
    k::Tensor g = k::constant({static_cast<float>(t) + 0.5f, -1.f});
    eager.apply_gradients({{g, w}});
    k::Tensor lr_after = step(g);
    // The returned lr is the one for the next step (iterations already incremented).
    CHECK(lr_after.item<float>() == Approx(0.1 * std::pow(0.5, t + 1)).epsilon(1e-6));
    check_close(values(wt.value()), values(w.value()));
    expected_u -= (t <= 1 ? 0.1 : 0.01) * (static_cast<double>(t) + 0.5 - 1.0);
    CHECK(values(u.value())[0] == Approx(expected_u).epsilon(1e-12));
  }
  CHECK(step.trace_count() == 1);
}

TEST_CASE("undefined gradients skip their variables", "[optimizers]") {
  opt::Adam adam(0.1);
  k::Variable a(k::constant({1.f, 2.f}), "a");
  k::Variable b(k::constant({3.f}), "b");
  adam.apply_gradients({{k::constant({1.f, 1.f}), a}, {k::Tensor(), b}});
  CHECK(values(a.value()) != Vec{1, 2});
  CHECK(values(b.value()) == Vec{3});
  CHECK(adam.iterations().value().item<int64_t>() == 1);
  CHECK(adam.variables().size() == 3);  // no slots for b

  // An empty list is a no-op; a list with no gradient at all is a mistake.
  adam.apply_gradients(std::vector<std::pair<k::Tensor, k::Variable>>{});
  CHECK(adam.iterations().value().item<int64_t>() == 1);
  CHECK_THROWS_AS(adam.apply_gradients({{k::Tensor(), b}}), k::ValueError);
  CHECK_THROWS_WITH(adam.apply_gradients({{k::Tensor(), b}}), Contains("'b'"));
}

TEST_CASE("bad gradients throw typed errors naming the variable", "[optimizers]") {
  opt::SGD sgd;
  k::Variable w(k::constant({1.f, 2.f}), "w");
  k::Variable other(k::constant({1.f, 2.f}), "other");
  const Vec before = values(w.value());

  // Shape: the message names the variable, both types and the user's line.
  CHECK_THROWS_AS(sgd.apply_gradients({{k::constant({1.f, 2.f, 3.f}), w}}), k::ShapeError);
  CHECK_THROWS_WITH(sgd.apply_gradients({{k::constant({1.f, 2.f, 3.f}), w}}),
                    Contains("'w'") && Contains("f32[3]") && Contains("f32[2]") &&
                        Contains("optimizers_test.cpp"));
  // Dtype.
  CHECK_THROWS_AS(sgd.apply_gradients({{k::constant({1.0, 2.0}), w}}), k::TypeError);
  CHECK_THROWS_WITH(sgd.apply_gradients({{k::constant({1.0, 2.0}), w}}),
                    Contains("'w'") && Contains("f64[2]") && Contains("f32[2]"));
  // A bad pair later in the list leaves the earlier ones untouched.
  CHECK_THROWS_AS(
      sgd.apply_gradients({{k::constant({1.f, 1.f}), other}, {k::constant({1.f, 2.f, 3.f}), w}}),
      k::ShapeError);
  CHECK(values(other.value()) == Vec{1, 2});
  // Integer variables cannot be optimized.
  k::Variable count(k::constant({1, 2}), "count");
  CHECK_THROWS_AS(sgd.apply_gradients({{k::constant({1, 1}), count}}), k::TypeError);
  CHECK_THROWS_WITH(sgd.apply_gradients({{k::constant({1, 1}), count}}), Contains("'count'"));
  // Two lists of different lengths.
  CHECK_THROWS_AS(sgd.apply_gradients({k::constant({1.f, 1.f})}, {w, other}), k::ValueError);
  CHECK_THROWS_WITH(sgd.apply_gradients({k::constant({1.f, 1.f})}, {w, other}),
                    Contains("1 gradients for 2 variables"));
  // An undefined variable.
  CHECK_THROWS_AS(sgd.apply_gradients({{k::constant({1.f}), k::Variable()}}), k::ValueError);

  CHECK(values(w.value()) == before);
  CHECK(sgd.iterations().value().item<int64_t>() == 0);
}

TEST_CASE("bad hyper-parameters throw ValueError naming the parameter", "[optimizers]") {
  CHECK_THROWS_AS(opt::SGD(-0.1), k::ValueError);
  CHECK_THROWS_WITH(opt::SGD(-0.1), Contains("learning_rate") && Contains("optimizers_test.cpp"));
  CHECK_THROWS_WITH(opt::SGD(0.01, 1.5), Contains("momentum"));
  CHECK_THROWS_AS(opt::SGD(0.01, -0.1), k::ValueError);
  CHECK_THROWS_AS(opt::SGD(std::nan("")), k::ValueError);
  CHECK_THROWS_WITH(opt::RMSprop(0.001, 1.5), Contains("rho"));
  CHECK_THROWS_WITH(opt::RMSprop(0.001, 0.9, -1.0), Contains("momentum"));
  CHECK_THROWS_WITH(opt::RMSprop(0.001, 0.9, 0.0, -1e-7), Contains("epsilon"));
  CHECK_THROWS_WITH(opt::Adam(0.001, 1.0), Contains("beta_1"));
  CHECK_THROWS_WITH(opt::Adam(0.001, 0.9, -0.1), Contains("beta_2"));
  CHECK_THROWS_WITH(opt::Adam(0.001, 0.9, 0.999, -1.0), Contains("epsilon"));
  CHECK_THROWS_AS(opt::Adam(-1.0), k::ValueError);
  CHECK_THROWS_WITH(opt::Adagrad(0.001, -0.1), Contains("initial_accumulator_value"));
  CHECK_THROWS_WITH(opt::Adagrad(0.001, 0.1, -1.0), Contains("epsilon"));
  CHECK_THROWS_AS(opt::ExponentialDecay(0.1, 0, 0.5), k::ValueError);
  CHECK_THROWS_WITH(opt::ExponentialDecay(0.1, 0, 0.5), Contains("decay_steps"));
  CHECK_THROWS_AS(opt::PiecewiseConstantDecay({1, 2}, {1.0, 0.5}), k::ValueError);
  CHECK_THROWS_WITH(opt::PiecewiseConstantDecay({1, 2}, {1.0, 0.5}),
                    Contains("2 boundaries and 2 values"));
  CHECK_THROWS_WITH(opt::PiecewiseConstantDecay({2, 1}, {1.0, 0.5, 0.1}),
                    Contains("non-decreasing"));
  // Edges that Keras accepts.
  CHECK_NOTHROW(opt::SGD(0.0, 1.0));
  CHECK_NOTHROW(opt::Adam(0.001, 0.0, 0.0, 0.0));
}

TEST_CASE("SGD minimizes 10x^2 - 5x + 4 from x = 5", "[optimizers]") {
  // The tf.keras optimizer tutorial: the minimum is f(0.25) = 3.375.
  opt::SGD sgd(0.01);
  k::Variable x(k::constant(5.f), "x");
  auto f = [](double v) { return 10 * v * v - 5 * v + 4; };
  for (int i = 0; i < 40; ++i) {
    double v = x.value().item<float>();
    sgd.apply_gradients({{k::constant(static_cast<float>(20 * v - 5)), x}});
  }
  double v = x.value().item<float>();
  CHECK(std::abs(f(v) - 3.375) < 1e-3);
  CHECK(v == Approx(0.25 + 4.75 * std::pow(0.8, 40)).epsilon(1e-4));
}

TEST_CASE("minimize takes the gradient with a tape and applies it", "[optimizers]") {
  k::Variable x(5.0f);
  k::optimizers::SGD sgd(0.01);
  k::Tensor loss = sgd.minimize([&] { return 10.f * x * x - 5.f * x + 4.f; }, {x});
  CHECK(loss.item<float>() == 229.f);
  CHECK(x.value().item<float>() == Approx(5.f - 0.01f * 95.f));
  CHECK(sgd.iterations().value().item<int64_t>() == 1);
}

TEST_CASE("every optimizer puts its nodes under the scope optimizer/<its name>", "[optimizers]") {
  std::vector<std::shared_ptr<opt::Optimizer>> optimizers = {
      std::make_shared<opt::SGD>(0.1, 0.9), std::make_shared<opt::Adam>(),
      std::make_shared<opt::RMSprop>(), std::make_shared<opt::Adagrad>()};
  for (const auto& optimizer : optimizers) {
    INFO(optimizer->name());
    k::Variable w(k::constant({1.f, -2.f}), "w");
    auto step = k::function([&](const k::Tensor& g) { optimizer->apply_gradients({{g, w}}); },
                            "train_step");
    k::Tensor g = k::constant({0.5f, 1.f});
    const k::ir::Function& graph = step.graph(g);
    REQUIRE(!graph.nodes().empty());
    const std::string scope = "optimizer/" + optimizer->name();
    for (const auto& node : graph.nodes()) {
      INFO(k::ir::op_name(node->op()) << " in scope '" << node->scope() << "'");
      CHECK((node->scope() == scope || node->scope().starts_with(scope + "/")));
    }
  }
}
