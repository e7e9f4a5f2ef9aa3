// Issue 15's contract, as written there: the functional API, InceptionV3 with a Keras weight
// file, frozen layers and a new head, the Conv1D + LSTM forecaster and the augmentation model.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <filesystem>
#include <string>

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
  {
    auto donor = k::applications::InceptionV3({.input_shape = {75, 75, 3}, .include_top = false});
    donor.save_weights(weights);
  }
  auto base = k::applications::InceptionV3({.input_shape = {150, 150, 3}, .include_top = false});
  base.load_weights(weights);  // a Keras HDF5 weights file
  std::filesystem::remove(weights);
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
