// Scalar and Operand: what binary ops and operators accept on either side. A plain C++ scalar
// next to a tensor becomes a constant of the tensor's dtype (`3.f * A`, `2 - x`); each
// conversion records where the user wrote it, which is how `A + B` reports the user's line.
#pragma once

#include <concepts>
#include <cstdint>
#include <source_location>
#include <string>
#include <type_traits>

#include "kiln/frontend/core/tensor.h"

namespace kiln {

// Any C++ arithmetic type: float, double, int, int64_t, bool, ...
template <class T>
concept Arithmetic = std::is_arithmetic_v<T>;

// A plain C++ number with the dtype it has on its own: float→f32, double→f64, bool→bool,
// uint8_t (unsigned char)→u8, other integers of up to 32 bits→i32, wider→i64.
class Scalar {
 public:
  template <Arithmetic T>
  Scalar(T value) {
    if constexpr (std::is_same_v<T, bool>) {
      kind_ = Kind::boolean;
      int_ = value ? 1 : 0;
      float_ = int_;
      natural_ = DType::boolean;
    } else if constexpr (std::is_floating_point_v<T>) {
      kind_ = Kind::floating;
      float_ = static_cast<double>(value);
      natural_ = std::is_same_v<T, float> ? DType::f32 : DType::f64;
    } else {
      kind_ = Kind::integer;
      int_ = static_cast<int64_t>(value);
      float_ = static_cast<double>(value);
      if constexpr (std::is_same_v<T, unsigned char>)
        natural_ = DType::u8;
      else
        natural_ =
            sizeof(T) < 4 || (sizeof(T) == 4 && std::is_signed_v<T>) ? DType::i32 : DType::i64;
    }
  }

  // The dtype this value has when no tensor decides it.
  DType natural_dtype() const { return natural_; }
  bool is_floating() const { return kind_ == Kind::floating; }
  double as_double() const { return float_; }
  // Writes the value as one element of `dtype` to `dst`; TypeError if it does not fit exactly
  // (0.5 as an integer, 300000000000 as int32, 2 as bool).
  void write(DType dtype, void* dst) const;
  // The value as a 0-d host tensor of `dtype` (same checks as write).
  ir::HostTensor to_host(DType dtype) const;
  // "0.5", "3", "true".
  std::string to_string() const;

 private:
  enum class Kind { boolean, integer, floating };
  Kind kind_ = Kind::integer;
  int64_t int_ = 0;
  double float_ = 0;
  DType natural_ = DType::i32;
};

// A Tensor or a plain scalar, plus the source location of the user's expression.
class Operand {
 public:
  template <class T>
  requires(!Arithmetic<T> && std::is_convertible_v<const T&, Tensor>)
      Operand(const T& tensor, std::source_location loc = std::source_location::current())
      : tensor_(tensor), scalar_(0), is_tensor_(true), loc_(loc) {}
  // A tensor the caller gives up (a temporary, or std::move(x)): an eager elementwise op may
  // then write its result over the tensor's buffer, when nothing else refers to it (see
  // frontend/core/eager.h, DonatedOperands). The op takes the tensor out of the operand.
  Operand(Tensor&& tensor, std::source_location loc = std::source_location::current())
      : tensor_(std::move(tensor)), scalar_(0), is_tensor_(true), given_(true), loc_(loc) {}
  template <Arithmetic T>
  Operand(T value, std::source_location loc = std::source_location::current())
      : scalar_(value), is_tensor_(false), loc_(loc) {}

  bool is_tensor() const { return is_tensor_; }
  const Tensor& tensor() const { return tensor_; }
  // Whether the tensor was given up (made from an rvalue); the op that runs on it may take it.
  bool given() const { return given_; }
  // The given tensor, moved out (the operand is empty after), and put back if the op fails.
  Tensor take() const { return std::move(tensor_); }
  void put_back(Tensor tensor) const { tensor_ = std::move(tensor); }
  const Scalar& scalar() const { return scalar_; }
  const std::source_location& loc() const { return loc_; }

 private:
  mutable Tensor tensor_;  // mutable: an op takes a given tensor out (take, put_back)
  Scalar scalar_;
  bool is_tensor_;
  bool given_ = false;
  std::source_location loc_;
};

namespace detail {
// A 0-d constant tensor holding `value` as `dtype` (TypeError, located at `loc`, if it does not
// fit; `op` names the operation that needed it).
Tensor scalar_tensor(const Scalar& value, DType dtype, std::string_view op,
                     const std::source_location& loc);
// Resolves two operands to tensors: a scalar takes the other side's dtype; two scalars keep
// their natural dtypes.
std::vector<Tensor> resolve_operands(std::string_view op, const Operand& a, const Operand& b,
                                     const std::source_location& loc);
}  // namespace detail

}  // namespace kiln
