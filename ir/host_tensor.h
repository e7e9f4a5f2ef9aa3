// A concrete tensor in host memory: a TensorType plus a 64-byte aligned, shared buffer.
// The interpreter computes on these; constants in the IR hold one.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <type_traits>

#include "kiln/ir/error.h"
#include "kiln/ir/types.h"

namespace kiln::ir {

// Maps a C++ element type to its DType (float→f32, double→f64, int32→i32, int64→i64, bool,
// uint8→u8).
template <class T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>)
    return DType::f32;
  else if constexpr (std::is_same_v<T, double>)
    return DType::f64;
  else if constexpr (std::is_same_v<T, int32_t>)
    return DType::i32;
  else if constexpr (std::is_same_v<T, int64_t>)
    return DType::i64;
  else if constexpr (std::is_same_v<T, bool>)
    return DType::boolean;
  else if constexpr (std::is_same_v<T, uint8_t>)
    return DType::u8;
  else
    static_assert(!sizeof(T), "no Kiln dtype for this C++ type");
}

// Calls f(T{}) with T the C++ type of `dtype`; returns what f returns.
template <class F>
decltype(auto) visit_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::f32:
      return f(float{});
    case DType::f64:
      return f(double{});
    case DType::i32:
      return f(int32_t{});
    case DType::i64:
      return f(int64_t{});
    case DType::boolean:
      return f(bool{});
    case DType::u8:
      return f(uint8_t{});
  }
  KILN_CHECK(false, "unknown dtype");
}

// A byte count for messages: "4 TiB (4398046511104 bytes)", "12 bytes".
std::string describe_bytes(size_t bytes);

// Host tensors allocate their storage when made; memory that cannot be had is a ResourceError
// naming the shape, the dtype and the size.
class HostTensor {
 public:
  // An empty handle (no type, no storage).
  HostTensor() = default;
  // Allocates a zero-filled tensor of the given type.
  explicit HostTensor(TensorType type) : HostTensor(std::move(type), true) {}
  HostTensor(DType dtype, Shape shape) : HostTensor(TensorType{dtype, std::move(shape)}) {}
  // Allocates without clearing: for buffers that compiled code overwrites entirely.
  static HostTensor uninitialized(TensorType type);

  // A tensor of the given shape holding a copy of `values` (sizes must match).
  template <class T>
  static HostTensor from_values(Shape shape, std::span<const T> values) {
    HostTensor t(dtype_of<T>(), std::move(shape));
    KILN_CHECK(static_cast<int64_t>(values.size()) == t.num_elements(), "value count mismatch");
    std::copy(values.begin(), values.end(), t.data<T>());
    return t;
  }
  // A 0-d tensor holding `value`.
  template <class T>
  static HostTensor scalar(T value) {
    return from_values<T>(Shape{}, std::span<const T>(&value, 1));
  }

  bool defined() const { return storage_ != nullptr; }
  // Whether this handle is the only one on its buffer (no copy, view or reshaped() shares it):
  // then whoever holds it may let an op write over the elements (frontend/core/eager.h).
  bool owns_storage_alone() const { return storage_ != nullptr && storage_.use_count() == 1; }
  const TensorType& type() const { return type_; }
  DType dtype() const { return type_.dtype; }
  const Shape& shape() const { return type_.shape; }
  int64_t num_elements() const { return type_.shape.num_elements(); }
  size_t nbytes() const { return type_.nbytes(); }

  std::byte* raw() { return storage_.get(); }
  const std::byte* raw() const { return storage_.get(); }
  // Typed element pointer; checks that T matches the dtype.
  template <class T>
  T* data() {
    KILN_CHECK(dtype_of<T>() == type_.dtype, "HostTensor::data<T>() with the wrong T");
    return reinterpret_cast<T*>(storage_.get());
  }
  template <class T>
  const T* data() const {
    KILN_CHECK(dtype_of<T>() == type_.dtype, "HostTensor::data<T>() with the wrong T");
    return reinterpret_cast<const T*>(storage_.get());
  }
  template <class T>
  std::span<T> values() {
    return {data<T>(), static_cast<size_t>(num_elements())};
  }
  template <class T>
  std::span<const T> values() const {
    return {data<T>(), static_cast<size_t>(num_elements())};
  }

  // Element i (row-major) converted to double; for printing and tests.
  double element_as_double(int64_t i) const;
  // A deep copy with its own storage.
  HostTensor clone() const;
  // Same type and the same bytes.
  bool bitwise_equal(const HostTensor& other) const;
  // The same storage viewed with another shape of equal element count.
  HostTensor reshaped(Shape shape) const;

 private:
  HostTensor(TensorType type, bool zeroed);

  TensorType type_;
  std::shared_ptr<std::byte> storage_;
};

}  // namespace kiln::ir
