#include "kiln/codegen/index_check.h"

#include <algorithm>
#include <optional>

#include "kiln/ir/error.h"

namespace kiln::codegen {

namespace {

using llvm::Value;

// if (cond) then(); with the builder left after it.
void emit_if(Builder& b, Value* cond, const std::function<void()>& then) {
  llvm::Function* fn = b.GetInsertBlock()->getParent();
  llvm::LLVMContext& context = b.getContext();
  llvm::BasicBlock* body = llvm::BasicBlock::Create(context, "then", fn);
  llvm::BasicBlock* done = llvm::BasicBlock::Create(context, "endif", fn);
  b.CreateCondBr(cond, body, done);
  b.SetInsertPoint(body);
  then();
  b.CreateBr(done);
  b.SetInsertPoint(done);
}

// What a checked node checks: its operand of indices and the bound they must stay below.
struct Checked {
  const ir::Value* indices;
  int64_t dim;
};

// gather checks its indices against the gathered axis; check_index its operand against `limit`.
std::optional<Checked> checked_indices(const ir::Node& node) {
  if (node.op() == ir::Op::gather) {
    const ir::Shape& params = node.input(0)->type().shape;
    const int64_t axis = ir::normalize_axis(node.attrs().get_int("axis"), params.rank());
    return Checked{node.input(1), params[axis]};
  }
  if (node.op() == ir::Op::check_index)
    return Checked{node.input(0), node.attrs().get_int("limit")};
  return std::nullopt;
}

// Checks one node's indices against [0, dim). The common case costs one pass that ORs the
// "out of range" flags (a loop LLVM vectorizes); only when some index is bad does a second pass
// find the first one and record it, unless an earlier kernel failed already.
void check_indices(Builder& b, int64_t code, const Checked& checked, Value* indices,
                   Value* status) {
  const ir::DType dtype = checked.indices->type().dtype;
  const int64_t n = checked.indices->type().shape.num_elements();
  const int64_t dim = checked.dim;
  if (n == 0) return;
  llvm::Type* i64 = b.getInt64Ty();
  auto index_at = [&](Value* j) { return b.CreateSExt(load_element(b, dtype, indices, j), i64); };
  // Unsigned, so that a negative index is out of range too.
  auto bad = [&](Value* idx) { return b.CreateICmpUGE(idx, b.getInt64(dim)); };

  llvm::AllocaInst* any = entry_alloca(b, b.getInt1Ty(), "any_bad");
  b.CreateStore(b.getFalse(), any);
  emit_for(b, n, [&](Value* j) {
    b.CreateStore(b.CreateOr(b.CreateLoad(b.getInt1Ty(), any), bad(index_at(j))), any);
  });
  emit_if(b, b.CreateLoad(b.getInt1Ty(), any), [&] {
    Value* first_failure = b.CreateICmpEQ(b.CreateLoad(i64, status), b.getInt64(0));
    emit_if(b, first_failure, [&] {
      llvm::AllocaInst* first = entry_alloca(b, i64, "first_bad");
      b.CreateStore(b.getInt64(n), first);
      emit_for(b, n, [&](Value* j) {
        Value* unset = b.CreateICmpEQ(b.CreateLoad(i64, first), b.getInt64(n));
        Value* take = b.CreateAnd(unset, bad(index_at(j)));
        b.CreateStore(b.CreateSelect(take, j, b.CreateLoad(i64, first)), first);
      });
      Value* position = b.CreateLoad(i64, first);
      Value* words[] = {b.getInt64(code), index_at(position), position, b.getInt64(dim)};
      for (unsigned w = 0; w < 4; ++w)
        b.CreateStore(words[w], b.CreateConstInBoundsGEP1_64(i64, status, w));
    });
  });
}

}  // namespace

bool has_index_checks(const passes::Kernel& kernel) {
  return std::any_of(kernel.nodes.begin(), kernel.nodes.end(), [](const ir::Node* node) {
    std::optional<Checked> c = checked_indices(*node);
    return c && c->indices->type().shape.num_elements() > 0;
  });
}

void emit_index_checks(Builder& b, size_t kernel_index, const passes::Kernel& kernel,
                       const std::function<Value*(const ir::Value*)>& pointer, Value* status) {
  std::vector<Checked> checks;
  for (const ir::Node* node : kernel.nodes) {
    std::optional<Checked> c = checked_indices(*node);
    if (!c || c->indices->type().shape.num_elements() == 0) continue;
    KILN_CHECK(c->indices->producer() == nullptr ||
                   std::find(kernel.nodes.begin(), kernel.nodes.end(), c->indices->producer()) ==
                       kernel.nodes.end(),
               "checked indices computed inside the kernel that reads them");
    checks.push_back(*c);
  }
  if (checks.empty()) return;
  Value* reporting = b.CreateICmpNE(
      status, llvm::ConstantPointerNull::get(llvm::PointerType::get(b.getContext(), 0)));
  emit_if(b, reporting, [&] {
    for (const Checked& c : checks)
      check_indices(b, static_cast<int64_t>(kernel_index) + 1, c, pointer(c.indices), status);
  });
}

}  // namespace kiln::codegen
