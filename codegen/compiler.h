// LLVM CPU code generation: a planned ir::Function becomes one LLVM module (one function per
// kernel plus `kiln_entry`), JIT-compiled for the host CPU or written to an object file.
#pragma once

#include <memory>
#include <string>

#include "kiln/ir/function.h"
#include "kiln/passes/kernel_plan.h"
#include "kiln/runtime/kiln_rt.h"

namespace llvm::orc {
class LLJIT;
}

namespace kiln::codegen {

struct CodegenOptions {
  int opt_level = 2;  // 0..3, the LLVM new-pass-manager pipeline level
};

// A JIT-compiled function: owns the LLJIT instance that holds its machine code.
class CompiledModule {
 public:
  CompiledModule(std::unique_ptr<llvm::orc::LLJIT> jit, kiln_entry_fn entry,
                 int64_t workspace_bytes, std::string llvm_ir);
  ~CompiledModule();
  CompiledModule(const CompiledModule&) = delete;
  CompiledModule& operator=(const CompiledModule&) = delete;

  // The entry point: call with a frame whose buffers match the function's signature.
  kiln_entry_fn entry() const { return entry_; }
  // Bytes the caller must provide as frame->workspace (64-byte aligned).
  int64_t workspace_bytes() const { return workspace_bytes_; }
  // The optimized module as LLVM IR text, for debugging.
  const std::string& llvm_ir() const { return llvm_ir_; }

 private:
  std::unique_ptr<llvm::orc::LLJIT> jit_;
  kiln_entry_fn entry_;
  int64_t workspace_bytes_;
  std::string llvm_ir_;
};

// Compiles `function` as partitioned by `plan` and laid out by `memory` for the host CPU.
// Throws CompileError (naming the kernel) if an op cannot be emitted or LLVM fails.
std::unique_ptr<CompiledModule> compile_jit(const ir::Function& function,
                                            const passes::KernelPlan& plan,
                                            const passes::MemoryPlan& memory,
                                            const CodegenOptions& options = {});

// Writes the same module, optimized for the host CPU, as an ELF object file at `path`
// (written to a temporary name, then renamed). Throws CompileError or IOError.
void emit_object_file(const ir::Function& function, const passes::KernelPlan& plan,
                      const passes::MemoryPlan& memory, const std::string& path,
                      const CodegenOptions& options = {});

// Whether every op of `function` can be emitted yet; if not, `why` (when given) says which.
bool supports(const ir::Function& function, std::string* why = nullptr);

}  // namespace kiln::codegen
