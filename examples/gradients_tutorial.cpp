// The gradient part of the TensorFlow intro tutorial (shared/tutorials/000, sections 2.4–3.5)
// in C++: GradientTape on a polynomial, gradient descent by hand, SGD and RMSprop, then logistic
// regression on two blobs trained with a hand-written loop. tests/example_test.sh checks what it
// prints against tests/expected/gradients_tutorial.txt.
#include <kiln/kiln.h>

#include <cmath>
#include <iostream>

namespace k = kiln;

namespace {

k::Tensor my_func(const k::Tensor& x) {
  return 10.f * x * x - 5.f * x + 4.f;
}

void differentiation() {
  k::Tensor x = k::constant(5.0f);
  k::GradientTape t;
  t.watch(x);
  k::Tensor y = my_func(x);
  std::cout << "dy/dx at 5: " << t.gradient(y, x) << "\n";

  // The same through a compiled function: a call made while a tape records is recorded too.
  auto my_func1 = k::function([](const k::Tensor& v) { return my_func(v); }, "my_func1");
  k::GradientTape t2;
  t2.watch(x);
  k::Tensor y1 = my_func1(x);
  std::cout << "dy/dx at 5 (kiln::function): " << t2.gradient(y1, x) << "\n";
}

void gradient_descent() {
  k::Variable x(5.0f);
  float dy_dx = 1;
  int steps = 0;
  while (std::abs(dy_dx) > 0.01f) {
    k::GradientTape t;
    k::Tensor y = my_func(x);
    k::Tensor g = t.gradient(y, x);
    dy_dx = g.item<float>();
    x.assign(x - 0.01f * g);
    ++steps;
  }
  std::cout << "gradient descent by hand: " << steps
            << " steps, f(x) = " << my_func(x).item<float>() << "\n";
}

void optimizers() {
  k::optimizers::SGD sgd(0.01);
  k::Variable x(5.0f);
  for (int i = 0; i < 40; ++i) {
    k::GradientTape tape;
    k::Tensor loss = my_func(x);
    std::vector<k::Tensor> gradients = tape.gradient(loss, {x});
    sgd.apply_gradients({{gradients[0], x}});
  }
  std::cout << "SGD, 40 steps: f(x) = " << my_func(x).item<float>() << "\n";

  k::optimizers::RMSprop rms(0.5);
  k::Variable x2(5.0f);
  for (int i = 0; i < 20; ++i) {
    k::GradientTape tape;
    k::Tensor loss = my_func(x2);
    rms.apply_gradients(tape.gradient(loss, {x2}), {x2});
  }
  std::cout << "RMSprop, 20 steps: f(x) = " << my_func(x2).item<float>() << "\n";
}

k::Tensor log_reg(const k::Tensor& w, const k::Tensor& b, const k::Tensor& X) {
  return 1.f / (1.f + k::exp(-(k::matmul(X, w) + b)));
}

k::Tensor bce(const k::Tensor& y_true, const k::Tensor& y_pred) {
  return -k::reduce_mean(y_true * k::log(y_pred) + (1.f - y_true) * k::log(1.f - y_pred));
}

void logistic_regression() {
  // Two blobs of 50 points in 2-D (make_blobs in the notebook): centers (0, 4) and (2, 1).
  k::Tensor labels = k::concat({k::zeros({50, 1}), k::ones({50, 1})}, 0);
  k::Tensor centers = k::concat({k::broadcast_to(k::constant({{0.f, 4.f}}), {50, 2}),
                                 k::broadcast_to(k::constant({{2.f, 1.f}}), {50, 2})},
                                0);
  k::Tensor X = centers + k::random_normal({100, 2}, 0.0, 0.8, 0);
  k::Variable w(k::constant({{1.f}, {-1.f}}), "w"), b(0.5f, "b");
  k::optimizers::SGD opt(0.5);
  float first = bce(labels, log_reg(w, b, X)).item<float>(), last = first;
  for (int i = 0; i < 50; ++i) {
    k::GradientTape tape;
    k::Tensor loss = bce(labels, log_reg(w, b, X));
    opt.apply_gradients(tape.gradient(loss, {w, b}), {w, b});
    last = bce(labels, log_reg(w, b, X)).item<float>();
  }
  k::Tensor predicted = k::round(log_reg(w, b, X));
  float accuracy = k::reduce_mean(k::cast(k::equal(predicted, labels), k::f32)).item<float>();
  std::cout << "logistic regression: loss " << first << " -> " << last << "\n";
  std::cout << "training accuracy: " << accuracy << "\n";
  std::cout << "w = " << w.value().to_vector<float>()[0] << ", " << w.value().to_vector<float>()[1]
            << "  b = " << b.value().item<float>() << "\n";
}

}  // namespace

int main() {
  try {
    differentiation();
    gradient_descent();
    optimizers();
    logistic_regression();
  } catch (const k::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  std::cout << "\ngradients tutorial: done\n";
  return 0;
}
