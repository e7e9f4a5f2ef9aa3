// kiln::scan on the compiled CPU path (issue 15): an LSTM-like recurrence trained with a
// GradientTape inside kiln::function equals the interpreter's training, eager scans run cached
// compiled kernels, and a bad index in a body surfaces as the same IndexError.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <vector>

#include "error_test_util.h"

namespace k = kiln;
using Catch::Contains;
using kiln::testing::error_of;

namespace {

using Pair = std::pair<std::vector<k::Tensor>, std::vector<k::Tensor>>;

class ModeGuard {
 public:
  explicit ModeGuard(k::EagerMode mode) { k::set_eager_mode(mode); }
  ~ModeGuard() { k::set_eager_mode(previous); }
  ModeGuard(const ModeGuard&) = delete;
  ModeGuard& operator=(const ModeGuard&) = delete;

 private:
  k::EagerMode previous = k::eager_mode();
};

constexpr int64_t kBatch = 3, kFeatures = 2, kUnits = 4, kSteps = 5;

// An LSTM layer's weights: the input kernel W, the recurrent kernel U (captured by the body) and
// the bias b, in Keras's gate order i, f, c, o.
struct Lstm {
  k::Variable w{k::random_uniform({kFeatures, 4 * kUnits}, -0.5, 0.5, 1), "w"};
  k::Variable u{k::random_uniform({kUnits, 4 * kUnits}, -0.5, 0.5, 2), "u"};
  k::Variable b{k::random_uniform({4 * kUnits}, -0.1, 0.1, 3), "b"};
  k::Variable head{k::random_uniform({kUnits, 1}, -0.5, 0.5, 4), "head"};
};

// Mean squared error of a linear head on the LSTM's final h, for time-major x [T, B, F].
k::Tensor lstm_loss(Lstm& m, const k::Tensor& x, const k::Tensor& target) {
  k::Tensor xw = k::reshape(k::matmul(k::reshape(x, {kSteps * kBatch, kFeatures}), m.w.value()),
                            {kSteps, kBatch, 4 * kUnits});
  k::Tensor u = m.u.value(), b = m.b.value();
  k::ScanResult r = k::scan(
      [&](std::span<const k::Tensor> c, std::span<const k::Tensor> xs) {
        k::Tensor z = xs[0] + k::matmul(c[0], u) + b;
        std::vector<k::Tensor> g = k::split(z, 4, 1);
        k::Tensor cell = k::sigmoid(g[1]) * c[1] + k::sigmoid(g[0]) * k::tanh(g[2]);
        k::Tensor h = k::sigmoid(g[3]) * k::tanh(cell);
        return Pair{{h, cell}, {h}};
      },
      {k::zeros({kBatch, kUnits}), k::zeros({kBatch, kUnits})}, {xw});
  k::Tensor pred = k::matmul(r.carries[0], m.head.value());
  k::Tensor diff = pred - target;
  return k::reduce_mean(diff * diff);
}

// One step of plain gradient descent; returns the loss before the step.
k::Tensor train_step(Lstm& m, const k::Tensor& x, const k::Tensor& target) {
  k::GradientTape tape;
  k::Tensor loss = lstm_loss(m, x, target);
  std::vector<k::Tensor> g = tape.gradient(loss, {m.w, m.u, m.b, m.head});
  m.w.assign_sub(g[0] * 0.5f);
  m.u.assign_sub(g[1] * 0.5f);
  m.b.assign_sub(g[2] * 0.5f);
  m.head.assign_sub(g[3] * 0.5f);
  return loss;
}

k::Tensor data_x() {
  return k::random_uniform({kSteps, kBatch, kFeatures}, -1.0, 1.0, 7);
}

k::Tensor data_y() {
  return k::random_uniform({kBatch, 1}, -1.0, 1.0, 8);
}

void check_close(const k::Tensor& a, const k::Tensor& b, double tol) {
  REQUIRE(a.type() == b.type());
  std::vector<float> x = a.to_vector<float>(), y = b.to_vector<float>();
  for (size_t i = 0; i < x.size(); ++i) {
    INFO("element " << i);
    CHECK(x[i] == Approx(y[i]).margin(tol).epsilon(tol));
  }
}

}  // namespace

TEST_CASE("an LSTM scan trained in a kiln::function equals the interpreter's training",
          "[scan][frontend][compiled]") {
  const k::Tensor x = data_x(), y = data_y();
  std::vector<float> want_losses;
  Lstm want;
  {
    ModeGuard interpret(k::EagerMode::interpret);
    for (int step = 0; step < 4; ++step)
      want_losses.push_back(train_step(want, x, y).item<float>());
  }
  Lstm got;
  auto step_fn = k::function(
      [&](const k::Tensor& xs, const k::Tensor& target) { return train_step(got, xs, target); },
      "lstm_train_step");
  std::vector<float> got_losses;
  for (int step = 0; step < 4; ++step)
    got_losses.push_back(step_fn(x, y).item<float>());
  CHECK(step_fn.trace_count() == 1);
  for (size_t i = 0; i < got_losses.size(); ++i) {
    INFO("step " << i);
    CHECK(got_losses[i] == Approx(want_losses[i]).epsilon(1e-4));
  }
  CHECK(want_losses.back() < want_losses.front());  // it learns
  check_close(got.w.value(), want.w.value(), 1e-4);
  check_close(got.u.value(), want.u.value(), 1e-4);
  check_close(got.b.value(), want.b.value(), 1e-4);
  check_close(got.head.value(), want.head.value(), 1e-4);
}

TEST_CASE("eager scans run compiled kernels from the cache, as the interpreter computes",
          "[scan][frontend][eager]") {
  const k::Tensor x = data_x(), y = data_y();
  Lstm want, got;
  std::vector<float> want_losses, got_losses;
  {
    ModeGuard interpret(k::EagerMode::interpret);
    for (int step = 0; step < 3; ++step)
      want_losses.push_back(train_step(want, x, y).item<float>());
  }
  ModeGuard compiled(k::EagerMode::compiled);
  k::clear_eager_cache();
  got_losses.push_back(train_step(got, x, y).item<float>());
  const k::EagerCacheInfo first = k::eager_cache_info();
  for (int step = 1; step < 3; ++step)
    got_losses.push_back(train_step(got, x, y).item<float>());
  const k::EagerCacheInfo later = k::eager_cache_info();
  // The body is traced again at every call, but its text is the same: the forward and the
  // gradient scans hit the kernels the first step compiled.
  CHECK(later.compiles == first.compiles);
  CHECK(later.hits > first.hits);
  for (size_t i = 0; i < got_losses.size(); ++i) {
    INFO("step " << i);
    CHECK(got_losses[i] == Approx(want_losses[i]).epsilon(1e-4));
  }
  check_close(got.u.value(), want.u.value(), 1e-4);
}

TEST_CASE("a bad index inside a compiled scan body is the interpreter's IndexError",
          "[scan][frontend][errors]") {
  auto run = [](const k::Tensor& idx) {
    k::Tensor table = k::constant(std::vector<float>{1, 2, 3}, {3});
    k::ScanResult r = k::scan(
        [&](std::span<const k::Tensor> c, std::span<const k::Tensor> xs) {
          k::Tensor v = k::gather(table, xs[0]);
          return Pair{{c[0] + v}, {v}};
        },
        {k::constant(0.0f)}, {idx});
    return r.ys[0];
  };
  const k::Tensor bad = k::constant(std::vector<int32_t>{0, 7, 1}, {3}, k::i32);
  std::string interpreted;
  {
    ModeGuard interpret(k::EagerMode::interpret);
    interpreted = error_of<k::IndexError>([&] { run(bad); });
  }
  auto f = k::function([&](const k::Tensor& idx) { return run(idx); }, "gathers");
  std::string compiled = error_of<k::IndexError>([&] { f(bad); });
  CHECK_THAT(compiled, Contains("7"));
  CHECK_THAT(compiled, Contains("scan_compiled_frontend_test.cpp"));
  // The same message, less the interpreter's "in scan step 1 (of 3)" context.
  CHECK_THAT(interpreted, Contains(compiled.substr(0, compiled.find('\n'))));
  const k::Tensor good = k::constant(std::vector<int32_t>{2, 0, 1}, {3}, k::i32);
  CHECK(f(good).to_vector<float>() == std::vector<float>{3, 1, 2});
}
