// depthwise_conv2d and keras.layers.DepthwiseConv2D against a reference loop written here (f64
// and f32, eager and compiled), f64 finite-difference gradients, the compiled gradient against
// the eager one, and bad inputs; keras.layers.ReLU's values against Keras's formula.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <fmt/format.h>

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

struct Config {
  int64_t batch, height, width, channels, kh, kw, multiplier;
  int64_t stride_h, stride_w;
  std::string padding;
  int64_t dilation = 1;
};

// Reference depthwise convolution, written as the formula: output (b, r, c, ch·M + m) sums
// x[b, r·sh + i·d − top, c·sw + j·d − left, ch] · w[i, j, ch, m] over the taps, zeros outside the
// input. The output sizes and `top`/`left` follow TensorFlow's padding rules.
std::vector<double> reference(const std::vector<double>& x, const std::vector<double>& w,
                              const Config& c, int64_t& out_h, int64_t& out_w) {
  auto sizes = [&](int64_t size, int64_t kernel, int64_t stride, int64_t& out, int64_t& before) {
    int64_t span = (kernel - 1) * c.dilation + 1;
    if (c.padding == "valid") {
      out = (size - span) / stride + 1;
      before = 0;
    } else {
      out = (size + stride - 1) / stride;
      before = std::max<int64_t>((out - 1) * stride + span - size, 0) / 2;
    }
  };
  int64_t top = 0, left = 0;
  sizes(c.height, c.kh, c.stride_h, out_h, top);
  sizes(c.width, c.kw, c.stride_w, out_w, left);
  const int64_t M = c.multiplier, C = c.channels;
  std::vector<double> y(size_t(c.batch * out_h * out_w * C * M), 0.0);
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t r = 0; r < out_h; ++r)
      for (int64_t q = 0; q < out_w; ++q)
        for (int64_t ch = 0; ch < C; ++ch)
          for (int64_t m = 0; m < M; ++m) {
            double acc = 0;
            for (int64_t i = 0; i < c.kh; ++i)
              for (int64_t j = 0; j < c.kw; ++j) {
                int64_t row = r * c.stride_h + i * c.dilation - top;
                int64_t col = q * c.stride_w + j * c.dilation - left;
                if (row < 0 || row >= c.height || col < 0 || col >= c.width) continue;
                acc += x[size_t(((b * c.height + row) * c.width + col) * C + ch)] *
                       w[size_t(((i * c.kw + j) * C + ch) * M + m)];
              }
            y[size_t(((b * out_h + r) * out_w + q) * C * M + ch * M + m)] = acc;
          }
  return y;
}

const std::vector<Config>& configs() {
  static const std::vector<Config> all = {
      {2, 5, 6, 3, 3, 3, 1, 1, 1, "same"},
      {2, 5, 6, 3, 3, 3, 1, 1, 1, "valid"},
      {1, 7, 6, 2, 3, 3, 1, 2, 2, "same"},
      {1, 7, 6, 2, 3, 3, 1, 2, 2, "valid"},
      {2, 6, 5, 3, 3, 3, 2, 1, 1, "same"},
      {1, 7, 8, 2, 3, 3, 2, 2, 2, "valid"},
      {1, 8, 7, 2, 3, 2, 2, 2, 1, "same"},     // non-square kernel, per-axis strides
      {1, 7, 7, 2, 3, 3, 1, 1, 1, "same", 2},  // dilated
      {1, 7, 7, 2, 2, 3, 3, 1, 1, "valid", 2},
      {1, 4, 4, 3, 1, 1, 1, 2, 2, "valid"},  // 1×1: a strided per-channel scale
  };
  return all;
}

k::Shape x_shape(const Config& c) {
  return {c.batch, c.height, c.width, c.channels};
}
k::Shape w_shape(const Config& c) {
  return {c.kh, c.kw, c.channels, c.multiplier};
}

std::string describe(const Config& c) {
  return fmt::format("x {} w {} strides ({}, {}) {} dilation {}", x_shape(c).to_string(),
                     w_shape(c).to_string(), c.stride_h, c.stride_w, c.padding, c.dilation);
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

}  // namespace

TEST_CASE("depthwise_conv2d matches the reference loop in f64, eager and compiled", "[depthwise]") {
  uint32_t seed = 1;
  for (const Config& c : configs()) {
    INFO(describe(c));
    auto compiled = k::function(
        [c](const k::Tensor& x, const k::Tensor& w) {
          return k::depthwise_conv2d(x, w, {c.stride_h, c.stride_w}, c.padding,
                                     {c.dilation, c.dilation});
        },
        "depthwise");
    std::vector<double> x = random_values(size_t(x_shape(c).num_elements()), seed++);
    std::vector<double> w = random_values(size_t(w_shape(c).num_elements()), seed++);
    int64_t oh = 0, ow = 0;
    std::vector<double> want = reference(x, w, c, oh, ow);
    k::Tensor tx = k::constant(x, x_shape(c)), tw = k::constant(w, w_shape(c));
    k::Tensor eager =
        k::depthwise_conv2d(tx, tw, {c.stride_h, c.stride_w}, c.padding, {c.dilation, c.dilation});
    REQUIRE(eager.shape() == k::Shape{c.batch, oh, ow, c.channels * c.multiplier});
    k::Tensor traced = compiled(tx, tw);
    REQUIRE(traced.shape() == eager.shape());
    std::vector<double> got = eager.to_vector<double>(), got_compiled = traced.to_vector<double>();
    for (size_t i = 0; i < want.size(); ++i) {
      INFO("element " << i);
      CHECK(got[i] == Approx(want[i]).margin(1e-12));
      CHECK(got_compiled[i] == Approx(want[i]).margin(1e-12));
    }
  }
}

TEST_CASE("depthwise_conv2d gradients match finite differences in f64", "[depthwise][gradients]") {
  uint32_t seed = 100;
  for (const Config& c : configs()) {
    INFO(describe(c));
    std::vector<double> x = random_values(size_t(x_shape(c).num_elements()), seed++);
    std::vector<double> w = random_values(size_t(w_shape(c).num_elements()), seed++);
    check_gradients(
        [&](const std::vector<k::Tensor>& in) {
          return k::depthwise_conv2d(in[0], in[1], {c.stride_h, c.stride_w}, c.padding,
                                     {c.dilation, c.dilation});
        },
        {x, w}, {x_shape(c), w_shape(c)});
  }
}

TEST_CASE("depthwise_conv2d's compiled gradient matches the eager one", "[depthwise][gradients]") {
  uint32_t seed = 200;
  // Strided "same", strided "valid" with a multiplier, dilated: each compile takes a while.
  for (size_t index : {2, 5, 7}) {
    const Config& c = configs()[index];
    INFO(describe(c));
    k::Tensor x = k::constant(random_values(size_t(x_shape(c).num_elements()), seed++), x_shape(c));
    k::Tensor w = k::constant(random_values(size_t(w_shape(c).num_elements()), seed++), w_shape(c));
    int64_t oh = 0, ow = 0;
    reference(std::vector<double>(size_t(x_shape(c).num_elements())),
              std::vector<double>(size_t(w_shape(c).num_elements())), c, oh, ow);
    k::Shape ys{c.batch, oh, ow, c.channels * c.multiplier};
    k::Tensor r = k::constant(random_values(size_t(ys.num_elements()), 7), ys);
    auto loss = [c, r](const k::Tensor& a, const k::Tensor& b) {
      return k::reduce_sum(
          k::depthwise_conv2d(a, b, {c.stride_h, c.stride_w}, c.padding, {c.dilation, c.dilation}) *
          r);
    };
    std::vector<k::Tensor> eager = k::grad(loss, {0, 1})(x, w);
    auto compiled = k::function(
        [loss](const k::Tensor& a, const k::Tensor& b) {
          return k::grad(loss, {0, 1})(a, b);
        },
        "depthwise_grad");
    std::vector<k::Tensor> traced = compiled(x, w);
    REQUIRE(traced.size() == 2);
    for (size_t i = 0; i < 2; ++i) {
      std::vector<double> want = eager[i].to_vector<double>(), got = traced[i].to_vector<double>();
      REQUIRE(got.size() == want.size());
      for (size_t j = 0; j < want.size(); ++j) {
        INFO("gradient " << i << " element " << j);
        CHECK(got[j] == Approx(want[j]).margin(1e-12));
      }
    }
  }
}

TEST_CASE("DepthwiseConv2D has Keras's weights and computes bias and activation",
          "[depthwise][layers]") {
  k::clear_session();
  L::DepthwiseConv2D layer(3, {.strides = 2,
                               .padding = "same",
                               .depth_multiplier = 2,
                               .activation = "relu",
                               .bias_initializer = "ones"});
  CHECK(layer.name() == "depthwise_conv2d");
  CHECK(layer.class_name() == "DepthwiseConv2D");
  const Config c{2, 7, 6, 3, 3, 3, 2, 2, 2, "same"};
  std::vector<double> x = random_values(size_t(x_shape(c).num_elements()), 31);
  k::Tensor tx = k::cast(k::constant(x, x_shape(c)), k::f32);
  k::Tensor y = layer(tx);
  REQUIRE(layer.weights().size() == 2);
  CHECK(layer.weights()[0].name() == "depthwise_conv2d/depthwise_kernel");
  CHECK(layer.weights()[0].shape() == k::Shape{3, 3, 3, 2});
  CHECK(layer.weights()[1].name() == "depthwise_conv2d/bias");
  CHECK(layer.weights()[1].shape() == k::Shape{6});
  CHECK(layer.count_params() == 3 * 3 * 3 * 2 + 6);
  CHECK(y.shape() == k::Shape{2, 4, 3, 6});

  std::vector<double> w = random_values(54, 32);
  layer.depthwise_kernel().assign(k::cast(k::constant(w, w_shape(c)), k::f32));
  std::vector<double> b = {0.5, -0.25, 0.0, 1.0, -1.0, 0.125};
  layer.bias().assign(k::constant(std::vector<float>(b.begin(), b.end()), k::Shape{6}));
  int64_t oh = 0, ow = 0;
  std::vector<double> want = reference(x, w, c, oh, ow);
  for (size_t i = 0; i < want.size(); ++i)
    want[i] = std::max(0.0, want[i] + b[i % 6]);
  auto run = k::function([&layer](const k::Tensor& in) { return layer(in); }, "layer");
  std::vector<float> eager = layer(tx).to_vector<float>(), compiled = run(tx).to_vector<float>();
  REQUIRE(eager.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("element " << i);
    CHECK(eager[i] == Approx(want[i]).margin(1e-5));
    CHECK(compiled[i] == Approx(want[i]).margin(1e-5));
  }

  L::DepthwiseConv2D plain({1, 2}, {.use_bias = false});
  CHECK(plain.name() == "depthwise_conv2d_1");
  CHECK(plain(tx).shape() == k::Shape{2, 7, 5, 3});
  CHECK(plain.weights().size() == 1);
  CHECK_FALSE(plain.bias().defined());
}

TEST_CASE("DepthwiseConv2D trains inside a compiled Sequential", "[depthwise][layers]") {
  k::set_random_seed(5);
  k::Sequential model({
      L::DepthwiseConv2D(3, {.padding = "same", .depth_multiplier = 2, .input_shape = {6, 6, 2}}),
      L::ReLU(6.0),
      L::GlobalAveragePooling2D(),
      L::Dense(1),
  });
  model.compile("sgd", "mse");
  CHECK(model.count_params() == (3 * 3 * 2 * 2 + 4) + (4 + 1));
  k::Tensor x =
      k::cast(k::constant(random_values(8 * 6 * 6 * 2, 41), k::Shape{8, 6, 6, 2}), k::f32);
  k::Tensor y = k::cast(k::constant(random_values(8, 42), k::Shape{8, 1}), k::f32);
  std::vector<float> before = model.layers()[0]->weights()[0].value().to_vector<float>();
  k::History history = model.fit(x, y, {.epochs = 3, .batch_size = 4, .verbose = 0});
  std::vector<float> after = model.layers()[0]->weights()[0].value().to_vector<float>();
  CHECK(before != after);
  std::vector<double> losses = history.history.at("loss");
  REQUIRE(losses.size() == 3);
  for (double l : losses)
    CHECK(std::isfinite(l));
}

TEST_CASE("depthwise_conv2d and DepthwiseConv2D refuse bad arguments", "[depthwise][errors]") {
  k::Tensor x = k::zeros({1, 5, 5, 2});
  k::Tensor w = k::zeros({3, 3, 2, 1});
  CHECK_THAT(error_of<k::ShapeError>([&] {
               k::depthwise_conv2d(k::zeros({5, 5, 2}), w);
             }),
             Contains("rank 4"));
  CHECK_THAT(error_of<k::ShapeError>([&] {
               k::depthwise_conv2d(x, k::zeros({3, 3, 3, 1}));
             }),
             Contains("[kh, kw, 2, multiplier]"));
  CHECK_THAT(error_of<k::ShapeError>([&] {
               k::depthwise_conv2d(x, k::zeros({3, 3, 2}));
             }),
             Contains("got filter of shape"));
  CHECK_THAT(error_of<k::ShapeError>([&] {
               k::depthwise_conv2d(x, k::zeros({6, 3, 2, 1}));
             }),
             Contains("padding is \"valid\""));
  CHECK_THAT(error_of<k::ShapeError>([&] {
               k::depthwise_conv2d(x, w, {1, 1}, "valid", {3, 3});
             }),  // spans 7
             Contains("spans 7"));
  CHECK_THAT(error_of<k::ValueError>([&] {
               k::depthwise_conv2d(x, w, {1, 1}, "full");
             }),
             Contains("\"valid\" or \"same\""));
  CHECK_THAT(error_of<k::ValueError>([&] {
               k::depthwise_conv2d(x, w, {0, 1});
             }),
             Contains("strides"));
  CHECK_THAT(error_of<k::ValueError>([&] {
               k::depthwise_conv2d(x, w, {1, 1, 1});
             }),
             Contains("one or two positive values"));
  CHECK_THAT(error_of<k::ValueError>([&] {
               k::depthwise_conv2d(x, w, {2, 2}, "same", {2, 2});
             }),
             Contains("cannot be combined"));
  CHECK_THAT(error_of<k::TypeError>([&] { k::depthwise_conv2d(x, k::cast(w, k::f64)); }),
             Contains("same dtype"));
  CHECK_THAT(
      error_of<k::TypeError>([&] { k::depthwise_conv2d(k::cast(x, k::i32), k::cast(w, k::i32)); }),
      Contains("floating"));

  CHECK_THAT(error_of<k::ValueError>([] { L::DepthwiseConv2D(0); }), Contains("kernel_size"));
  CHECK_THAT(error_of<k::ValueError>([] {
               L::DepthwiseConv2D({3, 3, 3});
             }),
             Contains("kernel_size"));
  CHECK_THAT(error_of<k::ValueError>([] { L::DepthwiseConv2D(3, {.strides = -1}); }),
             Contains("strides"));
  CHECK_THAT(error_of<k::ValueError>([] { L::DepthwiseConv2D(3, {.padding = "causal"}); }),
             Contains("\"valid\" or \"same\""));
  CHECK_THAT(error_of<k::ValueError>([] { L::DepthwiseConv2D(3, {.depth_multiplier = 0}); }),
             Contains("depth_multiplier must be positive"));
  CHECK_THAT(
      error_of<k::ValueError>([] { L::DepthwiseConv2D(3, {.strides = 2, .dilation_rate = 2}); }),
      Contains("cannot be combined"));
  CHECK_THAT(error_of<k::ValueError>([] { L::DepthwiseConv2D(3, {.activation = "swishy"}); }),
             Contains("swishy"));
  CHECK_THAT(error_of<k::ValueError>([] { L::DepthwiseConv2D(3, {.depthwise_initializer = "x"}); }),
             Contains("unknown initializer 'x'"));

  L::DepthwiseConv2D layer(3);
  CHECK_THAT(error_of<k::ShapeError>([&] { layer(k::zeros({5, 5, 2})); }), Contains("rank 4"));
  layer(x);
  CHECK_THAT(error_of<k::ShapeError>([&] {
               layer(k::zeros({1, 5, 5, 3}));
             }),
             Contains("built for NHWC inputs with 2 channels"));
  CHECK_THAT(error_of<k::ShapeError>([&] {
               layer(k::zeros({1, 2, 5, 2}));
             }),
             Contains("padding is \"valid\""));
}

TEST_CASE("ReLU computes Keras's relu with max_value, negative_slope and threshold",
          "[relu][layers]") {
  k::clear_session();
  k::Tensor x = k::constant({-3.f, -1.5f, -0.5f, 0.f, 0.5f, 1.f, 2.f, 5.f, 6.f, 7.f});
  auto values = [&](L::ReLU layer) { return layer(x).to_vector<float>(); };
  L::ReLU plain;
  CHECK(plain.name() == "re_lu");
  CHECK(plain.class_name() == "ReLU");
  CHECK(values(plain) == std::vector<float>{0, 0, 0, 0, 0.5f, 1, 2, 5, 6, 7});
  CHECK(values(L::ReLU(6.0)) == std::vector<float>{0, 0, 0, 0, 0.5f, 1, 2, 5, 6, 6});
  // negative_slope · x below zero (leaky), capped above.
  std::vector<float> leaky = values(L::ReLU(5.5, 0.5));
  std::vector<float> want_leaky{-1.5f, -0.75f, -0.25f, 0, 0.5f, 1, 2, 5, 5.5f, 5.5f};
  for (size_t i = 0; i < want_leaky.size(); ++i)
    CHECK(leaky[i] == Approx(want_leaky[i]));
  // x above the threshold passes; below it, negative_slope · (x − threshold).
  std::vector<float> thresholded = values(L::ReLU(std::nullopt, 0.25, 1.0));
  std::vector<float> want_thresholded{-1.f, -0.625f, -0.375f, -0.25f, -0.125f, 0, 2, 5, 6, 7};
  for (size_t i = 0; i < want_thresholded.size(); ++i)
    CHECK(thresholded[i] == Approx(want_thresholded[i]));
  // Keras's corner: a negative threshold with a max_value clips at 0 from below, so values
  // between the threshold and 0 become 0 (Keras's activations.relu does the same).
  CHECK(values(L::ReLU(2.0, 0.0, -1.0)) == std::vector<float>{0, 0, 0, 0, 0.5f, 1, 2, 2, 2, 2});
  CHECK(values(L::ReLU(std::nullopt, 0.0, -1.0)) ==
        std::vector<float>{0, 0, -0.5f, 0, 0.5f, 1, 2, 5, 6, 7});

  // relu6 compiled and differentiated: slope 1 strictly inside (0, 6), 0 outside.
  L::ReLU relu6(6.0);
  k::Tensor points = k::constant({-1.f, 0.5f, 3.f, 7.f});
  auto loss = [&relu6](const k::Tensor& t) { return k::reduce_sum(relu6(t)); };
  CHECK(k::grad(loss)(points).to_vector<float>() == std::vector<float>{0, 1, 1, 0});
  auto compiled = k::function([&relu6](const k::Tensor& t) { return relu6(t); }, "relu6");
  CHECK(compiled(x).to_vector<float>() == std::vector<float>{0, 0, 0, 0, 0.5f, 1, 2, 5, 6, 6});

  CHECK_THAT(error_of<k::ValueError>([] { L::ReLU(-1.0); }),
             Contains("max_value cannot be negative"));
  CHECK_THAT(error_of<k::ValueError>([] { L::ReLU(std::nullopt, -0.1); }),
             Contains("negative_slope cannot be negative"));
  CHECK_THAT(error_of<k::ValueError>([] { L::ReLU(std::nullopt, 0.0, NAN); }),
             Contains("threshold"));
}
