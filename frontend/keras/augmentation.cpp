#include "kiln/frontend/keras/augmentation.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <tuple>

#include "kiln/frontend/core/device.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/ops.h"

namespace kiln::layers {

namespace {

using Loc = std::source_location;

// Keras's preprocessing layers compute in float32 whatever the stored dtype of the images.
Tensor as_floating(const Tensor& x) {
  return ir::is_floating(x.dtype()) ? x : cast(x, f32);
}

// The range a factor stands for: {lower, upper}, or one number f as {−f, f} (or, for
// RandomContrast, {f, f}: `symmetric` false, and the two are distances below and above 1, in any
// order). ValueError unless both lie in [min, max] and, when symmetric, lower ≤ upper.
std::pair<double, double> factor_range(const char* layer, const char* arg, const Factor& factor,
                                       bool symmetric, double min, double max, const Loc& loc) {
  const std::vector<double>& v = factor.values;
  if (v.size() != 1 && v.size() != 2) {
    detail::raise<ValueError>(
        layer, {},
        fmt::format("{} must be one number or two (lower, upper), got {} numbers", arg, v.size()),
        loc);
  }
  std::pair<double, double> r = v.size() == 2
                                    ? std::pair{v[0], v[1]}
                                    : (symmetric ? std::pair{-v[0], v[0]} : std::pair{v[0], v[0]});
  const bool inside = std::isfinite(r.first) && std::isfinite(r.second) && r.first >= min &&
                      r.first <= max && r.second >= min && r.second <= max;
  if (!inside || (symmetric && r.first > r.second)) {
    detail::raise<ValueError>(
        layer, {},
        fmt::format("{} must lie in [{}, {}]{}, got ({}, {})", arg, min, max,
                    symmetric ? " with lower <= upper" : "", r.first, r.second),
        loc);
  }
  return r;
}

void check_choice(const char* layer, const char* arg, const std::string& value,
                  std::initializer_list<const char*> allowed, const Loc& loc) {
  for (const char* a : allowed)
    if (value == a) return;
  std::string list;
  for (const char* a : allowed)
    list += fmt::format("{}\"{}\"", list.empty() ? "" : ", ", a);
  detail::raise<ValueError>(layer, {},
                            fmt::format("{} must be one of {}, got \"{}\"", arg, list, value), loc);
}

void check_size(const char* layer, int64_t height, int64_t width, const Loc& loc) {
  if (height <= 0 || width <= 0) {
    detail::raise<ValueError>(
        layer, {}, fmt::format("height and width must be positive, got {} and {}", height, width),
        loc);
  }
}

// Resizes [n, h, w, c] images to height × width, first cropping the centre to the target's
// aspect ratio when `crop` (keras.ops.image.resize's crop_to_aspect_ratio).
Tensor resize_images(const Tensor& images, int64_t height, int64_t width,
                     const std::string& interpolation, bool crop) {
  Tensor x = images;
  if (crop) {
    const int64_t h = x.shape()[1], w = x.shape()[2];
    const int64_t crop_h = std::clamp<int64_t>(w * height / width, 1, h);
    const int64_t crop_w = std::clamp<int64_t>(h * width / height, 1, w);
    const int64_t top = (h - crop_h) / 2, left = (w - crop_w) / 2;
    x = x.index({Slice(), Slice(top, top + crop_h), Slice(left, left + crop_w), Slice()});
  }
  if (x.shape()[1] == height && x.shape()[2] == width) return x;
  return image::resize(x, {height, width}, interpolation);
}

// [n] columns stacked into [n, 8] projective matrices.
Tensor matrices(const std::vector<Tensor>& columns) {
  return stack(columns, 1);
}

}  // namespace

Tensor smart_resize(const Tensor& images, int64_t height, int64_t width,
                    const std::string& interpolation, Loc loc) {
  if (images.rank() != 4) {
    detail::raise<ShapeError>("smart_resize", {images},
                              fmt::format("needs images of rank 4 [batch, height, width, "
                                          "channels], got shape {}",
                                          images.shape().to_string()),
                              loc);
  }
  check_size("smart_resize", height, width, loc);
  check_choice("smart_resize", "interpolation", interpolation, {"bilinear", "nearest"}, loc);
  return resize_images(images, height, width, interpolation, /*crop=*/true);
}

Resizing::Resizing(int64_t height, int64_t width, std::string interpolation,
                   bool crop_to_aspect_ratio, std::string name, Loc loc)
    : Layer("resizing", std::move(name), std::nullopt),
      height_(height),
      width_(width),
      interpolation_(std::move(interpolation)),
      crop_to_aspect_ratio_(crop_to_aspect_ratio) {
  check_size("Resizing", height, width, loc);
  check_choice("Resizing", "interpolation", interpolation_, {"bilinear", "nearest"}, loc);
}

Tensor Resizing::call(const Tensor& x, bool) {
  if (x.rank() != 3 && x.rank() != 4) {
    detail::raise<ShapeError>(
        "Resizing", {x},
        fmt::format("needs images of rank 4 [batch, height, width, channels] or 3, got shape {}",
                    x.shape().to_string()),
        Loc::current());
  }
  Tensor images = as_floating(x.rank() == 3 ? expand_dims(x, 0) : x);
  Tensor y = resize_images(images, height_, width_, interpolation_, crop_to_aspect_ratio_);
  return x.rank() == 3 ? squeeze(y, {0}) : y;
}

RandomImageLayer::RandomImageLayer(const std::string& kind, const char* class_name,
                                   std::optional<uint64_t> seed, std::string name)
    : Layer(kind, std::move(name), std::nullopt),
      class_name_(class_name),
      seed_(static_cast<int64_t>(detail::layer_seed(seed) >> 1)) {
  step_ = detail::VariableAccess::create(ir::HostTensor::scalar<int64_t>(0), this->name() + "/step",
                                         /*trainable=*/false);
}

Tensor RandomImageLayer::call(const Tensor& x, bool training) {
  if (x.rank() != 3 && x.rank() != 4) {
    detail::raise<ShapeError>(
        class_name_, {x},
        fmt::format("needs images of rank 4 [batch, height, width, channels] or 3 [height, "
                    "width, channels], got shape {}",
                    x.shape().to_string()),
        Loc::current());
  }
  Tensor images = as_floating(x.rank() == 3 ? expand_dims(x, 0) : x);
  Tensor y = training ? augment(images) : inference(images);
  return x.rank() == 3 ? squeeze(y, {0}) : y;
}

Tensor RandomImageLayer::draw(const Shape& shape, const Tensor& like) {
  {
    // The counter lives on the host (a 0-d operand goes along to any device), as Dropout's.
    DeviceScope on_host(Device::cpu());
    step_.assign_add(constant(int64_t{1}));
  }
  Tensor step = step_.value();
  if (!like.is_symbolic() && !like.device().is_cpu()) step = step.to(like.device());
  return random_uniform_at(shape, step, 0.0, 1.0, seed_, like.dtype());
}

RandomFlip::RandomFlip(std::string mode, std::optional<uint64_t> seed, std::string name, Loc loc)
    : RandomImageLayer("random_flip", "RandomFlip", seed, std::move(name)),
      horizontal_(mode == "horizontal" || mode == "horizontal_and_vertical"),
      vertical_(mode == "vertical" || mode == "horizontal_and_vertical") {
  check_choice("RandomFlip", "mode", mode, {"horizontal", "vertical", "horizontal_and_vertical"},
               loc);
}

Tensor RandomFlip::augment(const Tensor& images) {
  // Each image's matrix maps x to (W − 1) − x where it flips (scale −1) and to x elsewhere: an
  // exact mirror under nearest interpolation.
  const int64_t n = images.shape()[0], h = images.shape()[1], w = images.shape()[2];
  Tensor u = draw({n, 2}, images);
  Tensor zero = zeros({n}, images.dtype()), one = ones({n}, images.dtype());
  auto sign = [&](bool active, int64_t column) {
    return active ? where(less(u.index({Slice(), column}), 0.5), -one, one) : one;
  };
  Tensor sx = sign(horizontal_, 0), sy = sign(vertical_, 1);
  Tensor tx = (1.0 - sx) * (0.5 * static_cast<double>(w - 1));
  Tensor ty = (1.0 - sy) * (0.5 * static_cast<double>(h - 1));
  return image::transform(images, matrices({sx, zero, tx, zero, sy, ty, zero, zero}), "nearest",
                          "nearest");
}

RandomTransformLayer::RandomTransformLayer(const std::string& kind, const char* class_name,
                                           std::string fill_mode, std::string interpolation,
                                           std::optional<uint64_t> seed, double fill_value,
                                           std::string name, Loc loc)
    : RandomImageLayer(kind, class_name, seed, std::move(name)),
      fill_mode_(std::move(fill_mode)),
      interpolation_(std::move(interpolation)),
      fill_value_(fill_value) {
  check_choice(class_name, "fill_mode", fill_mode_, {"reflect", "wrap", "constant", "nearest"},
               loc);
  check_choice(class_name, "interpolation", interpolation_, {"bilinear", "nearest"}, loc);
}

Tensor RandomTransformLayer::apply_transform(const Tensor& images, const Tensor& m) const {
  return image::transform(images, m, interpolation_, fill_mode_, fill_value_);
}

RandomRotation::RandomRotation(Factor factor, std::string fill_mode, std::string interpolation,
                               std::optional<uint64_t> seed, double fill_value, std::string name,
                               Loc loc)
    : RandomTransformLayer("random_rotation", "RandomRotation", std::move(fill_mode),
                           std::move(interpolation), seed, fill_value, std::move(name), loc) {
  std::tie(lower_, upper_) = factor_range("RandomRotation", "factor", factor, true, -1, 1, loc);
}

Tensor RandomRotation::augment(const Tensor& images) {
  const int64_t n = images.shape()[0];
  const double h = static_cast<double>(images.shape()[1] - 1);
  const double w = static_cast<double>(images.shape()[2] - 1);
  const double two_pi = 2 * std::numbers::pi;
  Tensor angle = (lower_ + draw({n}, images) * (upper_ - lower_)) * two_pi;
  Tensor c = cos(angle), s = sin(angle);
  // Output pixel p reads R·(p − centre) + centre: the rotation about the image's centre.
  Tensor x_offset = (w - (c * w - s * h)) * 0.5;
  Tensor y_offset = (h - (s * w + c * h)) * 0.5;
  Tensor zero = zeros({n}, images.dtype());
  return apply_transform(images, matrices({c, -s, x_offset, s, c, y_offset, zero, zero}));
}

RandomZoom::RandomZoom(Factor height_factor, std::optional<Factor> width_factor,
                       std::string fill_mode, std::string interpolation,
                       std::optional<uint64_t> seed, double fill_value, std::string name, Loc loc)
    : RandomTransformLayer("random_zoom", "RandomZoom", std::move(fill_mode),
                           std::move(interpolation), seed, fill_value, std::move(name), loc),
      same_zoom_(!width_factor) {
  std::tie(height_lower_, height_upper_) =
      factor_range("RandomZoom", "height_factor", height_factor, true, -1, 1, loc);
  std::tie(width_lower_, width_upper_) =
      width_factor ? factor_range("RandomZoom", "width_factor", *width_factor, true, -1, 1, loc)
                   : std::pair{height_lower_, height_upper_};
}

Tensor RandomZoom::augment(const Tensor& images) {
  const int64_t n = images.shape()[0];
  const double h = static_cast<double>(images.shape()[1] - 1);
  const double w = static_cast<double>(images.shape()[2] - 1);
  Tensor u = draw({n, 2}, images);
  Tensor zy = 1.0 + (height_lower_ + u.index({Slice(), 0}) * (height_upper_ - height_lower_));
  Tensor zx = same_zoom_
                  ? zy
                  : 1.0 + (width_lower_ + u.index({Slice(), 1}) * (width_upper_ - width_lower_));
  // Scaling about the centre: a zoom above 1 reads a larger area (zoomed out).
  Tensor zero = zeros({n}, images.dtype());
  return apply_transform(images, matrices({zx, zero, (1.0 - zx) * (w / 2), zero, zy,
                                           (1.0 - zy) * (h / 2), zero, zero}));
}

RandomTranslation::RandomTranslation(Factor height_factor, Factor width_factor,
                                     std::string fill_mode, std::string interpolation,
                                     std::optional<uint64_t> seed, double fill_value,
                                     std::string name, Loc loc)
    : RandomTransformLayer("random_translation", "RandomTranslation", std::move(fill_mode),
                           std::move(interpolation), seed, fill_value, std::move(name), loc) {
  std::tie(height_lower_, height_upper_) =
      factor_range("RandomTranslation", "height_factor", height_factor, true, -1, 1, loc);
  std::tie(width_lower_, width_upper_) =
      factor_range("RandomTranslation", "width_factor", width_factor, true, -1, 1, loc);
}

Tensor RandomTranslation::augment(const Tensor& images) {
  const int64_t n = images.shape()[0];
  const double h = static_cast<double>(images.shape()[1]);
  const double w = static_cast<double>(images.shape()[2]);
  Tensor u = draw({n, 2}, images);
  Tensor dy = (height_lower_ + u.index({Slice(), 0}) * (height_upper_ - height_lower_)) * h;
  Tensor dx = (width_lower_ + u.index({Slice(), 1}) * (width_upper_ - width_lower_)) * w;
  Tensor zero = zeros({n}, images.dtype()), one = ones({n}, images.dtype());
  return apply_transform(images, matrices({one, zero, -dx, zero, one, -dy, zero, zero}));
}

RandomContrast::RandomContrast(Factor factor, std::pair<double, double> value_range,
                               std::optional<uint64_t> seed, std::string name, Loc loc)
    : RandomImageLayer("random_contrast", "RandomContrast", seed, std::move(name)),
      value_range_(value_range) {
  std::pair<double, double> r = factor_range("RandomContrast", "factor", factor, false, 0,
                                             std::numeric_limits<double>::infinity(), loc);
  if (r.first > 1) {
    detail::raise<ValueError>(
        "RandomContrast", {},
        fmt::format("factor's lower bound must lie in [0, 1] (the contrast factor's range is "
                    "[1 - lower, 1 + upper]), got {}",
                    r.first),
        loc);
  }
  if (!(value_range.first < value_range.second)) {
    detail::raise<ValueError>("RandomContrast", {},
                              fmt::format("value_range must be (low, high) with low < high, got "
                                          "({}, {})",
                                          value_range.first, value_range.second),
                              loc);
  }
  lower_ = 1.0 - r.first;
  upper_ = 1.0 + r.second;
}

Tensor RandomContrast::augment(const Tensor& images) {
  const int64_t n = images.shape()[0];
  Tensor factor = lower_ + draw({n, 1, 1, 1}, images) * (upper_ - lower_);
  Tensor mean = reduce_mean(images, {1, 2}, /*keepdims=*/true);
  Tensor y = mean + (images - mean) * factor;
  return minimum(maximum(y, value_range_.first), value_range_.second);
}

RandomCrop::RandomCrop(int64_t height, int64_t width, std::optional<uint64_t> seed,
                       std::string name, Loc loc)
    : RandomImageLayer("random_crop", "RandomCrop", seed, std::move(name)),
      height_(height),
      width_(width) {
  check_size("RandomCrop", height, width, loc);
}

Tensor RandomCrop::augment(const Tensor& images) {
  const int64_t h = images.shape()[1], w = images.shape()[2];
  if (h < height_ || w < width_) return inference(images);
  // One offset for the batch: (top, left) uniform over the crops that fit, applied as an integer
  // shift (exact under nearest interpolation), then the static crop at the origin.
  Tensor u = draw({2}, images);
  Tensor top = minimum(floor(u.index({0}) * static_cast<double>(h - height_ + 1)),
                       static_cast<double>(h - height_));
  Tensor left = minimum(floor(u.index({1}) * static_cast<double>(w - width_ + 1)),
                        static_cast<double>(w - width_));
  Tensor zero = zeros({}, images.dtype()), one = ones({}, images.dtype());
  Tensor m = reshape(stack({one, zero, left, zero, one, top, zero, zero}, 0), {1, 8});
  Tensor shifted = image::transform(images, m, "nearest", "nearest");
  return shifted.index({Slice(), Slice(0, height_), Slice(0, width_), Slice()});
}

Tensor RandomCrop::inference(const Tensor& images) {
  return smart_resize(images, height_, width_);
}

}  // namespace kiln::layers
