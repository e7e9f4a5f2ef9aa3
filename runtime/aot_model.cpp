// The model instance behind ahead-of-time libraries (aot_model.h): the state, set up from the
// embedded weights or a safetensors file (aot_weights.h), runs that stage unaligned buffers and
// apply updates by swapping buffers, and saving the state. Linked statically into every AOT
// library, so: no LLVM, no IR, no fmt, no iostream.
#include "kiln/runtime/aot_model.h"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kiln/runtime/aot_cuda_model.h"
#include "kiln/runtime/aot_weights.h"
#include "kiln/runtime/generated_code.h"
#include "kiln/runtime/thread_pool.h"

namespace {

using kiln::runtime::detail::dtype_size;
using kiln::runtime::detail::fail;
using kiln::runtime::detail::Failure;
using kiln::runtime::detail::printable;
using kiln::runtime::detail::read_weights_file;
using kiln::runtime::detail::shape_string;
using kiln::runtime::detail::TensorInfo;
using kiln::runtime::detail::valid_tensor_name;
using kiln::runtime::detail::write_weights_file;

constexpr size_t kErrorSize = 2048;

// An error message in a fixed buffer, so that recording one never allocates or throws.
struct ErrorText {
  char text[kErrorSize] = "";
  void set(const char* message) noexcept { std::snprintf(text, sizeof text, "%s", message); }
  void set(const char* who, const char* message) noexcept {
    std::snprintf(text, sizeof text, "%s: %s", who, message);
  }
};

// kiln_aot_last_error(NULL): failed creates, and calls that got no model.
thread_local ErrorText t_error;

// Records the exception being handled; call only inside a catch block.
void record_current_exception(ErrorText& error, const char* who) noexcept {
  try {
    throw;
  } catch (const std::bad_alloc&) {
    error.set(who, "out of memory");
  } catch (const Failure& e) {
    error.set(e.what());
  } catch (const std::exception& e) {
    error.set(who, e.what());
  } catch (...) {
    error.set(who, "unknown error");
  }
}

struct FreeAligned {
  void operator()(void* p) const noexcept { kiln_rt_free(p); }
};
using Buffer = std::unique_ptr<void, FreeAligned>;

// A buffer of `bytes` for `what` (of model `model`); memory that cannot be had is a Failure that
// says how much and what for.
Buffer allocate(int64_t bytes, const std::string& model, const std::string& what) {
  Buffer buffer(kiln_rt_alloc(static_cast<size_t>(bytes)));
  if (!buffer) {
    fail(model + ": cannot allocate " + std::to_string(bytes) + " bytes for " + what +
         ": out of memory");
  }
  return buffer;
}

// "NaN", "Inf" or "NaN and Inf" when the f32/f64 tensor at `data` is not all finite, else NULL.
template <class T>
const char* non_finite_values(const T* data, int64_t n) {
  bool nan = false, inf = false;
  for (int64_t i = 0; i < n; ++i) {
    nan = nan || std::isnan(data[i]);
    inf = inf || std::isinf(data[i]);
  }
  return nan && inf ? "NaN and Inf" : nan ? "NaN" : inf ? "Inf" : nullptr;
}

const char* non_finite(const TensorInfo& t, const void* data) {
  if (t.dtype == KILN_AOT_F32)
    return non_finite_values(static_cast<const float*>(data), t.bytes / 4);
  if (t.dtype == KILN_AOT_F64)
    return non_finite_values(static_cast<const double*>(data), t.bytes / 8);
  return nullptr;  // integers are always finite
}

bool aligned(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 64 == 0;
}

}  // namespace

struct kiln_aot_model {
  std::string name;
  kiln_entry_fn entry = nullptr;
  std::vector<TensorInfo> inputs, outputs, state, checks;
  std::vector<int32_t> update_state;
  std::vector<void*> state_data;       // each state's current value
  std::vector<Buffer> state_owned;     // null where state_data points into the embedded weights
  std::vector<Buffer> update_buffers;  // where the entry writes each update
  std::vector<Buffer> check_buffers;   // where it writes each check_numerics value
  std::vector<Buffer> input_staging, output_staging;
  Buffer workspace;
  std::vector<void*> frame_inputs;   // [inputs..., state...]
  std::vector<void*> frame_outputs;  // [outputs..., checks..., updates...]
  int64_t status[KILN_RT_STATUS_WORDS] = {};
  ErrorText error;
  // A GPU instance (kiln_aot_create_cuda): the state lives on the device, not in state_data.
  kiln::runtime::detail::AotCudaModel* cuda = nullptr;
  const kiln::runtime::detail::AotCudaOps* cuda_ops = nullptr;
  std::vector<void*> check_pointers;         // check_buffers' addresses, for the GPU half
  mutable std::vector<Buffer> state_mirror;  // kiln_aot_state's host copies of GPU state

  void init(const kiln_aot_desc& desc, const char* weights_path,
            const kiln_aot_cuda_desc* cuda_desc = nullptr, int32_t device = 0,
            const kiln::runtime::detail::AotCudaOps* ops = nullptr);
  ~kiln_aot_model() {
    if (cuda != nullptr) cuda_ops->destroy(cuda);
  }
  void read_tensors(const char* kind, int32_t count, const kiln_aot_tensor* tensors,
                    std::vector<TensorInfo>& out) const;
  void check_state_names() const;
  void load_weights_file(const char* path);
  void load_embedded(const kiln_aot_desc& desc, const std::vector<bool>& updated);
  int run(const void* const* in, void* const* out);
  int run_cuda(const void* const* in, void* const* out);
  int run_device(const uint64_t* in, const uint64_t* out);
  // Turns what the kernels reported and the check values into an error, or applies the updates.
  int finish(const int64_t* words);
  void save(const char* path) const;
  const void* state_view(size_t index) const;
  // Sets the error to "NAME: " + the formatted text, without allocating; returns 1.
  __attribute__((format(printf, 2, 3))) int run_error(const char* format, ...);
};

int kiln_aot_model::run_error(const char* format, ...) {
  int n = std::snprintf(error.text, sizeof error.text, "%s: ", name.c_str());
  if (n >= 0 && static_cast<size_t>(n) < sizeof error.text) {
    va_list args;
    va_start(args, format);
    std::vsnprintf(error.text + n, sizeof error.text - static_cast<size_t>(n), format, args);
    va_end(args);
  }
  return 1;
}

void kiln_aot_model::read_tensors(const char* kind, int32_t count, const kiln_aot_tensor* tensors,
                                  std::vector<TensorInfo>& out) const {
  std::string prefix = name + ": invalid descriptor: ";
  if (count < 0) fail(prefix + "negative " + kind + " count");
  if (count > 0 && tensors == nullptr) fail(prefix + "the " + kind + " array is NULL");
  for (int32_t i = 0; i < count; ++i) {
    const kiln_aot_tensor& t = tensors[i];
    TensorInfo info;
    if (t.name != nullptr) {
      info.name = t.name;
    } else if (std::string_view(kind) != "state") {
      info.name = std::string(kind) + " " + std::to_string(i);
    } else {
      fail(prefix + "state tensor " + std::to_string(i) + " has no name");
    }
    std::string what = prefix + kind + " '" + info.name + "' ";
    int64_t bytes = dtype_size(t.dtype);
    if (bytes == 0) fail(what + "has unknown dtype " + std::to_string(t.dtype));
    if (t.rank < 0 || (t.rank > 0 && t.shape == nullptr)) fail(what + "has no valid shape");
    bool overflow = false;
    for (int32_t d = 0; d < t.rank; ++d) {
      if (t.shape[d] < 0) fail(what + "has a negative dimension");
      overflow = overflow || __builtin_mul_overflow(bytes, t.shape[d], &bytes);
      info.shape.push_back(t.shape[d]);
    }
    if (overflow || bytes != t.bytes) {
      fail(what + "is declared as " + std::to_string(t.bytes) + " bytes, but its dtype and shape " +
           shape_string(info.shape) + " say otherwise");
    }
    info.dtype = t.dtype;
    info.bytes = t.bytes;
    info.offset = t.offset;
    out.push_back(std::move(info));
  }
}

void kiln_aot_model::check_state_names() const {
  std::vector<std::string_view> names;
  for (const TensorInfo& s : state) {
    if (!valid_tensor_name(s.name)) {
      fail(name + ": invalid descriptor: '" + printable(s.name) +
           "' cannot name a tensor in a safetensors file");
    }
    names.push_back(s.name);
  }
  std::sort(names.begin(), names.end());
  auto repeated = std::adjacent_find(names.begin(), names.end());
  if (repeated != names.end()) {
    fail(name + ": invalid descriptor: two state tensors are named '" + std::string(*repeated) +
         "'");
  }
}

void kiln_aot_model::init(const kiln_aot_desc& desc, const char* weights_path,
                          const kiln_aot_cuda_desc* cuda_desc, int32_t device,
                          const kiln::runtime::detail::AotCudaOps* ops) {
  name = desc.name != nullptr ? desc.name : "kiln_aot";
  std::string invalid = name + ": invalid descriptor: ";
  if (desc.entry == nullptr && cuda_desc == nullptr) fail(invalid + "no entry function");
  if (desc.workspace_bytes < 0) fail(invalid + "negative workspace size");
  entry = desc.entry;
  read_tensors("input", desc.num_inputs, desc.inputs, inputs);
  read_tensors("output", desc.num_outputs, desc.outputs, outputs);
  read_tensors("state", desc.num_state, desc.state, state);
  read_tensors("check", desc.num_checks, desc.checks, checks);
  check_state_names();

  if (desc.num_updates < 0) fail(invalid + "negative update count");
  if (desc.num_updates > 0 && desc.update_state == nullptr) fail(invalid + "update_state is NULL");
  std::vector<bool> updated(state.size(), false);
  for (int32_t u = 0; u < desc.num_updates; ++u) {
    int32_t s = desc.update_state[u];
    if (s < 0 || static_cast<size_t>(s) >= state.size()) {
      fail(invalid + "update " + std::to_string(u) + " names state " + std::to_string(s) +
           ", but there are " + std::to_string(state.size()));
    }
    if (updated[s]) fail(invalid + "state '" + state[s].name + "' is updated twice");
    updated[s] = true;
    update_state.push_back(s);
  }

  state_data.assign(state.size(), nullptr);
  state_owned.resize(state.size());
  if (weights_path != nullptr) {
    load_weights_file(weights_path);
  } else if (!state.empty()) {
    if (desc.weights == nullptr) {
      fail(name + ": the weights are not embedded in this library; create it from a weights file");
    }
    load_embedded(desc, updated);
  }
  for (const TensorInfo& t : checks) {
    check_buffers.push_back(allocate(t.bytes, name, "check '" + t.name + "'"));
    check_pointers.push_back(check_buffers.back().get());
  }

  if (cuda_desc != nullptr) {
    const kiln::runtime::detail::AotSignature signature{name,   &inputs, &outputs,
                                                        &state, &checks, &update_state};
    cuda_ops = ops;
    cuda = ops->create(signature, *cuda_desc, device, state_data);
    // The state lives on the device now: the host copies are dropped.
    state_owned.clear();
    state_owned.resize(state.size());
    state_data.assign(state.size(), nullptr);
    return;
  }
  for (int32_t s : update_state)
    update_buffers.push_back(
        allocate(state[s].bytes, name, "the update of '" + state[s].name + "'"));
  for (const TensorInfo& t : inputs)
    input_staging.push_back(allocate(t.bytes, name, "input '" + t.name + "'"));
  for (const TensorInfo& t : outputs)
    output_staging.push_back(allocate(t.bytes, name, "output '" + t.name + "'"));
  workspace = allocate(desc.workspace_bytes, name, "the workspace");
  frame_inputs.assign(inputs.size() + state.size(), nullptr);
  frame_outputs.assign(outputs.size() + checks.size() + update_state.size(), nullptr);
}

void kiln_aot_model::load_embedded(const kiln_aot_desc& desc, const std::vector<bool>& updated) {
  if (desc.weights_bytes < 0) fail(name + ": invalid descriptor: negative weights size");
  for (size_t s = 0; s < state.size(); ++s) {
    const TensorInfo& t = state[s];
    if (t.offset < 0 || t.offset % 64 != 0 || t.offset > desc.weights_bytes - t.bytes) {
      fail(name + ": invalid descriptor: state '" + t.name + "' at offset " +
           std::to_string(t.offset) + " (" + std::to_string(t.bytes) +
           " bytes) is not a 64-byte aligned part of the " + std::to_string(desc.weights_bytes) +
           " bytes of embedded weights");
    }
    const char* src = static_cast<const char*>(desc.weights) + t.offset;
    if (!updated[s] && aligned(src)) {  // read-only: used in place
      state_data[s] = const_cast<char*>(src);
    } else {  // updated state is swapped with update buffers, so it must be owned
      state_owned[s] = allocate(t.bytes, name, "state '" + t.name + "'");
      std::memcpy(state_owned[s].get(), src, static_cast<size_t>(t.bytes));
      state_data[s] = state_owned[s].get();
    }
  }
}

void kiln_aot_model::load_weights_file(const char* path) {
  read_weights_file(name, path, state, [&](size_t s) {
    state_owned[s] = allocate(state[s].bytes, name, "state '" + state[s].name + "'");
    state_data[s] = state_owned[s].get();
    return state_data[s];
  });
}

// Allocates nothing. When the generated code reports a bad gather index, the outputs hold what
// it computed with the index replaced by 0, and the updates are NOT applied: the state stays as
// it was before the call, so a training step with bad data can be skipped and retried.
// Calls the generated entry (generated_code.h).
KILN_CALLS_GENERATED_CODE int kiln_aot_model::run(const void* const* in, void* const* out) {
  if (!inputs.empty() && in == nullptr) return run_error("the inputs array is NULL");
  if (!outputs.empty() && out == nullptr) return run_error("the outputs array is NULL");
  if (cuda) return run_cuda(in, out);
  for (size_t i = 0; i < inputs.size(); ++i) {
    size_t bytes = static_cast<size_t>(inputs[i].bytes);
    if (in[i] == nullptr && bytes > 0) {
      return run_error("input %zu (%s) is NULL", i, inputs[i].name.c_str());
    }
    if (in[i] != nullptr && aligned(in[i])) {
      frame_inputs[i] = const_cast<void*>(in[i]);  // generated code never writes its inputs
    } else {
      if (bytes > 0) std::memcpy(input_staging[i].get(), in[i], bytes);
      frame_inputs[i] = input_staging[i].get();
    }
  }
  for (size_t s = 0; s < state.size(); ++s)
    frame_inputs[inputs.size() + s] = state_data[s];
  for (size_t o = 0; o < outputs.size(); ++o) {
    if (out[o] == nullptr && outputs[o].bytes > 0) {
      return run_error("output %zu (%s) is NULL", o, outputs[o].name.c_str());
    }
    frame_outputs[o] = out[o] != nullptr && aligned(out[o]) ? out[o] : output_staging[o].get();
  }
  for (size_t c = 0; c < checks.size(); ++c)
    frame_outputs[outputs.size() + c] = check_buffers[c].get();
  for (size_t u = 0; u < update_state.size(); ++u)
    frame_outputs[outputs.size() + checks.size() + u] = update_buffers[u].get();

  std::fill(std::begin(status), std::end(status), 0);
  kiln_frame frame{frame_inputs.data(), frame_outputs.data(), workspace.get(), status};
  entry(&frame);

  for (size_t o = 0; o < outputs.size(); ++o) {
    if (frame_outputs[o] != out[o] && outputs[o].bytes > 0) {
      std::memcpy(out[o], frame_outputs[o], static_cast<size_t>(outputs[o].bytes));
    }
  }
  return finish(status);
}

// A GPU instance's run from host memory: copied in and out by the GPU half.
int kiln_aot_model::run_cuda(const void* const* in, void* const* out) {
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (in[i] == nullptr && inputs[i].bytes > 0)
      return run_error("input %zu (%s) is NULL", i, inputs[i].name.c_str());
  }
  for (size_t o = 0; o < outputs.size(); ++o) {
    if (out[o] == nullptr && outputs[o].bytes > 0)
      return run_error("output %zu (%s) is NULL", o, outputs[o].name.c_str());
  }
  const kiln::runtime::RunStatus s = cuda_ops->run(*cuda, in, out, check_pointers);
  const int64_t words[4] = {s.code, s.value, s.position, s.bound};
  return finish(words);
}

int kiln_aot_model::run_device(const uint64_t* in, const uint64_t* out) {
  if (!cuda) {
    return run_error(
        "run_device needs a library built for a GPU (kiln aot --device cuda); this one runs on "
        "the CPU: use run");
  }
  if (!inputs.empty() && in == nullptr) return run_error("the inputs array is NULL");
  if (!outputs.empty() && out == nullptr) return run_error("the outputs array is NULL");
  // Kernels and cuBLASLt read whole elements, and GEMMs assume 16-byte aligned matrices
  // (cuMemAlloc gives 256).
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (in[i] == 0 && inputs[i].bytes > 0)
      return run_error("input %zu (%s) is a null device pointer", i, inputs[i].name.c_str());
    if (in[i] % 16 != 0)
      return run_error("input %zu (%s) is not aligned to 16 bytes", i, inputs[i].name.c_str());
  }
  for (size_t o = 0; o < outputs.size(); ++o) {
    if (out[o] == 0 && outputs[o].bytes > 0)
      return run_error("output %zu (%s) is a null device pointer", o, outputs[o].name.c_str());
    if (out[o] % 16 != 0)
      return run_error("output %zu (%s) is not aligned to 16 bytes", o, outputs[o].name.c_str());
  }
  const kiln::runtime::RunStatus s = cuda_ops->run_device(*cuda, in, out, check_pointers);
  const int64_t words[4] = {s.code, s.value, s.position, s.bound};
  return finish(words);
}

int kiln_aot_model::finish(const int64_t* words) {
  if (words[0] != 0) {
    return run_error(
        "index %lld (element %lld of indices) is out of range for an axis of size "
        "%lld (kernel %lld)%s",
        static_cast<long long>(words[1]), static_cast<long long>(words[2]),
        static_cast<long long>(words[3]), static_cast<long long>(words[0] - 1),
        update_state.empty() ? "" : "; the state was not updated");
  }
  for (size_t c = 0; c < checks.size(); ++c) {
    const char* wrong = non_finite(checks[c], check_buffers[c].get());
    if (wrong != nullptr) {
      return run_error("check_numerics: %s: found %s%s", checks[c].name.c_str(), wrong,
                       update_state.empty() ? "" : "; the state was not updated");
    }
  }
  if (cuda) {
    cuda_ops->commit(*cuda);
    return 0;
  }
  for (size_t u = 0; u < update_state.size(); ++u) {
    size_t s = static_cast<size_t>(update_state[u]);
    std::swap(state_owned[s], update_buffers[u]);
    state_data[s] = state_owned[s].get();
  }
  return 0;
}

void kiln_aot_model::save(const char* path) const {
  if (path == nullptr) fail(name + ": kiln_aot_save_weights: the path is NULL");
  if (!cuda) {
    write_weights_file(name, path, state, state_data);
    return;
  }
  std::vector<Buffer> host;
  std::vector<void*> data;
  for (size_t s = 0; s < state.size(); ++s) {
    host.push_back(allocate(state[s].bytes, name, "a copy of state '" + state[s].name + "'"));
    cuda_ops->download(*cuda, s, host.back().get());
    data.push_back(host.back().get());
  }
  write_weights_file(name, path, state, data);
}

const void* kiln_aot_model::state_view(size_t index) const {
  if (!cuda) return state_data[index];
  state_mirror.resize(state.size());
  if (!state_mirror[index])
    state_mirror[index] =
        allocate(state[index].bytes, name, "a copy of '" + state[index].name + "'");
  cuda_ops->download(*cuda, index, state_mirror[index].get());
  return state_mirror[index].get();
}

extern "C" {

kiln_aot_model* kiln_aot_create(const kiln_aot_desc* desc, const char* weights_path) {
  const char* who = "kiln_aot_create";
  try {
    if (desc == nullptr) fail("kiln_aot_create: the descriptor is NULL");
    // Nothing else is read from a descriptor of another layout.
    if (desc->abi_version != KILN_AOT_ABI_VERSION) {
      fail("kiln_aot_create: the library was built for AOT ABI version " +
           std::to_string(desc->abi_version) + ", this runtime reads version " +
           std::to_string(KILN_AOT_ABI_VERSION));
    }
    if (desc->name != nullptr) who = desc->name;
    auto model = std::make_unique<kiln_aot_model>();
    model->init(*desc, weights_path);
    return model.release();
  } catch (...) {
    record_current_exception(t_error, who);
    return nullptr;
  }
}

}  // extern "C"

kiln_aot_model* kiln::runtime::detail::create_aot_model(const kiln_aot_desc* desc,
                                                        const kiln_aot_cuda_desc* cuda,
                                                        const char* weights_path, int32_t device,
                                                        const AotCudaOps& ops) {
  const char* who = "kiln_aot_create_cuda";
  try {
    if (desc == nullptr || cuda == nullptr) fail("kiln_aot_create_cuda: the descriptor is NULL");
    if (desc->abi_version != KILN_AOT_ABI_VERSION) {
      fail("kiln_aot_create_cuda: the library was built for AOT ABI version " +
           std::to_string(desc->abi_version) + ", this runtime reads version " +
           std::to_string(KILN_AOT_ABI_VERSION));
    }
    if (desc->name != nullptr) who = desc->name;
    auto model = std::make_unique<kiln_aot_model>();
    model->init(*desc, weights_path, cuda, device, &ops);
    return model.release();
  } catch (...) {
    record_current_exception(t_error, who);
    return nullptr;
  }
}

extern "C" {

int kiln_aot_run_device(kiln_aot_model* model, const uint64_t* inputs, const uint64_t* outputs) {
  if (model == nullptr) {
    t_error.set("kiln_aot_run_device: the model is NULL");
    return 1;
  }
  try {
    return model->run_device(inputs, outputs);
  } catch (...) {
    record_current_exception(model->error, model->name.c_str());
    return 1;
  }
}

int kiln_aot_run(kiln_aot_model* model, const void* const* inputs, void* const* outputs) {
  if (model == nullptr) {
    t_error.set("kiln_aot_run: the model is NULL");
    return 1;
  }
  try {
    return model->run(inputs, outputs);
  } catch (...) {  // generated code never throws, but a hand-written entry might
    record_current_exception(model->error, model->name.c_str());
    return 1;
  }
}

const char* kiln_aot_last_error(const kiln_aot_model* model) {
  return model != nullptr ? model->error.text : t_error.text;
}

int kiln_aot_save_weights(kiln_aot_model* model, const char* path) {
  if (model == nullptr) {
    t_error.set("kiln_aot_save_weights: the model is NULL");
    return 1;
  }
  try {
    model->save(path);
    return 0;
  } catch (...) {
    record_current_exception(model->error, model->name.c_str());
    return 1;
  }
}

const void* kiln_aot_state(const kiln_aot_model* model, int32_t index) {
  if (model == nullptr || index < 0 || static_cast<size_t>(index) >= model->state.size()) {
    return nullptr;
  }
  try {
    return model->state_view(static_cast<size_t>(index));
  } catch (...) {
    record_current_exception(const_cast<kiln_aot_model*>(model)->error, model->name.c_str());
    return nullptr;
  }
}

void kiln_aot_destroy(kiln_aot_model* model) {
  delete model;
}

int kiln_aot_set_num_threads(int32_t num_threads) {
  try {
    if (num_threads < 1) {
      t_error.set(
          "kiln_aot_set_num_threads",
          ("the thread count must be at least 1, got " + std::to_string(num_threads)).c_str());
      return 1;
    }
    if (!kiln::runtime::ThreadPool::request_global_threads(num_threads)) {
      t_error.set("kiln_aot_set_num_threads",
                  ("the thread pool already runs " +
                   std::to_string(kiln::runtime::ThreadPool::global().num_threads()) +
                   " threads; set the count before the first run")
                      .c_str());
      return 1;
    }
    return 0;
  } catch (...) {
    record_current_exception(t_error, "kiln_aot_set_num_threads");
    return 1;
  }
}

}  // extern "C"
