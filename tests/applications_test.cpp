// keras.applications: InceptionV3's layers, names, order and parameter counts as Keras's.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "file_test_util.h"

namespace k = kiln;
using Catch::Contains;

namespace {

// docs/design/issue15-inception-v3-keras-order.txt: "index name #weights" per layer, as
// Keras's map_graph orders InceptionV3(include_top=False) in a fresh session (or `file`, another
// list of that form in docs/design).
std::vector<std::pair<std::string, size_t>> keras_order(
    const std::string& file = "issue15-inception-v3-keras-order.txt") {
  std::ifstream in(std::string(KILN_SOURCE_DIR) + "/docs/design/" + file);
  REQUIRE(in);
  std::vector<std::pair<std::string, size_t>> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream row(line);
    size_t index = 0, weights = 0;
    std::string name;
    row >> index >> name >> weights;
    REQUIRE(index == rows.size());
    rows.emplace_back(name, weights);
  }
  return rows;
}

}  // namespace

TEST_CASE("InceptionV3 without its top has Keras's 311 layers, names, order and counts",
          "[applications]") {
  k::clear_session();
  k::Model base =
      k::applications::InceptionV3({.input_shape = k::Shape{150, 150, 3}, .include_top = false});
  std::vector<std::pair<std::string, size_t>> expected = keras_order();
  REQUIRE(expected.size() == 311);
  REQUIRE(base.layers().size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    INFO(i);
    CHECK(base.layers()[i]->name() == expected[i].first);
    CHECK(base.layers()[i]->weights().size() == expected[i].second);
  }
  CHECK(base.count_params() == 21802784);
  int64_t trainable = 0;
  for (const k::Variable& v : base.trainable_weights())
    trainable += v.shape().num_elements();
  CHECK(trainable == 21768352);
  CHECK(base.get_layer("mixed7").output().shape() == k::Shape{k::None, 7, 7, 768});
  CHECK(base.output().shape() == k::Shape{k::None, 3, 3, 2048});

  // The tutorial's head on mixed7.
  namespace L = k::layers;
  k::KerasTensor x = L::Flatten()(base.get_layer("mixed7").output());
  x = L::Dense(1, "sigmoid")(L::Dropout(0.2)(L::Dense(1024, "relu")(x)));
  k::Model tl(base.input(), x);
  // 229 layers up to mixed7, then Flatten, Dense, Dropout, Dense: the tutorial's 47,512,481
  // parameters (8,975,264 of them the base's, frozen in the tutorial).
  CHECK(tl.layers().size() == 233);
  CHECK(tl.count_params() == 47512481);
}

TEST_CASE("InceptionV3 with its top and pooling options", "[applications]") {
  k::Model full = k::applications::InceptionV3({.input_shape = k::Shape{75, 75, 3}, .classes = 7});
  CHECK(full.output().shape() == k::Shape{k::None, 7});
  CHECK(full.get_layer("predictions").count_params() == 2048 * 7 + 7);
  CHECK(full.layers().size() == 313);
  k::Model pooled = k::applications::InceptionV3(
      {.input_shape = k::Shape{75, 75, 3}, .include_top = false, .pooling = "max"});
  CHECK(pooled.output().shape() == k::Shape{k::None, 2048});
  k::Tensor pixels = k::cast(k::constant({0.f, 255.f}), k::u8);
  CHECK(k::applications::inception_v3_preprocess_input(pixels).to_vector<float>() ==
        std::vector<float>{-1.f, 1.f});
}

TEST_CASE("InceptionV3 refuses shapes and options Keras refuses", "[applications]") {
  CHECK_THROWS_WITH(k::applications::InceptionV3({.input_shape = k::Shape{74, 100, 3}}),
                    Contains("at least 75"));
  CHECK_THROWS_WITH(k::applications::InceptionV3({.input_shape = k::Shape{100, 100, 4}}),
                    Contains("(height, width, 3)"));
  CHECK_THROWS_WITH(k::applications::InceptionV3({.include_top = false, .pooling = "mean"}),
                    Contains("\"avg\" or \"max\""));
}

namespace {

int64_t trainable_params(const k::Model& model) {
  int64_t n = 0;
  for (const k::Variable& v : model.trainable_weights())
    n += v.shape().num_elements();
  return n;
}

// Checks the model's layers against the first `count` rows of Keras's MobileNetV2 order.
void check_mobilenet_v2_layers(const k::Model& model, size_t count) {
  std::vector<std::pair<std::string, size_t>> expected =
      keras_order("issue15-mobilenet-v2-keras-order.txt");
  REQUIRE(expected.size() == 156);
  REQUIRE(model.layers().size() == count);
  for (size_t i = 0; i < count; ++i) {
    INFO(i);
    CHECK(model.layers()[i]->name() == expected[i].first);
    CHECK(model.layers()[i]->weights().size() == expected[i].second);
  }
}

}  // namespace

TEST_CASE("MobileNetV2 has Keras's 156 layers, names, order and parameter counts",
          "[applications][mobilenet]") {
  k::clear_session();
  k::Model full = k::applications::MobileNetV2();
  check_mobilenet_v2_layers(full, 156);
  CHECK(full.name() == "mobilenetv2_1.00_224");
  CHECK(full.input().shape() == k::Shape{k::None, 224, 224, 3});
  CHECK(full.output().shape() == k::Shape{k::None, 1000});
  // Keras's model.summary() for MobileNetV2(): 3,538,984 parameters, 34,112 of them the
  // BatchNormalization moving statistics.
  CHECK(full.count_params() == 3538984);
  CHECK(trainable_params(full) == 3504872);
  CHECK(full.count_params() - trainable_params(full) == 34112);
  CHECK(full.get_layer("Conv1").output().shape() == k::Shape{k::None, 112, 112, 32});
  CHECK(full.get_layer("block_1_pad").output().shape() == k::Shape{k::None, 113, 113, 96});
  CHECK(full.get_layer("block_1_depthwise").output().shape() == k::Shape{k::None, 56, 56, 96});
  CHECK(full.get_layer("block_16_project_BN").output().shape() == k::Shape{k::None, 7, 7, 320});
  CHECK(full.get_layer("out_relu").output().shape() == k::Shape{k::None, 7, 7, 1280});
  CHECK(full.get_layer("block_1_depthwise").class_name() == "DepthwiseConv2D");
  CHECK(full.get_layer("out_relu").class_name() == "ReLU");
  CHECK(full.get_layer("block_2_add").class_name() == "Add");
  CHECK(full.get_layer("predictions").count_params() == 1280 * 1000 + 1000);
}

TEST_CASE("MobileNetV2 without its top: 154 layers, shapes and pooling",
          "[applications][mobilenet]") {
  k::clear_session();
  k::Model base =
      k::applications::MobileNetV2({.input_shape = k::Shape{96, 96, 3}, .include_top = false});
  check_mobilenet_v2_layers(base, 154);
  CHECK(base.name() == "mobilenetv2_1.00_96");
  CHECK(base.count_params() == 2257984);
  CHECK(trainable_params(base) == 2223872);
  CHECK(base.output().shape() == k::Shape{k::None, 3, 3, 1280});

  k::Model pooled = k::applications::MobileNetV2(
      {.input_shape = k::Shape{97, 64, 3}, .include_top = false, .pooling = "avg"});
  CHECK(pooled.output().shape() == k::Shape{k::None, 1280});
  // An odd side gets a zero row on both sides before a stride-2 block, an even one only after.
  CHECK(pooled.get_layer("block_1_pad").output().shape() == k::Shape{k::None, 51, 33, 96});
  CHECK(pooled.get_layer("block_13_depthwise").output().shape() == k::Shape{k::None, 4, 2, 576});
  CHECK(pooled.layers().back()->class_name() == "GlobalAveragePooling2D");
  k::Model maxed = k::applications::MobileNetV2(
      {.input_shape = k::Shape{32, 32, 1}, .include_top = false, .pooling = "max"});
  CHECK(maxed.output().shape() == k::Shape{k::None, 1280});
  CHECK(maxed.layers().back()->class_name() == "GlobalMaxPooling2D");
  // One input channel (Keras allows any without ImageNet weights): Conv1's kernel follows.
  CHECK(maxed.get_layer("Conv1").weights()[0].shape() == k::Shape{3, 3, 1, 32});

  // Keras's default without the top: any height and width.
  k::Model any = k::applications::MobileNetV2({.include_top = false});
  CHECK(any.name() == "mobilenetv2_1.00_None");
  CHECK(any.input().shape() == k::Shape{k::None, k::None, k::None, 3});
  CHECK(any.output().shape() == k::Shape{k::None, k::None, k::None, 1280});
}

TEST_CASE("MobileNetV2's alpha rounds filters as Keras's _make_divisible",
          "[applications][mobilenet]") {
  k::Model small = k::applications::MobileNetV2(
      {.input_shape = k::Shape{96, 96, 3}, .alpha = 0.35, .include_top = false});
  CHECK(small.name() == "mobilenetv2_0.35_96");
  CHECK(small.count_params() == 410208);
  // 32·0.35 = 11.2 rounds to 8, more than 10% below: 16.
  CHECK(small.get_layer("Conv1").output().shape() == k::Shape{k::None, 48, 48, 16});
  CHECK(small.get_layer("expanded_conv_project").output().shape() == k::Shape{k::None, 48, 48, 8});
  CHECK(small.get_layer("block_16_project").output().shape() == k::Shape{k::None, 3, 3, 112});
  CHECK(small.get_layer("Conv_1").output().shape() == k::Shape{k::None, 3, 3, 1280});
  k::Model wide = k::applications::MobileNetV2({.alpha = 1.4, .include_top = false});
  CHECK(wide.count_params() == 4363712);
  CHECK(wide.get_layer("Conv_1").weights()[0].shape() == k::Shape{1, 1, 448, 1792});
  k::Model top = k::applications::MobileNetV2({.alpha = 0.5, .classes = 10});
  CHECK(top.count_params() == 706224 + 1280 * 10 + 10);
}

TEST_CASE("MobileNetV2 runs, compiles, and round-trips its weights through Keras HDF5",
          "[applications][mobilenet]") {
  k::Model model = k::applications::MobileNetV2({.input_shape = k::Shape{32, 32, 3},
                                                 .alpha = 0.35,
                                                 .classes = 5,
                                                 .classifier_activation = "softmax"});
  CHECK(model.layers().size() == 156);
  k::Tensor pixels = k::random_uniform({2, 32, 32, 3}, 0.0, 255.0, 3);
  k::Tensor x = k::applications::mobilenet_v2_preprocess_input(pixels);
  k::Tensor eager = model(x);
  REQUIRE(eager.shape() == k::Shape{2, 5});
  std::vector<float> probs = eager.to_vector<float>();
  for (int r = 0; r < 2; ++r) {
    float sum = 0;
    for (int c = 0; c < 5; ++c) {
      CHECK(std::isfinite(probs[size_t(r * 5 + c)]));
      sum += probs[size_t(r * 5 + c)];
    }
    CHECK(sum == Approx(1.0f).margin(1e-5));
  }
  std::vector<float> predicted = model.predict(x).to_vector<float>();
  REQUIRE(predicted.size() == probs.size());
  for (size_t i = 0; i < probs.size(); ++i)
    CHECK(predicted[i] == Approx(probs[i]).margin(1e-5));

  k::testing::TempDir dir;
  model.save_weights(dir.file("mobilenet_v2.h5"));
  k::Model twin = k::applications::MobileNetV2({.input_shape = k::Shape{32, 32, 3},
                                                .alpha = 0.35,
                                                .classes = 5,
                                                .classifier_activation = "softmax"});
  twin.load_weights(dir.file("mobilenet_v2.h5"));
  std::vector<float> loaded = twin.predict(x).to_vector<float>();
  for (size_t i = 0; i < probs.size(); ++i)
    CHECK(loaded[i] == Approx(probs[i]).margin(1e-6));
}

TEST_CASE("MobileNetV2 refuses shapes and options Keras refuses", "[applications][mobilenet]") {
  using k::applications::MobileNetV2;
  CHECK_THROWS_WITH(MobileNetV2({.input_shape = k::Shape{31, 64, 3}}), Contains("at least 32"));
  CHECK_THROWS_WITH(MobileNetV2({.input_shape = k::Shape{64, 64}}),
                    Contains("(height, width, channels)"));
  CHECK_THROWS_WITH(MobileNetV2({.input_shape = k::Shape{64, 64, k::None}}),
                    Contains("known number of channels"));
  CHECK_THROWS_WITH(MobileNetV2({.input_shape = k::Shape{k::None, 64, 3}}),
                    Contains("include_top needs a known height and width"));
  CHECK_THROWS_WITH(MobileNetV2({.alpha = 0}), Contains("alpha must be positive"));
  CHECK_THROWS_WITH(MobileNetV2({.alpha = -1}), Contains("alpha must be positive"));
  CHECK_THROWS_WITH(MobileNetV2({.include_top = false, .pooling = "mean"}),
                    Contains("\"avg\" or \"max\""));
  CHECK_THROWS_WITH(MobileNetV2({.classes = 0}), Contains("classes must be positive"));
  CHECK_THROWS_AS(MobileNetV2({.classifier_activation = "bogus"}), k::ValueError);
  std::vector<float> scaled =
      k::applications::mobilenet_v2_preprocess_input(k::constant({0.f, 127.5f, 255.f}))
          .to_vector<float>();
  CHECK(scaled[0] == Approx(-1.f));
  CHECK(scaled[1] == Approx(0.f).margin(1e-6));
  CHECK(scaled[2] == Approx(1.f));
  k::Tensor bytes = k::cast(k::constant({0.f, 255.f}), k::u8);
  CHECK(k::applications::mobilenet_v2_preprocess_input(bytes).to_vector<float>() ==
        std::vector<float>{-1.f, 1.f});
}
