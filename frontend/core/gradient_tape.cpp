#include "kiln/frontend/core/gradient_tape.h"

#include <fmt/format.h>

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "kiln/frontend/core/apply.h"
#include "kiln/frontend/core/name_scope.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/operand.h"
#include "kiln/frontend/core/ops.h"
#include "kiln/ir/function.h"
#include "kiln/passes/autodiff.h"

namespace kiln {

namespace {
std::vector<GradientTape::Impl*>& tape_stack() {
  thread_local std::vector<GradientTape::Impl*> stack;
  return stack;
}
int& stop_depth() {
  thread_local int depth = 0;
  return depth;
}
}  // namespace

struct GradientTape::Impl {
  bool persistent;
  bool watch_accessed_variables;
  bool paused = false;
  bool used = false;

  ir::Function function{"tape"};
  // Tracked tensors by identity, and the tensor behind each value (kept alive, so identities
  // are never reused while recorded, and the replay can read forward values).
  std::unordered_map<const void*, ir::Value*> values;
  std::unordered_map<const ir::Value*, Tensor> tensors;

  struct WatchedVariable {
    Variable variable;
    std::vector<ir::Value*> reads;
  };
  std::vector<WatchedVariable> variables;

  bool recording() const { return !paused && stop_depth() == 0; }

  ir::Value* find(const Tensor& t) const {
    auto it = values.find(detail::TensorAccess::identity(t));
    return it != values.end() ? it->second : nullptr;
  }
  ir::Value* track(const Tensor& t, ir::Value* value) {
    values.emplace(detail::TensorAccess::identity(t), value);
    tensors.emplace(value, t);
    return value;
  }
  // A leaf (parameter) for `t`, or its existing value.
  ir::Value* leaf(const Tensor& t) {
    if (ir::Value* v = find(t)) return v;
    return track(t, function.add_param(t.type()));
  }
  WatchedVariable* watched(const Variable& v) {
    for (WatchedVariable& w : variables)
      if (w.variable.is(v)) return &w;
    return nullptr;
  }
  WatchedVariable& watch_variable(const Variable& v) {
    if (WatchedVariable* w = watched(v)) return *w;
    variables.push_back({v, {}});
    return variables.back();
  }

  void record(ir::Op op, std::span<const Tensor> inputs, const ir::Attrs& attrs,
              std::span<const Tensor> outputs, const std::source_location& loc) {
    bool connected = std::any_of(inputs.begin(), inputs.end(),
                                 [&](const Tensor& t) { return find(t) != nullptr; });
    if (!connected) return;
    std::vector<ir::Value*> operands;
    for (const Tensor& t : inputs)
      operands.push_back(leaf(t));
    std::vector<ir::TensorType> types;
    for (const Tensor& t : outputs)
      types.push_back(t.type());
    ir::Node* node = function.append_unchecked(op, std::move(operands), attrs, std::move(types),
                                               detail::node_scope(), detail::node_loc(loc));
    for (size_t i = 0; i < outputs.size(); ++i)
      track(outputs[i], node->output(i));
  }

  void record_call(const ir::Function& graph, std::span<const Tensor> params,
                   std::span<const Tensor> results) {
    bool connected = std::any_of(params.begin(), params.end(),
                                 [&](const Tensor& t) { return find(t) != nullptr; });
    if (!connected) return;
    std::unordered_map<const ir::Value*, ir::Value*> map;
    for (size_t i = 0; i < params.size(); ++i)
      map.emplace(graph.param(i), leaf(params[i]));
    for (const auto& node : graph.nodes()) {
      std::vector<ir::Value*> operands;
      operands.reserve(node->inputs().size());
      for (const ir::Value* v : node->inputs())
        operands.push_back(map.at(v));
      std::vector<ir::TensorType> types;
      for (size_t i = 0; i < node->num_outputs(); ++i)
        types.push_back(node->output(i)->type());
      ir::Node* copy = function.append_unchecked(node->op(), std::move(operands), node->attrs(),
                                                 std::move(types), node->scope(), node->loc());
      for (size_t i = 0; i < node->num_outputs(); ++i)
        map.emplace(node->output(i), copy->output(i));
    }
    for (size_t i = 0; i < results.size(); ++i)
      track(results[i], map.at(graph.outputs()[i]));
  }

  // Computes, op by op, the forward values that `later` (gradient nodes) read and the tape
  // does not hold (the insides of recorded calls: only their results are kept).
  void rematerialize(std::span<const ir::Node* const> later_nodes,
                     const std::source_location& loc) {
    std::unordered_set<const ir::Node*> later(later_nodes.begin(), later_nodes.end());
    auto missing = [&](const ir::Value* v) {
      return tensors.count(v) == 0 && later.count(v->producer()) == 0;
    };
    // Depth-first with an explicit stack: a call may hold a long chain.
    std::vector<const ir::Value*> stack;
    for (const ir::Node* node : later_nodes)
      for (const ir::Value* v : node->inputs())
        if (missing(v)) stack.push_back(v);
    while (!stack.empty()) {
      const ir::Value* v = stack.back();
      if (tensors.count(v) != 0) {
        stack.pop_back();
        continue;
      }
      const ir::Node* node = v->producer();
      KILN_CHECK(node != nullptr, "a tape parameter without a value");
      bool ready = true;
      for (const ir::Value* input : node->inputs()) {
        if (tensors.count(input) == 0) {
          stack.push_back(input);
          ready = false;
        }
      }
      if (!ready) continue;
      std::vector<Tensor> inputs;
      for (const ir::Value* input : node->inputs())
        inputs.push_back(tensors.at(input));
      detail::ReplaySite site(*node);
      std::vector<Tensor> outputs = detail::apply(node->op(), inputs, node->attrs(), loc);
      for (size_t i = 0; i < outputs.size(); ++i)
        tensors.emplace(node->output(i), std::move(outputs[i]));
      stack.pop_back();
    }
  }

  std::vector<Tensor> gradient(const Tensor& target, std::span<const Source> sources,
                               const Tensor& output_gradient, UnconnectedGradients unconnected,
                               const std::source_location& loc);
};

namespace {

std::string describe(const Source& source) {
  if (source.is_variable()) return fmt::format("Variable '{}'", source.variable().name());
  return fmt::format("a tensor of type {}", source.tensor().type().to_string());
}

}  // namespace

std::vector<Tensor> GradientTape::Impl::gradient(const Tensor& target,
                                                 std::span<const Source> sources,
                                                 const Tensor& output_gradient,
                                                 UnconnectedGradients unconnected,
                                                 const std::source_location& loc) {
  const char* op = "GradientTape.gradient";
  if (!target.defined())
    detail::raise<ValueError>(op, {}, "the target is an undefined Tensor", loc);
  if (used && !persistent) {
    detail::raise<ValueError>(op, {target},
                              "gradient() was already called on this non-persistent tape; make "
                              "it with GradientTape(/*persistent=*/true) to call it again",
                              loc);
  }
  if (!ir::is_floating(target.dtype())) {
    detail::raise<TypeError>(
        op, {target},
        fmt::format("the target must be floating (f32 or f64) to have a gradient, got {}",
                    ir::dtype_long_name(target.dtype())),
        loc);
  }
  if (output_gradient.defined() && output_gradient.type() != target.type()) {
    detail::raise<ShapeError>(
        op, {target, output_gradient},
        fmt::format("output_gradient must have the target's type {}, got {}",
                    target.type().to_string(), output_gradient.type().to_string()),
        loc);
  }
  // Every source's values in the tape: a watched tensor, or all reads of a variable.
  std::vector<std::vector<ir::Value*>> source_values;
  for (const Source& source : sources) {
    std::vector<ir::Value*> vs;
    bool seen = false;
    if (source.is_variable()) {
      // A watched variable never read (or an integer one) is seen but unconnected.
      WatchedVariable* w = watched(source.variable());
      seen = w != nullptr;
      if (w != nullptr) vs = w->reads;
    } else if (!source.tensor().defined()) {
      detail::raise<ValueError>(op, {target}, "a source is an undefined Tensor", loc);
    } else if (ir::Value* v = find(source.tensor())) {
      seen = true;
      vs.push_back(v);
    }
    if (!seen) {
      detail::raise<ValueError>(
          op, {target},
          fmt::format("the tape never saw {}: watch() it, or read the variable, while the tape "
                      "records (a tape records from its construction to its destruction)",
                      describe(source)),
          loc);
    }
    source_values.push_back(std::move(vs));
  }
  used = true;

  bool was_paused = paused;
  paused = true;  // the gradient computation itself is not recorded on this tape
  struct Resume {
    Impl& tape;
    bool was_paused;
    ~Resume() { tape.paused = was_paused; }
  } resume{*this, was_paused};

  std::vector<Tensor> results(sources.size());
  ir::Value* y = find(target);
  if (y != nullptr) {
    Tensor seed = output_gradient.defined() ? output_gradient : ones_like(target, {}, loc);
    ir::Value* seed_value = leaf(seed);
    std::vector<ir::Value*> xs;
    for (const auto& vs : source_values)
      xs.insert(xs.end(), vs.begin(), vs.end());
    size_t first = function.nodes().size();
    std::vector<ir::Value*> grads =
        passes::append_gradients(function, {&y, 1}, {&seed_value, 1}, xs);
    // Only what the asked-for gradients need: a rule also builds its other operands' gradients
    // (a dense layer's input gradient, a whole GEMM, when the input is data).
    std::vector<const ir::Node*> needed = detail::nodes_needed(function, first, grads);
    rematerialize(needed, loc);
    detail::replay(needed, tensors, loc);
    size_t k = 0;
    for (size_t s = 0; s < sources.size(); ++s) {
      Tensor sum;
      for (size_t r = 0; r < source_values[s].size(); ++r, ++k) {
        if (grads[k] == nullptr) continue;
        const Tensor& g = tensors.at(grads[k]);
        sum = sum.defined() ? add(sum, g, loc) : g;
      }
      results[s] = sum;
    }
  }
  for (size_t s = 0; s < sources.size(); ++s) {
    if (results[s].defined() || unconnected == UnconnectedGradients::none) continue;
    const Source& source = sources[s];
    if (source.is_variable()) {
      // Zeros where the variable lives, whatever DeviceScope applies (traced: a symbolic zeros).
      const Variable& v = source.variable();
      DeviceScope on(v.device(), loc);
      results[s] = zeros(v.shape(), v.dtype(), loc);
    } else {
      results[s] = zeros_like(source.tensor(), {}, loc);
    }
  }
  return results;
}

GradientTape::GradientTape(bool persistent, bool watch_accessed_variables)
    : impl_(std::make_unique<Impl>()) {
  impl_->persistent = persistent;
  impl_->watch_accessed_variables = watch_accessed_variables;
  tape_stack().push_back(impl_.get());
}

GradientTape::~GradientTape() {
  auto& stack = tape_stack();
  stack.erase(std::remove(stack.begin(), stack.end(), impl_.get()), stack.end());
}

void GradientTape::watch(const Tensor& t, std::source_location loc) {
  if (!t.defined()) detail::raise<ValueError>("GradientTape.watch", {}, "undefined Tensor", loc);
  impl_->leaf(t);
}

void GradientTape::watch(const Variable& v, std::source_location loc) {
  if (!v.defined()) detail::raise<ValueError>("GradientTape.watch", {}, "undefined Variable", loc);
  impl_->watch_variable(v);
}

Tensor GradientTape::gradient(const Tensor& target, const Source& source,
                              const Tensor& output_gradient, UnconnectedGradients unconnected,
                              std::source_location loc) {
  return impl_->gradient(target, {&source, 1}, output_gradient, unconnected, loc)[0];
}

std::vector<Tensor> GradientTape::gradient(const Tensor& target,
                                           std::initializer_list<Source> sources,
                                           const Tensor& output_gradient,
                                           UnconnectedGradients unconnected,
                                           std::source_location loc) {
  return impl_->gradient(target, {sources.begin(), sources.size()}, output_gradient, unconnected,
                         loc);
}

std::vector<Tensor> GradientTape::gradient(const Tensor& target, std::span<const Source> sources,
                                           const Tensor& output_gradient,
                                           UnconnectedGradients unconnected,
                                           std::source_location loc) {
  return impl_->gradient(target, sources, output_gradient, unconnected, loc);
}

std::vector<Tensor> GradientTape::gradient(const Tensor& target, std::span<const Variable> sources,
                                           const Tensor& output_gradient,
                                           UnconnectedGradients unconnected,
                                           std::source_location loc) {
  std::vector<Source> list(sources.begin(), sources.end());
  return impl_->gradient(target, list, output_gradient, unconnected, loc);
}

std::vector<Tensor> GradientTape::gradient(const Tensor& target, std::span<const Tensor> sources,
                                           const Tensor& output_gradient,
                                           UnconnectedGradients unconnected,
                                           std::source_location loc) {
  std::vector<Source> list(sources.begin(), sources.end());
  return impl_->gradient(target, list, output_gradient, unconnected, loc);
}

std::vector<Variable> GradientTape::watched_variables() const {
  std::vector<Variable> result;
  for (const Impl::WatchedVariable& w : impl_->variables)
    result.push_back(w.variable);
  return result;
}

void GradientTape::stop_recording() {
  impl_->paused = true;
}

void GradientTape::resume_recording() {
  impl_->paused = false;
}

void GradientTape::reset() {
  bool persistent = impl_->persistent, watch = impl_->watch_accessed_variables;
  auto& stack = tape_stack();
  auto it = std::find(stack.begin(), stack.end(), impl_.get());
  impl_ = std::make_unique<Impl>();
  impl_->persistent = persistent;
  impl_->watch_accessed_variables = watch;
  *it = impl_.get();
}

StopRecording::StopRecording() {
  ++stop_depth();
}

StopRecording::~StopRecording() {
  --stop_depth();
}

Tensor stop_gradient(const Tensor& x, std::source_location loc) {
  if (!x.defined()) detail::raise<ValueError>("stop_gradient", {}, "undefined Tensor", loc);
  // A new handle to the same value: no tape tracks it.
  if (ir::Value* v = detail::TensorAccess::value(x))
    return detail::TensorAccess::symbolic(v, detail::TensorAccess::trace_id(x));
  Tensor copy = x.device().is_cpu()
                    ? Tensor(x.host())
                    : detail::TensorAccess::on_device(x.type(), x.device(),
                                                      detail::TensorAccess::device_buffer(x));
  if (const Scalar* weak = x.weak_scalar()) copy.set_weak_scalar(*weak);
  return copy;
}

namespace detail {

bool tapes_recording() {
  return !tape_stack().empty() && stop_depth() == 0;
}

void record_on_tapes(ir::Op op, std::span<const Tensor> inputs, const ir::Attrs& attrs,
                     std::span<const Tensor> outputs, const std::source_location& loc) {
  for (GradientTape::Impl* tape : tape_stack())
    if (tape->recording()) tape->record(op, inputs, attrs, outputs, loc);
}

void record_call_on_tapes(const ir::Function& graph, std::span<const Tensor> params,
                          std::span<const Tensor> results) {
  for (GradientTape::Impl* tape : tape_stack())
    if (tape->recording()) tape->record_call(graph, params, results);
}

void record_variable_read(const Variable& v, const Tensor& value) {
  if (!tapes_recording()) return;
  for (GradientTape::Impl* tape : tape_stack()) {
    if (!tape->recording()) continue;
    GradientTape::Impl::WatchedVariable* w = tape->watched(v);
    if (w == nullptr && tape->watch_accessed_variables && v.trainable())
      w = &tape->watch_variable(v);
    if (w != nullptr && ir::is_floating(v.dtype())) w->reads.push_back(tape->leaf(value));
  }
}

}  // namespace detail

}  // namespace kiln
