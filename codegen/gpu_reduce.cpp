// Cooperative GPU kernels (gpu_reduce.h): reductions and softmax with a warp or a block of
// threads per output, folding across the warp with shuffles and across warps through shared
// memory. Combination order differs from the CPU's in-order loop only where the result does not
// depend on it: integer sums and products wrap in i64 (exact in any order), float sums and
// products accumulate in double, float max/min use llvm.maximum/minimum (as the CPU's vectorized
// reductions do: NaN wins, +0 beats −0), and argmax/argmin carry the index and break ties by the
// smaller one, which is the CPU's "first index".
#include "kiln/codegen/gpu_reduce.h"

#include <algorithm>
#include <functional>

#include <llvm/IR/IntrinsicsNVPTX.h>
#include <llvm/IR/Module.h>

#include "kiln/codegen/elemental.h"
#include "kiln/codegen/parallel.h"
#include "kiln/ir/error.h"
#include "kiln/ir/ops/reduction.h"

namespace kiln::codegen {

namespace {

using llvm::Value;

constexpr int64_t kWarp = 32;
constexpr int64_t kSlotBytes = 16;  // a partial result in shared memory: value, then index

bool is_softmax(const ir::Node& node) {
  return node.op() == ir::Op::softmax || node.op() == ir::Op::log_softmax;
}

bool is_arg_reduce(const ir::Node& node) {
  return node.op() == ir::Op::argmax || node.op() == ir::Op::argmin;
}

// Which axes of the operand one output reduces (or a softmax normalizes over) and which it keeps.
struct Axes {
  std::vector<int64_t> kept_sizes, reduced_sizes;
  std::vector<size_t> kept_axes, reduced_axes;
  int64_t outputs = 1, count = 1;
  bool inner_kept = false;  // the innermost axis is kept: outputs are columns
};

Axes axes_of(const ir::Node& node) {
  const ir::Shape& shape = node.input(0)->type().shape;
  const int64_t rank = shape.rank();
  std::vector<bool> mask;
  if (is_arg_reduce(node) || is_softmax(node)) {
    mask.assign(static_cast<size_t>(rank), false);
    const int64_t axis = is_softmax(node)
                             ? ir::normalize_axis(node.attrs().get_int("axis", -1), rank)
                             : ir::arg_reduce_axis(node.attrs(), rank);
    mask[static_cast<size_t>(axis)] = true;
  } else {
    mask = ir::reduced_axes_mask(node.attrs(), rank);
  }
  Axes axes;
  for (int64_t d = 0; d < rank; ++d) {
    const bool reduced = mask[static_cast<size_t>(d)];
    (reduced ? axes.reduced_sizes : axes.kept_sizes).push_back(shape[d]);
    (reduced ? axes.reduced_axes : axes.kept_axes).push_back(static_cast<size_t>(d));
    (reduced ? axes.count : axes.outputs) *= shape[d];
  }
  axes.inner_kept = rank > 0 && !mask.back();
  return axes;
}

// for (i = begin; i < end; i += step) body(i), signed i64.
void emit_strided_loop(Builder& b, Value* begin, Value* end, Value* step,
                       const std::function<void(Value*)>& body) {
  llvm::Function* fn = b.GetInsertBlock()->getParent();
  llvm::LLVMContext& context = b.getContext();
  llvm::BasicBlock* pre = b.GetInsertBlock();
  llvm::BasicBlock* header = llvm::BasicBlock::Create(context, "stride", fn);
  llvm::BasicBlock* inner = llvm::BasicBlock::Create(context, "stride.body", fn);
  llvm::BasicBlock* exit = llvm::BasicBlock::Create(context, "stride.exit", fn);
  b.CreateBr(header);
  b.SetInsertPoint(header);
  llvm::PHINode* i = b.CreatePHI(b.getInt64Ty(), 2, "s");
  i->addIncoming(begin, pre);
  b.CreateCondBr(b.CreateICmpSLT(i, end), inner, exit);
  b.SetInsertPoint(inner);
  body(i);
  i->addIncoming(b.CreateAdd(i, step), b.GetInsertBlock());
  b.CreateBr(header);
  b.SetInsertPoint(exit);
}

void emit_if(Builder& b, Value* condition, const std::function<void()>& body) {
  llvm::Function* fn = b.GetInsertBlock()->getParent();
  llvm::BasicBlock* then = llvm::BasicBlock::Create(b.getContext(), "if", fn);
  llvm::BasicBlock* done = llvm::BasicBlock::Create(b.getContext(), "if.done", fn);
  b.CreateCondBr(condition, then, done);
  b.SetInsertPoint(then);
  body();
  b.CreateBr(done);
  b.SetInsertPoint(done);
}

Value* min64(Builder& b, Value* x, Value* y) {
  return b.CreateSelect(b.CreateICmpSLT(x, y), x, y);
}

// A partial result: one register, or (value, index) for argmax/argmin.
using Parts = std::vector<Value*>;

// How a kernel folds elements into partial results and partial results into each other.
struct Fold {
  std::vector<llvm::Type*> types;
  std::function<Parts()> init;
  // Adds element `x` at reduced position `r` (increasing along one thread's walk).
  std::function<Parts(const Parts& acc, Value* x, Value* r)> add;
  // Merges two partial results of disjoint elements; commutative, so any tree order gives the
  // same value (up to float rounding for sums).
  std::function<Parts(const Parts& a, const Parts& b)> merge;
};

class CooperativeEmitter {
 public:
  CooperativeEmitter(llvm::Function& fn, const passes::Kernel& kernel, const KernelBuffers& buffers,
                     const GpuCooperative& plan, const GpuSyncFunctions& sync)
      : fn_(fn),
        kernel_(kernel),
        buffers_(buffers),
        plan_(plan),
        sync_(sync),
        node_(*kernel.nodes.back()),
        axes_(axes_of(node_)),
        b_(llvm::BasicBlock::Create(fn.getContext(), "entry", &fn)) {}

  void emit() {
    std::unordered_map<const ir::Value*, Value*> inputs;
    for (size_t a = 0; a < kernel_.inputs.size(); ++a)
      inputs.emplace(kernel_.inputs[a], fn_.getArg(static_cast<unsigned>(buffers_.buffer_of[a])));
    emitter_.emplace(b_, std::move(inputs));
    const size_t out = kernel_.inputs.size();
    out_ptr_ = fn_.getArg(static_cast<unsigned>(buffers_.buffer_of[out]));
    items_ = fn_.getArg(static_cast<unsigned>(buffers_.exclusive.size()));
    auto read = [&](llvm::Function* f) { return b_.CreateZExt(b_.CreateCall(f), b_.getInt64Ty()); };
    tid_ = read(sync_.thread_index);
    bid_ = read(sync_.block_index);
    bdim_ = read(sync_.block_dim);
    gdim_ = read(sync_.grid_dim);
    lane_ = b_.CreateAnd(tid_, b_.getInt64(kWarp - 1));
    warp_ = b_.CreateLShr(tid_, b_.getInt64(5));
    warps_ = b_.CreateLShr(b_.CreateAdd(bdim_, b_.getInt64(kWarp - 1)), b_.getInt64(5));
    // Lanes of this thread's warp (the last warp of a block may be partial).
    warp_lanes_ =
        min64(b_, b_.getInt64(kWarp), b_.CreateSub(bdim_, b_.CreateMul(warp_, b_.getInt64(kWarp))));
    shared_ = b_.CreateCall(sync_.shared);
    if (plan_.group == GpuGroup::columns) {
      emit_columns();
    } else if (is_softmax(node_)) {
      emit_rows([&](Value* row, Value* g, Value* group) { softmax_row(row, g, group); });
    } else {
      emit_rows([&](Value* row, Value* g, Value* group) { reduce_row(row, g, group); });
    }
    b_.CreateRetVoid();
  }

 private:
  bool block() const { return plan_.group != GpuGroup::warp; }

  // The fold of the kernel's reduction (not softmax's, which folds max and sum in double).
  Fold reduction_fold() {
    const ir::DType dtype = node_.input(0)->type().dtype;
    const ir::Op op = node_.op();
    if (is_arg_reduce(node_)) {
      const bool is_max = op == ir::Op::argmax;
      llvm::Type* type = scalar_type(b_.getContext(), dtype);
      Value* none = b_.getInt64(std::numeric_limits<int64_t>::max());
      return Fold{
          {type, b_.getInt64Ty()},
          [=, this] {
            return Parts{extreme_value(b_, dtype, is_max), none};
          },
          [=, this](const Parts& acc, Value* x, Value* r) {
            Value* take =
                b_.CreateOr(b_.CreateICmpEQ(acc[1], none), beats(b_, dtype, is_max, x, acc[0]));
            return Parts{b_.CreateSelect(take, x, acc[0]), b_.CreateSelect(take, r, acc[1])};
          },
          [=, this](const Parts& a, const Parts& c) {
            // c wins when a is empty, or c is better, or neither is better and c comes first.
            Value* tie = b_.CreateAnd(b_.CreateNot(beats(b_, dtype, is_max, a[0], c[0])),
                                      b_.CreateICmpSLT(c[1], a[1]));
            Value* take =
                b_.CreateOr(b_.CreateICmpEQ(a[1], none),
                            b_.CreateAnd(b_.CreateICmpNE(c[1], none),
                                         b_.CreateOr(beats(b_, dtype, is_max, c[0], a[0]), tie)));
            return Parts{b_.CreateSelect(take, c[0], a[0]), b_.CreateSelect(take, c[1], a[1])};
          }};
    }
    const bool extremum = op == ir::Op::reduce_max || op == ir::Op::reduce_min;
    step_.emplace(b_, op, dtype, axes_.count, extremum && ir::is_floating(dtype));
    return Fold{
        {step_->type()},
        [this] { return Parts{step_->init()}; },
        [this](const Parts& acc, Value* x, Value*) { return Parts{step_->combine(acc[0], x)}; },
        [=, this](const Parts& a, const Parts& c) {
          Value* x = a[0];
          Value* y = c[0];
          const bool floating = x->getType()->isFloatingPointTy();
          if (extremum) {
            const bool is_max = op == ir::Op::reduce_max;
            if (floating) {
              Value* args[] = {x, y};
              return Parts{call_intrinsic(
                  b_, is_max ? llvm::Intrinsic::maximum : llvm::Intrinsic::minimum, args)};
            }
            Value* better = ir::is_unsigned(dtype)
                                ? (is_max ? b_.CreateICmpUGT(y, x) : b_.CreateICmpULT(y, x))
                                : (is_max ? b_.CreateICmpSGT(y, x) : b_.CreateICmpSLT(y, x));
            return Parts{b_.CreateSelect(better, y, x)};
          }
          if (op == ir::Op::reduce_prod)
            return Parts{floating ? b_.CreateFMul(x, y) : b_.CreateMul(x, y)};
          return Parts{floating ? b_.CreateFAdd(x, y) : b_.CreateAdd(x, y)};
        }};
  }

  // Stores the output element of a reduction at linear `offset` from its folded result.
  void store_result(const Parts& acc, Value* offset) {
    const ir::DType out = node_.output()->type().dtype;
    Value* value = is_arg_reduce(node_) ? b_.CreateTrunc(acc[1], scalar_type(b_.getContext(), out))
                                        : step_->finish(acc[0]);
    store_element(b_, out, out_ptr_, offset, value);
  }

  // The operand index of output `row` (over the kept axes), its reduced axes still unset.
  Index kept_index(Value* row) {
    Index at(static_cast<size_t>(node_.input(0)->type().shape.rank()));
    Index kept = unflatten(b_, row, axes_.kept_sizes);
    for (size_t k = 0; k < axes_.kept_axes.size(); ++k)
      at[axes_.kept_axes[k]] = kept[k];
    return at;
  }

  // This thread's fold of the elements at reduced positions first, first + step, ... of the
  // output whose kept index `at` holds, each mapped through `value` (the element by default).
  Parts partial(const Fold& fold, Index at, Value* first, Value* step,
                const std::function<Value*(Value*)>& value = {}) {
    std::vector<llvm::AllocaInst*> slots;
    for (llvm::Type* type : fold.types)
      slots.push_back(entry_alloca(b_, type, "partial"));
    store_parts(slots, fold.init());
    emit_strided_loop(b_, first, b_.getInt64(axes_.count), step, [&](Value* r) {
      emitter_->scoped([&] {
        Index reduced = unflatten(b_, r, axes_.reduced_sizes);
        for (size_t k = 0; k < axes_.reduced_axes.size(); ++k)
          at[axes_.reduced_axes[k]] = reduced[k];
        Value* x = emitter_->element(node_.input(0), at);
        if (value) x = value(x);
        store_parts(slots, fold.add(load_parts(slots), x, r));
      });
    });
    return load_parts(slots);
  }

  void store_parts(const std::vector<llvm::AllocaInst*>& slots, const Parts& parts) {
    for (size_t p = 0; p < slots.size(); ++p)
      b_.CreateStore(parts[p], slots[p]);
  }

  Parts load_parts(const std::vector<llvm::AllocaInst*>& slots) {
    Parts parts;
    for (llvm::AllocaInst* slot : slots)
      parts.push_back(b_.CreateLoad(slot->getAllocatedType(), slot));
    return parts;
  }

  // Shared-memory slot `slot` (of kGpuSharedBytes / 16), part `p`.
  Value* shared_at(Value* slot, size_t p) {
    Value* offset = b_.CreateAdd(b_.CreateMul(slot, b_.getInt64(kSlotBytes)),
                                 b_.getInt64(static_cast<int64_t>(8 * p)));
    return b_.CreateInBoundsGEP(b_.getInt8Ty(), shared_, offset);
  }

  void store_shared(const Fold& fold, Value* slot, const Parts& parts) {
    for (size_t p = 0; p < fold.types.size(); ++p)
      b_.CreateStore(parts[p], shared_at(slot, p));
  }

  Parts load_shared(const Fold& fold, Value* slot) {
    Parts parts;
    for (size_t p = 0; p < fold.types.size(); ++p)
      parts.push_back(b_.CreateLoad(fold.types[p], shared_at(slot, p)));
    return parts;
  }

  // A 32-bit shuffle of any scalar (split in two for 64-bit ones).
  Value* shuffle(llvm::Function* shfl, Value* mask, Value* x, Value* arg) {
    llvm::Type* type = x->getType();
    llvm::Type* i32 = b_.getInt32Ty();
    const unsigned bits = type->getPrimitiveSizeInBits();
    llvm::Type* int_type = b_.getIntNTy(bits);
    Value* v = type->isFloatingPointTy() ? b_.CreateBitCast(x, int_type) : x;
    Value* result;
    if (bits == 64) {
      Value* lo = b_.CreateCall(shfl, {mask, b_.CreateTrunc(v, i32), arg});
      Value* hi = b_.CreateCall(shfl, {mask, b_.CreateTrunc(b_.CreateLShr(v, 32), i32), arg});
      result =
          b_.CreateOr(b_.CreateShl(b_.CreateZExt(hi, int_type), 32), b_.CreateZExt(lo, int_type));
    } else if (bits < 32) {
      result = b_.CreateTrunc(b_.CreateCall(shfl, {mask, b_.CreateZExt(v, i32), arg}), int_type);
    } else {
      result = b_.CreateCall(shfl, {mask, v, arg});
    }
    return type->isFloatingPointTy() ? b_.CreateBitCast(result, type) : result;
  }

  // The mask of a warp's first `lanes` lanes.
  Value* lane_mask(Value* lanes) {
    Value* bits = b_.CreateSub(b_.CreateShl(b_.getInt64(1), lanes), b_.getInt64(1));
    return b_.CreateTrunc(bits, b_.getInt32Ty());
  }

  // Folds `parts` across the first `lanes` lanes of the warp (every one of them calls this):
  // lane 0 ends with the whole warp's result.
  Parts warp_fold(const Fold& fold, Parts parts, Value* lanes) {
    Value* mask = lane_mask(lanes);
    for (int64_t delta = kWarp / 2; delta >= 1; delta /= 2) {
      Parts other;
      for (Value* part : parts)
        other.push_back(shuffle(sync_.shfl_down, mask, part, b_.getInt32(delta)));
      Value* valid = b_.CreateICmpSLT(b_.CreateAdd(lane_, b_.getInt64(delta)), lanes);
      Parts merged = fold.merge(parts, other);
      for (size_t p = 0; p < parts.size(); ++p)
        parts[p] = b_.CreateSelect(valid, merged[p], parts[p]);
    }
    return parts;
  }

  // The fold of `parts` over the thread's group (warp or block), in every thread of it.
  Parts group_fold_to_all(const Fold& fold, const Parts& parts) {
    Parts folded = warp_fold(fold, parts, warp_lanes_);
    if (!block()) {
      Parts all;
      for (Value* part : folded)
        all.push_back(shuffle(sync_.shfl_idx, lane_mask(warp_lanes_), part, b_.getInt32(0)));
      return all;
    }
    return fold_warps(fold, folded, /*every_thread=*/true);
  }

  // After warp_fold in a block: lane 0 of each warp publishes its result, then every thread (or
  // only thread 0) folds them in warp order. Leaves the block past a second barrier, so that the
  // shared memory may be reused. Returns the block's result (meaningful in thread 0 unless
  // every_thread), with `then` run by thread 0 before the last barrier.
  Parts fold_warps(const Fold& fold, const Parts& folded, bool every_thread,
                   const std::function<void(const Parts&)>& then = {}) {
    emit_if(b_, b_.CreateICmpEQ(lane_, b_.getInt64(0)), [&] { store_shared(fold, warp_, folded); });
    b_.CreateCall(sync_.barrier);
    std::vector<llvm::AllocaInst*> slots;
    for (llvm::Type* type : fold.types)
      slots.push_back(entry_alloca(b_, type, "block"));
    auto fold_all = [&] {
      store_parts(slots, load_shared(fold, b_.getInt64(0)));
      emit_range_loop(b_, b_.getInt64(1), warps_, [&](Value* w) {
        store_parts(slots, fold.merge(load_parts(slots), load_shared(fold, w)));
      });
    };
    if (every_thread) {
      fold_all();
    } else {
      emit_if(b_, b_.CreateICmpEQ(tid_, b_.getInt64(0)), [&] {
        fold_all();
        if (then) then(load_parts(slots));
      });
    }
    Parts result = load_parts(slots);
    b_.CreateCall(sync_.barrier);
    return result;
  }

  // The loop over output rows: a block takes rows blockIdx, blockIdx + gridDim, ... (block), or
  // each warp takes its own (warp). `body(row, g, group)` runs in each thread, which is number g
  // of the `group` threads sharing the row.
  void emit_rows(const std::function<void(Value*, Value*, Value*)>& body) {
    Value *first, *step, *g, *group;
    if (block()) {
      first = bid_;
      step = gdim_;
      g = tid_;
      group = bdim_;
    } else {
      first = b_.CreateAdd(b_.CreateMul(bid_, warps_), warp_);
      step = b_.CreateMul(gdim_, warps_);
      g = lane_;
      group = warp_lanes_;
    }
    emit_strided_loop(b_, first, items_, step,
                      [&](Value* row) { emitter_->scoped([&] { body(row, g, group); }); });
  }

  void reduce_row(Value* row, Value* g, Value* group) {
    const Fold fold = reduction_fold();
    Parts parts = partial(fold, kept_index(row), g, group);
    Parts folded = warp_fold(fold, parts, warp_lanes_);
    if (!block()) {
      emit_if(b_, b_.CreateICmpEQ(lane_, b_.getInt64(0)), [&] { store_result(folded, row); });
      return;
    }
    fold_warps(fold, folded, /*every_thread=*/false,
               [&](const Parts& total) { store_result(total, row); });
  }

  // softmax / log_softmax of one row, computed in double as the CPU does: the row's max, then
  // Σ exp(x − max), each folded over the group and known to all its threads, then the outputs.
  void softmax_row(Value* row, Value* g, Value* group) {
    const ir::Value* in = node_.input(0);
    const ir::DType dtype = in->type().dtype;
    const bool log = node_.op() == ir::Op::log_softmax;
    llvm::Type* f64 = b_.getDoubleTy();
    auto wide = [&](Value* x) { return dtype == ir::DType::f64 ? x : b_.CreateFPExt(x, f64); };
    auto max_of = [this](Value* m, Value* x) {
      return b_.CreateSelect(b_.CreateFCmpOLT(m, x), x, m);  // as std::max: NaN never enters
    };
    const Fold max_fold{{f64},
                        [&] { return Parts{llvm::ConstantFP::getInfinity(f64, true)}; },
                        [&](const Parts& m, Value* x, Value*) { return Parts{max_of(m[0], x)}; },
                        [&](const Parts& m, const Parts& x) { return Parts{max_of(m[0], x[0])}; }};
    const Fold sum_fold{
        {f64},
        [&] { return Parts{llvm::ConstantFP::get(f64, 0.0)}; },
        [&](const Parts& s, Value* e, Value*) { return Parts{b_.CreateFAdd(s[0], e)}; },
        [&](const Parts& s, const Parts& e) { return Parts{b_.CreateFAdd(s[0], e[0])}; }};
    const Index at = kept_index(row);
    Value* row_max = group_fold_to_all(max_fold, partial(max_fold, at, g, group, wide))[0];
    Value* total = group_fold_to_all(sum_fold, partial(sum_fold, at, g, group, [&](Value* x) {
                                       Value* shifted[] = {b_.CreateFSub(wide(x), row_max)};
                                       return call_intrinsic(b_, llvm::Intrinsic::exp, shifted);
                                     }))[0];
    Value* log_total = nullptr;
    if (log) {
      Value* args[] = {total};
      log_total = call_intrinsic(b_, llvm::Intrinsic::log, args);
    }
    const std::vector<int64_t> strides = in->type().shape.strides();
    const size_t axis = axes_.reduced_axes.front();
    emit_strided_loop(b_, g, b_.getInt64(axes_.count), group, [&](Value* r) {
      emitter_->scoped([&] {
        Index element_at = at;
        element_at[axis] = r;
        Value* shifted = b_.CreateFSub(wide(emitter_->element(in, element_at)), row_max);
        Value* y;
        if (log) {
          y = b_.CreateFSub(shifted, log_total);
        } else {
          Value* args[] = {shifted};
          y = b_.CreateFDiv(call_intrinsic(b_, llvm::Intrinsic::exp, args), total);
        }
        if (dtype != ir::DType::f64) y = b_.CreateFPTrunc(y, scalar_type(b_.getContext(), dtype));
        store_element(b_, dtype, out_ptr_, linear_offset(b_, element_at, strides), y);
      });
    });
  }

  // A reduction that keeps the innermost axis: each block takes tiles of 32 columns of one kept
  // row; its threads are (slice, column) pairs, slice s folding reduced rows s, s + slices, ...
  // of its column; the slices' partials meet in shared memory, and one thread per column folds
  // them in slice order. Any block size works: with fewer than 32 threads each takes several
  // pairs, and blocks of more than 1024 threads have 32 slices.
  void emit_columns() {
    const Fold fold = reduction_fold();
    const int64_t columns = axes_.kept_sizes.back();
    const int64_t tiles = (columns + kWarp - 1) / kWarp;
    std::vector<int64_t> outer(axes_.kept_sizes.begin(), axes_.kept_sizes.end() - 1);
    Value* slices = min64(b_, warps_, b_.getInt64(kWarp));
    Value* pairs = b_.CreateMul(slices, b_.getInt64(kWarp));
    emit_strided_loop(b_, bid_, items_, gdim_, [&](Value* item) {
      emitter_->scoped([&] {
        Value* row = b_.CreateUDiv(item, b_.getInt64(tiles));
        Value* first_column =
            b_.CreateMul(b_.CreateURem(item, b_.getInt64(tiles)), b_.getInt64(kWarp));
        Value* width =
            min64(b_, b_.getInt64(kWarp), b_.CreateSub(b_.getInt64(columns), first_column));
        // The kept index without its column: row over the outer kept axes.
        Index at(static_cast<size_t>(node_.input(0)->type().shape.rank()));
        Index kept = unflatten(b_, row, outer);
        for (size_t k = 0; k + 1 < axes_.kept_axes.size(); ++k)
          at[axes_.kept_axes[k]] = kept[k];
        const size_t column_axis = axes_.kept_axes.back();
        emit_strided_loop(b_, tid_, pairs, bdim_, [&](Value* pair) {
          emitter_->scoped([&] {
            Value* c = b_.CreateAnd(pair, b_.getInt64(kWarp - 1));
            Value* slice = b_.CreateLShr(pair, b_.getInt64(5));
            emit_if(b_, b_.CreateICmpSLT(c, width), [&] {
              emitter_->scoped([&] {
                Index column_at = at;
                column_at[column_axis] = b_.CreateAdd(first_column, c);
                store_shared(fold, pair, partial(fold, column_at, slice, slices));
              });
            });
          });
        });
        b_.CreateCall(sync_.barrier);
        emit_strided_loop(b_, tid_, width, bdim_, [&](Value* c) {
          std::vector<llvm::AllocaInst*> slots;
          for (llvm::Type* type : fold.types)
            slots.push_back(entry_alloca(b_, type, "column"));
          store_parts(slots, load_shared(fold, c));
          emit_range_loop(b_, b_.getInt64(1), slices, [&](Value* s) {
            Value* slot = b_.CreateAdd(b_.CreateMul(s, b_.getInt64(kWarp)), c);
            store_parts(slots, fold.merge(load_parts(slots), load_shared(fold, slot)));
          });
          Value* offset =
              b_.CreateAdd(b_.CreateMul(row, b_.getInt64(columns)), b_.CreateAdd(first_column, c));
          store_result(load_parts(slots), offset);
        });
        b_.CreateCall(sync_.barrier);
      });
    });
  }

  llvm::Function& fn_;
  const passes::Kernel& kernel_;
  const KernelBuffers& buffers_;
  const GpuCooperative& plan_;
  const GpuSyncFunctions& sync_;
  const ir::Node& node_;
  const Axes axes_;
  Builder b_;
  std::optional<ElementEmitter> emitter_;
  std::optional<ReduceStep> step_;
  Value* out_ptr_ = nullptr;
  Value* items_ = nullptr;
  Value *tid_ = nullptr, *bid_ = nullptr, *bdim_ = nullptr, *gdim_ = nullptr;
  Value *lane_ = nullptr, *warp_ = nullptr, *warps_ = nullptr, *warp_lanes_ = nullptr;
  Value* shared_ = nullptr;
};

// A small internal function of `module` named `name`, always inlined, built by `body`.
llvm::Function* helper(llvm::Module& module, const char* name, llvm::FunctionType* type,
                       const std::function<void(Builder&, llvm::Function*)>& body) {
  if (llvm::Function* existing = module.getFunction(name)) return existing;
  auto* fn = llvm::Function::Create(type, llvm::Function::InternalLinkage, name, module);
  fn->addFnAttr(llvm::Attribute::AlwaysInline);
  fn->addFnAttr(llvm::Attribute::NoUnwind);
  fn->addFnAttr(llvm::Attribute::Convergent);
  Builder b(llvm::BasicBlock::Create(module.getContext(), "entry", fn));
  body(b, fn);
  return fn;
}

}  // namespace

std::optional<GpuCooperative> plan_cooperative(const passes::Kernel& kernel,
                                               const GpuOptions& options) {
  if (kernel.nodes.empty() || kernel.outputs.size() != 1) return std::nullopt;
  const ir::Node& node = *kernel.nodes.back();
  const bool reduction = kernel.kind == passes::KernelKind::reduction;
  const bool softmax = kernel.kind == passes::KernelKind::op && is_softmax(node);
  if (!reduction && !softmax) return std::nullopt;
  if (kernel.outputs.front() != node.output(0)) return std::nullopt;
  if (node.input(0)->type().shape.rank() == 0) return std::nullopt;
  const Axes axes = axes_of(node);
  if (axes.outputs == 0 || axes.count < options.warp_reduce_elements) return std::nullopt;
  GpuCooperative plan;
  plan.elements = axes.count;
  if (reduction && axes.inner_kept) {
    // Columns: neighbouring threads read neighbouring columns, each slice a share of the rows.
    const int64_t columns = axes.kept_sizes.back();
    plan.group = GpuGroup::columns;
    plan.items = axes.outputs / columns * ((columns + kWarp - 1) / kWarp);
    return plan;
  }
  plan.group = axes.count >= options.block_reduce_elements ? GpuGroup::block : GpuGroup::warp;
  plan.items = axes.outputs;
  return plan;
}

GpuSyncFunctions gpu_sync_functions(llvm::Module& module, bool nvptx, llvm::Function* thread_index,
                                    llvm::Function* block_index, llvm::Function* block_dim,
                                    llvm::Function* grid_dim) {
  llvm::LLVMContext& context = module.getContext();
  llvm::Type* i32 = llvm::Type::getInt32Ty(context);
  llvm::Type* ptr = llvm::PointerType::get(context, 0);
  llvm::Type* void_type = llvm::Type::getVoidTy(context);
  GpuSyncFunctions sync{thread_index, block_index, block_dim, grid_dim};
  auto host = [&](const char* name, llvm::Type* result, std::vector<llvm::Type*> params) {
    llvm::FunctionCallee callee =
        module.getOrInsertFunction(name, llvm::FunctionType::get(result, params, false));
    if (auto* fn = llvm::dyn_cast<llvm::Function>(callee.getCallee()))
      fn->addFnAttr(llvm::Attribute::Convergent);
    return callee;
  };
  sync.barrier = helper(module, "kiln_gpu_barrier", llvm::FunctionType::get(void_type, false),
                        [&](Builder& b, llvm::Function*) {
                          if (nvptx)
                            b.CreateIntrinsic(llvm::Intrinsic::nvvm_barrier0, {}, {});
                          else
                            b.CreateCall(host("kiln_gpu_shim_barrier", void_type, {}));
                          b.CreateRetVoid();
                        });
  // shfl.sync with clamp 0x1f: whole-warp segments; a lane past the last reads its own value.
  auto shuffle = [&](const char* name, llvm::Intrinsic::ID id, int kind) {
    return helper(
        module, name, llvm::FunctionType::get(i32, {i32, i32, i32}, false),
        [&](Builder& b, llvm::Function* fn) {
          Value* mask = fn->getArg(0);
          Value* value = fn->getArg(1);
          Value* arg = fn->getArg(2);
          if (nvptx) {
            b.CreateRet(b.CreateIntrinsic(id, {}, {mask, value, arg, b.getInt32(0x1f)}));
          } else {
            b.CreateRet(b.CreateCall(host("kiln_gpu_shim_shfl", i32, {i32, i32, i32, i32}),
                                     {b.getInt32(kind), mask, value, arg}));
          }
        });
  };
  sync.shfl_down = shuffle("kiln_gpu_shfl_down", llvm::Intrinsic::nvvm_shfl_sync_down_i32, 0);
  sync.shfl_idx = shuffle("kiln_gpu_shfl_idx", llvm::Intrinsic::nvvm_shfl_sync_idx_i32, 1);
  sync.shared = helper(module, "kiln_gpu_shared", llvm::FunctionType::get(ptr, false),
                       [&](Builder& b, llvm::Function*) {
                         if (nvptx) {
                           auto* array = llvm::ArrayType::get(b.getInt8Ty(), kGpuSharedBytes);
                           auto* global = new llvm::GlobalVariable(
                               module, array, false, llvm::GlobalValue::InternalLinkage,
                               llvm::UndefValue::get(array), "kiln_gpu_shared_memory", nullptr,
                               llvm::GlobalValue::NotThreadLocal, /*AddressSpace=*/3);
                           global->setAlignment(llvm::Align(16));
                           b.CreateRet(b.CreateAddrSpaceCast(global, ptr));
                         } else {
                           b.CreateRet(b.CreateCall(host("kiln_gpu_shim_shared", ptr, {})));
                         }
                       });
  return sync;
}

void emit_cooperative(llvm::Function& fn, const passes::Kernel& kernel,
                      const KernelBuffers& buffers, const GpuCooperative& plan,
                      const GpuSyncFunctions& sync) {
  fn.addFnAttr(llvm::Attribute::Convergent);
  fn.addFnAttr(llvm::Attribute::NoUnwind);
  CooperativeEmitter(fn, kernel, buffers, plan, sync).emit();
}

}  // namespace kiln::codegen
