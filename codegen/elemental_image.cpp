// The elemental emitter's image ops: image_resize and image_transform, one output element at a
// time in straight-line code. The arithmetic is ir/ops/image.h's, in double and in the
// interpreter's order; every tap's index is clamped into the image before it is read (a tap
// outside reads fill_value instead), so no input can make a kernel read out of bounds.
#include <llvm/IR/Intrinsics.h>

#include "kiln/codegen/elemental.h"
#include "kiln/ir/error.h"
#include "kiln/ir/ops/image.h"

namespace kiln::codegen {

using llvm::Value;
namespace intr = llvm::Intrinsic;

namespace {

Value* call1(Builder& b, intr::ID id, Value* x) {
  Value* args[] = {x};
  return call_intrinsic(b, id, args);
}

Value* dconst(Builder& b, double v) {
  return llvm::ConstantFP::get(b.getDoubleTy(), v);
}

// v < lo ? lo : (v > hi ? hi : v), as the interpreter's clamp (NaN stays NaN).
Value* fclamp(Builder& b, Value* v, double lo, double hi) {
  Value* upper = b.CreateSelect(b.CreateFCmpOGT(v, dconst(b, hi)), dconst(b, hi), v);
  return b.CreateSelect(b.CreateFCmpOLT(v, dconst(b, lo)), dconst(b, lo), upper);
}

Value* imin(Builder& b, Value* x, int64_t limit) {
  return b.CreateSelect(b.CreateICmpSGT(x, b.getInt64(limit)), b.getInt64(limit), x);
}
Value* imax(Builder& b, Value* x, int64_t limit) {
  return b.CreateSelect(b.CreateICmpSLT(x, b.getInt64(limit)), b.getInt64(limit), x);
}

// ir::map_fill_coordinate.
Value* map_fill(Builder& b, Value* c, int64_t len, ir::FillMode mode) {
  const double n = static_cast<double>(len);
  switch (mode) {
    case ir::FillMode::constant:
      return fclamp(b, c, -2.0, n + 1.0);
    case ir::FillMode::nearest:
      return fclamp(b, c, 0.0, n - 1.0);
    case ir::FillMode::wrap: {
      Value* turns = call1(b, intr::floor, b.CreateFDiv(c, dconst(b, n)));
      return fclamp(b, b.CreateFSub(c, b.CreateFMul(dconst(b, n), turns)), 0.0, n - 1.0);
    }
    case ir::FillMode::reflect: {
      Value* turns = call1(b, intr::floor, b.CreateFDiv(c, dconst(b, 2.0 * n)));
      Value* t = b.CreateFSub(c, b.CreateFMul(dconst(b, 2.0 * n), turns));
      Value* mirrored = b.CreateFSub(dconst(b, 2.0 * n - 1.0), t);
      t = b.CreateSelect(b.CreateFCmpOGE(t, dconst(b, n)), mirrored, t);
      return fclamp(b, t, 0.0, n - 1.0);
    }
  }
  return c;
}

}  // namespace

Value* ElementEmitter::image_resize(const ir::Node& node, const Index& index) {
  const ir::Value* input = node.input(0);
  const ir::Shape& s = input->type().shape;
  const ir::DType dtype = input->type().dtype;
  const ir::ResizeAttrs r = ir::resize_attrs(node.attrs());
  llvm::Type* f64 = b_.getDoubleTy();
  auto scale = [&](int64_t in, int64_t out) {
    return dconst(b_, static_cast<double>(in) / static_cast<double>(out));
  };
  auto centre = [&](Value* o) { return b_.CreateFAdd(b_.CreateSIToFP(o, f64), dconst(b_, 0.5)); };
  if (r.method == ir::ImageInterpolation::nearest) {
    auto source = [&](Value* o, int64_t in, int64_t out) {
      Value* f = call1(b_, intr::floor, b_.CreateFMul(centre(o), scale(in, out)));
      return imax(b_, imin(b_, b_.CreateFPToSI(f, b_.getInt64Ty()), in - 1), 0);
    };
    Index at{index[0], source(index[1], s[1], r.height), source(index[2], s[2], r.width), index[3]};
    return element(input, at);
  }
  auto source = [&](Value* o, int64_t in, int64_t out) {
    return b_.CreateFSub(b_.CreateFMul(centre(o), scale(in, out)), dconst(b_, 0.5));
  };
  Value* sy = source(index[1], s[1], r.height);
  Value* sx = source(index[2], s[2], r.width);
  Value* fy = call1(b_, intr::floor, sy);
  Value* fx = call1(b_, intr::floor, sx);
  llvm::Type* i64 = b_.getInt64Ty();
  Value* y0 = imax(b_, b_.CreateFPToSI(fy, i64), 0);
  Value* x0 = imax(b_, b_.CreateFPToSI(fx, i64), 0);
  Value* y1 = imin(b_, b_.CreateFPToSI(call1(b_, intr::ceil, sy), i64), s[1] - 1);
  Value* x1 = imin(b_, b_.CreateFPToSI(call1(b_, intr::ceil, sx), i64), s[2] - 1);
  Value* ly = b_.CreateFSub(sy, fy);
  Value* lx = b_.CreateFSub(sx, fx);
  auto at = [&](Value* y, Value* x) {
    return b_.CreateFPExt(element(input, Index{index[0], y, x, index[3]}), f64);
  };
  Value* tl = at(y0, x0);
  Value* tr = at(y0, x1);
  Value* bl = at(y1, x0);
  Value* br = at(y1, x1);
  Value* top = b_.CreateFAdd(tl, b_.CreateFMul(b_.CreateFSub(tr, tl), lx));
  Value* bottom = b_.CreateFAdd(bl, b_.CreateFMul(b_.CreateFSub(br, bl), lx));
  Value* v = b_.CreateFAdd(top, b_.CreateFMul(b_.CreateFSub(bottom, top), ly));
  return b_.CreateFPTrunc(v, scalar_type(b_.getContext(), dtype));
}

Value* ElementEmitter::image_transform(const ir::Node& node, const Index& index) {
  const ir::Value* input = node.input(0);
  const ir::Value* transforms = node.input(1);
  const ir::Shape& s = input->type().shape;
  const ir::DType dtype = input->type().dtype;
  const ir::TransformAttrs t = ir::transform_attrs(node.attrs());
  llvm::Type* f64 = b_.getDoubleTy();
  llvm::Type* i64 = b_.getInt64Ty();
  Value* row = transforms->type().shape[0] == 1 ? b_.getInt64(0) : index[0];
  Value* p[8];
  for (int i = 0; i < 8; ++i)
    p[i] = b_.CreateFPExt(element(transforms, Index{row, b_.getInt64(i)}), f64);
  Value* dx = b_.CreateSIToFP(index[2], f64);
  Value* dy = b_.CreateSIToFP(index[1], f64);
  auto affine = [&](Value* a, Value* c, Value* e) {
    return b_.CreateFAdd(b_.CreateFAdd(b_.CreateFMul(a, dx), b_.CreateFMul(c, dy)), e);
  };
  Value* k = affine(p[6], p[7], dconst(b_, 1.0));
  Value* sx = map_fill(b_, b_.CreateFDiv(affine(p[0], p[1], p[2]), k), s[2], t.fill_mode);
  Value* sy = map_fill(b_, b_.CreateFDiv(affine(p[3], p[4], p[5]), k), s[1], t.fill_mode);
  // fill_value when the projection is 0 or a coordinate is NaN; the coordinates are then replaced
  // by 0 so that their conversion to integers stays defined.
  Value* valid = b_.CreateAnd(b_.CreateFCmpONE(k, dconst(b_, 0.0)),
                              b_.CreateAnd(b_.CreateFCmpORD(sx, sx), b_.CreateFCmpORD(sy, sy)));
  sx = b_.CreateSelect(valid, sx, dconst(b_, 0.0));
  sy = b_.CreateSelect(valid, sy, dconst(b_, 0.0));
  Value* fill = dconst(b_, t.fill_value);
  auto read = [&](Value* y, Value* x) {
    Value* inside = b_.CreateAnd(b_.CreateICmpULT(y, b_.getInt64(s[1])),
                                 b_.CreateICmpULT(x, b_.getInt64(s[2])));
    Index at{index[0], imax(b_, imin(b_, y, s[1] - 1), 0), imax(b_, imin(b_, x, s[2] - 1), 0),
             index[3]};
    return b_.CreateSelect(inside, b_.CreateFPExt(element(input, at), f64), fill);
  };
  Value* v;
  if (t.interpolation == ir::ImageInterpolation::nearest) {
    v = read(b_.CreateFPToSI(call1(b_, intr::round, sy), i64),
             b_.CreateFPToSI(call1(b_, intr::round, sx), i64));
  } else {
    Value* fy = call1(b_, intr::floor, sy);
    Value* fx = call1(b_, intr::floor, sx);
    Value* y0 = b_.CreateFPToSI(fy, i64);
    Value* x0 = b_.CreateFPToSI(fx, i64);
    Value* y1 = b_.CreateAdd(y0, b_.getInt64(1));
    Value* x1 = b_.CreateAdd(x0, b_.getInt64(1));
    Value* wx0 = b_.CreateFSub(b_.CreateFAdd(fx, dconst(b_, 1.0)), sx);
    Value* wx1 = b_.CreateFSub(sx, fx);
    Value* wy0 = b_.CreateFSub(b_.CreateFAdd(fy, dconst(b_, 1.0)), sy);
    Value* wy1 = b_.CreateFSub(sy, fy);
    Value* top = b_.CreateFAdd(b_.CreateFMul(wx0, read(y0, x0)), b_.CreateFMul(wx1, read(y0, x1)));
    Value* bottom =
        b_.CreateFAdd(b_.CreateFMul(wx0, read(y1, x0)), b_.CreateFMul(wx1, read(y1, x1)));
    v = b_.CreateFAdd(b_.CreateFMul(wy0, top), b_.CreateFMul(wy1, bottom));
  }
  v = b_.CreateSelect(valid, v, fill);
  return b_.CreateFPTrunc(v, scalar_type(b_.getContext(), dtype));
}

}  // namespace kiln::codegen
