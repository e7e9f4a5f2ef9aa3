#include "kiln/codegen/llvm_util.h"

#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/Module.h>

#include "kiln/ir/error.h"

namespace kiln::codegen {

llvm::Type* scalar_type(llvm::LLVMContext& context, ir::DType dtype) {
  switch (dtype) {
    case ir::DType::f32:
      return llvm::Type::getFloatTy(context);
    case ir::DType::f64:
      return llvm::Type::getDoubleTy(context);
    case ir::DType::i32:
      return llvm::Type::getInt32Ty(context);
    case ir::DType::i64:
      return llvm::Type::getInt64Ty(context);
    case ir::DType::boolean:
      return llvm::Type::getInt1Ty(context);
    case ir::DType::u8:  // signedness lives in the operations (udiv, icmp ult, zext, uitofp)
      return llvm::Type::getInt8Ty(context);
  }
  KILN_CHECK(false, "unknown dtype");
}

llvm::Type* storage_type(llvm::LLVMContext& context, ir::DType dtype) {
  if (dtype == ir::DType::boolean) return llvm::Type::getInt8Ty(context);
  return scalar_type(context, dtype);
}

llvm::Value* load_element(Builder& b, ir::DType dtype, llvm::Value* base, llvm::Value* offset) {
  llvm::Type* type = storage_type(b.getContext(), dtype);
  llvm::Value* ptr = b.CreateInBoundsGEP(type, base, offset);
  llvm::Value* value = b.CreateLoad(type, ptr);
  if (dtype == ir::DType::boolean) return b.CreateICmpNE(value, b.getInt8(0));
  return value;
}

void store_element(Builder& b, ir::DType dtype, llvm::Value* base, llvm::Value* offset,
                   llvm::Value* value) {
  llvm::Type* type = storage_type(b.getContext(), dtype);
  if (dtype == ir::DType::boolean) value = b.CreateZExt(value, type);
  b.CreateStore(value, b.CreateInBoundsGEP(type, base, offset));
}

llvm::Value* linear_offset(Builder& b, std::span<llvm::Value* const> index,
                           std::span<const int64_t> strides) {
  llvm::Value* offset = b.getInt64(0);
  for (size_t d = 0; d < index.size(); ++d) {
    if (strides[d] == 0) continue;
    offset = b.CreateAdd(offset, b.CreateMul(index[d], b.getInt64(strides[d])));
  }
  return offset;
}

void emit_for(Builder& b, int64_t n, const std::function<void(llvm::Value*)>& body) {
  if (n <= 0) return;
  if (n == 1) {
    body(b.getInt64(0));
    return;
  }
  llvm::Function* fn = b.GetInsertBlock()->getParent();
  llvm::LLVMContext& context = b.getContext();
  llvm::BasicBlock* pre = b.GetInsertBlock();
  llvm::BasicBlock* header = llvm::BasicBlock::Create(context, "loop", fn);
  llvm::BasicBlock* inner = llvm::BasicBlock::Create(context, "body", fn);
  llvm::BasicBlock* exit = llvm::BasicBlock::Create(context, "exit", fn);
  b.CreateBr(header);
  b.SetInsertPoint(header);
  llvm::PHINode* i = b.CreatePHI(b.getInt64Ty(), 2, "i");
  i->addIncoming(b.getInt64(0), pre);
  b.CreateCondBr(b.CreateICmpSLT(i, b.getInt64(n)), inner, exit);
  b.SetInsertPoint(inner);
  body(i);
  llvm::Value* next = b.CreateAdd(i, b.getInt64(1), "", /*HasNUW=*/true, /*HasNSW=*/true);
  i->addIncoming(next, b.GetInsertBlock());
  b.CreateBr(header);
  b.SetInsertPoint(exit);
}

llvm::AllocaInst* entry_alloca(Builder& b, llvm::Type* type, const char* name) {
  llvm::Function* fn = b.GetInsertBlock()->getParent();
  llvm::BasicBlock& entry = fn->getEntryBlock();
  Builder at(&entry, entry.getFirstInsertionPt());
  return at.CreateAlloca(type, nullptr, name);
}

void make_external_declaration(llvm::Function& fn) {
  if (!fn.isDeclaration()) fn.deleteBody();
  fn.setLinkage(llvm::GlobalValue::ExternalLinkage);
  fn.setDSOLocal(false);
}

llvm::Value* call_intrinsic(Builder& b, llvm::Intrinsic::ID id,
                            std::span<llvm::Value* const> args) {
  std::vector<llvm::Value*> list(args.begin(), args.end());
  return b.CreateIntrinsic(id, {list[0]->getType()}, list);
}

llvm::Value* call_libm(Builder& b, const char* name, llvm::Type* type,
                       std::span<llvm::Value* const> args) {
  llvm::Module* module = b.GetInsertBlock()->getModule();
  std::vector<llvm::Type*> params(args.size(), type);
  llvm::FunctionCallee callee =
      module->getOrInsertFunction(name, llvm::FunctionType::get(type, params, false));
  std::vector<llvm::Value*> list(args.begin(), args.end());
  return b.CreateCall(callee, list);
}

}  // namespace kiln::codegen
