// Internal: the elemental emitter. Every op a kernel computes is expressed as "the element of
// this value at this multi-index": elementwise ops apply their scalar expression to their
// operands' elements (broadcast indices), data-movement ops remap the index, creation ops
// compute from the index, and reductions, matmul, convolution and pooling run an inner loop. The
// kernel emitters (kernel_loops.cpp) wrap this in loop nests over the outputs; softmax is always
// a kernel of its own, emitted a row at a time there.
#pragma once

#include <functional>
#include <map>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kiln/codegen/llvm_util.h"
#include "kiln/ir/function.h"

namespace kiln::codegen {

using Index = std::vector<llvm::Value*>;

class ElementEmitter {
 public:
  // `buffers` maps every value the kernel reads from memory to its base pointer.
  ElementEmitter(Builder& b, std::unordered_map<const ir::Value*, llvm::Value*> buffers);

  // The element of `value` at `index` (one i64 per dimension), as a register value.
  llvm::Value* element(const ir::Value* value, std::span<llvm::Value* const> index);
  // Forgets every element computed so far (call before code that they need not dominate).
  void reset() { scopes_.assign(1, {}); }
  // Flat mode, for loop kernels whose operands all have `elements` elements in the kernel's
  // layout or a single element: indices are one linear i64, which every such value shares (a
  // broadcast that stretches nothing is the identity on the row-major layout).
  void set_flat(int64_t elements) { flat_elements_ = elements; }

  // Runs `body` with a fresh cache scope: elements computed inside an inner loop do not
  // dominate the code after it.
  void scoped(const std::function<void()>& body);
  // Nested loops over dims[i] (sizes) calling body(counters).
  void loop_nest(std::span<const int64_t> sizes, const std::function<void(const Index&)>& body);

 private:
  using Key = std::pair<const ir::Value*, Index>;

  llvm::Value* compute(const ir::Value* value, const Index& index);

  llvm::Value* load(const ir::Value* value, const Index& index);
  llvm::Value* elementwise(const ir::Node& node, const Index& index);
  llvm::Value* creation(const ir::Node& node, const Index& index);
  llvm::Value* random(const ir::Node& node, const Index& index);
  llvm::Value* one_hot(const ir::Node& node, const Index& index);
  llvm::Value* data_movement(const ir::Node& node, int result, const Index& index);
  llvm::Value* reshape(const ir::Node& node, const Index& index);
  llvm::Value* pad(const ir::Node& node, const Index& index);
  llvm::Value* concat(const ir::Node& node, const Index& index);
  llvm::Value* gather(const ir::Node& node, const Index& index);
  llvm::Value* reduce(const ir::Node& node, const Index& index);
  llvm::Value* arg_reduce(const ir::Node& node, const Index& index);
  llvm::Value* matmul(const ir::Node& node, const Index& index);
  llvm::Value* conv2d(const ir::Node& node, const Index& index);
  llvm::Value* conv2d_filter_grad(const ir::Node& node, const Index& index);
  llvm::Value* pool(const ir::Node& node, const Index& index);
  llvm::Value* max_pool_grad(const ir::Node& node, const Index& index);
  llvm::Value* image_resize(const ir::Node& node, const Index& index);  // elemental_image.cpp
  llvm::Value* image_transform(const ir::Node& node, const Index& index);
  // Index of an operand of shape `shape` broadcast NumPy-style to an index of `index.size()`.
  Index broadcast_index(const ir::Shape& shape, const Index& index);

  Builder& b_;
  std::unordered_map<const ir::Value*, llvm::Value*> buffers_;
  std::vector<std::map<Key, llvm::Value*>> scopes_;
  int64_t flat_elements_ = -1;  // flat mode when >= 0
};

// How reduce_sum/mean/prod/max/min fold elements, as the interpreter does: sums and products of
// floats in double and of integers in i64, max/min in the element type (NaN wins and sticks,
// ties keep the earlier element). `reassociate` lets LLVM reorder an f32 sum (to vectorize it;
// the result then differs from the in-order sum only in the last bits of the double) and makes
// float max/min llvm.maximum/minimum (the same values, but +0 beats −0 whatever their order).
class ReduceStep {
 public:
  ReduceStep(Builder& b, ir::Op op, ir::DType dtype, int64_t count, bool reassociate = false);
  llvm::Type* type() const { return type_; }
  llvm::Value* init() const;
  llvm::Value* combine(llvm::Value* acc, llvm::Value* x) const;
  // The result element from the accumulator (the mean divides by `count`).
  llvm::Value* finish(llvm::Value* acc) const;

 private:
  Builder& b_;
  ir::Op op_;
  ir::DType dtype_;
  int64_t count_;
  bool reassociate_;
  llvm::Type* type_;
};

// The index of `linear` in a row-major space of `sizes`, the first dimension unbounded
// (kernel_loops.cpp).
Index unflatten(Builder& b, llvm::Value* linear, std::span<const int64_t> sizes);

// Whether `x` (a register value) is a NaN; false for integers.
llvm::Value* is_nan(Builder& b, llvm::Value* x);
// Whether `x` replaces the running `best` of an argmax/argmin or max/min (`is_max` picks which):
// strictly better, or a NaN; NaN wins and then sticks, so ties keep the earlier one.
llvm::Value* beats(Builder& b, ir::DType dtype, bool is_max, llvm::Value* x, llvm::Value* best);
// The lowest (`lowest`) or highest value of `dtype`: ∓infinity for floats, else the integer limit.
llvm::Constant* extreme_value(Builder& b, ir::DType dtype, bool lowest);

// The single element of a one-element constant as an LLVM constant of its register type.
llvm::Constant* scalar_constant(llvm::LLVMContext& context, const ir::HostTensor& tensor,
                                int64_t i = 0);

}  // namespace kiln::codegen
