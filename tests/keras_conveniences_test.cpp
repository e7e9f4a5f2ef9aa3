// Keras-level conveniences: compile with Keras's names, fit and evaluate on datasets, load_model
// that predicts, evaluates and summarizes, History::plot for any number of epochs.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <atomic>
#include <regex>
#include <string>

#include "file_test_util.h"
#include "model_test_util.h"

namespace k = kiln;
using Catch::Contains;
using k::testing::blobs;
using k::testing::count_of;

TEST_CASE("optimizers::get and losses::get know Keras's names and defaults", "[keras]") {
  struct Row {
    const char* name;
    float lr;
  };
  for (Row row :
       {Row{"sgd", 0.01f}, Row{"SGD", 0.01f}, Row{"rmsprop", 0.001f}, Row{"RMSprop", 0.001f},
        Row{"adam", 0.001f}, Row{"Adam", 0.001f}, Row{"adagrad", 0.001f}}) {
    INFO(row.name);
    std::shared_ptr<k::optimizers::Optimizer> opt = k::optimizers::get(row.name);
    CHECK(opt->learning_rate().item<float>() == Approx(row.lr));
  }
  CHECK(dynamic_cast<k::optimizers::SGD*>(k::optimizers::get("sgd").get()) != nullptr);
  CHECK(dynamic_cast<k::optimizers::RMSprop*>(k::optimizers::get("rmsprop").get()) != nullptr);
  CHECK(dynamic_cast<k::optimizers::Adam*>(k::optimizers::get("adam").get()) != nullptr);
  CHECK(dynamic_cast<k::optimizers::Adagrad*>(k::optimizers::get("adagrad").get()) != nullptr);

  for (auto [alias, name] : std::vector<std::pair<const char*, const char*>>{
           {"mse", "mean_squared_error"},
           {"MeanSquaredError", "mean_squared_error"},
           {"mae", "mean_absolute_error"},
           {"mean_absolute_error", "mean_absolute_error"},
           {"binary_crossentropy", "binary_crossentropy"},
           {"CategoricalCrossentropy", "categorical_crossentropy"},
           {"sparse_categorical_crossentropy", "sparse_categorical_crossentropy"}}) {
    INFO(alias);
    std::shared_ptr<k::losses::Loss> loss = k::losses::get(alias);
    CHECK(loss->name() == name);
    CHECK(loss->reduction() == k::losses::Reduction::sum_over_batch_size);
    CHECK(loss->get_config().at("name") == name);
  }
  // The string form computes what the object does.
  k::Tensor y = k::constant({0, 2}), p = k::constant({{0.7f, 0.2f, 0.1f}, {0.1f, 0.3f, 0.6f}});
  CHECK(k::losses::get("sparse_categorical_crossentropy")->operator()(y, p).item<float>() ==
        k::losses::SparseCategoricalCrossentropy()(y, p).item<float>());
}

TEST_CASE("a loss's get_config round-trips through from_config", "[keras]") {
  std::vector<std::shared_ptr<k::losses::Loss>> losses{
      std::make_shared<k::losses::MeanSquaredError>(k::losses::Reduction::sum),
      std::make_shared<k::losses::MeanAbsoluteError>(),
      std::make_shared<k::losses::BinaryCrossentropy>(true, 0.25),
      std::make_shared<k::losses::CategoricalCrossentropy>(true, 0.1, 0,
                                                           k::losses::Reduction::none),
      std::make_shared<k::losses::SparseCategoricalCrossentropy>(true)};
  for (const auto& loss : losses) {
    INFO(loss->name());
    std::map<std::string, std::string> config = loss->get_config();
    CHECK(k::losses::from_config(config)->get_config() == config);
  }
  CHECK(losses[2]->get_config().at("from_logits") == "true");
  CHECK(losses[2]->get_config().at("label_smoothing") == "0.25");
  CHECK(losses[3]->get_config().at("axis") == "0");
  CHECK(losses[3]->get_config().at("reduction") == "none");
}

TEST_CASE("compile takes Keras's string names and trains as the objects do", "[keras]") {
  auto [x, y] = blobs(50, 1);
  auto make = [] {
    k::set_random_seed(7);  // the same initial weights for both
    return k::Sequential(
        {k::layers::Dense(8, "relu", k::Shape{2}), k::layers::Dense(3, "softmax")});
  };
  k::Sequential by_name = make(), by_object = make();
  by_name.compile("adam", "sparse_categorical_crossentropy", {"accuracy"});
  by_object.compile(k::optimizers::Adam(), k::losses::SparseCategoricalCrossentropy(),
                    {"accuracy"});
  k::FitOptions options{.epochs = 3, .batch_size = 30, .shuffle = false, .verbose = 0};
  k::History a = by_name.fit(x, y, options), b = by_object.fit(x, y, options);
  CHECK(a.history.at("loss") == b.history.at("loss"));
  CHECK(a.history.at("accuracy") == b.history.at("accuracy"));
  // Mixed, as Keras allows: the named loss is the one evaluate computes.
  const k::Tensor probs = by_name.predict(x);
  by_name.compile(k::optimizers::SGD(0.1), "mse");
  std::vector<float> mse = by_name.evaluate(x, k::one_hot(y, 3));
  REQUIRE(mse.size() == 1);
  CHECK(mse[0] ==
        Approx(k::losses::MeanSquaredError()(k::one_hot(y, 3), probs).item<float>()).epsilon(1e-5));
  by_name.compile("rmsprop", k::losses::SparseCategoricalCrossentropy(true));
  std::vector<float> logits_loss = by_name.evaluate(x, y);
  REQUIRE(logits_loss.size() == 1);
  CHECK(
      logits_loss[0] ==
      Approx(k::losses::SparseCategoricalCrossentropy(true)(y, probs).item<float>()).epsilon(1e-5));
}

TEST_CASE("fit, evaluate and predict take a batched dataset of (x, y) pairs", "[keras]") {
  auto [x, y] = blobs(40, 2);  // 120 samples
  auto [x_val, y_val] = blobs(10, 3);
  auto make = [] {
    k::set_random_seed(11);
    k::Sequential m({k::layers::Dense(8, "relu", k::Shape{2}), k::layers::Dense(3, "softmax")});
    m.compile("adam", "sparse_categorical_crossentropy", {"accuracy"});
    return m;
  };
  k::Sequential on_tensors = make(), on_dataset = make();
  k::History a = on_tensors.fit(x, y,
                                {.epochs = 3,
                                 .batch_size = 32,
                                 .validation_data = k::ValidationData(x_val, y_val),
                                 .shuffle = false,
                                 .verbose = 0});
  // Every epoch iterates the dataset afresh: the map runs once per element and epoch.
  std::atomic<int> mapped{0};
  auto train = k::data::Dataset::from_tensor_slices({x, y})
                   .map([&](const k::data::Element& e) {
                     ++mapped;
                     return e;
                   })
                   .batch(32);
  auto val = k::data::Dataset::from_tensor_slices({x_val, y_val}).batch(32);
  k::History b = on_dataset.fit(train, {.epochs = 3, .validation_data = val, .verbose = 0});
  CHECK(mapped == 3 * 120);
  REQUIRE(b.history.at("loss").size() == 3);
  for (const char* key : {"loss", "accuracy", "val_loss", "val_accuracy"}) {
    INFO(key);
    for (size_t e = 0; e < 3; ++e)
      CHECK(b.history.at(key)[e] == Approx(a.history.at(key)[e]).epsilon(1e-5));
  }
  std::vector<float> on_ds = on_dataset.evaluate(val), on_t = on_dataset.evaluate(x_val, y_val);
  REQUIRE(on_ds.size() == 2);
  CHECK(on_ds[0] == Approx(on_t[0]).epsilon(1e-5));
  CHECK(on_ds[1] == on_t[1]);
  CHECK(on_dataset.predict(val).to_vector<float>() ==
        on_dataset.predict(x_val, 32).to_vector<float>());
  // Validation tensors also come as a pair, as before.
  k::History c = on_dataset.fit(train, {.validation_data = std::pair{x_val, y_val}, .verbose = 0});
  CHECK(c.history.count("val_loss") == 1);

  // An endless dataset runs steps_per_epoch batches an epoch.
  k::History d = on_dataset.fit(train.repeat(), {.epochs = 2, .verbose = 0, .steps_per_epoch = 5});
  CHECK(d.epochs.size() == 2);
  CHECK(mapped == 3 * 120 + 120 + 2 * (32 + 32 + 32 + 24 + 32));  // batches of 32, 32, 32, 24, 32
}

TEST_CASE(
    "load_model predicts any number of samples, evaluates with the saved compile() and "
    "summarizes",
    "[keras]") {
  k::testing::TempDir dir;
  auto [x, y] = blobs(30, 4);  // 90 samples
  k::Sequential model(
      {k::layers::Dense(8, "relu", k::Shape{2}, true, "glorot_uniform", "zeros", "hidden"),
       k::layers::Dense(3, "softmax", std::nullopt, true, "glorot_uniform", "zeros", "out")},
      "blob_model");
  model.compile("adam", "sparse_categorical_crossentropy", {"accuracy"});
  model.fit(x, y, {.epochs = 2, .verbose = 0});
  model.save(dir.file("saved"), /*batch_size=*/32);
  k::SavedModel loaded = k::load_model(dir.file("saved"));
  CHECK(loaded.name() == "blob_model");
  // 90 samples in saved batches of 32: the last one is padded.
  k::Tensor expect = model.predict(x);
  k::Tensor got = loaded.predict(x);
  REQUIRE(got.shape() == k::Shape{90, 3});
  std::vector<float> e = expect.to_vector<float>(), g = got.to_vector<float>();
  for (size_t i = 0; i < e.size(); ++i)
    CHECK(g[i] == Approx(e[i]).margin(1e-5));
  CHECK(loaded.predict(x.index({k::Slice(0, 5)})).shape() == k::Shape{5, 3});

  std::vector<float> want = model.evaluate(x, y), have = loaded.evaluate(x, y);
  REQUIRE(have.size() == 2);
  CHECK(have[0] == Approx(want[0]).epsilon(1e-4));
  CHECK(have[1] == Approx(want[1]));

  std::string text = loaded.summary_text();
  INFO(text);
  CHECK_THAT(text, Contains("Model: \"blob_model\" (saved)"));
  CHECK_THAT(text, Contains(" hidden") && Contains("kernel f32[2,8], bias f32[8]") &&
                       Contains("24") && Contains(" out") && Contains("27"));
  CHECK_THAT(text, Contains("Input: f32[32,2]") && Contains("Output: f32[32,3]") &&
                       Contains("Total params: 51") &&
                       Contains("Loss: sparse_categorical_crossentropy; metrics: accuracy"));

  // compile() on the loaded model replaces what was saved; its values are the model's own.
  loaded.compile("mse");
  model.compile("adam", "mse");
  std::vector<float> mse = loaded.evaluate(x, k::one_hot(y, 3));
  REQUIRE(mse.size() == 1);
  CHECK(mse[0] == Approx(model.evaluate(x, k::one_hot(y, 3))[0]).epsilon(1e-4));
  // Also with a summing reduction: both weigh each batch's loss by its size.
  loaded.compile(k::losses::SparseCategoricalCrossentropy(false, k::losses::Reduction::sum));
  model.compile("adam", k::losses::SparseCategoricalCrossentropy(false, k::losses::Reduction::sum));
  CHECK(loaded.evaluate(x, y)[0] ==
        Approx(model.evaluate(x, y, /*batch_size=*/32)[0]).epsilon(1e-4));

  // A model saved before compile() has no loss until compile().
  k::Sequential plain({k::layers::Dense(3, "softmax", k::Shape{2})});
  plain.save(dir.file("plain"));
  k::SavedModel bare = k::load_model(dir.file("plain"));
  CHECK_THAT(bare.summary_text(), Contains("Loss: none"));
  bare.compile(k::losses::SparseCategoricalCrossentropy(), {"accuracy"});
  plain.compile("sgd", k::losses::SparseCategoricalCrossentropy(), {"accuracy"});
  std::vector<float> bare_scores = bare.evaluate(x, y), plain_scores = plain.evaluate(x, y);
  REQUIRE(bare_scores.size() == 2);
  CHECK(bare_scores[0] == Approx(plain_scores[0]).epsilon(1e-4));
  CHECK(bare_scores[1] == Approx(plain_scores[1]));
}

namespace {
std::string plot_of(const k::History& h, const k::testing::TempDir& dir) {
  h.plot(dir.file("h.svg"));
  return k::testing::read_bytes(dir.file("h.svg"));
}
}  // namespace

TEST_CASE("History::plot draws axes, ticks, labels and markers for any number of epochs",
          "[keras]") {
  k::testing::TempDir dir;
  k::History one;
  one.epochs = {0};
  one.history["loss"] = {0.7};
  one.history["val_loss"] = {0.8};
  one.history["accuracy"] = {0.5};
  std::string svg = plot_of(one, dir);
  INFO(svg);
  // A single epoch is a point per series, on an axis with its tick.
  CHECK(count_of(svg, "<circle") == 3);
  CHECK(count_of(svg, ">epoch</text>") == 2);
  CHECK_THAT(svg, Contains(">1</text>"));
  CHECK_THAT(svg, Contains(">loss</text>") && Contains(">accuracy</text>") &&
                      Contains(">validation</text>") && Contains(">train</text>"));
  // Round value ticks that cover the values.
  CHECK_THAT(svg, Contains(">0.7</text>") && Contains(">0.8</text>"));
  CHECK(svg.find("<svg") == 0);
  CHECK(svg.find("loss") < svg.find("accuracy"));  // the loss chart first

  k::History many;
  for (int e = 0; e < 200; ++e) {
    many.epochs.push_back(e);
    many.history["loss"].push_back(1.0 / (1 + e));
  }
  svg = plot_of(many, dir);
  CHECK(count_of(svg, "<circle") == 0);  // too many for markers
  CHECK_THAT(svg, Contains(">20</text>") && Contains(">200</text>"));
  // At most about ten epoch ticks: 20, 40, ..., 200.
  std::regex tick("text-anchor=\"middle\">[0-9]+</text>");
  auto ticks =
      std::distance(std::sregex_iterator(svg.begin(), svg.end(), tick), std::sregex_iterator());
  CHECK(ticks >= 3);
  CHECK(ticks <= 12);

  k::History flat;
  flat.epochs = {0, 1};
  flat.history["loss"] = {0.5, 0.5};
  flat.history["accuracy"] = {std::nan(""), 1.0};
  svg = plot_of(flat, dir);
  CHECK_THAT(svg, Contains(">0.5</text>"));  // a constant series still gets a range
  CHECK(count_of(svg, "<circle") == 3);      // the NaN is skipped
  CHECK_THAT(svg, !Contains("nan"));

  k::History empty;
  CHECK_THAT(plot_of(empty, dir), Contains("no epochs recorded"));
}
