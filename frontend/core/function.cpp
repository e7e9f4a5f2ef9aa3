#include "kiln/frontend/core/function.h"

#include <cxxabi.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>

#include "kiln/frontend/core/check_numerics.h"
#include "kiln/frontend/core/compile.h"
#include "kiln/frontend/core/device_function.h"
#include "kiln/frontend/core/device_ops.h"
#include "kiln/frontend/core/function_signature.h"
#include "kiln/frontend/core/gradient_tape.h"
#include "kiln/frontend/core/inline_list.h"
#include "kiln/frontend/core/log.h"
#include "kiln/frontend/core/trace.h"

namespace kiln::detail {

namespace {
// After this many retraces of one function, a warning says what keeps changing.
constexpr int64_t kRetraceWarning = 5;
}  // namespace

// One traced and compiled signature.
struct TracedEntry {
  Signature signature;
  ir::Function graph;  // as traced, before passes
  // Where the call's tensors live: the CPU (compiled) or a GPU (on_device, with the captured
  // tensors there: `captured` holds each captured binding's tensor on the GPU, by binding).
  Device device;
  std::unique_ptr<CompiledFunction> compiled;
  std::unique_ptr<DeviceFunction> on_device;
  std::vector<Tensor> captured;
  std::vector<Binding> bindings;        // one per parameter
  std::vector<size_t> update_bindings;  // the parameter each update writes, in update order
  std::vector<size_t> result_sizes;     // vector lengths in the result structure
  std::vector<Trace::Check> checks;     // check_numerics calls; their values end the outputs
};

struct FunctionCore::State {
  // Guards `cache`, and is held only to look an entry up or add one: a call whose signature is
  // cached never waits for another thread's trace and compile.
  std::mutex cache_mutex;
  std::unordered_map<std::string, std::shared_ptr<TracedEntry>> cache;
  // Held while tracing and compiling, so that concurrent calls trace each signature once; guards
  // the members below. Recursive, so that a body that (oddly) asks its own function for a graph
  // does not hang.
  std::recursive_mutex trace_mutex;
  std::vector<const TracedEntry*> order;  // in trace order, for finding the closest signature
  std::atomic<int64_t> traces{0};
  int64_t retraces = 0;  // retraces begun, failed ones included
  // How often each "argument 0 shape" changed across retraces, for the warning.
  std::map<std::string, int64_t> changes;
};

namespace {

// Appends the body's IR to `trace`: arguments become parameters, then the body runs.
std::vector<Tensor> run_body(Trace& trace, const CallArgs& call, const FunctionCore::Body& body,
                             std::vector<size_t>& result_sizes) {
  TraceScope scope(trace);
  std::vector<Tensor> leaves;
  leaves.reserve(call.tensors.size());
  for (const Tensor& t : call.tensors)
    leaves.push_back(trace.add_argument(t.type()));
  std::vector<Tensor> results = body(leaves, result_sizes);
  trace.finish(results);
  return results;
}

const Variable& bound_variable(const Binding& binding, const CallArgs& call) {
  return binding.index == Binding::kCaptured ? binding.variable : call.variables[binding.index];
}

std::string plural(int64_t n, std::string_view word) {
  return fmt::format("{} {}{}", n, word, n == 1 ? "" : "s");
}

// "tensor argument 1", "Variable 'dense/kernel'" or "a captured f32[4] tensor": a binding, for
// messages.
std::string binding_text(const Binding& binding, const CallArgs& call) {
  switch (binding.kind) {
    case Binding::Kind::argument:
      return fmt::format("tensor argument {}", binding.index);
    case Binding::Kind::captured:
      return fmt::format("a captured {} tensor", binding.tensor.type().to_string());
    case Binding::Kind::variable:
      return fmt::format("Variable '{}'", bound_variable(binding, call).name());
  }
  return "a binding";
}

}  // namespace

// The device a new entry runs on: the GPU its tensors and variables live on, if any, else the
// CPU. On a GPU, every tensor and variable it reads must be there, except 0-d cpu tensors and
// variables (plain numbers and step counters, copied along on each call) and captured cpu
// tensors (constants of the trace, copied there once, into entry.captured). Anything else is a
// DeviceError naming both devices.
Device FunctionCore::call_device(TracedEntry& entry, const CallArgs& call) const {
  const auto device_of = [&](const Binding& b) {
    switch (b.kind) {
      case Binding::Kind::argument:
        return call.tensors[b.index].device();
      case Binding::Kind::captured:
        return b.tensor.device();
      case Binding::Kind::variable:
        return bound_variable(b, call).device();
    }
    return Device::cpu();
  };
  const Binding* first = nullptr;
  for (const Binding& b : entry.bindings) {
    if (device_of(b).is_cuda()) {
      first = &b;
      break;
    }
  }
  if (first == nullptr) return Device::cpu();
  const Device device = device_of(*first);
  entry.captured.resize(entry.bindings.size());
  for (size_t i = 0; i < entry.bindings.size(); ++i) {
    const Binding& b = entry.bindings[i];
    const Device here = device_of(b);
    if (here == device) continue;
    // 0-d tensors and variables on the cpu (numbers; an optimizer's step counter) go along.
    const bool scalar = b.kind == Binding::Kind::argument ? call.tensors[b.index].rank() == 0
                        : b.kind == Binding::Kind::captured
                            ? b.tensor.rank() == 0
                            : bound_variable(b, call).type().shape.rank() == 0;
    if (here.is_cpu() && scalar) continue;
    if (here.is_cpu() && b.kind == Binding::Kind::captured) {
      entry.captured[i] = b.tensor.to(device);
      continue;
    }
    throw DeviceError(fmt::format(
        "function '{}' reads tensors on {} and {} ({} is on {}, {} on {}); move them to one "
        "device with .to(...), or make the variables under a DeviceScope",
        name_, device.to_string(), here.to_string(), binding_text(*first, call), device.to_string(),
        binding_text(b, call), here.to_string()));
  }
  return device;
}

FunctionCore::FunctionCore(std::string name, std::string parameter_types, size_t arity)
    : name_(std::move(name)),
      parameter_types_(std::move(parameter_types)),
      arity_(arity),
      state_(std::make_unique<State>()) {}

FunctionCore::~FunctionCore() = default;

std::string FunctionCore::expected_signature() const {
  return fmt::format("{}({})", name_, parameter_types_);
}

int64_t FunctionCore::trace_count() const {
  return state_->traces.load();
}

const TracedEntry& FunctionCore::entry(const CallArgs& call, const Body& body) {
  // Reused by every call on this thread, so that a hit allocates nothing. Only read before
  // anything that could call back into a kiln::function (tracing runs user code).
  thread_local std::string key;
  if (signature_key(call, key)) {
    if (const TracedEntry* hit = find(key)) return *hit;
  }
  // A new signature, or a bad argument (make_signature throws the error).
  Signature signature = make_signature(call, name_, expected_signature());
  std::lock_guard trace_lock(state_->trace_mutex);
  // Another thread may have traced it while this one waited.
  if (const TracedEntry* hit = find(signature.key)) return *hit;

  // Said before tracing, so that a retrace that fails still tells what changed.
  if (!state_->order.empty() && log_retraces_) report_retrace(signature);
  auto entry = std::make_shared<TracedEntry>();
  Trace trace(name_, call.variables);
  try {
    run_body(trace, call, body, entry->result_sizes);
  } catch (InternalError&) {
    throw;
  } catch (Error& e) {
    e.add_context(fmt::format("while tracing {}", signature_text(name_, signature)));
    throw;
  }
  entry->graph = std::move(trace.function());
  entry->bindings = trace.bindings();
  entry->checks = trace.checks();
  for (const ir::Function::Update& update : entry->graph.updates())
    entry->update_bindings.push_back(static_cast<size_t>(update.param->index()));
  entry->device = call_device(*entry, call);
  if (entry->device.is_cuda()) {
    entry->on_device = std::make_unique<DeviceFunction>(entry->graph.clone(), entry->device);
  } else {
    entry->compiled = compile(entry->graph.clone());
  }

  entry->signature = std::move(signature);
  state_->order.push_back(entry.get());
  {
    std::lock_guard cache_lock(state_->cache_mutex);
    state_->cache.emplace(entry->signature.key, entry);
  }
  state_->traces.fetch_add(1);
  return *entry;
}

const TracedEntry* FunctionCore::find(const std::string& key) const {
  std::lock_guard lock(state_->cache_mutex);
  auto it = state_->cache.find(key);
  return it == state_->cache.end() ? nullptr : it->second.get();
}

void FunctionCore::report_retrace(const Signature& signature) {
  // Compare with the closest cached signature (the latest one on a tie).
  std::vector<Change> closest;
  bool first = true;
  for (const TracedEntry* cached : state_->order) {
    std::vector<Change> changes = compare(cached->signature, signature);
    if (first || changes.size() <= closest.size()) closest = std::move(changes);
    first = false;
  }
  int64_t retrace = ++state_->retraces;
  log_message(fmt::format("retracing function '{}' (trace {}): {}", name_,
                          state_->traces.load() + 1, changes_text(closest)));
  for (const Change& change : closest)
    ++state_->changes[change.where + " " + change.aspect];
  if (retrace == kRetraceWarning) warn_retracing(retrace);
}

void FunctionCore::warn_retracing(int64_t retraces) const {
  std::vector<std::pair<std::string, int64_t>> tally(state_->changes.begin(),
                                                     state_->changes.end());
  std::stable_sort(tally.begin(), tally.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  std::vector<std::string> parts;
  for (const auto& [what, count] : tally)
    parts.push_back(fmt::format("{} ({} of {})", what, count, retraces));
  log_message(
      LogLevel::warning,
      fmt::format(
          "function '{}' was retraced {}; what keeps changing: {}. Each retrace traces "
          "and compiles the function again: pass values that change as Tensors rather than plain "
          "C++ values, keep shapes and dtypes steady (pad or bucket the inputs), and create each "
          "kiln::function once, outside loops",
          name_, plural(retraces, "time"), fmt::join(parts, ", ")));
}

std::vector<Tensor> FunctionCore::run(const TracedEntry& entry, const CallArgs& call) const {
  if (entry.on_device != nullptr) return run_on_device(entry, call);
  // While a GradientTape records, the call runs compiled as always and is then recorded whole:
  // the tape gets the callee's graph, to differentiate as TensorFlow does tf.function calls.
  // Variables are then read through Variable::value(), so the tape watches the trainable
  // variables the function reads.
  const bool recording = tapes_recording();
  std::vector<Tensor> params(recording ? entry.bindings.size() : 0);
  // Pointers, not copies: a HostTensor copy would allocate its shape.
  InlineList<const ir::HostTensor*> args(entry.bindings.size());
  for (size_t i = 0; i < entry.bindings.size(); ++i) {
    const Binding& binding = entry.bindings[i];
    switch (binding.kind) {
      case Binding::Kind::argument:
        args[i] = &call.tensors[binding.index].host();
        if (recording) params[i] = call.tensors[binding.index];
        break;
      case Binding::Kind::captured:
        args[i] = &binding.tensor.host();
        if (recording) params[i] = binding.tensor;
        break;
      case Binding::Kind::variable:
        // Read now, not at trace time: the variable may have changed since.
        if (recording) {
          params[i] = bound_variable(binding, call).value();
          args[i] = &params[i].host();
        } else {
          args[i] = &VariableAccess::host(bound_variable(binding, call));
        }
        break;
    }
  }
  ir::EvalResult result = entry.compiled->run(args.span());
  KILN_CHECK(result.updates.size() == entry.update_bindings.size(),
             "compiled function returned a different number of updates");
  // Checks come before the updates: a failing call leaves the variables as they were.
  size_t results = result.outputs.size() - entry.checks.size();
  for (size_t i = 0; i < entry.checks.size(); ++i) {
    const Trace::Check& check = entry.checks[i];
    check_traced_value(result.outputs[results + i], check.message, check.scope, check.loc);
  }
  result.outputs.resize(results);
  if (check_numerics_enabled()) {
    bool finite = true;
    for (const ir::HostTensor& t : result.outputs)
      finite = finite && all_finite(t);
    for (const ir::HostTensor& t : result.updates)
      finite = finite && all_finite(t);
    if (!finite) locate_non_finite(entry.graph, args.span(), name_);
  }
  for (size_t i = 0; i < result.updates.size(); ++i) {
    Variable target = bound_variable(entry.bindings[entry.update_bindings[i]], call);
    VariableAccess::set_host(target, std::move(result.updates[i]));
  }
  std::vector<Tensor> outputs;
  outputs.reserve(result.outputs.size());
  for (ir::HostTensor& value : result.outputs)
    outputs.emplace_back(std::move(value));
  if (recording) record_call_on_tapes(entry.graph, params, outputs);
  return outputs;
}

// run() for an entry compiled for a GPU: the same steps on device tensors.
std::vector<Tensor> FunctionCore::run_on_device(const TracedEntry& entry,
                                                const CallArgs& call) const {
  const bool recording = tapes_recording();
  std::vector<Tensor> params(recording ? entry.bindings.size() : 0);
  InlineList<const Tensor*> args(entry.bindings.size());
  for (size_t i = 0; i < entry.bindings.size(); ++i) {
    const Binding& binding = entry.bindings[i];
    switch (binding.kind) {
      case Binding::Kind::argument:
        args[i] = &call.tensors[binding.index];
        break;
      case Binding::Kind::captured:
        args[i] = entry.captured[i].defined() ? &entry.captured[i] : &binding.tensor;
        break;
      case Binding::Kind::variable:
        if (recording) {
          params[i] = bound_variable(binding, call).value();
          args[i] = &params[i];
        } else {
          args[i] = &VariableAccess::tensor(bound_variable(binding, call));
        }
        break;
    }
    if (recording && binding.kind != Binding::Kind::variable) params[i] = *args[i];
  }
  std::vector<Tensor> all = entry.on_device->run(args.span());
  const size_t updates = entry.update_bindings.size();
  KILN_CHECK(all.size() >= updates + entry.checks.size(),
             "compiled function returned fewer values than its updates and checks");
  const size_t results = all.size() - updates - entry.checks.size();
  // Checks come before the updates: a failing call leaves the variables as they were.
  for (size_t i = 0; i < entry.checks.size(); ++i) {
    const Trace::Check& check = entry.checks[i];
    check_traced_value(copy_to_host(all[results + i], name_, std::source_location()), check.message,
                       check.scope, check.loc);
  }
  if (check_numerics_enabled()) {
    bool finite = true;
    for (size_t i = 0; i < all.size(); ++i) {
      if (i >= results && i < results + entry.checks.size()) continue;
      finite = finite && all_finite(copy_to_host(all[i], name_, std::source_location()));
    }
    if (!finite) {
      std::vector<ir::HostTensor> host;
      host.reserve(args.size());
      std::vector<const ir::HostTensor*> pointers;
      for (const Tensor* t : args.span()) {
        host.push_back(t->device().is_cpu() ? t->host()
                                            : copy_to_host(*t, name_, std::source_location()));
      }
      for (const ir::HostTensor& t : host)
        pointers.push_back(&t);
      locate_non_finite(entry.graph, pointers, name_);
    }
  }
  for (size_t i = 0; i < updates; ++i) {
    Variable target = bound_variable(entry.bindings[entry.update_bindings[i]], call);
    Tensor& value = all[results + entry.checks.size() + i];
    // A 0-d cpu variable that went along comes back.
    if (target.device().is_cpu())
      VariableAccess::set_host(target, copy_to_host(value, name_, std::source_location()));
    else
      VariableAccess::set_tensor(target, std::move(value));
  }
  all.resize(results);
  if (recording) record_call_on_tapes(entry.graph, params, all);
  return all;
}

const ir::Function& FunctionCore::graph(const TracedEntry& entry) const {
  return entry.graph;
}

std::span<const Binding> FunctionCore::bindings(const TracedEntry& entry) const {
  return entry.bindings;
}

std::vector<std::string> FunctionCore::check_messages(const TracedEntry& entry) const {
  std::vector<std::string> messages;
  for (const Trace::Check& check : entry.checks) {
    messages.push_back(check.loc.file.empty() ? check.message
                                              : fmt::format("{} (at {}:{})", check.message,
                                                            check.loc.file, check.loc.line));
  }
  return messages;
}

std::string FunctionCore::compiled_ir(const TracedEntry& entry) const {
  if (entry.on_device != nullptr) return entry.on_device->compiled_ir();
  return entry.compiled->compiled_ir();
}

std::span<const size_t> FunctionCore::result_sizes(const TracedEntry& entry) const {
  return entry.result_sizes;
}

void FunctionCore::wrong_arity(std::span<const std::string> given) const {
  throw TypeError(
      fmt::format("function '{}' takes {}, but was called with {} ({}); the "
                  "function's signature is {}",
                  name_, plural(static_cast<int64_t>(arity_), "argument"),
                  plural(static_cast<int64_t>(given.size()), "argument"), fmt::join(given, ", "),
                  expected_signature()));
}

void FunctionCore::wrong_argument(size_t index, const std::string& given,
                                  const std::string& expected) const {
  throw TypeError(
      fmt::format("argument {} of function '{}' must be {}, got {}; the function's "
                  "signature is {}",
                  index, name_, expected, given, expected_signature()));
}

bool current_trace_active() {
  return current_trace() != nullptr;
}

std::string demangle(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(
      abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(mangled);
}

std::string value_text(bool v) {
  return v ? "true" : "false";
}
std::string value_text(float v) {
  return fmt::format("{}", v);
}
std::string value_text(double v) {
  return fmt::format("{}", v);
}
std::string value_text(long double v) {
  return fmt::format("{}", v);
}
std::string value_text(int64_t v) {
  return fmt::format("{}", v);
}
std::string value_text(uint64_t v) {
  return fmt::format("{}", v);
}
std::string value_text(std::string_view v) {
  return fmt::format("\"{}\"", v);
}

}  // namespace kiln::detail
