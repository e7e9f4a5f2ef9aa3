// Layers, Sequential, compile / fit / evaluate / predict, summary and History.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "model_test_util.h"

namespace k = kiln;
using Catch::Contains;
using k::testing::blobs;

TEST_CASE("Dense builds on first call with Keras's shapes and parameter counts", "[model]") {
  k::layers::Dense dense(512, "relu");
  CHECK_FALSE(dense.built());
  k::Tensor y = dense(k::ones({4, 784}));
  CHECK(dense.built());
  CHECK(y.shape() == k::Shape{4, 512});
  CHECK(dense.kernel().shape() == k::Shape{784, 512});
  CHECK(dense.bias().shape() == k::Shape{512});
  CHECK(dense.count_params() == 784 * 512 + 512);
  CHECK(dense.trainable_weights().size() == 2);
  // glorot_uniform: |w| <= sqrt(6 / (784 + 512))
  float limit = std::sqrt(6.f / (784 + 512));
  CHECK(k::reduce_max(k::abs(dense.kernel().value())).item<float>() <= limit);
  dense.set_trainable(false);
  CHECK(dense.trainable_weights().empty());
  CHECK(dense.non_trainable_weights().size() == 2);
  k::layers::Dense other(3);
  CHECK(other.name() != dense.name());
  CHECK(other.name().rfind("dense", 0) == 0);
}

TEST_CASE("Sequential summary lists layers, output shapes and parameters", "[model]") {
  k::Sequential model({
      k::layers::Flatten(/*input_shape=*/k::Shape{28, 28}, "flatten_s"),
      k::layers::Dense(512, "relu", std::nullopt, true, "glorot_uniform", "zeros", "dense_s"),
      k::layers::Dense(10, "softmax", std::nullopt, true, "glorot_uniform", "zeros", "dense_s1"),
  });
  std::string text = model.summary_text();
  CHECK_THAT(text, Contains(" flatten_s (Flatten)         (None, 784)                        0"));
  CHECK_THAT(text, Contains(" dense_s (Dense)             (None, 512)                   401920"));
  CHECK_THAT(text, Contains(" dense_s1 (Dense)            (None, 10)                      5130"));
  CHECK_THAT(text,
             Contains("Total params: 407050\nTrainable params: 407050\nNon-trainable params: 0"));
  CHECK(model.count_params() == 407050);
  CHECK(model.get_layer("dense_s").count_params() == 401920);
  CHECK_THROWS_WITH(model.get_layer("nope"), Contains("flatten_s, dense_s, dense_s1"));
  model.pop();
  CHECK(model.layers().size() == 2);
}

TEST_CASE("fit solves a small classification problem; evaluate and predict agree", "[model]") {
  auto [x, y] = blobs(100, 1);
  auto [x_test, y_test] = blobs(50, 2);
  k::Sequential model({k::layers::Dense(16, "relu", k::Shape{2}), k::layers::Dense(3, "softmax")});
  model.compile(k::optimizers::Adam(0.05), k::losses::SparseCategoricalCrossentropy(),
                {"accuracy"});
  k::History h =
      model.fit(x, y, {.epochs = 8, .batch_size = 32, .validation_split = 0.2, .verbose = 0});
  REQUIRE(h.history.at("loss").size() == 8);
  CHECK(h.history.at("loss").back() < h.history.at("loss").front());
  CHECK(h.history.at("accuracy").back() > 0.9);
  CHECK(h.history.count("val_loss") == 1);
  CHECK(h.history.count("val_accuracy") == 1);
  std::vector<float> scores = model.evaluate(x_test, y_test);
  REQUIRE(scores.size() == 2);
  CHECK(scores[1] > 0.9f);
  k::Tensor probs = model.predict(x_test, 64);
  CHECK(probs.shape() == k::Shape{150, 3});
  float acc =
      k::reduce_mean(k::cast(k::equal(k::argmax(probs, 1), k::cast(y_test, k::i64)), k::f32))
          .item<float>();
  CHECK(acc == Approx(scores[1]).margin(1e-6));
  // The loss evaluate reports is the mean sparse cross-entropy of predict's outputs.
  float loss = k::losses::SparseCategoricalCrossentropy()(y_test, probs).item<float>();
  CHECK(loss == Approx(scores[0]).epsilon(1e-4));
}

TEST_CASE("validation_split validates on the last rows, which it does not train on", "[model]") {
  auto [x, y] = blobs(100, 4);  // 300 samples, 100 of each class in turn
  k::Sequential model({k::layers::Dense(3, "softmax", k::Shape{2})});
  model.compile(k::optimizers::SGD(0.1), k::losses::SparseCategoricalCrossentropy(), {"accuracy"});
  k::History h =
      model.fit(x, y, {.epochs = 1, .batch_size = 16, .validation_split = 0.25, .verbose = 0});
  // Validation runs after the epoch's training: the weights evaluate gets now.
  std::vector<float> last =
      model.evaluate(x.index({k::Slice(225, 300)}), y.index({k::Slice(225, 300)}));
  CHECK(h.history.at("val_loss").at(0) == Approx(last[0]).epsilon(1e-5));
  CHECK(h.history.at("val_accuracy").at(0) == Approx(last[1]).epsilon(1e-5));
  std::vector<float> first = model.evaluate(x.index({k::Slice(0, 75)}), y.index({k::Slice(0, 75)}));
  CHECK(first[0] != Approx(last[0]).epsilon(1e-5));
  // A split too small to hold out a row (1 - 1e-17 is 1.0): nothing to validate on.
  CHECK_THROWS_WITH(model.fit(x, y, {.epochs = 1, .validation_split = 1e-17, .verbose = 0}),
                    Contains("no samples to evaluate"));
}

TEST_CASE("fit's callbacks stop training, and History writes CSV", "[model]") {
  auto [x, y] = blobs(20, 3);
  k::Sequential model({k::layers::Dense(3, "softmax", k::Shape{2})});
  model.compile(k::optimizers::SGD(0.1), k::losses::SparseCategoricalCrossentropy(), {"accuracy"});
  int64_t calls = 0;
  k::History h =
      model.fit(x, y,
                {.epochs = 10,
                 .batch_size = 16,
                 .verbose = 0,
                 .callbacks = {[&](int64_t epoch, const std::map<std::string, double>& logs) {
                   ++calls;
                   CHECK(logs.count("loss") == 1);
                   return epoch < 2;
                 }}});
  CHECK(calls == 3);
  CHECK(h.epochs.size() == 3);
  std::string path = "model_test_history.csv";
  h.to_csv(path);
  std::ifstream in(path);
  std::string header;
  std::getline(in, header);
  CHECK(header == "epoch,accuracy,loss");
  std::remove(path.c_str());
}

TEST_CASE("fit and friends reject bad input with clear errors", "[model]") {
  k::Sequential model({k::layers::Flatten(k::Shape{2, 2}), k::layers::Dense(3, "softmax")});
  k::Tensor x = k::ones({5, 2, 2});
  CHECK_THROWS_WITH(model.fit(x, k::constant({0, 1, 2, 0, 1})), Contains("compile()"));
  model.compile(k::optimizers::SGD(), k::losses::SparseCategoricalCrossentropy());
  CHECK_THROWS_WITH(model.fit(x, k::constant({0, 1, 2})),
                    Contains("same number of samples") && Contains("5 and 3"));
  CHECK_THROWS_AS(model.fit(x, k::constant({0, 1, 2, 3, 1}), {.verbose = 0}), k::IndexError);
  CHECK_THROWS_WITH(model.fit(x, k::constant({0, 1, 2, 3, 1}), {.verbose = 0}),
                    Contains("label 3 of sample 3"));
  CHECK_THROWS_AS(model.predict(k::ones({5, 3, 2})), k::ShapeError);
  CHECK_THROWS_AS(model.fit(x, k::constant({0, 1, 2, 0, 1}), {.batch_size = 0}), k::ValueError);
  CHECK_THROWS_AS(k::layers::Dense(3, "swish"), k::ValueError);
  CHECK_THROWS_AS(model.compile(k::optimizers::SGD(), k::losses::MeanSquaredError(), {"f1_score"}),
                  k::ValueError);
}

TEST_CASE("convolutional layers: shapes and parameter counts of the tutorial convnet", "[model]") {
  k::Sequential model({
      k::layers::Reshape(k::Shape{28, 28, 1}, k::Shape{28, 28}),
      k::layers::Conv2D(32, {5, 5}, {1, 1}, "same", "relu"),
      k::layers::MaxPooling2D({2, 2}),
      k::layers::Conv2D(64, {5}, {1, 1}, "same", "relu"),
      k::layers::MaxPooling2D({2, 2}),
      k::layers::Flatten(),
      k::layers::Dense(1024, "relu"),
      k::layers::Dense(10, "softmax"),
  });
  std::string text = model.summary_text();
  CHECK_THAT(text, Contains("(None, 28, 28, 32)") && Contains("(None, 14, 14, 32)") &&
                       Contains("(None, 7, 7, 64)") && Contains("(None, 3136)"));
  // A "name (Type)" wider than its column goes on over the next line, as Keras 2 wraps it, and
  // leaves a space before the shape.
  CHECK_THAT(text, Contains(" (MaxPooling2D (None, 14, 14, 32)") && Contains("\n )   "));
  CHECK(model.layers()[1]->count_params() == 5 * 5 * 1 * 32 + 32);
  CHECK(model.layers()[3]->count_params() == 5 * 5 * 32 * 64 + 64);
  CHECK(model.layers()[6]->count_params() == 3136 * 1024 + 1024);
  CHECK(model.count_params() == 832 + 51264 + 3212288 + 10250);

  k::layers::ZeroPadding2D zp(1);
  CHECK(zp(k::ones({2, 3, 3, 1})).shape() == k::Shape{2, 5, 5, 1});
  CHECK(k::reduce_sum(zp(k::ones({1, 3, 3, 1}))).item<float>() == 9.f);
  k::layers::AveragePooling2D avg({2, 2});
  CHECK(avg(k::ones({1, 4, 4, 2})).to_vector<float>() == std::vector<float>(8, 1.f));
}

TEST_CASE("History plots loss and accuracy to an SVG", "[model]") {
  k::History h;
  h.epochs = {0, 1, 2};
  h.history["loss"] = {1.0, 0.6, 0.4};
  h.history["val_loss"] = {1.1, 0.7, 0.5};
  h.history["accuracy"] = {0.5, 0.7, 0.8};
  std::string path = "model_test_curves.svg";
  h.plot(path);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::string svg = text.str();
  CHECK(svg.rfind("<svg", 0) == 0);
  CHECK_THAT(svg, Contains(">loss</text>") && Contains(">accuracy</text>") &&
                      Contains(">epoch</text>") && Contains("validation") && Contains("</svg>"));
  CHECK(std::count(svg.begin(), svg.end(), '\n') > 10);
  std::remove(path.c_str());
  CHECK_THROWS_AS(h.plot("/nonexistent-dir/x.svg"), k::IOError);
}

TEST_CASE("save_weights and load_weights round-trip and check names and shapes", "[model]") {
  auto make = [](int64_t hidden) {
    return k::Sequential(
        {k::layers::Dense(hidden, "relu", k::Shape{3}, true, "glorot_uniform", "zeros", "hidden"),
         k::layers::Dense(2, "", std::nullopt, true, "glorot_uniform", "zeros", "out")});
  };
  k::Sequential a = make(4), b = make(4), c = make(5);
  std::string path = "model_test_weights.safetensors";
  a.save_weights(path);
  b.load_weights(path);
  k::Tensor x = k::random_normal({2, 3}, 0.0, 1.0, 9);
  CHECK(a(x).to_vector<float>() == b(x).to_vector<float>());
  CHECK_THROWS_AS(c.load_weights(path), k::ValueError);
  CHECK_THROWS_WITH(c.load_weights(path), Contains("'hidden/kernel' is f32[3,4] in the file but "
                                                   "f32[3,5] in the model"));
  CHECK_THROWS_WITH(c.load_weights(path),
                    Contains("nor by position (weight 0 is f32[3,4] in the file ('hidden/kernel') "
                             "but f32[3,5] in the model ('hidden/kernel')"));
  // Another model of other layer names and the same weight types loads by position.
  k::Sequential renamed({k::layers::Dense(4, "relu", k::Shape{3}), k::layers::Dense(2)});
  renamed.load_weights(path);
  CHECK(renamed(x).to_vector<float>() == a(x).to_vector<float>());
  k::Sequential shorter({k::layers::Dense(2, "", k::Shape{3})});
  CHECK_THROWS_WITH(shorter.load_weights(path), Contains("the file has 4 weights, the model 2"));
  k::Sequential unbuilt({k::layers::Dense(2)});
  CHECK_THROWS_WITH(unbuilt.save_weights(path), Contains("not built"));
  CHECK_THROWS_AS(b.load_weights("no-such-file.safetensors"), k::IOError);
  std::remove(path.c_str());
}

TEST_CASE("EarlyStopping and ModelCheckpoint", "[model]") {
  auto [x, y] = blobs(30, 5);
  k::Sequential model({k::layers::Dense(3, "softmax", k::Shape{2})});
  model.compile(k::optimizers::SGD(0.0), k::losses::SparseCategoricalCrossentropy(), {"accuracy"});
  // lr 0: the loss never improves after the first epoch, so patience 2 stops at epoch 2.
  k::callbacks::EarlyStopping stop("loss", /*patience=*/2);
  std::string path = "model_test_checkpoint.safetensors";
  k::callbacks::ModelCheckpoint checkpoint(path, "loss", /*save_best_only=*/true);
  k::History h = model.fit(x, y,
                           {.epochs = 20,
                            .batch_size = 90,
                            .shuffle = false,
                            .verbose = 0,
                            .callbacks = {stop, checkpoint}});
  CHECK(h.epochs.size() == 3);
  CHECK(stop.stopped_epoch() == 2);
  k::Sequential copy({k::layers::Dense(3, "softmax", k::Shape{2})});
  // Its layer is dense_N, not the saved name: the file's weights go by position, as Keras 3's.
  copy.load_weights(path);
  CHECK(copy(x).to_vector<float>() == model(x).to_vector<float>());
  std::remove(path.c_str());

  k::callbacks::EarlyStopping bad_monitor("val_auc");
  CHECK_THROWS_WITH(model.fit(x, y, {.epochs = 2, .verbose = 0, .callbacks = {bad_monitor}}),
                    Contains("no 'val_auc'"));
  CHECK_THROWS_AS(k::callbacks::EarlyStopping("loss", 0, 0.0, "sideways"), k::ValueError);

  // restore_best_weights puts back the best epoch's weights.
  k::Sequential learner({k::layers::Dense(3, "softmax", k::Shape{2})});
  learner.compile(k::optimizers::SGD(0.5), k::losses::SparseCategoricalCrossentropy());
  k::callbacks::EarlyStopping restore("loss", 0, 10.0, "min", /*restore_best_weights=*/true);
  std::vector<float> before;
  k::History h2 =
      learner.fit(x, y,
                  {.epochs = 5,
                   .batch_size = 90,
                   .verbose = 0,
                   .callbacks = {restore, [&](int64_t epoch, const k::Logs&) {
                                   if (epoch == 0)
                                     before = learner.weights()[0].value().to_vector<float>();
                                   return true;
                                 }}});
  CHECK(h2.epochs.size() == 2);  // min_delta 10: epoch 1 never counts as better
  CHECK(learner.weights()[0].value().to_vector<float>() == before);
}

TEST_CASE("Dropout drops a fraction in training, a new mask each step, eager and compiled",
          "[model]") {
  k::layers::Dropout drop(0.4, 123);
  k::Tensor x = k::ones({200, 50});
  CHECK(drop(x, /*training=*/false).to_vector<float>() == x.to_vector<float>());
  k::Tensor a = drop(x, true), b = drop(x, true);
  auto kept = [](const k::Tensor& t) {
    return k::reduce_mean(k::cast(k::greater(t, 0.f), k::f32)).item<float>();
  };
  CHECK(kept(a) == Approx(0.6).margin(0.02));
  CHECK(k::reduce_max(a).item<float>() == Approx(1.f / 0.6f));
  CHECK(a.to_vector<float>() != b.to_vector<float>());
  // In a compiled function the step counter is a Variable update: every call draws anew.
  auto f = k::function([&](const k::Tensor& in) { return drop(in, true); });
  k::Tensor c = f(x), d = f(x);
  CHECK(c.to_vector<float>() != d.to_vector<float>());
  CHECK(kept(c) == Approx(0.6).margin(0.02));
  CHECK(f.trace_count() == 1);
  CHECK(drop.count_params() == 0);
  CHECK_THROWS_AS(k::layers::Dropout(1.0), k::ValueError);
}

TEST_CASE("BatchNormalization normalizes with batch statistics in training and moving ones after",
          "[model]") {
  k::layers::BatchNormalization bn(-1, /*momentum=*/0.9);
  k::Tensor x = k::random_normal({64, 3}, 5.0, 2.0, 11);
  k::Tensor y = bn(x, /*training=*/true);
  CHECK(bn.count_params() == 12);
  CHECK(bn.trainable_weights().size() == 2);
  CHECK(bn.non_trainable_weights().size() == 2);
  std::vector<float> mean = k::reduce_mean(y, 0).to_vector<float>();
  std::vector<float> var = k::reduce_mean(k::square(y), 0).to_vector<float>();
  for (int c = 0; c < 3; ++c) {
    CHECK(mean[c] == Approx(0.f).margin(1e-5));
    CHECK(var[c] == Approx(1.f).epsilon(2e-3));  // var / (var + 1e-3)
  }
  // moving = 0.9·moving + 0.1·batch
  std::vector<float> batch_mean = k::reduce_mean(x, 0).to_vector<float>();
  std::vector<float> moving = bn.non_trainable_weights()[0].value().to_vector<float>();
  for (int c = 0; c < 3; ++c)
    CHECK(moving[c] == Approx(0.1f * batch_mean[c]).epsilon(1e-5));
  // Inference uses the moving statistics: (x − m)/sqrt(v + eps).
  k::Tensor z = bn(x, /*training=*/false);
  std::vector<float> mv = bn.non_trainable_weights()[1].value().to_vector<float>();
  float expect = (x.to_vector<float>()[0] - moving[0]) / std::sqrt(mv[0] + 1e-3f);
  CHECK(z.to_vector<float>()[0] == Approx(expect).epsilon(1e-5));
  // Trains inside fit (moving statistics become updates of the compiled step).
  k::Sequential model({k::layers::Dense(8, "relu", k::Shape{3}), k::layers::BatchNormalization(),
                       k::layers::Dense(2, "softmax")});
  model.compile(k::optimizers::Adam(0.01), k::losses::SparseCategoricalCrossentropy());
  k::Tensor labels = k::cast(k::greater(k::reduce_sum(x, 1), 15.f), k::i32);
  k::History h = model.fit(x, labels, {.epochs = 3, .batch_size = 16, .verbose = 0});
  CHECK(h.history.at("loss").back() < h.history.at("loss").front());
  CHECK_THROWS_AS(k::layers::BatchNormalization(-1, 1.5), k::ValueError);
}

// Keras's layer.build(input_shape) marks the layer built: a later call uses the weights it made
// instead of making new ones.
TEST_CASE("a layer built by hand is built: its first call makes no new weights", "[model]") {
  k::layers::Dense dense(4, "", std::nullopt, true, "ones", "zeros");
  dense.build(k::Shape{2, 3});
  CHECK(dense.built());
  REQUIRE(dense.weights().size() == 2);
  dense.kernel().assign(k::fill({3, 4}, 2.f));
  k::Tensor y = dense(k::ones({2, 3}));
  CHECK(dense.weights().size() == 2);
  CHECK(dense.count_params() == 16);
  CHECK(y.to_vector<float>() == std::vector<float>(8, 6.f));  // the kernel assigned, not a new one

  // A layer without weights of its own (the base class's build) too.
  k::layers::Flatten flatten;
  flatten.build(k::Shape{2, 3, 4});
  CHECK(flatten.built());

  // In a model: built layers are not built again when the model is.
  k::layers::Dense first(2, "", std::nullopt, true, "ones", "zeros");
  first.build(k::Shape{1, 3});
  k::Sequential model({first, k::layers::Dense(1)});
  model.build(k::Shape{3});
  CHECK(model.weights().size() == 4);
  CHECK(model.count_params() == 8 + 3);
}

// Keras builds a Sequential as soon as its first layer declares the input shape: weights,
// count_params and summary before any call.
TEST_CASE("a Sequential whose first layer declares input_shape is built when made", "[model]") {
  k::Sequential model({k::layers::Dense(4, "relu", k::Shape{3}), k::layers::Dense(2)});
  CHECK(model.built());
  CHECK(model.weights().size() == 4);
  CHECK(model.count_params() == 3 * 4 + 4 + 4 * 2 + 2);
  CHECK(model.layers()[1]->built());

  // add() builds each new layer on the ones before it.
  model.add(k::layers::Dense(5));
  CHECK(model.built());
  CHECK(model.weights().size() == 6);
  CHECK(model.layers()[2]->weights()[0].shape() == k::Shape{2, 5});

  // Flatten(Shape{28, 28}) first, as the tutorials write it.
  k::Sequential mnist;
  mnist.add(k::layers::Flatten(k::Shape{28, 28}));
  CHECK(mnist.built());
  mnist.add(k::layers::Dense(10));
  CHECK(mnist.count_params() == 7850);
  CHECK_THAT(mnist.summary_text(), Contains("Total params: 7850"));

  // Without a declared input nothing is built until the first call or build().
  k::Sequential lazy({k::layers::Dense(4), k::layers::Dense(2)});
  CHECK_FALSE(lazy.built());
  CHECK(lazy.weights().empty());
}

// As Keras's add(), a layer that does not fit the ones before it is refused when added, and the
// model stays as it was.
TEST_CASE("adding a layer that does not fit a built Sequential is an error that adds nothing",
          "[model]") {
  k::Sequential model({k::layers::Dense(4, "", k::Shape{3})});
  CHECK_THROWS_AS(model.add(k::layers::Conv2D(2, {3, 3})), k::Error);
  CHECK(model.layers().size() == 1);
  CHECK(model.built());
  model.add(k::layers::Dense(2));  // still usable
  CHECK(model.predict(k::ones({1, 3})).shape() == k::Shape{1, 2});
}
