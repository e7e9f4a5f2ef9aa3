#include "bundle_builder.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>
#include <utility>

#include "../../examples/main_job_models.h"
#include "bundle_format.h"
#include "kiln/frontend/core/trace.h"

namespace kiln::gpu_check {
namespace {

namespace k = kiln;
using Clock = std::chrono::steady_clock;

// Tolerances of an output: |got - want| <= atol + rtol·|want| (integers: exact).
struct Tolerance {
  double atol = 1e-5, rtol = 1e-4;
};
constexpr Tolerance kMath{1e-5, 1e-4};    // elementwise and math functions
constexpr Tolerance kReduce{1e-4, 1e-4};  // sums over up to 6144 values of about 1
constexpr Tolerance kRandom{1e-5, 1e-4};  // the same Philox numbers, transformed
constexpr Tolerance kExact{0, 0};         // integers and bools
Tolerance gemm_tolerance(int64_t k) {     // FP32 GEMMs: relative 1e-4, and K·eps-ish
  return {2e-6 * static_cast<double>(k), 1e-4};
}

// One output of an op library: its label and tolerance (exact for integers regardless).
struct Out {
  std::string label;
  Tolerance tolerance = kMath;
};

std::string dtype_of(const k::Tensor& t) {
  return std::string(k::ir::dtype_name(t.dtype()));
}

void write_file(const std::string& path, const void* data, size_t bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
  if (!out) throw std::runtime_error("gpu_check_bundle: cannot write " + path);
}

// A tensor of `shape` (f32) uniform in [-1, 1) from `seed`, bundle_format.h's generator.
k::Tensor uniform(k::Shape shape, uint64_t seed) {
  k::ir::HostTensor host(k::f32, std::move(shape));
  fill_uniform(reinterpret_cast<float*>(host.raw()), host.type().shape.num_elements(), seed);
  return k::Tensor(std::move(host));
}

// `count` integers in [0, bound) of `dtype` from `seed`.
k::Tensor integers(k::Shape shape, int64_t bound, k::DType dtype, uint64_t seed) {
  k::ir::HostTensor host(dtype, std::move(shape));
  uint64_t state = seed;
  const int64_t n = host.type().shape.num_elements();
  for (int64_t i = 0; i < n; ++i) {
    const auto v = static_cast<int64_t>(splitmix(state) % static_cast<uint64_t>(bound));
    if (dtype == k::u8)
      reinterpret_cast<uint8_t*>(host.raw())[i] = static_cast<uint8_t>(v);
    else if (dtype == k::i32)
      reinterpret_cast<int32_t*>(host.raw())[i] = static_cast<int32_t>(v);
    else
      reinterpret_cast<int64_t*>(host.raw())[i] = v;
  }
  return k::Tensor(std::move(host));
}

LibraryRecord new_record(const std::string& name, const std::string& kind) {
  LibraryRecord record;
  record.name = name;
  record.file = "lib" + name + ".so";
  record.kind = kind;
  return record;
}

class Builder {
 public:
  explicit Builder(BuildOptions options) : options_(std::move(options)) {
    std::filesystem::create_directories(options_.out_dir);
  }

  // An op library: `f` on `inputs` (carried as files), its outputs against the JIT's.
  template <class F, class... T>
  void ops(const std::string& name, const k::Function<F>& f, const std::vector<Out>& outs,
           const T&... inputs) {
    const auto start = Clock::now();
    LibraryRecord record = new_record(name, "ops");
    const k::detail::TracedView view = f.traced(inputs...);
    compile(name, view);
    const std::vector<k::Tensor> args{inputs...};
    for (size_t i = 0; i < args.size(); ++i)
      record.inputs.push_back(input_file(name, i, args[i]));
    const std::vector<k::Tensor> results = f(inputs...);
    if (results.size() != outs.size())
      throw std::logic_error(
          fmt::format("{}: {} outputs, {} labels", name, results.size(), outs.size()));
    for (size_t j = 0; j < results.size(); ++j)
      record.outputs.push_back(output_file(name, j, outs[j], {results[j]}));
    finish(std::move(record), start);
  }

  // A training step run `steps` times on the same batch: each step's outputs and the state's
  // samples afterwards against the JIT's.
  template <class F>
  void train(const std::string& name, const k::Function<F>& f, const k::Tensor& images,
             const k::Tensor& labels, int steps, const std::vector<Out>& outs,
             Tolerance state_tolerance) {
    const auto start = Clock::now();
    LibraryRecord record = new_record(name, "train");
    record.steps = steps;
    const k::detail::TracedView view = f.traced(images, labels);
    compile(name, view);  // the state at its current (initial) values
    record.inputs.push_back(input_file(name, 0, images));
    record.inputs.push_back(input_file(name, 1, labels));
    std::vector<std::vector<k::Tensor>> per_output(outs.size());
    for (int s = 0; s < steps; ++s) {
      const std::vector<k::Tensor> results = f(images, labels);
      for (size_t j = 0; j < outs.size(); ++j)
        per_output[j].push_back(results.at(j));
    }
    for (size_t j = 0; j < outs.size(); ++j)
      record.outputs.push_back(output_file(name, j, outs[j], per_output[j]));
    // The state's names as aot::compile gives them (a repeated name gets _1, _2, ...).
    std::set<std::string> taken;
    size_t num_inputs = 0;
    for (const k::detail::Binding& b : view.bindings)
      num_inputs += b.kind == k::detail::Binding::Kind::argument ? 1 : 0;
    for (size_t i = num_inputs; i < view.bindings.size(); ++i) {
      const std::string base = view.graph.param(i)->name();
      std::string state_name = base;
      for (int n = 1; taken.count(state_name); ++n)
        state_name = fmt::format("{}_{}", base, n);
      taken.insert(state_name);
      const k::detail::Binding& b = view.bindings[i];
      if (b.kind != k::detail::Binding::Kind::variable) continue;  // captured: never changes
      const k::Tensor value = b.variable.value();
      if (value.dtype() != k::f32) continue;  // counters: the steps' outputs cover them
      const std::vector<float> values = value.to_vector<float>();
      const auto n = static_cast<int64_t>(values.size());
      const int64_t count = std::min<int64_t>(n, 512);
      std::vector<float> sample(static_cast<size_t>(count));
      for (int64_t s = 0; s < count; ++s)
        sample[static_cast<size_t>(s)] = values[static_cast<size_t>(sample_index(s, n))];
      const std::string file = fmt::format("{}.state{}.bin", name, i - num_inputs);
      write_file(path(file), sample.data(), sample.size() * sizeof(float));
      record.state.push_back({.name = state_name,
                              .dtype = "f32",
                              .elements = n,
                              .count = count,
                              .atol = state_tolerance.atol,
                              .rtol = state_tolerance.rtol,
                              .file = file});
    }
    finish(std::move(record), start);
  }

  // A GEMM library relu(a·b + bias) of M×K by K×N, its operands generated on the GPU machine,
  // 256 output elements against a double-precision reference.
  void gemm(int64_t m, int64_t n, int64_t kk) {
    const auto start = Clock::now();
    const std::string name = fmt::format("gemm_{}x{}x{}", m, n, kk);
    auto f = k::function([](const k::Tensor& a, const k::Tensor& b,
                            const k::Tensor& bias) { return k::relu(k::matmul(a, b) + bias); },
                         name);
    compile(name, f.traced(k::zeros({m, kk}), k::zeros({kk, n}), k::zeros({n})));
    const uint64_t seeds[3] = {101, 202, 303};
    std::vector<float> a(static_cast<size_t>(m * kk)), b(static_cast<size_t>(kk * n)),
        bias(static_cast<size_t>(n));
    fill_uniform(a.data(), m * kk, seeds[0]);
    fill_uniform(b.data(), kk * n, seeds[1]);
    fill_uniform(bias.data(), n, seeds[2]);
    const int64_t count = 256;
    std::vector<float> want(count);
    for (int64_t s = 0; s < count; ++s) {
      const int64_t at = sample_index(s, m * n), i = at / n, j = at % n;
      double sum = bias[static_cast<size_t>(j)];
      for (int64_t p = 0; p < kk; ++p)
        sum += double(a[static_cast<size_t>(i * kk + p)]) * b[static_cast<size_t>(p * n + j)];
      want[static_cast<size_t>(s)] = static_cast<float>(std::max(sum, 0.0));
    }
    const std::string file = name + ".out0.bin";
    write_file(path(file), want.data(), want.size() * sizeof(float));
    const Tolerance t = gemm_tolerance(kk);
    LibraryRecord record = new_record(name, "gemm");
    record.m = m;
    record.n = n;
    record.k = kk;
    record.inputs = {{"f32", m * kk, fmt::format("random:{}", seeds[0])},
                     {"f32", kk * n, fmt::format("random:{}", seeds[1])},
                     {"f32", n, fmt::format("random:{}", seeds[2])}};
    record.outputs = {
        {"f32", m * n, "relu(a.b+bias)", t.atol, t.rtol, fmt::format("sample:{}:{}", count, file)}};
    finish(std::move(record), start);
  }

  // The fused elementwise chain over `elements` f32 values (generated there), 4096 outputs
  // against the JIT's on the same values.
  template <class F>
  void chain(k::Function<F>& f, int64_t elements) {
    const auto start = Clock::now();
    const std::string name = "chain";
    compile(name, f.traced(k::zeros({elements})));
    f.set_log_retraces(false);  // traced again for the sample's shape below
    const uint64_t seed = 404;
    std::vector<float> x(static_cast<size_t>(elements));
    fill_uniform(x.data(), elements, seed);
    const int64_t count = std::min<int64_t>(4096, elements);
    k::ir::HostTensor gathered(k::f32, k::Shape{count});
    for (int64_t s = 0; s < count; ++s)
      reinterpret_cast<float*>(gathered.raw())[s] =
          x[static_cast<size_t>(sample_index(s, elements))];
    const std::vector<float> want = f(k::Tensor(std::move(gathered))).template to_vector<float>();
    const std::string file = name + ".out0.bin";
    write_file(path(file), want.data(), want.size() * sizeof(float));
    LibraryRecord record = new_record(name, "chain");
    record.inputs = {{"f32", elements, fmt::format("random:{}", seed)}};
    record.outputs = {{"f32", elements, "chain(x)", kMath.atol, kMath.rtol,
                       fmt::format("sample:{}:{}", count, file)}};
    finish(std::move(record), start);
  }

  std::vector<BuiltLibrary> done() {
    const std::string manifest = write_manifest(records_);
    write_file(path(kManifestFile), manifest.data(), manifest.size());
    return std::move(built_);
  }

 private:
  std::string path(const std::string& file) const {
    return (std::filesystem::path(options_.out_dir) / file).string();
  }

  void compile(const std::string& name, const k::detail::TracedView& view) {
    k::aot::Options options;
    options.name = name;
    options.out_dir = options_.out_dir;
    options.device = "cuda";
    options.gpu_arch = options_.gpu_arch;
    const k::aot::Library lib = k::aot::detail::compile_traced(view, options, k::Loc::current());
    // Only the library travels: its header is of no use to gpu_check.
    std::filesystem::remove(lib.header);
    built_.push_back(
        {name, lib.library, std::make_shared<const k::ir::Function>(view.graph.clone())});
  }

  InputRecord input_file(const std::string& name, size_t i, const k::Tensor& t) {
    const std::string file = fmt::format("{}.in{}.bin", name, i);
    write_file(path(file), t.host().raw(), t.host().nbytes());
    return {dtype_of(t), t.shape().num_elements(), "file:" + file};
  }

  // The values of output `j` at each step, one after another.
  OutputRecord output_file(const std::string& name, size_t j, const Out& out,
                           const std::vector<k::Tensor>& steps) {
    const std::string file = fmt::format("{}.out{}.bin", name, j);
    std::string bytes;
    for (const k::Tensor& t : steps)
      bytes.append(reinterpret_cast<const char*>(t.host().raw()), t.host().nbytes());
    write_file(path(file), bytes.data(), bytes.size());
    const k::Tensor& t = steps.front();
    const bool exact = t.dtype() != k::f32 && t.dtype() != k::f64;
    const Tolerance tol = exact ? kExact : out.tolerance;
    return {dtype_of(t), t.shape().num_elements(), out.label, tol.atol, tol.rtol, "file:" + file};
  }

  void finish(LibraryRecord record, Clock::time_point start) {
    if (options_.verbose) {
      std::printf("gpu_check_bundle: %-22s %2zu inputs, %2zu outputs, %6.1f KiB, %.1f s\n",
                  record.file.c_str(), record.inputs.size(), record.outputs.size(),
                  static_cast<double>(std::filesystem::file_size(path(record.file))) / 1024,
                  std::chrono::duration<double>(Clock::now() - start).count());
      std::fflush(stdout);
    }
    records_.push_back(std::move(record));
  }

  BuildOptions options_;
  std::vector<LibraryRecord> records_;
  std::vector<BuiltLibrary> built_;
};

using V = std::vector<k::Tensor>;

// Elementwise, broadcast and unary math over a, b [64, 96] and c [96].
void elementwise(Builder& b, k::Shape shape, k::Shape row) {
  auto f = k::function(
      [](const k::Tensor& a, const k::Tensor& x, const k::Tensor& c) {
        const k::Tensor pos = k::abs(a) + 0.1f;
        return V{a + x,
                 a - c,
                 a * x,
                 a / (k::abs(x) + 0.5f),
                 k::maximum(a, x),
                 k::minimum(a, c),
                 k::pow(pos, x),
                 -a,
                 k::exp(a),
                 k::log(pos),
                 k::log1p(k::abs(a)),
                 k::expm1(a),
                 k::sqrt(pos),
                 k::rsqrt(pos),
                 k::tanh(a * 3.f),
                 k::sigmoid(a * 4.f),
                 k::relu(a),
                 k::elu(a),
                 k::gelu(a),
                 k::softplus(a),
                 k::erf(a),
                 k::sin(a * 3.f),
                 k::cos(a * 3.f),
                 k::floor(a * 4.f),
                 k::ceil(a * 4.f),
                 k::round(a * 4.f),
                 k::sign(a),
                 k::square(a),
                 k::reciprocal(k::abs(x) + 0.5f),
                 k::relu(a * 1.5f + 0.25f) * 0.5f - a * a * 0.125f};
      },
      "ops_elementwise");
  b.ops("ops_elementwise", f,
        {{"add"},  {"sub_bcast"}, {"mul"},  {"div"},     {"maximum"},    {"minimum_bcast"},
         {"pow"},  {"neg"},       {"exp"},  {"log"},     {"log1p"},      {"expm1"},
         {"sqrt"}, {"rsqrt"},     {"tanh"}, {"sigmoid"}, {"relu"},       {"elu"},
         {"gelu"}, {"softplus"},  {"erf"},  {"sin"},     {"cos"},        {"floor"},
         {"ceil"}, {"round"},     {"sign"}, {"square"},  {"reciprocal"}, {"chain"}},
        uniform(shape, 1), uniform(shape, 2), uniform(row, 3));
}

// Comparisons, logic, select and casts between every dtype.
void compare_cast(Builder& b) {
  auto f = k::function(
      [](const k::Tensor& a, const k::Tensor& x) {
        const k::Tensor gt = k::greater(a, x);
        return V{gt,
                 k::less_equal(a, x),
                 k::equal(k::floor(a * 2.f), k::floor(x * 2.f)),
                 k::not_equal(k::floor(a * 2.f), k::floor(x * 2.f)),
                 k::logical_and(k::greater(a, 0.f), k::less(x, 0.f)),
                 k::logical_or(gt, k::greater_equal(a, 0.5f)),
                 k::logical_not(gt),
                 k::where(gt, a, x * 2.f),
                 k::cast(a * 10.f, k::i32),
                 k::cast(a * 1000.f, k::i64),
                 k::cast(a, k::f64) * 2.0,
                 k::cast(k::abs(a) * 200.f, k::u8),
                 k::cast(gt, k::f32) + k::cast(k::cast(x * 5.f, k::i32), k::f32)};
      },
      "ops_compare_cast");
  b.ops("ops_compare_cast", f,
        {{"greater"},
         {"less_equal"},
         {"equal"},
         {"not_equal"},
         {"logical_and"},
         {"logical_or"},
         {"logical_not"},
         {"where"},
         {"cast_i32"},
         {"cast_i64"},
         {"cast_f64"},
         {"cast_u8"},
         {"cast_back_f32"}},
        uniform({64, 96}, 4), uniform({64, 96}, 5));
}

// Reductions over rows, columns, a middle axis and all axes; argmax/argmin; softmax.
void reductions(Builder& b) {
  auto f = k::function(
      [](const k::Tensor& a) {
        const k::Tensor a3 = k::reshape(a, {8, 8, 96});
        return V{k::reduce_sum(a),
                 k::reduce_sum(a, {0}),
                 k::reduce_sum(a, {1}),
                 k::reduce_sum(a3, {1}),
                 k::reduce_mean(a, {1}, true),
                 k::reduce_max(a, {0}),
                 k::reduce_min(a, {1}),
                 k::reduce_prod(a * 0.1f + 1.f, {1}),
                 k::reduce_variance(a, {0}),
                 k::reduce_logsumexp(a * 3.f, {1}),
                 k::argmax(a, 1, k::i32),
                 k::argmax(a, 0, k::i64),
                 k::argmin(a, 1, k::i32),
                 k::softmax(a * 3.f),
                 k::log_softmax(a * 3.f),
                 k::softmax(a, 0)};
      },
      "ops_reduce");
  b.ops("ops_reduce", f,
        {{"sum_all", kReduce},
         {"sum_cols", kReduce},
         {"sum_rows", kReduce},
         {"sum_middle", kReduce},
         {"mean_rows_keepdims", kReduce},
         {"max_cols"},
         {"min_rows"},
         {"prod_rows", kReduce},
         {"variance_cols", kReduce},
         {"logsumexp_rows", kReduce},
         {"argmax_rows"},
         {"argmax_cols"},
         {"argmin_rows"},
         {"softmax", kReduce},
         {"log_softmax", kReduce},
         {"softmax_axis0", kReduce}},
        uniform({64, 96}, 6));
}

// Data movement: transposes, concat, slices, pad, gather, tile, one_hot.
void shapes(Builder& b) {
  auto f = k::function(
      [](const k::Tensor& a, const k::Tensor& x, const k::Tensor& idx) {
        return V{k::transpose(a),
                 k::transpose(k::reshape(a, {8, 8, 96}), {2, 0, 1}),
                 k::concat({a, x}, 0),
                 k::concat({a, x}, 1),
                 a.index({k::Slice(1, k::none, 2), k::Slice(3, 50)}),
                 a.index({k::Slice(k::none, k::none, -1), 5}),
                 k::pad(a, {{1, 2}, {3, 0}}, 0.5f),
                 k::gather(a, idx, 0),
                 k::gather(a, idx, 1),
                 k::tile(x.index({k::Slice(0, 4)}), {2, 3}),
                 k::one_hot(idx, 10),
                 k::stack({a, x}, 1)};
      },
      "ops_shape");
  b.ops("ops_shape", f,
        {{"transpose"},
         {"transpose_3d"},
         {"concat0"},
         {"concat1"},
         {"slice_strided"},
         {"slice_reversed"},
         {"pad"},
         {"gather0"},
         {"gather1"},
         {"tile"},
         {"one_hot"},
         {"stack"}},
        uniform({64, 96}, 7), uniform({64, 96}, 8), integers({16}, 64, k::i32, 9));
}

// Convolutions, pooling and their gradients (through a GradientTape in the function).
void nn(Builder& b) {
  auto f = k::function(
      [](const k::Tensor& x, const k::Tensor& w, const k::Tensor& g) {
        k::GradientTape tape(/*persistent=*/true);
        tape.watch(x);
        tape.watch(w);
        const k::Tensor same = k::conv2d(x, w, {1, 1}, "same");
        const k::Tensor strided = k::conv2d(x, w, {2, 2}, "valid");
        const k::Tensor maxp = k::max_pool2d(x, {2, 2});
        const k::Tensor avgp = k::avg_pool2d(x, {2, 2});
        const k::Tensor maxp_same = k::max_pool2d(x, {3, 3}, {2, 2}, "same");
        const k::Tensor loss = k::reduce_sum(same * g) + k::reduce_sum(k::square(strided)) +
                               k::reduce_sum(maxp * maxp) + k::reduce_sum(avgp * 3.f) +
                               k::reduce_sum(maxp_same);
        const std::vector<k::Tensor> grads = tape.gradient(loss, {x, w});
        return V{same, strided, maxp, avgp, maxp_same, grads[0], grads[1]};
      },
      "ops_nn");
  b.ops("ops_nn", f,
        {{"conv2d_same", kReduce},
         {"conv2d_stride2", kReduce},
         {"max_pool"},
         {"avg_pool"},
         {"max_pool_same"},
         {"grad_input", kReduce},
         {"grad_filter", {1e-3, 1e-4}}},
        uniform({4, 12, 12, 3}, 10), uniform({3, 3, 3, 8}, 11), uniform({4, 12, 12, 8}, 12));
}

// Random ops with seeds (the same Philox numbers as the CPU), and a dropout-like mask.
void random(Builder& b) {
  auto f = k::function(
      [](const k::Tensor& a) {
        const k::Tensor u = k::random_uniform({64, 96}, 0.0, 1.0, 7);
        return V{u, k::random_normal({64, 96}, 0.0, 1.0, 11),
                 k::random_uniform({1000}, -2.0, 3.0, 13),
                 k::where(k::greater(u, 0.4f), a / 0.6f, 0.f)};
      },
      "ops_random");
  b.ops("ops_random", f,
        {{"uniform", kRandom},
         {"normal", kRandom},
         {"uniform_range", kRandom},
         {"dropout_mask", kRandom}},
        uniform({64, 96}, 14));
}

// Matmuls: small (a loop kernel), big with bias and ReLU (cuBLASLt with its epilogue),
// transposed and batched.
void matmuls(Builder& b) {
  auto f = k::function(
      [](const k::Tensor& s1, const k::Tensor& s2, const k::Tensor& x, const k::Tensor& w,
         const k::Tensor& bias, const k::Tensor& p, const k::Tensor& q) {
        return V{k::matmul(s1, s2), k::relu(k::matmul(x, w) + bias), k::matmul(x, x, false, true),
                 k::matmul(w, x, true, true), k::matmul(p, q)};
      },
      "ops_matmul");
  b.ops("ops_matmul", f,
        {{"small", gemm_tolerance(33)},
         {"bias_relu", gemm_tolerance(256)},
         {"a_bt", gemm_tolerance(256)},
         {"at_bt", gemm_tolerance(128)},
         {"batched", gemm_tolerance(48)}},
        uniform({17, 33}, 15), uniform({33, 9}, 16), uniform({128, 256}, 17),
        uniform({256, 192}, 18), uniform({192}, 19), uniform({4, 32, 48}, 20),
        uniform({4, 48, 40}, 21));
}

// The training step examples/aot_train_step.cpp compiles (main_job::train_step), of `model`
// with `optimizer`.
template <class Optimizer>
void train_step(Builder& b, const std::string& name, k::Sequential model, Optimizer optimizer,
                int64_t batch, int steps, Tolerance state_tolerance) {
  model(k::zeros({1, 28, 28}));  // builds the weights
  auto step = main_job::train_step(model, optimizer, name);
  b.train(name, step, integers({batch, 28, 28}, 256, k::u8, 31), integers({batch}, 10, k::u8, 32),
          steps, {{"loss", {1e-4, 1e-3}}, {"correct", {1.0, 0}}}, state_tolerance);
}

}  // namespace

std::vector<BuiltLibrary> build_bundle(const BuildOptions& options) {
  Builder b(options);
  auto chain = k::function(
      [](const k::Tensor& x) { return k::relu(x * 1.5f + 0.25f) * 0.5f - x * x * 0.125f; },
      "chain");
  if (options.tiny) {
    auto f = k::function(
        [](const k::Tensor& a, const k::Tensor& idx) {
          return V{k::exp(a) + 1.f, k::reduce_sum(a, {1}), k::argmax(a, 1, k::i32),
                   k::gather(a, idx, 0)};
        },
        "ops_tiny");
    b.ops("ops_tiny", f, {{"exp_plus_1"}, {"sum_rows", kReduce}, {"argmax_rows"}, {"gather0"}},
          uniform({8, 12}, 1), integers({5}, 8, k::i32, 2));
    b.gemm(32, 48, 64);
    b.chain(chain, 1 << 12);
    k::set_random_seed(1);
    train_step(b, "train_tiny",
               k::Sequential({k::layers::Flatten(/*input_shape=*/{28, 28}),
                              k::layers::Dense(16, "relu"), k::layers::Dense(10, "softmax")},
                             "tiny"),
               k::optimizers::SGD(0.1), 8, 2, {1e-5, 1e-4});
    return b.done();
  }
  elementwise(b, {64, 96}, {96});
  compare_cast(b);
  reductions(b);
  shapes(b);
  nn(b);
  random(b);
  matmuls(b);
  k::set_random_seed(1);
  // The MLP with RMSprop as examples/aot_train_step.cpp; the convnet with SGD, whose update
  // keeps no slots (the convnet's weights alone are 13 MB of the bundle's 64 MiB).
  train_step(b, "mlp_train", main_job::mlp(), k::optimizers::RMSprop(1e-3), 128, 3, {1e-2, 1e-2});
  train_step(b, "convnet_train", main_job::convnet(), k::optimizers::SGD(0.01), 128, 3,
             {1e-4, 1e-3});
  b.gemm(1024, 1024, 1024);
  b.gemm(4096, 4096, 4096);
  b.gemm(128, 784, 512);
  b.chain(chain, int64_t{64} << 20);
  return b.done();
}

}  // namespace kiln::gpu_check
