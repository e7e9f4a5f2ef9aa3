#include "kiln/codegen/module_builder.h"

#include <map>

#include <llvm/IR/Verifier.h>
#include <llvm/Support/raw_ostream.h>

#include <fmt/format.h>

#include "kiln/codegen/elemental.h"
#include "kiln/codegen/gemm.h"
#include "kiln/codegen/index_check.h"
#include "kiln/codegen/kernel_loops.h"
#include "kiln/ir/error.h"
#include "kiln/passes/memory_plan.h"

namespace kiln::codegen {

namespace {

using llvm::Value;

constexpr unsigned kAlign = 64;

// The entry's view of the frame: pointers to every planned value.
class EntryEmitter {
 public:
  EntryEmitter(llvm::Module& module, const passes::MemoryPlan& memory)
      : module_(module), memory_(memory), b_(module.getContext()) {}

  llvm::Function* begin() {
    llvm::LLVMContext& context = module_.getContext();
    llvm::Type* ptr = llvm::PointerType::get(context, 0);
    auto* type = llvm::FunctionType::get(llvm::Type::getVoidTy(context), {ptr}, false);
    entry_ = llvm::Function::Create(type, llvm::Function::ExternalLinkage, kEntryName, module_);
    b_.SetInsertPoint(llvm::BasicBlock::Create(context, "entry", entry_));
    llvm::Type* frame = llvm::StructType::get(context, {ptr, ptr, ptr, ptr});
    Value* arg = entry_->getArg(0);
    inputs_ = b_.CreateLoad(ptr, b_.CreateStructGEP(frame, arg, 0), "inputs");
    outputs_ = b_.CreateLoad(ptr, b_.CreateStructGEP(frame, arg, 1), "outputs");
    workspace_ = b_.CreateLoad(ptr, b_.CreateStructGEP(frame, arg, 2), "workspace");
    status_ = b_.CreateLoad(ptr, b_.CreateStructGEP(frame, arg, 3), "status");
    return entry_;
  }

  Builder& builder() { return b_; }
  Value* status() const { return status_; }

  const passes::Slot& slot(const ir::Value* value) const {
    auto it = memory_.slots.find(value);
    if (it == memory_.slots.end()) {
      throw CompileError(fmt::format("the memory plan has no slot for a value of type {}",
                                     value->type().to_string()));
    }
    return it->second;
  }

  // The buffer that holds `value`, per the memory plan.
  Value* pointer(const ir::Value* value) {
    const passes::Slot& s = slot(value);
    llvm::Type* ptr = llvm::PointerType::get(module_.getContext(), 0);
    switch (s.kind) {
      case passes::Slot::Kind::param:
        return b_.CreateLoad(ptr, b_.CreateConstInBoundsGEP1_64(ptr, inputs_, s.index));
      case passes::Slot::Kind::output:
        return b_.CreateLoad(ptr, b_.CreateConstInBoundsGEP1_64(ptr, outputs_, s.index));
      case passes::Slot::Kind::workspace:
        return b_.CreateConstInBoundsGEP1_64(b_.getInt8Ty(), workspace_, s.offset);
      case passes::Slot::Kind::constant:
        return constant_global(value);
    }
    KILN_CHECK(false, "unknown slot kind");
  }

  // Copies `value` into output buffer `index` unless it was computed there already.
  void copy_to_output(const ir::Value* value, int64_t index) {
    const passes::Slot& s = slot(value);
    if (s.kind == passes::Slot::Kind::output && s.index == index) return;
    const uint64_t bytes = value->type().nbytes();
    if (bytes == 0) return;
    llvm::Type* ptr = llvm::PointerType::get(module_.getContext(), 0);
    Value* dst = b_.CreateLoad(ptr, b_.CreateConstInBoundsGEP1_64(ptr, outputs_, index));
    b_.CreateMemMove(dst, llvm::MaybeAlign(kAlign), pointer(value), llvm::MaybeAlign(1), bytes);
  }

 private:
  Value* constant_global(const ir::Value* value) {
    auto it = globals_.find(value);
    if (it != globals_.end()) return it->second;
    llvm::GlobalVariable* global = codegen::constant_global(module_, value);
    globals_.emplace(value, global);
    return global;
  }

  llvm::Module& module_;
  const passes::MemoryPlan& memory_;
  Builder b_;
  llvm::Function* entry_ = nullptr;
  Value* inputs_ = nullptr;
  Value* outputs_ = nullptr;
  Value* workspace_ = nullptr;
  Value* status_ = nullptr;
  std::map<const ir::Value*, llvm::GlobalVariable*> globals_;
};

// One LLVM function per kernel: void kernel(ptr in0, ..., ptr out0, ...). Every output is
// stored by a loop nest over its shape that evaluates the fused group per element, in parallel
// when it is large (codegen/kernel_loops.h).
// (Integer matmul and conv2d kernels use the same path; f32/f64 matmul kernels go to the
// packed GEMM.)
llvm::Function* emit_kernel(llvm::Module& module, size_t index, const passes::Kernel& kernel,
                            const KernelBuffers& buffers, const VectorUnit& unit) {
  llvm::LLVMContext& context = module.getContext();
  llvm::Type* ptr = llvm::PointerType::get(context, 0);
  std::vector<llvm::Type*> params(kernel.inputs.size() + kernel.outputs.size(), ptr);
  auto* type = llvm::FunctionType::get(llvm::Type::getVoidTy(context), params, false);
  auto* fn = llvm::Function::Create(type, llvm::Function::InternalLinkage,
                                    fmt::format("kernel{}", index), module);
  if (gemm_handles(kernel)) {
    emit_gemm_kernel(*fn, kernel, unit);  // f32/f64 matmul: the packed GEMM (codegen/gemm.h)
    return fn;
  }
  emit_kernel_loops(*fn, kernel, buffers);  // codegen/kernel_loops.h
  return fn;
}

// Above this many IR nodes in kernels, build_module keeps the kernels out of the entry (see
// there). Training steps of the main job's models hold a few hundred nodes and stay inlined.
constexpr size_t kMaxInlinedNodes = 10000;

void verify(const llvm::Function& fn, const std::string& what) {
  std::string message;
  llvm::raw_string_ostream os(message);
  if (llvm::verifyFunction(fn, &os)) {
    throw CompileError(fmt::format("{}: LLVM rejected the generated code: {}", what, os.str()));
  }
}

const char* kind_name(passes::KernelKind kind) {
  switch (kind) {
    case passes::KernelKind::loop:
      return "loop";
    case passes::KernelKind::reduction:
      return "reduction";
    case passes::KernelKind::matmul:
      return "matmul";
    case passes::KernelKind::conv2d:
      return "conv2d";
    case passes::KernelKind::op:
      return "op";
  }
  return "kernel";
}

}  // namespace

llvm::GlobalVariable* constant_global(llvm::Module& module, const ir::Value* value) {
  const ir::Node* node = value->producer();
  KILN_CHECK(node != nullptr && node->op() == ir::Op::constant,
             "a constant slot for a value that is not a constant");
  const ir::HostTensor& tensor = node->attrs().get_tensor("value");
  llvm::Type* i8 = llvm::Type::getInt8Ty(module.getContext());
  llvm::StringRef bytes(reinterpret_cast<const char*>(tensor.raw()), tensor.nbytes());
  llvm::Constant* init = llvm::ConstantDataArray::getRaw(bytes, tensor.nbytes(), i8);
  if (tensor.nbytes() == 0) init = llvm::ConstantAggregateZero::get(llvm::ArrayType::get(i8, 1));
  auto* global = new llvm::GlobalVariable(module, init->getType(), true,
                                          llvm::GlobalValue::PrivateLinkage, init, "const");
  global->setAlignment(llvm::Align(kAlign));
  return global;
}

std::string kernel_label(size_t index, const passes::Kernel& kernel) {
  std::string ops;
  for (const ir::Node* node : kernel.nodes) {
    if (!ops.empty()) ops += ", ";
    ops += ir::op_name(node->op());
  }
  return fmt::format("kernel {} ({}: {})", index, kind_name(kernel.kind), ops);
}

std::unique_ptr<llvm::Module> build_module(llvm::LLVMContext& context, const ir::Function& function,
                                           const passes::KernelPlan& plan,
                                           const passes::MemoryPlan& memory,
                                           const VectorUnit& unit) {
  auto module = std::make_unique<llvm::Module>(function.name(), context);
  EntryEmitter entry(*module, memory);
  llvm::Function* entry_fn = entry.begin();
  size_t kernel_nodes = 0;
  for (const passes::Kernel& kernel : plan.kernels)
    kernel_nodes += kernel.nodes.size();
  for (size_t k = 0; k < plan.kernels.size(); ++k) {
    const passes::Kernel& kernel = plan.kernels[k];
    if (passes::is_view_in_place(kernel, memory)) continue;  // a reshape that moves no bytes
    const std::string label = kernel_label(k, kernel);
    try {
      llvm::Function* fn = emit_kernel(*module, k, kernel, kernel_buffers(kernel, memory), unit);
      // Many kernels stay calls: inlined, they would make the entry one huge function, on which
      // LLVM's loop passes take time quadratic in its size (a 100,000-node chain took minutes).
      if (kernel_nodes > kMaxInlinedNodes) fn->addFnAttr(llvm::Attribute::NoInline);
      verify(*fn, label);
      std::vector<Value*> args;
      for (const ir::Value* v : kernel.inputs)
        args.push_back(entry.pointer(v));
      for (const ir::Value* v : kernel.outputs)
        args.push_back(entry.pointer(v));
      // Gather indices are checked before the kernel runs (codegen/index_check.h).
      emit_index_checks(
          entry.builder(), k, kernel, [&](const ir::Value* v) { return entry.pointer(v); },
          entry.status());
      entry.builder().CreateCall(fn, args);
    } catch (Error& e) {
      throw CompileError(fmt::format("{}: {}", label, e.message()));
    }
  }
  const auto& outputs = function.outputs();
  for (size_t j = 0; j < outputs.size(); ++j)
    entry.copy_to_output(outputs[j], static_cast<int64_t>(j));
  const auto& updates = function.updates();
  for (size_t u = 0; u < updates.size(); ++u)
    entry.copy_to_output(updates[u].value, static_cast<int64_t>(outputs.size() + u));
  entry.builder().CreateRetVoid();
  verify(*entry_fn, "kiln_entry");
  std::string message;
  llvm::raw_string_ostream os(message);
  if (llvm::verifyModule(*module, &os)) {
    throw CompileError(fmt::format("{}: LLVM rejected the module: {}", function.name(), os.str()));
  }
  return module;
}

}  // namespace kiln::codegen
