// The host shim (codegen/gpu.h): the GPU-mode module compiled for this CPU, and a runner that
// calls each kernel once per (block, thread) of its grid with the index reads set to match.
// Kernels whose threads wait for each other run under a per-block scheduler: every thread of the
// block is a fiber with its own stack, which runs until it reaches a barrier or a warp shuffle
// and then hands over to the next; the last thread to arrive releases the others.
#include <sys/mman.h>
#include <ucontext.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <new>
#include <utility>

#include <llvm/IR/Constants.h>
#include <llvm/IR/Module.h>

#include <fmt/format.h>

#include "kiln/codegen/compiler.h"
#include "kiln/codegen/gpu_module.h"
#include "kiln/codegen/gpu_reduce.h"
#include "kiln/codegen/llvm_util.h"
#include "kiln/ir/error.h"
#include "kiln/runtime/generated_code.h"

#if defined(__SANITIZE_ADDRESS__)
#define KILN_SHIM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KILN_SHIM_ASAN 1
#endif
#endif
#ifdef KILN_SHIM_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

namespace {

// The thread/block indices of the kernel call in progress on this thread (what the special
// registers hold on a GPU), in gpu_module.cpp's IndexRead order.
thread_local int32_t shim_index[4];

using HostKernel = void (*)(void* const* args, int64_t items);

KILN_CALLS_GENERATED_CODE void call_kernel(HostKernel kernel, void* const* args, int64_t items) {
  kernel(args, items);
}

// Switching between fibers. On x86-64, a few instructions that swap the callee-saved registers
// and the stack pointer: glibc's swapcontext also saves the signal mask with a system call, which
// costs microseconds here and would dominate the shim's run time. Elsewhere, ucontext.
#if defined(__x86_64__)
extern "C" __attribute__((visibility("hidden"))) void kiln_gpu_shim_switch_stack(void** save,
                                                                                 void* load);
// Pushes rbp, rbx, r12-r15 and the MXCSR / x87 control words, saves rsp in *save, loads rsp from
// `load` and pops the same from there (the System V ABI's callee-saved state).
asm(R"(
  .text
  .p2align 4
  .globl kiln_gpu_shim_switch_stack
  .hidden kiln_gpu_shim_switch_stack
  .type kiln_gpu_shim_switch_stack,@function
kiln_gpu_shim_switch_stack:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size kiln_gpu_shim_switch_stack, .-kiln_gpu_shim_switch_stack
)");

struct FiberContext {
  void* sp = nullptr;
};

// Makes `context` start `entry` (which never returns) on the stack [stack, stack + bytes).
void prepare_fiber(FiberContext& context, void* stack, size_t bytes, void (*entry)()) {
  auto top = reinterpret_cast<uintptr_t>(stack) + bytes;
  top &= ~uintptr_t{15};
  auto* slot = reinterpret_cast<uint64_t*>(top) - 2;  // 16-byte aligned: entry's return address
  slot[1] = 0;                                        // entry's own return address: none
  slot[0] = reinterpret_cast<uint64_t>(entry);
  uint64_t* sp = slot - 7;  // rbp, rbx, r12..r15 (zero), then the control words
  for (int r = 1; r < 7; ++r)
    sp[r] = 0;
  sp[0] = 0x1f80 | (uint64_t{0x037f} << 32);  // default MXCSR and x87 control word
  context.sp = sp;
}

void switch_fiber(FiberContext& from, FiberContext& to) {
  kiln_gpu_shim_switch_stack(&from.sp, to.sp);
}
#else
struct FiberContext {
  ucontext_t context{};
};

void prepare_fiber(FiberContext& context, void* stack, size_t bytes, void (*entry)()) {
  getcontext(&context.context);
  context.context.uc_stack.ss_sp = stack;
  context.context.uc_stack.ss_size = bytes;
  context.context.uc_link = nullptr;
  makecontext(&context.context, entry, 0);
}

void switch_fiber(FiberContext& from, FiberContext& to) {
  swapcontext(&from.context, &to.context);
}
#endif

// Fiber stacks, reused by every launch on this host thread: JIT-compiled kernels need little
// stack, the shim's own calls (and ASan's) a few KiB. Mapped lazily, so untouched pages cost
// nothing.
constexpr size_t kFiberStackBytes = size_t{256} << 10;

class FiberStacks {
 public:
  FiberStacks() = default;
  FiberStacks(const FiberStacks&) = delete;
  FiberStacks& operator=(const FiberStacks&) = delete;
  ~FiberStacks() {
    for (void* stack : stacks_)
      munmap(stack, kFiberStackBytes);
  }
  void* get(size_t i) {
    while (stacks_.size() <= i) {
      void* stack = mmap(nullptr, kFiberStackBytes, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (stack == MAP_FAILED) throw std::bad_alloc();
      stacks_.push_back(stack);
    }
    return stacks_[i];
  }

 private:
  std::vector<void*> stacks_;
};

thread_local FiberStacks fiber_stacks;

// Runs the blocks of a synchronizing kernel one at a time, the threads of each as fibers that
// switch at barriers (kiln_gpu_shim_barrier: every live thread of the block meets) and shuffles
// (kiln_gpu_shim_shfl: every live thread of the warp meets). A thread that has returned no
// longer counts, as on a GPU.
class BlockScheduler {
 public:
  BlockScheduler(HostKernel kernel, void* const* args, int64_t items, int64_t blocks, int threads)
      : kernel_(kernel),
        args_(args),
        items_(items),
        blocks_(blocks),
        threads_(threads),
        fibers_(static_cast<size_t>(threads)),
        warps_(static_cast<size_t>((threads + 31) / 32)),
        shared_(static_cast<std::byte*>(
            ::operator new[](kiln::codegen::kGpuSharedBytes, std::align_val_t{64}))) {}

  // Runs block `block`; false when its threads wait at barriers that can never all be reached.
  bool run(int64_t block) {
    block_ = block;
    alive_ = threads_;
    at_barrier_ = 0;
    for (Warp& warp : warps_)
      warp = Warp{};
    for (int t = 0; t < threads_; ++t) {
      Fiber& f = fibers_[static_cast<size_t>(t)];
      f = Fiber{};
      f.stack = fiber_stacks.get(static_cast<size_t>(t));
      prepare_fiber(f.context, f.stack, kFiberStackBytes, &BlockScheduler::fiber_main);
      ++warps_[static_cast<size_t>(t / 32)].alive;
    }
    while (alive_ > 0) {
      bool ran = false;
      for (int t = 0; t < threads_; ++t) {
        if (fibers_[static_cast<size_t>(t)].state != State::ready) continue;
        resume(t);
        ran = true;
      }
      if (!ran) return false;
    }
    return true;
  }

  // kiln_gpu_shim_barrier, in the current fiber.
  void barrier() {
    Fiber& f = current();
    f.state = State::barrier;
    if (++at_barrier_ == alive_) release_block();
    if (f.state != State::ready) yield();
  }

  // kiln_gpu_shim_shfl, in the current fiber: kind 0 reads lane + arg (its own value past lane
  // 31), kind 1 lane arg; a source lane outside `mask` (undefined on a GPU) gives its own value.
  // Each lane publishes its value, the warp meets, each reads. Shuffles alternate between two
  // exchange rows, so a lane running on to the next shuffle cannot overwrite a value that a
  // slower lane has yet to read (it cannot get two shuffles ahead: each one is a meeting).
  int32_t shuffle(int32_t kind, uint32_t mask, int32_t value, int32_t arg) {
    const int t = current_;
    const int lane = t & 31;
    Fiber& f = current();
    Warp& warp = warps_[static_cast<size_t>(t / 32)];
    auto& row = warp.exchange[f.shuffles++ & 1];
    row[static_cast<size_t>(lane)] = value;
    f.state = State::warp;
    if (++warp.waiting == warp.alive) release_warp(t / 32);
    if (f.state != State::ready) yield();
    const int source = kind == 0 ? lane + arg : (arg & 31);
    if (source < 0 || source > 31 || (mask & (uint32_t{1} << source)) == 0) return value;
    return row[static_cast<size_t>(source)];
  }

  std::byte* shared() { return shared_.get(); }

 private:
  enum class State { ready, barrier, warp, done };
  struct Fiber {
    FiberContext context;
    void* stack = nullptr;
    State state = State::ready;
    uint64_t shuffles = 0;
    void* fake_stack = nullptr;  // ASan's record of the fiber's fake stack while switched out
  };
  struct Warp {
    int alive = 0, waiting = 0;
    std::array<std::array<int32_t, 32>, 2> exchange{};
  };
  struct AlignedDelete {
    void operator()(std::byte* p) const { ::operator delete[](p, std::align_val_t{64}); }
  };

  Fiber& current() { return fibers_[static_cast<size_t>(current_)]; }

  void release_block() {
    for (Fiber& f : fibers_)
      if (f.state == State::barrier) f.state = State::ready;
    at_barrier_ = 0;
  }

  void release_warp(int w) {
    for (int t = w * 32; t < std::min(threads_, w * 32 + 32); ++t) {
      Fiber& f = fibers_[static_cast<size_t>(t)];
      if (f.state == State::warp) f.state = State::ready;
    }
    warps_[static_cast<size_t>(w)].waiting = 0;
  }

  // From the scheduler into fiber t, until it yields or returns.
  void resume(int t) {
    current_ = t;
    shim_index[0] = t;
    shim_index[1] = static_cast<int32_t>(block_);
    shim_index[2] = threads_;
    shim_index[3] = static_cast<int32_t>(blocks_);
    Fiber& f = fibers_[static_cast<size_t>(t)];
#ifdef KILN_SHIM_ASAN
    __sanitizer_start_switch_fiber(&main_fake_stack_, f.stack, kFiberStackBytes);
#endif
    switch_fiber(main_, f.context);
#ifdef KILN_SHIM_ASAN
    __sanitizer_finish_switch_fiber(main_fake_stack_, nullptr, nullptr);
#endif
  }

  // From the current fiber back to the scheduler, until it is resumed.
  void yield() {
    Fiber& f = current();
#ifdef KILN_SHIM_ASAN
    __sanitizer_start_switch_fiber(&f.fake_stack, main_stack_bottom_, main_stack_size_);
#endif
    switch_fiber(f.context, main_);
#ifdef KILN_SHIM_ASAN
    __sanitizer_finish_switch_fiber(f.fake_stack, &main_stack_bottom_, &main_stack_size_);
#endif
  }

  static void fiber_main();

  // A fiber's whole life: the kernel, then the bookkeeping of its exit, then back for good.
  [[noreturn]] void run_current() {
#ifdef KILN_SHIM_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &main_stack_bottom_, &main_stack_size_);
#endif
    call_kernel(kernel_, args_, items_);
    const int t = current_;
    fibers_[static_cast<size_t>(t)].state = State::done;
    --alive_;
    Warp& warp = warps_[static_cast<size_t>(t / 32)];
    --warp.alive;
    if (at_barrier_ > 0 && at_barrier_ == alive_) release_block();
    if (warp.waiting > 0 && warp.waiting == warp.alive) release_warp(t / 32);
#ifdef KILN_SHIM_ASAN
    __sanitizer_start_switch_fiber(nullptr, main_stack_bottom_, main_stack_size_);
#endif
    switch_fiber(fibers_[static_cast<size_t>(t)].context, main_);
    std::abort();  // a finished fiber is never resumed
  }

  HostKernel kernel_;
  void* const* args_;
  int64_t items_;
  int64_t blocks_;
  int threads_;
  int64_t block_ = 0;
  int alive_ = 0, at_barrier_ = 0;
  int current_ = 0;
  std::vector<Fiber> fibers_;
  std::vector<Warp> warps_;
  std::unique_ptr<std::byte, AlignedDelete> shared_;
  FiberContext main_;
  void* main_fake_stack_ = nullptr;
  const void* main_stack_bottom_ = nullptr;
  size_t main_stack_size_ = 0;
};

// The scheduler running on this host thread (null outside a synchronizing launch).
thread_local BlockScheduler* scheduler = nullptr;

void BlockScheduler::fiber_main() {
  scheduler->run_current();
}

BlockScheduler& current_scheduler(const char* what) {
  if (scheduler == nullptr) {
    // Only a code generator bug gets here: a kernel synchronizes but is not marked so.
    std::fprintf(stderr, "kiln: %s called outside a synchronizing GPU kernel launch\n", what);
    std::abort();
  }
  return *scheduler;
}

}  // namespace

// What the host build's kiln_gpu_thread_index() & co. call; the JIT finds it in libkiln.
extern "C" __attribute__((visibility("default"), used)) int32_t kiln_gpu_shim_index(int32_t which) {
  return shim_index[which & 3];
}

// The host build's __syncthreads(), shfl.sync and block-shared memory (gpu_reduce.cpp).
extern "C" __attribute__((visibility("default"), used)) void kiln_gpu_shim_barrier() {
  current_scheduler("kiln_gpu_shim_barrier").barrier();
}

extern "C" __attribute__((visibility("default"), used)) int32_t kiln_gpu_shim_shfl(int32_t kind,
                                                                                   int32_t mask,
                                                                                   int32_t value,
                                                                                   int32_t arg) {
  return current_scheduler("kiln_gpu_shim_shfl")
      .shuffle(kind, static_cast<uint32_t>(mask), value, arg);
}

extern "C" __attribute__((visibility("default"), used)) void* kiln_gpu_shim_shared() {
  return current_scheduler("kiln_gpu_shim_shared").shared();
}

namespace kiln::codegen {

namespace {

constexpr const char* kTableName = "kiln_gpu_table";

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

// The buffer `ref` names in `frame` at trip `trip` of its loop.
void* resolve(const GpuBufferRef& ref, const kiln_frame& frame, int64_t trip) {
  const int64_t at = ref.offset + trip * ref.step_bytes;
  switch (ref.kind) {
    case GpuBufferRef::Kind::input:
      return static_cast<std::byte*>(frame.inputs[ref.index]) + at;
    case GpuBufferRef::Kind::output:
      return static_cast<std::byte*>(frame.outputs[ref.index]) + at;
    case GpuBufferRef::Kind::workspace:
      return static_cast<std::byte*>(frame.workspace) + at;
    case GpuBufferRef::Kind::status:
      return frame.status;
    case GpuBufferRef::Kind::constant:
      break;
  }
  KILN_CHECK(false, "a launch passes a constant as a buffer");
}

// A GEMM step on the host, as cuBLASLt would compute it (the mock cuBLASLt's reference, for
// runs of a whole module through the shim): D = epilogue(op(A) · op(B)) per batch index.
template <typename T>
void host_gemm(const GpuGemm& g, const kiln_frame& frame, int64_t trip) {
  const T* a = static_cast<const T*>(resolve(g.a, frame, trip));
  const T* b = static_cast<const T*>(resolve(g.b, frame, trip));
  T* d = static_cast<T*>(resolve(g.d, frame, trip));
  const bool has_bias =
      g.epilogue == GpuGemm::Epilogue::bias || g.epilogue == GpuGemm::Epilogue::bias_relu;
  const bool relu =
      g.epilogue == GpuGemm::Epilogue::relu || g.epilogue == GpuGemm::Epilogue::bias_relu;
  const T* bias = has_bias ? static_cast<const T*>(resolve(g.bias, frame, trip)) : nullptr;
  int64_t batch = 1;
  for (int64_t n : g.batch_shape)
    batch *= n;
  std::vector<int64_t> index(g.batch_shape.size(), 0);
  for (int64_t p = 0; p < batch; ++p) {
    int64_t a_offset = 0, b_offset = 0;
    for (size_t j = 0; j < index.size(); ++j) {
      a_offset += index[j] * g.a_batch_strides[j];
      b_offset += index[j] * g.b_batch_strides[j];
    }
    T* out = d + p * g.m * g.n;
    for (int64_t i = 0; i < g.m; ++i) {
      for (int64_t j = 0; j < g.n; ++j) {
        T sum = 0;
        for (int64_t l = 0; l < g.k; ++l) {
          const T x = g.transpose_a ? a[a_offset + l * g.m + i] : a[a_offset + i * g.k + l];
          const T y = g.transpose_b ? b[b_offset + j * g.k + l] : b[b_offset + l * g.n + j];
          sum += x * y;
        }
        if (g.k > 0 && bias != nullptr) sum += bias[j];
        if (g.k > 0 && relu && !(sum > 0)) sum = sum != sum ? sum : T(0);
        out[i * g.n + j] = sum;
      }
    }
    for (size_t j = index.size(); j-- > 0;) {
      if (++index[j] < g.batch_shape[j]) break;
      index[j] = 0;
    }
  }
}

}  // namespace

GpuHostModule::GpuHostModule(const ir::Function& function, const passes::KernelPlan& plan,
                             const passes::MemoryPlan& memory, KernelJit& jit,
                             const GpuOptions& options) {
  GpuKernels kernels;
  KernelJit::Symbol table = jit.compile_module(
      fmt::format("{}_gpu_shim", function.name()),
      [&](llvm::Module& module, const VectorUnit&) {
        kernels = build_gpu_module(module, function, plan, memory, GpuTarget::host, options);
        for (const llvm::Function* kernel : kernels.kernels)
          synchronizes_.push_back(kernels.synchronizing.count(kernel) != 0);
        add_table(module, kernels);
      },
      kTableName);
  code_ = std::move(table.code);
  launches_ = std::move(kernels.launches);
  workspace_bytes_ = kernels.workspace_bytes;
  auto table_fn = reinterpret_cast<void* const* (*)()>(table.address);
  void* const* entries = table_fn();
  entries_.assign(entries, entries + launches_.size());
}

GpuHostModule::~GpuHostModule() = default;

void GpuHostModule::launch(size_t i, const kiln_frame& frame, const GpuGrid& grid,
                           int64_t trip) const {
  KILN_CHECK(i < launches_.size(), "no such launch");
  const GpuLaunch& launch = launches_[i];
  if (launch.gemm) {
    if (launch.gemm->dtype == ir::DType::f64)
      host_gemm<double>(*launch.gemm, frame, trip);
    else
      host_gemm<float>(*launch.gemm, frame, trip);
    return;
  }
  std::vector<void*> args;
  for (const GpuBufferRef& ref : launch.args)
    args.push_back(launch.supported ? resolve(ref, frame, trip) : nullptr);
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
  KILN_CHECK(!launch.gemm, "a GEMM step launched as a kernel");
  std::vector<void*> args;
  for (size_t a = 0; a < launch.args.size(); ++a)
    args.push_back(*static_cast<void* const*>(params[a]));
  const int64_t items = *static_cast<const int64_t*>(params[launch.args.size()]);
  const int64_t blocks = grid.blocks > 0 ? grid.blocks : launch.grid_size;
  const int threads = grid.threads > 0 ? grid.threads : launch.block_size;
  auto kernel = reinterpret_cast<HostKernel>(entries_[i]);
  if (synchronizes_[i]) {
    // Threads that meet at barriers: a block at a time, its threads as fibers.
    if (threads > 1024) {
      throw ValueError(
          fmt::format("{}: a block of {} threads; a GPU runs at most 1024", launch.label, threads));
    }
    BlockScheduler blocks_in_turn(kernel, args.data(), items, blocks, threads);
    struct Install {
      BlockScheduler* outer;
      ~Install() { scheduler = outer; }
    } install{std::exchange(scheduler, &blocks_in_turn)};
    bool finished = true;
    for (int64_t block = 0; block < blocks && finished; ++block)
      finished = blocks_in_turn.run(block);
    KILN_CHECK(finished, fmt::format("{}: the threads of a block wait at barriers that not all of "
                                     "them reach",
                                     launch.label));
    return;
  }
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
  for (size_t i = 0; i < launches_.size();) {
    const std::optional<GpuLoop>& loop = launches_[i].loop;
    if (!loop) {
      launch(i++, frame, grid);
      continue;
    }
    const size_t end =
        std::min(launches_.size(), i + static_cast<size_t>(std::max<int64_t>(loop->count, 1)));
    for (int64_t trip = 0; trip < loop->trips; ++trip) {
      for (size_t j = i; j < end; ++j)
        launch(j, frame, grid, trip);
    }
    i = end;
  }
}

}  // namespace kiln::codegen
