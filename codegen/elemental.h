// Internal: the elemental emitter. Every op a kernel computes is expressed as "the element of
// this value at this multi-index": elementwise ops apply their scalar expression to their
// operands' elements (broadcast indices), data-movement ops remap the index, creation ops
// compute from the index, and reductions, matmul, convolution, pooling and softmax run an inner
// loop. The kernel emitters (kernels.cpp) wrap this in loop nests over the outputs.
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

 private:
  using Key = std::pair<const ir::Value*, Index>;

  llvm::Value* compute(const ir::Value* value, const Index& index);
  // Runs `body` with a fresh cache scope: elements computed inside an inner loop do not
  // dominate the code after it.
  void scoped(const std::function<void()>& body);
  // Nested loops over dims[i] (sizes) calling body(counters).
  void loop_nest(std::span<const int64_t> sizes, const std::function<void(const Index&)>& body);

  llvm::Value* load(const ir::Value* value, const Index& index);
  llvm::Value* elementwise(const ir::Node& node, const Index& index);
  llvm::Value* creation(const ir::Node& node, const Index& index);
  llvm::Value* random(const ir::Node& node, const Index& index);
  llvm::Value* one_hot(const ir::Node& node, const Index& index);
  llvm::Value* data_movement(const ir::Node& node, int result, const Index& index);
  llvm::Value* reshape(const ir::Node& node, const Index& index);
  llvm::Value* pad(const ir::Node& node, const Index& index);
  llvm::Value* concat(const ir::Node& node, const Index& index);
  llvm::Value* reduce(const ir::Node& node, const Index& index);
  llvm::Value* arg_reduce(const ir::Node& node, const Index& index);
  llvm::Value* matmul(const ir::Node& node, const Index& index);
  llvm::Value* conv2d(const ir::Node& node, const Index& index);
  llvm::Value* pool(const ir::Node& node, const Index& index);
  llvm::Value* softmax(const ir::Node& node, const Index& index);
  // Index of an operand of shape `shape` broadcast NumPy-style to an index of `index.size()`.
  Index broadcast_index(const ir::Shape& shape, const Index& index);

  Builder& b_;
  std::unordered_map<const ir::Value*, llvm::Value*> buffers_;
  std::vector<std::map<Key, llvm::Value*>> scopes_;
};

// The single element of a one-element constant as an LLVM constant of its register type.
llvm::Constant* scalar_constant(llvm::LLVMContext& context, const ir::HostTensor& tensor,
                                int64_t i = 0);

}  // namespace kiln::codegen
