// Shape inference and verifier rules for the image ops (NHWC), and the attribute parsers the
// interpreter and codegen share (ir/ops/image.h).
#include "kiln/ir/ops/image.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <limits>

#include "kiln/ir/error.h"
#include "kiln/ir/ops/families.h"

namespace kiln::ir {

namespace {

std::string_view string_or(const Attrs& attrs, std::string_view name, std::string_view fallback) {
  return attrs.has(name) ? std::string_view(attrs.get_string(name)) : fallback;
}

void check_images(const TensorType& images) {
  if (!is_floating(images.dtype)) {
    throw TypeError(
        fmt::format("images must be floating (f32 or f64), got {}", dtype_name(images.dtype)));
  }
  if (images.shape.rank() != 4) {
    throw ShapeError(fmt::format("images must have rank 4 [N, H, W, C], got shape {}",
                                 images.shape.to_string()));
  }
}

TensorType infer_resize(const TensorType& images, const Attrs& attrs) {
  check_images(images);
  const ResizeAttrs r = resize_attrs(attrs);
  const Shape& s = images.shape;
  Shape out{s[0], r.height, r.width, s[3]};
  int64_t count = 1;
  for (int64_t d : out) {
    if (__builtin_mul_overflow(count, d, &count) || count > (int64_t{1} << 59)) {
      throw ValueError(fmt::format("the result {} has too many elements", out.to_string()));
    }
  }
  if ((s[1] == 0 || s[2] == 0) && out.num_elements() != 0) {
    throw ShapeError(
        fmt::format("cannot resize empty images ({}) to {}x{}", s.to_string(), r.height, r.width));
  }
  return TensorType{images.dtype, out};
}

TensorType infer_transform(const TensorType& images, const TensorType& transforms,
                           const Attrs& attrs) {
  check_images(images);
  if (transforms.dtype != images.dtype) {
    throw TypeError(fmt::format("transforms must have the images' dtype {}, got {}",
                                dtype_name(images.dtype), dtype_name(transforms.dtype)));
  }
  const Shape& t = transforms.shape;
  if (t.rank() != 2 || t[1] != 8 || (t[0] != 1 && t[0] != images.shape[0])) {
    throw ShapeError(fmt::format("transforms must have shape [{}, 8] or [1, 8], got {}",
                                 images.shape[0], t.to_string()));
  }
  transform_attrs(attrs);
  return images;
}

}  // namespace

ImageInterpolation parse_interpolation(std::string_view text, std::string_view attr) {
  if (text == "nearest") return ImageInterpolation::nearest;
  if (text == "bilinear") return ImageInterpolation::bilinear;
  throw ValueError(fmt::format("{} must be \"bilinear\" or \"nearest\", got \"{}\"", attr, text));
}

FillMode parse_fill_mode(std::string_view text) {
  if (text == "reflect") return FillMode::reflect;
  if (text == "wrap") return FillMode::wrap;
  if (text == "constant") return FillMode::constant;
  if (text == "nearest") return FillMode::nearest;
  throw ValueError(fmt::format(
      "fill_mode must be \"reflect\", \"wrap\", \"constant\" or \"nearest\", got \"{}\"", text));
}

ResizeAttrs resize_attrs(const Attrs& attrs) {
  const std::vector<int64_t>& size = attrs.get_ints("size");
  if (size.size() != 2 || size[0] < 1 || size[1] < 1) {
    throw ValueError(
        fmt::format("attribute 'size' must hold 2 positive ints (height, width), "
                    "got [{}]",
                    fmt::join(size, ", ")));
  }
  ResizeAttrs r;
  r.height = size[0];
  r.width = size[1];
  r.method = parse_interpolation(string_or(attrs, "method", "bilinear"), "method");
  return r;
}

TransformAttrs transform_attrs(const Attrs& attrs) {
  TransformAttrs t;
  t.interpolation =
      parse_interpolation(string_or(attrs, "interpolation", "bilinear"), "interpolation");
  t.fill_mode = parse_fill_mode(string_or(attrs, "fill_mode", "reflect"));
  t.fill_value = attrs.get_float("fill_value", 0.0);
  return t;
}

std::vector<TensorType> infer_image(Op op, std::span<const TensorType> inputs, const Attrs& attrs) {
  switch (op) {
    case Op::image_resize:
      return {infer_resize(inputs[0], attrs)};
    case Op::image_transform:
      return {infer_transform(inputs[0], inputs[1], attrs)};
    default:
      KILN_CHECK(false, "not an image op");
  }
}

}  // namespace kiln::ir
