// kiln::Variable: mutable state with identity, like tf.Variable. A Variable is a shared handle:
// copies refer to the same variable, and an assign through one is seen through all.
//
// Reads return the current value as an ordinary (immutable) Tensor. Updates never write into a
// buffer a reader may hold: assign() stores the given tensor (sharing its storage is safe, since
// tensors are immutable), and assign_add()/assign_sub() compute a new buffer. So a Tensor
// returned by value() keeps the value it had when it was read.
//
// The state lives in one place (the handle's current host tensor). Inside a kiln::function
// trace, reads become inputs of the traced function and assign/assign_add/assign_sub become
// updates of that same slot, applied after each call of the compiled function.
// A variable is not synchronized: threads that assign to one variable need their own lock.
#pragma once

#include <iosfwd>
#include <memory>
#include <source_location>
#include <string>
#include <type_traits>

#include "kiln/frontend/core/tensor.h"

namespace kiln {

namespace detail {
struct VariableAccess;
}  // namespace detail

class Variable {
 public:
  // An undefined variable; using it throws ValueError.
  Variable() = default;
  // A new variable holding `initial_value`; its shape and dtype are fixed from then on. The
  // initial value must be concrete: create variables outside traced functions.
  explicit Variable(const Tensor& initial_value, std::string name = "Variable",
                    bool trainable = true,
                    std::source_location loc = std::source_location::current());

  // A new 0-d variable holding a plain number, with the number's dtype (5.0f → f32, 5.0 → f64,
  // 5 → i32), like tf.Variable(5.0).
  template <class T>
  requires std::is_arithmetic_v<T>
  explicit Variable(T value, std::string name = "Variable", bool trainable = true,
                    std::source_location loc = std::source_location::current())
      : Variable(ir::HostTensor::scalar(value), std::move(name), trainable, loc) {}
  // A new variable holding `initial_value` (see the Tensor overload).
  explicit Variable(const ir::HostTensor& initial_value, std::string name = "Variable",
                    bool trainable = true,
                    std::source_location loc = std::source_location::current())
      : Variable(Tensor(initial_value), std::move(name), trainable, loc) {}

  bool defined() const { return impl_ != nullptr; }
  // The current value (inside a trace: a symbolic tensor for the value at that point).
  Tensor value() const;
  // The current value (TensorFlow's spelling; same as value()).
  Tensor read_value() const { return value(); }
  // Lets a variable be passed wherever a Tensor is expected: k::matmul(x, w).
  operator Tensor() const { return value(); }

  // Replaces the value; `t` must have the variable's shape (ShapeError) and dtype (TypeError).
  Variable& assign(const Tensor& t, std::source_location loc = std::source_location::current());
  // Adds `delta` (same shape and dtype) to the value.
  Variable& assign_add(const Tensor& delta,
                       std::source_location loc = std::source_location::current());
  // Subtracts `delta` (same shape and dtype) from the value.
  Variable& assign_sub(const Tensor& delta,
                       std::source_location loc = std::source_location::current());

  const TensorType& type() const;
  const Shape& shape() const { return type().shape; }
  DType dtype() const { return type().dtype; }
  const std::string& name() const;
  bool trainable() const;
  // True when both handles refer to the same variable.
  bool is(const Variable& other) const { return impl_ == other.impl_; }

  // TensorFlow-style text: <kiln.Variable 'w' shape=(2, 2) dtype=float32, numpy=...>.
  std::string to_string() const;

 private:
  friend struct detail::VariableAccess;
  struct Impl;
  const Impl& impl() const;
  Impl& impl();
  void check_update(const char* what, const Tensor& t, const std::source_location& loc) const;
  // Makes `t` the new value: at once when eager, as an update when tracing.
  void store(const Tensor& t, const std::source_location& loc);

  std::shared_ptr<Impl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Variable& v);

namespace detail {
// What the tracing machinery needs from a Variable, bypassing the trace.
struct VariableAccess {
  // Identifies the variable (copies of one Variable share it).
  static const void* identity(const Variable& v) { return v.impl_.get(); }
  // The concrete current value, even while a trace is active.
  static const ir::HostTensor& host(const Variable& v);
  // Replaces the concrete value (a compiled function's update; the type is already checked).
  static void set_host(Variable& v, ir::HostTensor value);
  // A new variable, allowed while tracing (an optimizer makes its slots on the first trace of a
  // training step; a slot made during a trace is captured by it like any outside variable).
  static Variable create(ir::HostTensor initial_value, std::string name, bool trainable);
};
}  // namespace detail

}  // namespace kiln
