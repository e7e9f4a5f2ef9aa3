// Internal: lowers a planned ir::Function to one LLVM module: a function per kernel and the
// `kiln_entry(const kiln_frame*)` that calls them in plan order (DESIGN.md, "Codegen"); or to
// several, for compiling on several threads (build_split_modules).
#pragma once

#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>

#include "kiln/codegen/llvm_util.h"
#include "kiln/ir/function.h"
#include "kiln/passes/kernel_plan.h"

namespace kiln::codegen {

// The symbol every compiled module exports.
inline constexpr const char* kEntryName = "kiln_entry";

// Builds and verifies the module for a target with vector registers `unit`. Throws
// CompileError naming the kernel that failed.
std::unique_ptr<llvm::Module> build_module(llvm::LLVMContext& context, const ir::Function& function,
                                           const passes::KernelPlan& plan,
                                           const passes::MemoryPlan& memory,
                                           const VectorUnit& unit);

// The same code as build_module's, split for compiling on several threads: `entry` (in
// contexts[0]) holds kiln_entry, scan bodies and the kernels inside them, and declares the other
// kernels, which are spread over `parts` (part i in contexts[i + 1], one part per remaining
// context, balanced by an estimate of each kernel's compile cost; a part may be empty). Each
// module is verified; the kernels are external symbols, so the objects link into one image.
// The GEMM helpers (gemm_helpers: part bodies and micro-kernels) are only declared in those
// modules; `helpers` names each with a kernel that calls it, for compiling each helper on its
// own (emit_gemm_helper), once however many kernels call it.
struct SplitModules {
  std::unique_ptr<llvm::Module> entry;
  std::vector<std::unique_ptr<llvm::Module>> parts;
  std::map<std::string, const passes::Kernel*> helpers;
};
SplitModules build_split_modules(std::span<llvm::LLVMContext* const> contexts,
                                 const ir::Function& function, const passes::KernelPlan& plan,
                                 const passes::MemoryPlan& memory, const VectorUnit& unit);

// Throws CompileError, naming `name`, when LLVM's verifier rejects `module`.
void verify_module(const llvm::Module& module, const std::string& name);

// A constant node's value as a private, 64-byte aligned global of `module`, which kernels read
// in place of a buffer (NVPTX moves it to the GPU's global memory).
llvm::GlobalVariable* constant_global(llvm::Module& module, const ir::Value* value);

// "kernel 2 (loop: mul, add)" for error messages.
std::string kernel_label(size_t index, const passes::Kernel& kernel);

}  // namespace kiln::codegen
