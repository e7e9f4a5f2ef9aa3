// Keras-level errors: every bad input to a layer call, fit, evaluate, predict, compile, summary or
// a saved model names the layer and the user's line (not Kiln's sources) and, where the fix is
// plain, says what to do.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <map>
#include <string>

#include "error_test_util.h"
#include "file_test_util.h"
#include "model_test_util.h"

namespace k = kiln;
using Catch::Contains;
using k::testing::check_message_at;
using k::testing::error_of;

namespace {

// No error message may point into Kiln's own sources.
void check_not_internal(const std::string& msg) {
  INFO(msg);
  for (const char* file :
       {"model.cpp", "model_fit.cpp", "model_saving.cpp", "callbacks.cpp", "layers.cpp",
        "losses.cpp", "metrics.cpp", "apply.cpp", "name_scope.cpp", "op_error.cpp"})
    CHECK_THAT(msg, !Contains(file));
}

k::Sequential declared_mlp(const std::string& prefix) {
  return k::Sequential({k::layers::Flatten(k::Shape{4, 4}, prefix + "_flatten"),
                        k::layers::Dense(3, "softmax", std::nullopt, true, "glorot_uniform",
                                         "zeros", prefix + "_dense")});
}

k::Tensor labels(int64_t n) {
  std::vector<int32_t> ids;
  for (int64_t i = 0; i < n; ++i)
    ids.push_back(int32_t(i % 3));
  return k::constant(ids, k::Shape{n});
}

}  // namespace

TEST_CASE("integer images into a float model say to cast and scale, at the caller's line",
          "[keras_errors]") {
  k::Sequential model = declared_mlp("u8");
  model.compile("sgd", "sparse_categorical_crossentropy");
  k::Tensor images = k::cast(k::ones({8, 4, 4}), k::u8), y = labels(8);
  const std::string fix = "cast to f32 and scale, e.g. k::cast(x, k::f32) / 255.f";

  int line = __LINE__ + 1;
  std::string msg = error_of<k::TypeError>([&] { model.fit(images, y, {.verbose = 0}); });
  check_message_at(msg, {"sequential", "u8[8,4,4]", fix}, __FILE__, line);
  check_not_internal(msg);
  line = __LINE__ + 1;
  msg = error_of<k::TypeError>([&] { model.evaluate(images, y); });
  check_message_at(msg, {fix}, __FILE__, line);
  line = __LINE__ + 1;
  msg = error_of<k::TypeError>([&] { model.predict(images); });
  check_message_at(msg, {fix}, __FILE__, line);
  line = __LINE__ + 1;
  msg = error_of<k::TypeError>([&] { model(images); });
  check_message_at(msg, {fix}, __FILE__, line);

  // Without input_shape the first layer with float weights says it, naming itself.
  k::Sequential open({k::layers::Flatten(), k::layers::Dense(3, "softmax", std::nullopt, true,
                                                             "glorot_uniform", "zeros", "d_u8")});
  open.compile("sgd", "sparse_categorical_crossentropy");
  line = __LINE__ + 1;
  msg = error_of<k::TypeError>([&] { open.fit(images, y, {.verbose = 0}); });
  check_message_at(msg, {"in layer 'd_u8' (Dense)", "u8[8,16]", fix}, __FILE__, line);
  check_not_internal(msg);

  // Other integers are cast, not scaled.
  k::layers::Dense dense(2);
  line = __LINE__ + 1;
  msg = error_of<k::TypeError>([&] { dense(k::constant({{1, 2}})); });
  check_message_at(msg, {"i32[1,2]", "cast to f32 first, e.g. k::cast(x, k::f32)"}, __FILE__, line);
  CHECK_THAT(msg, !Contains("255"));
}

TEST_CASE("one-hot labels with a sparse loss name the loss to use, with the whole batch",
          "[keras_errors]") {
  k::Sequential model = declared_mlp("onehot");
  model.compile("sgd", "sparse_categorical_crossentropy");
  k::Tensor x = k::ones({64, 4, 4}), hot = k::one_hot(labels(64), 3);
  int line = __LINE__ + 1;
  std::string msg = error_of<k::ShapeError>([&] { model.fit(x, hot, {.batch_size = 16}); });
  check_message_at(msg, {"use CategoricalCrossentropy", "got (64, 3)"}, __FILE__, line);
  check_not_internal(msg);
  line = __LINE__ + 1;
  msg = error_of<k::ShapeError>([&] { model.evaluate(x, hot, 16); });
  check_message_at(msg, {"use CategoricalCrossentropy"}, __FILE__, line);

  // And the other way round: class ids with the one-hot loss.
  k::Sequential other = declared_mlp("ids");
  other.compile("sgd", "categorical_crossentropy");
  line = __LINE__ + 1;
  msg = error_of<k::ShapeError>([&] { other.fit(x, labels(64), {.verbose = 0}); });
  check_message_at(msg, {"use SparseCategoricalCrossentropy", "i32[64]"}, __FILE__, line);
}

TEST_CASE("a batch whose sample shape differs is reported whole, at the caller's line",
          "[keras_errors]") {
  k::Sequential model = declared_mlp("shape");
  model.compile("sgd", "sparse_categorical_crossentropy");
  k::Tensor flat = k::ones({256, 16});
  int line = __LINE__ + 1;
  std::string msg = error_of<k::ShapeError>([&] { model.fit(flat, labels(256), {.verbose = 0}); });
  check_message_at(msg,
                   {"expects samples of shape (4, 4)", "first layer 'shape_flatten'",
                    "got 256 samples of shape (16,)"},
                   __FILE__, line);
  CHECK_THAT(msg, !Contains("(1, 16)"));
  check_not_internal(msg);
  line = __LINE__ + 1;
  msg = error_of<k::ShapeError>([&] { model.predict(flat, 32); });
  check_message_at(msg, {"got 256 samples of shape (16,)"}, __FILE__, line);

  // A model without input_shape, built for 16 features, then given 28.
  k::Sequential open(
      {k::layers::Dense(3, "softmax", std::nullopt, true, "glorot_uniform", "zeros", "dense_16")});
  open.compile("sgd", "sparse_categorical_crossentropy");
  open.fit(flat, labels(256), {.verbose = 0});
  k::Tensor narrow = k::ones({256, 28});
  line = __LINE__ + 1;
  msg = error_of<k::ShapeError>([&] { open.predict(narrow, 32); });
  check_message_at(msg,
                   {"in layer 'dense_16' (Dense)", "built for inputs with 16 features",
                    "got input of shape (256, 28)"},
                   __FILE__, line);
  check_not_internal(msg);
  line = __LINE__ + 1;
  msg = error_of<k::ShapeError>([&] { open.fit(narrow, labels(256), {.verbose = 0}); });
  check_message_at(msg, {"(256, 28)", "scope sequential/dense_16"}, __FILE__, line);
}

namespace {
// A user's layer whose own op fails: the error keeps the user's line inside call().
class BadLayer : public k::layers::Layer {
 public:
  static inline int op_line = 0;
  BadLayer() : Layer("bad_layer", "", {}) {}
  k::Tensor call(const k::Tensor& x, bool) override {
    op_line = __LINE__ + 1;
    return k::reshape(x, k::Shape{7});
  }
  std::string class_name() const override { return "BadLayer"; }
};

// A user's layer around another layer: an error inside names the inner layer only.
class Wrapper : public k::layers::Layer {
 public:
  Wrapper() : Layer("wrapper", "", {}) {}
  k::Tensor call(const k::Tensor& x, bool training) override { return inner_(x, training); }
  std::string class_name() const override { return "Wrapper"; }

 private:
  BadLayer inner_;
};
}  // namespace

TEST_CASE("a layer call's error names the layer and the caller's line; user ops keep theirs",
          "[keras_errors]") {
  k::layers::Dense dense(4, "", std::nullopt, true, "glorot_uniform", "zeros", "dense_call");
  dense(k::ones({2, 3}));
  int line = __LINE__ + 1;
  std::string msg = error_of<k::ShapeError>([&] { dense(k::ones({2, 5})); });
  check_message_at(msg, {"in layer 'dense_call' (Dense)", "built for inputs with 3 features"},
                   __FILE__, line);
  check_not_internal(msg);

  k::layers::Conv2D conv(2, {3, 3}, {1, 1}, "valid", "", {}, true, "glorot_uniform", "zeros",
                         "conv_call");
  line = __LINE__ + 1;
  msg = error_of<k::ShapeError>([&] { conv(k::ones({1, 5, 5})); });
  check_message_at(msg, {"in layer 'conv_call' (Conv2D)", "rank 4"}, __FILE__, line);
  conv(k::ones({1, 5, 5, 1}));
  line = __LINE__ + 1;
  msg = error_of<k::ShapeError>([&] { conv(k::ones({1, 5, 5, 3})); });
  check_message_at(msg, {"built for NHWC inputs with 1 channels"}, __FILE__, line);

  // The user's own layer: its op's line is the user's, inside call().
  BadLayer bad;
  msg = error_of<k::ShapeError>([&] { bad(k::ones({2, 3})); });
  check_message_at(msg, {"in layer 'bad_layer' (BadLayer)"}, __FILE__, BadLayer::op_line);
  // Nested layers: the innermost names itself, once; the outer one adds nothing.
  Wrapper wrapper;
  msg = error_of<k::ShapeError>([&] { wrapper(k::ones({2, 3})); });
  CHECK_THAT(msg, Contains("in layer 'bad_layer") && Contains("(BadLayer)"));
  CHECK_THAT(msg, !Contains("in layer 'wrapper'"));
  CHECK(k::testing::count_of(msg, "in layer '") == 1);

  // A Lambda's body inside a compiled training step keeps its line too (no input_shape: a
  // declared one would build, and fail, when the model is made).
  int lambda_line = __LINE__ + 1;
  auto bad_fn = [](const k::Tensor& x) { return k::reshape(x, k::Shape{5}); };
  k::Sequential model({k::layers::Dense(3, "softmax"), k::layers::Lambda(bad_fn)});
  model.compile("sgd", "mse");
  msg = error_of<k::ShapeError>([&] {
    model.fit(k::ones({4, 2}), k::ones({4, 3}), {.verbose = 0});
  });
  check_message_at(msg, {"in layer 'lambda"}, __FILE__, lambda_line);
}

TEST_CASE("input_shape on a layer that is not first must match what it gets", "[keras_errors]") {
  // A first layer that declares input_shape builds the Sequential when it is made (as Keras), so
  // the mismatch is found there, or in add(), which then adds nothing.
  k::layers::Dense first(10, "relu", k::Shape{4});
  k::layers::Dense second(3, "", k::Shape{7}, true, "glorot_uniform", "zeros", "second_decl");
  int line = __LINE__ + 1;
  std::string msg = error_of<k::ShapeError>([&] { k::Sequential made({first, second}); });
  check_message_at(msg,
                   {"in layer 'second_decl' (Dense)", "declared with input_shape (7,)",
                    "gets samples of shape (10,)", "belongs on a model's first layer only"},
                   __FILE__, line);
  k::Sequential declared({k::layers::Dense(10, "relu", k::Shape{4})});
  line = __LINE__ + 1;
  msg = error_of<k::ShapeError>([&] { declared.add(second); });
  check_message_at(msg, {"declared with input_shape (7,)"}, __FILE__, line);
  CHECK(declared.layers().size() == 1);

  // Without a declared input it is found on the first call.
  k::Sequential model({k::layers::Dense(10, "relu"), second});
  line = __LINE__ + 1;
  msg = error_of<k::ShapeError>([&] { model(k::ones({2, 4})); });
  check_message_at(msg,
                   {"in layer 'second_decl' (Dense)", "declared with input_shape (7,)",
                    "gets samples of shape (10,)", "belongs on a model's first layer only"},
                   __FILE__, line);
  model.compile("sgd", "mse");
  line = __LINE__ + 1;
  msg = error_of<k::ShapeError>([&] { model.fit(k::ones({2, 4}), k::ones({2, 3})); });
  check_message_at(msg, {"declared with input_shape (7,)"}, __FILE__, line);

  // A matching one is fine.
  k::Sequential ok(
      {k::layers::Dense(10, "relu", k::Shape{4}), k::layers::Dense(3, "", k::Shape{10})});
  CHECK(ok(k::ones({2, 4})).shape() == k::Shape{2, 3});
}

namespace {
struct TwoOfOne : k::Model {
  k::layers::Dense a{2, "", std::nullopt, true, "glorot_uniform", "zeros", "twin"};
  k::layers::Dense b{2, "", std::nullopt, true, "glorot_uniform", "zeros", "twin"};
  static inline int track_line = 0;
  TwoOfOne() : Model("two_of_one") {
    track(a);
    track_line = __LINE__ + 1;
    track(b);
  }
  k::Tensor call(const k::Tensor& x, bool training) override { return b(a(x, training), training); }
};
}  // namespace

TEST_CASE("duplicate layer names fail when the model is made, not at save", "[keras_errors]") {
  auto named = [](const std::string& name) {
    return k::layers::Dense(2, "", std::nullopt, true, "glorot_uniform", "zeros", name);
  };
  int line = __LINE__ + 1;
  std::string msg = error_of<k::ValueError>([&] { k::Sequential({named("dup"), named("dup")}); });
  check_message_at(msg, {"a layer named 'dup' already", "must be unique"}, __FILE__, line);

  k::Sequential model({named("first")});
  line = __LINE__ + 1;
  msg = error_of<k::ValueError>([&] { model.add(named("first")); });
  check_message_at(msg, {"a layer named 'first' already"}, __FILE__, line);
  CHECK(model.layers().size() == 1);

  k::layers::Dense same = named("same");
  msg = error_of<k::ValueError>([&] { k::Sequential({same, same}); });
  CHECK_THAT(msg, Contains("the same layer twice"));

  msg = error_of<k::ValueError>([&] { TwoOfOne twins; });
  check_message_at(msg, {"'twin'"}, __FILE__, TwoOfOne::track_line);
}

TEST_CASE("summary of an unbuilt model says so; build() builds it", "[keras_errors]") {
  k::Sequential model({k::layers::Dense(4, "relu"), k::layers::Dense(2)});
  int line = __LINE__ + 1;
  std::string msg = error_of<k::ValueError>([&] { model.summary_text(); });
  check_message_at(msg,
                   {"This model has not yet been built. Build the model first by calling build() "
                    "or by calling the model on a batch of data"},
                   __FILE__, line);
  CHECK_THROWS_AS(model.summary(), k::ValueError);
  CHECK_FALSE(model.built());
  model.build({3});
  CHECK(model.built());
  CHECK_THAT(model.summary_text(), Contains("Total params: 26"));
  CHECK_THROWS_AS(model.build(std::nullopt), k::ValueError);

  k::Sequential empty;
  CHECK_THROWS_WITH(empty.summary_text(), Contains("has not yet been built"));
}

TEST_CASE("compile rejects unknown names, listing the known ones", "[keras_errors]") {
  k::Sequential model({k::layers::Dense(2, "", k::Shape{2})});
  int line = __LINE__ + 1;
  std::string msg = error_of<k::ValueError>([&] { model.compile("adamw", "mse"); });
  check_message_at(msg, {"unknown optimizer 'adamw'", "known: sgd, rmsprop, adam, adagrad"},
                   __FILE__, line);
  msg = error_of<k::ValueError>([&] { model.compile("adam", "hinge"); });
  CHECK_THAT(msg, Contains("unknown loss 'hinge'") && Contains("sparse_categorical_crossentropy") &&
                      Contains("mean_squared_error (mse)"));
  msg = error_of<k::ValueError>([&] { model.compile("adam", "mse", {"f1_score"}); });
  CHECK_THAT(msg, Contains("unknown metric 'f1_score'; known: accuracy"));
  // A saved compile config is user input: each malformed value is named.
  const std::vector<std::pair<std::map<std::string, std::string>, std::string>> bad_configs = {
      {{{"name", "mse"}, {"reduction", "mean"}}, "'reduction' must be none, sum or"},
      {{{"name", "binary_crossentropy"}, {"from_logits", "yes"}},
       "'from_logits' must be true or false, got 'yes'"},
      {{{"name", "categorical_crossentropy"}, {"label_smoothing", "x"}},
       "'label_smoothing' must be a number, got 'x'"},
      {{{"name", "categorical_crossentropy"}, {"label_smoothing", "0.1x"}},
       "'label_smoothing' must be a number, got '0.1x'"},
      {{{"name", "categorical_crossentropy"}, {"axis", "1.5"}},
       "'axis' must be an integer, got '1.5'"},
  };
  for (const auto& [config, message] : bad_configs) {
    INFO(message);
    CHECK_THAT(error_of<k::ValueError>([&] { k::losses::from_config(config); }), Contains(message));
  }
  // Numbers that parse keep their values.
  auto loss = k::losses::from_config(
      {{"name", "categorical_crossentropy"}, {"label_smoothing", "0.25"}, {"axis", "-1"}});
  CHECK(loss->get_config().at("label_smoothing") == "0.25");
}

TEST_CASE("fit and evaluate on a dataset reject what they cannot use", "[keras_errors]") {
  auto [x, y] = k::testing::blobs(10, 1);
  k::Sequential model({k::layers::Dense(3, "softmax", k::Shape{2})});
  model.compile("sgd", "sparse_categorical_crossentropy");
  auto pairs = k::data::Dataset::from_tensor_slices({x, y}).batch(8);
  auto xs_only = k::data::Dataset::from_tensor_slices(x).batch(8);
  int line = __LINE__ + 1;
  std::string msg = error_of<k::ValueError>([&] { model.fit(xs_only, {.verbose = 0}); });
  check_message_at(msg, {"(x, y) pairs", "1 tensors"}, __FILE__, line);
  CHECK_THROWS_WITH(model.evaluate(xs_only), Contains("(x, y) pairs"));
  CHECK_THROWS_WITH(model.fit(pairs.repeat(), {.verbose = 0}), Contains("set steps_per_epoch"));
  CHECK_THROWS_WITH(model.fit(pairs, {.validation_split = 0.2, .verbose = 0}),
                    Contains("validation_split needs tensor data"));
  CHECK_THROWS_WITH(model.fit(pairs, {.verbose = 0, .steps_per_epoch = 0}),
                    Contains("steps_per_epoch must be positive"));
  CHECK_THROWS_WITH(model.fit(pairs.take(0), {.verbose = 0}), Contains("no batches"));
  // A label outside the classes, in the last batch (at its position 5).
  k::Tensor bad_y = k::concat({y.index({k::Slice(0, 29)}), k::constant({7})}, 0);
  auto bad = k::data::Dataset::from_tensor_slices({x, bad_y}).batch(8);
  CHECK_THROWS_WITH(model.fit(bad, {.verbose = 0}), Contains("label 7 of sample 5"));
  k::Sequential unbuilt({k::layers::Dense(3, "softmax")});
  CHECK_THROWS_WITH(unbuilt.fit(pairs), Contains("call compile() before fit()"));
}

TEST_CASE("a loaded model's predict and evaluate reject what they cannot use", "[keras_errors]") {
  k::testing::TempDir dir;
  k::Sequential model({k::layers::Dense(3, "softmax", k::Shape{2})});
  model.save(dir.file("plain"), 4);
  k::SavedModel loaded = k::load_model(dir.file("plain"));
  auto [x, y] = k::testing::blobs(4, 1);
  int line = __LINE__ + 1;
  std::string msg = error_of<k::ValueError>([&] { loaded.evaluate(x, y); });
  check_message_at(msg, {"has no loss", "call compile(loss, metrics)"}, __FILE__, line);
  CHECK_THROWS_WITH(loaded.predict(k::ones({5, 3})),
                    Contains("takes samples of f32[2]") && Contains("got f32[5,3]"));
  CHECK_THROWS_WITH(loaded(k::ones({5, 3})), Contains("takes f32[None,2] (saved as f32[4,2])"));
  CHECK_THROWS_AS(loaded.compile("hinge"), k::ValueError);

  // A malformed compile configuration in the weights' metadata.
  std::string weights = dir.file("plain") + "/weights.safetensors";
  std::vector<std::pair<std::string, k::Tensor>> tensors = k::safetensors::load(weights);
  k::safetensors::save(weights, tensors, {{"loss.name", "nonsense"}});
  CHECK_THROWS_WITH(k::load_model(dir.file("plain")),
                    Contains("unknown loss 'nonsense'") && Contains("compile configuration"));
  k::safetensors::save(weights, tensors, {{"loss.name", "mse"}, {"metrics", "f1_score"}});
  CHECK_THROWS_WITH(k::load_model(dir.file("plain")), Contains("unknown metric 'f1_score'"));
}

TEST_CASE("set_num_threads rejects counts below one", "[keras_errors]") {
  int line = __LINE__ + 1;
  std::string msg = error_of<k::ValueError>([&] { k::set_num_threads(0); });
  check_message_at(msg, {"at least 1, got 0"}, __FILE__, line);
}
