// keras.applications: InceptionV3's layers, names, order and parameter counts as Keras's.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace k = kiln;
using Catch::Contains;

namespace {

// docs/design/issue15-inception-v3-keras-order.txt: "index name #weights" per layer, as
// Keras's map_graph orders InceptionV3(include_top=False) in a fresh session.
std::vector<std::pair<std::string, size_t>> keras_order() {
  std::ifstream in(std::string(KILN_SOURCE_DIR) +
                   "/docs/design/issue15-inception-v3-keras-order.txt");
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
