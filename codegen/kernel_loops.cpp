#include "kiln/codegen/kernel_loops.h"

#include <algorithm>
#include <map>
#include <tuple>

#include <llvm/IR/Function.h>
#include <llvm/IR/Module.h>

#include <fmt/format.h>

#include "kiln/codegen/elemental.h"
#include "kiln/codegen/parallel.h"
#include "kiln/ir/error.h"
#include "kiln/ir/ops/matmul.h"
#include "kiln/ir/ops/reduction.h"

namespace kiln::codegen {

namespace {

using llvm::Value;

int64_t round_up(int64_t n, int64_t multiple) {
  return (n + multiple - 1) / multiple * multiple;
}

int64_t byte_size(const ir::Value* v) {
  return static_cast<int64_t>(v->type().nbytes());
}

// Groups the kernel's outputs by shape so that each group shares one loop nest (and the
// elements its outputs have in common).
std::vector<std::vector<const ir::Value*>> outputs_by_shape(const passes::Kernel& kernel) {
  std::vector<std::vector<const ir::Value*>> groups;
  for (const ir::Value* out : kernel.outputs) {
    auto same = [&](const auto& g) { return g.front()->type().shape == out->type().shape; };
    auto it = std::find_if(groups.begin(), groups.end(), same);
    if (it == groups.end())
      groups.push_back({out});
    else
      it->push_back(out);
  }
  return groups;
}

// Elements one output element of `kernel` reads, roughly: what decides whether it is worth
// running in parallel.
int64_t work_per_element(const passes::Kernel& kernel) {
  int64_t work = 1;
  for (const ir::Node* node : kernel.nodes) {
    const ir::Shape& out = node->output(0)->type().shape;
    int64_t per = 1;
    if (node->op() == ir::Op::matmul) {
      per =
          ir::matmul_dims(node->input(0)->type().shape, node->input(1)->type().shape, node->attrs())
              .k;
    } else if (node->op() == ir::Op::conv2d) {
      const ir::Shape& f = node->input(1)->type().shape;
      per = f[0] * f[1] * f[2];
    } else if (node->op() == ir::Op::conv2d_filter_grad) {
      const ir::Shape& dy = node->input(1)->type().shape;
      per = dy[0] * dy[1] * dy[2];
    } else if (out.num_elements() > 0) {
      for (const ir::Value* in : node->inputs())
        per = std::max(per, in->type().shape.num_elements() / out.num_elements());
    }
    work = std::max(work, per);
  }
  return work;
}

class KernelLoops {
 public:
  KernelLoops(llvm::Function& fn, const passes::Kernel& kernel, const KernelBuffers& buffers,
              const LoopLowering& lowering)
      : fn_(fn), kernel_(kernel), buffers_(buffers), lowering_(lowering), b_(fn.getContext()) {}

  void emit() {
    b_.SetInsertPoint(llvm::BasicBlock::Create(fn_.getContext(), "entry", &fn_));
    const size_t args = kernel_.inputs.size() + kernel_.outputs.size();
    KILN_CHECK(buffers_.buffer_of.size() == args, "kernel buffers do not match its arguments");
    distinct_.assign(buffers_.exclusive.size(), nullptr);
    for (size_t a = 0; a < args; ++a) {
      Value*& first = distinct_[buffers_.buffer_of[a]];
      if (first == nullptr) first = fn_.getArg(static_cast<unsigned>(a));
    }
    const auto groups = outputs_by_shape(kernel_);
    for (size_t g = 0; g < groups.size(); ++g) {
      if (groups[g].front()->type().shape.num_elements() > 0)
        emit_group(groups[g], fmt::format("{}.loop{}", fn_.getName().str(), g));
    }
    b_.CreateRetVoid();
  }

 private:
  void emit_group(const std::vector<const ir::Value*>& group, const std::string& name) {
    const ir::Node* last = kernel_.nodes.back();
    if (kernel_.kind == passes::KernelKind::loop && is_flat(group)) return emit_flat(group, name);
    // The special loops compute the last node's one result (as the plan's invariants promise).
    const bool only_last = group.size() == 1 && group.front() == last->output(0);
    if (only_last && kernel_.kind == passes::KernelKind::reduction && keeps_inner_axis(*last))
      return emit_reduction_across_rows(*last, name);
    if (only_last && (last->op() == ir::Op::softmax || last->op() == ir::Op::log_softmax))
      return emit_softmax(*last, name);
    if (only_last && last->op() == ir::Op::concat && !aliases_an_input(last->output(0)))
      return emit_concat(*last, name);
    emit_rows(group, name);
  }

  // Whether `out` shares its buffer with a kernel input (written in place).
  bool aliases_an_input(const ir::Value* out) const {
    size_t buffer = buffers_.buffer_of[argument_of(out)];
    for (size_t a = 0; a < kernel_.inputs.size(); ++a)
      if (buffers_.buffer_of[a] == buffer) return true;
    return false;
  }

  // A concat root: one loop nest per operand, over the operand's own elements, each storing
  // into its slab of the output. (Evaluating the output element by element would pick the
  // operand with a chain of comparisons per element — slow for the many-operand concats of an
  // im2col patch matrix.)
  void emit_concat(const ir::Node& node, const std::string& name) {
    const ir::Value* out = node.output(0);
    const ir::Shape& out_shape = out->type().shape;
    const std::vector<int64_t> out_strides = out_shape.strides();
    const int64_t rank = out_shape.rank();
    const int64_t axis = ir::normalize_axis(node.attrs().get_int("axis"), rank);
    int64_t offset = 0;
    for (size_t k = 0; k < node.inputs().size(); ++k) {
      const ir::Value* part = node.input(k);
      const ir::Shape& shape = part->type().shape;
      const int64_t start = offset;
      offset += shape[axis];
      if (shape.num_elements() == 0) continue;
      const int64_t columns = shape[rank - 1];
      const int64_t rows = shape.num_elements() / columns;
      std::vector<int64_t> outer(shape.dims().begin(), shape.dims().end() - 1);
      parallel(fmt::format("{}.part{}", name, k), rows, columns * work_per_element(kernel_),
               [&](Builder& b, std::span<Value* const> buffers, Value* begin, Value* end) {
                 ElementEmitter emitter(b, input_map(buffers));
                 emit_range_loop(b, begin, end, [&](Value* row) {
                   Index index = unflatten(b, row, outer);
                   emitter.scoped([&] {
                     emit_for(b, columns, [&](Value* j) {
                       emitter.scoped([&] {
                         index.push_back(j);
                         Value* value = emitter.element(part, index);
                         Index at = index;
                         at[static_cast<size_t>(axis)] =
                             b.CreateAdd(at[static_cast<size_t>(axis)], b.getInt64(start));
                         store_element(b, out->type().dtype, pointer(buffers, out),
                                       linear_offset(b, at, out_strides), value);
                         index.pop_back();
                       });
                     });
                   });
                 });
               });
    }
  }

  // Whether every kernel input is dense in the group's layout or a single element, and every
  // node reads its operands at the element it computes (a pad or a max-pool gradient fused in
  // as a producer reads by multi-index: no flat loop for it).
  bool is_flat(const std::vector<const ir::Value*>& group) const {
    for (const ir::Node* node : kernel_.nodes) {
      if (!ir::has_trait(node->op(), ir::kElementwise) && node->op() != ir::Op::broadcast_to)
        return false;
    }
    const int64_t n = group.front()->type().shape.num_elements();
    for (const ir::Value* in : kernel_.inputs) {
      const int64_t m = in->type().shape.num_elements();
      if (m != n && m != 1) return false;
    }
    return true;
  }

  // A reduce_* whose operand's innermost axis is kept (so columns are contiguous).
  static bool keeps_inner_axis(const ir::Node& node) {
    if (node.op() == ir::Op::argmax || node.op() == ir::Op::argmin) return false;
    const ir::Shape& shape = node.input(0)->type().shape;
    if (shape.rank() == 0) return false;
    return !ir::reduced_axes_mask(node.attrs(), shape.rank()).back();
  }

  size_t argument_of(const ir::Value* v) const {
    auto in = std::find(kernel_.inputs.begin(), kernel_.inputs.end(), v);
    if (in != kernel_.inputs.end()) return static_cast<size_t>(in - kernel_.inputs.begin());
    auto out = std::find(kernel_.outputs.begin(), kernel_.outputs.end(), v);
    KILN_CHECK(out != kernel_.outputs.end(), "a kernel value that is neither input nor output");
    return kernel_.inputs.size() + static_cast<size_t>(out - kernel_.outputs.begin());
  }

  Value* pointer(std::span<Value* const> buffers, const ir::Value* v) const {
    return buffers[buffers_.buffer_of[argument_of(v)]];
  }

  std::unordered_map<const ir::Value*, Value*> input_map(std::span<Value* const> buffers) const {
    std::unordered_map<const ir::Value*, Value*> map;
    for (const ir::Value* in : kernel_.inputs)
      map.emplace(in, pointer(buffers, in));
    return map;
  }

  void parallel(const std::string& name, int64_t items, int64_t work_per_item,
                const RangeBody& body) {
    emit_parallel_loop(b_, {name, items, work_per_item}, distinct_, buffers_.exclusive, body,
                       lowering_.sink);
  }

  // Evaluates every output of the group at `index`, then stores them at `offset`. Values first:
  // an output may share its block with an input (in place) that other outputs still read.
  void evaluate_and_store(Builder& b, ElementEmitter& emitter, std::span<Value* const> buffers,
                          const std::vector<const ir::Value*>& group, const Index& index,
                          Value* offset) {
    std::vector<Value*> values;
    for (const ir::Value* out : group)
      values.push_back(emitter.element(out, index));
    for (size_t g = 0; g < group.size(); ++g)
      store_element(b, group[g]->type().dtype, pointer(buffers, group[g]), offset, values[g]);
  }

  // One loop over the linear elements: the shape LLVM's loop vectorizer handles best.
  void emit_flat(const std::vector<const ir::Value*>& group, const std::string& name) {
    const int64_t n = group.front()->type().shape.num_elements();
    parallel(
        name, n, 1, [&](Builder& b, std::span<Value* const> buffers, Value* begin, Value* end) {
          ElementEmitter emitter(b, input_map(buffers));
          emitter.set_flat(n);
          emit_range_loop(b, begin, end, [&](Value* i) {
            emitter.scoped([&] { evaluate_and_store(b, emitter, buffers, group, Index{i}, i); });
          });
        });
  }

  // Rows in parallel, then the last dimension in an inner loop (vectorized where every operand
  // has stride 1 or 0 along it). With few rows, each row is split into blocks of columns so that
  // there are enough items to share out.
  void emit_rows(const std::vector<const ir::Value*>& group, const std::string& name) {
    const ir::Shape& shape = group.front()->type().shape;
    const std::vector<int64_t> strides = shape.strides();
    const int64_t columns = shape.rank() == 0 ? 1 : shape[shape.rank() - 1];
    const int64_t rows = shape.num_elements() / columns;
    std::vector<int64_t> outer(shape.dims().begin(), shape.dims().end());
    if (!outer.empty()) outer.pop_back();
    // Rows are split into column blocks when there are fewer than the items wanted.
    const int64_t wanted = std::min(columns, (lowering_.min_items + rows - 1) / rows);
    const int64_t block = round_up((columns + wanted - 1) / wanted, lowering_.column_multiple);
    const int64_t blocks = (columns + block - 1) / block;
    const int64_t work = std::min(block, columns) * work_per_element(kernel_);
    parallel(name, rows * blocks, work,
             [&](Builder& b, std::span<Value* const> buffers, Value* begin, Value* end) {
               ElementEmitter emitter(b, input_map(buffers));
               emit_range_loop(b, begin, end, [&](Value* item) {
                 Value* row = blocks == 1 ? item : b.CreateUDiv(item, b.getInt64(blocks));
                 Index index = unflatten(b, row, outer);
                 emitter.scoped([&] {
                   if (shape.rank() == 0) {
                     evaluate_and_store(b, emitter, buffers, group, index, b.getInt64(0));
                     return;
                   }
                   auto column = [&](Value* j) {
                     emitter.scoped([&] {
                       index.push_back(j);
                       evaluate_and_store(b, emitter, buffers, group, index,
                                          linear_offset(b, index, strides));
                       index.pop_back();
                     });
                   };
                   if (blocks == 1) return emit_for(b, columns, column);
                   Value* first =
                       b.CreateMul(b.CreateURem(item, b.getInt64(blocks)), b.getInt64(block));
                   Value* last = b.CreateAdd(first, b.getInt64(block));
                   last = b.CreateSelect(b.CreateICmpSLT(last, b.getInt64(columns)), last,
                                         b.getInt64(columns));
                   emit_range_loop(b, first, last, column);
                 });
               });
             });
  }

  // A reduction that keeps the innermost axis: each item takes one output row and a block of up
  // to lowering_.reduction_columns columns, and folds the reduced axes (in the interpreter's order)
  // into a block of accumulators, a vector add across each row.
  void emit_reduction_across_rows(const ir::Node& node, const std::string& name) {
    const ir::Value* in = node.input(0);
    const ir::Shape& shape = in->type().shape;
    const std::vector<bool> mask = ir::reduced_axes_mask(node.attrs(), shape.rank());
    const int64_t rank = shape.rank();
    const int64_t columns = shape[rank - 1];
    std::vector<int64_t> kept_sizes, reduced_sizes;
    std::vector<size_t> kept_axes, reduced_axes;
    for (int64_t d = 0; d + 1 < rank; ++d) {
      auto& sizes = mask[static_cast<size_t>(d)] ? reduced_sizes : kept_sizes;
      auto& axes = mask[static_cast<size_t>(d)] ? reduced_axes : kept_axes;
      sizes.push_back(shape[d]);
      axes.push_back(static_cast<size_t>(d));
    }
    int64_t rows = 1, count = 1;
    for (int64_t s : kept_sizes)
      rows *= s;
    for (int64_t s : reduced_sizes)
      count *= s;
    const int64_t block = std::min(columns, lowering_.reduction_columns);
    const int64_t blocks = (columns + block - 1) / block;
    const ir::Value* out = node.output();
    const ir::DType dtype = in->type().dtype;
    parallel(
        name, rows * blocks, count * block,
        [&](Builder& b, std::span<Value* const> buffers, Value* begin, Value* end) {
          ElementEmitter emitter(b, input_map(buffers));
          ReduceStep step(b, node.op(), dtype, count);
          llvm::Type* acc_type = llvm::ArrayType::get(step.type(), static_cast<uint64_t>(block));
          llvm::AllocaInst* acc = entry_alloca(b, acc_type, "columns");
          Value* out_ptr = pointer(buffers, out);
          emit_range_loop(b, begin, end, [&](Value* item) {
            Value* row = b.CreateUDiv(item, b.getInt64(blocks));
            Value* first = b.CreateMul(b.CreateURem(item, b.getInt64(blocks)), b.getInt64(block));
            Value* left = b.CreateSub(b.getInt64(columns), first);
            Value* width =
                b.CreateSelect(b.CreateICmpSLT(left, b.getInt64(block)), left, b.getInt64(block));
            Index kept = unflatten(b, row, kept_sizes);
            auto slot = [&](Value* j) { return b.CreateInBoundsGEP(step.type(), acc, j); };
            emit_range_loop(b, b.getInt64(0), width,
                            [&](Value* j) { b.CreateStore(step.init(), slot(j)); });
            Index at(static_cast<size_t>(rank));
            for (size_t k = 0; k < kept_axes.size(); ++k)
              at[kept_axes[k]] = kept[k];
            emitter.loop_nest(reduced_sizes, [&](const Index& counters) {
              for (size_t r = 0; r < reduced_axes.size(); ++r)
                at[reduced_axes[r]] = counters[r];
              emit_range_loop(b, b.getInt64(0), width, [&](Value* j) {
                emitter.scoped([&] {
                  at[static_cast<size_t>(rank - 1)] = b.CreateAdd(first, j);
                  Value* x = emitter.element(in, at);
                  Value* p = slot(j);
                  b.CreateStore(step.combine(b.CreateLoad(step.type(), p), x), p);
                });
              });
            });
            Value* base = b.CreateAdd(b.CreateMul(row, b.getInt64(columns)), first);
            emit_range_loop(b, b.getInt64(0), width, [&](Value* j) {
              Value* total = step.finish(b.CreateLoad(step.type(), slot(j)));
              store_element(b, out->type().dtype, out_ptr, b.CreateAdd(base, j), total);
            });
          });
        });
  }

  // softmax / log_softmax a row at a time: the row's max, then Σ exp(x − max), then the
  // outputs, all in double as the interpreter computes them.
  void emit_softmax(const ir::Node& node, const std::string& name) {
    const ir::Value* in = node.input(0);
    const ir::Value* out = node.output();
    const ir::Shape& shape = in->type().shape;
    const size_t axis =
        static_cast<size_t>(ir::normalize_axis(node.attrs().get_int("axis", -1), shape.rank()));
    const int64_t n = shape[static_cast<int64_t>(axis)];
    std::vector<int64_t> others(shape.dims().begin(), shape.dims().end());
    others.erase(others.begin() + static_cast<int64_t>(axis));
    const std::vector<int64_t> strides = shape.strides();
    const bool log = node.op() == ir::Op::log_softmax;
    const ir::DType dtype = in->type().dtype;
    parallel(name, shape.num_elements() / n, 3 * n,
             [&](Builder& b, std::span<Value* const> buffers, Value* begin, Value* end) {
               ElementEmitter emitter(b, input_map(buffers));
               llvm::Type* f64 = b.getDoubleTy();
               llvm::AllocaInst* max = entry_alloca(b, f64, "max");
               llvm::AllocaInst* sum = entry_alloca(b, f64, "sum");
               Value* out_ptr = pointer(buffers, out);
               emit_range_loop(b, begin, end, [&](Value* row) {
                 Index at = unflatten(b, row, others);
                 at.insert(at.begin() + static_cast<int64_t>(axis), b.getInt64(0));
                 auto for_each = [&](const std::function<void(Value*, Value*)>& body) {
                   emit_for(b, n, [&](Value* k) {
                     emitter.scoped([&] {
                       at[axis] = k;
                       Value* x = emitter.element(in, at);
                       body(k, dtype == ir::DType::f64 ? x : b.CreateFPExt(x, f64));
                     });
                   });
                 };
                 b.CreateStore(llvm::ConstantFP::getInfinity(f64, true), max);
                 for_each([&](Value*, Value* x) {
                   Value* m = b.CreateLoad(f64, max);
                   b.CreateStore(b.CreateSelect(b.CreateFCmpOLT(m, x), x, m), max);  // as std::max
                 });
                 Value* row_max = b.CreateLoad(f64, max);
                 b.CreateStore(llvm::ConstantFP::get(f64, 0.0), sum);
                 for_each([&](Value*, Value* x) {
                   Value* shifted[] = {b.CreateFSub(x, row_max)};
                   Value* e = call_intrinsic(b, llvm::Intrinsic::exp, shifted);
                   b.CreateStore(b.CreateFAdd(b.CreateLoad(f64, sum), e), sum);
                 });
                 Value* total = b.CreateLoad(f64, sum);
                 Value* log_total = nullptr;
                 if (log) {
                   Value* args[] = {total};
                   log_total = call_intrinsic(b, llvm::Intrinsic::log, args);
                 }
                 for_each([&](Value*, Value* x) {
                   Value* shifted = b.CreateFSub(x, row_max);
                   Value* y;
                   if (log) {
                     y = b.CreateFSub(shifted, log_total);
                   } else {
                     Value* args[] = {shifted};
                     y = b.CreateFDiv(call_intrinsic(b, llvm::Intrinsic::exp, args), total);
                   }
                   if (dtype != ir::DType::f64)
                     y = b.CreateFPTrunc(y, scalar_type(b.getContext(), dtype));
                   store_element(b, dtype, out_ptr, linear_offset(b, at, strides), y);
                 });
               });
             });
  }

  llvm::Function& fn_;
  const passes::Kernel& kernel_;
  const KernelBuffers& buffers_;
  const LoopLowering& lowering_;
  Builder b_;
  std::vector<Value*> distinct_;  // the first argument pointing into each buffer
};

// Where a slot's memory is: same key, same memory.
using Place = std::tuple<int, int64_t, const ir::Value*>;

Place place_of(const ir::Value* v, const passes::Slot& slot) {
  switch (slot.kind) {
    case passes::Slot::Kind::param:
      return {0, slot.index, nullptr};
    case passes::Slot::Kind::output:
      return {1, slot.index, nullptr};
    case passes::Slot::Kind::workspace:
      return {2, slot.offset, nullptr};
    case passes::Slot::Kind::constant:
      return {3, 0, v};
  }
  return {4, 0, v};
}

}  // namespace

Index unflatten(Builder& b, Value* linear, std::span<const int64_t> sizes) {
  Index index(sizes.size());
  for (size_t d = sizes.size(); d-- > 1;) {
    if (sizes[d] == 1) {
      index[d] = b.getInt64(0);
      continue;
    }
    index[d] = b.CreateURem(linear, b.getInt64(sizes[d]));
    linear = b.CreateUDiv(linear, b.getInt64(sizes[d]));
  }
  if (!sizes.empty()) index[0] = linear;
  return index;
}

KernelBuffers kernel_buffers(const passes::Kernel& kernel, const passes::MemoryPlan& memory) {
  std::vector<const ir::Value*> args(kernel.inputs.begin(), kernel.inputs.end());
  args.insert(args.end(), kernel.outputs.begin(), kernel.outputs.end());
  KernelBuffers result;
  std::map<Place, size_t> seen;
  struct Range {
    int64_t begin = 0, end = 0;  // workspace bytes; empty for other memory
  };
  std::vector<Range> ranges;
  for (const ir::Value* v : args) {
    auto it = memory.slots.find(v);
    if (it == memory.slots.end()) {
      throw CompileError(
          fmt::format("the memory plan has no slot for a value of type {}", v->type().to_string()));
    }
    const passes::Slot& slot = it->second;
    auto [pos, fresh] = seen.emplace(place_of(v, slot), ranges.size());
    if (fresh) ranges.push_back({});
    Range& r = ranges[pos->second];
    if (slot.kind == passes::Slot::Kind::workspace) {
      r.begin = slot.offset;
      r.end = std::max(r.end, slot.offset + byte_size(v));
    }
    result.buffer_of.push_back(pos->second);
  }
  result.exclusive.assign(ranges.size(), true);
  for (size_t i = 0; i < ranges.size(); ++i) {
    for (size_t j = 0; j < ranges.size(); ++j) {
      const bool overlap =
          i != j && ranges[i].begin < ranges[j].end && ranges[j].begin < ranges[i].end;
      if (overlap) result.exclusive[i] = false;
    }
  }
  return result;
}

void emit_kernel_loops(llvm::Function& fn, const passes::Kernel& kernel,
                       const KernelBuffers& buffers, const LoopLowering& lowering) {
  KernelLoops(fn, kernel, buffers, lowering).emit();
}

}  // namespace kiln::codegen
