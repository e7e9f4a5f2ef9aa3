#include "kiln/passes/conv_to_gemm.h"

#include "kiln/ir/ops/window.h"
#include "kiln/passes/rewrite.h"

namespace kiln::passes {

namespace {

using ir::Op;
using ir::Value;

constexpr int64_t kMaxTaps = 49;

// The input padded so that every tap of every window lies inside it (the input itself when no
// tap reads padding).
Value* padded_input(const ir::Node& n, const ir::Window2D& w, Rewriter& rw) {
  const ir::Shape& in = n.input(0)->type().shape;
  int64_t pad_bottom =
      std::max<int64_t>(0, (w.h.out - 1) * w.h.stride + (w.h.kernel - 1) * w.h.dilation + 1 -
                               (in[1] + w.h.pad_before));
  int64_t pad_right =
      std::max<int64_t>(0, (w.w.out - 1) * w.w.stride + (w.w.kernel - 1) * w.w.dilation + 1 -
                               (in[2] + w.w.pad_before));
  Value* x = n.input(0);
  if (w.h.pad_before == 0 && w.w.pad_before == 0 && pad_bottom == 0 && pad_right == 0) return x;
  ir::Attrs pad;
  pad.set_ints("paddings", {0, 0, w.h.pad_before, pad_bottom, w.w.pad_before, pad_right, 0, 0})
      .set_float("value", 0.0);
  return rw.create(Op::pad, {x}, std::move(pad));
}

// The filter's shape of a conv2d or conv2d_filter_grad node.
const ir::Shape& filter_shape(const ir::Node& n) {
  return n.op() == Op::conv2d ? n.input(1)->type().shape : n.output()->type().shape;
}

// A floating conv2d or conv2d_filter_grad whose windows read padding becomes pad + the same op
// "valid", which codegen runs as an implicit GEMM over the padded input.
ir::Value* explicit_padding(const ir::Node& n, Rewriter& rw) {
  if (n.op() != Op::conv2d && n.op() != Op::conv2d_filter_grad) return nullptr;
  if (!ir::is_floating(n.output()->type().dtype)) return nullptr;
  const ir::Shape& in = n.input(0)->type().shape;
  if (n.output()->type().shape.num_elements() == 0 || in.num_elements() == 0) return nullptr;
  const ir::Window2D w = ir::conv2d_window(in, filter_shape(n), n.attrs());
  Value* x = padded_input(n, w, rw);
  if (x == n.input(0)) return nullptr;
  ir::Attrs attrs = n.attrs();
  attrs.set_string("padding", "valid");
  return rw.create(n.op(), {x, n.input(1)}, std::move(attrs));
}

// One strided slice of the padded input `x` per window tap, [N, OH, OW, C] each, concatenated
// tap-major along channels so that the columns match the filter's HWIO order, as the patch
// matrix [N·OH·OW, KH·KW·C].
Value* patch_matrix(Value* x, const ir::Window2D& w, int64_t batch, int64_t channels,
                    Rewriter& rw) {
  std::vector<Value*> taps;
  for (int64_t i = 0; i < w.h.kernel; ++i) {
    for (int64_t j = 0; j < w.w.kernel; ++j) {
      int64_t y0 = i * w.h.dilation, x0 = j * w.w.dilation;
      ir::Attrs slice;
      slice.set_ints("begin", {0, y0, x0, 0})
          .set_ints("end", {batch, y0 + (w.h.out - 1) * w.h.stride + 1,
                            x0 + (w.w.out - 1) * w.w.stride + 1, channels})
          .set_ints("strides", {1, w.h.stride, w.w.stride, 1});
      taps.push_back(rw.create(Op::slice, {x}, std::move(slice)));
    }
  }
  Value* patches =
      taps.size() == 1 ? taps[0] : rw.create(Op::concat, taps, ir::Attrs().set_int("axis", 3));
  int64_t rows = batch * w.h.out * w.w.out, depth = w.h.kernel * w.w.kernel * channels;
  return rw.create(Op::reshape, {patches}, ir::Attrs().set_ints("shape", {rows, depth}));
}

// conv2d_filter_grad for im2col: the patch matrix, transposed, times dy viewed as
// [N·OH·OW, O].
ir::Value* im2col_filter_grad(const ir::Node& n, Rewriter& rw) {
  if (n.op() != Op::conv2d_filter_grad || !ir::is_floating(n.output()->type().dtype))
    return nullptr;
  const ir::Shape& in = n.input(0)->type().shape;
  const ir::Shape& dy = n.input(1)->type().shape;
  const ir::Shape& f = n.output()->type().shape;
  if (f.num_elements() == 0 || in.num_elements() == 0 || dy.num_elements() == 0) return nullptr;
  if (f[0] * f[1] > kMaxTaps) return nullptr;
  const ir::Window2D w = ir::conv2d_window(in, f, n.attrs());
  Value* matrix = patch_matrix(padded_input(n, w, rw), w, in[0], in[3], rw);
  Value* d = rw.create(Op::reshape, {n.input(1)},
                       ir::Attrs().set_ints("shape", {dy[0] * dy[1] * dy[2], dy[3]}));
  Value* product =
      rw.create(Op::matmul, {matrix, d},
                ir::Attrs().set_bool("transpose_a", true).set_bool("transpose_b", false));
  return rw.create(Op::reshape, {product}, ir::Attrs().set_ints("shape", f.dims()));
}

ir::Value* im2col_conv(const ir::Node& n, Rewriter& rw) {
  if (n.op() != Op::conv2d || !ir::is_floating(n.output()->type().dtype)) return nullptr;
  const ir::Shape& in = n.input(0)->type().shape;
  const ir::Shape& f = n.input(1)->type().shape;
  const ir::Shape& out = n.output()->type().shape;
  if (out.num_elements() == 0 || in.num_elements() == 0) return nullptr;
  // A patch matrix of many taps costs more to build (and to compile) than it saves.
  if (f[0] * f[1] > kMaxTaps) return nullptr;
  const ir::Window2D w = ir::conv2d_window(in, f, n.attrs());
  int64_t batch = in[0], channels = in[3], kh = f[0], kw = f[1], filters = f[3];
  Value* x = padded_input(n, w, rw);
  Value* matrix = patch_matrix(x, w, batch, channels, rw);
  int64_t depth = kh * kw * channels;
  Value* filter =
      rw.create(Op::reshape, {n.input(1)}, ir::Attrs().set_ints("shape", {depth, filters}));
  Value* product =
      rw.create(Op::matmul, {matrix, filter},
                ir::Attrs().set_bool("transpose_a", false).set_bool("transpose_b", false));
  return rw.create(Op::reshape, {product}, ir::Attrs().set_ints("shape", out.dims()));
}

}  // namespace

bool lower_conv_to_gemm(ir::Function& function, ConvLowering lowering) {
  if (lowering == ConvLowering::implicit) {
    const Pattern patterns[] = {explicit_padding};
    return apply_patterns(function, patterns);
  }
  const Pattern patterns[] = {im2col_conv, im2col_filter_grad};
  return apply_patterns(function, patterns);
}

}  // namespace kiln::passes
