// Interpreter kernels for the image ops (NHWC). Coordinates and interpolation are computed in
// double and rounded to the element type once; the arithmetic is ir/ops/image.h's, in the order
// codegen emits it.
#include <cmath>

#include "kiln/ir/error.h"
#include "kiln/ir/ops/families.h"
#include "kiln/ir/ops/image.h"

namespace kiln::ir {

namespace {

struct Nhwc {
  int64_t h, w, c;
  int64_t at(int64_t n, int64_t y, int64_t x, int64_t ch) const {
    return ((n * h + y) * w + x) * c + ch;
  }
};

template <class T>
void resize_typed(const HostTensor& input, const Attrs& attrs, HostTensor& out) {
  const ResizeAttrs r = resize_attrs(attrs);
  const Shape& s = input.shape();
  const Nhwc in{s[1], s[2], s[3]}, res{r.height, r.width, s[3]};
  const T* x = input.data<T>();
  T* y = out.data<T>();
  for (int64_t n = 0; n < s[0]; ++n) {
    for (int64_t oy = 0; oy < r.height; ++oy) {
      for (int64_t ox = 0; ox < r.width; ++ox) {
        for (int64_t c = 0; c < s[3]; ++c) {
          if (r.method == ImageInterpolation::nearest) {
            y[res.at(n, oy, ox, c)] = x[in.at(n, resize_nearest(oy, in.h, r.height),
                                              resize_nearest(ox, in.w, r.width), c)];
            continue;
          }
          // tf.image.resize's bilinear: the lower tap clamped at 0, the upper at size − 1, the
          // weight the fraction above floor(source).
          const double sy = resize_source(oy, in.h, r.height);
          const double sx = resize_source(ox, in.w, r.width);
          const double fy = std::floor(sy), fx = std::floor(sx);
          const int64_t y0 = std::max<int64_t>(static_cast<int64_t>(fy), 0);
          const int64_t x0 = std::max<int64_t>(static_cast<int64_t>(fx), 0);
          const int64_t y1 = std::min<int64_t>(static_cast<int64_t>(std::ceil(sy)), in.h - 1);
          const int64_t x1 = std::min<int64_t>(static_cast<int64_t>(std::ceil(sx)), in.w - 1);
          const double ly = sy - fy, lx = sx - fx;
          auto at = [&](int64_t yy, int64_t xx) {
            return static_cast<double>(x[in.at(n, yy, xx, c)]);
          };
          const double top = at(y0, x0) + (at(y0, x1) - at(y0, x0)) * lx;
          const double bottom = at(y1, x0) + (at(y1, x1) - at(y1, x0)) * lx;
          y[res.at(n, oy, ox, c)] = static_cast<T>(top + (bottom - top) * ly);
        }
      }
    }
  }
}

template <class T>
void transform_typed(const HostTensor& input, const HostTensor& transforms, const Attrs& attrs,
                     HostTensor& out) {
  const TransformAttrs t = transform_attrs(attrs);
  const Shape& s = input.shape();
  const Nhwc in{s[1], s[2], s[3]};
  const T* x = input.data<T>();
  const T* m = transforms.data<T>();
  const bool shared = transforms.shape()[0] == 1;
  T* y = out.data<T>();
  for (int64_t n = 0; n < s[0]; ++n) {
    const T* a = m + (shared ? 0 : n * 8);
    double p[8];
    for (int i = 0; i < 8; ++i)
      p[i] = static_cast<double>(a[i]);
    for (int64_t oy = 0; oy < in.h; ++oy) {
      for (int64_t ox = 0; ox < in.w; ++ox) {
        const double dx = static_cast<double>(ox), dy = static_cast<double>(oy);
        const double k = p[6] * dx + p[7] * dy + 1.0;
        double sx = (p[0] * dx + p[1] * dy + p[2]) / k;
        double sy = (p[3] * dx + p[4] * dy + p[5]) / k;
        sx = map_fill_coordinate(sx, in.w, t.fill_mode);
        sy = map_fill_coordinate(sy, in.h, t.fill_mode);
        // A pixel outside the image (constant mode) reads fill_value.
        auto read = [&](int64_t yy, int64_t xx, int64_t c) {
          const bool inside = yy >= 0 && yy < in.h && xx >= 0 && xx < in.w;
          return inside ? static_cast<double>(x[in.at(n, yy, xx, c)]) : t.fill_value;
        };
        for (int64_t c = 0; c < in.c; ++c) {
          double v = t.fill_value;
          if (k != 0.0 && !std::isnan(sx) && !std::isnan(sy)) {
            if (t.interpolation == ImageInterpolation::nearest) {
              v = read(static_cast<int64_t>(std::round(sy)), static_cast<int64_t>(std::round(sx)),
                       c);
            } else {
              const double fy = std::floor(sy), fx = std::floor(sx);
              const int64_t y0 = static_cast<int64_t>(fy), x0 = static_cast<int64_t>(fx);
              const double top =
                  (fx + 1.0 - sx) * read(y0, x0, c) + (sx - fx) * read(y0, x0 + 1, c);
              const double bottom =
                  (fx + 1.0 - sx) * read(y0 + 1, x0, c) + (sx - fx) * read(y0 + 1, x0 + 1, c);
              v = (fy + 1.0 - sy) * top + (sy - fy) * bottom;
            }
          }
          y[in.at(n, oy, ox, c)] = static_cast<T>(v);
        }
      }
    }
  }
}

template <class T>
void image_typed(Op op, std::span<const HostTensor> inputs, const Attrs& attrs, HostTensor& out) {
  switch (op) {
    case Op::image_resize:
      resize_typed<T>(inputs[0], attrs, out);
      return;
    case Op::image_transform:
      transform_typed<T>(inputs[0], inputs[1], attrs, out);
      return;
    default:
      KILN_CHECK(false, "not an image op");
  }
}

}  // namespace

void interpret_image(Op op, std::span<const HostTensor> inputs, const Attrs& attrs,
                     std::span<HostTensor> outputs) {
  switch (inputs[0].dtype()) {
    case DType::f32:
      image_typed<float>(op, inputs, attrs, outputs[0]);
      return;
    case DType::f64:
      image_typed<double>(op, inputs, attrs, outputs[0]);
      return;
    default:
      KILN_CHECK(false, "image op on a non-floating dtype");
  }
}

}  // namespace kiln::ir
