// Fashion-MNIST smoke test: the issue-5 contract's MLP on a slice of the data, one epoch, well
// above chance. Skips (with a message) when Debian's dataset-fashion-mnist is not installed.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <filesystem>

namespace k = kiln;

TEST_CASE("an MLP learns Fashion-MNIST in one epoch on 6000 images", "[model][fashion][heavy]") {
  if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")) {
    WARN("dataset-fashion-mnist is not installed; skipping");
    return;
  }
  auto [train, test] = k::datasets::fashion_mnist::load_data();
  REQUIRE(train.images.shape() == k::Shape{60000, 28, 28});
  // Pixels come as uint8, as tf.keras.datasets gives them; labels as int32.
  CHECK(train.images.dtype() == k::u8);
  CHECK(test.images.dtype() == k::u8);
  CHECK(train.labels.dtype() == k::i32);
  k::Tensor x = k::cast(train.images.index({k::Slice(0, 6000)}), k::f32) / 255.f;
  k::Tensor y = train.labels.index({k::Slice(0, 6000)});
  k::Tensor x_test = k::cast(test.images.index({k::Slice(0, 2000)}), k::f32) / 255.f;
  k::Tensor y_test = test.labels.index({k::Slice(0, 2000)});
  // The scaled pixels span [0, 1] exactly: 0 → 0 and 255 → 1.
  CHECK(k::reduce_min(x).item<float>() == 0.f);
  CHECK(k::reduce_max(x).item<float>() == 1.f);

  k::Sequential model({
      k::layers::Flatten(/*input_shape=*/{28, 28}),
      k::layers::Dense(512, "relu"),
      k::layers::Dense(10, "softmax"),
  });
  model.compile(k::optimizers::RMSprop(1e-3), k::losses::SparseCategoricalCrossentropy(),
                {"accuracy"});
  k::History h = model.fit(x, y, {.epochs = 1, .batch_size = 128, .verbose = 0});
  std::vector<float> scores = model.evaluate(x_test, y_test, 256);
  CHECK(h.history.at("accuracy").front() > 0.5);
  CHECK(scores[1] > 0.65f);  // chance is 0.1
  CHECK(model.predict(x_test.index({k::Slice(0, 10)})).shape() == k::Shape{10, 10});
}
