// Keras-style image resizing and augmentation layers (keras.layers.Resizing, RandomFlip,
// RandomRotation, RandomZoom, RandomTranslation, RandomContrast, RandomCrop), on images
// [batch, h, w, c] or one image [h, w, c]:
//
//   k::Sequential model({k::layers::RandomFlip("horizontal"), k::layers::RandomRotation(0.1),
//                        k::layers::Conv2D(16, {3, 3}), ...});
//
// The random layers change images only when called with training = true (fit's training step,
// or layer(x, true) — in a Dataset.map function too) and are the identity otherwise (RandomCrop
// then resizes, as Keras). Each draw is new on every training call, eager or compiled: the layer
// keeps a step counter (an i64 Variable, not a weight) that each training call advances, and
// draws with random_uniform_at(step) under its seed, so a seeded run repeats exactly; unseeded
// layers take the next seed of the sequence set_random_seed starts. Geometric augmentations are
// one image_transform op (TensorFlow's ImageProjectiveTransformV3) with a matrix per image.
// Integer images come out f32, as Keras computes in float32.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <source_location>
#include <string>
#include <utility>
#include <vector>

#include "kiln/frontend/keras/layers.h"

namespace kiln::layers {

// A factor given as one number or as a range {lower, upper}, as Keras's `factor=0.2` or
// `factor=(-0.1, 0.3)`; each layer says what one number means.
struct Factor {
  std::vector<double> values;
  Factor(double f) : values{f} {}                                 // NOLINT: implicit
  Factor(std::initializer_list<double> range) : values(range) {}  // NOLINT: implicit
  Factor(std::pair<double, double> range) : values{range.first, range.second} {}  // NOLINT
};

// Resizes images to height × width (tf.image.resize: "bilinear" with half-pixel centres, or
// "nearest"), in training and inference alike. crop_to_aspect_ratio first crops the largest
// centred window with the target's aspect ratio, so that the image is not distorted.
class Resizing : public Layer {
 public:
  Resizing(int64_t height, int64_t width, std::string interpolation = "bilinear",
           bool crop_to_aspect_ratio = false, std::string name = "",
           std::source_location loc = std::source_location::current());
  Tensor call(const Tensor& x, bool training) override;
  KILN_LAYER_CLASS(Resizing)

 private:
  int64_t height_, width_;
  std::string interpolation_;
  bool crop_to_aspect_ratio_;
};

// The random augmentation layers' common part: checks the input rank (3 or 4), casts integer
// images to f32, passes rank-4 images to augment() in training and to inference() otherwise.
class RandomImageLayer : public Layer {
 public:
  Tensor call(const Tensor& x, bool training) override;

 protected:
  RandomImageLayer(const std::string& kind, const char* class_name, std::optional<uint64_t> seed,
                   std::string name);
  // The augmented batch of images [n, h, w, c].
  virtual Tensor augment(const Tensor& images) = 0;
  // The batch outside training (the identity unless overridden).
  virtual Tensor inference(const Tensor& images) { return images; }
  // Uniform numbers in [0, 1) of `shape`, in `like`'s dtype, new on every call (the step counter
  // advances).
  Tensor draw(const Shape& shape, const Tensor& like);

 private:
  const char* class_name_;
  int64_t seed_;
  Variable step_;
};

// Flips each image left-right ("horizontal"), upside down ("vertical") or each independently
// ("horizontal_and_vertical", Keras's default), with probability 1/2 per image.
class RandomFlip : public RandomImageLayer {
 public:
  explicit RandomFlip(std::string mode = "horizontal_and_vertical",
                      std::optional<uint64_t> seed = std::nullopt, std::string name = "",
                      std::source_location loc = std::source_location::current());
  KILN_LAYER_CLASS(RandomFlip)

 protected:
  Tensor augment(const Tensor& images) override;

 private:
  bool horizontal_, vertical_;
};

// The geometric augmentations' common part: how image_transform reads (fill_mode "reflect",
// "wrap", "constant" with fill_value, or "nearest"; interpolation "bilinear" or "nearest").
class RandomTransformLayer : public RandomImageLayer {
 protected:
  RandomTransformLayer(const std::string& kind, const char* class_name, std::string fill_mode,
                       std::string interpolation, std::optional<uint64_t> seed, double fill_value,
                       std::string name, std::source_location loc);
  // image_transform of `images` by `matrices` [n, 8] with the layer's fill and interpolation.
  Tensor apply_transform(const Tensor& images, const Tensor& matrices) const;

 private:
  std::string fill_mode_, interpolation_;
  double fill_value_;
};

// Rotates each image about its centre by a random angle in [lower, upper] · 2π (counter-
// clockwise for positive angles); one number f means [−f, f]. Bounds in [−1, 1].
class RandomRotation : public RandomTransformLayer {
 public:
  explicit RandomRotation(Factor factor, std::string fill_mode = "reflect",
                          std::string interpolation = "bilinear",
                          std::optional<uint64_t> seed = std::nullopt, double fill_value = 0.0,
                          std::string name = "",
                          std::source_location loc = std::source_location::current());
  KILN_LAYER_CLASS(RandomRotation)

 protected:
  Tensor augment(const Tensor& images) override;

 private:
  double lower_, upper_;
};

// Zooms each image about its centre: the height is scaled by 1 + a random number in
// height_factor's range (positive: zoomed out, negative: zoomed in; one number f means [−f, f]),
// the width by width_factor's, or by the same amount as the height when width_factor is not
// given (the aspect ratio kept). Bounds in [−1, 1].
class RandomZoom : public RandomTransformLayer {
 public:
  explicit RandomZoom(Factor height_factor, std::optional<Factor> width_factor = std::nullopt,
                      std::string fill_mode = "reflect", std::string interpolation = "bilinear",
                      std::optional<uint64_t> seed = std::nullopt, double fill_value = 0.0,
                      std::string name = "",
                      std::source_location loc = std::source_location::current());
  // RandomZoom({lower, upper}): the height range alone (a braced pair would otherwise also read
  // as RandomZoom(lower, upper), two factors).
  explicit RandomZoom(std::initializer_list<double> height_factor,
                      std::source_location loc = std::source_location::current())
      : RandomZoom(Factor(height_factor), std::nullopt, "reflect", "bilinear", std::nullopt, 0.0,
                   "", loc) {}
  KILN_LAYER_CLASS(RandomZoom)

 protected:
  Tensor augment(const Tensor& images) override;

 private:
  double height_lower_, height_upper_, width_lower_, width_upper_;
  bool same_zoom_;
};

// Shifts each image by random fractions of its height (down for positive) and width (right for
// positive), drawn in each factor's range (one number f means [−f, f]). Bounds in [−1, 1].
class RandomTranslation : public RandomTransformLayer {
 public:
  RandomTranslation(Factor height_factor, Factor width_factor, std::string fill_mode = "reflect",
                    std::string interpolation = "bilinear",
                    std::optional<uint64_t> seed = std::nullopt, double fill_value = 0.0,
                    std::string name = "",
                    std::source_location loc = std::source_location::current());
  KILN_LAYER_CLASS(RandomTranslation)

 protected:
  Tensor augment(const Tensor& images) override;

 private:
  double height_lower_, height_upper_, width_lower_, width_upper_;
};

// Scales each image's deviation from its per-channel mean by a random contrast factor in
// [1 − lower, 1 + upper] (one number f: [1 − f, 1 + f]; lower, upper ≥ 0 and lower ≤ 1), one per
// image, then clips to value_range, as Keras 3: mean + (x − mean) · factor.
class RandomContrast : public RandomImageLayer {
 public:
  explicit RandomContrast(Factor factor, std::pair<double, double> value_range = {0.0, 255.0},
                          std::optional<uint64_t> seed = std::nullopt, std::string name = "",
                          std::source_location loc = std::source_location::current());
  KILN_LAYER_CLASS(RandomContrast)

 protected:
  Tensor augment(const Tensor& images) override;

 private:
  double lower_, upper_;
  std::pair<double, double> value_range_;
};

// Crops height × width at a random offset (one for the whole batch, as Keras) in training;
// outside training, or when the images are smaller than the crop, resizes them to height × width
// after cropping the centre to that aspect ratio (Keras's smart resize).
class RandomCrop : public RandomImageLayer {
 public:
  RandomCrop(int64_t height, int64_t width, std::optional<uint64_t> seed = std::nullopt,
             std::string name = "", std::source_location loc = std::source_location::current());
  KILN_LAYER_CLASS(RandomCrop)

 protected:
  Tensor augment(const Tensor& images) override;
  Tensor inference(const Tensor& images) override;

 private:
  int64_t height_, width_;
};

// keras.preprocessing.image.smart_resize of [n, h, w, c] images: the largest centred window with
// the aspect ratio of height × width, resized to height × width without distortion (CenterCrop
// and RandomCrop use it for images smaller than the crop). ShapeError for another rank.
Tensor smart_resize(const Tensor& images, int64_t height, int64_t width,
                    const std::string& interpolation = "bilinear",
                    std::source_location loc = std::source_location::current());

}  // namespace kiln::layers
