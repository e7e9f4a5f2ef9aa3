// Issue 15's contract, as written there: the functional API, InceptionV3 with a Keras weight
// file, frozen layers and a new head, the Conv1D + LSTM forecaster and the augmentation model.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace k = kiln;
namespace L = kiln::layers;
using Catch::Contains;

TEST_CASE("issue 15's contract compiles and behaves", "[contract]") {
  k::KerasTensor in = k::Input({28, 28, 1});  // batch dimension implicit, like keras.Input
  k::KerasTensor a = L::Conv2D(32, 3, {.padding = "same", .activation = "relu"})(in);
  k::KerasTensor b = L::Conv2D(32, 1, {.activation = "relu"})(in);
  k::KerasTensor c = L::Concatenate()({a, b});  // also Add, Multiply, Average, Subtract
  k::KerasTensor out = L::Dense(10, "softmax")(L::GlobalAveragePooling2D()(c));
  k::Model model(in, out);  // multiple inputs/outputs: vectors
  model.summary();          // with Keras's "Connected to" column
  CHECK(out.shape() == k::Shape{k::None, 10});
  CHECK_THAT(model.summary_text(), Contains("Connected to") && Contains("(None, 28, 28, 64)"));
  k::Tensor images = k::random_uniform({4, 28, 28, 1}, 0.0, 1.0, 1);
  k::Tensor probs = model.predict(images);
  CHECK(probs.shape() == k::Shape{4, 10});
  CHECK(k::reduce_max(k::abs(k::reduce_sum(probs, {1}) - 1.f)).item<float>() < 1e-5f);

  // (The tutorial's 150×150 base; its weights come from a Keras HDF5 file, written here from a
  // model of the same architecture since none can be downloaded.)
  const std::string weights = "issue15_contract_inception.h5";
  // Weights the test knows, by (layer index, weight index): the first conv kernel, the first
  // BatchNormalization's moving_mean, and the last conv kernel and BatchNormalization
  // moving_variance (in mixed10) set to values no initializer gives; the conv kernel halfway
  // through keeps the donor's own draw.
  std::vector<std::pair<size_t, size_t>> known;
  std::vector<std::vector<float>> written;
  {
    auto donor = k::applications::InceptionV3({.input_shape = {75, 75, 3}, .include_top = false});
    const auto& layers = donor.layers();
    std::vector<size_t> convs, bns;
    for (size_t l = 0; l < layers.size(); ++l) {
      if (layers[l]->class_name() == "Conv2D") convs.push_back(l);
      if (layers[l]->class_name() == "BatchNormalization") bns.push_back(l);
    }
    REQUIRE(convs.size() == 94);
    REQUIRE(bns.size() == 94);
    // Keras's InceptionV3 BatchNormalization has scale=False: beta, moving_mean,
    // moving_variance.
    REQUIRE(layers[bns.front()]->weights().size() == 3);
    known = {{convs.front(), 0}, {bns.front(), 1}, {convs.back(), 0}, {bns.back(), 2}};
    for (size_t i = 0; i < known.size(); ++i) {
      k::Variable v = layers[known[i].first]->weights()[known[i].second];
      v.assign(k::random_uniform(v.shape(), 1.0, 2.0, 40 + i));
    }
    known.emplace_back(convs[convs.size() / 2], 0);
    for (const auto& [l, w] : known)
      written.push_back(layers[l]->weights()[w].value().to_vector<float>());
    donor.save_weights(weights);
  }
  auto base = k::applications::InceptionV3({.input_shape = {150, 150, 3}, .include_top = false});
  for (size_t i = 0; i < known.size(); ++i)  // a fresh model holds other values
    CHECK(base.layers()[known[i].first]->weights()[known[i].second].value().to_vector<float>() !=
          written[i]);
  base.load_weights(weights);  // a Keras HDF5 weights file
  std::filesystem::remove(weights);
  for (size_t i = 0; i < known.size(); ++i) {
    k::Variable v = base.layers()[known[i].first]->weights()[known[i].second];
    INFO(v.name());
    CHECK(v.value().to_vector<float>() == written[i]);
  }
  CHECK(base.layers()[known[1].first]->weights()[1].name().ends_with("moving_mean"));
  CHECK(base.layers()[known[3].first]->weights()[2].name().ends_with("moving_variance"));
  for (auto& layer : base.layers())
    layer->trainable = false;
  k::KerasTensor last = base.get_layer("mixed7").output();
  k::KerasTensor x =
      L::Dense(1, "sigmoid")(L::Dropout(0.2)(L::Dense(1024, "relu")(L::Flatten()(last))));
  k::Model tl(base.input(), x);
  CHECK(last.shape() == k::Shape{k::None, 7, 7, 768});
  CHECK(tl.count_params() == 47512481);
  CHECK(tl.trainable_weights().size() == 4);  // the new head only

  k::Sequential series(
      {L::Conv1D(
           32, 5,
           {.strides = 1, .padding = "causal", .activation = "relu", .input_shape = {k::None, 1}}),
       L::LSTM(64, {.return_sequences = true}), L::LSTM(64, {.return_sequences = true}),
       L::Dense(30, "relu"), L::Dense(10, "relu"), L::Dense(1),
       L::Lambda([](const k::Tensor& t) { return t * 400.f; })});
  k::Sequential augment({L::RandomFlip("horizontal_and_vertical"), L::RandomRotation(0.2)});

  // The forecaster takes sequences of any length and keeps it.
  for (int64_t length : {7, 12}) {
    k::Tensor seq = k::random_normal({2, length, 1}, 0.0, 1.0, length);
    CHECK(series(seq).shape() == k::Shape{2, length, 1});
  }
  CHECK(series.count_params() == (5 * 1 * 32 + 32) + 4 * (32 * 64 + 64 * 64 + 64) +
                                     4 * (64 * 64 + 64 * 64 + 64) + (64 * 30 + 30) +
                                     (30 * 10 + 10) + (10 + 1));
  // Augmentation is the identity outside training and moves pixels in training.
  k::Tensor batch = k::random_uniform({3, 16, 16, 3}, 0.0, 1.0, 2);
  CHECK(k::reduce_max(k::abs(augment(batch) - batch)).item<float>() == 0.f);
  CHECK(k::reduce_max(k::abs(augment(batch, true) - batch)).item<float>() > 0.f);
}

TEST_CASE("issue 15's forecaster trains with fit at one length and predicts at another",
          "[contract]") {
  k::Sequential series(
      {L::Conv1D(
           8, 5,
           {.strides = 1, .padding = "causal", .activation = "relu", .input_shape = {k::None, 1}}),
       L::LSTM(16, {.return_sequences = true}), L::LSTM(16, {.return_sequences = true}),
       L::Dense(8, "relu"), L::Dense(1), L::Lambda([](const k::Tensor& t) { return t * 4.f; })});
  k::Tensor t = k::reshape(k::cast(k::range(0, 64 * 10), k::f32), {64, 10, 1});
  k::Tensor x = k::sin(t * 0.3f), y = k::sin((t + 1.f) * 0.3f);
  series.compile("adam", "mse", {"mae"});
  k::History h = series.fit(x, y, {.epochs = 5, .batch_size = 16, .verbose = 0});
  CHECK(h.history["loss"].back() < h.history["loss"].front());
  CHECK(h.history.count("mae") == 1);
  CHECK(series.predict(k::ones({3, 25, 1})).shape() == k::Shape{3, 25, 1});
}

namespace {

// The host reference for Sequential({Dense(units), Lambda(f)}): params are the kernel
// ([in, units], row-major) then the bias; `f` maps one row of the Dense's output.
using RowFn = std::function<std::vector<double>(const std::vector<double>&)>;

std::vector<double> dense_lambda_host(const std::vector<double>& params,
                                      const std::vector<float>& x, int64_t n, int64_t in,
                                      int64_t units, const RowFn& f) {
  std::vector<double> out;
  for (int64_t s = 0; s < n; ++s) {
    std::vector<double> z(static_cast<size_t>(units));
    for (int64_t u = 0; u < units; ++u) {
      double acc = params[static_cast<size_t>(in * units + u)];
      for (int64_t i = 0; i < in; ++i)
        acc +=
            double(x[static_cast<size_t>(s * in + i)]) * params[static_cast<size_t>(i * units + u)];
      z[static_cast<size_t>(u)] = acc;
    }
    std::vector<double> row = f(z);
    out.insert(out.end(), row.begin(), row.end());
  }
  return out;
}

double mse_host(const std::vector<double>& pred, const std::vector<float>& y) {
  double sum = 0;
  for (size_t i = 0; i < pred.size(); ++i)
    sum += (pred[i] - y[i]) * (pred[i] - y[i]);
  return sum / double(pred.size());
}

void check_near(const std::vector<float>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i);
    CHECK(double(got[i]) == Approx(want[i]).epsilon(1e-5).margin(1e-4));
  }
}

}  // namespace

TEST_CASE("a Lambda in a Sequential computes f(x) eagerly, in predict and in fit's step",
          "[contract][lambda]") {
  struct Case {
    const char* what;
    std::function<k::Tensor(const k::Tensor&)> fn;
    RowFn host;
  };
  const std::vector<Case> cases = {
      {"t * 400", [](const k::Tensor& t) { return t * 400.f; },
       [](const std::vector<double>& z) {
         std::vector<double> out;
         for (double v : z)
           out.push_back(v * 400);
         return out;
       }},
      // Elementwise ops, a broadcast constant and a reduction over the row: a Jacobian that is
      // not diagonal, so fit's gradient goes through every op.
      {"2 tanh(t) + t^2 - mean(t)",
       [](const k::Tensor& t) {
         return k::tanh(t) * 2.f + k::square(t) - k::reduce_mean(t, {1}, true);
       },
       [](const std::vector<double>& z) {
         double mean = 0;
         for (double v : z)
           mean += v / double(z.size());
         std::vector<double> out;
         for (double v : z)
           out.push_back(2 * std::tanh(v) + v * v - mean);
         return out;
       }},
  };
  const int64_t n = 5, in = 4, units = 3;
  for (const Case& c : cases) {
    INFO(c.what);
    k::Sequential model({L::Dense(units, "", k::Shape{in}), L::Lambda(c.fn)});
    model.build(k::Shape{in});
    k::Tensor x = k::random_normal({n, in}, 0.0, 1.0, 31);
    k::Tensor y = k::random_normal({n, units}, 0.0, 1.0, 32);
    std::vector<float> xs = x.to_vector<float>(), ys = y.to_vector<float>();
    auto params_of = [&] {
      std::vector<double> p;
      for (const k::Variable& v : model.layers()[0]->weights())
        for (float f : v.value().to_vector<float>())
          p.push_back(f);
      return p;
    };
    std::vector<double> p0 = params_of();
    REQUIRE(p0.size() == size_t(in * units + units));
    std::vector<double> want = dense_lambda_host(p0, xs, n, in, units, c.host);
    check_near(model(x).to_vector<float>(), want);          // eager
    check_near(model.predict(x).to_vector<float>(), want);  // compiled

    // One full-batch SGD step: the reported loss is the host's at the old weights, and every
    // weight moves by −lr · the host's gradient (central differences of the host's loss).
    auto loss_at = [&](const std::vector<double>& p) {
      return mse_host(dense_lambda_host(p, xs, n, in, units, c.host), ys);
    };
    std::vector<double> grad;
    double largest = 0;
    for (size_t i = 0; i < p0.size(); ++i) {
      const double h = 1e-4;
      std::vector<double> up = p0, down = p0;
      up[i] += h;
      down[i] -= h;
      grad.push_back((loss_at(up) - loss_at(down)) / (2 * h));
      largest = std::max(largest, std::abs(grad.back()));
    }
    const double lr = 0.05 / largest;  // the largest step is 0.05
    model.compile(k::optimizers::SGD(lr), "mse");
    k::History h = model.fit(x, y, {.epochs = 1, .batch_size = n, .shuffle = false, .verbose = 0});
    REQUIRE(h.history["loss"].size() == 1);
    CHECK(h.history["loss"][0] == Approx(loss_at(p0)).epsilon(1e-4));
    std::vector<double> p1 = params_of();
    for (size_t i = 0; i < p0.size(); ++i) {
      INFO("param " << i);
      CHECK(p1[i] - p0[i] == Approx(-lr * grad[i]).epsilon(1e-3).margin(1e-5));
    }
    check_near(model.predict(x).to_vector<float>(),
               dense_lambda_host(p1, xs, n, in, units, c.host));
  }
}
