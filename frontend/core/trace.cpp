#include "kiln/frontend/core/trace.h"
#include "kiln/frontend/core/name_scope.h"
#include "kiln/frontend/core/op_error.h"

#include <fmt/format.h>

#include <atomic>

namespace kiln::detail {

namespace {
// Traces are numbered from 1 across all threads; 0 means "concrete" in a Tensor.
uint64_t next_trace_id() {
  static std::atomic<uint64_t> counter{0};
  return counter.fetch_add(1) + 1;
}

std::vector<Trace*>& trace_stack() {
  thread_local std::vector<Trace*> stack;
  return stack;
}
}  // namespace

Trace::Trace(std::string name, std::span<const Variable> variable_arguments)
    : id_(next_trace_id()),
      function_(std::move(name)),
      variable_arguments_(variable_arguments.begin(), variable_arguments.end()) {}

ir::Value* Trace::add_param(TensorType type, std::string name, Binding binding) {
  bindings_.push_back(std::move(binding));
  return function_.add_param(std::move(type), std::move(name));
}

Tensor Trace::add_argument(const TensorType& type) {
  size_t leaf = argument_leaves_++;
  ir::Value* param =
      add_param(type, fmt::format("arg{}", leaf), Binding{Binding::Kind::argument, leaf, {}, {}});
  return TensorAccess::symbolic(param, id_);
}

void Trace::make_body(Trace* parent, std::function<Tensor(const Variable&)> outer_read) {
  body_ = true;
  parent_ = parent;
  outer_read_ = std::move(outer_read);
}

bool Trace::is_enclosing(uint64_t trace_id) const {
  for (const Trace* p = parent_; p != nullptr; p = p->parent_)
    if (p->id_ == trace_id) return true;
  return false;
}

ir::Value* Trace::lift(const Tensor& t) {
  ir::Value* outer = TensorAccess::value(t);
  const void* key = outer != nullptr ? static_cast<const void*>(outer) : TensorAccess::identity(t);
  auto it = captures_.find(key);
  if (it != captures_.end()) return it->second;
  ir::Value* param = add_param(t.type(), fmt::format("lifted{}", lifted_.size()),
                               Binding{Binding::Kind::captured, 0, t, {}});
  lifted_.push_back(t);
  captures_.emplace(key, param);
  return param;
}

ir::Value* Trace::value_of(const Tensor& t, std::string_view op, const std::source_location& loc) {
  if (ir::Value* value = TensorAccess::value(t)) {
    if (TensorAccess::trace_id(t) != id_ && body_ && is_enclosing(TensorAccess::trace_id(t))) {
      return lift(t);  // a value of the trace around the scan: passed in as an operand
    }
    if (TensorAccess::trace_id(t) != id_) {
      raise<ValueError>(op, {t},
                        fmt::format("a symbolic tensor from another trace was used while tracing "
                                    "function '{}'; pass tensors between traced functions as "
                                    "arguments and results instead of keeping them",
                                    name()),
                        loc);
    }
    return value;
  }
  if (body_) return lift(t);
  // A concrete tensor from outside: an implicit input, bound to the same tensor on every call.
  const void* key = TensorAccess::identity(t);
  auto it = captures_.find(key);
  if (it != captures_.end()) return it->second;
  ir::Value* param = add_param(t.type(), fmt::format("capture{}", captures_.size()),
                               Binding{Binding::Kind::captured, 0, t, {}});
  captures_.emplace(key, param);
  return param;
}

std::vector<Tensor> Trace::append(ir::Op op, std::span<const Tensor> inputs, const ir::Attrs& attrs,
                                  const std::source_location& loc) {
  std::vector<ir::Value*> values;
  values.reserve(inputs.size());
  for (const Tensor& t : inputs)
    values.push_back(value_of(t, ir::op_name(op), loc));
  ir::Node* node = function_.append(op, std::move(values), attrs, node_scope(), node_loc(loc));
  std::vector<Tensor> results;
  results.reserve(node->num_outputs());
  for (size_t i = 0; i < node->num_outputs(); ++i)
    results.push_back(TensorAccess::symbolic(node->output(i), id_));
  return results;
}

Trace::VariableState& Trace::variable_state(const Variable& v) {
  const void* key = VariableAccess::identity(v);
  auto it = variables_.find(key);
  if (it != variables_.end()) return it->second;
  Binding binding{Binding::Kind::variable, Binding::kCaptured, {}, {}};
  for (size_t i = 0; i < variable_arguments_.size(); ++i) {
    if (variable_arguments_[i].is(v)) {
      binding.index = i;
      break;
    }
  }
  if (binding.index == Binding::kCaptured) binding.variable = v;
  size_t index = bindings_.size();
  ir::Value* param = add_param(v.type(), v.name(), std::move(binding));
  variable_order_.push_back(key);
  return variables_.emplace(key, VariableState{index, param}).first->second;
}

Tensor Trace::read_variable(const Variable& v) {
  if (body_) {
    const void* key = VariableAccess::identity(v);
    auto it = lifted_variables_.find(key);
    if (it == lifted_variables_.end())
      it = lifted_variables_.emplace(key, lift(outer_read_(v))).first;
    return TensorAccess::symbolic(it->second, id_);
  }
  return TensorAccess::symbolic(variable_state(v).current, id_);
}

void Trace::assign_variable(const Variable& v, const Tensor& value,
                            const std::source_location& loc) {
  if (body_) {
    raise<ValueError>("assign", {value},
                      fmt::format("a scan body cannot assign variables (Variable '{}'); return "
                                  "the new value as a carry and assign it after the scan",
                                  v.name()),
                      loc);
  }
  ir::Value* new_value = value_of(value, "assign", loc);
  variable_state(v).current = new_value;
}

void Trace::add_check(const Tensor& t, std::string message, const std::source_location& loc) {
  if (body_) {
    raise<ValueError>("check_numerics", {t},
                      "check_numerics is not supported inside a scan body yet; check the scan's "
                      "results instead",
                      loc);
  }
  checked_values_.push_back(value_of(t, "check_numerics", loc));
  checks_.push_back({std::move(message), node_scope(), node_loc(loc)});
}

void Trace::finish(std::span<const Tensor> outputs) {
  std::vector<ir::Value*> values;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& t = outputs[i];
    if (!t.defined()) {
      throw ValueError(
          fmt::format("function '{}' returned an undefined Tensor (result {})", name(), i));
    }
    if (t.is_symbolic() && TensorAccess::trace_id(t) != id_ &&
        !(body_ && is_enclosing(TensorAccess::trace_id(t)))) {
      throw ValueError(fmt::format(
          "function '{}' returned a symbolic tensor from another trace (result {})", name(), i));
    }
    values.push_back(value_of(t, "return", std::source_location::current()));
  }
  values.insert(values.end(), checked_values_.begin(), checked_values_.end());
  function_.set_outputs(std::move(values));
  for (const void* key : variable_order_) {
    const VariableState& state = variables_.at(key);
    ir::Value* param = function_.param(state.binding);
    if (state.current != param) function_.add_update(param, state.current);
  }
}

Trace* current_trace() {
  const std::vector<Trace*>& stack = trace_stack();
  return stack.empty() ? nullptr : stack.back();
}

TraceScope::TraceScope(Trace& trace) {
  trace_stack().push_back(&trace);
}

TraceScope::~TraceScope() {
  trace_stack().pop_back();
}

EagerScope::EagerScope() {
  trace_stack().push_back(nullptr);
}

EagerScope::~EagerScope() {
  trace_stack().pop_back();
}

}  // namespace kiln::detail
