// compile_gpu: the GPU-mode module for NVPTX, its math calls bound to CUDA's libdevice, optimized
// and printed as PTX once per architecture.
#include <filesystem>
#include <map>
#include <mutex>
#include <set>

#include <llvm/IR/Instructions.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Verifier.h>
#include <llvm/IRReader/IRReader.h>
#include <llvm/Linker/Linker.h>
#include <llvm/MC/MCSubtargetInfo.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/SourceMgr.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/Transforms/Utils/Cloning.h>

#include <fmt/format.h>

#include "kiln/codegen/gpu_module.h"
#include "kiln/ir/error.h"

extern "C" {
void LLVMInitializeNVPTXTargetInfo();
void LLVMInitializeNVPTXTarget();
void LLVMInitializeNVPTXTargetMC();
void LLVMInitializeNVPTXAsmPrinter();
}

namespace kiln::codegen {

namespace {

constexpr const char* kTriple = "nvptx64-nvidia-cuda";

const llvm::Target& nvptx_target() {
  static std::once_flag once;
  std::call_once(once, [] {
    LLVMInitializeNVPTXTargetInfo();
    LLVMInitializeNVPTXTarget();
    LLVMInitializeNVPTXTargetMC();
    LLVMInitializeNVPTXAsmPrinter();
  });
  std::string error;
  const llvm::Target* target = llvm::TargetRegistry::lookupTarget(kTriple, error);
  if (target == nullptr) throw CompileError(fmt::format("no LLVM NVPTX target: {}", error));
  return *target;
}

// "sm_80, sm_90" → {"sm_80", "sm_90"}, each checked against what LLVM knows.
std::vector<std::string> parse_archs(const std::string& list) {
  const llvm::Target& target = nvptx_target();
  std::unique_ptr<llvm::MCSubtargetInfo> info(target.createMCSubtargetInfo(kTriple, "", ""));
  std::vector<std::string> archs = split_gpu_archs(list);
  for (const std::string& arch : archs) {
    if (!info || !info->isCPUStringValid(arch)) {
      throw CompileError(fmt::format(
          "unknown GPU architecture '{}': LLVM 19 emits PTX for sm_30 ... sm_90a (e.g. sm_80, "
          "sm_90); for a newer GPU use sm_90, whose PTX its driver compiles",
          arch));
    }
  }
  if (archs.empty()) throw CompileError(fmt::format("no GPU architecture in '{}'", list));
  return archs;
}

std::unique_ptr<llvm::TargetMachine> nvptx_machine(const std::string& arch, int opt_level) {
  llvm::TargetOptions options;  // IEEE floats: no fast math, no flush to zero
  llvm::CodeGenOptLevel level = opt_level <= 0   ? llvm::CodeGenOptLevel::None
                                : opt_level == 1 ? llvm::CodeGenOptLevel::Less
                                : opt_level == 2 ? llvm::CodeGenOptLevel::Default
                                                 : llvm::CodeGenOptLevel::Aggressive;
  std::unique_ptr<llvm::TargetMachine> machine(nvptx_target().createTargetMachine(
      kTriple, arch, "", options, std::nullopt, std::nullopt, level));
  if (!machine) throw CompileError(fmt::format("cannot create an NVPTX target for {}", arch));
  return machine;
}

// libdevice's function for what `call` computes ("__nv_expf" for llvm.exp.f32 or expf), or ""
// when it calls no math function. The CPU's code calls LLVM's math intrinsics and libm, which
// NVPTX has no instructions for (only sqrt, fabs, floor, min/max and the like).
std::string libdevice_name(const llvm::CallInst& call) {
  const llvm::Function* callee = call.getCalledFunction();
  if (callee == nullptr) return "";
  if (!callee->isIntrinsic()) {
    return callee->isDeclaration() ? "__nv_" + callee->getName().str() : std::string();
  }
  const char* base = nullptr;
  switch (callee->getIntrinsicID()) {
    case llvm::Intrinsic::exp:
      base = "exp";
      break;
    case llvm::Intrinsic::exp2:
      base = "exp2";
      break;
    case llvm::Intrinsic::exp10:
      base = "exp10";
      break;
    case llvm::Intrinsic::log:
      base = "log";
      break;
    case llvm::Intrinsic::log2:
      base = "log2";
      break;
    case llvm::Intrinsic::log10:
      base = "log10";
      break;
    case llvm::Intrinsic::sin:
      base = "sin";
      break;
    case llvm::Intrinsic::cos:
      base = "cos";
      break;
    case llvm::Intrinsic::pow:
      base = "pow";
      break;
    default:
      return "";
  }
  if (!call.getType()->isFloatTy() && !call.getType()->isDoubleTy()) return "";
  return fmt::format("__nv_{}{}", base, call.getType()->isFloatTy() ? "f" : "");
}

// Points every math call at libdevice's function; returns each function needed with the label
// of a kernel that needs it and the name the CPU's code used, for error messages.
struct Needed {
  std::string label;
  std::string cpu_name;
};
std::map<std::string, Needed> bind_math_to_libdevice(llvm::Module& module,
                                                     const GpuKernels& kernels) {
  std::map<std::string, Needed> needed;
  for (llvm::Function& fn : module) {
    for (llvm::BasicBlock& block : fn) {
      for (llvm::Instruction& inst : block) {
        auto* call = llvm::dyn_cast<llvm::CallInst>(&inst);
        if (call == nullptr) continue;
        const std::string name = libdevice_name(*call);
        if (name.empty()) continue;
        auto label = kernels.labels.find(&fn);
        needed.emplace(name,
                       Needed{label == kernels.labels.end() ? fn.getName().str() : label->second,
                              call->getCalledFunction()->getName().str()});
        call->setCalledFunction(module.getOrInsertFunction(name, call->getFunctionType()));
      }
    }
  }
  std::vector<llvm::Function*> unused;
  for (llvm::Function& fn : module) {
    if (fn.isDeclaration() && fn.use_empty()) unused.push_back(&fn);
  }
  for (llvm::Function* fn : unused)
    fn->eraseFromParent();
  return needed;
}

void link_libdevice(llvm::Module& module, const std::map<std::string, Needed>& needed,
                    const std::string& path) {
  if (needed.empty()) return;
  const auto& [name, first] = *needed.begin();
  std::error_code ec;
  if (path.empty() || !std::filesystem::is_regular_file(path, ec)) {
    throw CompileError(fmt::format(
        "{}: {} on the GPU needs CUDA's libdevice ({}), {}; install the CUDA toolkit or set "
        "GpuOptions::libdevice",
        first.label, first.cpu_name, name,
        path.empty() ? "and none was given (Kiln was built without the CUDA toolkit, or "
                       "GpuOptions::libdevice is empty)"
                     : fmt::format("which is not at {}", path)));
  }
  llvm::SMDiagnostic diagnostic;
  std::unique_ptr<llvm::Module> library =
      llvm::getLazyIRFileModule(path, diagnostic, module.getContext());
  if (!library) {
    std::string message;
    llvm::raw_string_ostream os(message);
    diagnostic.print("libdevice", os);
    throw CompileError(fmt::format("cannot read libdevice at {}: {}", path, os.str()));
  }
  library->setTargetTriple(module.getTargetTriple());
  library->setDataLayout(module.getDataLayout());
  if (llvm::Linker::linkModules(module, std::move(library), llvm::Linker::LinkOnlyNeeded))
    throw CompileError(fmt::format("cannot link libdevice from {}", path));
  for (const auto& [fn_name, need] : needed) {
    const llvm::Function* fn = module.getFunction(fn_name);
    if (fn == nullptr || fn->isDeclaration()) {
      throw CompileError(fmt::format("{}: {} has no GPU version (libdevice has no {})", need.label,
                                     need.cpu_name, fn_name));
    }
  }
}

void optimize(llvm::Module& module, llvm::TargetMachine& machine, int opt_level) {
  if (opt_level <= 0) return;
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  // NVPTX's pass builder callbacks add NVVMReflect, which folds libdevice's __nvvm_reflect.
  llvm::PassBuilder builder(&machine);
  builder.registerModuleAnalyses(mam);
  builder.registerCGSCCAnalyses(cgam);
  builder.registerFunctionAnalyses(fam);
  builder.registerLoopAnalyses(lam);
  builder.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::OptimizationLevel level = opt_level == 1   ? llvm::OptimizationLevel::O1
                                  : opt_level == 2 ? llvm::OptimizationLevel::O2
                                                   : llvm::OptimizationLevel::O3;
  builder.buildPerModuleDefaultPipeline(level).run(module, mam);
}

// The GPU-mode module of `function`, math bound to libdevice, verified and optimized for the
// NVPTX target of `machine` (the first architecture asked for: the middle end's choices do not
// depend on the architecture, so every architecture's PTX is emitted from this one module).
std::unique_ptr<llvm::Module> optimized_module(
    const ir::Function& function, const passes::KernelPlan& plan, const passes::MemoryPlan& memory,
    const GpuOptions& options, llvm::TargetMachine& machine, llvm::LLVMContext& context,
    std::vector<GpuLaunch>& launches, int64_t& workspace_bytes) {
  auto module = std::make_unique<llvm::Module>(function.name(), context);
  module->setTargetTriple(kTriple);
  module->setDataLayout(machine.createDataLayout());
  GpuKernels kernels = build_gpu_module(*module, function, plan, memory, GpuTarget::nvptx, options);
  // Generated loops want the CPU's widest vectors; a GPU thread runs scalar code.
  for (llvm::Function& fn : *module)
    fn.removeFnAttr("prefer-vector-width");
  std::map<std::string, Needed> needed = bind_math_to_libdevice(*module, kernels);
  link_libdevice(*module, needed, options.libdevice);
  // Only the kernels stay visible: libdevice's functions are inlined or dropped.
  for (llvm::Function& fn : *module) {
    if (!fn.isDeclaration() && fn.getCallingConv() != llvm::CallingConv::PTX_Kernel)
      fn.setLinkage(llvm::GlobalValue::InternalLinkage);
  }
  for (llvm::GlobalVariable& global : module->globals()) {
    if (!global.isDeclaration()) global.setLinkage(llvm::GlobalValue::InternalLinkage);
  }
  // Denormals kept, as on the CPU: libdevice's __nvvm_reflect("__CUDA_FTZ") reads this flag.
  module->addModuleFlag(llvm::Module::Override, "nvvm-reflect-ftz", uint32_t{0});
  std::string message;
  llvm::raw_string_ostream os(message);
  if (llvm::verifyModule(*module, &os)) {
    throw CompileError(
        fmt::format("{}: LLVM rejected the GPU module: {}", function.name(), os.str()));
  }
  optimize(*module, machine, options.opt_level);
  for (const llvm::Function& fn : *module) {
    // (__nvvm_reflect, which libdevice calls, is folded by NVPTX's own passes at -O0 too.)
    if (fn.isDeclaration() && !fn.isIntrinsic() && !fn.use_empty() &&
        fn.getName() != "__nvvm_reflect") {
      throw CompileError(fmt::format("{}: the GPU module calls {}, which has no GPU version",
                                     function.name(), fn.getName().str()));
    }
  }
  launches = std::move(kernels.launches);
  workspace_bytes = kernels.workspace_bytes;
  return module;
}

// `module`'s PTX for the architecture of `machine`.
std::string emit_ptx(llvm::Module& module, llvm::TargetMachine& machine, const std::string& arch) {
  llvm::SmallString<0> ptx;
  llvm::raw_svector_ostream out(ptx);
  llvm::legacy::PassManager passes;
  if (machine.addPassesToEmitFile(passes, out, nullptr, llvm::CodeGenFileType::AssemblyFile))
    throw CompileError(fmt::format("the NVPTX target cannot emit PTX for {}", arch));
  passes.run(module);
  return std::string(ptx.str());
}

}  // namespace

std::string GpuOptions::default_libdevice_path() {
#ifdef KILN_CUDA_LIBDEVICE
  return KILN_CUDA_LIBDEVICE;
#else
  return "";
#endif
}

std::vector<GpuLaunch> gpu_launch_plan(const ir::Function& function, const passes::KernelPlan& plan,
                                       const passes::MemoryPlan& memory,
                                       const GpuOptions& options) {
  llvm::LLVMContext context;
  llvm::Module module(function.name(), context);
  module.setTargetTriple(kTriple);
  return build_gpu_module(module, function, plan, memory, GpuTarget::nvptx, options).launches;
}

GpuModule compile_gpu(const ir::Function& function, const passes::KernelPlan& plan,
                      const passes::MemoryPlan& memory, const GpuOptions& options) {
  GpuModule result;
  result.workspace_bytes = memory.workspace_bytes;
  const std::vector<std::string> archs = parse_archs(options.gpu_arch);
  llvm::LLVMContext context;
  std::unique_ptr<llvm::Module> module;
  for (size_t i = 0; i < archs.size(); ++i) {
    std::unique_ptr<llvm::TargetMachine> machine = nvptx_machine(archs[i], options.opt_level);
    if (i == 0) {
      module = optimized_module(function, plan, memory, options, *machine, context, result.launches,
                                result.workspace_bytes);
    }
    // Code generation changes the module it runs on: every architecture but the last gets a
    // copy.
    std::unique_ptr<llvm::Module> copy;
    if (i + 1 < archs.size()) copy = llvm::CloneModule(*module);
    result.ptx.push_back({archs[i], emit_ptx(copy ? *copy : *module, *machine, archs[i])});
  }
  return result;
}

}  // namespace kiln::codegen
