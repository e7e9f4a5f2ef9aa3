// The trace context kiln::function builds IR with. While a Trace is active on a thread, every op
// (frontend/core/apply.cpp) appends a node to its ir::Function instead of running, concrete tensors
// used by those ops become implicit inputs, and Variable reads and assigns become inputs and
// updates. One trace per thread: the active one is a thread-local.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <source_location>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "kiln/frontend/core/tensor.h"
#include "kiln/frontend/core/variable.h"
#include "kiln/ir/attrs.h"
#include "kiln/ir/function.h"
#include "kiln/ir/op.h"

namespace kiln::detail {

// Where one parameter of a traced function gets its value on each call.
struct Binding {
  enum class Kind : uint8_t {
    argument,  // a tensor leaf of the call's arguments (`index` into the flattened leaves)
    captured,  // a concrete tensor the body used without it being an argument (`tensor`)
    variable,  // a Variable: argument number `index` among the Variable arguments, or, for a
               // captured one (`index` == kCaptured), `variable`
  };
  static constexpr size_t kCaptured = static_cast<size_t>(-1);

  Kind kind = Kind::argument;
  size_t index = 0;
  Tensor tensor;
  Variable variable;
};

class Trace {
 public:
  // A trace for the function named `name`; `variable_arguments` are the Variables passed as
  // arguments (a read of one binds to the argument, not to the variable seen at trace time).
  Trace(std::string name, std::span<const Variable> variable_arguments);
  Trace(const Trace&) = delete;
  Trace& operator=(const Trace&) = delete;

  uint64_t id() const { return id_; }
  const std::string& name() const { return function_.name(); }

  // Makes this the trace of a scan body (kiln::scan) run inside `parent` (nullptr when the scan
  // runs eagerly). A symbolic tensor of an enclosing trace, a concrete tensor and a Variable's
  // value (read in the scan's context with `outer_read`) become parameters of the body, "lifted":
  // lifted() lists the outer tensors, which the scan passes as its last operands. Assigning a
  // Variable or checking numerics inside a body is a ValueError.
  void make_body(Trace* parent, std::function<Tensor(const Variable&)> outer_read);
  bool is_body() const { return body_; }
  // The outer tensor of each lifted parameter, in parameter order.
  const std::vector<Tensor>& lifted() const { return lifted_; }

  // A parameter for the next tensor leaf of the arguments; returns its symbolic tensor.
  Tensor add_argument(const TensorType& type);
  // The IR value standing for `t` here: its own value if it is symbolic in this trace, an
  // implicit input (one per captured tensor) if it is concrete. `op` and `loc` name the use in
  // the error for a symbolic tensor of another trace.
  ir::Value* value_of(const Tensor& t, std::string_view op, const std::source_location& loc);
  // Appends `op` (results inferred; errors carry the scope and the user's location).
  std::vector<Tensor> append(ir::Op op, std::span<const Tensor> inputs, const ir::Attrs& attrs,
                             const std::source_location& loc);

  // The variable's value at this point of the trace (its input, or the last value assigned).
  Tensor read_variable(const Variable& v);
  // Records `value` as the variable's new value (type already checked by Variable).
  void assign_variable(const Variable& v, const Tensor& value, const std::source_location& loc);

  // A check_numerics of `t`: after finish(), its value is an extra output of the function.
  struct Check {
    std::string message;
    std::string scope;
    ir::SourceLoc loc;
  };
  void add_check(const Tensor& t, std::string message, const std::source_location& loc);
  // The checks, whose values follow the body's results among the function's outputs.
  const std::vector<Check>& checks() const { return checks_; }

  // Sets the function's outputs (the body's results, then the checked values) and its variable
  // updates. Call once, when the body returned.
  void finish(std::span<const Tensor> outputs);

  // The traced IR (complete after finish()).
  ir::Function& function() { return function_; }
  // One binding per parameter, in parameter order.
  const std::vector<Binding>& bindings() const { return bindings_; }

 private:
  struct VariableState {
    size_t binding;      // the variable's parameter
    ir::Value* current;  // its value at this point of the trace
  };
  VariableState& variable_state(const Variable& v);
  ir::Value* add_param(TensorType type, std::string name, Binding binding);
  // A body's parameter for the outer tensor `t`, one per distinct tensor.
  ir::Value* lift(const Tensor& t);
  bool is_enclosing(uint64_t trace_id) const;

  uint64_t id_;
  ir::Function function_;
  std::vector<Variable> variable_arguments_;
  std::vector<Binding> bindings_;
  size_t argument_leaves_ = 0;
  // Keyed by the identity of the captured tensor or variable (the binding keeps it alive).
  std::unordered_map<const void*, ir::Value*> captures_;
  std::unordered_map<const void*, VariableState> variables_;
  std::vector<const void*> variable_order_;
  std::vector<Check> checks_;
  std::vector<ir::Value*> checked_values_;  // updates follow the order of first use
  // Scan bodies (make_body).
  bool body_ = false;
  Trace* parent_ = nullptr;
  std::function<Tensor(const Variable&)> outer_read_;
  std::vector<Tensor> lifted_;
  std::unordered_map<const void*, ir::Value*> lifted_variables_;
};

// The trace active on this thread, or nullptr when running eagerly.
Trace* current_trace();

// Makes `trace` the active trace of this thread while it lives (traces nest).
class TraceScope {
 public:
  [[nodiscard]] explicit TraceScope(Trace& trace);
  ~TraceScope();
  TraceScope(const TraceScope&) = delete;
  TraceScope& operator=(const TraceScope&) = delete;
};

// While one lives, ops on this thread run eagerly even inside a trace (layers make their
// initial weights this way when first called from a traced function).
class EagerScope {
 public:
  [[nodiscard]] EagerScope();
  ~EagerScope();
  EagerScope(const EagerScope&) = delete;
  EagerScope& operator=(const EagerScope&) = delete;
};

}  // namespace kiln::detail
