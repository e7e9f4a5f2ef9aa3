#include "kiln/codegen/parallel.h"

#include <algorithm>
#include <vector>

#include <llvm/IR/Module.h>

namespace kiln::codegen {

namespace {

using llvm::Value;

// Generated loops should use the widest vectors the target has (on AVX-512 targets LLVM may
// otherwise prefer 256-bit ones).
void tune(llvm::Function& fn) {
  fn.addFnAttr("prefer-vector-width", "512");
  fn.addFnAttr(llvm::Attribute::NoUnwind);
}

llvm::Function* range_function(llvm::Module& module, const ParallelLoop& loop, size_t buffers,
                               const std::vector<bool>& exclusive) {
  llvm::LLVMContext& context = module.getContext();
  llvm::Type* ptr = llvm::PointerType::get(context, 0);
  llvm::Type* i64 = llvm::Type::getInt64Ty(context);
  std::vector<llvm::Type*> params(buffers, ptr);
  params.push_back(i64);
  params.push_back(i64);
  auto* type = llvm::FunctionType::get(llvm::Type::getVoidTy(context), params, false);
  auto* fn = llvm::Function::Create(type, llvm::Function::InternalLinkage, loop.name, module);
  for (size_t i = 0; i < buffers; ++i) {
    if (exclusive[i]) fn->addParamAttr(static_cast<unsigned>(i), llvm::Attribute::NoAlias);
  }
  tune(*fn);
  return fn;
}

// void name.body(ptr context, i64 begin, i64 end): loads the buffer pointers from the context
// and calls the range function.
llvm::Function* pool_body(llvm::Module& module, llvm::Function* range, size_t buffers) {
  llvm::LLVMContext& context = module.getContext();
  llvm::Type* ptr = llvm::PointerType::get(context, 0);
  llvm::Type* i64 = llvm::Type::getInt64Ty(context);
  auto* type = llvm::FunctionType::get(llvm::Type::getVoidTy(context), {ptr, i64, i64}, false);
  auto* fn = llvm::Function::Create(type, llvm::Function::InternalLinkage,
                                    range->getName() + ".body", module);
  tune(*fn);
  Builder b(llvm::BasicBlock::Create(context, "entry", fn));
  std::vector<Value*> args;
  for (size_t i = 0; i < buffers; ++i)
    args.push_back(b.CreateLoad(ptr, b.CreateConstInBoundsGEP1_64(ptr, fn->getArg(0), i)));
  args.push_back(fn->getArg(1));
  args.push_back(fn->getArg(2));
  b.CreateCall(range, args);
  b.CreateRetVoid();
  return fn;
}

llvm::FunctionCallee parallel_for(llvm::Module& module) {
  llvm::LLVMContext& context = module.getContext();
  llvm::Type* ptr = llvm::PointerType::get(context, 0);
  llvm::Type* i64 = llvm::Type::getInt64Ty(context);
  auto* type = llvm::FunctionType::get(llvm::Type::getVoidTy(context), {i64, i64, ptr, ptr}, false);
  return module.getOrInsertFunction("kiln_rt_parallel_for", type);
}

}  // namespace

void emit_range_loop(Builder& b, Value* begin, Value* end,
                     const std::function<void(Value*)>& body) {
  llvm::Function* fn = b.GetInsertBlock()->getParent();
  llvm::LLVMContext& context = b.getContext();
  llvm::BasicBlock* pre = b.GetInsertBlock();
  llvm::BasicBlock* header = llvm::BasicBlock::Create(context, "range", fn);
  llvm::BasicBlock* inner = llvm::BasicBlock::Create(context, "range.body", fn);
  llvm::BasicBlock* exit = llvm::BasicBlock::Create(context, "range.exit", fn);
  b.CreateBr(header);
  b.SetInsertPoint(header);
  llvm::PHINode* i = b.CreatePHI(b.getInt64Ty(), 2, "r");
  i->addIncoming(begin, pre);
  b.CreateCondBr(b.CreateICmpSLT(i, end), inner, exit);
  b.SetInsertPoint(inner);
  body(i);
  i->addIncoming(b.CreateAdd(i, b.getInt64(1), "", /*HasNUW=*/true, /*HasNSW=*/true),
                 b.GetInsertBlock());
  b.CreateBr(header);
  b.SetInsertPoint(exit);
}

void emit_parallel_loop(Builder& b, const ParallelLoop& loop, std::span<Value* const> buffers,
                        const std::vector<bool>& exclusive, const RangeBody& body,
                        const LoopSink* sink) {
  if (loop.items <= 0) return;
  llvm::Module& module = *b.GetInsertBlock()->getModule();
  llvm::Function* range = range_function(module, loop, buffers.size(), exclusive);
  {
    Builder rb(llvm::BasicBlock::Create(module.getContext(), "entry", range));
    std::vector<Value*> args;
    for (size_t i = 0; i < buffers.size(); ++i)
      args.push_back(range->getArg(static_cast<unsigned>(i)));
    const unsigned n = static_cast<unsigned>(buffers.size());
    body(rb, args, range->getArg(n), range->getArg(n + 1));
    rb.CreateRetVoid();
  }
  if (sink != nullptr) return (*sink)(loop, range, buffers);
  std::vector<Value*> args(buffers.begin(), buffers.end());
  const int64_t work = std::max<int64_t>(loop.work_per_item, 1);
  const bool parallel = loop.items >= 2 && loop.items >= (kParallelWork + work - 1) / work;
  if (!parallel) {
    args.push_back(b.getInt64(0));
    args.push_back(b.getInt64(static_cast<uint64_t>(loop.items)));
    b.CreateCall(range, args);
    return;
  }
  llvm::Type* ptr = llvm::PointerType::get(module.getContext(), 0);
  llvm::AllocaInst* context =
      entry_alloca(b, llvm::ArrayType::get(ptr, std::max<size_t>(buffers.size(), 1)), "context");
  for (size_t i = 0; i < buffers.size(); ++i)
    b.CreateStore(buffers[i], b.CreateConstInBoundsGEP1_64(ptr, context, i));
  const int64_t grain = std::max<int64_t>(1, kChunkWork / work);
  b.CreateCall(parallel_for(module), {b.getInt64(static_cast<uint64_t>(loop.items)),
                                      b.getInt64(static_cast<uint64_t>(grain)),
                                      pool_body(module, range, buffers.size()), context});
}

}  // namespace kiln::codegen
