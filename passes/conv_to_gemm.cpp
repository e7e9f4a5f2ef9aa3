#include "kiln/passes/conv_to_gemm.h"

#include "kiln/ir/ops/window.h"
#include "kiln/passes/rewrite.h"

namespace kiln::passes {

namespace {

using ir::Op;
using ir::Value;

constexpr int64_t kMaxTaps = 49;

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

  // The input padded so that every tap of every window lies inside it.
  int64_t pad_bottom = std::max<int64_t>(
      0, (w.h.out - 1) * w.h.stride + (kh - 1) * w.h.dilation + 1 - (in[1] + w.h.pad_before));
  int64_t pad_right = std::max<int64_t>(
      0, (w.w.out - 1) * w.w.stride + (kw - 1) * w.w.dilation + 1 - (in[2] + w.w.pad_before));
  Value* x = n.input(0);
  if (w.h.pad_before > 0 || w.w.pad_before > 0 || pad_bottom > 0 || pad_right > 0) {
    ir::Attrs pad;
    pad.set_ints("paddings", {0, 0, w.h.pad_before, pad_bottom, w.w.pad_before, pad_right, 0, 0})
        .set_float("value", 0.0);
    x = rw.create(Op::pad, {x}, std::move(pad));
  }
  // One strided slice per tap, [N, OH, OW, C] each, concatenated tap-major along channels so
  // the columns match the filter's HWIO order.
  std::vector<Value*> taps;
  for (int64_t i = 0; i < kh; ++i) {
    for (int64_t j = 0; j < kw; ++j) {
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
  int64_t rows = batch * w.h.out * w.w.out, depth = kh * kw * channels;
  Value* matrix = rw.create(Op::reshape, {patches}, ir::Attrs().set_ints("shape", {rows, depth}));
  Value* filter =
      rw.create(Op::reshape, {n.input(1)}, ir::Attrs().set_ints("shape", {depth, filters}));
  Value* product =
      rw.create(Op::matmul, {matrix, filter},
                ir::Attrs().set_bool("transpose_a", false).set_bool("transpose_b", false));
  return rw.create(Op::reshape, {product}, ir::Attrs().set_ints("shape", out.dims()));
}

const Pattern kPatterns[] = {im2col_conv};

}  // namespace

bool lower_conv_to_gemm(ir::Function& function) {
  return apply_patterns(function, kPatterns);
}

}  // namespace kiln::passes
