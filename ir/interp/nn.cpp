// Interpreter kernels for the nn ops (NHWC activations, HWIO filters).
//
// Accuracy: sums (convolution taps, pool averages, softmax denominators) accumulate in double and
// round to the result dtype once. Window geometry comes from ir/ops/window.h, the same code the
// shape rule uses.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "kiln/ir/error.h"
#include "kiln/ir/ops/families.h"
#include "kiln/ir/ops/window.h"

namespace kiln::ir {

namespace {

// Row-major offset into an [N, H, W, C] tensor.
struct Nhwc {
  int64_t h, w, c;
  int64_t at(int64_t n, int64_t y, int64_t x, int64_t ch) const {
    return ((n * h + y) * w + x) * c + ch;
  }
};

Nhwc nhwc_of(const Shape& s) {
  return Nhwc{s[1], s[2], s[3]};
}

// f(ky, kx, iy, ix) for each tap of output (oy, ox)'s window that reads the input (padding
// skipped), iy and ix the positions it reads.
template <class F>
void for_each_tap_inside(const Window2D& win, int64_t oy, int64_t ox, F f) {
  const auto [ky0, ky1] = win.h.taps_inside(oy);
  const auto [kx0, kx1] = win.w.taps_inside(ox);
  for (int64_t ky = ky0; ky < ky1; ++ky)
    for (int64_t kx = kx0; kx < kx1; ++kx)
      f(ky, kx, win.h.input_pos(oy, ky), win.w.input_pos(ox, kx));
}

template <class T>
void conv2d_typed(const HostTensor& input, const HostTensor& filter, const Attrs& attrs,
                  HostTensor& out) {
  const Window2D win = conv2d_window(input.shape(), filter.shape(), attrs);
  const Nhwc in = nhwc_of(input.shape());
  const Nhwc res = nhwc_of(out.shape());
  const int64_t batch = input.shape()[0];
  const int64_t kw = filter.shape()[1], channels = filter.shape()[2], outs = filter.shape()[3];
  const T* x = input.data<T>();
  const T* f = filter.data<T>();
  T* y = out.data<T>();
  std::vector<double> acc(static_cast<size_t>(outs));
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t oy = 0; oy < win.h.out; ++oy) {
      for (int64_t ox = 0; ox < win.w.out; ++ox) {
        std::fill(acc.begin(), acc.end(), 0.0);
        for_each_tap_inside(win, oy, ox, [&](int64_t ky, int64_t kx, int64_t iy, int64_t ix) {
          for (int64_t c = 0; c < channels; ++c) {
            const double v = static_cast<double>(x[in.at(n, iy, ix, c)]);
            const T* taps = f + ((ky * kw + kx) * channels + c) * outs;
            for (int64_t o = 0; o < outs; ++o)
              acc[static_cast<size_t>(o)] += v * taps[o];
          }
        });
        for (int64_t o = 0; o < outs; ++o) {
          y[res.at(n, oy, ox, o)] = static_cast<T>(acc[static_cast<size_t>(o)]);
        }
      }
    }
  }
}

// dw[kh, kw, c, o] = Σ over n, oy, ox of x[n, iy, ix, c] · dy[n, oy, ox, o] for the input
// position tap (kh, kw) of output (oy, ox) reads (padding reads nothing).
template <class T>
void conv2d_filter_grad_typed(const HostTensor& input, const HostTensor& dy, const Attrs& attrs,
                              HostTensor& out) {
  const Shape& fs = out.shape();
  const Window2D win = conv2d_window(input.shape(), fs, attrs);
  const Nhwc in = nhwc_of(input.shape());
  const Nhwc res = nhwc_of(dy.shape());
  const int64_t batch = input.shape()[0], channels = fs[2], outs = fs[3];
  const T* x = input.data<T>();
  const T* g = dy.data<T>();
  std::vector<double> acc(static_cast<size_t>(fs.num_elements()), 0.0);
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t oy = 0; oy < win.h.out; ++oy) {
      for (int64_t ox = 0; ox < win.w.out; ++ox) {
        const T* d = g + res.at(n, oy, ox, 0);
        for_each_tap_inside(win, oy, ox, [&](int64_t ky, int64_t kx, int64_t iy, int64_t ix) {
          for (int64_t c = 0; c < channels; ++c) {
            const double v = static_cast<double>(x[in.at(n, iy, ix, c)]);
            double* a = acc.data() + ((ky * fs[1] + kx) * channels + c) * outs;
            for (int64_t o = 0; o < outs; ++o)
              a[o] += v * static_cast<double>(d[o]);
          }
        });
      }
    }
  }
  T* w = out.data<T>();
  for (size_t i = 0; i < acc.size(); ++i)
    w[i] = static_cast<T>(acc[i]);
}

// Max (NaN propagates) or average over the real elements of each window; padding is ignored.
template <class T>
T pool_window_value(bool is_max, const T* x, const Nhwc& in, const Window2D& win, int64_t n,
                    int64_t oy, int64_t ox, int64_t c) {
  T best = -std::numeric_limits<T>::infinity();
  double sum = 0.0;
  int64_t count = 0;
  const auto [ky0, ky1] = win.h.taps_inside(oy);
  const auto [kx0, kx1] = win.w.taps_inside(ox);
  for (int64_t ky = ky0; ky < ky1; ++ky) {
    const int64_t iy = win.h.input_pos(oy, ky);
    for (int64_t kx = kx0; kx < kx1; ++kx) {
      const int64_t ix = win.w.input_pos(ox, kx);
      const T v = x[in.at(n, iy, ix, c)];
      if (!std::isnan(best) && (std::isnan(v) || v > best)) best = v;
      sum += static_cast<double>(v);
      ++count;
    }
  }
  if (is_max) return best;
  // Every window of a non-empty input overlaps it, so count > 0; guard anyway.
  return count == 0 ? T{0} : static_cast<T>(sum / static_cast<double>(count));
}

template <class T>
void pool_typed(bool is_max, const HostTensor& input, const Attrs& attrs, HostTensor& out) {
  const Window2D win = pool_window(input.shape(), attrs);
  const Nhwc in = nhwc_of(input.shape());
  const Nhwc res = nhwc_of(out.shape());
  const int64_t batch = input.shape()[0];
  const T* x = input.data<T>();
  T* y = out.data<T>();
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t oy = 0; oy < win.h.out; ++oy) {
      for (int64_t ox = 0; ox < win.w.out; ++ox) {
        for (int64_t c = 0; c < in.c; ++c) {
          y[res.at(n, oy, ox, c)] = pool_window_value(is_max, x, in, win, n, oy, ox, c);
        }
      }
    }
  }
}

// max_pool2d's gradient: each window's dy goes to its first tap (row-major, padding skipped)
// whose input equals the window's y; a window with none (y NaN) routes nothing. The sums at each
// input position run in the order of the composition this op replaced (tap by tap, row-major),
// in T, so its results are the same bit for bit.
template <class T>
void max_pool_grad_typed(std::span<const HostTensor> inputs, const Attrs& attrs, HostTensor& out) {
  const HostTensor& input = inputs[0];
  const Window2D win = pool_window(input.shape(), attrs);
  const Nhwc in = nhwc_of(input.shape());
  const Nhwc res = nhwc_of(inputs[1].shape());
  const int64_t batch = input.shape()[0];
  const T* x = input.data<T>();
  const T* y = inputs[1].data<T>();
  const T* dy = inputs[2].data<T>();
  T* dx = out.data<T>();
  // The first tap of each window that equals its max, as ky * kernel_w + kx; -1 for none.
  std::vector<int64_t> first(static_cast<size_t>(inputs[1].shape().num_elements()), -1);
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t oy = 0; oy < win.h.out; ++oy) {
      for (int64_t ox = 0; ox < win.w.out; ++ox) {
        const auto [ky0, ky1] = win.h.taps_inside(oy);
        const auto [kx0, kx1] = win.w.taps_inside(ox);
        for (int64_t c = 0; c < in.c; ++c) {
          const int64_t o = res.at(n, oy, ox, c);
          for (int64_t ky = ky0; ky < ky1 && first[static_cast<size_t>(o)] < 0; ++ky) {
            for (int64_t kx = kx0; kx < kx1; ++kx) {
              if (x[in.at(n, win.h.input_pos(oy, ky), win.w.input_pos(ox, kx), c)] == y[o]) {
                first[static_cast<size_t>(o)] = ky * win.w.kernel + kx;
                break;
              }
            }
          }
        }
      }
    }
  }
  for (int64_t ky = 0; ky < win.h.kernel; ++ky) {
    for (int64_t kx = 0; kx < win.w.kernel; ++kx) {
      const int64_t tap = ky * win.w.kernel + kx;
      for (int64_t n = 0; n < batch; ++n) {
        for (int64_t oy = 0; oy < win.h.out; ++oy) {
          const int64_t iy = win.h.input_pos(oy, ky);
          if (iy < 0 || iy >= in.h) continue;
          for (int64_t ox = 0; ox < win.w.out; ++ox) {
            const int64_t ix = win.w.input_pos(ox, kx);
            if (ix < 0 || ix >= in.w) continue;
            for (int64_t c = 0; c < in.c; ++c) {
              const int64_t o = res.at(n, oy, ox, c);
              if (first[static_cast<size_t>(o)] == tap) dx[in.at(n, iy, ix, c)] += dy[o];
            }
          }
        }
      }
    }
  }
}

// softmax / log_softmax along `axis`, viewing the operand as [outer, n, inner]. Subtracting the
// row maximum first keeps exp from overflowing.
template <class T>
void softmax_typed(bool log, const HostTensor& input, const Attrs& attrs, HostTensor& out) {
  const Shape& shape = input.shape();
  const int64_t axis = normalize_axis(attrs.get_int("axis", -1), shape.rank());
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d)
    outer *= shape[d];
  for (int64_t d = axis + 1; d < shape.rank(); ++d)
    inner *= shape[d];
  const int64_t n = shape[axis];
  const T* x = input.data<T>();
  T* y = out.data<T>();
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t j = 0; j < inner; ++j) {
      const int64_t base = o * n * inner + j;
      double max = -std::numeric_limits<double>::infinity();
      for (int64_t k = 0; k < n; ++k)
        max = std::max(max, static_cast<double>(x[base + k * inner]));
      double sum = 0.0;
      for (int64_t k = 0; k < n; ++k)
        sum += std::exp(static_cast<double>(x[base + k * inner]) - max);
      const double log_sum = std::log(sum);
      for (int64_t k = 0; k < n; ++k) {
        const double shifted = static_cast<double>(x[base + k * inner]) - max;
        y[base + k * inner] = static_cast<T>(log ? shifted - log_sum : std::exp(shifted) / sum);
      }
    }
  }
}

template <class T>
void nn_typed(Op op, std::span<const HostTensor> inputs, const Attrs& attrs, HostTensor& out) {
  switch (op) {
    case Op::conv2d:
      conv2d_typed<T>(inputs[0], inputs[1], attrs, out);
      return;
    case Op::conv2d_filter_grad:
      conv2d_filter_grad_typed<T>(inputs[0], inputs[1], attrs, out);
      return;
    case Op::max_pool2d:
      pool_typed<T>(true, inputs[0], attrs, out);
      return;
    case Op::avg_pool2d:
      pool_typed<T>(false, inputs[0], attrs, out);
      return;
    case Op::max_pool2d_grad:
      max_pool_grad_typed<T>(inputs, attrs, out);
      return;
    case Op::softmax:
      softmax_typed<T>(false, inputs[0], attrs, out);
      return;
    case Op::log_softmax:
      softmax_typed<T>(true, inputs[0], attrs, out);
      return;
    default:
      KILN_CHECK(false, "not an nn op");
  }
}

}  // namespace

void interpret_nn(Op op, std::span<const HostTensor> inputs, const Attrs& attrs,
                  std::span<HostTensor> outputs) {
  switch (inputs[0].dtype()) {
    case DType::f32:
      nn_typed<float>(op, inputs, attrs, outputs[0]);
      return;
    case DType::f64:
      nn_typed<double>(op, inputs, attrs, outputs[0]);
      return;
    default:
      KILN_CHECK(false, "nn op on a non-floating dtype");
  }
}

}  // namespace kiln::ir
