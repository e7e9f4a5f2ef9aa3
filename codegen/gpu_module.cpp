#include "kiln/codegen/gpu_module.h"

#include <algorithm>
#include <set>

#include <llvm/IR/IntrinsicsNVPTX.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Support/raw_ostream.h>

#include <fmt/format.h>

#include "kiln/codegen/gemm.h"
#include "kiln/codegen/gpu_reduce.h"
#include "kiln/codegen/index_check.h"
#include "kiln/codegen/kernel_loops.h"
#include "kiln/codegen/module_builder.h"
#include "kiln/codegen/parallel.h"
#include "kiln/ir/error.h"
#include "kiln/ir/ops/control.h"
#include "kiln/ir/ops/matmul.h"
#include "kiln/passes/memory_plan.h"

namespace kiln::codegen {

namespace {

using llvm::Value;

// How kernel_loops shares out loops on a GPU: an item per element or output column, never a
// block of columns (a thread per column reads memory coalesced with its neighbours), and a
// reduction across rows one column per thread.
constexpr LoopLowering gpu_lowering(const LoopSink* sink) {
  return {
      .sink = sink, .min_items = int64_t{1} << 40, .column_multiple = 1, .reduction_columns = 1};
}

// The thread/block index reads, in the order of the host shim's state (gpu_shim.cpp).
enum IndexRead { kThreadIndex, kBlockIndex, kBlockDim, kGridDim, kIndexReads };

constexpr const char* kIndexNames[kIndexReads] = {"kiln_gpu_thread_index", "kiln_gpu_block_index",
                                                  "kiln_gpu_block_dim", "kiln_gpu_grid_dim"};

// What a kernel parameter of a launch is bound to.
struct ArgSpec {
  GpuBufferRef ref;
  llvm::GlobalVariable* constant = nullptr;  // bound inside the kernel instead of a parameter
  bool exclusive = false;                    // no other buffer of the launch overlaps it
};

// Where a scan body's buffers are in the enclosing function's, for the launches of one step:
// its parameters and results (the current carries, this step's rows of the xs and the stacked
// ys, the constants), and its workspace (in the scan kernel's scratch). A row's ref has the
// row's bytes as step_bytes, so the launch plan's loop moves it on every trip.
struct BodyFrame {
  std::vector<ArgSpec> inputs, outputs;
  int64_t workspace = 0;
};

// The workspace blocks of a scan kernel's ping-pong carries: a block per carry as the memory
// plan lays them out (passes/memory_plan.cpp, scan_scratch_bytes).
int64_t carry_block(int64_t bytes) {
  return (bytes + passes::kWorkspaceAlignment - 1) / passes::kWorkspaceAlignment *
         passes::kWorkspaceAlignment;
}

class GpuModuleBuilder {
 public:
  // `memory` is copied: a GEMM's epilogue kernel gives the GEMM's result a slot of its own.
  GpuModuleBuilder(llvm::Module& module, const passes::MemoryPlan& memory, GpuTarget target,
                   const GpuOptions& options)
      : module_(module),
        memory_(memory),
        target_(target),
        options_(options),
        workspace_end_(memory.workspace_bytes) {
    for (int r = 0; r < kIndexReads; ++r)
      index_fns_[r] = index_function(static_cast<IndexRead>(r));
  }

  // The builder of scan kernel `k`'s body, whose buffers `frame` places in `parent`'s; its
  // kernels are numbered from `kernel_base` on (passes::number_kernels).
  GpuModuleBuilder(const GpuModuleBuilder& parent, const passes::MemoryPlan& memory, size_t k,
                   const BodyFrame& frame, size_t kernel_base)
      : module_(parent.module_),
        memory_(memory),
        target_(parent.target_),
        options_(parent.options_),
        frame_(&frame),
        symbol_prefix_(fmt::format("{}s{}_", parent.symbol_prefix_, k)),
        label_prefix_(fmt::format("{}scan kernel {} step: ", parent.label_prefix_, k)),
        kernel_base_(kernel_base) {
    std::copy(std::begin(parent.index_fns_), std::end(parent.index_fns_), index_fns_);
  }

  GpuKernels take() {
    result_.workspace_bytes = workspace_end_;
    return std::move(result_);
  }

  // Where the next scan body's kernels are numbered from (after the plan's own kernels).
  void set_body_base(size_t base) { next_body_base_ = base; }

  void add_plan_kernel(size_t k, const passes::Kernel& kernel) {
    const std::string label = label_prefix_ + kernel_label(k, kernel);
    if (kernel.scan) {
      add_scan(k, kernel, label);
      return;
    }
    if (gemm_handles(kernel) && add_gemm(k, kernel, label)) return;
    const KernelBuffers buffers = kernel_buffers(kernel, memory_);
    if (has_index_checks(kernel)) add_index_check(k, kernel, buffers, label);
    if (add_cooperative(k, kernel, buffers, label)) return;
    add_loops(k, kernel, buffers, label);
  }

  // Copies result `output` from the value's slot when no kernel computed it there (as
  // kiln_entry's copy_to_output does on the CPU).
  void add_output_copy(const ir::Value* value, int64_t output) {
    const passes::Slot& s = slot(value);
    if (s.kind == passes::Slot::Kind::output && s.index == output) return;
    ArgSpec dst{{GpuBufferRef::Kind::output, output, 0}, nullptr, true};
    if (frame_ != nullptr) dst = frame_->outputs.at(static_cast<size_t>(output));
    dst.exclusive = true;
    add_copy(label_prefix_ + fmt::format("copy to output {}", output),
             fmt::format("copy{}", output), dst, spec_of(value), value->type());
  }

 private:
  // A launch copying the elements of a `type` tensor from `src` to `dst` (which do not overlap).
  void add_copy(const std::string& label, const std::string& name, const ArgSpec& dst,
                const ArgSpec& src, const ir::TensorType& tensor) {
    const int64_t n = tensor.shape.num_elements();
    if (n == 0) return;
    llvm::LLVMContext& context = module_.getContext();
    llvm::Type* ptr = llvm::PointerType::get(context, 0);
    llvm::Type* i64 = llvm::Type::getInt64Ty(context);
    auto* type =
        llvm::FunctionType::get(llvm::Type::getVoidTy(context), {ptr, ptr, i64, i64}, false);
    auto* range =
        llvm::Function::Create(type, llvm::Function::InternalLinkage, "copy." + name, module_);
    const ir::DType dtype = tensor.dtype;
    {
      Builder b(llvm::BasicBlock::Create(context, "entry", range));
      emit_range_loop(b, range->getArg(2), range->getArg(3), [&](Value* i) {
        llvm::Type* type = storage_type(context, dtype);
        b.CreateStore(b.CreateLoad(type, b.CreateInBoundsGEP(type, range->getArg(1), i)),
                      b.CreateInBoundsGEP(type, range->getArg(0), i));
      });
      b.CreateRetVoid();
    }
    GpuLaunch launch = base(-1, label);
    result_.labels[range] = launch.label;
    add_launch(std::move(launch), symbol_prefix_ + name, range, {dst, src}, n);
  }

  // A scan kernel as a loop of the launch plan: the initial carries copied into the ping
  // blocks; then, `length` times, the body's launches (reading ping, writing pong and this
  // step's rows), the carry-ins copied to the saved carries' rows, and pong copied back to ping;
  // then ping copied to the final carries. Per step: the body's launches plus one copy per carry
  // (two with saved carries).
  void add_scan(size_t k, const passes::Kernel& kernel, const std::string& label) {
    const size_t first = result_.launches.size();
    add_scan_launches(k, kernel, label);
    // Every launch of the scan, its copies and its body's, is the scan kernel's.
    for (size_t i = first; i < result_.launches.size(); ++i)
      result_.launches[i].plan_kernel = static_cast<int64_t>(k);
  }

  void add_scan_launches(size_t k, const passes::Kernel& kernel, const std::string& label) {
    if (frame_ != nullptr)
      throw CompileError("a scan inside a scan body does not run on the GPU path yet");
    const ir::Node& node = *kernel.nodes.front();
    const passes::ScanPlan& scan = *kernel.scan;
    const ir::ScanAttrs s = ir::scan_attrs(node.attrs(), node.inputs().size());
    const auto C = static_cast<size_t>(s.carries);
    const auto X = static_cast<size_t>(s.xs);
    const auto Y = static_cast<size_t>(s.ys);
    const int64_t T = s.length;
    auto carry = [&](size_t c, const char* what) {
      return fmt::format("{}, carry {} {}", label, c, what);
    };
    auto symbol = [&](size_t c, const char* what) { return fmt::format("k{}_{}{}", k, what, c); };
    if (T == 0) {
      for (size_t c = 0; c < C; ++c)
        add_copy(carry(c, "out"), symbol(c, "out"), spec_of(node.output(c), true),
                 spec_of(node.input(c)), node.input(c)->type());
      return;
    }
    // Row t of a stacked [T, ...] buffer, at trip i (t = i, or T - 1 - i for a reverse scan).
    // A constant xs (a gradient's cotangent of ones, say) is copied to a block of its own after
    // the memory plan's workspace first: the module holds it, and launches step through buffers.
    auto rows = [&](const ir::Value* stacked, int64_t row_bytes, const char* what, size_t i) {
      ArgSpec spec = spec_of(stacked);
      if (spec.constant != nullptr) {
        const ArgSpec staged{
            {GpuBufferRef::Kind::workspace, 0, carry_block(workspace_end_)}, nullptr, false};
        workspace_end_ =
            staged.ref.offset + carry_block(static_cast<int64_t>(stacked->type().nbytes()));
        add_copy(fmt::format("{}, {} {} staged", label, what, i),
                 fmt::format("k{}_{}{}", k, what, i), staged, spec, stacked->type());
        spec = staged;
      }
      if (s.reverse) spec.ref.offset += (T - 1) * row_bytes;
      spec.ref.step_bytes = s.reverse ? -row_bytes : row_bytes;
      return spec;
    };
    const passes::Slot& scratch = memory_.scratch.at(k);
    std::vector<ArgSpec> ping(C), pong(C);
    int64_t offset = scratch.offset;
    for (size_t c = 0; c < C; ++c) {
      const int64_t block = carry_block(static_cast<int64_t>(node.input(c)->type().nbytes()));
      ping[c] = {{GpuBufferRef::Kind::workspace, 0, offset}, nullptr, true};
      pong[c] = {{GpuBufferRef::Kind::workspace, 0, offset + block}, nullptr, true};
      offset += 2 * block;
    }
    for (size_t c = 0; c < C; ++c)
      add_copy(carry(c, "in"), symbol(c, "in"), ping[c], spec_of(node.input(c)),
               node.input(c)->type());

    BodyFrame frame;
    frame.workspace = offset;
    frame.inputs = ping;
    for (size_t j = 0; j < X; ++j) {
      const ir::Value* slice = scan.body->param(C + j);
      frame.inputs.push_back(
          rows(node.input(C + j), static_cast<int64_t>(slice->type().nbytes()), "xs", j));
    }
    for (size_t i = C + X; i < node.inputs().size(); ++i)
      frame.inputs.push_back(spec_of(node.input(i)));
    frame.outputs = pong;
    for (size_t y = 0; y < Y; ++y) {
      const ir::Value* row = scan.body->outputs()[C + y];
      frame.outputs.push_back(
          rows(node.output(C + y), static_cast<int64_t>(row->type().nbytes()), "ys", y));
    }

    const size_t first = result_.launches.size();
    GpuModuleBuilder body(*this, scan.memory, k, frame, next_body_base_);
    next_body_base_ += passes::number_kernels(scan.kernels).size();
    for (size_t b = 0; b < scan.kernels.kernels.size(); ++b) {
      const passes::Kernel& body_kernel = scan.kernels.kernels[b];
      if (passes::is_view_in_place(body_kernel, scan.memory)) continue;
      body.add_plan_kernel(b, body_kernel);
    }
    const auto& body_outputs = scan.body->outputs();
    for (size_t j = 0; j < body_outputs.size(); ++j)
      body.add_output_copy(body_outputs[j], static_cast<int64_t>(j));
    GpuKernels made = body.take();
    for (size_t i = 0; i < made.launches.size(); ++i) {
      result_.launches.push_back(std::move(made.launches[i]));
      result_.kernels.push_back(made.kernels[i]);
    }
    result_.labels.merge(made.labels);
    result_.synchronizing.merge(made.synchronizing);
    for (size_t c = 0; c < C; ++c) {
      const ir::TensorType& type = node.input(c)->type();
      if (s.save_carries) {
        add_copy(
            carry(c, "saved"), symbol(c, "saved"),
            rows(node.output(C + Y + c), static_cast<int64_t>(type.nbytes()), "saved carry", c),
            ping[c], type);
      }
      add_copy(carry(c, "next"), symbol(c, "next"), ping[c], pong[c], type);
    }
    const auto count = static_cast<int64_t>(result_.launches.size() - first);
    if (count > 0) result_.launches[first].loop = GpuLoop{T, count};
    for (size_t c = 0; c < C; ++c)
      add_copy(carry(c, "out"), symbol(c, "out"), spec_of(node.output(c), true), ping[c],
               node.input(c)->type());
  }

  // The largest power of two, up to 256, that divides `bytes` (256 for 0).
  static int64_t alignment_of(int64_t bytes) {
    int64_t align = 256;
    while (align > 1 && bytes % align != 0)
      align /= 2;
    return align;
  }

  // The alignment of a buffer's start: the runtime's buffers are 256-byte aligned, workspace
  // slots sit at their offset.
  // A scan step's row is also offset by multiples of its step.
  static int64_t alignment_of(const GpuBufferRef& ref) {
    const int64_t start = alignment_of(ref.offset);
    return ref.step_bytes == 0 ? start : std::min(start, alignment_of(std::abs(ref.step_bytes)));
  }

  // Element strides of operand `shape` (rank ≥ 2) for each dimension of the result's batch
  // shape: its own batch dimensions are right-aligned to it, missing or size-1 ones repeat (0).
  static std::vector<int64_t> batch_strides(const ir::Shape& shape, const ir::Shape& batch) {
    const int rank = shape.rank();
    const int own = rank - 2;
    std::vector<int64_t> strides(static_cast<size_t>(batch.rank()), 0);
    int64_t stride = shape.dim(rank - 1) * shape.dim(rank - 2);
    for (int j = own - 1; j >= 0; --j) {
      const int at = batch.rank() - own + j;
      if (shape.dim(j) != 1) strides[static_cast<size_t>(at)] = stride;
      stride *= shape.dim(j);
    }
    return strides;
  }

  // Whether `node` adds a bias to `value` (the GEMM's result so far): add(value, v) or
  // add(v, value) where v holds n elements along the last axis, read by every row (shape [n],
  // or [1, ..., 1, n]), and lives in a buffer (not a constant). Sets `bias`.
  bool is_bias(const ir::Node& node, const ir::Value* value, int64_t n, const ir::Value*& bias) {
    if (node.op() != ir::Op::add || node.inputs().size() != 2) return false;
    const ir::Value* other = node.input(0) == value ? node.input(1) : node.input(0);
    if (other == value || (node.input(0) != value && node.input(1) != value)) return false;
    const ir::TensorType& t = other->type();
    if (t.dtype != value->type().dtype || t.shape.rank() < 1 ||
        t.shape.dim(t.shape.rank() - 1) != n || t.shape.num_elements() != n)
      return false;
    if (spec_of(other).constant != nullptr) return false;
    bias = other;
    return true;
  }

  // A matmul plan kernel whose GEMM cuBLASLt runs: a GEMM step writing the kernel's output, with
  // the bias add and ReLU right after the matmul fused into cuBLASLt's epilogue, then the rest of
  // the kernel's epilogue as a loop kernel in place on that output. False (nothing added) when
  // an operand is a constant, which the module holds rather than a buffer: the loop path then
  // computes the kernel.
  bool add_gemm(size_t k, const passes::Kernel& kernel, const std::string& label) {
    const ir::Node& root = *kernel.nodes.front();
    const ir::Value* a = root.input(0);
    const ir::Value* b = root.input(1);
    // (A scan body's parameter may be the scan's constant operand.)
    if (spec_of(a).constant != nullptr || spec_of(b).constant != nullptr) return false;
    const ir::MatmulDims dims = ir::matmul_dims(a->type().shape, b->type().shape, root.attrs());
    GpuGemm g;
    g.dtype = a->type().dtype;
    g.m = dims.m;
    g.n = dims.n;
    g.k = dims.k;
    g.transpose_a = dims.transpose_a;
    g.transpose_b = dims.transpose_b;
    g.a = spec_of(a).ref;
    g.b = spec_of(b).ref;
    // The epilogue cuBLASLt can take: a bias, then a ReLU. With K = 0 the runtime only fills D
    // with zeros, so the whole epilogue stays in the loop kernel.
    size_t next = 1;
    const ir::Value* last = root.output();
    const ir::Value* bias = nullptr;
    if (dims.k > 0) {
      if (next < kernel.nodes.size() && is_bias(*kernel.nodes[next], last, dims.n, bias)) {
        g.epilogue = GpuGemm::Epilogue::bias;
        g.bias = spec_of(bias).ref;
        last = kernel.nodes[next++]->output();
      }
      if (next < kernel.nodes.size() && kernel.nodes[next]->op() == ir::Op::relu &&
          kernel.nodes[next]->input(0) == last) {
        g.epilogue = bias != nullptr ? GpuGemm::Epilogue::bias_relu : GpuGemm::Epilogue::relu;
        last = kernel.nodes[next++]->output();
      }
    }
    const ir::Value* out = kernel.outputs.front();
    g.d = spec_of(out).ref;
    for (int64_t d : dims.batch.dims())
      g.batch_shape.push_back(d);
    g.a_batch_strides = batch_strides(a->type().shape, dims.batch);
    g.b_batch_strides = batch_strides(b->type().shape, dims.batch);
    // Every matrix pointer of every batch index: its buffer's start plus multiples of the
    // strides, in bytes; cuBLASLt asks no more than 16.
    const auto size = static_cast<int64_t>(ir::dtype_size(g.dtype));
    int64_t align = 16;
    for (const GpuBufferRef* ref : {&g.a, &g.b, &g.d})
      align = std::min(align, alignment_of(*ref));
    if (bias != nullptr) align = std::min(align, alignment_of(g.bias));
    for (const std::vector<int64_t>* strides : {&g.a_batch_strides, &g.b_batch_strides}) {
      for (int64_t stride : *strides)
        align = std::min(align, alignment_of(stride * size));
    }
    if (!g.batch_shape.empty()) align = std::min(align, alignment_of(g.m * g.n * size));
    g.alignment = static_cast<int>(std::max(align, size));
    GpuLaunch launch = base(static_cast<int64_t>(k), label);
    launch.gemm = std::move(g);
    result_.launches.push_back(std::move(launch));
    result_.kernels.push_back(nullptr);
    if (next == kernel.nodes.size()) return true;
    // The rest of the epilogue: a loop kernel reading the GEMM's result where it wrote it (the
    // output's slot) and writing each element back in place.
    passes::Kernel rest;
    rest.kind = passes::KernelKind::loop;
    rest.nodes.assign(kernel.nodes.begin() + static_cast<std::ptrdiff_t>(next), kernel.nodes.end());
    std::set<const ir::Value*> made;
    for (const ir::Node* node : rest.nodes) {
      for (const ir::Value* v : node->inputs()) {
        if (made.count(v) == 0 &&
            std::find(rest.inputs.begin(), rest.inputs.end(), v) == rest.inputs.end())
          rest.inputs.push_back(v);
      }
      for (size_t o = 0; o < node->num_outputs(); ++o)
        made.insert(node->output(o));
    }
    rest.outputs = kernel.outputs;
    memory_.slots[last] = slot(out);
    const KernelBuffers buffers = kernel_buffers(rest, memory_);
    add_loops(k, rest, buffers, label + ", epilogue");
    return true;
  }

  GpuLaunch base(int64_t plan_kernel, const std::string& label) const {
    GpuLaunch launch;
    launch.plan_kernel = plan_kernel;
    launch.label = label;
    return launch;
  }

  const passes::Slot& slot(const ir::Value* value) const {
    auto it = memory_.slots.find(value);
    if (it == memory_.slots.end()) {
      throw CompileError(fmt::format("the memory plan has no slot for a value of type {}",
                                     value->type().to_string()));
    }
    return it->second;
  }

  // In a scan body, parameters and results are where the frame puts them.
  ArgSpec spec_of(const ir::Value* value, bool exclusive = false) {
    const passes::Slot& s = slot(value);
    auto framed = [&](const std::vector<ArgSpec>& specs) {
      ArgSpec spec = specs.at(static_cast<size_t>(s.index));
      spec.exclusive = exclusive;
      return spec;
    };
    switch (s.kind) {
      case passes::Slot::Kind::param:
        if (frame_ != nullptr) return framed(frame_->inputs);
        return {{GpuBufferRef::Kind::input, s.index, 0}, nullptr, exclusive};
      case passes::Slot::Kind::output:
        if (frame_ != nullptr) return framed(frame_->outputs);
        return {{GpuBufferRef::Kind::output, s.index, 0}, nullptr, exclusive};
      case passes::Slot::Kind::workspace:
        return {{GpuBufferRef::Kind::workspace, 0, s.offset + (frame_ ? frame_->workspace : 0)},
                nullptr,
                exclusive};
      case passes::Slot::Kind::constant: {
        llvm::GlobalVariable*& global = constants_[value];
        if (global == nullptr) global = constant_global(module_, value);
        return {{GpuBufferRef::Kind::constant, 0, 0}, global, exclusive};
      }
    }
    KILN_CHECK(false, "unknown slot kind");
  }

  // The kernel's argument `a`: its inputs, then its outputs.
  static const ir::Value* argument(const passes::Kernel& kernel, size_t a) {
    return a < kernel.inputs.size() ? kernel.inputs[a] : kernel.outputs[a - kernel.inputs.size()];
  }

  // Every parallel loop of the CPU kernel's emitter becomes a kernel of its own: the emitter
  // builds its range functions as for the CPU, and the sink takes them instead of calling them.
  void add_loops(size_t k, const passes::Kernel& kernel, const KernelBuffers& buffers,
                 const std::string& label) {
    llvm::LLVMContext& context = module_.getContext();
    llvm::Type* ptr = llvm::PointerType::get(context, 0);
    std::vector<llvm::Type*> params(kernel.inputs.size() + kernel.outputs.size(), ptr);
    auto* type = llvm::FunctionType::get(llvm::Type::getVoidTy(context), params, false);
    // The CPU's kernel function, whose body the sink leaves empty: only its arguments matter,
    // as the values the range functions would have been called with.
    auto* cpu_kernel = llvm::Function::Create(type, llvm::Function::InternalLinkage,
                                              fmt::format("kernel{}", k), module_);
    int loops = 0;
    LoopSink sink = [&](const ParallelLoop& loop, llvm::Function* range,
                        std::span<Value* const> args) {
      std::vector<ArgSpec> specs;
      for (size_t i = 0; i < args.size(); ++i) {
        const unsigned a = llvm::cast<llvm::Argument>(args[i])->getArgNo();
        specs.push_back(spec_of(argument(kernel, a), buffers.exclusive[i]));
      }
      result_.labels[range] = label;
      add_launch(base(static_cast<int64_t>(k), label),
                 fmt::format("{}k{}_{}", symbol_prefix_, k, loops++), range, specs, loop.items);
    };
    emit_kernel_loops(*cpu_kernel, kernel, buffers, gpu_lowering(&sink));
    cpu_kernel->eraseFromParent();
  }

  // The entry's index checks (index_check.h) as a kernel that one thread runs, before the
  // kernel that gathers: it reads the indices and writes the status words, as on the CPU.
  void add_index_check(size_t k, const passes::Kernel& kernel, const KernelBuffers& buffers,
                       const std::string& label) {
    llvm::LLVMContext& context = module_.getContext();
    llvm::Type* ptr = llvm::PointerType::get(context, 0);
    llvm::Type* i64 = llvm::Type::getInt64Ty(context);
    // One parameter per distinct input buffer, then the status words.
    std::vector<size_t> first_argument;
    for (size_t a = 0; a < kernel.inputs.size(); ++a) {
      if (std::none_of(first_argument.begin(), first_argument.end(),
                       [&](size_t f) { return buffers.buffer_of[f] == buffers.buffer_of[a]; })) {
        first_argument.push_back(a);
      }
    }
    std::vector<llvm::Type*> params(first_argument.size() + 1, ptr);
    params.push_back(i64);
    params.push_back(i64);
    auto* type = llvm::FunctionType::get(llvm::Type::getVoidTy(context), params, false);
    auto* range = llvm::Function::Create(type, llvm::Function::InternalLinkage,
                                         fmt::format("kernel{}.check", k), module_);
    Builder b(llvm::BasicBlock::Create(context, "entry", range));
    auto pointer = [&](const ir::Value* v) -> Value* {
      auto in = std::find(kernel.inputs.begin(), kernel.inputs.end(), v);
      KILN_CHECK(in != kernel.inputs.end(), "checked indices that are not a kernel input");
      const size_t buffer = buffers.buffer_of[static_cast<size_t>(in - kernel.inputs.begin())];
      for (size_t p = 0; p < first_argument.size(); ++p) {
        if (buffers.buffer_of[first_argument[p]] == buffer)
          return range->getArg(static_cast<unsigned>(p));
      }
      KILN_CHECK(false, "checked indices without a parameter");
    };
    Value* status = range->getArg(static_cast<unsigned>(first_argument.size()));
    emit_index_checks(b, kernel_base_ + k, kernel, pointer, status);
    b.CreateRetVoid();
    std::vector<ArgSpec> specs;
    for (size_t a : first_argument)
      specs.push_back(spec_of(kernel.inputs[a]));
    specs.push_back({{GpuBufferRef::Kind::status, 0, 0}, nullptr, false});
    result_.labels[range] = label;
    add_launch(base(static_cast<int64_t>(k), label + ", index check"),
               fmt::format("{}k{}_check", symbol_prefix_, k), range, specs, 1);
  }

  // Declares a launch's kernel, void symbol(ptr params..., i64 items), with a pointer parameter
  // per spec that is not a constant. `args` gets, per spec, its constant or its parameter (the
  // items parameter is the last), and `launch.args` the buffers those parameters take.
  llvm::Function* declare_kernel(const std::string& symbol, const std::vector<ArgSpec>& specs,
                                 GpuLaunch& launch, std::vector<Value*>& args) {
    llvm::LLVMContext& context = module_.getContext();
    std::vector<llvm::Type*> params;
    for (const ArgSpec& spec : specs) {
      if (spec.constant == nullptr) params.push_back(llvm::PointerType::get(context, 0));
    }
    params.push_back(llvm::Type::getInt64Ty(context));
    auto* type = llvm::FunctionType::get(llvm::Type::getVoidTy(context), params, false);
    const bool nvptx = target_ == GpuTarget::nvptx;
    auto* kernel = llvm::Function::Create(
        type, nvptx ? llvm::Function::ExternalLinkage : llvm::Function::InternalLinkage, symbol,
        module_);
    if (nvptx) kernel->setCallingConv(llvm::CallingConv::PTX_Kernel);
    kernel->addFnAttr(llvm::Attribute::NoUnwind);
    unsigned p = 0;
    for (const ArgSpec& spec : specs) {
      if (spec.constant != nullptr) {
        args.push_back(spec.constant);
        continue;
      }
      // noalias only where nothing else of the launch overlaps (a buffer updated in place is
      // one buffer here): NVPTX reads noalias read-only buffers through the non-coherent cache.
      if (spec.exclusive) kernel->addParamAttr(p, llvm::Attribute::NoAlias);
      args.push_back(kernel->getArg(p++));
      launch.args.push_back(spec.ref);
    }
    return kernel;
  }

  // void symbol(ptr params..., i64 items): each thread runs range(..., i, i + 1) for
  // i = its global index, then every grid's worth of threads after it.
  void add_launch(GpuLaunch launch, const std::string& symbol, llvm::Function* range,
                  const std::vector<ArgSpec>& specs, int64_t items) {
    llvm::LLVMContext& context = module_.getContext();
    llvm::Type* i64 = llvm::Type::getInt64Ty(context);
    std::vector<Value*> args;
    llvm::Function* kernel = declare_kernel(symbol, specs, launch, args);
    Value* count = kernel->getArg(static_cast<unsigned>(kernel->arg_size() - 1));

    Builder b(llvm::BasicBlock::Create(context, "entry", kernel));
    auto read = [&](IndexRead r) { return b.CreateZExt(b.CreateCall(index_fns_[r]), i64); };
    Value* block_dim = read(kBlockDim);
    Value* first = b.CreateAdd(b.CreateMul(read(kBlockIndex), block_dim), read(kThreadIndex));
    Value* stride = b.CreateMul(block_dim, read(kGridDim));
    llvm::BasicBlock* entry = b.GetInsertBlock();
    llvm::BasicBlock* header = llvm::BasicBlock::Create(context, "items", kernel);
    llvm::BasicBlock* body = llvm::BasicBlock::Create(context, "item", kernel);
    llvm::BasicBlock* exit = llvm::BasicBlock::Create(context, "done", kernel);
    b.CreateBr(header);
    b.SetInsertPoint(header);
    llvm::PHINode* i = b.CreatePHI(i64, 2, "i");
    i->addIncoming(first, entry);
    b.CreateCondBr(b.CreateICmpSLT(i, count), body, exit);
    b.SetInsertPoint(body);
    std::vector<Value*> call_args = args;
    call_args.push_back(i);
    call_args.push_back(b.CreateAdd(i, b.getInt64(1)));
    b.CreateCall(range, call_args);
    i->addIncoming(b.CreateAdd(i, stride), body);
    b.CreateBr(header);
    b.SetInsertPoint(exit);
    b.CreateRetVoid();
    verify(*range, symbol);
    verify(*kernel, symbol);

    launch.symbol = symbol;
    launch.items = items;
    const int64_t warp = 32;
    const int64_t threads =
        std::min<int64_t>(std::max(options_.block_size, 1), (items + warp - 1) / warp * warp);
    launch.block_size = static_cast<int>(items == 1 ? 1 : threads);
    launch.grid_size = std::clamp<int64_t>((items + launch.block_size - 1) / launch.block_size, 1,
                                           std::max<int64_t>(options_.max_blocks, 1));
    result_.launches.push_back(std::move(launch));
    result_.kernels.push_back(kernel);
  }

  // A reduction or softmax with long rows or columns: one kernel whose warps or blocks share each
  // output (gpu_reduce.h), instead of add_loops' thread per output. False when it is not worth it.
  bool add_cooperative(size_t k, const passes::Kernel& kernel, const KernelBuffers& buffers,
                       const std::string& label) {
    const std::optional<GpuCooperative> plan = plan_cooperative(kernel, options_);
    if (!plan) return false;
    llvm::LLVMContext& context = module_.getContext();
    llvm::Type* ptr = llvm::PointerType::get(context, 0);
    llvm::Type* i64 = llvm::Type::getInt64Ty(context);
    const size_t distinct = buffers.exclusive.size();
    std::vector<llvm::Type*> body_params(distinct, ptr);
    body_params.push_back(i64);
    auto* body = llvm::Function::Create(
        llvm::FunctionType::get(llvm::Type::getVoidTy(context), body_params, false),
        llvm::Function::InternalLinkage, fmt::format("kernel{}.coop", k), module_);
    std::vector<ArgSpec> specs;
    for (size_t i = 0; i < distinct; ++i) {
      if (buffers.exclusive[i])
        body->addParamAttr(static_cast<unsigned>(i), llvm::Attribute::NoAlias);
      const size_t a =
          static_cast<size_t>(std::find(buffers.buffer_of.begin(), buffers.buffer_of.end(), i) -
                              buffers.buffer_of.begin());
      specs.push_back(spec_of(argument(kernel, a), buffers.exclusive[i]));
    }
    emit_cooperative(
        *body, kernel, buffers, *plan,
        gpu_sync_functions(module_, target_ == GpuTarget::nvptx, index_fns_[kThreadIndex],
                           index_fns_[kBlockIndex], index_fns_[kBlockDim], index_fns_[kGridDim]));
    result_.labels[body] = label;
    verify(*body, label);

    // void symbol(ptr params..., i64 items): the body, with constants bound.
    const std::string symbol = fmt::format("{}k{}_0", symbol_prefix_, k);
    GpuLaunch launch = base(static_cast<int64_t>(k), label);
    std::vector<Value*> args;
    llvm::Function* entry = declare_kernel(symbol, specs, launch, args);
    entry->addFnAttr(llvm::Attribute::Convergent);
    args.push_back(entry->getArg(static_cast<unsigned>(entry->arg_size() - 1)));
    Builder b(llvm::BasicBlock::Create(context, "entry", entry));
    b.CreateCall(body, args);
    b.CreateRetVoid();
    verify(*entry, symbol);

    // Whole warps per block: a row takes a block (or a warp: up to 8 rows a block), a column
    // tile a block of 8 slices.
    const int64_t warp = 32;
    const int64_t threads =
        std::clamp<int64_t>((options_.block_size + warp - 1) / warp * warp, warp, 1024);
    int64_t per_block = 1;
    if (plan->group == GpuGroup::warp) per_block = std::min(threads / warp, plan->items);
    launch.symbol = symbol;
    launch.items = plan->items;
    launch.block_size =
        static_cast<int>(plan->group == GpuGroup::warp ? per_block * warp : threads);
    launch.grid_size = std::clamp<int64_t>((plan->items + per_block - 1) / per_block, 1,
                                           std::max<int64_t>(options_.max_blocks, 1));
    result_.launches.push_back(std::move(launch));
    result_.kernels.push_back(entry);
    result_.synchronizing.insert(entry);
    return true;
  }

  // i32 kiln_gpu_*(): the special register on NVPTX, the shim's thread-local on the host.
  llvm::Function* index_function(IndexRead r) {
    llvm::LLVMContext& context = module_.getContext();
    llvm::Type* i32 = llvm::Type::getInt32Ty(context);
    auto* fn = llvm::Function::Create(llvm::FunctionType::get(i32, false),
                                      llvm::Function::InternalLinkage, kIndexNames[r], module_);
    fn->addFnAttr(llvm::Attribute::AlwaysInline);
    fn->addFnAttr(llvm::Attribute::NoUnwind);
    Builder b(llvm::BasicBlock::Create(context, "entry", fn));
    if (target_ == GpuTarget::nvptx) {
      constexpr llvm::Intrinsic::ID kRegisters[kIndexReads] = {
          llvm::Intrinsic::nvvm_read_ptx_sreg_tid_x, llvm::Intrinsic::nvvm_read_ptx_sreg_ctaid_x,
          llvm::Intrinsic::nvvm_read_ptx_sreg_ntid_x, llvm::Intrinsic::nvvm_read_ptx_sreg_nctaid_x};
      b.CreateRet(b.CreateIntrinsic(kRegisters[r], {}, {}));
    } else {
      llvm::FunctionCallee shim = module_.getOrInsertFunction(
          "kiln_gpu_shim_index", llvm::FunctionType::get(i32, {i32}, false));
      b.CreateRet(b.CreateCall(shim, {b.getInt32(static_cast<uint32_t>(r))}));
    }
    return fn;
  }

  static void verify(const llvm::Function& fn, const std::string& what) {
    std::string message;
    llvm::raw_string_ostream os(message);
    if (llvm::verifyFunction(fn, &os)) {
      throw CompileError(
          fmt::format("{}: LLVM rejected the generated GPU code: {}", what, os.str()));
    }
  }

  llvm::Module& module_;
  passes::MemoryPlan memory_;
  GpuTarget target_;
  const GpuOptions& options_;
  const BodyFrame* frame_ = nullptr;  // set in a scan body's builder
  std::string symbol_prefix_ = "kiln_";
  std::string label_prefix_;
  size_t kernel_base_ = 0;     // this plan's kernel 0 in passes::number_kernels
  size_t next_body_base_ = 0;  // the next scan body's kernel 0 there
  int64_t workspace_end_ = 0;  // the workspace's bytes so far (the memory plan's, and staging)
  llvm::Function* index_fns_[kIndexReads] = {};
  std::map<const ir::Value*, llvm::GlobalVariable*> constants_;
  GpuKernels result_;
};

}  // namespace

GpuKernels build_gpu_module(llvm::Module& module, const ir::Function& function,
                            const passes::KernelPlan& plan, const passes::MemoryPlan& memory,
                            GpuTarget target, const GpuOptions& options) {
  GpuModuleBuilder builder(module, memory, target, options);
  builder.set_body_base(plan.kernels.size());
  for (size_t k = 0; k < plan.kernels.size(); ++k) {
    const passes::Kernel& kernel = plan.kernels[k];
    if (passes::is_view_in_place(kernel, memory)) continue;  // a reshape that moves no bytes
    try {
      builder.add_plan_kernel(k, kernel);
    } catch (Error& e) {
      throw CompileError(fmt::format("{}: {}", kernel_label(k, kernel), e.message()));
    }
  }
  const auto& outputs = function.outputs();
  for (size_t j = 0; j < outputs.size(); ++j)
    builder.add_output_copy(outputs[j], static_cast<int64_t>(j));
  const auto& updates = function.updates();
  for (size_t u = 0; u < updates.size(); ++u)
    builder.add_output_copy(updates[u].value, static_cast<int64_t>(outputs.size() + u));
  return builder.take();
}

}  // namespace kiln::codegen
