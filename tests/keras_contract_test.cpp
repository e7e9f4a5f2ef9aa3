// Issue 5's contract, verbatim, run on the installed Fashion-MNIST (Debian's
// dataset-fashion-mnist; skipped with a message without it): each statement behaves as its
// comment says. Runs in a scratch directory, as it writes files under relative names.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <filesystem>
#include <fstream>

#include "file_test_util.h"

namespace k = kiln;

TEST_CASE("the Keras-style contract trains, saves and iterates as documented",
          "[model][fashion][heavy]") {
  if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")) {
    WARN("dataset-fashion-mnist is not installed; skipping");
    return;
  }
  k::testing::TempDir dir;
  const std::filesystem::path previous = std::filesystem::current_path();
  std::filesystem::current_path(dir.path);
  int64_t batches = 0;

  // ---- the contract, as written in the issue ----
  // clang-format off
  auto [train, test] = k::datasets::fashion_mnist::load_data();    // uint8 images [N,28,28], labels [N]
  k::Tensor x_train = k::cast(train.images, k::f32) / 255.f, y_train = train.labels;
  k::Tensor x_test  = k::cast(test.images,  k::f32) / 255.f, y_test  = test.labels;

  k::Sequential model({
      k::layers::Flatten(/*input_shape=*/{28, 28}),
      k::layers::Dense(512, "relu"),
      k::layers::Dense(10, "softmax"),
  });
  model.compile(k::optimizers::RMSprop(1e-3), k::losses::SparseCategoricalCrossentropy(), {"accuracy"});
  model.summary();                                                  // Keras-like table: layers, output shapes, parameter counts
  k::History h = model.fit(x_train, y_train, {.epochs = 5, .batch_size = 128, .validation_split = 0.1});
  std::vector<float> scores = model.evaluate(x_test, y_test);       // {loss, accuracy}
  k::Tensor probs = model.predict(x_test);                          // [10000, 10]
  model.save_weights("fashion.safetensors");
  model.load_weights("fashion.safetensors");
  model.save("fashion_model");                                      // inference graph (text IR) + weights, for the kiln tool
  h.to_csv("history.csv");
  h.plot("curves.svg");                                             // loss and accuracy per epoch, train and validation

  auto ds = k::data::Dataset::from_tensor_slices({x_train, y_train})
                .shuffle(1000, /*seed=*/1).batch(32).repeat(2);
  for (const std::vector<k::Tensor>& batch : ds) { /* batch[0]: [32,28,28], batch[1]: [32] */
    ++batches;
    REQUIRE(batch[0].shape() == k::Shape{32, 28, 28});
    REQUIRE(batch[1].shape() == k::Shape{32});
  }
  // clang-format on
  // ---- end of the contract ----

  CHECK(train.images.shape() == k::Shape{60000, 28, 28});
  CHECK(test.labels.shape() == k::Shape{10000});
  CHECK(model.summary_text().find("Total params: 407050") != std::string::npos);
  CHECK(h.history.at("loss").size() == 5);
  CHECK(h.history.count("val_accuracy") == 1);
  REQUIRE(scores.size() == 2);
  CHECK(scores[1] > 0.85f);  // the MLP reaches ≈ 0.87 after 5 epochs; chance is 0.1
  CHECK(probs.shape() == k::Shape{10000, 10});
  CHECK(std::filesystem::exists("fashion_model/model.kiln"));
  CHECK(k::load_model("fashion_model")(x_test.index({k::Slice(0, 1)})).shape() == k::Shape{1, 10});
  CHECK(
      k::testing::read_bytes("history.csv").rfind("epoch,accuracy,loss,val_accuracy,val_loss", 0) ==
      0);
  CHECK(k::testing::read_bytes("curves.svg").find("<svg") != std::string::npos);
  CHECK(batches == 2 * (60000 / 32));
  std::filesystem::current_path(previous);
}
