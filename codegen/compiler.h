// LLVM CPU code generation: a planned ir::Function becomes an LLVM module (one function per
// kernel plus `kiln_entry`), JIT-compiled for the host CPU or written to an object file.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/ir/function.h"
#include "kiln/passes/kernel_plan.h"
#include "kiln/runtime/kiln_rt.h"

namespace llvm {
class LLVMContext;
class Module;
}  // namespace llvm

namespace kiln::runtime {
class DiskCache;
}  // namespace kiln::runtime

namespace kiln::codegen {

struct VectorUnit;

// The LLVM passes a module gets (with CodegenOptions::opt_level >= 1; 0 runs none).
enum class LlvmPipeline {
  standard,  // the default pipeline at CodegenOptions::opt_level
  // A short function pipeline: SROA, CSE, instcombine, CFG simplification, LICM and the loop
  // vectorizer, at about a third of the standard pipeline's compile time. For code its builder
  // vectorized (the GEMM, whose code comes out as fast or faster) and for kernels so small that
  // their call, not their loop, is their cost (eager kernels, docs/eager.md).
  light,
  // The light pipeline and the loop unroller, for the unroll counts the code asks for: GEMM
  // micro-kernels, whose machine code it makes the same as the standard pipeline's, in a quarter
  // of the time.
  unrolled_light,
};

struct CodegenOptions {
  int opt_level = 2;  // 0..3, the LLVM new-pass-manager pipeline level
  // The CPU to generate code for: "native" (the host, with every feature it has) or an LLVM
  // x86 CPU name such as "x86-64-v3" (AVX2 and FMA, no AVX-512), "x86-64-v4" or "znver4".
  // The JIT always compiles for the host.
  std::string target_cpu = "native";
};

// What an object file holds besides the code.
struct ObjectOptions {
  // The entry's symbol; an ahead-of-time library names it after itself, so that two libraries
  // loaded into one process do not collide.
  std::string entry_name = "kiln_entry";
  // Gives the entry hidden visibility (an AOT library exports only its C API).
  bool hide_entry = false;
  // Read-only data: each `symbol` becomes a hidden, 64-byte aligned array of `bytes`.
  struct Data {
    std::string symbol;
    std::string_view bytes;
  };
  std::vector<Data> data;
};

// A JIT-compiled function: keeps the machine code it calls alive. Made by compile_jit (which
// gives it an LLJIT of its own) or KernelJit::compile (whose JIT it shares with other modules;
// its code is removed from that JIT when it is destroyed).
class CompiledModule {
 public:
  // `code` keeps the machine code alive (and frees it when the last owner goes).
  CompiledModule(std::shared_ptr<void> code, kiln_entry_fn entry, int64_t workspace_bytes,
                 std::string llvm_ir);
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
  std::shared_ptr<void> code_;
  kiln_entry_fn entry_;
  int64_t workspace_bytes_;
  std::string llvm_ir_;
};

// Compiles `function` as partitioned by `plan` and laid out by `memory` for the host CPU.
// Throws CompileError (naming the kernel) if an op cannot be emitted or LLVM fails.
//
// With a `cache` (runtime/disk_cache.h; frontend compile() passes the process's), the machine
// code goes through it: the key names the function's IR and plans, the host CPU and its
// features, the options and Kiln's build (cpu_cache_key), so a hit is the code this compile
// would make; the payload is the object files and the workspace size. A hit skips LLVM
// entirely (its llvm_ir() is empty); an entry that does not load is discarded with a warning
// and compiled again.
//
// A function of several kernels is compiled on several threads (one per core, at most one per
// two kernels; KILN_COMPILE_THREADS=N overrides, 1 compiles one module): its kernels are spread
// over modules of their own (build_split_modules), each optimized and emitted on a thread, and
// the objects linked into one JIT. Kernels then stay calls from the entry instead of being
// inlined into it, which changes nothing they compute.
std::unique_ptr<CompiledModule> compile_jit(const ir::Function& function,
                                            const passes::KernelPlan& plan,
                                            const passes::MemoryPlan& memory,
                                            const CodegenOptions& options = {},
                                            runtime::DiskCache* cache = nullptr);

// The version of cpu_cache_key's fields and of the payload's format; part of every key.
inline constexpr int kCpuCacheFormat = 2;
// The cache key of compile_jit's module for the host CPU.
std::string cpu_cache_key(const ir::Function& function, const passes::KernelPlan& plan,
                          const passes::MemoryPlan& memory, const CodegenOptions& options);

// One JIT for many small modules compiled one at a time (the kernels eager ops run): the LLJIT
// and the target machine are made once, instead of per module as compile_jit does, and each
// module's code is freed when its CompiledModule is destroyed. Modules compiled here keep no
// LLVM IR text (llvm_ir() is empty). Thread-safe; compiles are serialized.
class KernelJit {
 public:
  explicit KernelJit(const CodegenOptions& options = {});
  ~KernelJit();
  KernelJit(const KernelJit&) = delete;
  KernelJit& operator=(const KernelJit&) = delete;

  // Compiles like compile_jit; throws CompileError the same way.
  std::unique_ptr<CompiledModule> compile(const ir::Function& function,
                                          const passes::KernelPlan& plan,
                                          const passes::MemoryPlan& memory,
                                          LlvmPipeline pipeline = LlvmPipeline::standard);

  // The vector registers of the host, which this JIT compiles for.
  VectorUnit vector_unit() const;

  // A function built by hand: `build` fills in an empty module (for the host's vector
  // registers), which is optimized and compiled; returns the address of its function `symbol`
  // and the handle that keeps the code alive (generic_gemm.cpp).
  struct Symbol {
    std::shared_ptr<void> code;
    void* address = nullptr;
  };
  Symbol compile_module(const std::string& name,
                        const std::function<void(llvm::Module&, const VectorUnit&)>& build,
                        const std::string& symbol, LlvmPipeline pipeline = LlvmPipeline::standard);

 private:
  // Adds `module` (built in `context`) under its own names and returns `symbol`'s address;
  // the caller holds the lock.
  Symbol add(std::unique_ptr<llvm::LLVMContext> context, std::unique_ptr<llvm::Module> module,
             const std::string& name, const std::string& symbol);

  struct State;
  std::unique_ptr<State> state_;
};

// Writes the same module, optimized for options.target_cpu, as an ELF object file at `path`
// (written to a temporary name, then renamed). Throws CompileError (an unknown CPU included) or
// IOError.
void emit_object_file(const ir::Function& function, const passes::KernelPlan& plan,
                      const passes::MemoryPlan& memory, const std::string& path,
                      const CodegenOptions& options = {}, const ObjectOptions& object = {});

}  // namespace kiln::codegen
