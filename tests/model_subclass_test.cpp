// Model subclasses with their own call(), and saved inference functions (Model::save,
// load_model).
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <filesystem>
#include <fstream>

#include "file_test_util.h"
#include "model_test_util.h"

namespace k = kiln;
using Catch::Contains;
using k::testing::blobs;

namespace {

// A residual MLP Sequential cannot express: out(h + skip(h)), h = hidden(x).
struct ResidualMlp : k::Model {
  k::layers::Dense hidden{8, "relu"}, skip{8, "tanh"}, out{3, "softmax"};
  ResidualMlp() : Model("residual_mlp") {
    track(hidden);
    track(skip);
    track(out);
  }
  k::Tensor call(const k::Tensor& x, bool training) override {
    k::Tensor h = hidden(x, training);
    return out(h + skip(h, training), training);
  }
};

// A user-defined layer: y = x · gamma + beta per feature, gamma trainable, beta frozen
// (non-trainable), both made in build() with add_weight.
class Affine : public k::layers::Layer {
 public:
  Affine() : Layer("affine", "", {}) {}
  void build(const k::Shape& input_shape) override {
    const k::Shape features{input_shape.dim(-1)};
    gamma_ = add_weight("gamma", features, k::initializers::ones());
    beta_ = add_weight("beta", features, k::initializers::constant(0.5), /*trainable=*/false);
  }
  k::Tensor call(const k::Tensor& x, bool) override { return x * gamma_ + beta_; }
  std::string class_name() const override { return "Affine"; }

 private:
  k::Variable gamma_, beta_;
};

}  // namespace

TEST_CASE("a Model subclass trains through its own call()", "[model]") {
  k::set_random_seed(3);
  ResidualMlp model;
  CHECK(model.weights().empty());  // built lazily, on the first call
  auto [x, y] = blobs(100, 1);
  model.compile(k::optimizers::Adam(0.05), k::losses::SparseCategoricalCrossentropy(),
                {"accuracy"});
  k::History h = model.fit(x, y, {.epochs = 10, .batch_size = 32, .verbose = 0});
  // hidden (2·8 + 8) + skip (8·8 + 8) + out (8·3 + 3)
  CHECK(model.count_params() == 24 + 72 + 27);
  CHECK(model.trainable_weights().size() == 6);
  const std::string skip_name = model.layers().at(1)->name();
  CHECK(&model.get_layer(skip_name) == model.layers().at(1).get());
  CHECK(h.history.at("loss").back() < h.history.at("loss").front());
  CHECK(h.history.at("accuracy").back() > 0.9);
  auto [x_test, y_test] = blobs(50, 2);
  std::vector<float> scores = model.evaluate(x_test, y_test);
  CHECK(scores[1] > 0.9f);
  // The compiled predict and an eager call agree.
  k::Tensor eager = model(x_test);
  k::Tensor compiled = model.predict(x_test, 64);
  REQUIRE(compiled.shape() == k::Shape{150, 3});
  std::vector<float> a = eager.to_vector<float>(), b = compiled.to_vector<float>();
  for (size_t i = 0; i < a.size(); ++i)
    CHECK(a[i] == Approx(b[i]).margin(1e-5));
  // A frozen layer keeps its weights through fit.
  model.get_layer(model.layers().front()->name()).set_trainable(false);
  model.compile(k::optimizers::Adam(0.05), k::losses::SparseCategoricalCrossentropy());
  std::vector<float> before = model.layers().front()->weights()[0].value().to_vector<float>();
  model.fit(x, y, {.epochs = 1, .batch_size = 32, .verbose = 0});
  CHECK(model.layers().front()->weights()[0].value().to_vector<float>() == before);
}

TEST_CASE("a Model without call() says to override it", "[model]") {
  k::Model empty("empty");
  CHECK_THROWS_WITH(empty(k::ones({2, 2})), Contains("must override call"));
}

TEST_CASE("save writes the inference IR and weights; load_model runs them", "[model]") {
  k::testing::TempDir dir;
  k::set_random_seed(5);
  k::Sequential model({
      k::layers::Flatten(/*input_shape=*/{4, 4}),
      k::layers::Dense(6, "relu", {}, true, "glorot_uniform", "zeros", "hidden"),
      k::layers::Dropout(0.5),
      k::layers::Dense(3, "softmax", {}, true, "glorot_uniform", "zeros", "out"),
  });
  const std::string path = dir.file("saved");
  model.save(path, /*batch_size=*/2);
  // The text IR names the weights as its parameters; the weights file holds them.
  std::ifstream in(path + "/model.kiln");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK_THAT(text, Contains("f32[2,4,4]"));
  CHECK_THAT(text, Contains("%hidden/kernel: f32[16,6]"));
  CHECK_THAT(text, Contains("-> f32[2,3]"));
  CHECK_THAT(text, !Contains("random"));  // Dropout is the identity in inference
  auto saved = k::safetensors::load(path + "/weights.safetensors");
  CHECK(saved.size() == 4);

  k::SavedModel loaded = k::load_model(path);
  CHECK(loaded.input_type() == k::TensorType{k::f32, k::Shape{2, 4, 4}});
  k::Tensor x = k::random_uniform({2, 4, 4}, 0.0, 1.0, 7);
  std::vector<float> want = model(x).to_vector<float>(), got = loaded(x).to_vector<float>();
  REQUIRE(got.size() == 6);
  for (size_t i = 0; i < got.size(); ++i)
    CHECK(got[i] == Approx(want[i]).margin(1e-6));

  // Any batch runs (saved_model_shapes_test); another sample shape does not.
  CHECK(loaded(k::ones({3, 4, 4})).shape() == k::Shape{3, 3});
  CHECK_THROWS_AS(loaded(k::ones({2, 4, 5})), k::ShapeError);
  CHECK_THROWS_WITH(loaded(k::ones({2, 4, 5})),
                    Contains("takes f32[None,4,4] (saved as f32[2,4,4]), got f32[2,4,5]"));
  CHECK_THROWS_AS(loaded(k::ones({2, 4, 4}, k::f64)), k::TypeError);
}

TEST_CASE("save and load_model reject what they cannot handle", "[model]") {
  k::testing::TempDir dir;
  k::Sequential unbuilt({k::layers::Dense(2)});
  CHECK_THROWS_WITH(unbuilt.save(dir.file("a")), Contains("not built"));
  k::Sequential model({k::layers::Dense(2, "", k::Shape{3}, true, "glorot_uniform", "zeros", "d")});
  CHECK_THROWS_AS(model.save(dir.file("b"), 0), k::ValueError);
  CHECK_FALSE(std::filesystem::exists(dir.file("b")));

  CHECK_THROWS_AS(k::load_model(dir.file("missing")), k::IOError);
  model.save(dir.file("c"));
  // Weights that do not match the function's parameters.
  k::safetensors::save(dir.file("c/weights.safetensors"), {{"d/kernel", k::ones({3, 5})}});
  CHECK_THROWS_WITH(k::load_model(dir.file("c")),
                    Contains("'d/kernel' is f32[3,5] in the weights but f32[3,2]") &&
                        Contains("'d/bias' is missing"));
  // Corrupt IR text.
  model.save(dir.file("d"));
  {
    std::ofstream out(dir.file("d/model.kiln"));
    out << "func @f(%x: f32[1,3]) -> f32[1,2] {\n  %0 = nonsense(%x)\n";
  }
  CHECK_THROWS_AS(k::load_model(dir.file("d")), k::ParseError);
}

TEST_CASE("a user-defined Layer builds its weights lazily and trains inside a Sequential",
          "[model]") {
  k::Sequential model({Affine(), k::layers::Dense(3, "softmax")}, "custom");
  auto [x, y] = blobs(60, 4);
  CHECK(model(x).shape() == k::Shape{180, 3});  // builds both layers
  const k::layers::Layer& affine = *model.layers().front();
  REQUIRE(affine.weights().size() == 2);
  CHECK(affine.weights()[0].name() == affine.name() + "/gamma");
  CHECK(affine.trainable_weights().size() == 1);
  CHECK(affine.non_trainable_weights().size() == 1);
  CHECK(affine.count_params() == 4);
  CHECK(model.summary_text().find("(Affine)") != std::string::npos);
  // Before training the layer computes x · 1 + 0.5.
  std::vector<float> in = x.to_vector<float>();
  std::vector<float> out = (*model.layers().front())(x).to_vector<float>();
  REQUIRE(out.size() == in.size());
  for (size_t i = 0; i < in.size(); ++i)
    CHECK(out[i] == in[i] + 0.5f);
  model.compile(k::optimizers::Adam(0.05), k::losses::SparseCategoricalCrossentropy(),
                {"accuracy"});
  k::History h = model.fit(x, y, {.epochs = 8, .batch_size = 32, .verbose = 0});
  CHECK(h.history.at("accuracy").back() > 0.9);
  // gamma moved, beta (frozen) did not.
  CHECK(affine.weights()[0].value().to_vector<float>() != std::vector<float>{1.f, 1.f});
  CHECK(affine.weights()[1].value().to_vector<float>() == std::vector<float>{0.5f, 0.5f});
}
