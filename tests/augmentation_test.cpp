// Resizing and the random augmentation layers (frontend/keras/augmentation.h): the identity
// outside training, reproducible draws for a seed, new draws on every training call, structural
// checks against hand-built transforms (mirrors, a forced rotation, zoom and shift, the contrast
// keeping the mean, crops), inside fit's compiled training step and in Dataset.map, and their
// errors.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <cmath>
#include <functional>
#include <limits>
#include <numbers>
#include <set>
#include <string>
#include <vector>

#include "error_test_util.h"

namespace k = kiln;
namespace L = kiln::layers;
using k::Slice;
using k::testing::error_of;

namespace {

// [n, h, w, c] with pixel (image i, row r, column col, channel ch) = 1000·i + 10·r + col + 0.25·ch,
// so values say where they came from.
k::Tensor grid(int64_t n, int64_t h, int64_t w, int64_t c = 1) {
  std::vector<float> v;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < h; ++r)
      for (int64_t col = 0; col < w; ++col)
        for (int64_t ch = 0; ch < c; ++ch)
          v.push_back(float(1000 * i + 10 * r + col) + 0.25f * float(ch));
  return k::reshape(k::constant(v), {n, h, w, c});
}

std::vector<float> values(const k::Tensor& t) {
  return t.to_vector<float>();
}

void check_close(const std::vector<float>& got, const std::vector<float>& want, double tol) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i);
    CHECK(std::abs(double(got[i]) - double(want[i])) <= tol);
  }
}

// The [h, w, c] image `i` of a [n, h, w, c] tensor.
k::Tensor image(const k::Tensor& t, int64_t i) {
  return t.index({i});
}

}  // namespace

TEST_CASE("random layers are the identity outside training", "[augmentation]") {
  k::Tensor x = grid(2, 5, 6, 3);
  std::vector<std::shared_ptr<L::Layer>> layers{
      std::make_shared<L::RandomFlip>(), std::make_shared<L::RandomRotation>(0.3),
      std::make_shared<L::RandomZoom>(0.2, 0.3), std::make_shared<L::RandomTranslation>(0.2, 0.1),
      std::make_shared<L::RandomContrast>(0.5)};
  for (auto& layer : layers) {
    INFO(layer->class_name());
    k::Tensor y = (*layer)(x);
    CHECK(y.shape() == x.shape());
    CHECK(values(y) == values(x));
    CHECK(values((*layer)(x, false)) == values(x));
  }
}

TEST_CASE("a seed gives the same draws; each training call draws anew", "[augmentation]") {
  k::Tensor x = grid(4, 6, 6, 2);
  L::RandomRotation a(0.2, "reflect", "bilinear", 7);
  L::RandomRotation b(0.2, "reflect", "bilinear", 7);
  L::RandomRotation c(0.2, "reflect", "bilinear", 8);
  std::vector<float> a1 = values(a(x, true)), a2 = values(a(x, true));
  std::vector<float> b1 = values(b(x, true)), b2 = values(b(x, true));
  CHECK(a1 == b1);
  CHECK(a2 == b2);
  CHECK(a1 != a2);
  CHECK(values(c(x, true)) != a1);
  // Unseeded layers follow set_random_seed's sequence.
  k::set_random_seed(5);
  L::RandomZoom z1(0.3);
  k::set_random_seed(5);
  L::RandomZoom z2(0.3);
  CHECK(values(z1(x, true)) == values(z2(x, true)));
}

TEST_CASE(
    "RandomTranslation, RandomContrast and RandomCrop repeat for a seed and rest outside "
    "training",
    "[augmentation]") {
  k::Tensor x = grid(4, 6, 8, 2);
  struct Case {
    const char* what;
    std::function<std::shared_ptr<L::Layer>(uint64_t seed)> make;
    bool crops;  // outside training: the centre crop, else the identity
  };
  const std::vector<Case> cases = {
      {"RandomTranslation",
       [](uint64_t seed) {
         return std::make_shared<L::RandomTranslation>(0.2, 0.3, "reflect", "bilinear", seed);
       },
       false},
      // A value range that holds the grid's values, so that no draw is hidden by clipping.
      {"RandomContrast",
       [](uint64_t seed) {
         return std::make_shared<L::RandomContrast>(0.5, std::pair{0.0, 4000.0}, seed);
       },
       false},
      {"RandomCrop", [](uint64_t seed) { return std::make_shared<L::RandomCrop>(3, 4, seed); },
       true},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    auto a = c.make(7), b = c.make(7), other = c.make(8);
    std::vector<float> a1 = values((*a)(x, true)), a2 = values((*a)(x, true));
    std::vector<float> b1 = values((*b)(x, true)), b2 = values((*b)(x, true));
    CHECK(a1 == b1);
    CHECK(a2 == b2);
    CHECK(a1 != a2);
    // Two calls, as RandomCrop draws one window of 4 · 5 per batch: one call alone may agree.
    std::vector<float> o1 = values((*other)(x, true)), o2 = values((*other)(x, true));
    CHECK((o1 != a1 || o2 != a2));
    // Outside training, before and after training calls alike: the identity, or for RandomCrop
    // the resize of 6x8 to 3x4 (the whole image has the crop's aspect ratio).
    std::vector<float> rest = c.crops ? values(L::Resizing(3, 4)(x)) : values(x);
    CHECK(values((*a)(x)) == rest);
    CHECK(values((*a)(x, false)) == rest);
    auto fresh = c.make(7);
    CHECK(values((*fresh)(x, false)) == rest);
    // An inference call draws nothing: the next training call is a fresh layer's first.
    CHECK(values((*fresh)(x, true)) == a1);
  }
  // RandomCrop outside training, where the aspect ratios differ: Keras's centre crop (then a
  // resize, here of the same size): rows 1..3 of a 5x3 image, columns 2..5 of a 4x8 one.
  L::RandomCrop square(3, 3, 5);
  std::vector<float> want;
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t r = 1; r <= 3; ++r)
      for (int64_t col = 0; col < 3; ++col)
        for (int64_t ch = 0; ch < 2; ++ch)
          want.push_back(float(1000 * i + 10 * r + col) + 0.25f * float(ch));
  check_close(values(square(grid(2, 5, 3, 2))), want, 1e-5);
  L::RandomCrop four(4, 4, 5);
  want.clear();
  for (int64_t r = 0; r < 4; ++r)
    for (int64_t col = 2; col <= 5; ++col)
      want.push_back(float(10 * r + col));
  check_close(values(four(grid(1, 4, 8), false)), want, 1e-5);
}

TEST_CASE("RandomFlip mirrors each image exactly, or leaves it", "[augmentation]") {
  const int64_t n = 32, h = 3, w = 4;
  k::Tensor x = grid(n, h, w, 2);
  k::Tensor lr = x.index({Slice(), Slice(), Slice(std::nullopt, std::nullopt, -1)});
  k::Tensor ud = x.index({Slice(), Slice(std::nullopt, std::nullopt, -1)});
  k::Tensor both = lr.index({Slice(), Slice(std::nullopt, std::nullopt, -1)});
  struct Case {
    const char* mode;
    std::vector<k::Tensor> allowed;  // identity first
  };
  for (const Case& c : {Case{"horizontal", {x, lr}}, Case{"vertical", {x, ud}},
                        Case{"horizontal_and_vertical", {x, lr, ud, both}}}) {
    INFO(c.mode);
    L::RandomFlip flip(c.mode, 3);
    k::Tensor y = flip(x, true);
    std::set<size_t> seen;
    for (int64_t i = 0; i < n; ++i) {
      std::vector<float> got = values(image(y, i));
      size_t match = c.allowed.size();
      for (size_t j = 0; j < c.allowed.size(); ++j)
        if (got == values(image(c.allowed[j], i))) match = j;
      INFO("image " << i);
      CHECK(match < c.allowed.size());
      seen.insert(match);
    }
    CHECK(seen.size() == c.allowed.size());  // 32 images show every outcome
  }
}

TEST_CASE("RandomRotation with a forced angle is the hand-built rotation", "[augmentation]") {
  // factor (0.25, 0.25): a quarter turn. Output (y, x) reads input (x, 4 − y) on a 5x5 image:
  // matrix [cos, −sin, x_offset, sin, cos, y_offset] = [0, −1, 4, 1, 0, 0].
  k::Tensor x = grid(2, 5, 5);
  L::RandomRotation rot({0.25, 0.25}, "constant", "bilinear", 1);
  std::vector<float> want;
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t r = 0; r < 5; ++r)
      for (int64_t col = 0; col < 5; ++col)
        want.push_back(float(1000 * i + 10 * col + (4 - r)));
  check_close(values(rot(x, true)), want, 1e-3);
  // The same through image::transform with the matrix as Keras computes it, on a 4x6 image and
  // an angle of 0.1 · 2π, with the default reflect fill.
  k::Tensor y = grid(1, 4, 6);
  L::RandomRotation tilt({0.1, 0.1}, "reflect", "bilinear", 1);
  const double a = 0.2 * std::numbers::pi, c = std::cos(a), s = std::sin(a);
  const double x_off = (5 - (c * 5 - s * 3)) / 2, y_off = (3 - (s * 5 + c * 3)) / 2;
  k::Tensor m = k::reshape(k::constant(std::vector<float>{float(c), float(-s), float(x_off),
                                                          float(s), float(c), float(y_off), 0, 0}),
                           {1, 8});
  check_close(values(tilt(y, true)), values(k::image::transform(y, m)), 1e-3);
}

TEST_CASE("RandomZoom and RandomTranslation with forced factors are the hand-built transforms",
          "[augmentation]") {
  k::Tensor x = grid(2, 5, 7, 2);
  // Zoom out by 1.5 in height and in by 0.8 in width, about the centre (3, 2).
  L::RandomZoom zoom({0.5, 0.5}, k::layers::Factor{-0.2, -0.2}, "constant", "bilinear", 2, -1.0);
  k::Tensor m = k::reshape(
      k::constant(std::vector<float>{0.8f, 0, (1 - 0.8f) * 3, 0, 1.5f, (1 - 1.5f) * 2, 0, 0}),
      {1, 8});
  check_close(values(zoom(x, true)), values(k::image::transform(x, m, "bilinear", "constant", -1)),
              1e-3);
  // Shift down by 0.2 · 5 = 1 row and left by 2/7 · 7 = 2 columns: output (r, c) reads
  // (r − 1, c + 2), fill −1 outside.
  L::RandomTranslation shift({0.2, 0.2}, {-2.0 / 7, -2.0 / 7}, "constant", "nearest", 2, -1.0);
  std::vector<float> want;
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t r = 0; r < 5; ++r)
      for (int64_t col = 0; col < 7; ++col)
        for (int64_t ch = 0; ch < 2; ++ch) {
          const bool inside = r - 1 >= 0 && col + 2 < 7;
          want.push_back(inside ? float(1000 * i + 10 * (r - 1) + col + 2) + 0.25f * float(ch)
                                : -1.f);
        }
  check_close(values(shift(x, true)), want, 1e-4);
}

TEST_CASE("RandomContrast keeps each image's per-channel mean and scales the deviations",
          "[augmentation]") {
  // Values in [100, 150] stay inside (0, 255) for factors in [0.5, 1.5], so nothing clips.
  k::Tensor x = k::random_uniform({6, 4, 5, 3}, 100.0, 150.0, 9);
  L::RandomContrast contrast(0.5, {0.0, 255.0}, 4);
  k::Tensor y = contrast(x, true);
  k::Tensor mx = k::reduce_mean(x, {1, 2}), my = k::reduce_mean(y, {1, 2});
  check_close(values(my), values(mx), 1e-3);
  // (y − mean) / (x − mean) is one factor per image, in [0.5, 1.5], and the images differ.
  std::vector<float> dx = values(x - k::reduce_mean(x, {1, 2}, true));
  std::vector<float> dy = values(y - k::reduce_mean(y, {1, 2}, true));
  const size_t per_image = 4 * 5 * 3;
  std::set<int> factors;
  for (size_t i = 0; i < 6; ++i) {
    double dot = 0, norm = 0;  // the least-squares factor
    for (size_t j = 0; j < per_image; ++j) {
      dot += double(dy[i * per_image + j]) * dx[i * per_image + j];
      norm += double(dx[i * per_image + j]) * dx[i * per_image + j];
    }
    const double f = dot / norm;
    CHECK(f >= 0.5);
    CHECK(f <= 1.5);
    factors.insert(int(std::lround(f * 1000)));
    for (size_t j = 0; j < per_image; ++j)
      CHECK(dy[i * per_image + j] == Approx(f * dx[i * per_image + j]).margin(1e-3));
  }
  CHECK(factors.size() > 1);
  // value_range clips.
  L::RandomContrast strong(1.0, {0.0, 1.0}, 4);
  for (float v : values(strong(k::random_uniform({2, 3, 3, 1}, -2.0, 3.0, 1), true))) {
    CHECK(v >= 0.f);
    CHECK(v <= 1.f);
  }
}

TEST_CASE("RandomCrop crops one random window per batch in training and resizes otherwise",
          "[augmentation]") {
  k::Tensor x = grid(3, 6, 8);
  L::RandomCrop crop(3, 4, 11);
  std::set<std::pair<int, int>> offsets;
  for (int call = 0; call < 12; ++call) {
    k::Tensor y = crop(x, true);
    REQUIRE(y.shape() == k::Shape{3, 3, 4, 1});
    std::vector<float> v = values(y);
    const int top = int(v[0]) / 10, left = int(v[0]) % 10;
    CHECK(top + 3 <= 6);
    CHECK(left + 4 <= 8);
    offsets.insert({top, left});
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t r = 0; r < 3; ++r)
        for (int64_t c = 0; c < 4; ++c)
          CHECK(v[size_t((i * 3 + r) * 4 + c)] == float(1000 * i + 10 * (top + r) + left + c));
  }
  CHECK(offsets.size() > 1);
  // Outside training: the centre 6x6 of a 6x8 image (the crop's aspect ratio 1:1 for a 2x2
  // target), resized 6 → 2: sources 1 and 4 (rows) and 1 + 1, 1 + 4 (columns).
  L::RandomCrop square(2, 2, 1);
  check_close(values(square(grid(1, 6, 8))), {12, 15, 42, 45}, 1e-4);
  // Images smaller than the crop are resized in training too.
  CHECK(square(grid(1, 1, 1), true).shape() == k::Shape{1, 2, 2, 1});
}

TEST_CASE("Resizing: bilinear, nearest, crop_to_aspect_ratio, u8 and single images",
          "[augmentation]") {
  // 2x2 → 4x4: weights 0, 1/4, 3/4, 1 per axis on pixel 10·r + c.
  L::Resizing up(4, 4);
  std::vector<float> want;
  for (double wy : {0.0, 0.25, 0.75, 1.0})
    for (double wx : {0.0, 0.25, 0.75, 1.0})
      want.push_back(float(10 * wy + wx));
  check_close(values(up(grid(1, 2, 2))), want, 1e-5);
  L::Resizing nearest(2, 2, "nearest");
  check_close(values(nearest(grid(1, 3, 3))), {0, 2, 20, 22}, 0);
  // 4x8 to 2x2 with the aspect ratio kept: the centre 4x4 (columns 2..5), then 4 → 2 (sources
  // 0.5 and 2.5).
  L::Resizing square(2, 2, "bilinear", true);
  check_close(values(square(grid(1, 4, 8))), {7.5, 9.5, 27.5, 29.5}, 1e-4);
  k::Tensor u8 = k::cast(grid(1, 2, 2), k::u8);
  k::Tensor y = up(u8);
  CHECK(y.dtype() == k::f32);
  check_close(values(y), want, 1e-5);
  CHECK(up(k::zeros({2, 2, 3})).shape() == k::Shape{4, 4, 3});
  CHECK(up.class_name() == "Resizing");
  // smart_resize: the centre 4x4 of a 4x8 image, to 2x2 (as Resizing with crop_to_aspect_ratio).
  check_close(values(L::smart_resize(grid(1, 4, 8), 2, 2)), {7.5, 9.5, 27.5, 29.5}, 1e-4);
}

TEST_CASE("augmentation runs inside fit's compiled step and repeats for a seed",
          "[augmentation][fit]") {
  k::Tensor x = k::random_uniform({24, 8, 8, 1}, 0.0, 1.0, 3);
  k::Tensor labels = k::cast(k::greater(k::reduce_mean(x, {1, 2, 3}), 0.5), k::i64);
  auto train = [&](uint64_t augment_seed) {
    k::set_random_seed(42);
    k::Sequential model({L::RandomFlip("horizontal", augment_seed),
                         L::RandomRotation(0.2, "reflect", "bilinear", augment_seed + 1),
                         L::Conv2D(4, {3, 3}, {1, 1}, "valid", "relu"), L::Flatten(),
                         L::Dense(2, "softmax")});
    model.compile(k::optimizers::SGD(0.1), k::losses::SparseCategoricalCrossentropy());
    k::History h =
        model.fit(x, labels, {.epochs = 2, .batch_size = 8, .shuffle = false, .verbose = 0});
    std::vector<float> weights;
    for (const k::Variable& v : model.weights()) {
      std::vector<float> w = v.value().to_vector<float>();
      weights.insert(weights.end(), w.begin(), w.end());
    }
    // The augmentation is off in predict: the same input gives the same output twice.
    CHECK(values(model.predict(x)) == values(model.predict(x)));
    return std::pair{h.history.at("loss"), weights};
  };
  auto [loss1, w1] = train(100);
  auto [loss2, w2] = train(100);
  auto [loss3, w3] = train(200);
  REQUIRE(loss1.size() == 2);
  CHECK(loss1 == loss2);
  CHECK(w1 == w2);
  CHECK(w1 != w3);  // other draws, other training
}

TEST_CASE("augmentation layers in a functional model", "[augmentation][functional]") {
  k::set_random_seed(3);
  k::KerasTensor in = k::Input({8, 8, 1});
  k::KerasTensor a = L::RandomFlip("horizontal_and_vertical", 1)(in);
  k::KerasTensor b = L::RandomRotation(0.2, "reflect", "bilinear", 2)(a);
  CHECK(b.shape() == k::Shape{k::None, 8, 8, 1});
  k::KerasTensor out = L::Dense(2, "softmax")(L::Flatten()(L::Conv2D(3, {3, 3})(b)));
  k::Model model(in, out);
  k::Tensor x = k::random_uniform({8, 8, 8, 1}, 0.0, 1.0, 5);
  k::Tensor y = k::cast(k::random_uniform({8}, 0.0, 2.0, 6), k::i64);
  model.compile(k::optimizers::SGD(0.1), k::losses::SparseCategoricalCrossentropy());
  k::History h = model.fit(x, y, {.epochs = 2, .batch_size = 4, .verbose = 0});
  CHECK(h.history.at("loss").size() == 2);
  CHECK(values(model.predict(x)) == values(model.predict(x)));
}

TEST_CASE("augmentation layers work in Dataset.map on single images", "[augmentation][data]") {
  k::Tensor x = grid(8, 3, 4);
  L::RandomFlip flip("horizontal", 5);
  k::data::Dataset ds = k::data::Dataset::from_tensor_slices(x)
                            .map([&](const k::data::Element& e) {
                              return k::data::Element{flip(e[0], /*training=*/true)};
                            })
                            .batch(4);
  k::Tensor mirrored = x.index({Slice(), Slice(), Slice(std::nullopt, std::nullopt, -1)});
  int64_t i = 0, flipped = 0;
  for (int epoch = 0; epoch < 2; ++epoch) {
    i = 0;
    for (const k::data::Element& batch : ds) {
      REQUIRE(batch[0].shape() == k::Shape{4, 3, 4, 1});
      for (int64_t j = 0; j < 4; ++j, ++i) {
        std::vector<float> got = values(image(batch[0], j));
        const bool same = got == values(image(x, i));
        const bool mirror = got == values(image(mirrored, i));
        CHECK((same || mirror));
        flipped += mirror ? 1 : 0;
      }
    }
  }
  CHECK(i == 8);
  CHECK(flipped > 0);
  CHECK(flipped < 16);
}

TEST_CASE("augmentation layers reject factors out of range", "[augmentation][errors]") {
  CHECK_THROWS_WITH(L::RandomRotation(1.5), Catch::Contains("factor must lie in [-1, 1]"));
  CHECK_THROWS_AS(L::RandomRotation({0.3, 0.1}), k::ValueError);  // lower > upper
  CHECK_THROWS_AS(L::RandomRotation({0.1, 0.2, 0.3}), k::ValueError);
  CHECK_THROWS_WITH(L::RandomZoom({-1.5, 0.0}), Catch::Contains("height_factor"));
  CHECK_THROWS_WITH(L::RandomZoom(0.2, 2.0), Catch::Contains("width_factor"));
  CHECK_THROWS_AS(L::RandomTranslation(0.2, 1.2), k::ValueError);
  CHECK_THROWS_AS(L::RandomContrast(-0.1), k::ValueError);
  CHECK_THROWS_AS(L::RandomContrast(std::numeric_limits<double>::infinity()), k::ValueError);
  CHECK_THROWS_AS(L::RandomRotation(std::nan("")), k::ValueError);
  CHECK_THROWS_WITH(L::RandomContrast({1.5, 0.2}), Catch::Contains("lower bound"));
  CHECK_THROWS_AS(L::RandomContrast(0.2, {1.0, 0.0}), k::ValueError);
}

TEST_CASE("augmentation layers reject unknown modes, fill modes and interpolations",
          "[augmentation][errors]") {
  CHECK_THROWS_WITH(L::RandomFlip("diagonal"),
                    Catch::Contains("mode must be one of") && Catch::Contains("\"diagonal\""));
  CHECK_THROWS_WITH(L::RandomRotation(0.1, "mirror"), Catch::Contains("fill_mode must be"));
  CHECK_THROWS_WITH(L::RandomZoom(0.1, std::nullopt, "reflect", "bicubic"),
                    Catch::Contains("interpolation must be"));
  CHECK_THROWS_AS(L::RandomTranslation(0.1, 0.1, "edge"), k::ValueError);
  CHECK_THROWS_WITH(L::Resizing(4, 4, "area"), Catch::Contains("interpolation must be"));
}

TEST_CASE("augmentation layers reject bad sizes and input ranks", "[augmentation][errors]") {
  CHECK_THROWS_AS(L::Resizing(0, 4), k::ValueError);
  CHECK_THROWS_AS(L::RandomCrop(3, -1), k::ValueError);
  L::RandomFlip flip("horizontal", 1, "flip_rank");
  std::string msg = error_of<k::ShapeError>([&] { flip(k::ones({4, 4}), true); });
  CHECK_THAT(msg,
             Catch::Contains("flip_rank") && Catch::Contains("rank 4") && Catch::Contains("[4,4]"));
  CHECK_THROWS_AS(L::RandomRotation(0.1)(k::ones({1, 2, 4, 4, 1}), true), k::ShapeError);
  CHECK_THROWS_AS(L::Resizing(2, 2)(k::ones({4})), k::ShapeError);
  CHECK_THROWS_AS(L::RandomContrast(0.1)(k::ones({4, 4}), false), k::ShapeError);
  CHECK_THROWS_AS(L::smart_resize(k::ones({4, 4, 1}), 2, 2), k::ShapeError);
  CHECK_THROWS_AS(L::smart_resize(k::ones({1, 4, 4, 1}), 2, 0), k::ValueError);
}
