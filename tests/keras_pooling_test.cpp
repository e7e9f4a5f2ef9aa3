// Global pooling layers (GlobalAveragePooling1D/2D, GlobalMaxPooling1D/2D) and Dense on inputs of
// rank > 2: values against hand-computed numbers, keepdims, training, save/load, errors.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <string>
#include <vector>

#include "error_test_util.h"
#include "file_test_util.h"

namespace k = kiln;
using Catch::Contains;
using k::testing::check_message_at;
using k::testing::error_of;

namespace {

// [1, 2, 2, 2] NHWC: channel 0 holds 1, 2, 3, 4 and channel 1 holds 5, -6, 7, 0.
k::Tensor image() {
  return k::constant({{{{1.f, 5.f}, {2.f, -6.f}}, {{3.f, 7.f}, {4.f, 0.f}}}});
}

// [2, 3, 2]: two sequences of three steps with two channels.
k::Tensor sequences() {
  return k::constant(
      {{{1.f, -1.f}, {2.f, -4.f}, {6.f, -7.f}}, {{0.f, 3.f}, {-2.f, 9.f}, {5.f, 0.f}}});
}

}  // namespace

TEST_CASE("GlobalAveragePooling2D and GlobalMaxPooling2D reduce height and width", "[pooling]") {
  k::layers::GlobalAveragePooling2D avg;
  k::layers::GlobalMaxPooling2D max;
  k::Tensor a = avg(image()), m = max(image());
  CHECK(a.shape() == k::Shape{1, 2});
  CHECK(a.to_vector<float>() == std::vector<float>{2.5f, 1.5f});  // (1+2+3+4)/4, (5-6+7+0)/4
  CHECK(m.shape() == k::Shape{1, 2});
  CHECK(m.to_vector<float>() == std::vector<float>{4.f, 7.f});
  CHECK(avg.class_name() == "GlobalAveragePooling2D");
  CHECK(max.class_name() == "GlobalMaxPooling2D");
  CHECK(avg.name().rfind("global_average_pooling2d", 0) == 0);
  CHECK(max.name().rfind("global_max_pooling2d", 0) == 0);
  CHECK(k::layers::GlobalMaxPooling2D().name() != max.name());
  CHECK(avg.count_params() == 0);
  CHECK_FALSE(avg.keepdims());
  CHECK(avg.data_format() == "channels_last");
}

TEST_CASE("GlobalAveragePooling1D and GlobalMaxPooling1D reduce the steps", "[pooling]") {
  k::layers::GlobalAveragePooling1D avg;
  k::layers::GlobalMaxPooling1D max;
  k::Tensor a = avg(sequences()), m = max(sequences());
  CHECK(a.shape() == k::Shape{2, 2});
  CHECK(a.to_vector<float>() == std::vector<float>{3.f, -4.f, 1.f, 4.f});
  CHECK(m.to_vector<float>() == std::vector<float>{6.f, -1.f, 5.f, 9.f});
  CHECK(avg.class_name() == "GlobalAveragePooling1D");
  CHECK(max.class_name() == "GlobalMaxPooling1D");
}

TEST_CASE("global pooling keepdims keeps the spatial axes as ones", "[pooling]") {
  k::Tensor a = k::layers::GlobalAveragePooling2D("channels_last", true)(image());
  CHECK(a.shape() == k::Shape{1, 1, 1, 2});
  CHECK(a.to_vector<float>() == std::vector<float>{2.5f, 1.5f});
  k::Tensor m = k::layers::GlobalMaxPooling1D("channels_last", true)(sequences());
  CHECK(m.shape() == k::Shape{2, 1, 2});
  CHECK(m.to_vector<float>() == std::vector<float>{6.f, -1.f, 5.f, 9.f});
}

TEST_CASE("global pooling with channels_first reduces the axes after the channels", "[pooling]") {
  // sequences() read as [batch, channels=3, steps=2].
  k::Tensor a = k::layers::GlobalAveragePooling1D("channels_first")(sequences());
  CHECK(a.shape() == k::Shape{2, 3});
  CHECK(a.to_vector<float>() == std::vector<float>{0.f, -1.f, -0.5f, 1.5f, 3.5f, 2.5f});
  k::Tensor m =
      k::layers::GlobalMaxPooling2D("channels_first", true)(k::transpose(image(), {0, 3, 1, 2}));
  CHECK(m.shape() == k::Shape{1, 2, 1, 1});
  CHECK(m.to_vector<float>() == std::vector<float>{4.f, 7.f});
}

TEST_CASE("global pooling rejects inputs of the wrong rank and bad data_format", "[pooling]") {
  k::layers::GlobalAveragePooling2D avg2("channels_last", false, "gap2_bad");
  int line = __LINE__ + 1;
  std::string msg = error_of<k::ShapeError>([&] { avg2(k::ones({2, 3, 4})); });
  check_message_at(msg,
                   {"gap2_bad", "GlobalAveragePooling2D", "rank 4",
                    "[batch, height, width, channels]", "[2,3,4]"},
                   __FILE__, line);
  k::layers::GlobalMaxPooling1D max1;
  line = __LINE__ + 1;
  msg = error_of<k::ShapeError>([&] { max1(k::ones({2, 3, 4, 5})); });
  check_message_at(msg, {"GlobalMaxPooling1D", "rank 3", "[batch, steps, channels]"}, __FILE__,
                   line);
  line = __LINE__ + 1;
  msg = error_of<k::ValueError>([&] { k::layers::GlobalAveragePooling1D("nhwc"); });
  check_message_at(msg, {"GlobalAveragePooling1D", "channels_last", "\"nhwc\""}, __FILE__, line);
}

TEST_CASE("Dense on rank-3 inputs applies to the last axis, step by step", "[pooling]") {
  k::layers::Dense dense(4, "tanh");
  k::Tensor x = k::random_normal({2, 5, 3}, 0.0, 1.0, 11);
  k::Tensor y = dense(x);
  REQUIRE(y.shape() == k::Shape{2, 5, 4});
  CHECK(dense.kernel().shape() == k::Shape{3, 4});
  k::Tensor bias = k::constant({0.1f, -0.2f, 0.3f, 0.5f});
  dense.bias().assign(bias);
  y = dense(x);
  std::vector<float> got = y.to_vector<float>();
  for (int64_t t = 0; t < 5; ++t) {
    k::Tensor step = dense(k::reshape(x.index({k::Slice(), k::Slice(t, t + 1)}), {2, 3}));
    std::vector<float> want = step.to_vector<float>();
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t u = 0; u < 4; ++u)
        CHECK(got[size_t((b * 5 + t) * 4 + u)] == Approx(want[size_t(b * 4 + u)]).margin(1e-6));
  }
}

TEST_CASE("gradients flow through Dense on rank-3 inputs", "[pooling]") {
  k::layers::Dense dense(2);
  k::Tensor x = k::random_normal({2, 5, 3}, 0.0, 1.0, 12);
  dense(x);
  std::vector<k::Variable> vars = dense.trainable_weights();
  k::GradientTape tape;
  k::Tensor loss = k::reduce_sum(k::square(dense(x)));
  std::vector<k::Tensor> grads = tape.gradient(loss, std::span<const k::Variable>(vars));
  REQUIRE(grads.size() == 2);
  CHECK(grads[0].shape() == k::Shape{3, 2});
  CHECK(grads[1].shape() == k::Shape{2});
  // The same loss over the ten steps as one [10, 3] batch.
  k::GradientTape flat_tape;
  k::Tensor flat_loss = k::reduce_sum(k::square(dense(k::reshape(x, {10, 3}))));
  std::vector<k::Tensor> want = flat_tape.gradient(flat_loss, std::span<const k::Variable>(vars));
  CHECK(loss.item<float>() == Approx(flat_loss.item<float>()).epsilon(1e-5));
  for (size_t i = 0; i < 2; ++i) {
    std::vector<float> g = grads[i].to_vector<float>(), w = want[i].to_vector<float>();
    for (size_t j = 0; j < g.size(); ++j)
      CHECK(g[j] == Approx(w[j]).epsilon(1e-5).margin(1e-5));
  }
}

TEST_CASE("Conv2D, GlobalAveragePooling2D and Dense train, summarize and save", "[pooling]") {
  k::Sequential model({
      k::layers::Conv2D(4, {3, 3}, {1, 1}, "same", "relu", k::Shape{6, 6, 1}, true,
                        "glorot_uniform", "zeros", "gp_conv"),
      k::layers::GlobalAveragePooling2D("channels_last", false, "gp_pool"),
      k::layers::Dense(1, "", std::nullopt, true, "glorot_uniform", "zeros", "gp_dense"),
  });
  std::string text = model.summary_text();
  CHECK_THAT(text, Contains(" gp_pool (GlobalAveragePooli (None, 4)") && Contains("\n ng2D)  "));
  CHECK(model.count_params() == 3 * 3 * 4 + 4 + 4 + 1);
  // Target: the mean brightness of the image.
  k::Tensor x = k::random_uniform({16, 6, 6, 1}, 0.0, 1.0, 13);
  k::Tensor y = k::reshape(k::reduce_mean(x, {1, 2, 3}), {16, 1});
  model.compile(k::optimizers::Adam(0.05), k::losses::MeanSquaredError());
  k::History h = model.fit(x, y, {.epochs = 5, .batch_size = 8, .verbose = 0});
  REQUIRE(h.history.at("loss").size() == 5);
  CHECK(h.history.at("loss").back() < h.history.at("loss").front());

  k::testing::TempDir dir;
  model.save(dir.file("gp_model"));
  k::SavedModel loaded = k::load_model(dir.file("gp_model"));
  std::vector<float> want = model(x).to_vector<float>();
  std::vector<float> got = loaded.predict(x).to_vector<float>();
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i)
    CHECK(got[i] == Approx(want[i]).margin(1e-6));
}

TEST_CASE("GlobalMaxPooling1D after Dense on sequences saves and loads", "[pooling]") {
  k::Sequential model({
      k::layers::Dense(3, "relu", k::Shape{4, 2}),
      k::layers::GlobalMaxPooling1D(),
      k::layers::Dense(2),
  });
  k::Tensor x = k::random_normal({3, 4, 2}, 0.0, 1.0, 14);
  std::vector<float> want = model(x).to_vector<float>();
  CHECK_THAT(model.summary_text(), Contains("(None, 4, 3)") && Contains("Pooling1D)"));
  k::testing::TempDir dir;
  model.save(dir.file("seq_model"));
  std::vector<float> got = k::load_model(dir.file("seq_model")).predict(x).to_vector<float>();
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i)
    CHECK(got[i] == Approx(want[i]).margin(1e-6));
}
