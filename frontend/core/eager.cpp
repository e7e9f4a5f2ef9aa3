#include "kiln/frontend/core/eager.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <list>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <string_view>
#include <unordered_map>

#include "kiln/codegen/compiler.h"
#include "kiln/codegen/generic_gemm.h"
#include "kiln/frontend/core/compile.h"
#include "kiln/frontend/core/inline_list.h"
#include "kiln/frontend/core/log.h"
#include "kiln/ir/interpreter.h"
#include "kiln/ir/ops/matmul.h"
#include "kiln/ir/ops/reduction.h"
#include "kiln/passes/pipeline.h"

namespace kiln {

namespace {

constexpr int64_t kDefaultCapacity = 1024;
// Distinct sizes an elementwise signature compiles exact kernels for before it goes generic.
constexpr size_t kExactSizes = 4;
// The pieces a generic elementwise kernel runs in: powers of two from kLargestPiece (big
// enough for the kernel to split it across threads itself) down to kSmallestPiece elements (a
// 64-byte multiple for every dtype, so every piece starts aligned). A last piece shorter than
// that runs padded to kSmallestPiece.
constexpr int64_t kLargestPiece = int64_t{1} << 17;
constexpr int64_t kSmallestPiece = 64;

// ---- the mode --------------------------------------------------------------------------------

// -1: not decided yet (KILN_EAGER is read at the first eager op).
std::atomic<int> mode_setting{-1};

// The operands a DonatedOperands on this thread gives to the next elementwise op. Every eager op
// asks; the count of DonatedOperands alive in the process answers most of them without the
// thread-local lookup (a call into the dynamic loader from a shared library).
thread_local const ir::HostTensor* donated[2] = {nullptr, nullptr};
std::atomic<int> donations_alive{0};

// ---- cache keys ------------------------------------------------------------------------------

size_t mix(size_t h, uint64_t v) {
  return h ^ (v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
}

size_t hash_attr(const ir::AttrValue& value) {
  return std::visit(
      [](const auto& v) -> size_t {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, bool> || std::is_same_v<T, int64_t>) {
          return static_cast<size_t>(v);
        } else if constexpr (std::is_same_v<T, double>) {
          return static_cast<size_t>(std::bit_cast<uint64_t>(v));
        } else if constexpr (std::is_same_v<T, std::string>) {
          return std::hash<std::string>()(v);
        } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
          size_t h = v.size();
          for (int64_t x : v)
            h = mix(h, static_cast<uint64_t>(x));
          return h;
        } else if constexpr (std::is_same_v<T, ir::DType>) {
          return static_cast<size_t>(v) + 1000;
        } else if constexpr (std::is_same_v<T, ir::FunctionAttr>) {
          return v.hash();  // of the body's text, computed once
        } else {
          // Tensors compare by type and bytes (attr_equal); their type is a fine hash.
          size_t h = static_cast<size_t>(v.type().dtype);
          for (int64_t d : v.type().shape)
            h = mix(h, static_cast<uint64_t>(d));
          return h;
        }
      },
      value);
}

// Hashes a parameter type into `h` (the same for a KernelKey and a KeyView).
size_t hash_param(size_t h, ir::DType dtype, std::span<const int64_t> dims) {
  h = mix(h, static_cast<uint64_t>(dtype) + 77);
  h = mix(h, dims.size());
  for (int64_t d : dims)
    h = mix(h, static_cast<uint64_t>(d));
  return h;
}

size_t hash_head(ir::Op op, const ir::Attrs& attrs) {
  size_t h = static_cast<size_t>(op);
  for (const auto& [name, value] : attrs.items())
    h = mix(mix(h, std::hash<std::string>()(name)), hash_attr(value));
  return h;
}

// What a kernel is specialised for: the op, its attributes and its parameters' types.
struct KernelKey {
  ir::Op op;
  ir::Attrs attrs;
  std::vector<ir::TensorType> params;
  size_t hash = 0;

  KernelKey(ir::Op o, const ir::Attrs& a, std::vector<ir::TensorType> p)
      : op(o), attrs(a), params(std::move(p)) {
    size_t h = hash_head(op, attrs);
    for (const ir::TensorType& t : params)
      h = hash_param(h, t.dtype, t.shape.dims());
    hash = h;
  }
};

// KeyView's flat_size for the operands' own types.
constexpr int64_t kNotFlat = std::numeric_limits<int64_t>::min();

// A key not made yet, for lookups that allocate nothing: the operands' types, or
// - (flat_size other than kNotFlat, row_operands 0) their flattened types: operands that are not
//   0-d as (flat_size). An elementwise family is keyed with flat_size -1;
// - (row_operands not 0) the operands of row_operands' bits with their leading dimension made
//   flat_size, the others as they are. A row family is keyed with flat_size -1.
struct KeyView {
  ir::Op op;
  const ir::Attrs& attrs;
  std::span<const ir::HostTensor* const> inputs;
  int64_t flat_size = kNotFlat;
  uint64_t row_operands = 0;
  size_t hash = 0;

  KeyView(ir::Op o, const ir::Attrs& a, std::span<const ir::HostTensor* const> in, int64_t flat,
          uint64_t rows = 0)
      : op(o), attrs(a), inputs(in), flat_size(flat), row_operands(rows) {
    size_t h = hash_head(op, attrs);
    for (size_t i = 0; i < inputs.size(); ++i) {
      const ir::TensorType& type = inputs[i]->type();
      h = mix(h, static_cast<uint64_t>(type.dtype) + 77);
      const int64_t rank = viewed_rank(i);
      h = mix(h, static_cast<uint64_t>(rank));
      for (int64_t d = 0; d < rank; ++d)
        h = mix(h, static_cast<uint64_t>(viewed_dim(i, d)));
    }
    hash = h;
  }
  // Operand i's shape as the key sees it.
  bool flat(size_t i) const {
    return flat_size != kNotFlat && row_operands == 0 && inputs[i]->type().shape.rank() != 0;
  }
  // Only the first 64 operands can be row operands (row_operands() gives 0 for more).
  bool rows(size_t i) const { return i < 64 && ((row_operands >> i) & 1) != 0; }
  int64_t viewed_rank(size_t i) const { return flat(i) ? 1 : inputs[i]->type().shape.rank(); }
  int64_t viewed_dim(size_t i, int64_t d) const {
    if (flat(i) || (rows(i) && d == 0)) return flat_size;
    return inputs[i]->type().shape[d];
  }
  bool matches(const KernelKey& key) const {
    if (hash != key.hash || op != key.op || inputs.size() != key.params.size()) return false;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const ir::TensorType& theirs = key.params[i];
      if (inputs[i]->type().dtype != theirs.dtype) return false;
      const int64_t rank = viewed_rank(i);
      if (theirs.shape.rank() != rank) return false;
      for (int64_t d = 0; d < rank; ++d)
        if (theirs.shape[d] != viewed_dim(i, d)) return false;
    }
    return attrs == key.attrs;
  }
  // The key itself.
  KernelKey key() const {
    std::vector<ir::TensorType> params;
    params.reserve(inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      std::vector<int64_t> dims(static_cast<size_t>(viewed_rank(i)));
      for (int64_t d = 0; d < viewed_rank(i); ++d)
        dims[static_cast<size_t>(d)] = viewed_dim(i, d);
      params.push_back(ir::TensorType{inputs[i]->type().dtype, ir::Shape(std::move(dims))});
    }
    return KernelKey(op, attrs, std::move(params));
  }
};

struct KeyHash {
  using is_transparent = void;
  size_t operator()(const KernelKey& key) const { return key.hash; }
  size_t operator()(const KeyView& key) const { return key.hash; }
};

struct KeyEqual {
  using is_transparent = void;
  bool operator()(const KernelKey& a, const KernelKey& b) const {
    return a.hash == b.hash && a.op == b.op && a.params == b.params && a.attrs == b.attrs;
  }
  bool operator()(const KeyView& a, const KernelKey& b) const { return a.matches(b); }
  bool operator()(const KernelKey& a, const KeyView& b) const { return b.matches(a); }
};

// ---- kernels ---------------------------------------------------------------------------------

// One op compiled for one signature.
struct Kernel {
  ir::Op op;
  passes::PipelineResult result;  // the compiled graph: index errors are located in it
  std::unique_ptr<codegen::CompiledModule> module;
  runtime::Executable executable;

  Kernel(ir::Op o, passes::PipelineResult r, std::unique_ptr<codegen::CompiledModule> m)
      : op(o),
        result(std::move(r)),
        module(std::move(m)),
        executable(detail::make_executable(result.function, *module)) {}

  // Runs on dense buffers matching the kernel's parameters and results.
  void run(std::span<void* const> inputs, std::span<void* const> outputs) const {
    detail::run_executable(executable, result, inputs, outputs, ir::op_name(op),
                           "its kernel needs");
  }
};

codegen::KernelJit& kernel_jit() {
  static codegen::KernelJit jit;
  return jit;
}

// Kernels whose operands and results all hold at most this many elements are compiled with the
// light LLVM pipeline: their run time is the call's overhead, their compile is in the user's
// loop. Larger ones get the standard pipeline, which unrolls and vectorizes window and
// reduction loops the light one leaves scalar (a max_pool2d runs ~40x faster).
constexpr int64_t kTinyKernelElements = 4096;

std::shared_ptr<const Kernel> compile_kernel(const KernelKey& key) {
  passes::PipelineResult result = detail::plan_one_op(key.op, key.attrs, key.params);
  int64_t largest = 0;
  for (const auto& v : result.function.params())
    largest = std::max(largest, v->type().shape.num_elements());
  for (const ir::Value* v : result.function.outputs())
    largest = std::max(largest, v->type().shape.num_elements());
  auto module =
      kernel_jit().compile(result.function, result.kernels, result.memory,
                           largest <= kTinyKernelElements ? codegen::LlvmPipeline::light
                                                          : codegen::LlvmPipeline::standard);
  return std::make_shared<const Kernel>(key.op, std::move(result), std::move(module));
}

// ---- the cache -------------------------------------------------------------------------------

// An elementwise signature with its full-size operands' sizes left out: the sizes it was
// compiled for, until there are too many and it goes generic.
struct Family {
  std::vector<int64_t> sizes;
  bool generic = false;
};

class Cache {
 public:
  // The kernel held for `key`, or null.
  std::shared_ptr<const Kernel> find(const KeyView& key) {
    std::lock_guard lock(mutex_);
    auto it = map_.find(key);
    if (it == map_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second.position);
    ++info_.hits;
    return it->second.kernel;
  }

  // The kernel for `key`, compiled now if it is not held.
  std::shared_ptr<const Kernel> get(const KeyView& key) {
    if (std::shared_ptr<const Kernel> kernel = find(key)) return kernel;
    return compile(key.key());
  }

  // Compiles the kernel for `key` (not held a moment ago) and holds it. Compiles run outside
  // the lock, so other threads' hits go on meanwhile; two threads missing the same key both
  // compile, and the second result is dropped.
  std::shared_ptr<const Kernel> compile(const KernelKey& key) {
    {
      // A bad KILN_EAGER_CACHE_SIZE fails here, before anything is compiled or held.
      std::lock_guard lock(mutex_);
      capacity();
    }
    const auto start = std::chrono::steady_clock::now();
    std::shared_ptr<const Kernel> kernel = compile_kernel(key);
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    bool full = false;
    {
      std::lock_guard lock(mutex_);
      ++info_.compiles;
      info_.compile_seconds += took.count();
      auto [it, inserted] = map_.try_emplace(key, Slot{kernel, {}});
      if (!inserted) return it->second.kernel;
      order_.push_front(&it->first);
      it->second.position = order_.begin();
      full = evict_to(capacity());
    }
    if (full) warn_full();
    return kernel;
  }

  // Whether the elementwise signature `family` (full-size operands as shape (-1)) runs generic
  // kernels, now that it is asked for `size` elements.
  bool generic(const KeyView& family, int64_t size) {
    std::lock_guard lock(mutex_);
    auto it = families_.find(family);
    if (it == families_.end()) {
      const int64_t most = capacity();  // a bad KILN_EAGER_CACHE_SIZE fails before it is held
      it = families_.try_emplace(family.key(), FamilySlot{}).first;
      family_order_.push_front(&it->first);
      it->second.position = family_order_.begin();
      drop_families_to(most);
    } else {
      family_order_.splice(family_order_.begin(), family_order_, it->second.position);
    }
    Family& f = it->second.family;
    if (f.generic) return true;
    if (std::find(f.sizes.begin(), f.sizes.end(), size) != f.sizes.end()) return false;
    f.sizes.push_back(size);
    if (f.sizes.size() <= kExactSizes) return false;
    f.generic = true;
    ++info_.generic;
    return true;
  }

  EagerCacheInfo info() {
    std::lock_guard lock(mutex_);
    EagerCacheInfo info = info_;
    info.kernels = static_cast<int64_t>(map_.size());
    info.families = static_cast<int64_t>(families_.size());
    info.capacity = capacity();
    return info;
  }

  void clear() {
    std::lock_guard lock(mutex_);
    map_.clear();
    order_.clear();
    families_.clear();
    family_order_.clear();
    info_ = {};
    warned_full_ = false;
  }

  void forget_capacity() {
    std::lock_guard lock(mutex_);
    capacity_ = 0;
  }

  void set_capacity(int64_t kernels) {
    bool full = false;
    {
      std::lock_guard lock(mutex_);
      capacity_ = kernels;
      full = evict_to(kernels);
      drop_families_to(kernels);
    }
    if (full) warn_full();
  }

 private:
  struct Slot {
    std::shared_ptr<const Kernel> kernel;  // shared: a running op keeps an evicted kernel alive
    std::list<const KernelKey*>::iterator position;
  };

  struct FamilySlot {
    Family family;
    std::list<const KernelKey*>::iterator position;
  };

  int64_t capacity() {
    if (capacity_ == 0) capacity_ = detail::eager_capacity_from_env();
    return capacity_;
  }

  // Drops the least recently used kernels beyond `kernels`; true the first time it drops any
  // (the caller then warns, outside the lock: a log sink may call back into the cache).
  bool evict_to(int64_t kernels) {
    bool first = false;
    while (static_cast<int64_t>(map_.size()) > kernels) {
      if (!warned_full_) warned_full_ = first = true;
      auto it = map_.find(*order_.back());
      order_.pop_back();
      map_.erase(it);
      ++info_.evictions;
    }
    return first;
  }

  // Forgets the least recently missed families beyond `families`. Families are keyed by
  // attributes too (elu's alpha, pad's value), so a program may make any number of them; one
  // forgotten only compiles a few exact sizes again before it goes generic again.
  void drop_families_to(int64_t families) {
    while (static_cast<int64_t>(families_.size()) > families) {
      auto it = families_.find(*family_order_.back());
      family_order_.pop_back();
      families_.erase(it);
    }
  }

  void warn_full() {
    const int64_t kernels = info().capacity;
    log_message(fmt::format(
        "the eager kernel cache is full ({} kernel{}): the least recently used are dropped and "
        "compiled again when needed. Code that runs many shapes eagerly compiles a kernel per "
        "shape; wrap it in kiln::function, or raise the limit (kiln::set_eager_cache_capacity, "
        "KILN_EAGER_CACHE_SIZE)",
        kernels, kernels == 1 ? "" : "s"));
  }

  std::mutex mutex_;
  std::unordered_map<KernelKey, Slot, KeyHash, KeyEqual> map_;
  std::list<const KernelKey*> order_;  // most recently used first
  // At most as many families as kernels: a family worth remembering holds kernels.
  std::unordered_map<KernelKey, FamilySlot, KeyHash, KeyEqual> families_;
  std::list<const KernelKey*> family_order_;  // most recently missed first
  EagerCacheInfo info_;
  int64_t capacity_ = 0;  // 0: not read from the environment yet
  bool warned_full_ = false;
};

Cache& cache() {
  static Cache* instance = new Cache();  // never destroyed: kernels may run during exit
  return *instance;
}

// ---- running ops -----------------------------------------------------------------------------

// Ops made from attributes alone (the creation ops without operands).
bool materialized(ir::Op op) {
  return op_num_inputs(op) == 0;
}

std::vector<ir::HostTensor> interpret(ir::Op op, std::span<const ir::HostTensor* const> inputs,
                                      const ir::Attrs& attrs,
                                      std::span<const ir::TensorType> output_types) {
  std::vector<ir::HostTensor> values;
  values.reserve(inputs.size());
  for (const ir::HostTensor* t : inputs)
    values.push_back(*t);
  return ir::run_op(op, values, attrs, output_types);
}

// The donated operand (DonatedOperands) whose buffer the result of `op` may take: an
// elementwise op's only result with the operand's dtype and shape, the buffer owned by that
// operand alone and passed once. Null when there is none.
const ir::HostTensor* reusable_operand(ir::Op op, std::span<const ir::HostTensor* const> inputs,
                                       std::span<const ir::TensorType> output_types) {
  if (donations_alive.load(std::memory_order_relaxed) == 0) return nullptr;
  if (!ir::has_trait(op, ir::kElementwise) || output_types.size() != 1) return nullptr;
  if (donated[0] == nullptr && donated[1] == nullptr) return nullptr;
  for (const ir::HostTensor* t : inputs) {
    if (t != donated[0] && t != donated[1]) continue;
    if (t->type() != output_types[0] || t->nbytes() == 0 || !t->owns_storage_alone()) continue;
    const bool repeated = std::count_if(inputs.begin(), inputs.end(),
                                        [&](const auto* u) { return u->raw() == t->raw(); }) != 1;
    if (!repeated) return t;
  }
  return nullptr;
}

std::vector<ir::HostTensor> allocate(std::span<const ir::TensorType> types) {
  std::vector<ir::HostTensor> outputs;
  outputs.reserve(types.size());
  for (const ir::TensorType& type : types)
    outputs.push_back(ir::HostTensor::uninitialized(type));
  return outputs;
}

// Whether `op` only moves bytes in a way one memcpy does: a reshape (squeeze, expand_dims) keeps
// the bytes as they are, and a slice whose result is one contiguous block of its operand (single
// indices, then one range with stride 1, then whole dimensions: a batch of rows) copies that
// block. The offset of the block; a compiled kernel would be specialised for every offset.
std::optional<int64_t> copied_bytes_offset(ir::Op op, const ir::HostTensor& in,
                                           const ir::Attrs& attrs, const ir::Shape& out) {
  if (op == ir::Op::reshape || op == ir::Op::squeeze || op == ir::Op::expand_dims) return 0;
  if (op != ir::Op::slice) return std::nullopt;
  if (out.num_elements() == 0) return 0;  // nothing to copy
  const ir::Shape& shape = in.type().shape;
  const std::vector<int64_t>& begin = attrs.get_ints("begin");
  const std::vector<int64_t>& strides = attrs.get_ints("strides");
  const std::vector<int64_t> in_strides = shape.strides();
  int64_t offset = 0;
  int64_t d = 0;
  // Single indices, then at most one range with stride 1, then whole dimensions.
  for (; d < shape.rank() && out[d] == 1; ++d)
    offset += begin[static_cast<size_t>(d)] * in_strides[static_cast<size_t>(d)];
  if (d < shape.rank() && strides[static_cast<size_t>(d)] == 1) {
    offset += begin[static_cast<size_t>(d)] * in_strides[static_cast<size_t>(d)];
    ++d;
  }
  for (; d < shape.rank(); ++d)
    if (out[d] != shape[d] || strides[static_cast<size_t>(d)] != 1) return std::nullopt;
  return offset * static_cast<int64_t>(ir::dtype_size(in.type().dtype));
}

// A plain matmul (2-D, f32 or f64, big enough for the packed GEMM) runs on the GEMM compiled for
// any sizes (codegen/generic_gemm.h) instead of a kernel per shape: an eager training loop meets
// a few shapes per layer and batch size, each of which would cost ~0.1 s of compile. False when
// the matmul is not one of those.
bool run_matmul(const ir::HostTensor& a, const ir::HostTensor& b, const ir::Attrs& attrs,
                ir::HostTensor& out) {
  const ir::DType dtype = a.type().dtype;
  if (a.type().shape.rank() != 2 || b.type().shape.rank() != 2 || out.type().dtype != dtype)
    return false;
  const ir::MatmulDims dims = ir::matmul_dims(a.type().shape, b.type().shape, attrs);
  if (!codegen::generic_gemm_handles(dtype, dims.m, dims.n, dims.k)) return false;
  codegen::run_generic_gemm(kernel_jit(), dtype, dims.transpose_a, dims.transpose_b, dims.m, dims.n,
                            dims.k, a.raw(), b.raw(), out.raw());
  return true;
}

// An elementwise op whose operands all have the result's shape or are 0-d: it computes the same
// on the flattened buffers, so one kernel serves every shape of a size.
bool flattenable(ir::Op op, std::span<const ir::HostTensor* const> inputs,
                 std::span<const ir::TensorType> output_types) {
  if (!ir::has_trait(op, ir::kElementwise) || output_types.size() != 1 || inputs.empty())
    return false;
  const ir::Shape& shape = output_types[0].shape;
  for (const ir::HostTensor* t : inputs) {
    const ir::Shape& s = t->type().shape;
    if (s.rank() != 0 && s != shape) return false;
  }
  return true;
}

// Runs a flattened elementwise op on `size` elements as pieces of fixed sizes (see the top).
void run_generic(ir::Op op, std::span<const ir::HostTensor* const> inputs, const ir::Attrs& attrs,
                 ir::HostTensor& output, int64_t size) {
  const size_t n_in = inputs.size();
  detail::InlineList<void*> in(n_in);
  void* out[1];
  auto base = [&](size_t i) { return const_cast<std::byte*>(inputs[i]->raw()); };
  auto full = [&](size_t i) { return inputs[i]->type().shape.rank() != 0; };
  int64_t offset = 0;
  auto run_piece = [&](int64_t piece) {
    std::shared_ptr<const Kernel> kernel = cache().get(KeyView(op, attrs, inputs, piece));
    for (size_t i = 0; i < n_in; ++i) {
      in[i] = full(i) ? base(i) + offset * ir::dtype_size(inputs[i]->type().dtype) : base(i);
    }
    out[0] = output.raw() + offset * ir::dtype_size(output.type().dtype);
    kernel->run(in.span(), out);
    offset += piece;
  };
  while (size - offset >= kLargestPiece)
    run_piece(kLargestPiece);
  for (int64_t piece = kLargestPiece / 2; piece >= kSmallestPiece; piece /= 2) {
    if (size - offset >= piece) run_piece(piece);
  }
  const int64_t rest = size - offset;
  if (rest == 0) return;
  // The last few elements, copied into padded buffers (the padding repeats the last element, so
  // it holds only values the op sees anyway).
  std::vector<ir::HostTensor> padded;
  for (size_t i = 0; i < n_in; ++i) {
    if (!full(i)) {
      in[i] = base(i);
      continue;
    }
    const ir::DType dtype = inputs[i]->type().dtype;
    const size_t es = ir::dtype_size(dtype);
    padded.push_back(ir::HostTensor::uninitialized({dtype, ir::Shape{kSmallestPiece}}));
    std::byte* to = padded.back().raw();
    const std::byte* from = base(i) + offset * static_cast<int64_t>(es);
    std::memcpy(to, from, static_cast<size_t>(rest) * es);
    for (int64_t j = rest; j < kSmallestPiece; ++j)
      std::memcpy(to + j * static_cast<int64_t>(es), from + (rest - 1) * static_cast<int64_t>(es),
                  es);
    in[i] = to;
  }
  const ir::DType out_dtype = output.type().dtype;
  ir::HostTensor result = ir::HostTensor::uninitialized({out_dtype, ir::Shape{kSmallestPiece}});
  std::shared_ptr<const Kernel> kernel = cache().get(KeyView(op, attrs, inputs, kSmallestPiece));
  out[0] = result.raw();
  kernel->run(in.span(), out);
  const size_t es = ir::dtype_size(out_dtype);
  std::memcpy(output.raw() + offset * static_cast<int64_t>(es), result.raw(),
              static_cast<size_t>(rest) * es);
}

// For an op whose result rows (along its leading dimension) each depend only on the same rows
// of some operands: a bit per such operand (their leading dimension is the result's); 0 for
// any other op, or a result of fewer than 2 rows. Such ops run by pieces of
// rows when a signature meets many batch sizes (run_rows): elementwise ops with broadcasting,
// reductions and arg-reductions that keep axis 0, softmax and log_softmax along another axis,
// 2-D pooling and convolution (NHWC: the batch leads).
uint64_t row_operands(ir::Op op, std::span<const ir::HostTensor* const> inputs,
                      const ir::Attrs& attrs, std::span<const ir::TensorType> output_types) {
  if (output_types.size() != 1 || inputs.empty() || inputs.size() > 64) return 0;
  const ir::Shape& out = output_types[0].shape;
  if (out.rank() < 1 || out[0] < 2) return 0;
  const int64_t n = out[0];
  const ir::Shape& first = inputs[0]->type().shape;
  auto leads = [&](const ir::Shape& s) { return s.rank() >= 1 && s[0] == n; };
  if (ir::has_trait(op, ir::kElementwise)) {
    // Operands of the result's rank with its rows are split; the others broadcast into every
    // row (a lower rank, or a leading dimension of 1) and are passed whole.
    uint64_t bits = 0;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const ir::Shape& s = inputs[i]->type().shape;
      if (s.rank() == out.rank() && s[0] == n) {
        bits |= uint64_t{1} << i;
      } else if (s.rank() > out.rank() || (s.rank() == out.rank() && s[0] != 1)) {
        return 0;
      }
    }
    return bits;
  }
  switch (op) {
    case ir::Op::reduce_sum:
    case ir::Op::reduce_mean:
    case ir::Op::reduce_max:
    case ir::Op::reduce_min:
    case ir::Op::reduce_prod: {
      if (attrs.get_ints("axes").empty() || !leads(first)) return 0;
      return ir::reduced_axes_mask(attrs, first.rank())[0] ? 0 : 1;
    }
    case ir::Op::argmax:
    case ir::Op::argmin:
      return leads(first) && ir::arg_reduce_axis(attrs, first.rank()) != 0 ? 1 : 0;
    case ir::Op::softmax:
    case ir::Op::log_softmax:
      return leads(first) && ir::normalize_axis(attrs.get_int("axis", -1), first.rank()) != 0 ? 1
                                                                                              : 0;
    case ir::Op::max_pool2d:
    case ir::Op::avg_pool2d:
      return leads(first) ? 1 : 0;
    case ir::Op::conv2d:  // the filter is passed whole
      return leads(first) && inputs.size() == 2 ? 1 : 0;
    default:
      return 0;
  }
}

// Runs `op` on `n` rows as pieces of power-of-two row counts: the row operands' (and the
// result's) pieces are consecutive blocks of their buffers, the other operands are passed whole.
// Every piece must start 64-byte aligned (the runtime's contract), so the smallest piece is the
// fewest rows that span a multiple of 64 bytes in every split buffer; the rows left after the
// pieces run as one smallest piece in padded copies. A signature compiles at most one kernel
// per power of two, whatever batch sizes follow.
void run_rows(ir::Op op, std::span<const ir::HostTensor* const> inputs, const ir::Attrs& attrs,
              uint64_t row_operands, ir::HostTensor& output, int64_t n) {
  const size_t n_in = inputs.size();
  auto split = [&](size_t i) { return ((row_operands >> i) & 1) != 0; };
  auto row_bytes = [n](const ir::HostTensor& t) { return static_cast<int64_t>(t.nbytes()) / n; };
  int64_t smallest = 1;
  auto align = [&](int64_t bytes) {
    smallest = std::max(smallest, 64 / std::gcd<int64_t>(64, std::max<int64_t>(bytes, 1)));
  };
  align(row_bytes(output));
  for (size_t i = 0; i < n_in; ++i)
    if (split(i)) align(row_bytes(*inputs[i]));
  // The largest piece keeps a piece's result near kLargestPiece elements, big enough for the
  // kernel to split it across threads itself.
  const int64_t row_elements = std::max<int64_t>(output.type().shape.num_elements() / n, 1);
  const int64_t largest = std::max<int64_t>(
      smallest,
      std::bit_floor(static_cast<uint64_t>(std::max<int64_t>(kLargestPiece / row_elements, 1))));
  detail::InlineList<void*> in(n_in);
  void* out[1];
  auto run_piece = [&](int64_t rows, int64_t offset) {
    std::shared_ptr<const Kernel> kernel =
        cache().get(KeyView(op, attrs, inputs, rows, row_operands));
    for (size_t i = 0; i < n_in; ++i) {
      std::byte* base = const_cast<std::byte*>(inputs[i]->raw());
      in[i] = split(i) ? base + offset * row_bytes(*inputs[i]) : base;
    }
    out[0] = output.raw() + offset * row_bytes(output);
    kernel->run(in.span(), out);
  };
  int64_t offset = 0;
  while (n - offset >= largest) {
    run_piece(largest, offset);
    offset += largest;
  }
  for (int64_t rows = largest / 2; rows >= smallest; rows /= 2) {
    if (n - offset >= rows) {
      run_piece(rows, offset);
      offset += rows;
    }
  }
  const int64_t rest = n - offset;
  if (rest == 0) return;
  // The last rows, copied into padded buffers of `smallest` rows (the padding repeats the last
  // row, so the op sees only values it sees anyway).
  std::vector<ir::HostTensor> padded;
  padded.reserve(n_in + 1);
  for (size_t i = 0; i < n_in; ++i) {
    if (!split(i)) {
      in[i] = const_cast<std::byte*>(inputs[i]->raw());
      continue;
    }
    const ir::TensorType& type = inputs[i]->type();
    std::vector<int64_t> dims(type.shape.dims().begin(), type.shape.dims().end());
    dims[0] = smallest;
    padded.push_back(ir::HostTensor::uninitialized({type.dtype, ir::Shape(std::move(dims))}));
    const int64_t bytes = row_bytes(*inputs[i]);
    std::byte* to = padded.back().raw();
    const std::byte* from = inputs[i]->raw() + offset * bytes;
    std::memcpy(to, from, static_cast<size_t>(rest * bytes));
    for (int64_t r = rest; r < smallest; ++r)
      std::memcpy(to + r * bytes, from + (rest - 1) * bytes, static_cast<size_t>(bytes));
    in[i] = to;
  }
  const ir::TensorType& out_type = output.type();
  std::vector<int64_t> dims(out_type.shape.dims().begin(), out_type.shape.dims().end());
  dims[0] = smallest;
  ir::HostTensor result =
      ir::HostTensor::uninitialized({out_type.dtype, ir::Shape(std::move(dims))});
  std::shared_ptr<const Kernel> kernel =
      cache().get(KeyView(op, attrs, inputs, smallest, row_operands));
  out[0] = result.raw();
  kernel->run(in.span(), out);
  std::memcpy(output.raw() + offset * row_bytes(output), result.raw(),
              static_cast<size_t>(rest * row_bytes(output)));
}

}  // namespace

EagerMode eager_mode() {
  int mode = mode_setting.load(std::memory_order_relaxed);
  if (mode < 0) {
    mode = static_cast<int>(detail::eager_mode_from_env());
    mode_setting.store(mode, std::memory_order_relaxed);
  }
  return static_cast<EagerMode>(mode);
}

void set_eager_mode(EagerMode mode) {
  mode_setting.store(static_cast<int>(mode), std::memory_order_relaxed);
}

EagerCacheInfo eager_cache_info() {
  return cache().info();
}

void clear_eager_cache() {
  cache().clear();
}

void set_eager_cache_capacity(int64_t kernels) {
  if (kernels < 1) {
    throw ValueError(fmt::format(
        "set_eager_cache_capacity: the cache must hold at least 1 kernel, got {}", kernels));
  }
  cache().set_capacity(kernels);
}

namespace detail {

DonatedOperands::DonatedOperands(const ir::HostTensor* first, const ir::HostTensor* second)
    : previous_{donated[0], donated[1]} {
  donated[0] = first;
  donated[1] = second;
  donations_alive.fetch_add(1, std::memory_order_relaxed);
}

DonatedOperands::~DonatedOperands() {
  donations_alive.fetch_sub(1, std::memory_order_relaxed);
  donated[0] = previous_[0];
  donated[1] = previous_[1];
}

EagerMode eager_mode_from_env() {
  const char* value = std::getenv("KILN_EAGER");
  if (value == nullptr || *value == '\0') return EagerMode::compiled;
  std::string_view text(value);
  if (text == "compiled" || text == "compile") return EagerMode::compiled;
  if (text == "interpret") return EagerMode::interpret;
  throw ValueError(fmt::format(
      "KILN_EAGER='{}' is not a mode: use 'compiled' (the default: eager ops run compiled "
      "kernels) or 'interpret' (the reference interpreter, for debugging)",
      text));
}

int64_t eager_capacity_from_env() {
  const char* value = std::getenv("KILN_EAGER_CACHE_SIZE");
  if (value == nullptr || *value == '\0') return kDefaultCapacity;
  char* end = nullptr;
  errno = 0;
  const long long n = std::strtoll(value, &end, 10);
  if (errno != 0 || end == value || *end != '\0' || n < 1) {
    throw ValueError(fmt::format(
        "KILN_EAGER_CACHE_SIZE='{}' is not a kernel count: give a whole number of at least 1 "
        "(the default is {})",
        value, kDefaultCapacity));
  }
  return static_cast<int64_t>(n);
}

void reread_eager_environment() {
  mode_setting.store(-1, std::memory_order_relaxed);
  cache().forget_capacity();
}

passes::PipelineResult plan_one_op(ir::Op op, const ir::Attrs& attrs,
                                   std::span<const ir::TensorType> params,
                                   passes::ConvLowering conv_lowering) {
  ir::Function f(fmt::format("eager_{}", ir::op_name(op)));
  std::vector<ir::Value*> args;
  for (size_t i = 0; i < params.size(); ++i)
    args.push_back(f.add_param(params[i], fmt::format("x{}", i)));
  ir::Node* node = f.append(op, std::move(args), attrs);
  std::vector<ir::Value*> outputs;
  for (size_t i = 0; i < node->num_outputs(); ++i)
    outputs.push_back(node->output(i));
  f.set_outputs(std::move(outputs));
  passes::PipelineOptions options;
  options.print_after.clear();  // KILN_PRINT_AFTER is for the user's functions
  options.conv_lowering = conv_lowering;
  return passes::run_pipeline(std::move(f), options);
}

std::vector<ir::HostTensor> run_eager(ir::Op op, std::span<const ir::HostTensor* const> inputs,
                                      const ir::Attrs& attrs,
                                      std::span<const ir::TensorType> output_types) {
  if (materialized(op) || eager_mode() == EagerMode::interpret)
    return interpret(op, inputs, attrs, output_types);
  std::vector<ir::HostTensor> outputs;
  try {
    if (const ir::HostTensor* reused = reusable_operand(op, inputs, output_types))
      outputs.push_back(*reused);  // shares the buffer: the kernel writes over its operand
    else
      outputs = allocate(output_types);
  } catch (ResourceError& e) {
    e.prefix(ir::op_name(op));  // as the interpreter names it
    throw;
  }
  if (inputs.size() == 1 && output_types.size() == 1) {
    if (std::optional<int64_t> offset =
            copied_bytes_offset(op, *inputs[0], attrs, output_types[0].shape)) {
      const size_t bytes = output_types[0].nbytes();
      if (bytes != 0) std::memcpy(outputs[0].raw(), inputs[0]->raw() + *offset, bytes);
      return outputs;
    }
  }
  if (op == ir::Op::matmul && run_matmul(*inputs[0], *inputs[1], attrs, outputs[0])) return outputs;
  if (flattenable(op, inputs, output_types)) {
    const int64_t size = output_types[0].shape.num_elements();
    if (size == 0) return outputs;
    KeyView key(op, attrs, inputs, size);
    std::shared_ptr<const Kernel> kernel = cache().find(key);
    if (kernel == nullptr) {
      // A size this signature has no kernel for: compile one, unless it has seen many sizes
      // (the family key has every full-size operand as (-1)).
      if (cache().generic(KeyView(op, attrs, inputs, -1), size)) {
        run_generic(op, inputs, attrs, outputs[0], size);
        return outputs;
      }
      kernel = cache().compile(key.key());
    }
    InlineList<void*> in(inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i)
      in[i] = const_cast<std::byte*>(inputs[i]->raw());
    void* out[1] = {outputs[0].raw()};
    kernel->run(in.span(), out);
    return outputs;
  }
  KeyView key(op, attrs, inputs, kNotFlat);
  std::shared_ptr<const Kernel> kernel = cache().find(key);
  if (kernel == nullptr) {
    // A shape this signature has no kernel for: an op that works row by row goes generic in its
    // leading dimension once it has seen many (the family key has every row operand's leading
    // dimension as -1).
    if (uint64_t rows = row_operands(op, inputs, attrs, output_types)) {
      if (cache().generic(KeyView(op, attrs, inputs, -1, rows), output_types[0].shape[0])) {
        run_rows(op, inputs, attrs, rows, outputs[0], output_types[0].shape[0]);
        return outputs;
      }
    }
    kernel = cache().compile(key.key());
  }
  InlineList<void*> in(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i)
    in[i] = const_cast<std::byte*>(inputs[i]->raw());
  InlineList<void*> out(outputs.size());
  for (size_t i = 0; i < outputs.size(); ++i)
    out[i] = outputs[i].raw();
  kernel->run(in.span(), out.span());
  return outputs;
}

}  // namespace detail
}  // namespace kiln
