#include "kiln/codegen/jit_smoke.h"

#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/ExecutionEngine/Orc/ThreadSafeModule.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Support/Error.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/TargetParser/Host.h>

#include <fmt/format.h>

#include <mutex>

#include "kiln/ir/error.h"

namespace kiln::codegen {

namespace {
void init_llvm() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
}

template <class T>
T check(llvm::Expected<T> value, const char* what) {
  if (!value) throw CompileError(fmt::format("{}: {}", what, llvm::toString(value.takeError())));
  return std::move(*value);
}
}  // namespace

int64_t jit_add(int64_t a, int64_t b) {
  init_llvm();
  auto context = std::make_unique<llvm::LLVMContext>();
  auto module = std::make_unique<llvm::Module>("kiln_smoke", *context);
  llvm::IRBuilder<> builder(*context);
  llvm::Type* i64 = builder.getInt64Ty();
  auto* type = llvm::FunctionType::get(i64, {i64, i64}, false);
  auto* fn = llvm::Function::Create(type, llvm::Function::ExternalLinkage, "kiln_add", *module);
  builder.SetInsertPoint(llvm::BasicBlock::Create(*context, "entry", fn));
  builder.CreateRet(builder.CreateAdd(fn->getArg(0), fn->getArg(1)));
  if (llvm::verifyFunction(*fn, &llvm::errs())) throw CompileError("kiln_add: invalid LLVM IR");

  auto jit = check(llvm::orc::LLJITBuilder().create(), "creating the JIT");
  if (auto err =
          jit->addIRModule(llvm::orc::ThreadSafeModule(std::move(module), std::move(context)))) {
    throw CompileError(fmt::format("kiln_add: {}", llvm::toString(std::move(err))));
  }
  auto address = check(jit->lookup("kiln_add"), "looking up kiln_add");
  auto* add = address.toPtr<int64_t (*)(int64_t, int64_t)>();
  return add(a, b);
}

std::string host_cpu_name() {
  return llvm::sys::getHostCPUName().str();
}

}  // namespace kiln::codegen
