// The elemental emitter's ops with an inner loop per element: reductions, argmax/argmin, matmul
// (the naive dot product, for integer and small matmuls; f32/f64 matmul kernels above
// kGemmMinWork take the packed GEMM), conv2d (integer convolutions and filters too large for the
// conv_to_gemm lowering), pools and max_pool2d_grad. Floating sums accumulate in double (those of
// max_pool2d_grad in the element type, as the interpreter's) and integer sums and products in i64,
// in the interpreter's order (f32 sums over the innermost axis excepted: see reduce), so results
// match the oracle closely.
#include <limits>

#include "kiln/codegen/elemental.h"
#include "kiln/codegen/scalar_ops.h"
#include "kiln/ir/error.h"
#include "kiln/ir/ops/matmul.h"
#include "kiln/ir/ops/reduction.h"
#include "kiln/ir/ops/window.h"

namespace kiln::codegen {

using llvm::Value;

namespace {

// The type sums and products of `dtype` accumulate in.
llvm::Type* wide_type(Builder& b, ir::DType dtype) {
  return ir::is_floating(dtype) ? b.getDoubleTy() : b.getInt64Ty();
}

Value* widen(Builder& b, Value* x, ir::DType dtype) {
  if (ir::is_floating(dtype)) return b.CreateFPExt(x, b.getDoubleTy());
  return ir::is_unsigned(dtype) ? b.CreateZExt(x, b.getInt64Ty()) : b.CreateSExt(x, b.getInt64Ty());
}

Value* narrow(Builder& b, Value* x, ir::DType dtype) {
  llvm::Type* type = scalar_type(b.getContext(), dtype);
  return ir::is_floating(dtype) ? b.CreateFPTrunc(x, type) : b.CreateTrunc(x, type);
}

Value* clamp(Builder& b, Value* pos, int64_t size) {
  Value* low = b.CreateSelect(b.CreateICmpSLT(pos, b.getInt64(0)), b.getInt64(0), pos);
  return b.CreateSelect(b.CreateICmpSGT(low, b.getInt64(size - 1)), b.getInt64(size - 1), low);
}

// The input position a convolution window's tap (ky, kx) of output (oy, ox) reads, clamped into
// the input [N, H, W, C] `in` (for the load), and whether it lies inside (else it is padding).
struct WindowRead {
  Value* y;
  Value* x;
  Value* inside;
};
WindowRead window_read(Builder& b, const ir::Window2D& win, const ir::Shape& in, Value* oy,
                       Value* ox, Value* ky, Value* kx) {
  Value* iy = b.CreateAdd(b.CreateMul(oy, b.getInt64(win.h.stride)),
                          b.getInt64(static_cast<uint64_t>(-win.h.pad_before)));
  iy = b.CreateAdd(iy, b.CreateMul(ky, b.getInt64(win.h.dilation)));
  Value* ix = b.CreateAdd(b.CreateMul(ox, b.getInt64(win.w.stride)),
                          b.getInt64(static_cast<uint64_t>(-win.w.pad_before)));
  ix = b.CreateAdd(ix, b.CreateMul(kx, b.getInt64(win.w.dilation)));
  Value* inside =
      b.CreateAnd(b.CreateICmpULT(iy, b.getInt64(in[1])), b.CreateICmpULT(ix, b.getInt64(in[2])));
  return {clamp(b, iy, in[1]), clamp(b, ix, in[2]), inside};
}

}  // namespace

Value* is_nan(Builder& b, Value* x) {
  if (!x->getType()->isFloatingPointTy()) return b.getFalse();
  return b.CreateFCmpUNO(x, x);
}

Value* beats(Builder& b, ir::DType dtype, bool is_max, Value* x, Value* best) {
  Value* better;
  if (x->getType()->isFloatingPointTy()) {
    better = is_max ? b.CreateFCmpOGT(x, best) : b.CreateFCmpOLT(x, best);
  } else if (ir::is_unsigned(dtype)) {
    better = is_max ? b.CreateICmpUGT(x, best) : b.CreateICmpULT(x, best);
  } else {
    better = is_max ? b.CreateICmpSGT(x, best) : b.CreateICmpSLT(x, best);
  }
  return b.CreateAnd(b.CreateNot(is_nan(b, best)), b.CreateOr(is_nan(b, x), better));
}

llvm::Constant* extreme_value(Builder& b, ir::DType dtype, bool lowest) {
  llvm::Type* type = scalar_type(b.getContext(), dtype);
  if (ir::is_floating(dtype)) return llvm::ConstantFP::getInfinity(type, lowest);
  const unsigned bits = type->getIntegerBitWidth();
  if (ir::is_unsigned(dtype)) {
    return llvm::ConstantInt::get(
        b.getContext(), lowest ? llvm::APInt::getMinValue(bits) : llvm::APInt::getMaxValue(bits));
  }
  return llvm::ConstantInt::get(b.getContext(), lowest ? llvm::APInt::getSignedMinValue(bits)
                                                       : llvm::APInt::getSignedMaxValue(bits));
}

ReduceStep::ReduceStep(Builder& b, ir::Op op, ir::DType dtype, int64_t count, bool reassociate)
    : b_(b), op_(op), dtype_(dtype), count_(count), reassociate_(reassociate) {
  const bool extremum = op == ir::Op::reduce_max || op == ir::Op::reduce_min;
  type_ = extremum ? scalar_type(b.getContext(), dtype) : wide_type(b, dtype);
}

Value* ReduceStep::init() const {
  if (op_ == ir::Op::reduce_max || op_ == ir::Op::reduce_min) {
    return extreme_value(b_, dtype_, op_ == ir::Op::reduce_max);
  }
  const double one = op_ == ir::Op::reduce_prod ? 1.0 : 0.0;
  if (ir::is_floating(dtype_)) return llvm::ConstantFP::get(type_, one);
  return b_.getInt64(static_cast<uint64_t>(one));
}

Value* ReduceStep::combine(Value* acc, Value* x) const {
  if (op_ == ir::Op::reduce_max || op_ == ir::Op::reduce_min) {
    if (reassociate_ && ir::is_floating(dtype_)) {
      // NaN-propagating max/min, which LLVM vectorizes; between −0 and +0 it picks by sign
      // rather than keeping the earlier one (equal values either way).
      Value* args[] = {acc, x};
      auto id = op_ == ir::Op::reduce_max ? llvm::Intrinsic::maximum : llvm::Intrinsic::minimum;
      return call_intrinsic(b_, id, args);
    }
    return b_.CreateSelect(beats(b_, dtype_, op_ == ir::Op::reduce_max, x, acc), x, acc);
  }
  Value* wide = widen(b_, x, dtype_);
  if (!ir::is_floating(dtype_)) {
    return op_ == ir::Op::reduce_prod ? b_.CreateMul(acc, wide) : b_.CreateAdd(acc, wide);
  }
  Value* next = op_ == ir::Op::reduce_prod ? b_.CreateFMul(acc, wide) : b_.CreateFAdd(acc, wide);
  if (reassociate_) {
    llvm::FastMathFlags flags;
    flags.setAllowReassoc();
    llvm::cast<llvm::Instruction>(next)->setFastMathFlags(flags);
  }
  return next;
}

Value* ReduceStep::finish(Value* total) const {
  if (op_ == ir::Op::reduce_max || op_ == ir::Op::reduce_min) return total;
  if (op_ != ir::Op::reduce_mean) return narrow(b_, total, dtype_);
  if (ir::is_floating(dtype_)) {
    Value* count = llvm::ConstantFP::get(type_, static_cast<double>(count_));
    return narrow(b_, b_.CreateFDiv(total, count), dtype_);
  }
  if (count_ == 0) return narrow(b_, b_.getInt64(0), dtype_);
  // The mean of the wrapped sum, truncating toward zero.
  Value* wrapped = widen(b_, narrow(b_, total, dtype_), dtype_);
  return narrow(b_, b_.CreateSDiv(wrapped, b_.getInt64(count_)), dtype_);
}

// Per output element, a loop over the reduced axes. When the innermost axis is reduced, that
// loop reads contiguous elements: an f32 sum may then be reassociated so that it vectorizes.
// (Reductions that keep the innermost axis are emitted across rows by kernel_loops.cpp.)
Value* ElementEmitter::reduce(const ir::Node& node, const Index& index) {
  const ir::Value* in = node.input(0);
  const ir::Shape& shape = in->type().shape;
  const ir::DType dtype = in->type().dtype;
  const std::vector<bool> mask = ir::reduced_axes_mask(node.attrs(), shape.rank());
  const bool keepdims = node.attrs().get_bool("keepdims", false);
  const ir::Op op = node.op();

  Index at(static_cast<size_t>(shape.rank()));
  std::vector<int64_t> sizes;
  std::vector<size_t> reduced;
  int64_t count = 1;
  for (size_t d = 0, o = 0; d < mask.size(); ++d) {
    if (!mask[d]) {
      at[d] = index[o++];
    } else {
      if (keepdims) ++o;
      sizes.push_back(shape[static_cast<int64_t>(d)]);
      reduced.push_back(d);
      count *= shape[static_cast<int64_t>(d)];
    }
  }
  const bool sum = op == ir::Op::reduce_sum || op == ir::Op::reduce_mean;
  const bool extremum = op == ir::Op::reduce_max || op == ir::Op::reduce_min;
  const bool inner = !mask.empty() && mask.back();
  const bool reassociate = inner && ((sum && dtype == ir::DType::f32) || extremum);
  ReduceStep step(b_, op, dtype, count, reassociate);
  llvm::AllocaInst* acc = entry_alloca(b_, step.type(), "acc");
  b_.CreateStore(step.init(), acc);
  loop_nest(sizes, [&](const Index& counters) {
    for (size_t r = 0; r < reduced.size(); ++r)
      at[reduced[r]] = counters[r];
    Value* x = element(in, at);
    b_.CreateStore(step.combine(b_.CreateLoad(step.type(), acc), x), acc);
  });
  return step.finish(b_.CreateLoad(step.type(), acc));
}

Value* ElementEmitter::arg_reduce(const ir::Node& node, const Index& index) {
  const ir::Value* in = node.input(0);
  const ir::Shape& shape = in->type().shape;
  const size_t axis = static_cast<size_t>(ir::arg_reduce_axis(node.attrs(), shape.rank()));
  const bool is_max = node.op() == ir::Op::argmax;
  Index at = index;
  at.insert(at.begin() + static_cast<int64_t>(axis), b_.getInt64(0));
  llvm::Type* type = scalar_type(b_.getContext(), in->type().dtype);
  llvm::AllocaInst* best = entry_alloca(b_, type, "best");
  llvm::AllocaInst* best_at = entry_alloca(b_, b_.getInt64Ty(), "best_at");
  b_.CreateStore(element(in, at), best);
  b_.CreateStore(b_.getInt64(0), best_at);
  emit_for(b_, shape[static_cast<int64_t>(axis)] - 1, [&](Value* i) {
    scoped([&] {
      Value* k = b_.CreateAdd(i, b_.getInt64(1));
      at[axis] = k;
      Value* x = element(in, at);
      Value* wins = beats(b_, in->type().dtype, is_max, x, b_.CreateLoad(type, best));
      b_.CreateStore(b_.CreateSelect(wins, x, b_.CreateLoad(type, best)), best);
      b_.CreateStore(b_.CreateSelect(wins, k, b_.CreateLoad(b_.getInt64Ty(), best_at)), best_at);
    });
  });
  llvm::Type* out = scalar_type(b_.getContext(), node.output()->type().dtype);
  return b_.CreateTrunc(b_.CreateLoad(b_.getInt64Ty(), best_at), out);
}

Value* ElementEmitter::matmul(const ir::Node& node, const Index& index) {
  const ir::Value* a = node.input(0);
  const ir::Value* b = node.input(1);
  const ir::DType dtype = a->type().dtype;
  const ir::MatmulDims d = ir::matmul_dims(a->type().shape, b->type().shape, node.attrs());
  const size_t rank = index.size();
  Index batch(index.begin(), index.end() - 2);
  auto operand_index = [&](const ir::Value* v) {
    ir::Shape s = v->type().shape;
    std::vector<int64_t> dims(s.dims().begin(), s.dims().end() - 2);
    Index at = broadcast_index(ir::Shape(std::move(dims)), batch);
    at.resize(at.size() + 2);
    return at;
  };
  Index at_a = operand_index(a), at_b = operand_index(b);
  const size_t ra = at_a.size(), rb = at_b.size();
  llvm::Type* acc_type = wide_type(b_, dtype);
  llvm::AllocaInst* acc = entry_alloca(b_, acc_type, "dot");
  const bool floating = ir::is_floating(dtype);
  b_.CreateStore(
      floating ? static_cast<Value*>(llvm::ConstantFP::get(acc_type, 0.0)) : b_.getInt64(0), acc);
  emit_for(b_, d.k, [&](Value* p) {
    scoped([&] {
      at_a[ra - 2] = d.transpose_a ? p : index[rank - 2];
      at_a[ra - 1] = d.transpose_a ? index[rank - 2] : p;
      at_b[rb - 2] = d.transpose_b ? index[rank - 1] : p;
      at_b[rb - 1] = d.transpose_b ? p : index[rank - 1];
      Value* x = widen(b_, element(a, at_a), dtype);
      Value* y = widen(b_, element(b, at_b), dtype);
      Value* sum = b_.CreateLoad(acc_type, acc);
      b_.CreateStore(floating ? b_.CreateFAdd(sum, b_.CreateFMul(x, y))
                              : b_.CreateAdd(sum, b_.CreateMul(x, y)),
                     acc);
    });
  });
  return narrow(b_, b_.CreateLoad(acc_type, acc), dtype);
}

Value* ElementEmitter::conv2d(const ir::Node& node, const Index& index) {
  const ir::Value* input = node.input(0);
  const ir::Value* filter = node.input(1);
  const ir::Shape& in = input->type().shape;
  const ir::Shape& f = filter->type().shape;
  const ir::DType dtype = input->type().dtype;
  const ir::Window2D win = ir::conv2d_window(in, f, node.attrs());
  llvm::Type* f64 = b_.getDoubleTy();
  llvm::AllocaInst* acc = entry_alloca(b_, f64, "conv");
  b_.CreateStore(llvm::ConstantFP::get(f64, 0.0), acc);
  const int64_t sizes[] = {f[0], f[1], f[2]};
  loop_nest(sizes, [&](const Index& k) {
    const WindowRead at = window_read(b_, win, in, index[1], index[2], k[0], k[1]);
    Index at_in{index[0], at.y, at.x, k[2]};
    Index at_f{k[0], k[1], k[2], index[3]};
    Value* term = b_.CreateFMul(widen(b_, element(input, at_in), dtype),
                                widen(b_, element(filter, at_f), dtype));
    term = b_.CreateSelect(at.inside, term, llvm::ConstantFP::get(f64, 0.0));
    b_.CreateStore(b_.CreateFAdd(b_.CreateLoad(f64, acc), term), acc);
  });
  return narrow(b_, b_.CreateLoad(f64, acc), dtype);
}

// dw[kh, kw, c, o]: Σ over n, oy, ox of x at the position tap (kh, kw) of output (oy, ox) reads
// (skipped where that is padding) times dy[n, oy, ox, o]. The packed implicit GEMM
// (codegen/gemm.cpp) takes the large ones; this loop the rest.
Value* ElementEmitter::conv2d_filter_grad(const ir::Node& node, const Index& index) {
  const ir::Value* input = node.input(0);
  const ir::Value* dy = node.input(1);
  const ir::Shape& in = input->type().shape;
  const ir::Shape& d = dy->type().shape;
  const ir::DType dtype = input->type().dtype;
  const ir::Window2D win = ir::conv2d_window(in, node.output()->type().shape, node.attrs());
  llvm::Type* f64 = b_.getDoubleTy();
  llvm::AllocaInst* acc = entry_alloca(b_, f64, "filter_grad");
  b_.CreateStore(llvm::ConstantFP::get(f64, 0.0), acc);
  const int64_t sizes[] = {d[0], d[1], d[2]};
  loop_nest(sizes, [&](const Index& k) {
    const WindowRead at = window_read(b_, win, in, k[1], k[2], index[0], index[1]);
    Index at_in{k[0], at.y, at.x, index[2]};
    Index at_dy{k[0], k[1], k[2], index[3]};
    Value* term = b_.CreateFMul(widen(b_, element(input, at_in), dtype),
                                widen(b_, element(dy, at_dy), dtype));
    term = b_.CreateSelect(at.inside, term, llvm::ConstantFP::get(f64, 0.0));
    b_.CreateStore(b_.CreateFAdd(b_.CreateLoad(f64, acc), term), acc);
  });
  return narrow(b_, b_.CreateLoad(f64, acc), dtype);
}

Value* ElementEmitter::pool(const ir::Node& node, const Index& index) {
  const ir::Value* input = node.input(0);
  const ir::Shape& in = input->type().shape;
  const ir::DType dtype = input->type().dtype;
  const ir::Window2D win = ir::pool_window(in, node.attrs());
  const bool is_max = node.op() == ir::Op::max_pool2d;
  llvm::Type* type = scalar_type(b_.getContext(), dtype);
  llvm::Type* f64 = b_.getDoubleTy();
  llvm::AllocaInst* best = entry_alloca(b_, type, "best");
  llvm::AllocaInst* sum = entry_alloca(b_, f64, "sum");
  llvm::AllocaInst* count = entry_alloca(b_, b_.getInt64Ty(), "count");
  b_.CreateStore(extreme_value(b_, dtype, true), best);
  b_.CreateStore(llvm::ConstantFP::get(f64, 0.0), sum);
  b_.CreateStore(b_.getInt64(0), count);
  const int64_t sizes[] = {win.h.kernel, win.w.kernel};
  loop_nest(sizes, [&](const Index& k) {
    Value* iy = b_.CreateAdd(b_.CreateMul(index[1], b_.getInt64(win.h.stride)),
                             b_.CreateSub(k[0], b_.getInt64(win.h.pad_before)));
    Value* ix = b_.CreateAdd(b_.CreateMul(index[2], b_.getInt64(win.w.stride)),
                             b_.CreateSub(k[1], b_.getInt64(win.w.pad_before)));
    Value* inside = b_.CreateAnd(b_.CreateICmpULT(iy, b_.getInt64(in[1])),
                                 b_.CreateICmpULT(ix, b_.getInt64(in[2])));
    Index at{index[0], clamp(b_, iy, in[1]), clamp(b_, ix, in[2]), index[3]};
    Value* x = element(input, at);
    if (is_max) {
      Value* old = b_.CreateLoad(type, best);
      Value* wins = b_.CreateAnd(inside, beats(b_, dtype, true, x, old));
      b_.CreateStore(b_.CreateSelect(wins, x, old), best);
    } else {
      Value* term = b_.CreateSelect(inside, widen(b_, x, dtype), llvm::ConstantFP::get(f64, 0.0));
      b_.CreateStore(b_.CreateFAdd(b_.CreateLoad(f64, sum), term), sum);
      b_.CreateStore(b_.CreateAdd(b_.CreateLoad(b_.getInt64Ty(), count),
                                  b_.CreateZExt(inside, b_.getInt64Ty())),
                     count);
    }
  });
  if (is_max) return b_.CreateLoad(type, best);
  Value* n = b_.CreateLoad(b_.getInt64Ty(), count);
  Value* mean = b_.CreateFDiv(b_.CreateLoad(f64, sum), b_.CreateSIToFP(n, f64));
  return b_.CreateSelect(b_.CreateICmpEQ(n, b_.getInt64(0)), llvm::ConstantFP::get(type, 0.0),
                         narrow(b_, mean, dtype));
}

// max_pool2d_grad at dx[n, h, w, c]: the dy of every window that routes its gradient to (h, w),
// i.e. contains it, has y equal to x[n, h, w, c], and no earlier tap (row-major, padding
// skipped) equal to y. Only the windows containing (h, w) are visited: per dimension the
// ceil(kernel / stride) candidates o = (p + pad_before) / stride − a, of which those with
// 0 ≤ o < out and tap p + pad_before − o·stride < kernel hold p. They come tap by tap in
// row-major order (o descending), as the interpreter and the composition this op replaced sum
// them. All the window geometry depends on (n, h, w) only, so it stays out of the loop over
// channels; with few taps in all the code is straight-line and that loop vectorizes. Larger
// windows loop, and scan a window's taps only when x[n, h, w, c] equals its y.
Value* ElementEmitter::max_pool_grad(const ir::Node& node, const Index& index) {
  // Candidate windows × taps up to which the code is unrolled (3x3 windows at stride 1: 81).
  constexpr int64_t kUnrolledTaps = 128;
  const ir::Value* input = node.input(0);
  const ir::Value* pooled = node.input(1);
  const ir::Value* grad = node.input(2);
  const ir::Shape& in = input->type().shape;
  const ir::Window2D win = ir::pool_window(in, node.attrs());
  const ir::WindowDim* dims[] = {&win.h, &win.w};
  llvm::LLVMContext& context = b_.getContext();
  llvm::Type* type = scalar_type(context, input->type().dtype);
  llvm::Constant* zero = llvm::ConstantFP::get(type, 0.0);
  Value* own_x = element(input, index);
  int64_t candidates[2];
  Value* last[2];  // the last window starting at or before the position (it may not hold it)
  for (size_t d = 0; d < 2; ++d) {
    candidates[d] = (dims[d]->kernel + dims[d]->stride - 1) / dims[d]->stride;
    last[d] = b_.CreateUDiv(b_.CreateAdd(index[d + 1], b_.getInt64(dims[d]->pad_before)),
                            b_.getInt64(dims[d]->stride));
  }
  const int64_t kernel[] = {win.h.kernel, win.w.kernel};

  // Candidate window `a`: its output position (clamped, for y and dy), whether it holds the
  // position, and the position's tap in it (row-major).
  struct Window {
    Index at;
    Value* holds;
    Value* own;
    Value* o[2];
  };
  auto window = [&](const Index& a) {
    Window w;
    Value* tap[2];
    w.holds = b_.getTrue();
    for (size_t d = 0; d < 2; ++d) {
      w.o[d] = b_.CreateSub(last[d], a[d]);
      tap[d] = b_.CreateSub(b_.CreateAdd(index[d + 1], b_.getInt64(dims[d]->pad_before)),
                            b_.CreateMul(w.o[d], b_.getInt64(dims[d]->stride)));
      // o < 0 compares as a huge unsigned number
      w.holds = b_.CreateAnd(w.holds, b_.CreateICmpULT(w.o[d], b_.getInt64(dims[d]->out)));
      w.holds = b_.CreateAnd(w.holds, b_.CreateICmpULT(tap[d], b_.getInt64(dims[d]->kernel)));
    }
    w.own = b_.CreateAdd(b_.CreateMul(tap[0], b_.getInt64(win.w.kernel)), tap[1]);
    w.at = {index[0], clamp(b_, w.o[0], win.h.out), clamp(b_, w.o[1], win.w.out), index[3]};
    return w;
  };
  // Whether tap k of window w lies before the position's own tap and holds `max`.
  auto earlier_max = [&](const Window& w, const Index& k, Value* max) {
    Value* pos[2];
    Value* inside = b_.getTrue();
    for (size_t d = 0; d < 2; ++d) {
      pos[d] = b_.CreateAdd(b_.CreateMul(w.o[d], b_.getInt64(dims[d]->stride)),
                            b_.CreateSub(k[d], b_.getInt64(dims[d]->pad_before)));
      inside = b_.CreateAnd(inside, b_.CreateICmpULT(pos[d], b_.getInt64(dims[d]->in)));
    }
    Value* linear = b_.CreateAdd(b_.CreateMul(k[0], b_.getInt64(win.w.kernel)), k[1]);
    Value* before = b_.CreateAnd(inside, b_.CreateICmpULT(linear, w.own));
    Index at{index[0], clamp(b_, pos[0], in[1]), clamp(b_, pos[1], in[2]), index[3]};
    return b_.CreateAnd(before, b_.CreateFCmpOEQ(element(input, at), max));
  };

  if (candidates[0] * candidates[1] * kernel[0] * kernel[1] <= kUnrolledTaps) {
    Value* sum = zero;
    for (int64_t ah = 0; ah < candidates[0]; ++ah) {
      for (int64_t aw = 0; aw < candidates[1]; ++aw) {
        const Window w = window({b_.getInt64(ah), b_.getInt64(aw)});
        Value* max = element(pooled, w.at);
        Value* earlier = b_.getFalse();
        for (int64_t kh = 0; kh < kernel[0]; ++kh) {
          for (int64_t kw = 0; kw < kernel[1]; ++kw)
            earlier = b_.CreateOr(earlier, earlier_max(w, {b_.getInt64(kh), b_.getInt64(kw)}, max));
        }
        Value* routed = b_.CreateAnd(b_.CreateAnd(w.holds, b_.CreateFCmpOEQ(own_x, max)),
                                     b_.CreateNot(earlier));
        sum = b_.CreateFAdd(sum, b_.CreateSelect(routed, element(grad, w.at), zero));
      }
    }
    return sum;
  }

  llvm::AllocaInst* acc = entry_alloca(b_, type, "dx");
  llvm::AllocaInst* earlier = entry_alloca(b_, b_.getInt1Ty(), "earlier");
  b_.CreateStore(zero, acc);
  loop_nest(candidates, [&](const Index& a) {
    const Window w = window(a);
    Value* max = element(pooled, w.at);
    Value* candidate = b_.CreateAnd(w.holds, b_.CreateFCmpOEQ(own_x, max));
    llvm::Function* fn = b_.GetInsertBlock()->getParent();
    auto* scan = llvm::BasicBlock::Create(context, "pool_grad.scan", fn);
    auto* next = llvm::BasicBlock::Create(context, "pool_grad.next", fn);
    b_.CreateCondBr(candidate, scan, next);
    b_.SetInsertPoint(scan);
    // Elements loaded here do not dominate the code after `next`.
    scoped([&] {
      b_.CreateStore(b_.getFalse(), earlier);
      loop_nest(kernel, [&](const Index& k) {
        Value* seen = b_.CreateLoad(b_.getInt1Ty(), earlier);
        b_.CreateStore(b_.CreateOr(seen, earlier_max(w, k, max)), earlier);
      });
      Value* routed = b_.CreateNot(b_.CreateLoad(b_.getInt1Ty(), earlier));
      Value* term = b_.CreateSelect(routed, element(grad, w.at), zero);
      b_.CreateStore(b_.CreateFAdd(b_.CreateLoad(type, acc), term), acc);
    });
    b_.CreateBr(next);
    b_.SetInsertPoint(next);
  });
  return b_.CreateLoad(type, acc);
}

}  // namespace kiln::codegen
