// Sequence layers without a recurrence (Conv1D, MaxPooling1D, AveragePooling1D, Embedding,
// TimeDistributed, Dense on rank-3 inputs) and the Keras keyword structs of Conv1D/Conv2D:
// values against references written here, f64 finite-difference gradients of the functions
// the layers run, training inside a compiled Sequential, summaries, and bad inputs.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "error_test_util.h"

namespace k = kiln;
namespace L = kiln::layers;
using Catch::Contains;
using k::testing::error_of;

namespace {

// Deterministic values in [-1, 1).
std::vector<double> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  std::vector<double> v(n);
  for (double& x : v)
    x = dist(rng);
  return v;
}

std::vector<float> to_float(const std::vector<double>& v) {
  return std::vector<float>(v.begin(), v.end());
}

// Reference 1-D convolution, written as the formula: output step t reads input steps
// t * stride + i * dilation − before for taps i, zeros outside [0, steps). `before` and the output
// length follow TensorFlow's padding rules (causal: span − 1 zeros in front, nothing after).
std::vector<double> conv1d_reference(const std::vector<double>& x, int64_t batch, int64_t steps,
                                     int64_t in, const std::vector<double>& w, int64_t taps,
                                     int64_t out, const std::vector<double>& bias, int64_t stride,
                                     const std::string& padding, int64_t dilation,
                                     int64_t& out_steps) {
  const int64_t span = (taps - 1) * dilation + 1;
  int64_t before = 0;
  if (padding == "valid") {
    out_steps = (steps - span) / stride + 1;
  } else if (padding == "same") {
    out_steps = (steps + stride - 1) / stride;
    before = std::max<int64_t>((out_steps - 1) * stride + span - steps, 0) / 2;
  } else {  // causal
    out_steps = (steps - 1) / stride + 1;
    before = span - 1;
  }
  std::vector<double> y(static_cast<size_t>(batch * out_steps * out));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < out_steps; ++t)
      for (int64_t o = 0; o < out; ++o) {
        double acc = bias.empty() ? 0.0 : bias[size_t(o)];
        for (int64_t i = 0; i < taps; ++i) {
          int64_t s = t * stride + i * dilation - before;
          if (s < 0 || s >= steps) continue;
          for (int64_t c = 0; c < in; ++c)
            acc += x[size_t((b * steps + s) * in + c)] * w[size_t((i * in + c) * out + o)];
        }
        y[size_t((b * out_steps + t) * out + o)] = acc;
      }
  return y;
}

void check_close(const std::vector<float>& got, const std::vector<double>& want,
                 double margin = 1e-5) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i);
    CHECK(got[i] == Approx(want[i]).margin(margin));
  }
}

// Checks the tape's gradient of Σ r·f(inputs) (r fixed random weights) with respect to every
// input against central differences, all in f64.
void check_gradients(const std::function<k::Tensor(const std::vector<k::Tensor>&)>& f,
                     const std::vector<std::vector<double>>& values,
                     const std::vector<k::Shape>& shapes) {
  std::vector<k::Tensor> inputs;
  for (size_t i = 0; i < values.size(); ++i)
    inputs.push_back(k::constant(values[i], shapes[i]));
  k::Tensor probe = f(inputs);
  REQUIRE(probe.dtype() == k::f64);
  k::Tensor r = k::constant(random_values(size_t(probe.shape().num_elements()), 99), probe.shape());
  auto loss = [&](const std::vector<k::Tensor>& xs) { return k::reduce_sum(f(xs) * r); };
  std::vector<k::Tensor> grads;
  {
    k::GradientTape tape(/*persistent=*/true);
    for (const k::Tensor& t : inputs)
      tape.watch(t);
    k::Tensor l = loss(inputs);
    for (const k::Tensor& t : inputs)
      grads.push_back(tape.gradient(l, t));
  }
  const double h = 1e-6;
  for (size_t i = 0; i < inputs.size(); ++i) {
    REQUIRE(grads[i].defined());
    std::vector<double> analytic = grads[i].to_vector<double>();
    for (size_t j = 0; j < values[i].size(); ++j) {
      std::vector<k::Tensor> plus = inputs, minus = inputs;
      std::vector<double> v = values[i];
      v[j] += h;
      plus[i] = k::constant(v, shapes[i]);
      v[j] -= 2 * h;
      minus[i] = k::constant(v, shapes[i]);
      double numeric = (loss(plus).item<double>() - loss(minus).item<double>()) / (2 * h);
      INFO("input " << i << " element " << j);
      CHECK(analytic[j] == Approx(numeric).margin(1e-6).epsilon(1e-5));
    }
  }
}

// The output shape and parameter count on the summary row that starts with `layer`; empty if
// there is none.
std::vector<std::string> row_of(const std::string& summary, const std::string& layer) {
  size_t at = summary.find("\n" + layer + " ");
  if (at == std::string::npos) return {};
  std::string line = summary.substr(at + 1, summary.find('\n', at + 1) - at - 1);
  size_t open = line.find('(', layer.size()), close = line.find(')', open);
  if (open == std::string::npos || close == std::string::npos) return {};
  std::string params = line.substr(close + 1);
  params.erase(0, params.find_first_not_of(' '));
  params.erase(params.find_last_not_of(' ') + 1);
  // Only the first column after the shape (a functional summary has more).
  params = params.substr(0, params.find(' '));
  return {line.substr(open, close - open + 1), params};
}

// Loss of the first and the last epoch.
std::pair<double, double> first_and_last_loss(const k::History& h) {
  const std::vector<double>& loss = h.history.at("loss");
  return {loss.front(), loss.back()};
}

}  // namespace

// ---- option structs --------------------------------------------------------------------------

TEST_CASE("Conv2D takes Keras's keywords in a struct and an int kernel size", "[sequence]") {
  k::Tensor x = k::random_normal({2, 5, 5, 3}, 0.0, 1.0, 1);
  L::Conv2D a(32, 3, {.padding = "same", .activation = "relu"});
  L::Conv2D b(32, 1, {.activation = "relu"});
  k::Tensor ya = a(x), yb = b(x);
  CHECK(ya.shape() == k::Shape{2, 5, 5, 32});
  CHECK(yb.shape() == k::Shape{2, 5, 5, 32});
  CHECK(a.weights().at(0).shape() == k::Shape{3, 3, 3, 32});
  CHECK(b.weights().at(0).shape() == k::Shape{1, 1, 3, 32});
  std::vector<float> va = ya.to_vector<float>();
  CHECK(*std::min_element(va.begin(), va.end()) >= 0.f);  // relu
  // A pair kernel and keywords; the positional constructor still works.
  CHECK(L::Conv2D(4, {3, 1}, {.strides = {2, 1}})(x).shape() == k::Shape{2, 2, 5, 4});
  CHECK(L::Conv2D(4, {3, 3}, {1, 1}, "same")(x).shape() == k::Shape{2, 5, 5, 4});
  L::Conv2D named(2, 3, {.use_bias = false, .name = "my_conv"});
  named(x);
  CHECK(named.name() == "my_conv");
  CHECK(named.weights().size() == 1);
}

TEST_CASE("Conv2D keywords: strides and dilation_rate give window sums", "[sequence]") {
  // x[i][j] = 5i + j on a 5×5 image, a ones kernel: each output is the sum of the taps it reads.
  std::vector<float> v(25);
  for (size_t i = 0; i < 25; ++i)
    v[i] = float(i);
  k::Tensor x = k::constant(v, k::Shape{1, 5, 5, 1});
  auto at = [](int64_t i, int64_t j) { return double(5 * i + j); };

  L::Conv2D strided(1, 3, {.strides = 2, .use_bias = false, .kernel_initializer = "ones"});
  std::vector<double> want;
  for (int64_t oi = 0; oi < 2; ++oi)
    for (int64_t oj = 0; oj < 2; ++oj) {
      double s = 0;
      for (int64_t di = 0; di < 3; ++di)
        for (int64_t dj = 0; dj < 3; ++dj)
          s += at(2 * oi + di, 2 * oj + dj);
      want.push_back(s);
    }
  k::Tensor ys = strided(x);
  CHECK(ys.shape() == k::Shape{1, 2, 2, 1});
  check_close(ys.to_vector<float>(), want);

  L::Conv2D dilated(1, 2, {.dilation_rate = 2, .use_bias = false, .kernel_initializer = "ones"});
  want.clear();
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 3; ++j)
      want.push_back(at(i, j) + at(i, j + 2) + at(i + 2, j) + at(i + 2, j + 2));
  k::Tensor yd = dilated(x);
  CHECK(yd.shape() == k::Shape{1, 3, 3, 1});
  check_close(yd.to_vector<float>(), want);
}

TEST_CASE("Conv2D keywords are checked when the layer is made", "[sequence][errors]") {
  CHECK_THAT(error_of<k::ValueError>([] { L::Conv2D(4, 3, {.padding = "causal"}); }),
             Contains("padding") && Contains("causal"));
  CHECK_THAT(error_of<k::ValueError>([] { L::Conv2D(4, 3, {.strides = 0}); }), Contains("strides"));
  CHECK_THAT(error_of<k::ValueError>([] {
               L::Conv2D(4, 3, {.dilation_rate = {1, 2, 3}});
             }),
             Contains("dilation_rate"));
  CHECK_THAT(error_of<k::ValueError>([] { L::Conv2D(4, 3, {.activation = "nope"}); }),
             Contains("nope"));
}

// ---- Conv1D ----------------------------------------------------------------------------------

TEST_CASE("causal Conv1D with dilation matches the formula, step by step", "[sequence]") {
  const int64_t batch = 2, steps = 7, in = 2, taps = 3, out = 4, dilation = 2;
  std::vector<double> x = random_values(size_t(batch * steps * in), 2);
  std::vector<double> w = random_values(size_t(taps * in * out), 3);
  std::vector<double> bias = random_values(size_t(out), 4);
  L::Conv1D conv(out, taps, {.padding = "causal", .dilation_rate = dilation});
  k::Tensor input = k::constant(to_float(x), k::Shape{batch, steps, in});
  conv(input);
  REQUIRE(conv.kernel().shape() == k::Shape{taps, in, out});
  conv.kernel().assign(k::constant(to_float(w), k::Shape{taps, in, out}));
  conv.bias().assign(k::constant(to_float(bias), k::Shape{out}));
  k::Tensor y = conv(input);
  CHECK(y.shape() == k::Shape{batch, steps, out});
  int64_t out_steps = 0;
  check_close(y.to_vector<float>(), conv1d_reference(x, batch, steps, in, w, taps, out, bias, 1,
                                                     "causal", dilation, out_steps));
  CHECK(out_steps == steps);
  // Causal: changing the last step leaves every earlier output as it was.
  std::vector<double> x2 = x;
  x2[size_t((steps - 1) * in)] += 10;
  std::vector<float> y1 = y.to_vector<float>();
  std::vector<float> y2 =
      conv(k::constant(to_float(x2), k::Shape{batch, steps, in})).to_vector<float>();
  for (int64_t t = 0; t + 1 < steps; ++t)
    for (int64_t o = 0; o < out; ++o)
      CHECK(y2[size_t(t * out + o)] == y1[size_t(t * out + o)]);
}

TEST_CASE("Conv1D valid and same padding, with strides, match the formula", "[sequence]") {
  const int64_t batch = 2, steps = 9, in = 3, taps = 4, out = 2;
  std::vector<double> x = random_values(size_t(batch * steps * in), 5);
  std::vector<double> w = random_values(size_t(taps * in * out), 6);
  k::Tensor input = k::constant(to_float(x), k::Shape{batch, steps, in});
  struct Case {
    std::string padding;
    int64_t stride, dilation, want_steps;
  };
  for (const Case& c : {Case{"valid", 1, 1, 6}, Case{"valid", 2, 1, 3}, Case{"same", 1, 1, 9},
                        Case{"same", 2, 1, 5}, Case{"same", 1, 2, 9}, Case{"valid", 1, 2, 3},
                        Case{"causal", 2, 1, 5}}) {
    INFO(c.padding << " stride " << c.stride << " dilation " << c.dilation);
    L::Conv1D conv(out, taps,
                   {.strides = c.stride,
                    .padding = c.padding,
                    .dilation_rate = c.dilation,
                    .use_bias = false});
    conv(input);
    conv.kernel().assign(k::constant(to_float(w), k::Shape{taps, in, out}));
    k::Tensor y = conv(input);
    int64_t out_steps = 0;
    std::vector<double> want = conv1d_reference(x, batch, steps, in, w, taps, out, {}, c.stride,
                                                c.padding, c.dilation, out_steps);
    CHECK(out_steps == c.want_steps);
    CHECK(y.shape() == k::Shape{batch, c.want_steps, out});
    check_close(y.to_vector<float>(), want);
  }
}

TEST_CASE("Conv1D's contract form builds for sequences of any length", "[sequence]") {
  L::Conv1D conv(
      32, 5,
      {.strides = 1, .padding = "causal", .activation = "relu", .input_shape = {k::None, 1}});
  CHECK(conv.class_name() == "Conv1D");
  CHECK(conv.name().rfind("conv1d", 0) == 0);
  CHECK(conv(k::random_normal({2, 10, 1}, 0.0, 1.0, 7)).shape() == k::Shape{2, 10, 32});
  CHECK(conv(k::random_normal({3, 4, 1}, 0.0, 1.0, 8)).shape() == k::Shape{3, 4, 32});
  CHECK(conv.count_params() == 5 * 1 * 32 + 32);
}

// ---- pooling ---------------------------------------------------------------------------------

TEST_CASE("MaxPooling1D and AveragePooling1D with valid and same padding", "[sequence]") {
  // One sequence of five steps, two channels: (1, -1), (3, -2), (2, -6), (5, 0), (4, 8).
  k::Tensor x = k::constant({{{1.f, -1.f}, {3.f, -2.f}, {2.f, -6.f}, {5.f, 0.f}, {4.f, 8.f}}});
  k::Tensor m = L::MaxPooling1D()(x);
  CHECK(m.shape() == k::Shape{1, 2, 2});
  CHECK(m.to_vector<float>() == std::vector<float>{3, -1, 5, 0});
  k::Tensor ms = L::MaxPooling1D(2, std::nullopt, "same")(x);
  CHECK(ms.shape() == k::Shape{1, 3, 2});
  CHECK(ms.to_vector<float>() == std::vector<float>{3, -1, 5, 0, 4, 8});
  k::Tensor a = L::AveragePooling1D(2)(x);
  CHECK(a.to_vector<float>() == std::vector<float>{2, -1.5f, 3.5f, -3});
  // "same": the last window holds one real step, and the average counts only it (as Keras).
  k::Tensor as = L::AveragePooling1D(2, 2, "same")(x);
  CHECK(as.to_vector<float>() == std::vector<float>{2, -1.5f, 3.5f, -3, 4, 8});
  // Overlapping windows: pool 3, stride 1.
  k::Tensor a3 = L::AveragePooling1D(3, 1)(x);
  CHECK(a3.shape() == k::Shape{1, 3, 2});
  check_close(a3.to_vector<float>(), {2, -3, 10.0 / 3, -8.0 / 3, 11.0 / 3, 2.0 / 3});
  k::Tensor m3 = L::MaxPooling1D(3, 1)(x);
  CHECK(m3.to_vector<float>() == std::vector<float>{3, -1, 5, 0, 5, 8});
  CHECK(L::MaxPooling1D().class_name() == "MaxPooling1D");
  CHECK(L::AveragePooling1D().class_name() == "AveragePooling1D");
}

// ---- Embedding -------------------------------------------------------------------------------

TEST_CASE("Embedding looks up rows for integer inputs of any rank", "[sequence]") {
  L::Embedding emb(5, 3);
  k::Tensor ids = k::constant({{0, 4, 2}, {2, 2, 1}});  // i32 [2, 3]
  k::Tensor y = emb(ids);
  CHECK(y.shape() == k::Shape{2, 3, 3});
  CHECK(emb.embeddings().shape() == k::Shape{5, 3});
  std::vector<float> init = emb.embeddings().value().to_vector<float>();
  CHECK(*std::max_element(init.begin(), init.end()) <= 0.05f);
  CHECK(*std::min_element(init.begin(), init.end()) >= -0.05f);
  CHECK(*std::max_element(init.begin(), init.end()) > *std::min_element(init.begin(), init.end()));
  // Row r holds 10r, 10r + 1, 10r + 2.
  std::vector<float> table;
  for (int r = 0; r < 5; ++r)
    for (int c = 0; c < 3; ++c)
      table.push_back(float(10 * r + c));
  emb.embeddings().assign(k::constant(table, k::Shape{5, 3}));
  std::vector<float> want;
  for (int id : {0, 4, 2, 2, 2, 1})
    for (int c = 0; c < 3; ++c)
      want.push_back(float(10 * id + c));
  CHECK(emb(ids).to_vector<float>() == want);
  // i64, u8 and rank 1 and 3 inputs.
  CHECK(emb(k::constant({4, 0}, k::i64)).to_vector<float>() ==
        std::vector<float>{40, 41, 42, 0, 1, 2});
  CHECK(emb(k::cast(k::constant({3}), k::u8)).to_vector<float>() == std::vector<float>{30, 31, 32});
  CHECK(emb(k::constant({{{1}, {2}}})).shape() == k::Shape{1, 2, 1, 3});
  CHECK(emb.count_params() == 15);
  CHECK(emb.class_name() == "Embedding");
}

TEST_CASE("Embedding errors: float input, index out of range, bad sizes", "[sequence][errors]") {
  L::Embedding emb(4, 2);
  CHECK_THAT(error_of<k::TypeError>([&] {
               emb(k::constant({0.f, 1.f}));
             }),
             Contains("integer indices") && Contains("k::cast"));
  CHECK_THAT(error_of<k::IndexError>([&] { emb(k::constant({1, 4})); }), Contains("4"));
  CHECK_THAT(error_of<k::IndexError>([&] { emb(k::constant({-1})); }), Contains("-1"));
  CHECK_THAT(error_of<k::ValueError>([] { L::Embedding(0, 2); }), Contains("input_dim"));
  CHECK_THAT(error_of<k::ValueError>([] { L::Embedding(3, 2, "nope"); }), Contains("nope"));
}

// ---- TimeDistributed and Dense on sequences ----------------------------------------------------

TEST_CASE("TimeDistributed(Dense) equals Dense on the rank-3 input and shares its weights",
          "[sequence]") {
  L::Dense dense(4, "tanh");
  L::TimeDistributed td(dense);
  k::Tensor x = k::random_normal({2, 5, 3}, 0.0, 1.0, 9);
  k::Tensor y = td(x);
  CHECK(y.shape() == k::Shape{2, 5, 4});
  check_close(y.to_vector<float>(), [&] {
    std::vector<float> d = dense(x).to_vector<float>();
    return std::vector<double>(d.begin(), d.end());
  }());
  // The wrapper's weights are the Dense's: the same Variables.
  REQUIRE(td.weights().size() == 2);
  CHECK(td.weights()[0].name() == dense.kernel().name());
  CHECK(td.count_params() == 3 * 4 + 4);
  CHECK(td.trainable_weights().size() == 2);
  dense.kernel().assign(k::zeros({3, 4}));
  dense.bias().assign(k::constant({0.5f, 0.5f, 0.5f, 0.5f}));
  std::vector<float> z = td(x).to_vector<float>();
  for (float v : z)
    CHECK(v == Approx(std::tanh(0.5f)));
  // A second call builds nothing new.
  td(x);
  CHECK(td.weights().size() == 2);
  CHECK(td.class_name() == "TimeDistributed");
  CHECK(td.name().rfind("time_distributed", 0) == 0);
}

TEST_CASE("TimeDistributed(Conv2D) applies the convolution to every frame", "[sequence]") {
  L::Conv2D conv(2, {2, 2});
  L::TimeDistributed td(conv);
  k::Tensor x = k::random_normal({2, 3, 4, 4, 1}, 0.0, 1.0, 10);  // [batch, frames, h, w, c]
  k::Tensor y = td(x);
  CHECK(y.shape() == k::Shape{2, 3, 3, 3, 2});
  std::vector<float> got = y.to_vector<float>();
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t f = 0; f < 3; ++f) {
      k::Tensor frame = k::reshape(x.index({b, f}), {1, 4, 4, 1});
      std::vector<float> want = conv(frame).to_vector<float>();
      for (size_t i = 0; i < want.size(); ++i)
        CHECK(got[size_t((b * 3 + f) * 18) + i] == Approx(want[i]).margin(1e-6));
    }
}

TEST_CASE("TimeDistributed errors: rank below 3, no layer", "[sequence][errors]") {
  L::TimeDistributed td(L::Dense(2));
  CHECK_THAT(error_of<k::ShapeError>([&] {
               td(k::zeros({4, 3}));
             }),
             Contains("rank >= 3") && Contains("(4, 3)"));
  CHECK_THAT(error_of<k::ValueError>([] { L::TimeDistributed(std::shared_ptr<L::Layer>()); }),
             Contains("needs a layer"));
}

// ---- gradients (f64, central differences) ------------------------------------------------------

TEST_CASE("conv1d gradients match finite differences in f64", "[sequence][gradients]") {
  const k::Shape xs{2, 6, 2}, ws{3, 2, 2};
  std::vector<double> x = random_values(24, 11), w = random_values(12, 12);
  for (const char* padding : {"causal", "same", "valid"}) {
    for (int64_t stride : {1, 2}) {
      for (int64_t dilation : {1, 2}) {
        if (std::string(padding) == "valid" && dilation == 2 && stride == 2) continue;
        INFO(padding << " stride " << stride << " dilation " << dilation);
        check_gradients(
            [&](const std::vector<k::Tensor>& in) {
              return k::conv1d(in[0], in[1], stride, padding, dilation);
            },
            {x, w}, {xs, ws});
      }
    }
  }
}

TEST_CASE("pool1d gradients match finite differences in f64", "[sequence][gradients]") {
  const k::Shape xs{2, 7, 2};
  // Distinct values, so that every max window has one winner.
  std::vector<double> x = random_values(28, 13);
  for (const char* padding : {"valid", "same"}) {
    INFO(padding);
    check_gradients(
        [&](const std::vector<k::Tensor>& in) { return k::max_pool1d(in[0], 2, 2, padding); }, {x},
        {xs});
    check_gradients(
        [&](const std::vector<k::Tensor>& in) { return k::avg_pool1d(in[0], 3, 2, padding); }, {x},
        {xs});
  }
}

TEST_CASE("Embedding, Dense on sequences and TimeDistributed gradients in f64",
          "[sequence][gradients]") {
  // Embedding is a gather of the table's rows: repeated ids add up.
  k::Tensor ids = k::constant({{1, 3, 1}, {0, 1, 2}});
  check_gradients([&](const std::vector<k::Tensor>& in) { return k::gather(in[0], ids, 0); },
                  {random_values(8, 14)}, {k::Shape{4, 2}});
  // Dense on [batch, steps, features]: matmul over the last axis, plus the bias.
  check_gradients(
      [](const std::vector<k::Tensor>& in) { return k::tanh(k::matmul(in[0], in[1]) + in[2]); },
      {random_values(24, 15), random_values(12, 16), random_values(3, 17)},
      {k::Shape{2, 3, 4}, k::Shape{4, 3}, k::Shape{3}});
  // TimeDistributed folds time into the batch and back.
  L::TimeDistributed td(L::Lambda([](const k::Tensor& t) { return k::softmax(t * t); }));
  check_gradients([&](const std::vector<k::Tensor>& in) { return td(in[0]); },
                  {random_values(24, 18)}, {k::Shape{2, 3, 4}});
}

TEST_CASE("layer weight gradients equal those of the functions they run", "[sequence][gradients]") {
  L::Conv1D conv(3, 2, {.padding = "causal", .dilation_rate = 2});
  k::Tensor x = k::random_normal({2, 5, 2}, 0.0, 1.0, 19);
  conv(x);
  std::vector<k::Variable> vars = conv.trainable_weights();
  k::GradientTape tape;
  k::Tensor loss = k::reduce_sum(k::square(conv(x)));
  std::vector<k::Tensor> grads = tape.gradient(loss, std::span<const k::Variable>(vars));
  k::Tensor kernel = conv.kernel().value(), bias = conv.bias().value();
  k::GradientTape tape2(true);
  tape2.watch(kernel);
  tape2.watch(bias);
  k::Tensor loss2 = k::reduce_sum(k::square(k::conv1d(x, kernel, 1, "causal", 2) + bias));
  std::vector<float> gk = tape2.gradient(loss2, kernel).to_vector<float>();
  std::vector<float> gb = tape2.gradient(loss2, bias).to_vector<float>();
  check_close(grads[0].to_vector<float>(), std::vector<double>(gk.begin(), gk.end()));
  check_close(grads[1].to_vector<float>(), std::vector<double>(gb.begin(), gb.end()));
}

// ---- training in a compiled Sequential ----------------------------------------------------------

TEST_CASE("causal Conv1D on None-length input trains and predicts other lengths", "[sequence]") {
  // y_t = x_t − 0.5 x_{t−2}: a causal, dilated kernel of two taps can learn it exactly.
  k::Sequential model({
      L::Conv1D(4, 2, {.padding = "causal", .dilation_rate = 2, .input_shape = {k::None, 1}}),
      L::Dense(1),
  });
  k::Tensor x = k::random_normal({32, 10, 1}, 0.0, 1.0, 20);
  k::Tensor shifted = k::pad(x.index({k::Slice(), k::Slice(0, 8)}), {{0, 0}, {2, 0}, {0, 0}});
  k::Tensor y = x - 0.5f * shifted;
  model.compile(k::optimizers::Adam(0.05), "mse");
  auto [first, last] =
      first_and_last_loss(model.fit(x, y, {.epochs = 30, .batch_size = 8, .verbose = 0}));
  CHECK(last < 0.1f * first);
  // Another length.
  k::Tensor p = model.predict(k::random_normal({3, 17, 1}, 0.0, 1.0, 21));
  CHECK(p.shape() == k::Shape{3, 17, 1});
  // The channel count is still checked.
  CHECK_THAT(error_of<k::ShapeError>([&] {
               model(k::zeros({2, 10, 2}));
             }),
             Contains("(2, 10, 2)") || Contains("10, 2"));
}

TEST_CASE("Conv1D, pooling 1D and Dense on sequences train in fit", "[sequence]") {
  k::Sequential model({
      L::Conv1D(4, 3, {.padding = "same", .activation = "relu", .input_shape = {12, 2}}),
      L::MaxPooling1D(2),
      L::AveragePooling1D(2, 1, "same"),
      L::Dense(3, "relu"),
      L::GlobalAveragePooling1D(),
      L::Dense(1),
  });
  k::Tensor x = k::random_normal({32, 12, 2}, 0.0, 1.0, 22);
  k::Tensor y = k::reshape(k::reduce_max(x, {1, 2}), {32, 1});
  model.compile(k::optimizers::Adam(0.02), "mse");
  model(x);  // builds the layers
  REQUIRE(model.weights().size() == 6);
  std::vector<float> before = model.weights()[0].value().to_vector<float>();
  auto [first, last] =
      first_and_last_loss(model.fit(x, y, {.epochs = 15, .batch_size = 8, .verbose = 0}));
  CHECK(last < first);
  CHECK(model.weights()[0].value().to_vector<float>() != before);
}

TEST_CASE("Embedding trains in fit on integer sequences", "[sequence]") {
  k::Sequential model({
      L::Embedding(10, 4, "uniform", k::Shape{6}),
      L::GlobalAveragePooling1D(),
      L::Dense(1, "sigmoid"),
  });
  // Label: whether token 7 occurs in the sequence.
  std::mt19937 rng(23);
  std::vector<int32_t> ids(64 * 6);
  std::vector<float> labels(64);
  for (size_t s = 0; s < 64; ++s) {
    for (size_t t = 0; t < 6; ++t) {
      ids[s * 6 + t] = int32_t(rng() % 10);
      if (ids[s * 6 + t] == 7) labels[s] = 1;
    }
  }
  k::Tensor x = k::constant(ids, k::Shape{64, 6});
  k::Tensor y = k::constant(labels, k::Shape{64, 1});
  model.compile(k::optimizers::Adam(0.05), "binary_crossentropy");
  auto [first, last] =
      first_and_last_loss(model.fit(x, y, {.epochs = 20, .batch_size = 16, .verbose = 0}));
  CHECK(last < 0.7f * first);
  // Out-of-range ids fail in compiled code too.
  CHECK_THROWS_AS(model.predict(k::constant(std::vector<int32_t>(6, 10), k::Shape{1, 6})),
                  k::IndexError);
  // Float data is refused with the cast to write.
  CHECK_THAT(error_of<k::TypeError>([&] { model.predict(k::zeros({2, 6})); }), Contains("k::cast"));
}

TEST_CASE("TimeDistributed(Dense) trains in fit and its inner layer's weights move", "[sequence]") {
  L::Dense inner(4, "tanh");
  k::Sequential model({
      L::TimeDistributed(inner),
      L::GlobalMaxPooling1D(),
      L::Dense(1),
  });
  k::Tensor x = k::random_normal({32, 5, 3}, 0.0, 1.0, 24);
  k::Tensor y = k::reshape(k::reduce_sum(x, {1, 2}), {32, 1});
  model.compile(k::optimizers::Adam(0.05), "mse");
  model(x);
  std::vector<float> before = inner.kernel().value().to_vector<float>();
  CHECK(model.count_params() == 3 * 4 + 4 + 4 + 1);
  auto [first, last] =
      first_and_last_loss(model.fit(x, y, {.epochs = 15, .batch_size = 8, .verbose = 0}));
  CHECK(last < first);
  CHECK(inner.kernel().value().to_vector<float>() != before);
}

// ---- summary ---------------------------------------------------------------------------------

TEST_CASE("summary prints the sequence layers' shapes and parameter counts as Keras",
          "[sequence]") {
  k::Sequential model(
      {
          L::Conv1D(8, 3, {.padding = "causal", .input_shape = {10, 2}, .name = "c1"}),
          L::MaxPooling1D(2, std::nullopt, "valid", "mp"),
          L::AveragePooling1D(2, std::nullopt, "same", "ap"),
          L::TimeDistributed(L::Dense(4), "td"),
          L::Dense(1),
      },
      "seq");
  std::string text = model.summary_text();
  INFO(text);
  CHECK(row_of(text, " c1 (Conv1D)") == std::vector<std::string>{"(None, 10, 8)", "56"});
  CHECK(row_of(text, " mp (MaxPooling1D)") == std::vector<std::string>{"(None, 5, 8)", "0"});
  CHECK(row_of(text, " ap (AveragePooling1D)") == std::vector<std::string>{"(None, 3, 8)", "0"});
  CHECK(row_of(text, " td (TimeDistributed)") == std::vector<std::string>{"(None, 3, 4)", "36"});
  CHECK_THAT(text, Contains("Total params: 97"));

  k::Sequential words({L::Embedding(100, 8, "uniform", k::Shape{6}, "emb")}, "words");
  CHECK(row_of(words.summary_text(), " emb (Embedding)") ==
        std::vector<std::string>{"(None, 6, 8)", "800"});
}

// ---- bad inputs
// ----------------------------------------------------------------------------------

TEST_CASE("Conv1D errors: wrong rank, kernel longer than a valid input, padding, channels",
          "[sequence][errors]") {
  L::Conv1D conv(2, 4);
  CHECK_THAT(error_of<k::ShapeError>([&] {
               conv(k::zeros({3, 8}));
             }),
             Contains("rank 3") && Contains("(3, 8)"));
  L::Conv1D conv2(2, 4, {.dilation_rate = 2});
  CHECK_THAT(error_of<k::ShapeError>([&] {
               conv2(k::zeros({1, 6, 1}));
             }),
             Contains("spans 7 steps") && Contains("has 6"));
  CHECK_THAT(error_of<k::ValueError>([] { L::Conv1D(2, 3, {.padding = "full"}); }),
             Contains("\"valid\", \"same\" or \"causal\"") && Contains("full"));
  CHECK_THAT(error_of<k::ValueError>([] { L::Conv1D(2, 0); }), Contains("kernel_size"));
  CHECK_THAT(error_of<k::ValueError>([] { L::Conv1D(2, 3, {.strides = -1}); }),
             Contains("strides"));
  L::Conv1D conv3(2, 2);
  conv3(k::zeros({1, 5, 3}));
  CHECK_THAT(error_of<k::ShapeError>([&] { conv3(k::zeros({1, 5, 4})); }), Contains("3 channels"));
  CHECK_THAT(error_of<k::ValueError>([] {
               k::conv1d(k::zeros({1, 5, 1}), k::zeros({2, 1, 1}), 1, "wide");
             }),
             Contains("wide"));
  CHECK_THAT(error_of<k::ShapeError>([] {
               k::conv1d(k::zeros({1, 5, 2}), k::zeros({2, 3, 1}));
             }),
             Contains("filters"));
}

TEST_CASE("pooling 1D errors: wrong rank, window longer than a valid input, padding",
          "[sequence][errors]") {
  CHECK_THAT(error_of<k::ShapeError>([] {
               L::MaxPooling1D()(k::zeros({2, 4, 4, 1}));
             }),
             Contains("rank 3"));
  CHECK_THAT(error_of<k::ShapeError>([] {
               L::AveragePooling1D(4)(k::zeros({1, 3, 1}));
             }),
             Contains("spans 4 steps"));
  CHECK_THAT(error_of<k::ValueError>([] { L::MaxPooling1D(2, std::nullopt, "causal"); }),
             Contains("causal"));
  CHECK_THAT(error_of<k::ValueError>([] { L::AveragePooling1D(0); }), Contains("pool_size"));
}

TEST_CASE("a Sequential declared with a None length summarizes with None and fits", "[sequence]") {
  // The tutorial's forecaster without its LSTMs.
  k::Sequential series({
      L::Conv1D(
          32, 5,
          {.strides = 1, .padding = "causal", .activation = "relu", .input_shape = {k::None, 1}}),
      L::Dense(30, "relu"),
      L::Dense(10, "relu"),
      L::Dense(1),
      L::Lambda([](const k::Tensor& t) { return t * 400.f; }),
  });
  std::string text = series.summary_text();
  INFO(text);
  CHECK(row_of(text, " " + series.layers()[0]->name() + " (Conv1D)") ==
        std::vector<std::string>{"(None, None, 32)", "192"});
  CHECK(row_of(text, " " + series.layers()[1]->name() + " (Dense)") ==
        std::vector<std::string>{"(None, None, 30)", "990"});
  k::Tensor x = k::random_normal({8, 20, 1}, 0.0, 1.0, 25);
  series.compile(k::optimizers::SGD(1e-6), "mae");
  series.fit(x, x, {.epochs = 1, .batch_size = 4, .verbose = 0});
  CHECK(series.predict(k::random_normal({2, 7, 1}, 0.0, 1.0, 26)).shape() == k::Shape{2, 7, 1});
}
