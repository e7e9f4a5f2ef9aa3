// Finite-difference checks of gradients through the public API, eager and traced: for each row
// f (a function of f64 tensors), the GradientTape gradient of Σ w·f(xs), computed eagerly, must
// match central differences of f evaluated eagerly, and the same tape run inside a
// kiln::function (traced, compiled) must give the eager gradient to 1e-12.
#include <catch2/catch.hpp>

#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <kiln/kiln.h>

#include "grad_check_util.h"

namespace k = kiln;
using kiln::testing::random_f64;
using kiln::testing::random_f64_nonzero;

namespace {

using Body = std::function<k::Tensor(const std::vector<k::Tensor>&)>;

struct Options {
  double eps = 1e-6;        // finite-difference step
  double tolerance = 1e-6;  // relative and absolute, against finite differences
};

// The tape gradients of Σ w·f(xs) with respect to every x (zeros where unconnected).
std::vector<k::Tensor> tape_gradients(const Body& f, const std::vector<k::Tensor>& xs,
                                      const k::Tensor& w) {
  k::GradientTape tape;
  for (const k::Tensor& x : xs)
    tape.watch(x);
  k::Tensor loss = k::reduce_sum(f(xs) * w);
  return tape.gradient(loss, std::span<const k::Tensor>(xs), k::Tensor(),
                       k::UnconnectedGradients::zero);
}

// Σ w·f(xs), evaluated eagerly.
double weighted_value(const Body& f, const std::vector<k::Tensor>& xs,
                      const std::vector<double>& w) {
  std::vector<double> y = f(xs).to_vector<double>();
  REQUIRE(y.size() == w.size());
  double sum = 0;
  for (size_t i = 0; i < y.size(); ++i)
    sum += w[i] * y[i];
  return sum;
}

void check_frontend_gradient(const Body& f, const std::vector<kiln::ir::HostTensor>& inputs,
                             Options options = {}) {
  std::vector<k::Tensor> xs;
  for (const auto& host : inputs)
    xs.push_back(k::constant(host.clone()));
  k::Tensor y = f(xs);
  REQUIRE(y.dtype() == k::f64);
  kiln::ir::HostTensor weights = random_f64(y.shape(), 1234);
  k::Tensor w = k::constant(weights);
  std::vector<double> wv = kiln::testing::values_of(weights);

  // (a) eager tape against central differences.
  std::vector<k::Tensor> eager = tape_gradients(f, xs, w);
  REQUIRE(eager.size() == xs.size());
  for (size_t i = 0; i < xs.size(); ++i) {
    INFO("gradient with respect to input " << i);
    REQUIRE(eager[i].defined());
    std::vector<double> got = eager[i].to_vector<double>();
    REQUIRE(static_cast<int64_t>(got.size()) == inputs[i].num_elements());
    for (int64_t e = 0; e < inputs[i].num_elements(); ++e) {
      auto perturbed = [&](double delta) {
        std::vector<k::Tensor> moved = xs;
        kiln::ir::HostTensor h = inputs[i].clone();
        h.data<double>()[e] += delta;
        moved[i] = k::constant(h);
        return weighted_value(f, moved, wv);
      };
      double numeric = (perturbed(options.eps) - perturbed(-options.eps)) / (2 * options.eps);
      INFO("element " << e);
      CHECK(got[size_t(e)] == Approx(numeric).margin(options.tolerance).epsilon(options.tolerance));
    }
  }

  // (b) the same tape inside kiln::function: traced, differentiated and compiled.
  auto traced = k::function(
      [&f, w](const std::vector<k::Tensor>& args) { return tape_gradients(f, args, w); },
      "gradients");
  std::vector<k::Tensor> compiled = traced(xs);
  CHECK(traced.trace_count() == 1);
  REQUIRE(compiled.size() == xs.size());
  for (size_t i = 0; i < xs.size(); ++i) {
    INFO("traced gradient with respect to input " << i);
    std::vector<double> want = eager[i].to_vector<double>();
    std::vector<double> got = compiled[i].to_vector<double>();
    REQUIRE(got.size() == want.size());
    for (size_t e = 0; e < got.size(); ++e) {
      INFO("element " << e);
      CHECK(got[e] == Approx(want[e]).margin(1e-12).epsilon(1e-12));
    }
  }
}

kiln::ir::HostTensor positive(const k::Shape& shape, uint32_t seed) {
  return random_f64(shape, seed, 0.3, 2.0);
}

}  // namespace

TEST_CASE("elementwise ops: exp, pow, maximum, where", "[gradcheck][elementwise]") {
  check_frontend_gradient([](const auto& x) { return k::exp(x[0]) * x[1]; },
                          {random_f64({2, 3}, 1), random_f64({3}, 2)});
  check_frontend_gradient([](const auto& x) { return k::pow(x[0], x[1]); },
                          {positive({2, 3}, 3), random_f64({2, 1}, 4)});
  check_frontend_gradient(
      [](const auto& x) { return k::maximum(x[0], x[1]) + k::minimum(x[1], 0.25); },
      {random_f64({2, 3}, 5), random_f64({3}, 6)});
  check_frontend_gradient(
      [](const auto& x) { return k::where(k::greater(x[0], 0.0), x[0] * x[1], k::sin(x[1])); },
      {random_f64_nonzero({2, 3}, 7), random_f64({3}, 8)});
  check_frontend_gradient(
      [](const auto& x) {
        return k::tanh(x[0]) + k::sigmoid(x[0]) * k::softplus(x[0]) + k::elu(x[0], 0.5) +
               k::relu(x[0]) / k::sqrt(k::abs(x[0]));
      },
      {random_f64_nonzero({2, 3}, 9)});
}

TEST_CASE("reductions: max, min, logsumexp, norm, variance", "[gradcheck][reduction]") {
  check_frontend_gradient(
      [](const auto& x) { return k::reduce_max(x[0], 1, true) + k::reduce_min(x[0], 0); },
      {random_f64({2, 3}, 11)});
  check_frontend_gradient([](const auto& x) { return k::reduce_logsumexp(x[0], 1); },
                          {random_f64({3, 4}, 12, -2.0, 2.0)});
  check_frontend_gradient([](const auto& x) { return k::norm(x[0]); }, {random_f64({2, 3}, 13)});
  check_frontend_gradient([](const auto& x) { return k::norm(x[0], {0}, true); },
                          {random_f64({3, 2}, 14)});
  check_frontend_gradient([](const auto& x) { return k::reduce_variance(x[0], 0); },
                          {random_f64({4, 3}, 15)});
  check_frontend_gradient([](const auto& x) { return k::reduce_std(x[0]); },
                          {random_f64({4, 3}, 16)});
  check_frontend_gradient([](const auto& x) { return k::reduce_prod(x[0], {1}); },
                          {random_f64({2, 3}, 17)});
}

TEST_CASE("matmul with transposes and batch broadcasting", "[gradcheck][matmul]") {
  const std::vector<std::pair<bool, bool>> transposes = {
      {false, false}, {true, false}, {false, true}, {true, true}};
  for (auto [ta, tb] : transposes) {
    k::Shape a = ta ? k::Shape{4, 3} : k::Shape{3, 4};
    k::Shape b = tb ? k::Shape{2, 4} : k::Shape{4, 2};
    INFO("transpose_a " << ta << ", transpose_b " << tb);
    check_frontend_gradient([ta, tb](const auto& x) { return k::matmul(x[0], x[1], ta, tb); },
                            {random_f64(a, 21), random_f64(b, 22)});
  }
  check_frontend_gradient([](const auto& x) { return k::matmul(x[0], x[1], false, true); },
                          {random_f64({2, 3, 4}, 23), random_f64({5, 4}, 24)});
}

TEST_CASE("concat, split and stack", "[gradcheck][shape]") {
  check_frontend_gradient(
      [](const auto& x) {
        std::vector<k::Tensor> parts = k::split(x[0], std::vector<int64_t>{1, 2}, 1);
        k::Tensor joined = k::concat({parts[1], x[1], k::square(parts[0])}, 1);
        return k::stack({joined, k::sin(joined)}, 1);
      },
      {random_f64({2, 3}, 31), random_f64({2, 2}, 32)});
  // Only one of three pieces used.
  check_frontend_gradient([](const auto& x) { return k::exp(k::split(x[0], 3, 0)[1]); },
                          {random_f64({6, 2}, 33)});
}

TEST_CASE("indexing with slices, strides, integers and newaxis", "[gradcheck][shape]") {
  check_frontend_gradient(
      [](const auto& x) {
        k::Tensor a = x[0].index({k::Slice(1, k::none, 2), k::Slice(k::none, k::none, -1)});
        k::Tensor b = x[0].index({k::Slice(k::none, k::none, 3), k::ellipsis});
        k::Tensor c = x[0].index({-1});
        k::Tensor d = x[0].index({k::Slice(3, 0, -2), k::newaxis, k::Slice(1, 3)});
        return a * b + c + k::reduce_sum(d);
      },
      {random_f64({5, 4}, 41)});
}

TEST_CASE("gather, pad and tile", "[gradcheck][shape]") {
  check_frontend_gradient(
      [](const auto& x) {
        k::Tensor rows = k::gather(x[0], k::constant({0, 2, 2, 1}), 0);
        k::Tensor cols = k::gather(x[0], k::constant({{1, 1}, {0, 1}}, k::i64), 1);
        return k::reduce_sum(rows, 0) * k::reduce_sum(cols, {1, 2});
      },
      {random_f64({3, 3}, 51)});
  check_frontend_gradient(
      [](const auto& x) {
        return k::square(k::pad(x[0], {{1, 0}, {2, 1}}, 0.5));
      },
      {random_f64({2, 3}, 52)});
  check_frontend_gradient(
      [](const auto& x) {
        return k::sin(k::tile(x[0], {2, 1, 3}));
      },
      {random_f64({2, 1, 2}, 53)});
}

TEST_CASE("softmax and log_softmax", "[gradcheck][nn]") {
  for (int64_t axis : {0, -1}) {
    INFO("axis " << axis);
    check_frontend_gradient([axis](const auto& x) { return k::softmax(x[0], axis); },
                            {random_f64({3, 4}, 61, -2.0, 2.0)});
    check_frontend_gradient([axis](const auto& x) { return k::log_softmax(x[0], axis); },
                            {random_f64({3, 4}, 62, -2.0, 2.0)});
  }
}

TEST_CASE("conv2d, max_pool2d and avg_pool2d", "[gradcheck][conv2d]") {
  check_frontend_gradient([](const auto& x) { return k::conv2d(x[0], x[1], {2}, "same"); },
                          {random_f64({1, 5, 4, 2}, 71), random_f64({3, 3, 2, 3}, 72)});
  check_frontend_gradient(
      [](const auto& x) {
        return k::conv2d(x[0], x[1], {1, 1}, "valid", {2, 1});
      },
      {random_f64({2, 5, 4, 1}, 73), random_f64({2, 2, 1, 2}, 74)});
  check_frontend_gradient(
      [](const auto& x) {
        return k::max_pool2d(x[0], {2, 2}, {2, 2}, "same");
      },
      {random_f64({1, 5, 5, 2}, 75)});
  check_frontend_gradient(
      [](const auto& x) {
        return k::avg_pool2d(x[0], {3, 2}, {2, 1}, "same");
      },
      {random_f64({1, 5, 4, 2}, 76)});
}

TEST_CASE("cast f64 to f32 and back", "[gradcheck][cast]") {
  // The f32 rounding limits the finite differences: a wider step and tolerance.
  check_frontend_gradient(
      [](const auto& x) { return k::cast(k::cast(x[0], k::f32), k::f64) * x[0]; },
      {random_f64({2, 3}, 81)}, {.eps = 1e-2, .tolerance = 1e-4});
}

TEST_CASE("a two-layer MLP with softmax cross-entropy", "[gradcheck][composite]") {
  k::Tensor labels = k::one_hot(k::constant({0, 2, 1, 2}), 3, 1.0, 0.0, -1, k::f64);
  check_frontend_gradient(
      [labels](const auto& x) {
        k::Tensor h = k::relu(k::matmul(x[0], x[1]) + x[2]);
        k::Tensor logits = k::matmul(h, x[3]) + x[4];
        return -k::reduce_mean(k::reduce_sum(labels * k::log_softmax(logits), 1));
      },
      {random_f64({4, 3}, 91), random_f64({3, 5}, 92), random_f64({5}, 93), random_f64({5, 3}, 94),
       random_f64({3}, 95)});
}
