#include "kiln/frontend/aot.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "kiln/codegen/compiler.h"
#include "kiln/frontend/aot_gpu.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/trace.h"
#include "kiln/frontend/formats/atomic_file.h"
#include "kiln/frontend/formats/runtime_dtype.h"
#include "kiln/frontend/formats/safetensors.h"
#include "kiln/frontend/process.h"
#include "kiln/passes/pipeline.h"
#include "kiln/runtime/aot_weights.h"

namespace kiln::aot {

namespace {

namespace fs = std::filesystem;

// ---- Names --------------------------------------------------------------------------------

bool is_identifier(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  if (!alpha(name[0])) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return alpha(c) || (c >= '0' && c <= '9'); });
}

// Names a library cannot take: C and C++ keywords and alternative tokens (the header opens
// `namespace NAME`), macros g++ predefines, names reserved to the implementation (a leading
// underscore, a _t suffix), and standard or common system headers (NAME.h next to a program's
// sources would hide them).
bool is_reserved(const std::string& name) {
  static const std::set<std::string> words{
      // C and C++ keywords, alternative tokens
      "alignas", "alignof", "and", "and_eq", "asm", "auto", "bitand", "bitor", "bool", "break",
      "case", "catch", "char", "char8_t", "char16_t", "char32_t", "class", "compl", "concept",
      "const", "consteval", "constexpr", "constinit", "const_cast", "continue", "co_await",
      "co_return", "co_yield", "decltype", "default", "delete", "do", "double", "dynamic_cast",
      "else", "enum", "explicit", "export", "extern", "false", "float", "for", "friend", "goto",
      "if", "inline", "int", "long", "mutable", "namespace", "new", "noexcept", "not", "not_eq",
      "nullptr", "operator", "or", "or_eq", "private", "protected", "public", "register",
      "reinterpret_cast", "requires", "restrict", "return", "short", "signed", "sizeof", "static",
      "static_assert", "static_cast", "struct", "switch", "template", "this", "thread_local",
      "throw", "true", "try", "typedef", "typeid", "typename", "union", "unsigned", "using",
      "virtual", "void", "volatile", "wchar_t", "while", "xor", "xor_eq",
      // predefined macros and namespaces
      "linux", "unix", "i386", "std", "kiln",
      // standard C and common POSIX headers
      "assert", "complex", "ctype", "errno", "fenv", "float", "inttypes", "iso646", "limits",
      "locale", "math", "setjmp", "signal", "stdalign", "stdarg", "stdatomic", "stdbool", "stddef",
      "stdint", "stdio", "stdlib", "stdnoreturn", "string", "tgmath", "threads", "time", "uchar",
      "wchar", "wctype", "alloca", "dlfcn", "fcntl", "features", "malloc", "memory", "pthread",
      "sched", "semaphore", "strings", "unistd", "zlib"};
  return words.count(name) != 0 || name.starts_with("_") || name.ends_with("_t") ||
         name.starts_with("kiln_");
}

std::string upper(std::string s) {
  for (char& c : s)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return s;
}

// A C string literal holding `text`.
std::string c_string(const std::string& text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      out += fmt::format("\\{:03o}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

const char* c_type(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "float";
    case DType::f64:
      return "double";
    case DType::i32:
      return "int32_t";
    case DType::i64:
      return "int64_t";
    case DType::boolean:
    case DType::u8:
      return "uint8_t";
  }
  return "void";
}

std::string shape_list(const Shape& shape) {
  std::string out;
  for (int64_t d = 0; d < shape.rank(); ++d)
    out += fmt::format("{}{}", d ? ", " : "", shape[d]);
  return out;
}

// ---- What the library holds ----------------------------------------------------------------

struct TensorInfo {
  std::string name;
  TensorType type;
  int64_t offset = 0;  // state: in the embedded blob
};

struct Layout {
  std::vector<TensorInfo> inputs, outputs, state;
  std::vector<TensorInfo> checks;  // check_numerics values, after the outputs; named by message
  std::vector<int32_t> update_state;
  std::string blob;  // the state, each tensor at a multiple of 64 bytes
};

Layout make_layout(const ir::Function& f, size_t num_inputs, std::span<const ir::HostTensor> values,
                   std::span<const std::string> checks, Loc loc) {
  Layout layout;
  std::set<std::string> taken;
  for (size_t i = 0; i < f.params().size(); ++i) {
    const ir::Value* p = f.param(i);
    if (i < num_inputs) {
      layout.inputs.push_back({p->name(), p->type()});
      continue;
    }
    const ir::HostTensor& value = values[i - num_inputs];
    if (value.type() != p->type()) {
      kiln::detail::raise<ValueError>("aot::compile", {},
                                      fmt::format("state %{} must be {}, got {}", p->name(),
                                                  p->type().to_string(), value.type().to_string()),
                                      loc);
    }
    // The AOT runtime's own rule, so every name compiled here loads there.
    if (!runtime::detail::valid_tensor_name(p->name())) {
      kiln::detail::raise<ValueError>(
          "aot::compile", {},
          fmt::format("state %{} cannot name a tensor in a safetensors file (rename the variable)",
                      p->name()),
          loc);
    }
    // safetensors names must be unique: a second "Variable" becomes "Variable_1".
    std::string name = p->name();
    for (int n = 1; taken.count(name); ++n)
      name = fmt::format("{}_{}", p->name(), n);
    taken.insert(name);
    layout.blob.resize((layout.blob.size() + 63) / 64 * 64, '\0');
    layout.state.push_back({name, p->type(), static_cast<int64_t>(layout.blob.size())});
    layout.blob.append(reinterpret_cast<const char*>(value.raw()), p->type().nbytes());
  }
  KILN_CHECK(checks.size() <= f.outputs().size(), "more checks than outputs");
  const size_t results = f.outputs().size() - checks.size();
  for (size_t j = 0; j < results; ++j)
    layout.outputs.push_back({fmt::format("output{}", j), f.outputs()[j]->type()});
  for (size_t c = 0; c < checks.size(); ++c)
    layout.checks.push_back({checks[c], f.outputs()[results + c]->type()});
  for (const ir::Function::Update& u : f.updates()) {
    const auto param = static_cast<size_t>(u.param->index());
    if (param < num_inputs) {
      kiln::detail::raise<ValueError>(
          "aot::compile", {},
          fmt::format("the function assigns its input %{}; only state can be updated",
                      u.param->name()),
          loc);
    }
    layout.update_state.push_back(static_cast<int32_t>(param - num_inputs));
  }
  return layout;
}

// ---- The header ----------------------------------------------------------------------------

// NAME_run's parameters after the model: one pointer per input, then one per output.
std::vector<std::string> run_parameters(const Layout& layout) {
  std::vector<std::string> params;
  for (size_t i = 0; i < layout.inputs.size(); ++i)
    params.push_back(fmt::format("const {}* input{}", c_type(layout.inputs[i].type.dtype), i));
  for (size_t j = 0; j < layout.outputs.size(); ++j)
    params.push_back(fmt::format("{}* output{}", c_type(layout.outputs[j].type.dtype), j));
  return params;
}

// "input0", "input1", ... (`count` of them).
std::vector<std::string> numbered(const char* prefix, size_t count) {
  std::vector<std::string> names;
  for (size_t i = 0; i < count; ++i)
    names.push_back(fmt::format("{}{}", prefix, i));
  return names;
}

// The names of run_parameters' parameters.
std::vector<std::string> run_arguments(const Layout& layout) {
  std::vector<std::string> args = numbered("input", layout.inputs.size());
  for (std::string& name : numbered("output", layout.outputs.size()))
    args.push_back(std::move(name));
  return args;
}

// `first`, then `rest`, comma-separated.
std::string with_first(const std::string& first, std::vector<std::string> rest) {
  rest.insert(rest.begin(), first);
  return fmt::format("{}", fmt::join(rest, ", "));
}

void describe_tensors(std::string& out, const std::string& prefix, const char* kind,
                      const std::vector<TensorInfo>& tensors) {
  out += fmt::format("#define {}_NUM_{}S {}\n", prefix, kind, tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorInfo& t = tensors[i];
    const std::string p = fmt::format("{}_{}{}", prefix, kind, i);
    out += fmt::format("#define {}_NAME {}\n", p, c_string(t.name));
    out += fmt::format("#define {}_DTYPE \"{}\"  /* {} */\n", p, ir::dtype_name(t.type.dtype),
                       c_type(t.type.dtype));
    out += fmt::format("#define {}_RANK {}\n", p, t.type.shape.rank());
    if (t.type.shape.rank() > 0)
      out += fmt::format("#define {}_SHAPE {{{}}}\n", p, shape_list(t.type.shape));
    out += fmt::format("#define {}_SIZE {}  /* elements */\n", p, t.type.shape.num_elements());
  }
}

// NAME_run_device's parameters: the model, then a device address per input and per output.
std::string device_run_parameters(const std::string& name, const Layout& layout) {
  std::vector<std::string> params{name + "_model* model"};
  for (size_t i = 0; i < layout.inputs.size(); ++i)
    params.push_back(fmt::format("uint64_t input{}", i));
  for (size_t j = 0; j < layout.outputs.size(); ++j)
    params.push_back(fmt::format("uint64_t output{}", j));
  return fmt::format("{}", fmt::join(params, ", "));
}

// The declarations a library for GPUs adds to its header (kiln aot --device cuda).
std::string gpu_declarations(const std::string& name, const Layout& layout) {
  return fmt::format(
      R"(
/* GPU library: {0}_create and {0}_create_from use GPU 0; this picks GPU `device` (0, 1, ...;
   weights_path NULL: the embedded weights). NULL with the reason in {0}_last_error(NULL) when
   there is no usable CUDA driver or GPU. */
{0}_model* {0}_create_on_device(int device, const char* weights_path);
/* {0}_run with DEVICE memory: each argument is a device address (a CUdeviceptr, e.g. from
   cuMemAlloc or cudaMalloc, cast to uint64_t) on the model's GPU, aligned to 16 bytes. Returns
   when the outputs are written; 0 on success. ({0}_run takes host memory and copies it.) */
int {0}_run_device({1});
)",
      name, device_run_parameters(name, layout));
}

std::string header_text(const std::string& name, const Layout& layout, bool embedded,
                        const std::string& gpu_arch, const std::string& extra = {}) {
  const std::string N = upper(name);
  std::string out = fmt::format(
      R"(/* {0}.h: the C API of lib{0}.so, generated by Kiln's ahead-of-time compiler (kiln aot).
   Plain C; link with -l{0}. Buffers are dense and row-major, of the sizes below; aligning them
   to 64 bytes saves a copy. One model instance runs one call at a time; use one instance per
   thread to run concurrently. */
#ifndef {1}_KILN_H
#define {1}_KILN_H

#include <stdint.h>

)",
      name, N);
  describe_tensors(out, N, "INPUT", layout.inputs);
  describe_tensors(out, N, "OUTPUT", layout.outputs);
  out += fmt::format(
      "/* Tensors each instance holds (weights; for a training step also optimizer state). */\n"
      "#define {}_NUM_STATE {}\n"
      "#define {}_UPDATES_STATE {}  /* whether {}_run changes them (a training step) */\n"
      "#define {}_WEIGHTS_EMBEDDED {}\n\n",
      N, layout.state.size(), N, layout.update_state.empty() ? 0 : 1, name, N, embedded ? 1 : 0);
  if (!gpu_arch.empty()) {
    out += fmt::format(
        "/* Built for NVIDIA GPUs: the kernels run on the GPU, the state stays in its memory.\n"
        "   {2}_run takes HOST pointers (copied to and from the GPU); {2}_run_device takes\n"
        "   device pointers. */\n"
        "#define {0}_DEVICE \"cuda\"\n#define {0}_GPU_ARCH {1}\n\n",
        N, c_string(gpu_arch), name);
  }
  out += fmt::format(
      R"(#ifdef __cplusplus
extern "C" {{
#endif

typedef struct {0}_model {0}_model;

/* A model with the weights built into the library ({1}_WEIGHTS_EMBEDDED), or NULL with the
   reason in {0}_last_error(NULL). */
{0}_model* {0}_create(void);
/* A model with its weights read from a safetensors file holding exactly the state tensors
   (as written by kiln aot --weights external or {0}_save_weights); NULL on failure. */
{0}_model* {0}_create_from(const char* weights_path);
/* Runs the model: inputs, then outputs. Returns 0 on success, else non-zero with the reason
   in {0}_last_error(model). */
int {0}_run({2});
/* The last error on `model`, or with NULL the last failed create on this thread ("" if
   none). */
const char* {0}_last_error(const {0}_model* model);
/* Writes the model's state (e.g. weights after training) to a safetensors file; 0 on
   success. */
int {0}_save_weights({0}_model* model, const char* path);
void {0}_destroy({0}_model* model);
/* Threads the library's code uses; call before the first run (default: KILN_NUM_THREADS, else
   every core). 0 on success. */
int {0}_set_num_threads(int num_threads);
{5}
#ifdef __cplusplus
}}  /* extern "C" */

#include <stdexcept>
#include <utility>

namespace {0} {{

/* Owns a {0}_model; failures throw std::runtime_error with the library's message. */
class Model {{
 public:
  Model() : model_(check({0}_create())) {{}}
  explicit Model(const char* weights_path) : model_(check({0}_create_from(weights_path))) {{}}
  Model(Model&& other) noexcept : model_(std::exchange(other.model_, nullptr)) {{}}
  Model& operator=(Model&& other) noexcept {{
    std::swap(model_, other.model_);
    return *this;
  }}
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;
  ~Model() {{ {0}_destroy(model_); }}

  void run({3}) {{
    if ({0}_run({4}) != 0) throw std::runtime_error({0}_last_error(model_));
  }}
  void save_weights(const char* path) {{
    if ({0}_save_weights(model_, path) != 0) throw std::runtime_error({0}_last_error(model_));
  }}
  {0}_model* get() const {{ return model_; }}

 private:
  static {0}_model* check({0}_model* model) {{
    if (model == nullptr) throw std::runtime_error({0}_last_error(nullptr));
    return model;
  }}
  {0}_model* model_;
}};

}}  // namespace {0}
#endif

#endif
)",
      name, N, with_first(name + "_model* model", run_parameters(layout)),
      fmt::join(run_parameters(layout), ", "), with_first("model_", run_arguments(layout)),
      (gpu_arch.empty() ? std::string() : gpu_declarations(name, layout)) + extra);
  return out;
}

// ---- The glue: the C API over the runtime's kiln_aot_model --------------------------------

std::string tensor_table(std::string& out, const std::string& table,
                         const std::vector<TensorInfo>& tensors) {
  if (tensors.empty()) return "NULL";
  std::vector<std::string> rows;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorInfo& t = tensors[i];
    std::string shape = "NULL";
    if (t.type.shape.rank() > 0) {
      shape = fmt::format("{}_shape{}", table, i);
      out += fmt::format("static const int64_t {}[] = {{{}}};\n", shape, shape_list(t.type.shape));
    }
    rows.push_back(fmt::format("    {{{}, {}, {}, {}, {}, {}}}", c_string(t.name),
                               kiln::detail::runtime_dtype(t.type.dtype), t.type.shape.rank(),
                               shape, t.type.nbytes(), t.offset));
  }
  out +=
      fmt::format("static const kiln_aot_tensor {}[] = {{\n{}}};\n", table, fmt::join(rows, ",\n"));
  return table;
}

// The assembly that embeds NAME.fatbin, NAME.plan and (embedded weights) NAME.weights as
// hidden, 64-byte aligned read-only arrays. They are files of a private folder that the
// assembler searches (.incbin with -I), so no path is ever spelled in the glue.
std::string embed_files(const std::string& name, bool embedded) {
  std::string out = "__asm__(\".pushsection .rodata.kiln_aot_data,\\\"a\\\",@progbits\\n\"\n";
  std::vector<std::string> kinds{"fatbin", "plan"};
  if (embedded) kinds.push_back("weights");
  for (const std::string& kind : kinds) {
    const std::string symbol = fmt::format("{}_kiln_{}", name, kind);
    out += fmt::format(
        "        \".balign 64\\n.globl {0}\\n.hidden {0}\\n.type {0},@object\\n{0}:\\n"
        ".incbin \\\"{1}.{2}\\\"\\n\"\n",
        symbol, name, kind);
  }
  out += "        \".popsection\\n\");\n";
  for (const std::string& kind : kinds) {
    out += fmt::format(
        "extern const unsigned char {}_kiln_{}[] __attribute__((visibility(\"hidden\")));\n", name,
        kind);
  }
  return out;
}

// The C API of a library for GPUs beyond the CPU's: the device choice, runs from device memory
// and the tests' hook.
std::string gpu_functions(const std::string& name, const Layout& layout) {
  const std::vector<std::string> in = numbered("input", layout.inputs.size());
  const std::vector<std::string> outs = numbered("output", layout.outputs.size());
  std::string out = fmt::format(
      R"(
{0}_model* {0}_create_on_device(int device, const char* weights_path) {{
  return ({0}_model*)kiln_aot_create_cuda(&desc, &cuda_desc, weights_path, device);
}}

int {0}_run_device({1}) {{
)",
      name, device_run_parameters(name, layout));
  std::string in_array = "NULL", out_array = "NULL";
  if (!in.empty()) {
    out += fmt::format("  const uint64_t in[] = {{{}}};\n", fmt::join(in, ", "));
    in_array = "in";
  }
  if (!outs.empty()) {
    out += fmt::format("  const uint64_t out[] = {{{}}};\n", fmt::join(outs, ", "));
    out_array = "out";
  }
  out += fmt::format(
      R"(  return kiln_aot_run_device((kiln_aot_model*)model, {1}, {2});
}}

/* For Kiln's tests, in no header: runs this library's copy of the runtime on the given CUDA
   driver and cuBLASLt tables (a mock); returns the embedded fatbin's address. */
extern int kiln_aot_testing_use_cuda(const void* driver_api, const void* cublaslt_api);
const void* {0}_kiln_testing_use_cuda(const void* driver_api, const void* cublaslt_api) {{
  kiln_aot_testing_use_cuda(driver_api, cublaslt_api);
  return {0}_kiln_fatbin;
}}
)",
      name, in_array, out_array);
  return out;
}

std::string glue_text(const std::string& name, const Layout& layout, int64_t workspace_bytes,
                      bool embedded, const detail::GpuParts* gpu) {
  std::string out = fmt::format(
      "/* Generated by Kiln's ahead-of-time compiler: the C API of lib{0}.so. */\n"
      "#include \"kiln/runtime/aot_model.h\"\n#include \"{0}.h\"\n\n"
      "{1}\n"
      // libstdc++ is linked in statically (link_library): its emergency exception pool,
      // allocated when the library loads, would leak (~71 KiB) at every dlclose. A weak
      // reference: with another C++ library there is nothing to free.
      "extern void _ZN9__gnu_cxx9__freeresEv(void) __attribute__((weak));\n"
      "__attribute__((destructor)) static void {0}_kiln_unload(void) {{\n"
      "  if (_ZN9__gnu_cxx9__freeresEv) _ZN9__gnu_cxx9__freeresEv();\n"
      "}}\n",
      name,
      gpu != nullptr ? embed_files(name, embedded)
                     : fmt::format("extern void {}_kiln_entry(const kiln_frame* frame);\n", name));
  if (embedded && gpu == nullptr)
    out += fmt::format("extern const unsigned char {}_kiln_weights[];\n", name);
  out += "\n";
  const std::string inputs = tensor_table(out, "inputs", layout.inputs);
  const std::string outputs = tensor_table(out, "outputs", layout.outputs);
  const std::string state = tensor_table(out, "state", layout.state);
  const std::string checks = tensor_table(out, "checks", layout.checks);
  std::string updates = "NULL";
  if (!layout.update_state.empty()) {
    updates = "update_state";
    out += fmt::format("static const int32_t update_state[] = {{{}}};\n",
                       fmt::join(layout.update_state, ", "));
  }
  out += fmt::format(
      R"(
static const kiln_aot_desc desc = {{
    KILN_AOT_ABI_VERSION, "{0}", {15}, {1},
    {2}, {3}, {4}, {5}, {6}, {7}, {8}, {9},
    {10}, {11},
    {13}, {14}}};
{16}
{0}_model* {0}_create(void) {{ return ({0}_model*){17}(&desc{18}, NULL{19}); }}

{0}_model* {0}_create_from(const char* weights_path) {{
  if (weights_path == NULL) return {0}_create();
  return ({0}_model*){17}(&desc{18}, weights_path{19});
}}

int {0}_run({12}) {{
)",
      name, workspace_bytes, layout.inputs.size(), inputs, layout.outputs.size(), outputs,
      layout.state.size(), state, layout.update_state.size(), updates,
      embedded ? fmt::format("{}_kiln_weights", name) : "NULL", embedded ? layout.blob.size() : 0,
      with_first(name + "_model* model", run_parameters(layout)), layout.checks.size(), checks,
      gpu != nullptr ? "NULL" : name + "_kiln_entry",
      gpu != nullptr
          ? fmt::format("static const kiln_aot_cuda_desc cuda_desc = {{\n"
                        "    {0}_kiln_fatbin, {1}, {0}_kiln_plan, {2}, {3}}};\n",
                        name, gpu->fatbin_bytes, gpu->plan_bytes, c_string(gpu->gpu_arch))
          : std::string(),
      gpu != nullptr ? "kiln_aot_create_cuda" : "kiln_aot_create",
      gpu != nullptr ? ", &cuda_desc" : "", gpu != nullptr ? ", 0" : "");
  std::string in = "NULL", outs = "NULL";
  if (!layout.inputs.empty()) {
    out += fmt::format("  const void* in[] = {{{}}};\n",
                       fmt::join(numbered("input", layout.inputs.size()), ", "));
    in = "in";
  }
  if (!layout.outputs.empty()) {
    out += fmt::format("  void* out[] = {{{}}};\n",
                       fmt::join(numbered("output", layout.outputs.size()), ", "));
    outs = "out";
  }
  out += fmt::format(
      R"(  return kiln_aot_run((kiln_aot_model*)model, {1}, {2});
}}

const char* {0}_last_error(const {0}_model* model) {{
  return kiln_aot_last_error((const kiln_aot_model*)model);
}}

int {0}_save_weights({0}_model* model, const char* path) {{
  return kiln_aot_save_weights((kiln_aot_model*)model, path);
}}

void {0}_destroy({0}_model* model) {{ kiln_aot_destroy((kiln_aot_model*)model); }}

int {0}_set_num_threads(int num_threads) {{ return kiln_aot_set_num_threads(num_threads); }}
)",
      name, in, outs);
  if (gpu != nullptr) out += gpu_functions(name, layout);
  return out;
}

// ---- Shape variants of a saved model (Options::input_shapes) --------------------------------

// The batch of each variant's input (its first dimension).
std::vector<int64_t> variant_batches(const std::vector<Layout>& layouts) {
  std::vector<int64_t> out;
  for (const Layout& l : layouts)
    out.push_back(l.inputs.at(0).type.shape.rank() > 0 ? l.inputs[0].type.shape[0] : 1);
  return out;
}

// "[1,3,4], [4,3,4]": the variants' input shapes, for messages ("([1,4], [1,9,3]), ..." with
// several inputs).
std::string variant_list(const std::vector<Layout>& layouts) {
  std::vector<std::string> variants;
  for (const Layout& l : layouts) {
    std::vector<std::string> shapes;
    for (const TensorInfo& in : l.inputs)
      shapes.push_back(fmt::format("[{}]", fmt::join(in.type.shape, ",")));
    variants.push_back(shapes.size() == 1 ? shapes[0]
                                          : fmt::format("({})", fmt::join(shapes, ", ")));
  }
  return fmt::format("{}", fmt::join(variants, ", "));
}

// "(T)a", "(T)b", ...: each name cast to `cast`.
std::vector<std::string> cast_list(const std::string& cast, const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (const std::string& n : names)
    out.push_back(cast + n);
  return out;
}

// The sum of the inputs' ranks: how many numbers NAME_run_dims's dims holds.
int64_t total_rank(const Layout& layout) {
  int64_t rank = 0;
  for (const TensorInfo& in : layout.inputs)
    rank += in.type.shape.rank();
  return rank;
}

// What the header says of the variants: their shapes, NAME_run_dims and NAME_run_batch.
std::string variant_declarations(const std::string& name, const std::vector<Layout>& layouts,
                                 bool run_batch) {
  const std::string N = upper(name);
  const Layout& base = layouts[0];
  const std::string params = fmt::format("{}", fmt::join(run_parameters(base), ", "));
  std::string out = fmt::format(
      "\n/* Shape variants: the input shapes this library was compiled for, each with its output\n"
      "   shapes. {0}_run runs variant 0 (the saved shapes, {1}_INPUT0_SHAPE ...); {0}_run_dims\n"
      "   runs any variant. */\n#define {1}_NUM_VARIANTS {2}\n",
      name, N, layouts.size());
  for (size_t v = 0; v < layouts.size(); ++v) {
    for (size_t i = 0; i < layouts[v].inputs.size(); ++i)
      out += fmt::format("#define {}_VARIANT{}_INPUT{}_SHAPE {{{}}}\n", N, v, i,
                         shape_list(layouts[v].inputs[i].type.shape));
    for (size_t j = 0; j < layouts[v].outputs.size(); ++j)
      out += fmt::format("#define {}_VARIANT{}_OUTPUT{}_SHAPE {{{}}}\n", N, v, j,
                         shape_list(layouts[v].outputs[j].type.shape));
  }
  const std::string which =
      base.inputs.size() == 1
          ? fmt::format("dims[0 .. {}_INPUT0_RANK - 1]", N)
          : fmt::format("dims (each input's dims in turn: {} numbers)", total_rank(base));
  out += fmt::format(
      "/* Runs the variant whose input shape is {4}; the outputs are of that\n"
      "   variant's output shapes. Non-zero, naming the compiled shapes in {0}_last_error, when "
      "no\n"
      "   variant has that shape. */\n"
      "int {0}_run_dims({0}_model* model, const int64_t* dims, {2});\n"
      "/* Whether {0}_run_batch exists: the variants differ only in the batch and the model was\n"
      "   checked, when compiled, to compute each sample on its own. */\n"
      "#define {1}_HAS_RUN_BATCH {3}\n",
      name, N, params, run_batch ? 1 : 0, which);
  if (run_batch) {
    out += fmt::format(
        "/* Runs n >= 0 samples: batches of the largest compiled size that fits, then smaller\n"
        "   ones; fewer samples than the smallest size are padded with zeros into it. Each input\n"
        "   holds n samples, each output receives n results (the sizes per sample are the shapes\n"
        "   above without their first dimension). */\n"
        "int {0}_run_batch({0}_model* model, int64_t n, {1});\n",
        name, params);
  }
  return out;
}

// The C API of a library with shape variants: NAME_model holds one runtime instance per variant
// (variant 0 made by NAME_create, the others on their first run, from the same weights; embedded
// weights are shared in place, a weights file is read once per variant used).
std::string variant_glue_text(const std::string& name, const std::vector<Layout>& layouts,
                              const std::vector<int64_t>& workspaces, bool embedded,
                              bool run_batch) {
  const Layout& base = layouts[0];
  const size_t count = layouts.size();
  const size_t num_in = base.inputs.size(), num_out = base.outputs.size();
  const int64_t rank = total_rank(base);
  const std::string params = fmt::format("{}", fmt::join(run_parameters(base), ", "));
  const std::vector<std::string> in_names = numbered("input", num_in),
                                 out_names = numbered("output", num_out);
  const std::string ins = fmt::format("{}", fmt::join(in_names, ", ")),
                    outs = fmt::format("{}", fmt::join(out_names, ", "));
  std::string out = fmt::format(
      "/* Generated by Kiln's ahead-of-time compiler: the C API of lib{0}.so (shape variants). "
      "*/\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n"
      "#include \"kiln/runtime/aot_model.h\"\n#include \"{0}.h\"\n\n"
      "extern void _ZN9__gnu_cxx9__freeresEv(void) __attribute__((weak));\n"
      "__attribute__((destructor)) static void {0}_kiln_unload(void) {{\n"
      "  if (_ZN9__gnu_cxx9__freeresEv) _ZN9__gnu_cxx9__freeresEv();\n"
      "}}\n",
      name);
  std::vector<std::string> entries;
  for (size_t v = 0; v < count; ++v) {
    entries.push_back(v == 0 ? name + "_kiln_entry" : fmt::format("{}_kiln_entry_v{}", name, v));
    out += fmt::format("extern void {}(const kiln_frame* frame);\n", entries.back());
  }
  if (embedded) out += fmt::format("extern const unsigned char {}_kiln_weights[];\n", name);
  out += "\n";
  const std::string state = tensor_table(out, "state", base.state);
  std::vector<std::string> descs;
  for (size_t v = 0; v < count; ++v) {
    const std::string inputs = tensor_table(out, fmt::format("inputs_v{}", v), layouts[v].inputs);
    const std::string outputs =
        tensor_table(out, fmt::format("outputs_v{}", v), layouts[v].outputs);
    descs.push_back(fmt::format(
        "    {{KILN_AOT_ABI_VERSION, \"{}\", {}, {}, {}, {}, {}, {}, {}, {}, 0, NULL, {}, {}, 0, "
        "NULL}}",
        name, entries[v], workspaces[v], num_in, inputs, num_out, outputs, base.state.size(), state,
        embedded ? fmt::format("{}_kiln_weights", name) : "NULL", embedded ? base.blob.size() : 0));
  }
  std::vector<std::string> dims, batches;
  const std::vector<int64_t> variant_batch = variant_batches(layouts);
  for (size_t v = 0; v < count; ++v) {
    std::vector<std::string> all;
    for (const TensorInfo& in : layouts[v].inputs)
      if (in.type.shape.rank() > 0) all.push_back(shape_list(in.type.shape));
    dims.push_back(fmt::format("{{{}}}", fmt::join(all, ", ")));
    batches.push_back(std::to_string(variant_batch[v]));
  }
  // Per sample: each input's and output's elements and element size (run_batch's strides).
  auto per_sample = [](const TensorInfo& t) {
    const Shape& shape = t.type.shape;
    return shape.rank() > 0 && shape[0] > 0 ? shape.num_elements() / shape[0] : int64_t(0);
  };
  std::vector<std::string> in_sample, out_sample, in_bytes, out_bytes;
  for (const TensorInfo& t : base.inputs) {
    in_sample.push_back(std::to_string(per_sample(t)));
    in_bytes.push_back(fmt::format("sizeof({})", c_type(t.type.dtype)));
  }
  for (const TensorInfo& t : base.outputs) {
    out_sample.push_back(std::to_string(per_sample(t)));
    out_bytes.push_back(fmt::format("sizeof({})", c_type(t.type.dtype)));
  }
  out += fmt::format(
      R"(
#define VARIANTS {1}
#define RANK {2}
#define NUM_IN {3}
#define NUM_OUT {4}
static const kiln_aot_desc descs[VARIANTS] = {{
{5}}};
static const int64_t variant_dims[VARIANTS][RANK > 0 ? RANK : 1] = {{{6}}};
static const int64_t variant_batch[VARIANTS] = {{{7}}};

struct {0}_model {{
  kiln_aot_model* variants[VARIANTS]; /* [0] made at create, the others on first use */
  char* weights_path;                 /* NULL: the embedded weights */
  const kiln_aot_model* failed;       /* whose error is the last; NULL: `message` */
  char message[1024];
  char* pad_in[NUM_IN];               /* NAME_run_batch's padded last batch, made on first use */
  char* pad_out[NUM_OUT];
}};

static {0}_model* {0}_kiln_new(const char* weights_path) {{
  kiln_aot_model* first = kiln_aot_create(&descs[0], weights_path);
  if (first == NULL) return NULL;
  {0}_model* model = ({0}_model*)calloc(1, sizeof({0}_model));
  char* path = weights_path != NULL ? strdup(weights_path) : NULL;
  if (model == NULL || (weights_path != NULL && path == NULL)) {{
    free(model);
    free(path);
    kiln_aot_destroy(first);
    return NULL;
  }}
  model->variants[0] = first;
  model->weights_path = path;
  return model;
}}

{0}_model* {0}_create(void) {{ return {0}_kiln_new(NULL); }}

{0}_model* {0}_create_from(const char* weights_path) {{ return {0}_kiln_new(weights_path); }}

static int {0}_kiln_fail({0}_model* model, const char* message) {{
  model->failed = NULL;
  snprintf(model->message, sizeof model->message, "%s", message);
  return 1;
}}

static int {0}_kiln_run_variant({0}_model* model, int v, const void* const* in, void* const* out) {{
  if (model->variants[v] == NULL) {{
    model->variants[v] = kiln_aot_create(&descs[v], model->weights_path);
    if (model->variants[v] == NULL) return {0}_kiln_fail(model, kiln_aot_last_error(NULL));
  }}
  const int status = kiln_aot_run(model->variants[v], in, out);
  if (status != 0) model->failed = model->variants[v];
  return status;
}}

/* A NULL model: the runtime's own error for it. */
static int {0}_kiln_no_model(void) {{
  const void* in[NUM_IN] = {{NULL}};
  void* out[NUM_OUT] = {{NULL}};
  return kiln_aot_run(NULL, in, out);
}}

int {0}_run({0}_model* model, {8}) {{
  if (model == NULL) return {0}_kiln_no_model();
  const void* in[NUM_IN] = {{{9}}};
  void* out[NUM_OUT] = {{{10}}};
  return {0}_kiln_run_variant(model, 0, in, out);
}}

int {0}_run_dims({0}_model* model, const int64_t* dims, {8}) {{
  if (model == NULL) return {0}_kiln_no_model();
  if (dims == NULL) return {0}_kiln_fail(model, "{0}_run_dims: dims is NULL");
  const void* in[NUM_IN] = {{{9}}};
  void* out[NUM_OUT] = {{{10}}};
  for (int v = 0; v < VARIANTS; ++v) {{
    int same = 1;
    for (int d = 0; d < RANK; ++d) same = same && dims[d] == variant_dims[v][d];
    if (same) return {0}_kiln_run_variant(model, v, in, out);
  }}
  char shape[512] = "";
  for (int d = 0; d < RANK; ++d) {{
    size_t used = strlen(shape);
    snprintf(shape + used, sizeof shape - used, "%s%lld", d ? "," : "", (long long)dims[d]);
  }}
  char message[1024];
  snprintf(message, sizeof message,
           "{0}_run_dims: input shape [%s] is not one of the compiled variants: {11}", shape);
  return {0}_kiln_fail(model, message);
}}

const char* {0}_last_error(const {0}_model* model) {{
  if (model == NULL) return kiln_aot_last_error(NULL);
  return model->failed != NULL ? kiln_aot_last_error(model->failed) : model->message;
}}

int {0}_save_weights({0}_model* model, const char* path) {{
  if (model == NULL) return kiln_aot_save_weights(NULL, path);
  const int status = kiln_aot_save_weights(model->variants[0], path);
  if (status != 0) model->failed = model->variants[0];
  return status;
}}

void {0}_destroy({0}_model* model) {{
  if (model == NULL) return;
  for (int v = 0; v < VARIANTS; ++v) kiln_aot_destroy(model->variants[v]);
  free(model->weights_path);
  for (int i = 0; i < NUM_IN; ++i) free(model->pad_in[i]);
  for (int j = 0; j < NUM_OUT; ++j) free(model->pad_out[j]);
  free(model);
}}

int {0}_set_num_threads(int num_threads) {{ return kiln_aot_set_num_threads(num_threads); }}
)",
      name, count, rank, num_in, num_out, fmt::join(descs, ",\n"), fmt::join(dims, ", "),
      fmt::join(batches, ", "), params, ins, outs, variant_list(layouts));
  if (run_batch) {
    const std::string null_names =
        fmt::format("{} or {}", fmt::join(in_names, ", "), fmt::join(out_names, ", "));
    out += fmt::format(
        R"(
int {0}_run_batch({0}_model* model, int64_t n, {1}) {{
  if (model == NULL) return {0}_kiln_no_model();
  if (n < 0) return {0}_kiln_fail(model, "{0}_run_batch: n is negative");
  const char* in[NUM_IN] = {{{2}}};
  char* out[NUM_OUT] = {{{3}}};
  static const int64_t in_sample[NUM_IN] = {{{4}}}, out_sample[NUM_OUT] = {{{5}}};
  static const size_t in_bytes[NUM_IN] = {{{6}}}, out_bytes[NUM_OUT] = {{{7}}};
  for (int i = 0; n > 0 && i < NUM_IN; ++i)
    if (in[i] == NULL) return {0}_kiln_fail(model, "{0}_run_batch: {8} is NULL");
  for (int j = 0; n > 0 && j < NUM_OUT; ++j)
    if (out[j] == NULL) return {0}_kiln_fail(model, "{0}_run_batch: {8} is NULL");
  int64_t done = 0;
  while (done < n) {{
    int best = -1, smallest = -1;
    for (int v = 0; v < VARIANTS; ++v) {{
      if (variant_batch[v] <= 0) continue;
      if (variant_batch[v] <= n - done && (best < 0 || variant_batch[v] > variant_batch[best]))
        best = v;
      if (smallest < 0 || variant_batch[v] < variant_batch[smallest]) smallest = v;
    }}
    const void* in_at[NUM_IN];
    void* out_at[NUM_OUT];
    if (best >= 0) {{
      for (int i = 0; i < NUM_IN; ++i) in_at[i] = in[i] + done * in_sample[i] * (int64_t)in_bytes[i];
      for (int j = 0; j < NUM_OUT; ++j)
        out_at[j] = out[j] + done * out_sample[j] * (int64_t)out_bytes[j];
      const int status = {0}_kiln_run_variant(model, best, in_at, out_at);
      if (status != 0) return status;
      done += variant_batch[best];
      continue;
    }}
    if (smallest < 0) return {0}_kiln_fail(model, "{0}_run_batch: no variant has a batch");
    /* Fewer samples left than the smallest batch: padded with zeros into it. */
    const int64_t size = variant_batch[smallest];
    for (int i = 0; i < NUM_IN; ++i) {{
      if (model->pad_in[i] == NULL)
        model->pad_in[i] = (char*)malloc((size_t)(size * in_sample[i]) * in_bytes[i] + 1);
      if (model->pad_in[i] == NULL) return {0}_kiln_fail(model, "{0}_run_batch: out of memory");
    }}
    for (int j = 0; j < NUM_OUT; ++j) {{
      if (model->pad_out[j] == NULL)
        model->pad_out[j] = (char*)malloc((size_t)(size * out_sample[j]) * out_bytes[j] + 1);
      if (model->pad_out[j] == NULL) return {0}_kiln_fail(model, "{0}_run_batch: out of memory");
    }}
    const int64_t left = n - done;
    for (int i = 0; i < NUM_IN; ++i) {{
      memset(model->pad_in[i], 0, (size_t)(size * in_sample[i]) * in_bytes[i]);
      memcpy(model->pad_in[i], in[i] + done * in_sample[i] * (int64_t)in_bytes[i],
             (size_t)(left * in_sample[i]) * in_bytes[i]);
      in_at[i] = model->pad_in[i];
    }}
    for (int j = 0; j < NUM_OUT; ++j) out_at[j] = model->pad_out[j];
    const int status = {0}_kiln_run_variant(model, smallest, in_at, out_at);
    if (status != 0) return status;
    for (int j = 0; j < NUM_OUT; ++j)
      memcpy(out[j] + done * out_sample[j] * (int64_t)out_bytes[j], model->pad_out[j],
             (size_t)(left * out_sample[j]) * out_bytes[j]);
    done = n;
  }}
  return 0;
}}
)",
        name, params, fmt::join(cast_list("(const char*)", in_names), ", "),
        fmt::join(cast_list("(char*)", out_names), ", "), fmt::join(in_sample, ", "),
        fmt::join(out_sample, ", "), fmt::join(in_bytes, ", "), fmt::join(out_bytes, ", "),
        null_names);
  }
  return out;
}

// ---- Building the library ------------------------------------------------------------------

// A directory in out_dir for the intermediate files, removed with everything in it.
void write_text(const std::string& path, const std::string& text, Loc loc) {
  kiln::detail::write_file_atomically(path, text, "aot::compile", loc);
}

// Where the static runtime and its headers are: installed next to the libkiln in use (found
// from its own path, so an installed tree may move), or in the build tree Kiln was built in.
// KILN_AOT_RUNTIME and KILN_AOT_INCLUDE override either half.
struct RuntimeFiles {
  std::string archive, include;
};

// The folder of the shared library (or program) this code was loaded from.
fs::path own_folder() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&own_folder), &info) == 0 || info.dli_fname == nullptr)
    return {};
  std::error_code ec;
  fs::path path = fs::canonical(info.dli_fname, ec);
  return ec ? fs::path() : path.parent_path();
}

RuntimeFiles find_runtime(Loc loc) {
  std::vector<RuntimeFiles> candidates;
  const char* archive = std::getenv("KILN_AOT_RUNTIME");
  const char* include = std::getenv("KILN_AOT_INCLUDE");
  // Each variable overrides its own half of both places.
  const fs::path lib = own_folder();
  const RuntimeFiles installed{(lib / KILN_AOT_RUNTIME_NAME).string(),
                               (lib / KILN_AOT_LIB_TO_INCLUDE).lexically_normal().string()};
  for (RuntimeFiles c : {installed, RuntimeFiles{KILN_AOT_BUILD_RUNTIME, KILN_AOT_BUILD_INCLUDE}}) {
    if (archive != nullptr) c.archive = archive;
    if (include != nullptr) c.include = include;
    candidates.push_back(c);
  }
  std::vector<std::string> tried;
  for (const RuntimeFiles& c : candidates) {
    const fs::path header = fs::path(c.include) / "kiln/runtime/aot_model.h";
    std::error_code ec;
    if (fs::is_regular_file(c.archive, ec) && fs::is_regular_file(header, ec)) return c;
    tried.push_back(fmt::format("{} with {}", c.archive, header.string()));
  }
  kiln::detail::raise<CompileError>(
      "aot::compile", {},
      fmt::format("cannot find Kiln's static runtime to link into the library (tried {}); set "
                  "KILN_AOT_RUNTIME to libkiln_runtime_static.a and KILN_AOT_INCLUDE to the "
                  "folder holding kiln/runtime/aot_model.h",
                  fmt::join(tried, "; ")),
      loc);
}

// Compiles the glue and links it with the object (none for a GPU library) and the static runtime
// into `library`. The exported symbols are the library's C API alone; libstdc++ and libgcc go in
// statically. `assembler_dir`, when given, is where the glue's .incbin files are.
void link_library(const std::string& name, const kiln::detail::TempDir& temp,
                  const std::string& object, const std::string& glue, const std::string& library,
                  Loc loc, const std::string& assembler_dir = {},
                  const std::vector<std::string>& more_objects = {}) {
  const RuntimeFiles runtime = find_runtime(loc);
  const std::string script = temp.file(name + ".map");
  write_text(script, fmt::format("{{\n  global: {}_*;\n  local: *;\n}};\n", name), loc);
  // KILN_AOT_CXX may be a command with arguments ("ccache c++"), split at spaces.
  const char* driver = std::getenv("KILN_AOT_CXX");
  std::vector<std::string> argv;
  std::istringstream words(driver != nullptr ? driver : "");
  for (std::string word; words >> word;)
    argv.push_back(word);
  if (argv.empty()) argv.push_back("c++");
  const std::string cxx = argv.front();
  if (!assembler_dir.empty())
    argv.insert(argv.end(), {"-Xassembler", "-I", "-Xassembler", assembler_dir});
  argv.insert(argv.end(), {"-shared", "-fPIC", "-O2", "-I" + runtime.include, "-iquote",
                           fs::path(glue).parent_path().string(), "-x", "c", glue, "-x", "none"});
  if (!object.empty()) argv.push_back(object);
  argv.insert(argv.end(), more_objects.begin(), more_objects.end());
  argv.insert(argv.end(), {runtime.archive, "-o", library, "-static-libstdc++", "-static-libgcc",
                           "-pthread", "-lm", "-Wl,--version-script=" + script, "-Wl,--gc-sections",
                           "-Wl,-z,defs", "-Wl,-s"});
  const std::string log = temp.file("link.log");
  std::string error;
  const int status = kiln::detail::run_program(argv, log, error);
  if (status < 0) {
    kiln::detail::raise<CompileError>(
        "aot::compile", {},
        fmt::format("cannot run the C++ compiler driver '{}' to link lib{}.so: {} (install g++, "
                    "or set KILN_AOT_CXX)",
                    cxx, name, error),
        loc);
  }
  if (status != 0) {
    kiln::detail::raise<CompileError>(
        "aot::compile", {},
        fmt::format("linking lib{}.so failed ({} exited with {}):\n{}", name, cxx, status,
                    kiln::detail::tail_of_file(log, 4000)),
        loc);
  }
}

void move_into_place(const std::string& from, const std::string& to, Loc loc) {
  std::error_code ec;
  fs::rename(from, to, ec);
  if (ec) {
    kiln::detail::raise<IOError>("aot::compile", {},
                                 fmt::format("cannot write {}: {}", to, ec.message()), loc);
  }
}

// The other shapes of a saved model compiled into one library (Options::input_shapes).
struct Variants {
  std::span<const ir::Function> graphs;  // variant 1, 2, ... (variant 0 is the main graph)
  bool run_batch = false;                // whether to emit NAME_run_batch
};

void compile_cpu(const std::string& name, const passes::PipelineResult& compiled,
                 const Layout& layout, const Options& options, bool embedded,
                 const kiln::detail::TempDir& temp, const std::string& glue, Loc loc,
                 const Variants& variants = {}, std::span<const ir::HostTensor> state = {});
Library finish_library(const std::string& name, const Layout& layout,
                       std::span<const ir::HostTensor> state, bool embedded,
                       const kiln::detail::TempDir& temp, Library result, Loc loc);

// aot::compile, for a graph whose last `checks.size()` outputs are check_numerics values.
Library compile_checked(const ir::Function& graph, size_t num_inputs,
                        std::span<const ir::HostTensor> state, std::span<const std::string> checks,
                        const Options& options, Loc loc, const Variants& variants = {}) {
  const std::string& name = options.name;
  if (!is_identifier(name) || is_reserved(name)) {
    kiln::detail::raise<ValueError>(
        "aot::compile", {},
        fmt::format("the library name '{}' must be a C identifier of at most 64 characters "
                    "(letters, digits, _; not starting with a digit or _, not ending in _t, not "
                    "starting with kiln_), and neither a C or C++ keyword nor the name of a "
                    "system header (math, stdint, ...)",
                    name),
        loc);
  }
  if (options.opt_level < 0 || options.opt_level > 3) {
    kiln::detail::raise<ValueError>(
        "aot::compile", {},
        fmt::format("opt_level must be between 0 and 3, got {}", options.opt_level), loc);
  }
  if (num_inputs > graph.params().size() || graph.params().size() - num_inputs != state.size()) {
    kiln::detail::raise<ValueError>(
        "aot::compile", {},
        fmt::format("@{} has {} parameters: {} inputs need {} state values, got {}", graph.name(),
                    graph.params().size(), num_inputs,
                    graph.params().size() - std::min(num_inputs, graph.params().size()),
                    state.size()),
        loc);
  }
  const std::string library_file =
      options.library_file.empty() ? fmt::format("lib{}.so", name) : options.library_file;
  if (library_file.find('/') != std::string::npos || library_file == "." || library_file == "..") {
    kiln::detail::raise<ValueError>(
        "aot::compile", {},
        fmt::format("library_file '{}' must be a file name, without a folder", library_file), loc);
  }
  if (options.device != "cpu" && options.device != "cuda") {
    kiln::detail::raise<ValueError>(
        "aot::compile", {},
        fmt::format("device '{}' is not one Kiln compiles for: cpu or cuda", options.device), loc);
  }
  const bool gpu = options.device == "cuda";
  std::vector<std::string> archs;
  detail::CudaTools tools;
  if (gpu) {
    archs = detail::gpu_archs(options.gpu_arch, loc);
    tools = detail::find_cuda_tools(loc);
  }
  const Layout layout = make_layout(graph, num_inputs, state, checks, loc);

  std::error_code ec;
  fs::create_directories(options.out_dir, ec);
  if (ec || !fs::is_directory(options.out_dir, ec)) {
    kiln::detail::raise<IOError>(
        "aot::compile", {},
        fmt::format("cannot create the output folder {}: {}", options.out_dir,
                    ec ? ec.message() : "a file of that name exists"),
        loc);
  }
  Library result;
  result.library = (fs::path(options.out_dir) / library_file).string();
  result.header = (fs::path(options.out_dir) / fmt::format("{}.h", name)).string();
  const bool embedded = options.weights == Weights::embed;
  if (!embedded)
    result.weights = (fs::path(options.out_dir) / fmt::format("{}.safetensors", name)).string();

  passes::PipelineOptions pipeline;
  if (gpu) pipeline.conv_lowering = passes::ConvLowering::im2col;  // cuBLASLt runs the GEMMs
  passes::PipelineResult compiled = passes::run_pipeline(graph.clone(), pipeline);
  kiln::detail::TempDir temp(options.out_dir, name + ".aot", "aot::compile", loc);
  const std::string glue = temp.file(name + "_glue.c");
  if (gpu) {
    // fatbinary reads its inputs as "kind=elf,sm=80,file=PATH", which a comma in the output
    // folder's path would break: the toolkit's files go to a private folder under $TMPDIR.
    kiln::detail::TempDir parts(detail::gpu_temp_parent(), name + ".cuda", "aot::compile", loc);
    const detail::GpuParts gpu_parts = detail::build_gpu_parts(
        name, compiled, archs, tools, embedded ? layout.blob : "", parts, loc);
    write_text(temp.file(name + ".h"), header_text(name, layout, embedded, gpu_parts.gpu_arch),
               loc);
    write_text(glue, glue_text(name, layout, 0, embedded, &gpu_parts), loc);
    link_library(name, temp, "", glue, temp.file("lib" + name + ".so"), loc, parts.path());
  } else {
    compile_cpu(name, compiled, layout, options, embedded, temp, glue, loc, variants, state);
  }
  return finish_library(name, layout, state, embedded, temp, result, loc);
}

// The CPU library: the object file for options.target_cpu, the glue, and the link.
void compile_cpu(const std::string& name, const passes::PipelineResult& compiled,
                 const Layout& layout, const Options& options, bool embedded,
                 const kiln::detail::TempDir& temp, const std::string& glue, Loc loc,
                 const Variants& variants, std::span<const ir::HostTensor> state) {
  const std::string object = temp.file(name + ".o");
  codegen::CodegenOptions codegen_options;
  codegen_options.opt_level = options.opt_level;
  codegen_options.target_cpu = options.target_cpu;
  codegen::ObjectOptions object_options;
  object_options.entry_name = name + "_kiln_entry";
  object_options.hide_entry = true;
  if (embedded) object_options.data.push_back({name + "_kiln_weights", layout.blob});
  // Each variant: its own object and entry (NAME_kiln_entry_vI), the same state.
  std::vector<Layout> layouts{layout};
  std::vector<int64_t> workspaces{compiled.memory.workspace_bytes};
  std::vector<std::string> more_objects;
  try {
    codegen::emit_object_file(compiled.function, compiled.kernels, compiled.memory, object,
                              codegen_options, object_options);
    for (size_t v = 0; v < variants.graphs.size(); ++v) {
      const ir::Function& graph = variants.graphs[v];
      layouts.push_back(make_layout(graph, layout.inputs.size(), state, {}, loc));
      passes::PipelineResult variant = passes::run_pipeline(graph.clone());
      workspaces.push_back(variant.memory.workspace_bytes);
      codegen::ObjectOptions variant_options;
      variant_options.entry_name = fmt::format("{}_kiln_entry_v{}", name, v + 1);
      variant_options.hide_entry = true;
      more_objects.push_back(temp.file(fmt::format("{}_v{}.o", name, v + 1)));
      codegen::emit_object_file(variant.function, variant.kernels, variant.memory,
                                more_objects.back(), codegen_options, variant_options);
    }
  } catch (Error& e) {
    e.add_context(fmt::format("while compiling lib{}.so", name));
    throw;
  }

  if (variants.graphs.empty()) {
    write_text(temp.file(name + ".h"), header_text(name, layout, embedded, ""), loc);
    write_text(glue, glue_text(name, layout, compiled.memory.workspace_bytes, embedded, nullptr),
               loc);
  } else {
    write_text(temp.file(name + ".h"),
               header_text(name, layout, embedded, "",
                           variant_declarations(name, layouts, variants.run_batch)),
               loc);
    write_text(glue, variant_glue_text(name, layouts, workspaces, embedded, variants.run_batch),
               loc);
  }
  link_library(name, temp, object, glue, temp.file("lib" + name + ".so"), loc, {}, more_objects);
}

// Writes the external weights, then moves the weights, the header and the library into place.
Library finish_library(const std::string& name, const Layout& layout,
                       std::span<const ir::HostTensor> state, bool embedded,
                       const kiln::detail::TempDir& temp, Library result, Loc loc) {
  if (!embedded) {
    std::vector<std::pair<std::string, Tensor>> named;
    for (size_t i = 0; i < layout.state.size(); ++i)
      named.emplace_back(layout.state[i].name, Tensor(state[i]));
    safetensors::save(temp.file(name + ".safetensors"), named,
                      {{"format", "kiln"}, {"library", name}}, loc);
    move_into_place(temp.file(name + ".safetensors"), result.weights, loc);
  }
  move_into_place(temp.file(name + ".h"), result.header, loc);
  move_into_place(temp.file("lib" + name + ".so"), result.library, loc);
  return result;
}

}  // namespace

Library compile(const ir::Function& graph, size_t num_inputs, std::span<const ir::HostTensor> state,
                const Options& options, Loc loc) {
  return compile_checked(graph, num_inputs, state, {}, options, loc);
}

namespace {

// Whether the saved model computes each sample on its own: its results on a random batch of
// `batch` samples, row by row, equal its results on each sample alone (to 1e-4, relative above
// 1), as NAME_run_batch's batching requires.
bool samples_independent(const SavedModel& model, int64_t batch, Loc loc) {
  std::vector<Tensor> xs;
  uint64_t seed = 20261206;
  for (const TensorType& saved : model.input_types()) {
    if (batch < 2 || !ir::is_floating(saved.dtype)) return batch == 1;
    Shape shape = saved.shape;
    shape[0] = batch;
    xs.push_back(random_uniform(shape, -1.0, 1.0, seed++, saved.dtype, loc));
  }
  std::vector<Tensor> whole = model(xs, loc);
  for (Tensor& t : whole)
    t = cast(t, f64, loc);
  for (int64_t i = 0; i < batch; ++i) {
    std::vector<Tensor> rows_in;
    for (const Tensor& x : xs)
      rows_in.push_back(x.index({Slice(i, i + 1)}));
    const std::vector<Tensor> rows = model(rows_in, loc);
    for (size_t o = 0; o < rows.size(); ++o) {
      const Tensor row = cast(rows[o], f64, loc);
      const Tensor part = whole[o].index({Slice(i, i + 1)});
      if (row.shape() != part.shape()) return false;
      std::vector<double> a = row.to_vector<double>(), b = part.to_vector<double>();
      for (size_t j = 0; j < a.size(); ++j)
        if (!(std::abs(a[j] - b[j]) <= 1e-4 * std::max(1.0, std::abs(b[j])))) return false;
    }
  }
  return true;
}

}  // namespace

Library compile(const SavedModel& model, const Options& options, Loc loc) {
  const size_t num_inputs = model.num_inputs();
  if (options.batch_sizes.empty() && options.input_shapes.empty())
    return compile(model.graph(), num_inputs, model.weights(), options, loc);
  if (options.device != "cpu") {
    kiln::detail::raise<ValueError>(
        "aot::compile", {},
        fmt::format("shape variants (batch_sizes, input_shapes) are compiled for the CPU only, "
                    "not for device '{}'; build one library per shape",
                    options.device),
        loc);
  }
  if (!options.input_shapes.empty() && num_inputs != 1) {
    kiln::detail::raise<ValueError>(
        "aot::compile", {},
        fmt::format("input_shapes gives one shape per variant, for a model of one input; '{}' "
                    "has {}: use batch_sizes",
                    model.name(), num_inputs),
        loc);
  }
  // Variant 0 is the saved shapes (NAME_run's); then each listed one once.
  std::vector<Shape> saved;
  for (const TensorType& type : model.input_types())
    saved.push_back(type.shape);
  std::vector<std::vector<Shape>> variants{saved};
  for (int64_t batch : options.batch_sizes) {
    std::vector<Shape> shapes = saved;
    for (Shape& shape : shapes) {
      if (batch <= 0 || shape.rank() == 0) {
        kiln::detail::raise<ValueError>(
            "aot::compile", {},
            fmt::format("batch_sizes must be positive sizes of a batched input (the model takes "
                        "{}), got {}",
                        model.input_type().to_string(), batch),
            loc);
      }
      shape[0] = batch;
    }
    variants.push_back(shapes);
  }
  for (const Shape& shape : options.input_shapes)
    variants.push_back({shape});
  std::vector<std::vector<Shape>> unique;
  for (const std::vector<Shape>& shapes : variants)
    if (std::find(unique.begin(), unique.end(), shapes) == unique.end()) unique.push_back(shapes);
  std::vector<ir::Function> graphs;
  for (size_t v = 1; v < unique.size(); ++v)
    graphs.push_back(model.graph_for(unique[v], loc));  // ShapeError for shapes not taken
  // NAME_run_batch: the variants differ only in the batch, and the samples are independent.
  bool same_samples = model.batch_is_free();
  int64_t largest = 0;
  for (const std::vector<Shape>& shapes : unique) {
    for (size_t i = 0; same_samples && i < shapes.size(); ++i) {
      same_samples = saved[i].rank() > 0 && shapes[i].rank() == saved[i].rank();
      for (int64_t d = 1; same_samples && d < saved[i].rank(); ++d)
        same_samples = shapes[i][d] == saved[i][d];
    }
    if (shapes[0].rank() > 0) largest = std::max(largest, shapes[0][0]);
  }
  const bool run_batch =
      same_samples && samples_independent(model, std::max<int64_t>(largest, 2), loc);
  return compile_checked(model.graph(), num_inputs, model.weights(), {}, options, loc,
                         Variants{graphs, run_batch});
}

namespace detail {

Library compile_traced(const kiln::detail::TracedView& traced, const Options& options, Loc loc) {
  using kiln::detail::Binding;
  size_t num_inputs = 0;
  std::vector<ir::HostTensor> state;
  for (size_t i = 0; i < traced.bindings.size(); ++i) {
    const Binding& b = traced.bindings[i];
    switch (b.kind) {
      case Binding::Kind::argument:
        // Arguments are traced first, so they are the first parameters
        // (frontend/core/function.cpp).
        KILN_CHECK(num_inputs == i, "a traced argument follows captured state");
        ++num_inputs;
        break;
      case Binding::Kind::captured:
        state.push_back(b.tensor.host());
        break;
      case Binding::Kind::variable:
        if (b.index != Binding::kCaptured) {
          kiln::detail::raise<ValueError>(
              "aot::compile", {},
              "a Variable passed as an argument cannot be compiled ahead of time; let the "
              "function use it without taking it, so that the library holds it",
              loc);
        }
        // The library holds the current value on the host (a copy of a GPU variable's).
        state.push_back(kiln::detail::VariableAccess::host_copy(b.variable, "aot::compile", loc));
        break;
    }
  }
  return compile_checked(traced.graph, num_inputs, state, traced.checks, options, loc);
}

void wrong_spec_count(const std::string& function, size_t expected, size_t given, Loc loc) {
  kiln::detail::raise<ValueError>(
      "aot::compile", {},
      fmt::format("{} takes {} tensor arguments, but {} TensorSpecs were given", function, expected,
                  given),
      loc);
}

}  // namespace detail

}  // namespace kiln::aot
