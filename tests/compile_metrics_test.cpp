// Metrics in compile(), by Keras name or as metric objects: fit's and evaluate's values (computed
// inside the compiled steps) equal those of the same metric object run by hand on predict's
// outputs; validation metrics; the names in History, its CSV and the progress lines; "accuracy"
// resolved from the loss and the shapes; and the errors for unknown or unsuitable metrics.
//
// fit runs with SGD(0): the weights never change, so each epoch's training metrics are those of
// the model's predictions on the training data.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "error_test_util.h"
#include "model_test_util.h"

namespace k = kiln;
namespace M = kiln::metrics;
using kiln::testing::blobs;
using kiln::testing::error_of;

namespace {

// The value of `m` (a fresh copy) updated with y_true and y_pred in one call, as a user would
// compute it by hand.
template <class Metric>
double by_hand(Metric m, const k::Tensor& y_true, const k::Tensor& y_pred) {
  m.reset_state();
  m.update_state(y_true, y_pred);
  return m.result_value();
}

// A by-hand reference: the name fit reports the metric under, and the metric object that
// computes it.
struct Reference {
  std::string name;
  std::shared_ptr<M::Metric> metric;
};

template <class Metric>
Reference ref(std::string name, Metric m) {
  return {std::move(name), std::make_shared<Metric>(std::move(m))};
}

double by_hand(const Reference& r, const k::Tensor& y_true, const k::Tensor& y_pred) {
  r.metric->reset_state();
  r.metric->update_state(y_true, y_pred);
  return r.metric->result_value();
}

// Checks fit's History (one epoch, with validation), evaluate's return values and their order
// against the references computed on predict's outputs.
void check_against_predict(k::Model& model, const std::vector<Reference>& refs, const k::Tensor& x,
                           const k::Tensor& y, const k::Tensor& x_val, const k::Tensor& y_val) {
  k::History h = model.fit(x, y,
                           {.epochs = 1,
                            .batch_size = 16,
                            .validation_data = k::ValidationData(x_val, y_val),
                            .verbose = 0});
  std::vector<float> scores = model.evaluate(x_val, y_val, 16);
  REQUIRE(scores.size() == refs.size() + 1);
  k::Tensor pred = model.predict(x);
  k::Tensor pred_val = model.predict(x_val);
  for (size_t i = 0; i < refs.size(); ++i) {
    const Reference& r = refs[i];
    INFO("metric " << r.name);
    REQUIRE(h.history.count(r.name) == 1);
    REQUIRE(h.history.count("val_" + r.name) == 1);
    double train = by_hand(r, y, pred);
    double val = by_hand(r, y_val, pred_val);
    CHECK(h.history.at(r.name)[0] == Approx(train).margin(1e-5));
    CHECK(h.history.at("val_" + r.name)[0] == Approx(val).margin(1e-5));
    CHECK(scores[i + 1] == Approx(val).margin(1e-5));
  }
}

// Three-class blobs with one-hot labels (f32).
std::pair<k::Tensor, k::Tensor> one_hot_blobs(int64_t per_class, uint64_t seed) {
  auto [x, y] = blobs(per_class, seed);
  return {x, k::one_hot(y, 3)};
}

}  // namespace

TEST_CASE("compile metrics with one-hot labels match the metric objects on predict's outputs",
          "[compile_metrics]") {
  auto [x, y] = one_hot_blobs(30, 1);  // 90 samples: batches of 16 and a last one of 10
  auto [x_val, y_val] = one_hot_blobs(10, 2);
  k::Sequential model({k::layers::Dense(3, "softmax", k::Shape{2})});
  model.compile(
      k::optimizers::SGD(0.0), "categorical_crossentropy",
      {"accuracy", "categorical_accuracy", "top_k_categorical_accuracy",
       M::TopKCategoricalAccuracy(1, "top1"), "mse", "mae", "rmse", "mean_squared_error",
       "precision", "recall", "auc", M::AUC(50, "auc50"), M::Precision(0.3, "p03"), "Recall"});
  check_against_predict(
      model,
      {ref("accuracy", M::CategoricalAccuracy()),
       ref("categorical_accuracy", M::CategoricalAccuracy()),
       ref("top_k_categorical_accuracy", M::TopKCategoricalAccuracy()),
       ref("top1", M::TopKCategoricalAccuracy(1)), ref("mse", M::MeanSquaredError()),
       ref("mae", M::MeanAbsoluteError()), ref("rmse", M::RootMeanSquaredError()),
       ref("mean_squared_error", M::MeanSquaredError()), ref("precision", M::Precision()),
       ref("recall", M::Recall()), ref("auc", M::AUC()), ref("auc50", M::AUC(50)),
       ref("p03", M::Precision(0.3)), ref("Recall", M::Recall())},
      x, y, x_val, y_val);
}

TEST_CASE("compile metrics with class-id labels match the metric objects", "[compile_metrics]") {
  auto [x, y] = blobs(30, 3);
  auto [x_val, y_val] = blobs(10, 4);
  k::Sequential model({k::layers::Dense(3, "softmax", k::Shape{2})});
  model.compile(k::optimizers::SGD(0.0), "sparse_categorical_crossentropy",
                {"acc", "sparse_categorical_accuracy", "sparse_top_k_categorical_accuracy",
                 M::SparseTopKCategoricalAccuracy(2, "top2"), M::SparseCategoricalAccuracy("sca")});
  check_against_predict(
      model,
      {ref("acc", M::SparseCategoricalAccuracy()),
       ref("sparse_categorical_accuracy", M::SparseCategoricalAccuracy()),
       ref("sparse_top_k_categorical_accuracy", M::SparseTopKCategoricalAccuracy()),
       ref("top2", M::SparseTopKCategoricalAccuracy(2)),
       ref("sca", M::SparseCategoricalAccuracy())},
      x, y, x_val, y_val);
  // Labels as (n, 1) work the same.
  std::vector<float> flat = model.evaluate(x_val, y_val);
  std::vector<float> column = model.evaluate(x_val, k::reshape(y_val, k::Shape{30, 1}));
  REQUIRE(column.size() == flat.size());
  for (size_t i = 0; i < flat.size(); ++i)
    CHECK(column[i] == Approx(flat[i]).margin(1e-6));
}

TEST_CASE("compile metrics for a binary classifier: accuracy is binary accuracy",
          "[compile_metrics]") {
  // Class 0 of the blobs against the rest, labels of shape (n,) for a (n, 1) sigmoid output.
  auto binary = [](uint64_t seed) {
    auto [x, y] = blobs(20, seed);
    return std::pair{x, k::cast(k::equal(y, 0), k::f32)};
  };
  auto [x, y] = binary(5);
  auto [x_val, y_val] = binary(6);
  k::Sequential model({k::layers::Dense(1, "sigmoid", k::Shape{2})});
  model.compile(k::optimizers::SGD(0.0), k::losses::BinaryCrossentropy(),
                {"accuracy", M::BinaryAccuracy(0.7, "ba07"), "precision", "recall", "auc",
                 M::Recall(0.2, "r02")});
  k::Tensor y_col = k::reshape(y, k::Shape{60, 1}), y_val_col = k::reshape(y_val, k::Shape{60, 1});
  check_against_predict(model,
                        {ref("accuracy", M::BinaryAccuracy()), ref("ba07", M::BinaryAccuracy(0.7)),
                         ref("precision", M::Precision()), ref("recall", M::Recall()),
                         ref("auc", M::AUC()), ref("r02", M::Recall(0.2))},
                        x, y_col, x_val, y_val_col);
  // Labels of shape (n,) for the (n, 1) output give the same values (Keras's rank fix-up).
  std::vector<float> col = model.evaluate(x_val, y_val_col);
  std::vector<float> flat = model.evaluate(x_val, y_val);
  for (size_t i = 0; i < col.size(); ++i)
    CHECK(flat[i] == Approx(col[i]).margin(1e-6));
  k::Tensor pred = model.predict(x_val);
  CHECK(flat[1] == Approx(by_hand(M::BinaryAccuracy(), y_val_col, pred)).margin(1e-6));
}

TEST_CASE("compile metrics for a regression: errors match, training runs", "[compile_metrics]") {
  k::Tensor x = k::random_normal({64, 3}, 0.0, 1.0, 7);
  k::Tensor y = k::matmul(x, k::constant({{1.f}, {-2.f}, {0.5f}})) + 0.3f;
  k::Tensor x_val = k::random_normal({20, 3}, 0.0, 1.0, 8);
  k::Tensor y_val = k::matmul(x_val, k::constant({{1.f}, {-2.f}, {0.5f}})) + 0.3f;
  k::Sequential model({k::layers::Dense(1, "", k::Shape{3})});
  model.compile(
      k::optimizers::SGD(0.0), "mse",
      {"mae", "root_mean_squared_error", "mean_squared_error", M::MeanAbsoluteError("my_mae")});
  check_against_predict(
      model,
      {ref("mae", M::MeanAbsoluteError()),
       ref("root_mean_squared_error", M::RootMeanSquaredError()),
       ref("mean_squared_error", M::MeanSquaredError()), ref("my_mae", M::MeanAbsoluteError())},
      x, y, x_val, y_val);
  // With a learning rate the model learns, and the MSE metric follows the MSE loss.
  k::Sequential trained({k::layers::Dense(1, "", k::Shape{3})});
  trained.compile(k::optimizers::SGD(0.1), "mse", {"mse"});
  k::History h = trained.fit(x, y, {.epochs = 20, .batch_size = 16, .verbose = 0});
  CHECK(h.history.at("mse").back() < 0.1 * h.history.at("mse").front());
  for (size_t e = 0; e < h.epochs.size(); ++e)
    CHECK(h.history.at("mse")[e] == Approx(h.history.at("loss")[e]).epsilon(1e-4));
}

TEST_CASE("compile metrics: History keys, CSV columns, progress line, evaluate's order",
          "[compile_metrics]") {
  auto [x, y] = blobs(20, 9);
  k::Sequential model({k::layers::Dense(3, "softmax", k::Shape{2})});
  model.compile("sgd", "sparse_categorical_crossentropy",
                {M::SparseTopKCategoricalAccuracy(2, "top2"), "accuracy"});
  std::ostringstream captured;
  std::streambuf* old = std::cout.rdbuf(captured.rdbuf());
  k::History h;
  try {
    h = model.fit(x, y, {.epochs = 2, .batch_size = 16, .validation_split = 0.25, .verbose = 2});
  } catch (...) {
    std::cout.rdbuf(old);
    throw;
  }
  std::cout.rdbuf(old);
  std::vector<std::string> keys;
  for (const auto& [name, values] : h.history) {
    keys.push_back(name);
    CHECK(values.size() == 2);
  }
  CHECK(keys == std::vector<std::string>{"accuracy", "loss", "top2", "val_accuracy", "val_loss",
                                         "val_top2"});
  INFO(captured.str());
  CHECK_THAT(captured.str(), Catch::Contains(" - top2: "));
  CHECK_THAT(captured.str(), Catch::Contains(" - accuracy: "));
  CHECK_THAT(captured.str(), Catch::Contains(" - val_top2: "));
  CHECK_THAT(captured.str(), Catch::Contains(" - val_accuracy: "));
  std::string path = "compile_metrics_test_history.csv";
  h.to_csv(path);
  std::ifstream in(path);
  std::string header;
  std::getline(in, header);
  CHECK(header == "epoch,accuracy,loss,top2,val_accuracy,val_loss,val_top2");
  std::remove(path.c_str());
  // evaluate: the loss, then the metrics in compile()'s order.
  std::vector<float> scores = model.evaluate(x, y);
  REQUIRE(scores.size() == 3);
  k::Tensor pred = model.predict(x);
  CHECK(scores[1] == Approx(by_hand(M::SparseTopKCategoricalAccuracy(2), y, pred)).margin(1e-6));
  CHECK(scores[2] == Approx(by_hand(M::SparseCategoricalAccuracy(), y, pred)).margin(1e-6));
}

TEST_CASE("compile copies a metric object, and uses a shared one itself", "[compile_metrics]") {
  auto [x, ids] = blobs(10, 13);
  k::Tensor y = k::cast(k::equal(k::reshape(ids, k::Shape{30, 1}), 0), k::f32);
  M::BinaryAccuracy mine(0.5, "mine");
  mine.update_state(k::constant({1.f}), k::constant({0.9f}));
  k::Sequential model({k::layers::Dense(1, "sigmoid", k::Shape{2})});
  std::shared_ptr<M::Metric> shared = M::get("AUC");
  model.compile("sgd", "binary_crossentropy", {mine, shared});
  CHECK(M::get("AUC")->name() == "AUC");
  CHECK(M::get("rmse")->name() == "rmse");
  std::vector<float> scores = model.evaluate(x, y, 8);
  REQUIRE(scores.size() == 3);
  k::Tensor pred = model.predict(x);
  CHECK(scores[1] == Approx(by_hand(M::BinaryAccuracy(), y, pred)).margin(1e-6));
  CHECK(scores[2] == Approx(by_hand(M::AUC(), y, pred)).margin(1e-6));
  CHECK(mine.result_value() == 1.0);  // a copy was compiled: mine is untouched by evaluate
  CHECK(shared->result_value() == Approx(scores[2]).margin(1e-6));  // shared: it was evaluated
}

TEST_CASE("compile metrics: an unknown name is a ValueError listing the known ones",
          "[compile_metrics]") {
  k::Sequential model({k::layers::Dense(3, "softmax", k::Shape{2})});
  int line = __LINE__ + 1;
  std::string msg = error_of<k::ValueError>([&] { model.compile("sgd", "mse", {"f1_score"}); });
  kiln::testing::check_message_at(
      msg,
      {"unknown metric 'f1_score'", "accuracy", "mse", "auc", "precision", "recall",
       "sparse_top_k_categorical_accuracy", "root_mean_squared_error"},
      "compile_metrics_test.cpp", line);
  msg = error_of<k::ValueError>([] { M::get("nope"); });
  CHECK_THAT(msg, Catch::Contains("unknown metric 'nope'"));
  // Two metrics under one name, or a metric named like the loss.
  msg = error_of<k::ValueError>([&] {
    model.compile("sgd", "mse", {"mse", M::MeanSquaredError("mse")});
  });
  CHECK_THAT(msg, Catch::Contains("two metrics would report as 'mse'"));
  msg =
      error_of<k::ValueError>([&] { model.compile("sgd", "mse", {M::MeanAbsoluteError("loss")}); });
  CHECK_THAT(msg, Catch::Contains("'loss'"));
}

TEST_CASE("compile metrics unsuitable for the output are clear errors at fit's line",
          "[compile_metrics]") {
  auto [x, y] = blobs(10, 11);  // class ids 0..2
  k::Sequential model({k::layers::Dense(10, "softmax", k::Shape{2})});
  model.compile("sgd", "sparse_categorical_crossentropy", {"accuracy", "auc"});
  std::string msg = error_of<k::ShapeError>([&] { model.fit(x, y, {.verbose = 0}); });
  kiln::testing::check_message_at(msg, {"auc", "class ids", "(30,)", "(30, 10)", "10 classes"},
                                  "compile_metrics_test.cpp", __LINE__ - 2);
  msg = error_of<k::ShapeError>([&] { model.evaluate(x, y); });
  CHECK_THAT(msg, Catch::Contains("auc"));

  model.compile("sgd", "sparse_categorical_crossentropy", {"mse"});
  int line = __LINE__ + 1;
  msg = error_of<k::ShapeError>([&] { model.fit(x, y, {.verbose = 0}); });
  kiln::testing::check_message_at(msg, {"mse", "same shape"}, "compile_metrics_test.cpp", line);

  model.compile("sgd", "sparse_categorical_crossentropy", {"categorical_accuracy"});
  msg = error_of<k::ShapeError>([&] { model.fit(x, y, {.verbose = 0}); });
  CHECK_THAT(msg, Catch::Contains("one-hot"));

  model.compile("sgd", "sparse_categorical_crossentropy", {M::Mean("m")});
  msg = error_of<k::ValueError>([&] { model.fit(x, y, {.verbose = 0}); });
  CHECK_THAT(msg, Catch::Contains("not (y_true, y_pred)"));
}

TEST_CASE("compile metrics: save and load_model restore them", "[compile_metrics]") {
  auto [x, y] = blobs(10, 12);
  k::Sequential model({k::layers::Dense(3, "softmax", k::Shape{2})});
  model.compile(
      "sgd", "sparse_categorical_crossentropy",
      {"acc", "sparse_top_k_categorical_accuracy", M::SparseTopKCategoricalAccuracy(5, "top5")});
  std::string dir = "compile_metrics_test_model";
  model.save(dir, 30);
  k::SavedModel loaded = k::load_model(dir);
  std::vector<float> expected = model.evaluate(x, y);
  std::vector<float> got = loaded.evaluate(x, y);
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i)
    CHECK(got[i] == Approx(expected[i]).margin(1e-5));
  std::filesystem::remove_all(dir);
}
