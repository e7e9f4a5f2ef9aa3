// Gradient rules of conv2d and the 2-D pools, built from ordinary ops (conv2d, pad, slice,
// transpose, select ...) so the gradients compile and differentiate again like any other code.
// Per spatial dimension the forward window reads input position o·stride − pad_before + k·dilation
// for output o and tap k (ir/ops/window.h); each rule sends dy back along that map.
#include <limits>

#include "kiln/ir/host_tensor.h"
#include "kiln/ir/ops/window.h"
#include "kiln/passes/grad_rules.h"

namespace kiln::passes::grad {

namespace {

using ir::Op;
using ir::WindowDim;

// Grows `x` along `axis` by `before` and `after` elements of `value`; a negative amount cuts
// that many elements off instead.
V resize(V x, int64_t axis, int64_t before, int64_t after, double value = 0.0) {
  const int64_t rank = x.rank();
  std::vector<int64_t> paddings(2 * rank, 0);
  paddings[2 * axis] = before > 0 ? before : 0;
  paddings[2 * axis + 1] = after > 0 ? after : 0;
  x = pad(x, paddings, value);
  if (before >= 0 && after >= 0) return x;
  std::vector<int64_t> begin(rank, 0), end = x.shape().dims(), strides(rank, 1);
  if (before < 0) begin[axis] = -before;
  if (after < 0) end[axis] += after;
  return slice(x, begin, end, strides);
}

// The filter [KH, KW, C, O] mirrored in both spatial dims, as [KH, KW, O, C].
V flip_filter(V w) {
  const ir::Shape& s = w.shape();
  V flipped = slice(w, {s[0] - 1, s[1] - 1, 0, 0}, {-1, -1, s[2], s[3]}, {-1, -1, 1, 1});
  return transpose(flipped, {0, 1, 3, 2});
}

// The gradient with respect to the input [N, H, W, C] of a convolution with window `win`, given
// dy [N, OH, OW, O] and the flipped filter [KH, KW, O, C]: dy spread out by the stride, padded
// so that a stride-1 "valid" convolution with the forward dilation lands on every input position.
// Input position p collects dy[o]·w[k] for o·s − pad_before + k·d = p; with the filter flipped
// (k' = K−1−k) that is the spread dy at p + k'·d − ((K−1)·d − pad_before).
V input_gradient(V dy, V flipped, const ir::Window2D& win) {
  const WindowDim* dims[] = {&win.h, &win.w};
  V g = dy;
  for (int64_t axis = 1; axis <= 2; ++axis) {
    const WindowDim& d = *dims[axis - 1];
    g = spread_out(g, axis, d.stride);
    int64_t before = (d.kernel - 1) * d.dilation - d.pad_before;
    int64_t after = d.in + d.pad_before - (d.out - 1) * d.stride - 1;
    g = resize(g, axis, before, after);
  }
  return conv2d(g, flipped, {1, 1}, "valid", {win.h.dilation, win.w.dilation});
}

// conv2d's window attributes (strides, padding, dilations) of `attrs`, as given.
ir::Attrs window_attrs(const ir::Attrs& attrs) {
  ir::Attrs out;
  for (const char* name : {"strides", "padding", "dilations"})
    if (const ir::AttrValue* v = attrs.find(name)) out.set(name, *v);
  return out;
}

// The filter gradient [KH, KW, C, O] of a convolution with `attrs`: one conv2d_filter_grad,
// which the CPU runs as a GEMM over the implicit patch matrix (codegen/gemm.cpp) and the GPU
// lowering turns into patches and a matmul (passes/conv_to_gemm.cpp).
V filter_gradient(V x, V dy, const ir::Attrs& attrs, int64_t kh, int64_t kw) {
  ir::Attrs a = window_attrs(attrs);
  a.set_ints("ksize", {kh, kw});
  return x.builder->op(Op::conv2d_filter_grad, {x, dy}, std::move(a));
}

std::vector<V> conv2d_rule(const Context& c) {
  V x = c.x(0), w = c.x(1), dy = c.dy();
  if (dy.shape().num_elements() == 0 || x.shape().num_elements() == 0 ||
      w.shape().num_elements() == 0)
    return {zeros_like(x), zeros_like(w)};
  ir::Window2D win = ir::conv2d_window(x.shape(), w.shape(), c.attrs());
  return {input_gradient(dy, flip_filter(w), win),
          filter_gradient(x, dy, c.attrs(), w.shape()[0], w.shape()[1])};
}

// conv2d_filter_grad(x, dy) = dw is linear in each operand: against dw's gradient g (a filter),
// x gets the input gradient of conv2d(x, g) for dy, and dy gets conv2d(x, g).
std::vector<V> conv2d_filter_grad_rule(const Context& c) {
  V x = c.x(0), dy = c.x(1), g = c.dy();
  if (dy.shape().num_elements() == 0 || x.shape().num_elements() == 0 ||
      g.shape().num_elements() == 0)
    return {zeros_like(x), zeros_like(dy)};
  ir::Window2D win = ir::conv2d_window(x.shape(), g.shape(), c.attrs());
  return {input_gradient(dy, flip_filter(g), win),
          x.builder->op(Op::conv2d, {x, g}, window_attrs(c.attrs()))};
}

// max_pool2d: dy goes to the first tap (row-major in the window) whose input equals the max, as
// TensorFlow routes it; padding never wins. One max_pool2d_grad op, which codegen computes per
// input element from the windows holding it (one kernel, where a composition of slices, compares
// and pads per tap took dozens).
std::vector<V> max_pool_rule(const Context& c) {
  V x = c.x(), y = c.y(), dy = c.dy();
  if (dy.shape().num_elements() == 0) return {zeros_like(x)};
  return {dy.builder->op(Op::max_pool2d_grad, {x, y, dy}, c.attrs())};
}

// max_pool2d_grad(x, y, dy) is linear in dy: the gradient g of dx reaches dy[window] from the
// window's first tap equal to y, i.e. g read at that tap. Built from one strided slice of x
// (padded with NaN, which equals nothing) and of g per tap, visiting the taps last to first so
// the first match is the one that stays. x and y only pick the taps: no gradient.
std::vector<V> max_pool_grad_rule(const Context& c) {
  V x = c.x(0), y = c.x(1), g = c.dy();
  if (y.shape().num_elements() == 0 || x.shape().num_elements() == 0)
    return {{}, {}, zeros_like(y)};
  ir::Window2D win = ir::pool_window(x.shape(), c.attrs());
  const ir::Shape& s = x.shape();
  const int64_t n = s[0], ch = s[3], oh = win.h.out, ow = win.w.out;
  const int64_t extent_h = (oh - 1) * win.h.stride + win.h.kernel;
  const int64_t extent_w = (ow - 1) * win.w.stride + win.w.kernel;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  V xp = resize(x, 1, win.h.pad_before, extent_h - win.h.pad_before - s[1], nan);
  xp = resize(xp, 2, win.w.pad_before, extent_w - win.w.pad_before - s[2], nan);
  V gp = resize(g, 1, win.h.pad_before, extent_h - win.h.pad_before - s[1]);
  gp = resize(gp, 2, win.w.pad_before, extent_w - win.w.pad_before - s[2]);
  V ddy = zeros_like(y);
  for (int64_t i = win.h.kernel; i-- > 0;) {
    for (int64_t j = win.w.kernel; j-- > 0;) {
      std::vector<int64_t> begin{0, i, j, 0};
      std::vector<int64_t> end{n, i + (oh - 1) * win.h.stride + 1, j + (ow - 1) * win.w.stride + 1,
                               ch};
      std::vector<int64_t> strides{1, win.h.stride, win.w.stride, 1};
      V hit = equal(slice(xp, begin, end, strides), y);
      V at_tap = slice(gp, begin, end, strides);
      ddy = select(hit, at_tap, ddy);
    }
  }
  return {{}, {}, ddy};
}

// The number of real (non-padding) input elements in each window, as a [1, OH, OW, 1] constant.
V window_counts(Builder& b, const ir::Window2D& win, ir::DType dtype) {
  ir::HostTensor counts(dtype, ir::Shape{1, win.h.out, win.w.out, 1});
  ir::visit_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    T* p = counts.data<T>();
    for (int64_t a = 0; a < win.h.out; ++a) {
      auto [h0, h1] = win.h.taps_inside(a);
      for (int64_t e = 0; e < win.w.out; ++e) {
        auto [w0, w1] = win.w.taps_inside(e);
        p[a * win.w.out + e] = static_cast<T>((h1 - h0) * (w1 - w0));
      }
    }
  });
  ir::Attrs attrs;
  attrs.set_tensor("value", std::move(counts));
  return b.op(Op::constant, {}, std::move(attrs));
}

// avg_pool2d: every tap of a window gets dy / count. That is the input gradient of a convolution
// with an all-ones filter, run with the channels moved into the batch so each channel is its own
// image: [N, OH, OW, C] → [N·C, OH, OW, 1].
std::vector<V> avg_pool_rule(const Context& c) {
  V x = c.x(), dy = c.dy();
  if (dy.shape().num_elements() == 0) return {zeros_like(x)};
  ir::Window2D win = ir::pool_window(x.shape(), c.attrs());
  const ir::Shape& s = x.shape();
  V g = dy / window_counts(*dy.builder, win, dy.dtype());
  g = reshape(transpose(g, {0, 3, 1, 2}), ir::Shape{s[0] * s[3], win.h.out, win.w.out, 1});
  V ones = dy.builder->full({dy.dtype(), ir::Shape{win.h.kernel, win.w.kernel, 1, 1}}, 1.0);
  V dx = input_gradient(g, ones, win);
  return {transpose(reshape(dx, ir::Shape{s[0], s[3], s[1], s[2]}), {0, 2, 3, 1})};
}

}  // namespace

void add_conv_rules(RuleTable& t) {
  t[size_t(Op::conv2d)] = conv2d_rule;
  t[size_t(Op::conv2d_filter_grad)] = conv2d_filter_grad_rule;
  t[size_t(Op::max_pool2d)] = max_pool_rule;
  t[size_t(Op::max_pool2d_grad)] = max_pool_grad_rule;
  t[size_t(Op::avg_pool2d)] = avg_pool_rule;
}

}  // namespace kiln::passes::grad
