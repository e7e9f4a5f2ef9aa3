// Internal: the attributes and the coordinate arithmetic of the image ops (image_resize,
// image_transform). The shape rule validates the attributes through these parsers, the
// interpreter computes with the functions below, and codegen emits the same arithmetic in the
// same order (in double), so the compiled kernels match the oracle.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string_view>

#include "kiln/ir/attrs.h"
#include "kiln/ir/types.h"

namespace kiln::ir {

enum class ImageInterpolation { nearest, bilinear };
// How image_transform reads outside the image: reflect (d c b a | a b c d | d c b a, about the
// pixel edges), wrap (a b c d | a b c d), constant (fill_value) or nearest (the edge pixel).
enum class FillMode { reflect, wrap, constant, nearest };

// "nearest" or "bilinear"; ValueError naming the attribute otherwise.
ImageInterpolation parse_interpolation(std::string_view text, std::string_view attr);
// "reflect", "wrap", "constant" or "nearest"; ValueError otherwise.
FillMode parse_fill_mode(std::string_view text);

// image_resize's validated attributes.
struct ResizeAttrs {
  int64_t height = 0, width = 0;
  ImageInterpolation method = ImageInterpolation::bilinear;
};
// Reads `size` (two positive ints) and `method` (default "bilinear").
ResizeAttrs resize_attrs(const Attrs& attrs);

// image_transform's validated attributes.
struct TransformAttrs {
  ImageInterpolation interpolation = ImageInterpolation::bilinear;
  FillMode fill_mode = FillMode::reflect;
  double fill_value = 0.0;
};
// Reads `interpolation` (default "bilinear"), `fill_mode` (default "reflect") and `fill_value`
// (default 0).
TransformAttrs transform_attrs(const Attrs& attrs);

// Where output pixel `o` of a resize from `in` to `out` pixels samples the input, with half-pixel
// centres (tf.image.resize): (o + 0.5) · in / out − 0.5 for bilinear. Nearest takes
// floor((o + 0.5) · in / out), clamped to [0, in − 1].
inline double resize_source(int64_t o, int64_t in, int64_t out) {
  return (static_cast<double>(o) + 0.5) * (static_cast<double>(in) / static_cast<double>(out)) -
         0.5;
}
inline int64_t resize_nearest(int64_t o, int64_t in, int64_t out) {
  double s = std::floor((static_cast<double>(o) + 0.5) *
                        (static_cast<double>(in) / static_cast<double>(out)));
  return std::max<int64_t>(0, std::min<int64_t>(static_cast<int64_t>(s), in - 1));
}

// Maps an input coordinate of image_transform into the image by the fill mode (reflect, wrap and
// nearest return a value in [0, len − 1]; constant returns it unchanged, clamped to [−2, len + 1]
// so that it converts to an integer safely: every tap beyond −1 or len is outside anyway). NaN
// stays NaN (the output pixel is fill_value then).
inline double map_fill_coordinate(double c, int64_t len, FillMode mode) {
  const double n = static_cast<double>(len);
  auto clamp = [](double v, double lo, double hi) { return v < lo ? lo : (v > hi ? hi : v); };
  switch (mode) {
    case FillMode::constant:
      return clamp(c, -2.0, n + 1.0);
    case FillMode::nearest:
      return clamp(c, 0.0, n - 1.0);
    case FillMode::wrap:
      return clamp(c - n * std::floor(c / n), 0.0, n - 1.0);
    case FillMode::reflect: {
      double t = c - 2.0 * n * std::floor(c / (2.0 * n));
      if (t >= n) t = 2.0 * n - 1.0 - t;
      return clamp(t, 0.0, n - 1.0);
    }
  }
  return c;
}

}  // namespace kiln::ir
