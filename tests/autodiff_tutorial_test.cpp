// The tutorial programs of issue 4 as tests: gradient descent by hand, SGD and RMSprop on
// f(x) = 10x² − 5x + 4, logistic regression with a hand-written loop, an MLP trained with a
// traced and an eager step, and the contract.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <cmath>

namespace k = kiln;

namespace {
auto poly = [](const k::Tensor& x) { return 10.f * x * x - 5.f * x + 4.f; };
}  // namespace

TEST_CASE("SGD lr 0.01 from x = 5 reaches f = 3.375 in 40 steps", "[tutorial]") {
  k::Variable x(5.0f);
  k::optimizers::SGD sgd(0.01);
  for (int i = 0; i < 40; ++i) {
    k::GradientTape t;
    k::Tensor loss = poly(x);
    std::vector<k::Tensor> grads = t.gradient(loss, {x});
    sgd.apply_gradients({{grads[0], x}});
  }
  CHECK(std::abs(poly(x).item<float>() - 3.375f) < 1e-3f);
  CHECK(sgd.iterations().value().item<int64_t>() == 40);
}

TEST_CASE("gradient descent by hand with assign_sub", "[tutorial]") {
  k::Variable x(5.0f);
  for (int i = 0; i < 40; ++i) {
    k::GradientTape t;
    k::Tensor loss = poly(x);
    x.assign_sub(0.01f * t.gradient(loss, x));
  }
  CHECK(std::abs(poly(x).item<float>() - 3.375f) < 1e-3f);
}

TEST_CASE("RMSprop lr 0.5 for 20 steps follows Keras's rule", "[tutorial]") {
  k::Variable x(5.0f);
  k::optimizers::RMSprop rms(0.5);
  // Keras 3: v = ρv + (1−ρ)g²; x −= lr·g / sqrt(v + ε), with ρ = 0.9, ε = 1e-7.
  double xr = 5.0, v = 0.0;
  for (int i = 0; i < 20; ++i) {
    k::GradientTape t;
    k::Tensor loss = poly(x);
    std::vector<k::Tensor> gradients = t.gradient(loss, {x});
    rms.apply_gradients(gradients, {x});
    double g = 20 * xr - 5;
    v = 0.9 * v + 0.1 * g * g;
    xr -= 0.5 * g / std::sqrt(v + 1e-7);
    CHECK(x.value().item<float>() == Approx(xr).epsilon(1e-4).margin(1e-5));
  }
}

TEST_CASE("logistic regression by hand on two blobs reaches 95% accuracy", "[tutorial]") {
  // 100 points, 2 features: class 0 around (−1.5, −1.5), class 1 around (1.5, 1.5).
  k::Tensor noise = k::random_normal({100, 2}, 0.0, 1.0, 7);
  k::Tensor labels = k::concat({k::zeros({50, 1}), k::ones({50, 1})}, 0);
  k::Tensor xs = noise + (labels * 3.f - 1.5f);
  k::Variable w(k::zeros({2, 1}), "w"), b(0.0f, "b");
  k::optimizers::SGD sgd(0.5);
  for (int i = 0; i < 50; ++i) {
    k::GradientTape t;
    k::Tensor p = k::sigmoid(k::matmul(xs, w) + b);
    k::Tensor loss = k::reduce_mean(k::losses::binary_crossentropy(labels, p));
    sgd.apply_gradients(t.gradient(loss, {w, b}), {w, b});
  }
  k::Tensor predicted = k::cast(k::greater(k::matmul(xs, w) + b, 0.f), k::f32);
  float accuracy = k::reduce_mean(k::cast(k::equal(predicted, labels), k::f32)).item<float>();
  CHECK(accuracy >= 0.95f);
}

namespace {
struct Mlp {
  k::Variable w1, b1, w2, b2;
  std::vector<k::Variable> all() const { return {w1, b1, w2, b2}; }
  k::Tensor loss(const k::Tensor& x, const k::Tensor& y) const {
    k::Tensor h = k::relu(k::matmul(x, w1) + b1);
    k::Tensor logits = k::matmul(h, w2) + b2;
    return k::reduce_mean(k::losses::sparse_categorical_crossentropy(y, logits, true));
  }
};
Mlp make_mlp() {
  return {
      k::Variable(k::random_normal({8, 16}, 0.0, 0.3, 1), "w1"), k::Variable(k::zeros({16}), "b1"),
      k::Variable(k::random_normal({16, 3}, 0.0, 0.3, 2), "w2"), k::Variable(k::zeros({3}), "b2")};
}
float train_step(const Mlp& m, k::optimizers::Optimizer& opt, const k::Tensor& x,
                 const k::Tensor& y, k::Tensor* traced_loss = nullptr) {
  k::GradientTape t;
  k::Tensor loss = m.loss(x, y);
  opt.apply_gradients(t.gradient(loss, m.all()), m.all());
  if (traced_loss != nullptr) *traced_loss = loss;
  return loss.is_symbolic() ? 0.f : loss.item<float>();
}
}  // namespace

TEST_CASE("an MLP trained with a traced step and an eager step gives the same losses",
          "[tutorial]") {
  Mlp eager = make_mlp(), traced = make_mlp();
  k::optimizers::Adam eager_opt(1e-2), traced_opt(1e-2);
  auto step = k::function([&](const k::Tensor& x, const k::Tensor& y) {
    k::Tensor loss;
    train_step(traced, traced_opt, x, y, &loss);
    return loss;
  });
  k::Tensor x = k::random_normal({32, 8}, 0.0, 1.0, 3);
  k::Tensor y = k::cast(k::argmax(k::matmul(x, k::random_normal({8, 3}, 0.0, 1.0, 4)), 1), k::i32);
  float first = 0, last = 0;
  for (int i = 0; i < 20; ++i) {
    float e = train_step(eager, eager_opt, x, y);
    float t = step(x, y).item<float>();
    CHECK(t == Approx(e).margin(1e-5));
    if (i == 0) first = e;
    last = e;
  }
  CHECK(last < first);
  CHECK(step.trace_count() == 1);
  CHECK(traced_opt.iterations().value().item<int64_t>() == 20);
}

TEST_CASE("the contract of issue 4", "[tutorial]") {
  k::Variable x(5.0f);
  k::GradientTape tape;
  k::Tensor y = poly(x);
  CHECK(tape.gradient(y, x).item<float>() == 95.f);

  k::Variable w(k::constant({{1.f}, {-1.f}})), b(0.5f);
  k::optimizers::Adam opt(1e-2);
  auto step = k::function([&](const k::Tensor& xb, const k::Tensor& yb) {
    k::GradientTape t;
    k::Tensor loss = k::losses::binary_crossentropy(yb, k::sigmoid(k::matmul(xb, w) + b));
    opt.apply_gradients(t.gradient(loss, {w, b}), {w, b});
    return loss;
  });
  k::Tensor xb = k::constant({{1.f, 2.f}, {-1.f, -2.f}, {2.f, 0.f}, {-2.f, 1.f}});
  k::Tensor yb = k::constant({{1.f}, {0.f}, {1.f}, {0.f}});
  float before = k::reduce_mean(step(xb, yb)).item<float>();
  for (int i = 0; i < 50; ++i)
    step(xb, yb);
  float after = k::reduce_mean(step(xb, yb)).item<float>();
  CHECK(after < before);
  CHECK(step.trace_count() == 1);

  auto [value, grad] = k::value_and_grad(poly)(k::constant(2.f));
  CHECK(value.item<float>() == 34.f);
  CHECK(grad.item<float>() == 35.f);
  CHECK(k::grad(k::grad(poly))(k::constant(2.f)).item<float>() == 20.f);
}
