// SimpleRNN, LSTM, GRU and Bidirectional against reference loops written here (f64, from the
// layers' own weights), their gradients against the unrolled loop's, and the orthogonal
// initializer.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <cmath>
#include <functional>
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

// The reference LSTM: returns the sequence of h [time][batch·units] and the final c.
std::pair<std::vector<Matrix>, Matrix> lstm_reference(const Matrix& x, const Dims& d,
                                                      const L::LSTM& layer) {
  std::vector<k::Variable> w = layer.weights();
  Matrix kw = values(w[0].value()), ku = values(w[1].value()), kb = values(w[2].value());
  Matrix h(static_cast<size_t>(d.batch * d.units), 0.0), c = h;
  std::vector<Matrix> seq;
  int64_t u = d.units;
  for (int64_t t = 0; t < d.time; ++t) {
    Matrix z = affine(x, t, d, kw, h, ku, kb, {}, 4);
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
  auto [seq, c] = lstm_reference(xv, d, last);
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
  auto [rseq, rc] = lstm_reference(values(reversed_x), d, last);
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
  {
    std::vector<k::Variable> w = rnn.weights();
    Matrix kw = values(w[0].value()), ku = values(w[1].value()), kb = values(w[2].value());
    Matrix h(static_cast<size_t>(d.batch * u), 0.0);
    for (int64_t t = 0; t < d.time; ++t) {
      Matrix z = affine(xv, t, d, kw, h, ku, kb, {}, 1);
      for (size_t i = 0; i < h.size(); ++i)
        h[i] = std::tanh(z[i]);
      check_close(step_of(rs, t), h);
    }
  }

  for (bool reset_after : {true, false}) {
    INFO("reset_after " << reset_after);
    L::GRU gru(u, {.return_sequences = true, .reset_after = reset_after});
    k::Tensor gs = gru(x);
    std::vector<k::Variable> w = gru.weights();
    CHECK(w[2].shape() == (reset_after ? k::Shape{2, 3 * u} : k::Shape{3 * u}));
    // Random biases, so their placement counts.
    w[2].assign(k::random_normal(w[2].shape(), 0.0, 0.5, 4));
    gs = gru(x);
    Matrix kw = values(w[0].value()), ku = values(w[1].value()), kb = values(w[2].value());
    Matrix ib(kb.begin(), kb.begin() + 3 * u), rb;
    if (reset_after) rb.assign(kb.begin() + 3 * u, kb.end());
    Matrix h(static_cast<size_t>(d.batch * u), 0.0);
    for (int64_t t = 0; t < d.time; ++t) {
      Matrix xproj = affine(xv, t, d, kw, Matrix(h.size(), 0.0), ku, ib, {}, 3);
      Matrix hproj = affine(Matrix(xv.size(), 0.0), t, d, kw, h, ku, {}, rb, 3);
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
      check_close(step_of(gs, t), h);
    }
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
