// Ahead-of-time compilation: a traced function or a saved model becomes a self-contained shared
// library (libNAME.so) with a plain C header (NAME.h), the analogue of XLA's tfcompile without
// Python or Bazel:
//
//   auto poly = k::function([](const k::Tensor& x) { return 10.f * x * x - 5.f * x + 4.f; },
//                           "poly");
//   k::aot::compile(poly, {k::TensorSpec({5}, k::f32)}, {.name = "poly", .out_dir = "build"});
//
//   #include "poly.h"                         // from C: cc app.c -Lbuild -lpoly
//   poly_model* m = poly_create();
//   poly_run(m, x, y);                        // 0 on success, else poly_last_error(m)
//   poly_destroy(m);
//
// The library holds the generated code and Kiln's static runtime; it needs only libc, libm and
// libpthread. The function's inputs are NAME_run's arguments; the tensors it reads without
// taking them (weights, captured tensors, variables and optimizer slots) are state, held by
// each model instance: embedded in the library (Weights::embed) or read from a safetensors file
// by NAME_create_from (Weights::external writes NAME.safetensors). A function that assigns
// variables (a training step) updates its instance's state on every run. docs/aot.md is the
// guide.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "kiln/frontend/core/function.h"
#include "kiln/frontend/core/ops.h"
#include "kiln/frontend/core/tensor.h"
#include "kiln/frontend/keras/model.h"

namespace kiln {

// The type of a tensor argument without its values (tf.TensorSpec): what aot::compile traces a
// function for.
struct TensorSpec {
  TensorSpec(Shape shape, DType dtype = f32) : shape(std::move(shape)), dtype(dtype) {}  // NOLINT
  Shape shape;
  DType dtype;
};

namespace aot {

enum class Weights {
  embed,     // in the library: NAME_create() needs no file
  external,  // in out_dir/NAME.safetensors, loaded by NAME_create_from(path)
};

struct Options {
  // A C identifier: libNAME.so, NAME.h, NAME_create, ...
  std::string name = "model";
  // Created if missing.
  std::string out_dir = ".";
  // The library's file name in out_dir; empty: libNAME.so.
  std::string library_file = {};
  // "native" (every feature of this machine's CPU), or an LLVM CPU name for other machines:
  // "x86-64-v3" (AVX2 and FMA, no AVX-512), "x86-64-v4", "znver4", ...
  std::string target_cpu = "native";
  Weights weights = Weights::embed;
  int opt_level = 2;  // LLVM's optimization level, 0 to 3
  // Where the library runs its kernels: "cpu", or "cuda" (NVIDIA GPUs: the kernels are embedded
  // as a fatbin, the state lives in GPU memory; building needs a CUDA toolkit's ptxas and
  // fatbinary, running needs only the driver; docs/aot.md).
  std::string device = "cpu";
  // device "cuda": the GPU architectures to embed machine code (cubins) for, comma-separated;
  // the PTX of the newest is embedded too, which the driver compiles for later GPUs.
  std::string gpu_arch = "sm_80,sm_90";
  // A saved model only (CPU): more input shapes to compile into the same library, each a
  // variant that NAME_run_dims picks by the inputs' dims; NAME_run keeps the saved shapes.
  // batch_sizes is shorthand for the saved shapes at each batch size (every input's batch);
  // input_shapes is for a model of one input. Every shape must be one the model takes
  // (SavedModel::input_specs; ShapeError otherwise). When the variants differ only
  // in the batch and the model is checked to treat samples independently (its batch-B rows
  // equal its batch-1 results on random data), the library also has NAME_run_batch (any n).
  std::vector<int64_t> batch_sizes = {};
  std::vector<Shape> input_shapes = {};
};

// What aot::compile wrote.
struct Library {
  std::string library;  // out_dir/libNAME.so
  std::string header;   // out_dir/NAME.h
  std::string weights;  // out_dir/NAME.safetensors with Weights::external, else empty
};

// Compiles `graph`, whose first `num_inputs` parameters are NAME_run's inputs and whose other
// parameters are state, initialised from `state` (one value per such parameter, in order;
// named after the parameters). Writes the library, the header and (Weights::external) the
// weights whole or not at all. Throws ValueError for a bad name, option or state, CompileError
// when code generation or linking fails, IOError when out_dir cannot be written.
Library compile(const ir::Function& graph, size_t num_inputs, std::span<const ir::HostTensor> state,
                const Options& options, Loc loc = Loc::current());

// A saved model (Model::save, load_model): its input, then its weights as state; with
// options.batch_sizes / input_shapes, one variant per input shape (docs/aot.md).
Library compile(const SavedModel& model, const Options& options, Loc loc = Loc::current());

namespace detail {
// A traced signature: its arguments become inputs, captured tensors and variables state (at
// their current values), and variable assignments updates of that state.
Library compile_traced(const kiln::detail::TracedView& traced, const Options& options, Loc loc);
[[noreturn]] void wrong_spec_count(const std::string& function, size_t expected, size_t given,
                                   Loc loc);
}  // namespace detail

// Traces `f` for arguments of types `inputs` (one TensorSpec per parameter; every parameter a
// Tensor) and compiles that signature.
template <class F>
Library compile(const Function<F>& f, const std::vector<TensorSpec>& inputs, const Options& options,
                Loc loc = Loc::current()) {
  using Params = typename kiln::detail::CallableTraits<F>::Params;
  constexpr size_t arity = std::tuple_size_v<Params>;
  if (inputs.size() != arity) detail::wrong_spec_count(f.name(), arity, inputs.size(), loc);
  std::vector<Tensor> args;
  args.reserve(arity);
  for (const TensorSpec& spec : inputs)
    args.push_back(zeros(spec.shape, spec.dtype, loc));
  auto trace = [&]<size_t... I>(std::index_sequence<I...>) {
    return f.traced(args[I]...);
  };
  return detail::compile_traced(trace(std::make_index_sequence<arity>()), options, loc);
}

}  // namespace aot
}  // namespace kiln
