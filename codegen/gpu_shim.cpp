// The host shim (codegen/gpu.h): the GPU-mode module compiled for this CPU, and a runner that
// calls each kernel once per (block, thread) of its grid with the index reads set to match.
#include <llvm/IR/Constants.h>
#include <llvm/IR/Module.h>

#include <fmt/format.h>

#include "kiln/codegen/compiler.h"
#include "kiln/codegen/gpu_module.h"
#include "kiln/codegen/llvm_util.h"
#include "kiln/ir/error.h"
#include "kiln/runtime/generated_code.h"

namespace {

// The thread/block indices of the kernel call in progress on this thread (what the special
// registers hold on a GPU), in gpu_module.cpp's IndexRead order.
thread_local int32_t shim_index[4];

}  // namespace

// What the host build's kiln_gpu_thread_index() & co. call; the JIT finds it in libkiln.
extern "C" __attribute__((visibility("default"), used)) int32_t kiln_gpu_shim_index(int32_t which) {
  return shim_index[which & 3];
}

namespace kiln::codegen {

namespace {

constexpr const char* kTableName = "kiln_gpu_table";

using HostKernel = void (*)(void* const* args, int64_t items);

KILN_CALLS_GENERATED_CODE void call_kernel(HostKernel kernel, void* const* args, int64_t items) {
  kernel(args, items);
}

// void symbol.host(ptr args, i64 items): calls the kernel with its pointers from an array, so
// that the runner can call any kernel through one C type.
llvm::Function* host_wrapper(llvm::Module& module, llvm::Function& kernel) {
  llvm::LLVMContext& context = module.getContext();
  llvm::Type* ptr = llvm::PointerType::get(context, 0);
  llvm::Type* i64 = llvm::Type::getInt64Ty(context);
  auto* type = llvm::FunctionType::get(llvm::Type::getVoidTy(context), {ptr, i64}, false);
  auto* fn = llvm::Function::Create(type, llvm::Function::InternalLinkage,
                                    kernel.getName() + ".host", module);
  Builder b(llvm::BasicBlock::Create(context, "entry", fn));
  std::vector<llvm::Value*> args;
  for (unsigned p = 0; p + 1 < kernel.arg_size(); ++p)
    args.push_back(b.CreateLoad(ptr, b.CreateConstInBoundsGEP1_64(ptr, fn->getArg(0), p)));
  args.push_back(fn->getArg(1));
  b.CreateCall(&kernel, args);
  b.CreateRetVoid();
  return fn;
}

// ptr kiln_gpu_table(): the array of every launch's host wrapper (null for unsupported ones).
void add_table(llvm::Module& module, const GpuKernels& kernels) {
  llvm::LLVMContext& context = module.getContext();
  auto* ptr = llvm::PointerType::get(context, 0);
  std::vector<llvm::Constant*> entries;
  for (llvm::Function* kernel : kernels.kernels) {
    entries.push_back(kernel == nullptr
                          ? llvm::ConstantPointerNull::get(ptr)
                          : static_cast<llvm::Constant*>(host_wrapper(module, *kernel)));
  }
  auto* array_type = llvm::ArrayType::get(ptr, std::max<size_t>(entries.size(), 1));
  if (entries.empty()) entries.push_back(llvm::ConstantPointerNull::get(ptr));
  auto* table =
      new llvm::GlobalVariable(module, array_type, true, llvm::GlobalValue::PrivateLinkage,
                               llvm::ConstantArray::get(array_type, entries), "table");
  auto* fn = llvm::Function::Create(llvm::FunctionType::get(ptr, false),
                                    llvm::Function::ExternalLinkage, kTableName, module);
  Builder b(llvm::BasicBlock::Create(context, "entry", fn));
  b.CreateRet(table);
}

void* resolve(const GpuBufferRef& ref, const kiln_frame& frame) {
  switch (ref.kind) {
    case GpuBufferRef::Kind::input:
      return frame.inputs[ref.index];
    case GpuBufferRef::Kind::output:
      return frame.outputs[ref.index];
    case GpuBufferRef::Kind::workspace:
      return static_cast<std::byte*>(frame.workspace) + ref.offset;
    case GpuBufferRef::Kind::status:
      return frame.status;
    case GpuBufferRef::Kind::constant:
      break;
  }
  KILN_CHECK(false, "a launch passes a constant as a buffer");
}

}  // namespace

GpuHostModule::GpuHostModule(const ir::Function& function, const passes::KernelPlan& plan,
                             const passes::MemoryPlan& memory, KernelJit& jit,
                             const GpuOptions& options)
    : workspace_bytes_(memory.workspace_bytes) {
  GpuKernels kernels;
  KernelJit::Symbol table = jit.compile_module(
      fmt::format("{}_gpu_shim", function.name()),
      [&](llvm::Module& module, const VectorUnit&) {
        kernels = build_gpu_module(module, function, plan, memory, GpuTarget::host, options);
        add_table(module, kernels);
      },
      kTableName);
  code_ = std::move(table.code);
  launches_ = std::move(kernels.launches);
  auto table_fn = reinterpret_cast<void* const* (*)()>(table.address);
  void* const* entries = table_fn();
  entries_.assign(entries, entries + launches_.size());
}

GpuHostModule::~GpuHostModule() = default;

void GpuHostModule::launch(size_t i, const kiln_frame& frame, const GpuGrid& grid) const {
  KILN_CHECK(i < launches_.size(), "no such launch");
  const GpuLaunch& launch = launches_[i];
  std::vector<void*> args;
  for (const GpuBufferRef& ref : launch.args)
    args.push_back(launch.supported ? resolve(ref, frame) : nullptr);
  int64_t items = launch.items;
  std::vector<void*> params;
  for (void*& arg : args)
    params.push_back(&arg);
  params.push_back(&items);
  launch_with_params(i, params.data(), grid);
}

void GpuHostModule::launch_with_params(size_t i, void* const* params, const GpuGrid& grid) const {
  KILN_CHECK(i < launches_.size(), "no such launch");
  const GpuLaunch& launch = launches_[i];
  if (!launch.supported) {
    throw CompileError(
        fmt::format("{} cannot run on the GPU path: {}", launch.label, launch.reason));
  }
  std::vector<void*> args;
  for (size_t a = 0; a < launch.args.size(); ++a)
    args.push_back(*static_cast<void* const*>(params[a]));
  const int64_t items = *static_cast<const int64_t*>(params[launch.args.size()]);
  const int64_t blocks = grid.blocks > 0 ? grid.blocks : launch.grid_size;
  const int threads = grid.threads > 0 ? grid.threads : launch.block_size;
  auto kernel = reinterpret_cast<HostKernel>(entries_[i]);
  // One (block, thread) after another: no kernel of this path waits on another thread.
  for (int64_t block = 0; block < blocks; ++block) {
    for (int thread = 0; thread < threads; ++thread) {
      shim_index[0] = thread;
      shim_index[1] = static_cast<int32_t>(block);
      shim_index[2] = threads;
      shim_index[3] = static_cast<int32_t>(blocks);
      call_kernel(kernel, args.data(), items);
    }
  }
}

void GpuHostModule::run(const kiln_frame& frame, const GpuGrid& grid) const {
  for (size_t i = 0; i < launches_.size(); ++i)
    launch(i, frame, grid);
}

}  // namespace kiln::codegen
