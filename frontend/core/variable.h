// kiln::Variable: mutable state with identity, like tf.Variable. A Variable is a shared handle:
// copies refer to the same variable, and an assign through one is seen through all.
//
// Reads return the current value as an ordinary (immutable) Tensor. Updates never write into a
// buffer a reader may hold: assign() stores the given tensor on the CPU (sharing its storage is
// safe, since tensors are immutable) and a copy of it on a GPU, and assign_add()/assign_sub()
// compute a new buffer. So a Tensor returned by value() keeps the value it had when it was read.
//
// The state lives in one place (the handle's current tensor) on one device for the variable's
// whole life, as in TensorFlow: the device of its initial value (a GPU under a DeviceScope, for
// layers' weights). A variable on a GPU owns its device memory: it copies its initial value and
// assigned values there, so its memory is shared only with tensors read from it. Updates run on
// its device. Inside a kiln::function trace, reads become inputs of the traced function and
// assign/assign_add/assign_sub become updates of that same slot, applied after each call of the
// compiled function.
// A variable is not synchronized: threads that assign to one variable need their own lock.
#pragma once

#include <iosfwd>
#include <memory>
#include <source_location>
#include <string>
#include <string_view>
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
  // A new variable holding `initial_value`, on its device (a copy in new memory when that is a
  // GPU); its shape, dtype and device are fixed from then on. The initial value must be concrete:
  // create variables outside traced functions.
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

  // Replaces the value; `t` must have the variable's shape (ShapeError), dtype (TypeError) and
  // device (DeviceError; a 0-d cpu tensor goes to any device, as operands of ops do). On a GPU the
  // value is copied into new device memory.
  Variable& assign(const Tensor& t, std::source_location loc = std::source_location::current());
  // Adds `delta` (same shape, dtype and device) to the value, on the variable's device.
  Variable& assign_add(const Tensor& delta,
                       std::source_location loc = std::source_location::current());
  // Subtracts `delta` (same shape, dtype and device) from the value, on the variable's device.
  Variable& assign_sub(const Tensor& delta,
                       std::source_location loc = std::source_location::current());

  const TensorType& type() const;
  const Shape& shape() const { return type().shape; }
  DType dtype() const { return type().dtype; }
  // Where the value lives: the device of the initial value, for the variable's whole life.
  Device device() const;
  const std::string& name() const;
  bool trainable() const;
  // True when both handles refer to the same variable.
  bool is(const Variable& other) const { return impl_ == other.impl_; }

  // TensorFlow-style text: <kiln.Variable 'w' shape=(2, 2) dtype=float32, numpy=...>; a variable
  // on a GPU adds device=cuda:0 and prints a host copy of its values.
  std::string to_string() const;

 private:
  friend struct detail::VariableAccess;
  struct Impl;
  const Impl& impl() const;
  Impl& impl();
  void check_update(const char* what, const Tensor& t, const std::source_location& loc) const;
  // Makes `t` the new value: at once when eager, as an update when tracing. `fresh` says that
  // nothing else holds `t`'s memory (an op's result), so a GPU variable need not copy it.
  void store(const char* what, const Tensor& t, bool fresh, const std::source_location& loc);

  std::shared_ptr<Impl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Variable& v);

namespace detail {
// What the tracing machinery needs from a Variable, bypassing the trace and the tapes.
struct VariableAccess {
  // Identifies the variable (copies of one Variable share it).
  static const void* identity(const Variable& v) { return v.impl_.get(); }
  // The concrete current value, on the variable's device, even while a trace is active. The
  // handle is the variable's own: tapes have not seen it (read through value() to be recorded).
  static const Tensor& tensor(const Variable& v);
  // Replaces the concrete value with `value`, which must be concrete, of the variable's type and on
  // its device (the caller checks the type; a mismatch is an InternalError). The variable takes
  // `value`'s memory as is: pass a tensor nothing else writes into (a compiled function's update).
  static void set_tensor(Variable& v, Tensor value);
  // The concrete current value of a variable on the CPU, even while a trace is active. A variable
  // on a GPU has no host value: a DeviceError saying so (copy it with host_copy).
  static const ir::HostTensor& host(const Variable& v);
  // The current value on the host: the variable's own for a CPU one, a copy for a GPU one (driver
  // failures are decorated as `op` at `loc`).
  static ir::HostTensor host_copy(const Variable& v, std::string_view op,
                                  std::source_location loc = std::source_location::current());
  // Replaces the concrete value (a compiled function's update, loaded weights; the type is
  // already checked). A variable on a GPU gets a copy of `value` in new device memory.
  static void set_host(Variable& v, ir::HostTensor value,
                       std::source_location loc = std::source_location::current());
  // A new variable, allowed while tracing (an optimizer makes its slots on the first trace of a
  // training step; a slot made during a trace is captured by it like any outside variable), on
  // `device`: a GPU one gets a copy of `initial_value` in new device memory.
  static Variable create(ir::HostTensor initial_value, std::string name, bool trainable,
                         Device device = Device::cpu(),
                         std::source_location loc = std::source_location::current());
  // A new variable holding the concrete `initial_value`, on its device (a copy in new memory on a
  // GPU, as the constructor makes), allowed while tracing.
  static Variable create(const Tensor& initial_value, std::string name, bool trainable,
                         std::source_location loc = std::source_location::current());
};
}  // namespace detail

}  // namespace kiln
