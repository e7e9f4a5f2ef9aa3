#include "kiln/codegen/compiler.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include <unistd.h>

#include <llvm/ExecutionEngine/JITLink/JITLink.h>
#include <llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/ExecutionEngine/Orc/ObjectLinkingLayer.h>
#include <llvm/ExecutionEngine/Orc/ThreadSafeModule.h>
#include <llvm/IR/Constants.h>
#include <llvm/IR/GlobalVariable.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Verifier.h>
#include <llvm/MC/MCSubtargetInfo.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/FileSystem.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "kiln/codegen/cache_key.h"
#include "kiln/codegen/gemm.h"
#include "kiln/codegen/helper_objects.h"
#include "kiln/codegen/module_builder.h"
#include "kiln/ir/error.h"
#include "kiln/runtime/atomic_write.h"
#include "kiln/runtime/disk_cache.h"

namespace kiln::codegen {

namespace {

void init_llvm() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
}

std::string error_text(llvm::Error error) {
  return llvm::toString(std::move(error));
}

template <class T>
T unwrap(llvm::Expected<T> value, const std::string& what) {
  if (!value) throw CompileError(fmt::format("{}: {}", what, error_text(value.takeError())));
  return std::move(*value);
}

llvm::CodeGenOptLevel codegen_level(int opt_level) {
  switch (opt_level) {
    case 0:
      return llvm::CodeGenOptLevel::None;
    case 1:
      return llvm::CodeGenOptLevel::Less;
    case 3:
      return llvm::CodeGenOptLevel::Aggressive;
    default:
      return llvm::CodeGenOptLevel::Default;
  }
}

// The host CPU's name and features (AVX-512 on Zen 5), or the named CPU with its own features;
// position-independent code either way.
llvm::orc::JITTargetMachineBuilder target_machine(const CodegenOptions& options) {
  init_llvm();
  auto builder = unwrap(llvm::orc::JITTargetMachineBuilder::detectHost(), "detecting the host CPU");
  if (options.target_cpu != "native") {
    const llvm::Triple& triple = builder.getTargetTriple();
    std::string error;
    const llvm::Target* target = llvm::TargetRegistry::lookupTarget(triple.str(), error);
    if (target == nullptr)
      throw CompileError(fmt::format("no LLVM target for {}: {}", triple.str(), error));
    std::unique_ptr<llvm::MCSubtargetInfo> info(
        target->createMCSubtargetInfo(triple.str(), "", ""));
    if (options.target_cpu.empty() || !info || !info->isCPUStringValid(options.target_cpu)) {
      throw CompileError(fmt::format(
          "unknown target CPU '{}' for {}; use native, or an LLVM CPU name such as x86-64-v3, "
          "x86-64-v4 or znver4",
          options.target_cpu, triple.getArchName().str()));
    }
    builder = llvm::orc::JITTargetMachineBuilder(triple);
    builder.setCPU(options.target_cpu);
  }
  builder.setCodeGenOptLevel(codegen_level(options.opt_level));
  builder.setRelocationModel(llvm::Reloc::PIC_);
  return builder;
}

llvm::orc::JITTargetMachineBuilder host_machine(const CodegenOptions& options) {
  CodegenOptions host = options;
  host.target_cpu = "native";
  return target_machine(host);
}

// The vector registers `machine` generates code for.
VectorUnit vector_unit(const llvm::TargetMachine& machine) {
  if (!machine.getTargetTriple().isX86()) return {16, 16};  // feature names below are x86's
  const llvm::MCSubtargetInfo* info = machine.getMCSubtargetInfo();
  if (info->checkFeatures("+avx512f")) return {64, 32};
  if (info->checkFeatures("+avx2,+fma")) return {32, 16};
  return {16, 16};
}

// LlvmPipeline::light, as the pass builder spells it.
// instcombine says no-verify-fixpoint as the default pipelines do: spelled bare, LLVM 19 aborts
// the process when one run does not reach its fixpoint.
constexpr const char* kLightPipeline =
    "function(sroa,early-cse,instcombine<no-verify-fixpoint>,simplifycfg,loop-mssa(licm),"
    "loop-vectorize,instcombine<no-verify-fixpoint>,simplifycfg)";
// LlvmPipeline::unrolled_light: the same with the loop unroller, for unroll counts the code asks
// for.
constexpr const char* kUnrolledLightPipeline =
    "function(sroa,early-cse,instcombine<no-verify-fixpoint>,simplifycfg,loop-mssa(licm),"
    "loop-vectorize,loop-unroll<O2>,instcombine<no-verify-fixpoint>,simplifycfg)";

// Runs the new pass manager's default pipeline at `opt_level` (or the light one), tuned for
// `machine`.
void optimize(llvm::Module& module, llvm::TargetMachine& machine, int opt_level,
              LlvmPipeline pipeline) {
  if (opt_level <= 0) return;
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PipelineTuningOptions tuning;
  tuning.LoopVectorization = true;
  tuning.SLPVectorization = true;
  llvm::PassBuilder builder(&machine, tuning);
  builder.registerModuleAnalyses(mam);
  builder.registerCGSCCAnalyses(cgam);
  builder.registerFunctionAnalyses(fam);
  builder.registerLoopAnalyses(lam);
  builder.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::OptimizationLevel level = opt_level == 1   ? llvm::OptimizationLevel::O1
                                  : opt_level == 3 ? llvm::OptimizationLevel::O3
                                                   : llvm::OptimizationLevel::O2;
  if (pipeline != LlvmPipeline::standard) {
    llvm::ModulePassManager light;
    const char* text = pipeline == LlvmPipeline::light ? kLightPipeline : kUnrolledLightPipeline;
    if (llvm::Error error = builder.parsePassPipeline(light, text))
      throw CompileError(fmt::format("the light LLVM pipeline: {}", error_text(std::move(error))));
    light.run(module, mam);
    return;
  }
  builder.buildPerModuleDefaultPipeline(level).run(module, mam);
}

// The module for `function`, built, verified and optimized for `machine`.
std::unique_ptr<llvm::Module> lower(llvm::LLVMContext& context, llvm::TargetMachine& machine,
                                    const ir::Function& function, const passes::KernelPlan& plan,
                                    const passes::MemoryPlan& memory, const CodegenOptions& options,
                                    LlvmPipeline pipeline = LlvmPipeline::standard) {
  std::unique_ptr<llvm::Module> module =
      build_module(context, function, plan, memory, vector_unit(machine));
  module->setDataLayout(machine.createDataLayout());
  module->setTargetTriple(machine.getTargetTriple().str());
  optimize(*module, machine, options.opt_level, pipeline);
  return module;
}

// With KILN_PERF_MAP=1 in the environment, every function the JIT links is appended to
// /tmp/perf-<pid>.map, the file `perf report` reads to name JIT-compiled code, so a profile of a
// compiled step shows its kernels by name.
llvm::Error append_to_perf_map(llvm::jitlink::LinkGraph& graph) {
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  const std::string path = fmt::format("/tmp/perf-{}.map", getpid());
  if (std::FILE* file = std::fopen(path.c_str(), "a")) {
    for (llvm::jitlink::Symbol* symbol : graph.defined_symbols()) {
      const auto protection = symbol->getBlock().getSection().getMemProt();
      const bool executable = (static_cast<unsigned>(protection) &
                               static_cast<unsigned>(llvm::orc::MemProt::Exec)) != 0;
      if (!symbol->hasName() || !executable) continue;
      fmt::print(file, "{:x} {:x} {}\n", symbol->getAddress().getValue(), symbol->getSize(),
                 std::string_view(symbol->getName()));
    }
    std::fclose(file);
  }
  return llvm::Error::success();
}

class PerfMapPlugin : public llvm::orc::ObjectLinkingLayer::Plugin {
 public:
  void modifyPassConfig(llvm::orc::MaterializationResponsibility&, llvm::jitlink::LinkGraph&,
                        llvm::jitlink::PassConfiguration& config) override {
    config.PostFixupPasses.push_back(append_to_perf_map);
  }
  llvm::Error notifyFailed(llvm::orc::MaterializationResponsibility&) override {
    return llvm::Error::success();
  }
  llvm::Error notifyRemovingResources(llvm::orc::JITDylib&, llvm::orc::ResourceKey) override {
    return llvm::Error::success();
  }
  void notifyTransferringResources(llvm::orc::JITDylib&, llvm::orc::ResourceKey,
                                   llvm::orc::ResourceKey) override {}
};

bool perf_map_enabled() {
  const char* perf_map = std::getenv("KILN_PERF_MAP");
  return perf_map && std::string_view(perf_map) == "1";
}

// JITLink names no local symbols, so for the perf map the module's internal functions become
// hidden external ones: the same code, with names. (Names are unique across the modules of a
// split compile: kernels are numbered, and the shared GEMM helpers are in modules of their own.)
void name_functions_for_perf(llvm::Module& module) {
  for (llvm::Function& fn : module.functions()) {
    if (fn.isDeclaration() || !fn.hasLocalLinkage()) continue;
    fn.setLinkage(llvm::GlobalValue::ExternalLinkage);
    fn.setVisibility(llvm::GlobalValue::HiddenVisibility);
  }
}

std::unique_ptr<llvm::orc::LLJIT> create_jit(llvm::orc::JITTargetMachineBuilder host) {
  llvm::orc::LLJITBuilder builder;
  builder.setJITTargetMachineBuilder(std::move(host));
  if (perf_map_enabled()) {
    builder.setObjectLinkingLayerCreator(
        [](llvm::orc::ExecutionSession& session, const llvm::Triple&) {
          auto layer = std::make_unique<llvm::orc::ObjectLinkingLayer>(session);
          layer->addPlugin(std::make_unique<PerfMapPlugin>());
          return std::unique_ptr<llvm::orc::ObjectLayer>(std::move(layer));
        });
  }
  return unwrap(builder.create(), "creating the JIT");
}

// Renames the entry and adds the object's read-only data.
void add_object_symbols(llvm::Module& module, const ObjectOptions& object) {
  llvm::Function* entry = module.getFunction(kEntryName);
  KILN_CHECK(entry != nullptr, "the module has no entry");
  if (object.entry_name != kEntryName) {
    if (module.getNamedValue(object.entry_name) != nullptr) {
      throw CompileError(
          fmt::format("the entry name '{}' is taken in the module", object.entry_name));
    }
    entry->setName(object.entry_name);
  }
  if (object.hide_entry) entry->setVisibility(llvm::GlobalValue::HiddenVisibility);
  for (const ObjectOptions::Data& data : object.data) {
    if (module.getNamedValue(data.symbol) != nullptr) {
      throw CompileError(fmt::format("the data symbol '{}' is taken in the module", data.symbol));
    }
    llvm::Constant* bytes = llvm::ConstantDataArray::getRaw(
        llvm::StringRef(data.bytes.data(), data.bytes.size()), data.bytes.size(),
        llvm::Type::getInt8Ty(module.getContext()));
    auto* global = new llvm::GlobalVariable(module, bytes->getType(), /*isConstant=*/true,
                                            llvm::GlobalValue::ExternalLinkage, bytes, data.symbol);
    global->setAlignment(llvm::Align(64));
    global->setVisibility(llvm::GlobalValue::HiddenVisibility);
  }
}

std::string module_text(const llvm::Module& module) {
  std::string text;
  llvm::raw_string_ostream os(text);
  module.print(os, nullptr);
  return os.str();
}

}  // namespace

CompiledModule::CompiledModule(std::shared_ptr<void> code, kiln_entry_fn entry,
                               int64_t workspace_bytes, std::string llvm_ir)
    : code_(std::move(code)),
      entry_(entry),
      workspace_bytes_(workspace_bytes),
      llvm_ir_(std::move(llvm_ir)) {}

CompiledModule::~CompiledModule() = default;

namespace {

constexpr std::string_view kCpuTag = "cpu-module";

// The module as an ELF object file, in memory.
std::string emit_object(llvm::TargetMachine& machine, llvm::Module& module,
                        const std::string& name) {
  llvm::SmallVector<char, 0> buffer;
  llvm::raw_svector_ostream out(buffer);
  llvm::legacy::PassManager passes;
  if (machine.addPassesToEmitFile(passes, out, nullptr, llvm::CodeGenFileType::ObjectFile))
    throw CompileError(fmt::format("{}: the target cannot emit object files", name));
  passes.run(module);
  return std::string(buffer.data(), buffer.size());
}

// A JIT of its own holding `objects` (linked into one image), and its entry.
std::unique_ptr<CompiledModule> load_objects(llvm::orc::JITTargetMachineBuilder host,
                                             const std::vector<std::string_view>& objects,
                                             int64_t workspace_bytes, const std::string& name,
                                             std::string llvm_ir) {
  std::unique_ptr<llvm::orc::LLJIT> jit = create_jit(std::move(host));
  for (std::string_view object : objects) {
    if (llvm::Error error = jit->addObjectFile(llvm::MemoryBuffer::getMemBufferCopy(
            llvm::StringRef(object.data(), object.size()), name))) {
      throw CompileError(fmt::format("{}: {}", name, error_text(std::move(error))));
    }
  }
  auto address = unwrap(jit->lookup(kEntryName), fmt::format("{}: compiling {}", name, kEntryName));
  auto entry = address.toPtr<kiln_entry_fn>();
  return std::make_unique<CompiledModule>(std::shared_ptr<llvm::orc::LLJIT>(std::move(jit)), entry,
                                          workspace_bytes, std::move(llvm_ir));
}

// The cache's payload: a header line with the format, the workspace size and each object's size,
// then the objects.
std::string cpu_payload(int64_t workspace_bytes, const std::vector<std::string>& objects) {
  std::vector<size_t> sizes;
  std::string bytes;
  for (const std::string& object : objects) {
    sizes.push_back(object.size());
    bytes += object;
  }
  return fmt::format("kiln-cpu-module {} workspace {} objects {}\n", kCpuCacheFormat,
                     workspace_bytes, fmt::join(sizes, ",")) +
         bytes;
}

// The objects of a payload whose workspace size is `workspace_bytes`; CompileError otherwise.
std::vector<std::string_view> cpu_payload_objects(std::string_view payload,
                                                  int64_t workspace_bytes) {
  const size_t newline = payload.find('\n');
  const std::string want =
      fmt::format("kiln-cpu-module {} workspace {} objects ", kCpuCacheFormat, workspace_bytes);
  if (newline == std::string_view::npos || !payload.substr(0, newline).starts_with(want))
    throw CompileError(fmt::format("its header does not start \"{}\"", want));
  std::string_view sizes = payload.substr(want.size(), newline - want.size());
  std::string_view rest = payload.substr(newline + 1);
  std::vector<std::string_view> objects;
  while (!sizes.empty()) {
    const size_t comma = std::min(sizes.find(','), sizes.size());
    size_t size = 0;
    const std::string_view digits = sizes.substr(0, comma);
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), size);
    if (ec != std::errc() || ptr != digits.data() + digits.size() || size > rest.size())
      throw CompileError(fmt::format("its object sizes \"{}\" do not fit the payload", sizes));
    objects.push_back(rest.substr(0, size));
    rest.remove_prefix(size);
    sizes.remove_prefix(std::min(comma + 1, sizes.size()));
  }
  if (objects.empty() || !rest.empty())
    throw CompileError("its objects do not add up to the payload");
  return objects;
}

// How many threads compile one function's kernels: one per core (at most 8), and at most one
// per two kernels; KILN_COMPILE_THREADS overrides (1: one module, as AOT libraries are built).
size_t compile_threads(const passes::KernelPlan& plan) {
  size_t threads = std::min<size_t>(std::max(1u, std::thread::hardware_concurrency()), 8);
  if (const char* text = std::getenv("KILN_COMPILE_THREADS")) {
    size_t value = 0;
    const std::string_view v(text);
    auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), value);
    if (ec == std::errc() && ptr == v.data() + v.size() && value >= 1)
      threads = std::min<size_t>(value, 64);
  }
  return std::max<size_t>(1, std::min(threads, plan.kernels.size() / 2));
}

// What one thread makes of one module: optimized for `host`, its text and its object.
using Compiled = HelperObject;

Compiled optimize_and_emit(llvm::TargetMachine& machine, llvm::Module& module,
                           const CodegenOptions& options, const std::string& name,
                           LlvmPipeline pipeline = LlvmPipeline::standard) {
  module.setDataLayout(machine.createDataLayout());
  module.setTargetTriple(machine.getTargetTriple().str());
  optimize(module, machine, options.opt_level, pipeline);
  Compiled out;
  out.text = module_text(module);
  if (perf_map_enabled()) name_functions_for_perf(module);
  out.object = emit_object(machine, module, name);
  return out;
}

// The modules of build_split_modules, with each GEMM helper compiled apart (or found in
// HelperObjects: compiled by an earlier function, or prebuilt), as object files and their LLVM IR
// text. Each module or helper is a job; the threads take the jobs largest first as they finish, so
// a thread is busy until all are done.
std::vector<Compiled> compile_split(llvm::orc::JITTargetMachineBuilder host,
                                    llvm::TargetMachine& machine, size_t threads,
                                    const ir::Function& function, const passes::KernelPlan& plan,
                                    const passes::MemoryPlan& memory,
                                    const CodegenOptions& options) {
  const VectorUnit unit = vector_unit(machine);
  std::vector<std::unique_ptr<llvm::LLVMContext>> contexts;
  std::vector<llvm::LLVMContext*> raw;
  for (size_t i = 0; i <= threads; ++i) {
    contexts.push_back(std::make_unique<llvm::LLVMContext>());
    raw.push_back(contexts.back().get());
  }
  SplitModules modules = build_split_modules(raw, function, plan, memory, unit);
  struct Job {
    llvm::Module* module = nullptr;  // or a helper:
    std::string helper, key;
    size_t cost = 0;
  };
  std::vector<Job> jobs;
  auto add_module = [&](llvm::Module* module) {
    size_t cost = 0;
    for (const llvm::Function& fn : module->functions())
      cost += fn.getInstructionCount();
    jobs.push_back({module, "", "", cost});
  };
  add_module(modules.entry.get());
  for (const auto& part : modules.parts)
    add_module(part.get());
  std::vector<Compiled> cached;  // helpers compiled before
  const std::string target =
      fmt::format("{}|{}|{}|O{}|perf{}", host.getTargetTriple().str(), host.getCPU(),
                  host.getFeatures().getString(), options.opt_level, perf_map_enabled() ? 1 : 0);
  for (const auto& [name, kernel] : modules.helpers) {
    std::string key = name + "|" + target;
    if (std::shared_ptr<const HelperObject> known = HelperObjects::get().find(key)) {
      cached.push_back(*known);
      continue;
    }
    // A micro-kernel or a part body is about a thousand instructions once emitted.
    jobs.push_back({nullptr, name, std::move(key), 1000});
  }
  std::vector<Compiled> out(jobs.size());
  std::vector<size_t> order(jobs.size());
  for (size_t j = 0; j < order.size(); ++j)
    order[j] = j;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return jobs[a].cost > jobs[b].cost; });
  std::vector<std::exception_ptr> errors(jobs.size());
  std::atomic<size_t> next{0};
  // A target machine is not shared across threads: each worker makes its own, this thread uses
  // `machine`.
  auto work = [&](llvm::TargetMachine* own) {
    std::unique_ptr<llvm::TargetMachine> made;
    for (size_t i = next++; i < order.size(); i = next++) {
      const size_t j = order[i];
      try {
        if (own == nullptr) {
          made = unwrap(llvm::orc::JITTargetMachineBuilder(host).createTargetMachine(),
                        "creating the target machine");
          own = made.get();
        }
        Job& job = jobs[j];
        if (job.module != nullptr) {
          out[j] = optimize_and_emit(*own, *job.module, options, function.name());
          continue;
        }
        llvm::LLVMContext context;
        llvm::Module module(job.helper, context);
        emit_gemm_helper(module, *modules.helpers.at(job.helper), unit, job.helper);
        verify_module(module, job.helper);
        auto compiled = std::make_shared<HelperObject>(
            optimize_and_emit(*own, module, options, function.name(),
                              is_gemm_micro_kernel(job.helper) ? LlvmPipeline::unrolled_light
                                                               : LlvmPipeline::standard));
        out[j] = *compiled;
        HelperObjects::get().add(job.key, std::move(compiled));
      } catch (...) {
        errors[j] = std::current_exception();
      }
    }
  };
  std::vector<std::thread> workers;
  for (size_t t = 1; t < std::min(threads, jobs.size()); ++t)
    workers.emplace_back(work, nullptr);
  work(&machine);
  for (std::thread& t : workers)
    t.join();
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
  out.insert(out.end(), cached.begin(), cached.end());
  return out;
}

// The module (or, with several threads, the modules of build_split_modules: compile_split) as
// object files, and their LLVM IR text.
std::vector<Compiled> compile_objects(llvm::orc::JITTargetMachineBuilder host,
                                      const ir::Function& function, const passes::KernelPlan& plan,
                                      const passes::MemoryPlan& memory,
                                      const CodegenOptions& options) {
  const size_t threads = compile_threads(plan);
  auto machine = unwrap(host.createTargetMachine(), "creating the target machine");
  if (threads <= 1) {
    llvm::LLVMContext context;
    std::unique_ptr<llvm::Module> module =
        build_module(context, function, plan, memory, vector_unit(*machine));
    return {optimize_and_emit(*machine, *module, options, function.name())};
  }
  return compile_split(std::move(host), *machine, threads, function, plan, memory, options);
}

// cpu_cache_key for the host `host` describes (compile_jit has it already).
std::string host_cache_key(const llvm::orc::JITTargetMachineBuilder& host,
                           const ir::Function& function, const passes::KernelPlan& plan,
                           const passes::MemoryPlan& memory, const CodegenOptions& options) {
  CacheKey key(fmt::format("{}/{}", kCpuTag, kCpuCacheFormat));
  key.add("triple", host.getTargetTriple().str())
      .add("cpu", host.getCPU())
      .add("features", host.getFeatures().getString())
      .add("opt_level", options.opt_level)
      .add("perf_map", perf_map_enabled() ? 1 : 0)
      .add_plans(function, plan, memory);
  return key.str();
}

}  // namespace

std::string cpu_cache_key(const ir::Function& function, const passes::KernelPlan& plan,
                          const passes::MemoryPlan& memory, const CodegenOptions& options) {
  return host_cache_key(host_machine(options), function, plan, memory, options);
}

std::unique_ptr<CompiledModule> compile_jit(const ir::Function& function,
                                            const passes::KernelPlan& plan,
                                            const passes::MemoryPlan& memory,
                                            const CodegenOptions& options,
                                            runtime::DiskCache* cache) {
  llvm::orc::JITTargetMachineBuilder host = host_machine(options);
  std::string key;
  if (cache != nullptr && cache->enabled()) {
    key = host_cache_key(host, function, plan, memory, options);
    if (std::optional<std::string> payload = cache->get(key)) {
      try {
        return load_objects(host, cpu_payload_objects(*payload, memory.workspace_bytes),
                            memory.workspace_bytes, function.name(), "");
      } catch (const CompileError& e) {
        cache->discard(key, fmt::format("its machine code does not load ({})", e.what()));
      }
    }
  }
  const std::vector<Compiled> compiled = compile_objects(host, function, plan, memory, options);
  std::string text;
  std::vector<std::string_view> views;
  std::vector<std::string> objects;
  for (const Compiled& c : compiled) {
    text += c.text;
    views.push_back(c.object);
    objects.push_back(c.object);
  }
  std::unique_ptr<CompiledModule> module = load_objects(
      std::move(host), views, memory.workspace_bytes, function.name(), std::move(text));
  // Stored once it has loaded: objects the JIT cannot link are never cached.
  if (!key.empty()) cache->put(key, cpu_payload(memory.workspace_bytes, objects));
  return module;
}

struct KernelJit::State {
  std::mutex mutex;  // serializes compiles: the target machine is not shared across threads
  CodegenOptions options;
  std::unique_ptr<llvm::TargetMachine> machine;
  std::shared_ptr<llvm::orc::LLJIT> jit;
  uint64_t next_id = 0;
};

KernelJit::KernelJit(const CodegenOptions& options) : state_(std::make_unique<State>()) {
  state_->options = options;
  llvm::orc::JITTargetMachineBuilder host = host_machine(options);
  state_->machine = unwrap(host.createTargetMachine(), "creating the target machine");
  state_->jit = create_jit(std::move(host));
}

KernelJit::~KernelJit() = default;

KernelJit::Symbol KernelJit::add(std::unique_ptr<llvm::LLVMContext> context,
                                 std::unique_ptr<llvm::Module> module, const std::string& name,
                                 const std::string& symbol) {
  // One symbol namespace holds every module: each one's `symbol` (and, for the perf map, each of
  // its functions) gets a name of its own, with `name` in it so that a profile names the op:
  // kernel0.loop0.body_eager_add_7.
  const uint64_t id = state_->next_id++;
  const std::string unique = fmt::format("{}_{}", symbol, id);
  if (perf_map_enabled()) name_functions_for_perf(*module);
  for (llvm::Function& fn : module->functions()) {
    if (fn.isDeclaration() || fn.hasLocalLinkage()) continue;
    fn.setName(fn.getName() == symbol ? unique
                                      : fmt::format("{}_{}_{}", fn.getName().str(), name, id));
  }
  llvm::orc::ResourceTrackerSP tracker = state_->jit->getMainJITDylib().createResourceTracker();
  if (llvm::Error error = state_->jit->addIRModule(
          tracker, llvm::orc::ThreadSafeModule(std::move(module), std::move(context)))) {
    throw CompileError(fmt::format("{}: {}", name, error_text(std::move(error))));
  }
  auto address = unwrap(state_->jit->lookup(unique), fmt::format("{}: compiling {}", name, symbol));
  // The code lives while its handle does; then the tracker frees it (and the JIT, once no
  // module and no KernelJit hold it).
  std::shared_ptr<void> code(
      nullptr, [jit = state_->jit, tracker](void*) { llvm::consumeError(tracker->remove()); });
  return {std::move(code), address.toPtr<void*>()};
}

std::unique_ptr<CompiledModule> KernelJit::compile(const ir::Function& function,
                                                   const passes::KernelPlan& plan,
                                                   const passes::MemoryPlan& memory,
                                                   LlvmPipeline pipeline) {
  std::lock_guard lock(state_->mutex);
  auto context = std::make_unique<llvm::LLVMContext>();
  std::unique_ptr<llvm::Module> module =
      lower(*context, *state_->machine, function, plan, memory, state_->options, pipeline);
  Symbol entry = add(std::move(context), std::move(module), function.name(), kEntryName);
  return std::make_unique<CompiledModule>(std::move(entry.code),
                                          reinterpret_cast<kiln_entry_fn>(entry.address),
                                          memory.workspace_bytes, std::string());
}

VectorUnit KernelJit::vector_unit() const {
  return codegen::vector_unit(*state_->machine);
}

KernelJit::Symbol KernelJit::compile_module(
    const std::string& name, const std::function<void(llvm::Module&, const VectorUnit&)>& build,
    const std::string& symbol, LlvmPipeline pipeline) {
  std::lock_guard lock(state_->mutex);
  auto context = std::make_unique<llvm::LLVMContext>();
  auto module = std::make_unique<llvm::Module>(name, *context);
  module->setDataLayout(state_->machine->createDataLayout());
  module->setTargetTriple(state_->machine->getTargetTriple().str());
  build(*module, codegen::vector_unit(*state_->machine));
  if (llvm::verifyModule(*module, &llvm::errs()))
    throw CompileError(fmt::format("{}: the module is not valid LLVM IR", name));
  optimize(*module, *state_->machine, state_->options.opt_level, pipeline);
  return add(std::move(context), std::move(module), name, symbol);
}

void emit_object_file(const ir::Function& function, const passes::KernelPlan& plan,
                      const passes::MemoryPlan& memory, const std::string& path,
                      const CodegenOptions& options, const ObjectOptions& object) {
  auto machine =
      unwrap(target_machine(options).createTargetMachine(), "creating the target machine");
  llvm::LLVMContext context;
  std::unique_ptr<llvm::Module> module = lower(context, *machine, function, plan, memory, options);
  add_object_symbols(*module, object);

  const std::string bytes = emit_object(*machine, *module, function.name());
  // Through the shared atomic writer: no fixed temporary name for two emitters to share, and
  // nothing left behind by a crash.
  try {
    runtime::AtomicWriter file(path);
    {
      llvm::raw_fd_ostream out(file.fd(), /*shouldClose=*/false);
      out << bytes;
      out.flush();
      if (out.has_error()) {
        std::string message = out.error().message();
        out.clear_error();
        throw IOError(fmt::format("cannot write {}: {}", path, message));
      }
    }
    file.commit();
  } catch (const runtime::AtomicWriteError& e) {
    throw IOError(fmt::format("cannot write {}: {}", path, e.what()));
  }
}

}  // namespace kiln::codegen
