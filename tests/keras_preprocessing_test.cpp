// Preprocessing layers (Rescaling, CenterCrop): values against hand-computed numbers, in a
// Sequential model that trains, summarizes, saves and loads, CenterCrop resizing images smaller
// than the crop, and their errors.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <cstdint>
#include <string>
#include <vector>

#include "error_test_util.h"
#include "file_test_util.h"

namespace k = kiln;
using Catch::Contains;
using k::testing::check_message_at;
using k::testing::error_of;

namespace {

// [1, h, w, 1] with pixel (r, c) = 10·r + c, so a crop's values say where it starts.
k::Tensor grid(int64_t h, int64_t w) {
  std::vector<float> v;
  for (int64_t r = 0; r < h; ++r)
    for (int64_t c = 0; c < w; ++c)
      v.push_back(float(10 * r + c));
  return k::reshape(k::constant(v), {1, h, w, 1});
}

// The values of rows [top, top + height) and columns [left, left + width) of grid().
std::vector<float> grid_crop(int64_t top, int64_t left, int64_t height, int64_t width) {
  std::vector<float> v;
  for (int64_t r = top; r < top + height; ++r)
    for (int64_t c = left; c < left + width; ++c)
      v.push_back(float(10 * r + c));
  return v;
}

// The line of `text` that contains `part`, or "" if none does.
std::string line_of(const std::string& text, const std::string& part) {
  size_t at = text.find(part);
  if (at == std::string::npos) return "";
  size_t begin = text.rfind('\n', at) + 1, end = text.find('\n', at);
  return text.substr(begin, end - begin);
}

}  // namespace

TEST_CASE("Rescaling turns u8 pixels into f32 in [0, 1]", "[preprocessing]") {
  k::layers::Rescaling rescale(1.0 / 255);
  k::Tensor x = k::cast(k::constant({0.f, 51.f, 255.f, 128.f}), k::u8);
  k::Tensor y = rescale(k::reshape(x, {2, 2}));
  CHECK(y.dtype() == k::f32);
  CHECK(y.shape() == k::Shape{2, 2});
  std::vector<float> got = y.to_vector<float>();
  std::vector<float> want{0.f, 0.2f, 1.f, 128.f / 255.f};
  for (size_t i = 0; i < want.size(); ++i)
    CHECK(got[i] == Approx(want[i]).margin(1e-7));
  CHECK(rescale.class_name() == "Rescaling");
  CHECK(rescale.name().rfind("rescaling", 0) == 0);
  CHECK(rescale.weights().empty());
  CHECK(rescale.scale() == 1.0 / 255);
  CHECK(rescale.offset() == 0.0);
}

TEST_CASE("Rescaling adds the offset and keeps floating dtypes", "[preprocessing]") {
  // Keras's [-1, 1] recipe: x / 127.5 − 1.
  k::layers::Rescaling rescale(1.0 / 127.5, -1.0, "to_pm1");
  CHECK(rescale.name() == "to_pm1");
  k::Tensor y = rescale(k::cast(k::constant({{0, 255}, {51, 127}}), k::i32));
  CHECK(y.dtype() == k::f32);
  std::vector<float> got = y.to_vector<float>();
  std::vector<float> want{-1.f, 1.f, -0.6f, 127.f / 127.5f - 1.f};
  for (size_t i = 0; i < want.size(); ++i)
    CHECK(got[i] == Approx(want[i]).margin(1e-6));
  k::Tensor d = k::layers::Rescaling(2.0, 0.5)(k::cast(k::constant({1.f, -3.f}), k::f64));
  CHECK(d.dtype() == k::f64);
  CHECK(d.to_vector<double>() == std::vector<double>{2.5, -5.5});
}

TEST_CASE("CenterCrop keeps the centre, rounding the start down", "[preprocessing]") {
  k::layers::CenterCrop odd(3, 2);  // 5x6 → 3x2: top (5-3)/2 = 1, left (6-2)/2 = 2
  k::Tensor y = odd(grid(5, 6));
  CHECK(y.shape() == k::Shape{1, 3, 2, 1});
  CHECK(y.to_vector<float>() == grid_crop(1, 2, 3, 2));
  k::layers::CenterCrop even(2, 3);  // 5x6 → 2x3: top (5-2)/2 = 1, left (6-3)/2 = 1
  CHECK(even(grid(5, 6)).to_vector<float>() == grid_crop(1, 1, 2, 3));
  k::layers::CenterCrop same(4, 4);  // 4x4 → the whole image
  CHECK(same(grid(4, 4)).to_vector<float>() == grid_crop(0, 0, 4, 4));
  CHECK(odd.class_name() == "CenterCrop");
  CHECK(odd.name().rfind("center_crop", 0) == 0);
  CHECK(odd.weights().empty());
  CHECK(odd.height() == 3);
  CHECK(odd.width() == 2);
  CHECK(odd.data_format() == "channels_last");
}

TEST_CASE("CenterCrop crops every sample and channel; u8 comes out f32", "[preprocessing]") {
  // [2, 4, 3, 2]: value = 100·b + 10·r + c + 0.5·channel.
  std::vector<float> v;
  for (int b = 0; b < 2; ++b)
    for (int r = 0; r < 4; ++r)
      for (int c = 0; c < 3; ++c)
        for (int ch = 0; ch < 2; ++ch)
          v.push_back(float(100 * b + 10 * r + c) + 0.5f * float(ch));
  k::Tensor x = k::reshape(k::constant(v), {2, 4, 3, 2});
  k::Tensor y = k::layers::CenterCrop(2, 1)(x);  // top 1, left 1
  REQUIRE(y.shape() == k::Shape{2, 2, 1, 2});
  CHECK(y.to_vector<float>() ==
        std::vector<float>{11.f, 11.5f, 21.f, 21.5f, 111.f, 111.5f, 121.f, 121.5f});
  // channels_first: the same crop of the transposed batch.
  k::Tensor cf = k::layers::CenterCrop(2, 1, "channels_first")(k::transpose(x, {0, 3, 1, 2}));
  CHECK(cf.shape() == k::Shape{2, 2, 2, 1});
  CHECK(k::transpose(cf, {0, 2, 3, 1}).to_vector<float>() == y.to_vector<float>());
  k::Tensor u = k::layers::CenterCrop(1, 1)(k::cast(grid(3, 3), k::u8));
  CHECK(u.dtype() == k::f32);
  CHECK(u.to_vector<float>() == std::vector<float>{11.f});
}

TEST_CASE("Rescaling and CenterCrop train, summarize and save in a Sequential", "[preprocessing]") {
  k::Sequential model({
      k::layers::Rescaling(1.0 / 255, 0.0, "pp_rescale"),
      k::layers::CenterCrop(4, 4, "channels_last", "pp_crop"),
      k::layers::Flatten(),
      k::layers::Dense(1, "", std::nullopt, true, "glorot_uniform", "zeros", "pp_dense"),
  });
  // u8 images 6x6; the target is the mean brightness of their 4x4 centre.
  k::Tensor pixels = k::random_uniform({16, 6, 6, 1}, 0.0, 255.0, 21);
  k::Tensor x = k::cast(pixels, k::u8);
  k::Tensor centre = k::cast(x, k::f32).index({k::Slice(), k::Slice(1, 5), k::Slice(1, 5)});
  k::Tensor y = k::reshape(k::reduce_mean(centre, {1, 2, 3}) / 255.0, {16, 1});
  model.compile(k::optimizers::Adam(0.05), k::losses::MeanSquaredError());
  k::History h = model.fit(x, y, {.epochs = 4, .batch_size = 8, .verbose = 0});
  REQUIRE(h.history.at("loss").size() == 4);
  CHECK(h.history.at("loss").back() < h.history.at("loss").front());

  std::string text = model.summary_text();
  CHECK_THAT(line_of(text, "pp_rescale (Rescaling)"), Contains("(None, 6, 6, 1)"));
  CHECK_THAT(line_of(text, "pp_crop (CenterCrop)"), Contains("(None, 4, 4, 1)"));
  CHECK_THAT(line_of(text, "(Flatten)"), Contains("(None, 16)"));
  CHECK(model.count_params() == 16 + 1);

  std::vector<float> want = model.predict(x).to_vector<float>();
  k::testing::TempDir dir;
  model.save(dir.file("pp_model"));
  std::vector<float> got = k::load_model(dir.file("pp_model")).predict(x).to_vector<float>();
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i)
    CHECK(got[i] == Approx(want[i]).margin(1e-6));
}

TEST_CASE("CenterCrop resizes images smaller than the crop, as Keras", "[preprocessing]") {
  // 2x5 to 3x3: the centre 2x2 (columns 1..2, the crop's aspect ratio), then 2 → 3 bilinear with
  // half-pixel centres: rows and columns at weights 0, 1/2, 1.
  k::layers::CenterCrop crop(3, 3);
  std::vector<float> want{1, 1.5f, 2, 6, 6.5f, 7, 11, 11.5f, 12};
  k::Tensor y = crop(grid(2, 5));
  CHECK(y.shape() == k::Shape{1, 3, 3, 1});
  for (size_t i = 0; i < want.size(); ++i)
    CHECK(y.to_vector<float>()[i] == Approx(want[i]).margin(1e-5));
  k::layers::CenterCrop first(3, 3, "channels_first");
  k::Tensor z = first(k::transpose(grid(2, 5), {0, 3, 1, 2}));
  CHECK(z.shape() == k::Shape{1, 1, 3, 3});
  for (size_t i = 0; i < want.size(); ++i)
    CHECK(z.to_vector<float>()[i] == Approx(want[i]).margin(1e-5));
}

TEST_CASE("CenterCrop rejects wrong ranks and bad arguments", "[preprocessing]") {
  k::layers::CenterCrop crop(3, 3, "channels_last", "crop_bad");
  int line = __LINE__ + 1;
  std::string msg = error_of<k::ShapeError>([&] { crop(k::ones({2, 5, 5})); });
  check_message_at(
      msg, {"crop_bad", "CenterCrop", "rank 4", "[batch, height, width, channels]", "[2,5,5]"},
      __FILE__, line);
  line = __LINE__ + 1;
  msg = error_of<k::ValueError>([&] { k::layers::CenterCrop(0, 3); });
  check_message_at(msg, {"CenterCrop", "positive", "0 and 3"}, __FILE__, line);
  line = __LINE__ + 1;
  msg = error_of<k::ValueError>([&] { k::layers::CenterCrop(2, 2, "nhwc"); });
  check_message_at(msg, {"CenterCrop", "channels_last", "\"nhwc\""}, __FILE__, line);
}
