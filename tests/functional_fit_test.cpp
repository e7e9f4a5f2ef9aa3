// compile / fit / evaluate / predict on functional models of several inputs and outputs: Keras's
// lists of inputs and labels, one loss per output (or one for all), loss weights, per-output
// metrics and their names in History.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <cmath>
#include <vector>

#include "error_test_util.h"

namespace k = kiln;
namespace L = kiln::layers;
using Catch::Contains;

// Checks that `expr` throws a `type` whose message contains `text`.
#define CHECK_ERROR(expr, type, text) \
  CHECK_THAT(k::testing::error_of<type>([&] { (void)(expr); }), Contains(text))

namespace {

constexpr int64_t kSamples = 96;

// Two inputs (4 and 3 features) joined by a Concatenate, a shared trunk, and two heads: "value"
// (a regression) and "kind" (3 classes).
struct TwoByTwo {
  k::KerasTensor a = k::Input({4}, k::f32, "a");
  k::KerasTensor b = k::Input({3}, k::f32, "b");
  L::Dense trunk{8, "tanh", std::nullopt, true, "glorot_uniform", "zeros", "trunk"};
  L::Dense value{1, "linear", std::nullopt, true, "glorot_uniform", "zeros", "value"};
  L::Dense kind{3, "softmax", std::nullopt, true, "glorot_uniform", "zeros", "kind"};
  k::Model model;

  TwoByTwo() : model(build()) {}
  k::Model build() {
    k::KerasTensor h = trunk(L::Concatenate()({a, b}));
    return k::Model({a, b}, {value(h), kind(h)}, "two_by_two");
  }
};

struct Data {
  k::Tensor xa = k::random_normal({kSamples, 4}, 0.0, 1.0, 11);
  k::Tensor xb = k::random_normal({kSamples, 3}, 0.0, 1.0, 12);
  k::Tensor y_value, y_kind;
  Data() {
    // value = a0 + 2 b1; kind = which of a1, a2, b0 is largest.
    std::vector<float> a = xa.to_vector<float>(), b = xb.to_vector<float>(), v;
    std::vector<int32_t> c;
    for (int64_t i = 0; i < kSamples; ++i) {
      v.push_back(a[size_t(i * 4)] + 2 * b[size_t(i * 3 + 1)]);
      float s[3] = {a[size_t(i * 4 + 1)], a[size_t(i * 4 + 2)], b[size_t(i * 3)]};
      c.push_back(int32_t(std::max_element(s, s + 3) - s));
    }
    y_value = k::constant(v, k::Shape{kSamples, 1}, k::f32);
    y_kind = k::constant(c, k::Shape{kSamples}, k::i32);
  }
};

std::vector<float> values(const k::Tensor& t) {
  return k::cast(t, k::f32).to_vector<float>();
}

}  // namespace

TEST_CASE("a model of two inputs and two outputs trains with a loss and metrics per output",
          "[functional][fit]") {
  TwoByTwo net;
  Data d;
  net.model.compile("adam", {"mse", "sparse_categorical_crossentropy"}, {{"mae"}, {"accuracy"}},
                    {1.0, 0.5});
  k::History h =
      net.model.fit({d.xa, d.xb}, {d.y_value, d.y_kind},
                    {.epochs = 8, .batch_size = 16, .validation_split = 0.25, .verbose = 0});
  for (const char* key :
       {"loss", "value_loss", "kind_loss", "value_mae", "kind_accuracy", "val_loss",
        "val_value_loss", "val_kind_loss", "val_value_mae", "val_kind_accuracy"}) {
    INFO(key);
    REQUIRE(h.history.count(key) == 1);
    CHECK(h.history.at(key).size() == 8);
  }
  CHECK(h.history.size() == 10);
  CHECK(h.history.at("loss").back() < h.history.at("loss").front());
  CHECK(h.history.at("val_value_loss").back() < h.history.at("val_value_loss").front());
  // The total is the weighted sum of the outputs' losses (means of means over the same samples).
  for (size_t e = 0; e < 8; ++e) {
    double total = h.history.at("val_value_loss")[e] + 0.5 * h.history.at("val_kind_loss")[e];
    CHECK(h.history.at("val_loss")[e] == Approx(total).epsilon(1e-5));
  }

  // evaluate: {loss, value_loss, kind_loss, value_mae, kind_accuracy}, checked by hand on the
  // outputs of predict.
  std::vector<float> scores = net.model.evaluate({d.xa, d.xb}, {d.y_value, d.y_kind}, kSamples);
  REQUIRE(scores.size() == 5);
  std::vector<k::Tensor> preds = net.model.predict({d.xa, d.xb});
  REQUIRE(preds.size() == 2);
  CHECK(preds[0].shape() == k::Shape{kSamples, 1});
  CHECK(preds[1].shape() == k::Shape{kSamples, 3});
  std::vector<float> pv = values(preds[0]), pk = values(preds[1]), yv = values(d.y_value),
                     yk = values(d.y_kind);
  double mse = 0, mae = 0, ce = 0, hits = 0;
  for (int64_t i = 0; i < kSamples; ++i) {
    double err = double(pv[size_t(i)]) - yv[size_t(i)];
    mse += err * err / kSamples;
    mae += std::abs(err) / kSamples;
    const float* p = &pk[size_t(i * 3)];
    auto label = size_t(yk[size_t(i)]);
    ce -= std::log(double(p[label])) / kSamples;
    hits += (std::max_element(p, p + 3) - p == std::ptrdiff_t(label)) ? 1 : 0;
  }
  CHECK(scores[1] == Approx(mse).epsilon(1e-4));
  CHECK(scores[2] == Approx(ce).epsilon(1e-4));
  CHECK(scores[0] == Approx(mse + 0.5 * ce).epsilon(1e-4));
  CHECK(scores[3] == Approx(mae).epsilon(1e-4));
  CHECK(scores[4] == Approx(hits / kSamples).epsilon(1e-6));
}

TEST_CASE("an output of loss weight 0 gets no gradient", "[functional][fit]") {
  TwoByTwo net;
  Data d;
  net.model.compile(k::optimizers::SGD(0.1), {"mse", "sparse_categorical_crossentropy"}, {},
                    {1.0, 0.0});
  net.model.predict({d.xa, d.xb});  // builds the layers
  std::vector<float> kind_before = values(net.kind.weights()[0].value());
  std::vector<float> value_before = values(net.value.weights()[0].value());
  net.model.fit({d.xa, d.xb}, {d.y_value, d.y_kind}, {.epochs = 1, .batch_size = 32, .verbose = 0});
  CHECK(values(net.kind.weights()[0].value()) == kind_before);
  CHECK(values(net.value.weights()[0].value()) != value_before);
}

TEST_CASE("one fit step on two outputs equals a GradientTape step on the weighted loss",
          "[functional][fit]") {
  TwoByTwo net, twin;
  Data d;
  net.model.predict({d.xa, d.xb});
  twin.model.predict({d.xa, d.xb});
  for (size_t i = 0; i < net.model.weights().size(); ++i)
    twin.model.weights()[i].assign(net.model.weights()[i].value());

  net.model.compile(k::optimizers::SGD(0.05), {"mse", "sparse_categorical_crossentropy"}, {},
                    {2.0, 0.25});
  net.model.fit({d.xa, d.xb}, {d.y_value, d.y_kind},
                {.epochs = 1, .batch_size = kSamples, .shuffle = false, .verbose = 0});

  k::losses::MeanSquaredError mse;
  k::losses::SparseCategoricalCrossentropy ce;
  std::vector<k::Variable> vars = twin.model.trainable_weights();
  k::GradientTape tape;
  std::vector<k::Tensor> out = twin.model({d.xa, d.xb}, /*training=*/true);
  k::Tensor loss = mse(d.y_value, out[0]) * 2.f + ce(d.y_kind, out[1]) * 0.25f;
  std::vector<k::Tensor> grads = tape.gradient(loss, std::span<const k::Variable>(vars));
  for (size_t i = 0; i < vars.size(); ++i) {
    std::vector<float> want = values(vars[i].value() - grads[i] * 0.05f);
    std::vector<float> got = values(net.model.trainable_weights()[i].value());
    REQUIRE(got.size() == want.size());
    for (size_t j = 0; j < got.size(); ++j) {
      INFO(vars[i].name() << "[" << j << "]");
      CHECK(got[j] == Approx(want[j]).margin(1e-5));
    }
  }
}

TEST_CASE("one loss and one list of metrics serve every output, named per output",
          "[functional][fit]") {
  k::KerasTensor in = k::Input({2});
  L::Dense left(1, "linear", std::nullopt, true, "glorot_uniform", "zeros", "left");
  L::Dense right(1, "linear", std::nullopt, true, "glorot_uniform", "zeros", "right");
  k::Model model({in}, {left(in), right(in)}, "fork");
  model.compile("sgd", "mse", {"mae"});
  k::Tensor x = k::random_normal({20, 2}, 0.0, 1.0, 3);
  k::Tensor y1 = k::random_normal({20, 1}, 0.0, 1.0, 4),
            y2 = k::random_normal({20, 1}, 0.0, 1.0, 5);
  k::History h = model.fit({x}, {y1, y2}, {.epochs = 2, .verbose = 0});
  for (const char* key : {"loss", "left_loss", "right_loss", "left_mae", "right_mae"})
    CHECK(h.history.count(key) == 1);
  CHECK(h.history.size() == 5);
  // A dataset yields the inputs, then the labels.
  k::data::Dataset ds = k::data::Dataset::from_tensor_slices({x, y1, y2}).batch(8);
  k::History hd = model.fit(ds, {.epochs = 1, .verbose = 0});
  CHECK(hd.history.count("right_mae") == 1);
  std::vector<float> by_dataset = model.evaluate(ds);
  std::vector<float> by_tensors = model.evaluate({x}, {y1, y2}, 8);
  REQUIRE(by_dataset.size() == 5);
  for (size_t i = 0; i < 5; ++i)
    CHECK(by_dataset[i] == Approx(by_tensors[i]).epsilon(1e-5));
  // The single-tensor forms take one output's labels: here, a clear error.
  CHECK_ERROR(model.evaluate(x, y1), k::ValueError, ("2 outputs"));
  CHECK_ERROR(model.predict(x), k::ValueError, ("call predict on a list of inputs"));
  std::vector<k::Tensor> both = model.predict(std::vector<k::Tensor>{x});
  CHECK(both.size() == 2);
}

TEST_CASE("fit, evaluate and predict of a model of several inputs or outputs check what they get",
          "[functional][fit][errors]") {
  TwoByTwo net;
  Data d;
  net.model.compile("adam", {"mse", "sparse_categorical_crossentropy"});
  k::Tensor ya = d.y_value, yk = d.y_kind;
  CHECK_ERROR(net.model.fit({d.xa}, {ya, yk}), k::ValueError,
              ("the model has 2 inputs and 2 outputs"));
  CHECK_ERROR(net.model.fit({d.xa, d.xb}, {ya}), k::ValueError, ("got 1)"));
  k::Tensor short_b = k::random_normal({10, 3}, 0.0, 1.0, 1);
  CHECK_ERROR(net.model.evaluate({d.xa, short_b}, {ya, yk}), k::ValueError, ("x[1] has 10"));
  k::Tensor wide_b = k::random_normal({kSamples, 5}, 0.0, 1.0, 1);
  CHECK_ERROR(net.model.fit({d.xa, wide_b}, {ya, yk}), k::ShapeError, ("'b'"));
  CHECK_ERROR(net.model.predict(d.xa), k::ValueError, ("takes 2 inputs"));
  k::Tensor bad_labels = k::constant(std::vector<int32_t>(kSamples, 7), k::Shape{kSamples}, k::i32);
  CHECK_ERROR(net.model.fit({d.xa, d.xb}, {ya, bad_labels}), k::IndexError, ("label 7"));
  CHECK_ERROR(net.model.compile("adam", {"mse", "mse", "mse"}), k::ValueError,
              ("one loss for all of them or one per output, got 3"));
  CHECK_ERROR(net.model.compile("adam", {"mse", "mse"}, {}, {1.0, 2.0, 3.0}), k::ValueError,
              ("loss weight"));
  CHECK_ERROR(net.model.compile("adam", {"mse", "mse"}, {}, {1.0, std::nan("")}), k::ValueError,
              ("finite"));
  std::shared_ptr<k::metrics::Metric> shared = std::make_shared<k::metrics::MeanAbsoluteError>();
  CHECK_ERROR(net.model.compile("adam", {"mse", "mse"}, {{shared}, {shared}}), k::ValueError,
              ("several outputs"));
  k::data::Dataset pairs = k::data::Dataset::from_tensor_slices({d.xa, d.y_value}).batch(8);
  CHECK_ERROR(net.model.fit(pairs), k::ValueError, ("the model's 2 inputs then its 2 labels"));
}
