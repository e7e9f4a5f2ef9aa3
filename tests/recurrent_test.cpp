// SimpleRNN, LSTM, GRU and Bidirectional against reference loops written here (f64, from the
// layers' own weights), their gradients against the unrolled loop's and against central
// differences in f64, Bidirectional's merge modes, and the orthogonal initializer.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace k = kiln;
namespace L = kiln::layers;
using Catch::Contains;

namespace {

using Matrix = std::vector<double>;  // row-major

struct Dims {
  int64_t batch = 2, time = 5, features = 3, units = 4;
};

Matrix values(const k::Tensor& t) {
  return k::cast(t, k::f64).to_vector<double>();
}

double sigmoid(double v) {
  return 1.0 / (1.0 + std::exp(-v));
}

// z[b, :] = x_t[b, :]·W + h[b, :]·U + bias for one step; W [F, G·u], U [u, G·u].
Matrix affine(const Matrix& x, int64_t t, const Dims& d, const Matrix& w, const Matrix& h,
              const Matrix& u, const Matrix& bias, const Matrix& rbias, int64_t g) {
  int64_t cols = g * d.units;
  Matrix z(static_cast<size_t>(d.batch * cols), 0.0);
  for (int64_t b = 0; b < d.batch; ++b)
    for (int64_t c = 0; c < cols; ++c) {
      double acc = bias.empty() ? 0.0 : bias[static_cast<size_t>(c)];
      for (int64_t f = 0; f < d.features; ++f)
        acc += x[static_cast<size_t>((b * d.time + t) * d.features + f)] *
               w[static_cast<size_t>(f * cols + c)];
      double rec = rbias.empty() ? 0.0 : rbias[static_cast<size_t>(c)];
      for (int64_t k2 = 0; k2 < d.units; ++k2)
        rec += h[static_cast<size_t>(b * d.units + k2)] * u[static_cast<size_t>(k2 * cols + c)];
      z[static_cast<size_t>(b * cols + c)] = acc + rec;
    }
  return z;
}

// A layer's kernel, recurrent kernel and bias (empty without use_bias) as f64 values.
struct Weights {
  Matrix kernel, recurrent, bias;
};

Weights weights_of(const L::Layer& layer) {
  std::vector<k::Variable> w = layer.weights();
  return {values(w[0].value()), values(w[1].value()),
          w.size() > 2 ? values(w[2].value()) : Matrix{}};
}

// x [batch, time, features] with its time axis reversed (what go_backwards runs over).
Matrix reversed_in_time(const Matrix& x, const Dims& d) {
  Matrix r(x.size());
  for (int64_t b = 0; b < d.batch; ++b)
    for (int64_t t = 0; t < d.time; ++t)
      for (int64_t f = 0; f < d.features; ++f)
        r[static_cast<size_t>((b * d.time + t) * d.features + f)] =
            x[static_cast<size_t>((b * d.time + d.time - 1 - t) * d.features + f)];
  return r;
}

// The reference SimpleRNN: the sequence of h [time][batch·units].
std::vector<Matrix> simple_rnn_reference(const Matrix& x, const Dims& d, const Weights& w) {
  Matrix h(static_cast<size_t>(d.batch * d.units), 0.0);
  std::vector<Matrix> seq;
  for (int64_t t = 0; t < d.time; ++t) {
    Matrix z = affine(x, t, d, w.kernel, h, w.recurrent, w.bias, {}, 1);
    for (size_t i = 0; i < h.size(); ++i)
      h[i] = std::tanh(z[i]);
    seq.push_back(h);
  }
  return seq;
}

// The reference LSTM: returns the sequence of h [time][batch·units] and the final c.
std::pair<std::vector<Matrix>, Matrix> lstm_reference(const Matrix& x, const Dims& d,
                                                      const Weights& w) {
  Matrix h(static_cast<size_t>(d.batch * d.units), 0.0), c = h;
  std::vector<Matrix> seq;
  int64_t u = d.units;
  for (int64_t t = 0; t < d.time; ++t) {
    Matrix z = affine(x, t, d, w.kernel, h, w.recurrent, w.bias, {}, 4);
    for (int64_t b = 0; b < d.batch; ++b)
      for (int64_t j = 0; j < u; ++j) {
        auto at = [&](int64_t g) { return z[static_cast<size_t>(b * 4 * u + g * u + j)]; };
        size_t s = static_cast<size_t>(b * u + j);
        c[s] = sigmoid(at(1)) * c[s] + sigmoid(at(0)) * std::tanh(at(2));
        h[s] = sigmoid(at(3)) * std::tanh(c[s]);
      }
    seq.push_back(h);
  }
  return {seq, c};
}

// The reference GRU: the sequence of h [time][batch·units]. With reset_after the bias is
// [2, 3·units] (input bias, then recurrent bias), else [3·units].
std::vector<Matrix> gru_reference(const Matrix& x, const Dims& d, const Weights& w,
                                  bool reset_after) {
  int64_t u = d.units;
  const Matrix &ku = w.recurrent, &kb = w.bias;
  Matrix ib = kb.empty() ? Matrix{} : Matrix(kb.begin(), kb.begin() + 3 * u);
  Matrix rb;
  if (reset_after && !kb.empty()) rb.assign(kb.begin() + 3 * u, kb.end());
  Matrix h(static_cast<size_t>(d.batch * u), 0.0);
  std::vector<Matrix> seq;
  for (int64_t t = 0; t < d.time; ++t) {
    Matrix xproj = affine(x, t, d, w.kernel, Matrix(h.size(), 0.0), ku, ib, {}, 3);
    Matrix hproj = affine(Matrix(x.size(), 0.0), t, d, w.kernel, h, ku, {}, rb, 3);
    Matrix next = h;
    for (int64_t b = 0; b < d.batch; ++b)
      for (int64_t j = 0; j < u; ++j) {
        auto xg = [&](int64_t g) { return xproj[static_cast<size_t>(b * 3 * u + g * u + j)]; };
        auto hg = [&](int64_t g) { return hproj[static_cast<size_t>(b * 3 * u + g * u + j)]; };
        double z = sigmoid(xg(0) + hg(0)), r = sigmoid(xg(1) + hg(1));
        double cand;
        if (reset_after) {
          cand = std::tanh(xg(2) + r * hg(2));
        } else {
          // (r ⊙ h)·U_h, r of every unit k2 (hproj has no bias without reset_after).
          double rh = 0;
          for (int64_t k2 = 0; k2 < u; ++k2) {
            double zk = sigmoid(xproj[static_cast<size_t>(b * 3 * u + u + k2)] +
                                hproj[static_cast<size_t>(b * 3 * u + u + k2)]);
            rh += zk * h[static_cast<size_t>(b * u + k2)] *
                  ku[static_cast<size_t>(k2 * 3 * u + 2 * u + j)];
          }
          cand = std::tanh(xg(2) + rh);
        }
        next[static_cast<size_t>(b * u + j)] =
            z * h[static_cast<size_t>(b * u + j)] + (1 - z) * cand;
      }
    h = next;
    seq.push_back(h);
  }
  return seq;
}

void check_close(const k::Tensor& got, const Matrix& want, double tol = 1e-5) {
  Matrix g = values(got);
  REQUIRE(g.size() == want.size());
  for (size_t i = 0; i < g.size(); ++i) {
    INFO(i);
    CHECK(std::abs(g[i] - want[i]) <= tol);
  }
}

// Time step t of a [batch, time, units] sequence.
k::Tensor step_of(const k::Tensor& seq, int64_t t) {
  return seq.index({k::Slice(), t});
}

// A recurrent layer with f64 weights: the layers make f32 weights only, and finite differences
// reach 1e-6 in f64 alone. build() makes RNN::build's weights (same names, shapes, initializers)
// in f64; call() and step() are the layer's own.
template <class R>
class F64 : public R {
 public:
  using R::R;
  void build(const k::Shape& input_shape) override {
    const int64_t cols = this->gates_ * this->units_;
    this->add_weight("kernel", k::Shape{input_shape[2], cols},
                     k::initializers::get(this->options_.kernel_initializer), true, k::f64);
    this->add_weight("recurrent_kernel", k::Shape{this->units_, cols},
                     k::initializers::get(this->options_.recurrent_initializer), true, k::f64);
    if (this->options_.use_bias) {
      this->add_weight("bias", this->bias_shape(), this->bias_initializer(), true, k::f64);
    }
  }
  std::shared_ptr<L::Layer> clone() const override { return std::make_shared<F64>(*this); }
};

// The shapes of a layer's weights, to check F64<R> against R.
std::vector<k::Shape> weight_shapes(const L::Layer& layer) {
  std::vector<k::Shape> out;
  for (const k::Variable& v : layer.weights())
    out.push_back(v.shape());
  return out;
}

// Checks the tape's gradients of Σ r·f(x) (r fixed random weights), with respect to x and to
// every weight of `layer` (which f runs), against central differences, all in f64. The biases
// are made random first, so that their placement counts.
void check_layer_gradients(const L::Layer& layer,
                           const std::function<k::Tensor(const k::Tensor&)>& f,
                           const k::Shape& x_shape, int64_t seed) {
  k::Tensor x = k::random_normal(x_shape, 0.0, 1.0, seed, k::f64);
  k::Tensor probe = f(x);  // builds the layer
  REQUIRE(probe.dtype() == k::f64);
  std::vector<k::Variable> w = layer.weights();
  REQUIRE(!w.empty());
  for (size_t i = 0; i < w.size(); ++i) {
    REQUIRE(w[i].dtype() == k::f64);
    if (w[i].name().ends_with("bias")) {
      w[i].assign(
          k::random_normal(w[i].shape(), 0.0, 0.5, seed + 10 + static_cast<int64_t>(i), k::f64));
    }
  }
  k::Tensor r = k::random_normal(probe.shape(), 0.0, 1.0, seed + 1, k::f64);
  auto loss = [&](const k::Tensor& in) { return k::reduce_sum(f(in) * r); };

  std::vector<k::Source> sources{x};
  for (const k::Variable& v : w)
    sources.emplace_back(v);
  std::vector<k::Tensor> grads;
  {
    k::GradientTape tape;
    tape.watch(x);
    grads = tape.gradient(loss(x), std::span<const k::Source>(sources));
  }
  REQUIRE(grads.size() == sources.size());

  const double h = 1e-6;
  auto compare = [&](const std::string& what, const k::Tensor& grad, const Matrix& base,
                     const std::function<double(const Matrix&)>& at) {
    REQUIRE(grad.defined());
    Matrix analytic = values(grad);
    REQUIRE(analytic.size() == base.size());
    for (size_t j = 0; j < base.size(); ++j) {
      Matrix v = base;
      v[j] = base[j] + h;
      double plus = at(v);
      v[j] = base[j] - h;
      double numeric = (plus - at(v)) / (2 * h);
      INFO(what << " element " << j << ": tape " << analytic[j] << ", differences " << numeric);
      CHECK(std::abs(analytic[j] - numeric) <= 1e-6 * std::abs(numeric) + 1e-8);
    }
  };
  compare("the input", grads[0], values(x),
          [&](const Matrix& v) { return loss(k::constant(v, x_shape)).item<double>(); });
  for (size_t i = 0; i < w.size(); ++i) {
    k::Tensor saved = w[i].value();
    compare(w[i].name(), grads[i + 1], values(saved), [&](const Matrix& v) {
      w[i].assign(k::constant(v, w[i].shape()));
      return loss(x).item<double>();
    });
    w[i].assign(saved);
  }
}

}  // namespace

TEST_CASE("orthogonal gives orthonormal columns (or rows), the same for a seed", "[recurrent]") {
  for (k::Shape shape : {k::Shape{6, 4}, k::Shape{4, 6}, k::Shape{5, 5}}) {
    INFO(shape.to_string());
    k::Tensor q = k::initializers::orthogonal(1.0, 3)(shape, k::f64);
    bool tall = shape[0] >= shape[1];
    k::Tensor gram = tall ? k::matmul(q, q, true, false) : k::matmul(q, q, false, true);
    int64_t n = std::min(shape[0], shape[1]);
    Matrix g = values(gram);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j)
        CHECK(std::abs(g[static_cast<size_t>(i * n + j)] - (i == j ? 1.0 : 0.0)) < 1e-12);
    CHECK(values(k::initializers::orthogonal(1.0, 3)(shape, k::f64)) == values(q));
  }
  k::Tensor scaled = k::initializers::orthogonal(2.0, 1)({3, 3}, k::f64);
  CHECK(values(k::reduce_sum(k::square(scaled)))[0] == Approx(12.0));
}

TEST_CASE("LSTM equals the reference loop: last output, sequences, states, backwards",
          "[recurrent]") {
  Dims d;
  k::Tensor x = k::random_normal({d.batch, d.time, d.features}, 0.0, 1.0, 11);
  Matrix xv = values(x);
  L::LSTM last(d.units, {.return_state = true});
  std::vector<k::Tensor> out = last.outputs({x});
  REQUIRE(out.size() == 3);
  auto [seq, c] = lstm_reference(xv, d, weights_of(last));
  check_close(out[0], seq.back());
  check_close(out[1], seq.back());
  check_close(out[2], c);
  CHECK(last.count_params() == 4 * (d.features * d.units + d.units * d.units + d.units));
  // unit_forget_bias: ones in the forget block only.
  Matrix bias = values(last.weights()[2].value());
  for (int64_t j = 0; j < 4 * d.units; ++j)
    CHECK(bias[static_cast<size_t>(j)] == (j / d.units == 1 ? 1.0 : 0.0));

  L::LSTM all(d.units, {.return_sequences = true});
  all(x);
  for (int64_t i = 0; i < 3; ++i)
    all.weights()[static_cast<size_t>(i)].assign(last.weights()[static_cast<size_t>(i)].value());
  k::Tensor sequence = all(x);
  CHECK(sequence.shape() == k::Shape{d.batch, d.time, d.units});
  for (int64_t t = 0; t < d.time; ++t)
    check_close(k::Tensor(sequence).index({k::Slice(), t}), seq[static_cast<size_t>(t)]);

  // go_backwards: the reversed input, the sequence in processing order.
  L::LSTM back(d.units, {.return_sequences = true, .go_backwards = true});
  back(x);
  for (int64_t i = 0; i < 3; ++i)
    back.weights()[static_cast<size_t>(i)].assign(last.weights()[static_cast<size_t>(i)].value());
  k::Tensor reversed_x = x.index({k::Slice(), k::Slice(std::nullopt, std::nullopt, -1)});
  auto [rseq, rc] = lstm_reference(values(reversed_x), d, weights_of(last));
  k::Tensor bseq = back(x);
  for (int64_t t = 0; t < d.time; ++t)
    check_close(bseq.index({k::Slice(), t}), rseq[static_cast<size_t>(t)]);
}

TEST_CASE("SimpleRNN and GRU (reset_after either way) equal their reference loops", "[recurrent]") {
  Dims d;
  k::Tensor x = k::random_normal({d.batch, d.time, d.features}, 0.0, 1.0, 12);
  Matrix xv = values(x);
  int64_t u = d.units;

  L::SimpleRNN rnn(u, {.return_sequences = true});
  k::Tensor rs = rnn(x);
  std::vector<Matrix> rseq = simple_rnn_reference(xv, d, weights_of(rnn));
  for (int64_t t = 0; t < d.time; ++t)
    check_close(step_of(rs, t), rseq[static_cast<size_t>(t)]);

  for (bool reset_after : {true, false}) {
    INFO("reset_after " << reset_after);
    L::GRU gru(u, {.return_sequences = true, .reset_after = reset_after});
    k::Tensor gs = gru(x);
    std::vector<k::Variable> w = gru.weights();
    CHECK(w[2].shape() == (reset_after ? k::Shape{2, 3 * u} : k::Shape{3 * u}));
    // Random biases, so their placement counts.
    w[2].assign(k::random_normal(w[2].shape(), 0.0, 0.5, 4));
    gs = gru(x);
    std::vector<Matrix> gseq = gru_reference(xv, d, weights_of(gru), reset_after);
    for (int64_t t = 0; t < d.time; ++t)
      check_close(step_of(gs, t), gseq[static_cast<size_t>(t)]);
  }
}

TEST_CASE("an LSTM's gradients equal those of the same loop unrolled", "[recurrent]") {
  Dims d;
  k::Tensor x = k::random_normal({d.batch, d.time, d.features}, 0.0, 1.0, 13);
  L::LSTM lstm(d.units, {.return_sequences = true});
  lstm(x);
  std::vector<k::Variable> w = lstm.weights();
  k::Tensor target = k::random_normal({d.batch, d.time, d.units}, 0.0, 1.0, 14);
  std::vector<k::Tensor> scanned;
  {
    k::GradientTape tape;
    k::Tensor loss = k::reduce_sum(k::square(lstm(x) - target));
    scanned = tape.gradient(loss, w);
  }
  std::vector<k::Tensor> unrolled;
  {
    k::GradientTape tape;
    int64_t u = d.units;
    k::Tensor h = k::zeros({d.batch, u}), c = k::zeros({d.batch, u});
    std::vector<k::Tensor> hs;
    for (int64_t t = 0; t < d.time; ++t) {
      k::Tensor z = k::matmul(x.index({k::Slice(), t}), w[0].value()) + k::matmul(h, w[1].value()) +
                    w[2].value();
      auto g = [&](int64_t i) { return z.index({k::Slice(), k::Slice(i * u, (i + 1) * u)}); };
      c = k::sigmoid(g(1)) * c + k::sigmoid(g(0)) * k::tanh(g(2));
      h = k::sigmoid(g(3)) * k::tanh(c);
      hs.push_back(h);
    }
    k::Tensor loss = k::reduce_sum(k::square(k::stack(hs, 1) - target));
    unrolled = tape.gradient(loss, w);
  }
  REQUIRE(scanned.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    INFO(w[i].name());
    Matrix a = values(scanned[i]), b = values(unrolled[i]);
    REQUIRE(a.size() == b.size());
    for (size_t j = 0; j < a.size(); ++j)
      CHECK(std::abs(a[j] - b[j]) <= 1e-4 * (1 + std::abs(b[j])));
  }
}

TEST_CASE("Bidirectional merges a forward and a backward pass", "[recurrent]") {
  Dims d;
  k::Tensor x = k::random_normal({d.batch, d.time, d.features}, 0.0, 1.0, 15);
  L::Bidirectional bi(L::GRU(d.units, {.return_sequences = true}));
  k::Tensor y = bi(x);
  CHECK(y.shape() == k::Shape{d.batch, d.time, 2 * d.units});
  CHECK(bi.weights().size() == 6);
  CHECK(bi.count_params() == 2 * bi.forward_layer()->count_params());
  k::Tensor fwd = (*bi.forward_layer())(x);
  k::Tensor bwd = (*bi.backward_layer())(x);
  k::Tensor expected =
      k::concat({fwd, bwd.index({k::Slice(), k::Slice(std::nullopt, std::nullopt, -1)})}, -1);
  CHECK(values(k::reduce_max(k::abs(y - expected)))[0] == 0.0);
  L::Bidirectional summed(L::SimpleRNN(3), "sum");
  CHECK(summed(x).shape() == k::Shape{d.batch, 3});
  CHECK_THROWS_WITH(L::Bidirectional(L::LSTM(2), "max"), Contains("merge_mode"));
}

TEST_CASE("recurrent layers in the functional API and their errors", "[recurrent]") {
  k::KerasTensor in = k::Input({k::None, 3});
  L::LSTM lstm(5, {.return_state = true});
  std::vector<k::KerasTensor> outs = lstm.apply({in});
  REQUIRE(outs.size() == 3);
  CHECK(outs[0].shape() == k::Shape{k::None, 5});
  CHECK(outs[2].shape() == k::Shape{k::None, 5});
  CHECK_THROWS_WITH(lstm(in), Contains("3 outputs: get them all with apply()"));
  k::Model model({in}, {outs[0], outs[2]});
  std::vector<k::Tensor> r = model(std::vector<k::Tensor>{k::ones({2, 7, 3})});
  CHECK(r[1].shape() == k::Shape{2, 5});
  k::KerasTensor seq = L::GRU(4, {.return_sequences = true})(in);
  CHECK(seq.shape() == k::Shape{k::None, k::None, 4});

  CHECK_THROWS_WITH(L::LSTM(0), Contains("units must be positive"));
  CHECK_THROWS_WITH(L::GRU(3, {.activation = "swish?"}), Contains("unknown activation"));
  CHECK_THROWS_WITH(L::SimpleRNN(3, {.recurrent_initializer = "eye"}),
                    Contains("unknown initializer"));
  CHECK_THROWS_AS(L::LSTM(2)(k::ones({2, 3})), k::ShapeError);
}

TEST_CASE("recurrent models train with fit; compiled predictions equal eager calls",
          "[recurrent]") {
  // Sum of a sequence's values: learnable by any of the three layers.
  k::Tensor x = k::random_normal({64, 6, 1}, 0.0, 1.0, 31);
  k::Tensor y = k::reduce_sum(x, {1});
  for (int kind = 0; kind < 3; ++kind) {
    INFO("kind " << kind);
    k::LayerHandle rnn = kind == 0 ? k::LayerHandle(L::SimpleRNN(8, {.input_shape = {k::None, 1}}))
                         : kind == 1 ? k::LayerHandle(L::LSTM(8, {.input_shape = {k::None, 1}}))
                                     : k::LayerHandle(L::GRU(8, {.input_shape = {k::None, 1}}));
    k::Sequential model({rnn, L::Dense(1)});
    model.compile(k::optimizers::Adam(0.02), "mse");
    k::History h = model.fit(x, y, {.epochs = 8, .batch_size = 16, .verbose = 0});
    CHECK(h.history["loss"].back() < 0.5 * h.history["loss"].front());
    k::Tensor probe = k::random_normal({3, 9, 1}, 0.0, 1.0, 32);  // another length
    Matrix compiled = values(model.predict(probe)), eager = values(model(probe));
    REQUIRE(compiled.size() == eager.size());
    for (size_t i = 0; i < eager.size(); ++i)
      CHECK(std::abs(compiled[i] - eager[i]) < 1e-4);
  }
}

// ---- gradients of the layer calls (f64, central differences) -----------------------------------

TEST_CASE("LSTM gradients match finite differences in f64: sequences, and states backwards",
          "[recurrent][gradients]") {
  const k::Shape xs{2, 3, 2};
  {
    F64<L::LSTM> lstm(2, {.return_sequences = true});
    check_layer_gradients(
        lstm, [&](const k::Tensor& x) { return lstm(x); }, xs, 41);
    L::LSTM plain(2, {.return_sequences = true});
    plain(k::zeros(xs));
    CHECK(weight_shapes(lstm) == weight_shapes(plain));
  }
  {
    // The final c reaches the loss only through return_state.
    F64<L::LSTM> lstm(2, {.return_state = true, .go_backwards = true});
    check_layer_gradients(
        lstm, [&](const k::Tensor& x) { return k::concat(lstm.outputs({x}), -1); }, xs, 42);
  }
}

TEST_CASE("GRU gradients match finite differences in f64, reset_after either way",
          "[recurrent][gradients]") {
  const k::Shape xs{2, 3, 2};
  for (bool reset_after : {true, false}) {
    INFO("reset_after " << reset_after);
    F64<L::GRU> gru(
        2, {.return_sequences = true, .go_backwards = !reset_after, .reset_after = reset_after});
    check_layer_gradients(
        gru, [&](const k::Tensor& x) { return gru(x); }, xs, 43);
    L::GRU plain(2, {.reset_after = reset_after});
    plain(k::zeros(xs));
    CHECK(weight_shapes(gru) == weight_shapes(plain));
  }
}

TEST_CASE("SimpleRNN gradients match finite differences in f64", "[recurrent][gradients]") {
  const k::Shape xs{2, 4, 3};
  F64<L::SimpleRNN> rnn(3, {.return_sequences = true});
  check_layer_gradients(
      rnn, [&](const k::Tensor& x) { return rnn(x); }, xs, 44);
  F64<L::SimpleRNN> last(3, {.return_state = true, .go_backwards = true});
  check_layer_gradients(
      last, [&](const k::Tensor& x) { return k::concat(last.outputs({x}), -1); }, xs, 45);
}

TEST_CASE("Bidirectional gradients match finite differences in f64", "[recurrent][gradients]") {
  const k::Shape xs{2, 3, 2};
  L::Bidirectional bi(F64<L::GRU>(2, {.return_sequences = true}));
  check_layer_gradients(
      bi, [&](const k::Tensor& x) { return bi(x); }, xs, 46);
  REQUIRE(bi.weights().size() == 6);
  L::Bidirectional multiplied(F64<L::LSTM>(2), "mul");
  check_layer_gradients(
      multiplied, [&](const k::Tensor& x) { return multiplied(x); }, xs, 47);
}

// ---- return_state and go_backwards against the references ---------------------------------------

TEST_CASE("SimpleRNN and GRU return_state and go_backwards equal their reference loops",
          "[recurrent]") {
  Dims d{.batch = 2, .time = 4, .features = 3, .units = 3};
  k::Tensor x = k::random_normal({d.batch, d.time, d.features}, 0.0, 1.0, 51);
  Matrix xv = values(x);
  for (int kind = 0; kind < 3; ++kind) {
    for (bool backwards : {false, true}) {
      for (bool sequences : {false, true}) {
        INFO("kind " << kind << " (SimpleRNN, GRU, GRU reset_before) go_backwards " << backwards
                     << " return_sequences " << sequences);
        L::RNNOptions o{.return_sequences = sequences,
                        .return_state = true,
                        .go_backwards = backwards,
                        .reset_after = kind != 2};
        std::shared_ptr<L::Layer> layer;
        if (kind == 0) {
          layer = std::make_shared<L::SimpleRNN>(d.units, o);
        } else {
          layer = std::make_shared<L::GRU>(d.units, o);
        }
        layer->outputs({x});
        if (kind > 0) {
          k::Variable bias = layer->weights()[2];
          bias.assign(k::random_normal(bias.shape(), 0.0, 0.5, 52));
        }
        std::vector<k::Tensor> out = layer->outputs({x});
        REQUIRE(out.size() == 2);
        Matrix in = backwards ? reversed_in_time(xv, d) : xv;
        std::vector<Matrix> seq = kind == 0 ? simple_rnn_reference(in, d, weights_of(*layer))
                                            : gru_reference(in, d, weights_of(*layer), kind == 1);
        if (sequences) {
          CHECK(out[0].shape() == k::Shape{d.batch, d.time, d.units});
          // In processing order: step t of a backwards run saw x's steps T−1 … T−1−t.
          for (int64_t t = 0; t < d.time; ++t)
            check_close(step_of(out[0], t), seq[static_cast<size_t>(t)]);
        } else {
          check_close(out[0], seq.back());
        }
        CHECK(out[1].shape() == k::Shape{d.batch, d.units});
        check_close(out[1], seq.back());
      }
    }
  }
}

// ---- Bidirectional merge modes against independent references ----------------------------------

TEST_CASE("Bidirectional concat, sum, mul and ave equal merged reference loops", "[recurrent]") {
  Dims d{.batch = 2, .time = 4, .features = 3, .units = 3};
  k::Tensor x = k::random_normal({d.batch, d.time, d.features}, 0.0, 1.0, 53);
  Matrix xv = values(x), xr = reversed_in_time(xv, d);
  const int64_t u = d.units;
  for (const char* mode : {"concat", "sum", "mul", "ave"}) {
    for (int kind = 0; kind < 2; ++kind) {
      for (bool sequences : {true, false}) {
        INFO(mode << (kind == 0 ? " GRU" : " LSTM") << " return_sequences " << sequences);
        L::RNNOptions o{.return_sequences = sequences};
        L::Bidirectional bi = kind == 0 ? L::Bidirectional(L::GRU(u, o), mode)
                                        : L::Bidirectional(L::LSTM(u, o), mode);
        bi(x);
        // Random biases, different in the two directions.
        for (size_t i : {size_t(2), size_t(5)}) {
          k::Variable bias = bi.weights()[i];
          bias.assign(k::random_normal(bias.shape(), 0.0, 0.5, 54 + static_cast<int64_t>(i)));
        }
        k::Tensor y = bi(x);
        Weights fw = weights_of(*bi.forward_layer()), bw = weights_of(*bi.backward_layer());
        CHECK(fw.kernel != bw.kernel);  // each direction has its own weights
        // The forward pass over x; the backward one over reversed x, in processing order.
        std::vector<Matrix> f =
            kind == 0 ? gru_reference(xv, d, fw, true) : lstm_reference(xv, d, fw).first;
        std::vector<Matrix> b =
            kind == 0 ? gru_reference(xr, d, bw, true) : lstm_reference(xr, d, bw).first;
        const std::string m = mode;
        const int64_t width = m == "concat" ? 2 * u : u;
        const int64_t steps = sequences ? d.time : 1;
        CHECK(y.shape() ==
              (sequences ? k::Shape{d.batch, d.time, width} : k::Shape{d.batch, width}));
        Matrix want;
        for (int64_t n = 0; n < d.batch; ++n)
          for (int64_t t = 0; t < steps; ++t) {
            // Time step t's outputs: the backward pass saw step t at its step T−1−t; without
            // sequences, each pass's last step.
            const Matrix& fs = sequences ? f[static_cast<size_t>(t)] : f.back();
            const Matrix& bs = sequences ? b[static_cast<size_t>(d.time - 1 - t)] : b.back();
            for (int64_t j = 0; j < width; ++j) {
              double fv = fs[static_cast<size_t>(n * u + j % u)];
              double bv = bs[static_cast<size_t>(n * u + j % u)];
              want.push_back(m == "concat" ? (j < u ? fv : bv)
                             : m == "sum"  ? fv + bv
                             : m == "mul"  ? fv * bv
                                           : (fv + bv) / 2);
            }
          }
        check_close(y, want);
      }
    }
  }
}

// ---- the recurrent kernel's default initializer
// --------------------------------------------------

TEST_CASE("recurrent kernels start orthogonal: the whole [units, G·units] matrix", "[recurrent]") {
  const int64_t u = 3;
  k::Tensor x = k::zeros({2, 4, 5});
  for (int kind = 0; kind < 4; ++kind) {
    INFO("kind " << kind << " (SimpleRNN, LSTM, GRU, GRU reset_before)");
    std::shared_ptr<L::Layer> layer;
    if (kind == 0) {
      layer = std::make_shared<L::SimpleRNN>(u);
    } else if (kind == 1) {
      layer = std::make_shared<L::LSTM>(u);
    } else {
      layer = std::make_shared<L::GRU>(u, L::RNNOptions{.reset_after = kind == 2});
    }
    (*layer)(x);
    k::Variable rk = layer->weights()[1];
    const int64_t gates = kind == 0 ? 1 : kind == 1 ? 4 : 3;
    REQUIRE(rk.shape() == k::Shape{u, gates * u});
    // Keras's Orthogonal on the whole matrix: a wide one has orthonormal rows, R·Rᵀ = I. (Each
    // gate's block orthogonal on its own would give R·Rᵀ = G·I.)
    Matrix g = values(k::matmul(rk.value(), rk.value(), false, true));
    for (int64_t i = 0; i < u; ++i)
      for (int64_t j = 0; j < u; ++j) {
        INFO(i << ", " << j);
        CHECK(std::abs(g[static_cast<size_t>(i * u + j)] - (i == j ? 1.0 : 0.0)) < 1e-5);
      }
  }
}
