// kiln::Variable: mutable state with identity, like tf.Variable. A Variable is a shared handle:
// copies refer to the same variable, and an assign through one is seen through all.
//
// Reads return the current value as an ordinary (immutable) Tensor. Updates never write into a
// buffer a reader may hold: assign() stores the given tensor (sharing its storage is safe, since
// tensors are immutable), and assign_add()/assign_sub() compute a new buffer. So a Tensor
// returned by value() keeps the value it had when it was read.
//
// The state lives in one place (the handle's current host tensor); traced functions (a later
// issue) turn reads into inputs and assigns into updates of that same slot.
// A variable is not synchronized: threads that assign to one variable need their own lock.
#pragma once

#include <iosfwd>
#include <memory>
#include <source_location>
#include <string>

#include "kiln/frontend/tensor.h"

namespace kiln {

class Variable {
 public:
  // An undefined variable; using it throws ValueError.
  Variable() = default;
  // A new variable holding `initial_value`; its shape and dtype are fixed from then on.
  explicit Variable(const Tensor& initial_value, std::string name = "Variable",
                    bool trainable = true,
                    std::source_location loc = std::source_location::current());

  bool defined() const { return impl_ != nullptr; }
  // The current value.
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
  struct Impl;
  const Impl& impl() const;
  Impl& impl();
  void check_update(const char* what, const Tensor& t, const std::source_location& loc) const;

  std::shared_ptr<Impl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Variable& v);

}  // namespace kiln
