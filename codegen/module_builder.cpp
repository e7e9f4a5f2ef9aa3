#include "kiln/codegen/module_builder.h"

#include <algorithm>
#include <map>

#include <llvm/IR/Verifier.h>
#include <llvm/Support/raw_ostream.h>

#include <fmt/format.h>

#include "kiln/codegen/elemental.h"
#include "kiln/codegen/gemm.h"
#include "kiln/codegen/index_check.h"
#include "kiln/codegen/kernel_loops.h"
#include "kiln/ir/error.h"
#include "kiln/ir/ops/control.h"
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

  // Starts `fn`, a void(const kiln_frame*), and loads the frame's fields.
  void begin(llvm::Function* fn) {
    llvm::LLVMContext& context = module_.getContext();
    llvm::Type* ptr = llvm::PointerType::get(context, 0);
    b_.SetInsertPoint(llvm::BasicBlock::Create(context, "entry", fn));
    llvm::Type* frame = llvm::StructType::get(context, {ptr, ptr, ptr, ptr});
    Value* arg = fn->getArg(0);
    inputs_ = b_.CreateLoad(ptr, b_.CreateStructGEP(frame, arg, 0), "inputs");
    outputs_ = b_.CreateLoad(ptr, b_.CreateStructGEP(frame, arg, 1), "outputs");
    workspace_ = b_.CreateLoad(ptr, b_.CreateStructGEP(frame, arg, 2), "workspace");
    status_ = b_.CreateLoad(ptr, b_.CreateStructGEP(frame, arg, 3), "status");
  }

  Builder& builder() { return b_; }
  Value* status() const { return status_; }
  Value* workspace() const { return workspace_; }

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
llvm::Function* emit_kernel(llvm::Module& module, const std::string& name,
                            const passes::Kernel& kernel, const KernelBuffers& buffers,
                            const VectorUnit& unit) {
  llvm::LLVMContext& context = module.getContext();
  llvm::Type* ptr = llvm::PointerType::get(context, 0);
  std::vector<llvm::Type*> params(kernel.inputs.size() + kernel.outputs.size(), ptr);
  auto* type = llvm::FunctionType::get(llvm::Type::getVoidTy(context), params, false);
  auto* fn = llvm::Function::Create(type, llvm::Function::InternalLinkage, name, module);
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
    case passes::KernelKind::scan:
      return "scan";
  }
  return "kernel";
}

llvm::Function* new_frame_function(llvm::Module& module, const std::string& name,
                                   llvm::GlobalValue::LinkageTypes linkage) {
  llvm::LLVMContext& context = module.getContext();
  llvm::Type* ptr = llvm::PointerType::get(context, 0);
  auto* type = llvm::FunctionType::get(llvm::Type::getVoidTy(context), {ptr}, false);
  return llvm::Function::Create(type, linkage, name, module);
}

// What one compiled function's code is named after and numbered from: kernels are
// `{prefix}kernel{i}`, and report bad indices as 1 + base + i (passes::number_kernels).
struct EntryNames {
  std::string prefix;
  size_t base = 0;
};

// Where a split build puts the entry's kernels (build_split_modules): the part modules and the
// IR nodes each holds so far (a kernel's compile cost, roughly: the GEMM helpers, the large part,
// are compiled apart). Null: in the entry's own module.
struct KernelSink {
  std::vector<llvm::Module*> parts;
  std::vector<size_t> load;

  // The least loaded part, `kernel` added to it.
  size_t place(const passes::Kernel& kernel) {
    const auto part =
        static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    load[part] += kernel.nodes.size();
    return part;
  }
};

void emit_entry(llvm::Module& module, llvm::Function* fn, const ir::Function& function,
                const passes::KernelPlan& plan, const passes::MemoryPlan& memory,
                const VectorUnit& unit, const EntryNames& names, KernelSink* sink = nullptr);

// A scan kernel: its body becomes a function over a frame (emit_entry), which the entry calls
// once per step. Step i reads the carries step i - 1 wrote (the initial ones at step 0) and
// writes the other of two scratch blocks per carry (the final carry outputs at the last step),
// so a step's outputs never alias its inputs, as kiln_frame requires; xs and stacked ys are
// reached by offsetting their pointers by row t.
void emit_scan(llvm::Module& module, EntryEmitter& entry, size_t k, const passes::Kernel& kernel,
               const passes::MemoryPlan& memory, const VectorUnit& unit, const EntryNames& body) {
  const ir::Node& node = *kernel.nodes.front();
  const passes::ScanPlan& scan = *kernel.scan;
  const ir::ScanAttrs s = ir::scan_attrs(node.attrs(), node.inputs().size());
  llvm::Function* body_fn =
      new_frame_function(module, body.prefix + "body", llvm::Function::InternalLinkage);
  emit_entry(module, body_fn, *scan.body, scan.kernels, scan.memory, unit, body);

  Builder& b = entry.builder();
  llvm::LLVMContext& context = module.getContext();
  llvm::Type* ptr = llvm::PointerType::get(context, 0);
  const auto C = static_cast<size_t>(s.carries);
  const auto X = static_cast<size_t>(s.xs);
  const auto Y = static_cast<size_t>(s.ys);
  const size_t P = node.inputs().size();
  auto bytes_of = [](const ir::Value* v) { return static_cast<int64_t>(v->type().nbytes()); };
  if (s.length == 0) {
    for (size_t c = 0; c < C; ++c) {
      if (bytes_of(node.input(c)) == 0) continue;
      b.CreateMemMove(entry.pointer(node.output(c)), llvm::MaybeAlign(kAlign),
                      entry.pointer(node.input(c)), llvm::MaybeAlign(kAlign),
                      bytes_of(node.input(c)));
    }
    return;
  }
  const passes::Slot& scratch = memory.scratch.at(k);
  Value* base = b.CreateConstInBoundsGEP1_64(b.getInt8Ty(), entry.workspace(), scratch.offset);
  std::vector<Value*> ping(C), pong(C);
  int64_t offset = 0;
  for (size_t c = 0; c < C; ++c) {
    const int64_t block = (bytes_of(node.input(c)) + kAlign - 1) / kAlign * kAlign;
    ping[c] = b.CreateConstInBoundsGEP1_64(b.getInt8Ty(), base, offset);
    pong[c] = b.CreateConstInBoundsGEP1_64(b.getInt8Ty(), base, offset + block);
    offset += 2 * block;
  }
  Value* body_workspace = b.CreateConstInBoundsGEP1_64(b.getInt8Ty(), base, offset);
  std::vector<Value*> operands(P), results(node.num_outputs());
  for (size_t i = 0; i < P; ++i)
    operands[i] = entry.pointer(node.input(i));
  for (size_t i = 0; i < results.size(); ++i)
    results[i] = entry.pointer(node.output(i));

  llvm::AllocaInst* in = entry_alloca(b, llvm::ArrayType::get(ptr, std::max<size_t>(P, 1)), "in");
  llvm::AllocaInst* out =
      entry_alloca(b, llvm::ArrayType::get(ptr, std::max<size_t>(C + Y, 1)), "out");
  llvm::Type* frame_type = llvm::StructType::get(context, {ptr, ptr, ptr, ptr});
  llvm::AllocaInst* frame = entry_alloca(b, frame_type, "frame");
  b.CreateStore(in, b.CreateStructGEP(frame_type, frame, 0));
  b.CreateStore(out, b.CreateStructGEP(frame_type, frame, 1));
  b.CreateStore(body_workspace, b.CreateStructGEP(frame_type, frame, 2));
  b.CreateStore(entry.status(), b.CreateStructGEP(frame_type, frame, 3));
  auto slot = [&](llvm::AllocaInst* array, size_t i) {
    return b.CreateConstInBoundsGEP1_64(ptr, array, static_cast<uint64_t>(i));
  };
  for (size_t i = C + X; i < P; ++i)  // consts: the same buffers at every step
    b.CreateStore(operands[i], slot(in, i));
  auto row = [&](Value* stacked, Value* t, const ir::Value* step) {
    return b.CreateInBoundsGEP(b.getInt8Ty(), stacked, b.CreateMul(t, b.getInt64(bytes_of(step))));
  };
  const int64_t T = s.length;
  emit_for(b, T, [&](Value* i) {
    Value* t = s.reverse ? b.CreateSub(b.getInt64(T - 1), i) : i;
    Value* first = b.CreateICmpEQ(i, b.getInt64(0));
    Value* last = b.CreateICmpEQ(i, b.getInt64(T - 1));
    Value* odd = b.CreateICmpNE(b.CreateAnd(i, b.getInt64(1)), b.getInt64(0));
    for (size_t c = 0; c < C; ++c) {
      // Step i writes ping when i is even, pong when odd; step i + 1 reads it.
      Value* cur = b.CreateSelect(first, operands[c], b.CreateSelect(odd, ping[c], pong[c]));
      Value* next = b.CreateSelect(last, results[c], b.CreateSelect(odd, pong[c], ping[c]));
      b.CreateStore(cur, slot(in, c));
      b.CreateStore(next, slot(out, c));
      if (s.save_carries && bytes_of(node.input(c)) > 0) {
        b.CreateMemCpy(row(results[C + Y + c], t, node.input(c)), llvm::MaybeAlign(1), cur,
                       llvm::MaybeAlign(1), bytes_of(node.input(c)));
      }
    }
    for (size_t j = 0; j < X; ++j)
      b.CreateStore(row(operands[C + j], t, scan.body->param(C + j)), slot(in, C + j));
    for (size_t y = 0; y < Y; ++y)
      b.CreateStore(row(results[C + y], t, scan.body->outputs()[C + y]), slot(out, C + y));
    b.CreateCall(body_fn, {frame});
  });
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

namespace {

void emit_entry(llvm::Module& module, llvm::Function* fn, const ir::Function& function,
                const passes::KernelPlan& plan, const passes::MemoryPlan& memory,
                const VectorUnit& unit, const EntryNames& names, KernelSink* sink) {
  EntryEmitter entry(module, memory);
  entry.begin(fn);
  size_t kernel_nodes = 0;
  for (const passes::Kernel& kernel : plan.kernels)
    kernel_nodes += kernel.nodes.size();
  size_t next_base = names.base + plan.kernels.size();  // where the next scan body's kernels go
  for (size_t k = 0; k < plan.kernels.size(); ++k) {
    const passes::Kernel& kernel = plan.kernels[k];
    if (passes::is_view_in_place(kernel, memory)) continue;  // a reshape that moves no bytes
    const std::string label = names.prefix + kernel_label(k, kernel);
    try {
      if (kernel.scan) {
        EntryNames body{fmt::format("{}scan{}.", names.prefix, k), next_base};
        next_base += passes::number_kernels(kernel.scan->kernels).size();
        emit_scan(module, entry, k, kernel, memory, unit, body);
        continue;
      }
      const std::string kernel_name = fmt::format("{}kernel{}", names.prefix, k);
      llvm::Function* kernel_fn = nullptr;
      if (sink != nullptr && !sink->parts.empty()) {
        // Split: defined in a part (KernelSink::place), declared here.
        const size_t part = sink->place(kernel);
        llvm::Function* defined = emit_kernel(*sink->parts[part], kernel_name, kernel,
                                              kernel_buffers(kernel, memory), unit);
        defined->setLinkage(llvm::GlobalValue::ExternalLinkage);
        verify(*defined, label);
        llvm::Type* ptr = llvm::PointerType::get(module.getContext(), 0);
        std::vector<llvm::Type*> params(kernel.inputs.size() + kernel.outputs.size(), ptr);
        kernel_fn = llvm::Function::Create(
            llvm::FunctionType::get(llvm::Type::getVoidTy(module.getContext()), params, false),
            llvm::GlobalValue::ExternalLinkage, kernel_name, module);
      } else {
        kernel_fn = emit_kernel(module, kernel_name, kernel, kernel_buffers(kernel, memory), unit);
        // Many kernels stay calls: inlined, they would make the entry one huge function, on
        // which LLVM's loop passes take time quadratic in its size (a 100,000-node chain took
        // minutes).
        if (kernel_nodes > kMaxInlinedNodes) kernel_fn->addFnAttr(llvm::Attribute::NoInline);
        verify(*kernel_fn, label);
      }
      std::vector<Value*> args;
      for (const ir::Value* v : kernel.inputs)
        args.push_back(entry.pointer(v));
      for (const ir::Value* v : kernel.outputs)
        args.push_back(entry.pointer(v));
      // Gather indices are checked before the kernel runs (codegen/index_check.h).
      emit_index_checks(
          entry.builder(), names.base + k, kernel,
          [&](const ir::Value* v) { return entry.pointer(v); }, entry.status());
      entry.builder().CreateCall(kernel_fn, args);
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
  verify(*fn, names.prefix.empty() ? std::string(kEntryName) : names.prefix + "body");
}

}  // namespace

void verify_module(const llvm::Module& module, const std::string& name) {
  std::string message;
  llvm::raw_string_ostream os(message);
  if (llvm::verifyModule(module, &os))
    throw CompileError(fmt::format("{}: LLVM rejected the module: {}", name, os.str()));
}

namespace {

// Every GEMM helper the kernels of `plan` (scan bodies' included) call, with one kernel that
// calls it.
void collect_gemm_helpers(const passes::KernelPlan& plan, const VectorUnit& unit,
                          std::map<std::string, const passes::Kernel*>& helpers) {
  for (const passes::Kernel& kernel : plan.kernels) {
    if (kernel.scan) collect_gemm_helpers(kernel.scan->kernels, unit, helpers);
    if (!gemm_handles(kernel)) continue;
    for (const std::string& name : gemm_helpers(kernel, unit))
      helpers.emplace(name, &kernel);
  }
}

// The helpers' definitions in `module` become external declarations.
void declare_helpers(llvm::Module& module,
                     const std::map<std::string, const passes::Kernel*>& helpers) {
  for (llvm::Function& fn : module.functions())
    if (!fn.isDeclaration() && helpers.contains(fn.getName().str())) make_external_declaration(fn);
}

}  // namespace

SplitModules build_split_modules(std::span<llvm::LLVMContext* const> contexts,
                                 const ir::Function& function, const passes::KernelPlan& plan,
                                 const passes::MemoryPlan& memory, const VectorUnit& unit) {
  KILN_CHECK(!contexts.empty(), "build_split_modules needs a context for the entry");
  SplitModules out;
  out.entry = std::make_unique<llvm::Module>(function.name(), *contexts[0]);
  KernelSink sink;
  for (size_t i = 1; i < contexts.size(); ++i) {
    out.parts.push_back(
        std::make_unique<llvm::Module>(fmt::format("{}.part{}", function.name(), i), *contexts[i]));
    sink.parts.push_back(out.parts.back().get());
    sink.load.push_back(0);
  }
  llvm::Function* entry_fn =
      new_frame_function(*out.entry, kEntryName, llvm::Function::ExternalLinkage);
  emit_entry(*out.entry, entry_fn, function, plan, memory, unit, {}, &sink);
  collect_gemm_helpers(plan, unit, out.helpers);
  declare_helpers(*out.entry, out.helpers);
  for (const auto& part : out.parts)
    declare_helpers(*part, out.helpers);
  verify_module(*out.entry, function.name());
  for (const auto& part : out.parts)
    verify_module(*part, function.name());
  return out;
}

std::unique_ptr<llvm::Module> build_module(llvm::LLVMContext& context, const ir::Function& function,
                                           const passes::KernelPlan& plan,
                                           const passes::MemoryPlan& memory,
                                           const VectorUnit& unit) {
  auto module = std::make_unique<llvm::Module>(function.name(), context);
  llvm::Function* entry_fn =
      new_frame_function(*module, kEntryName, llvm::Function::ExternalLinkage);
  emit_entry(*module, entry_fn, function, plan, memory, unit, {});
  verify_module(*module, function.name());
  return module;
}

}  // namespace kiln::codegen
