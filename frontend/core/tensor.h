// kiln::Tensor: a cheap, shared handle to a tensor value. Eager tensors hold a concrete buffer;
// tensors made while kiln::function traces are symbolic: a value in the IR being built.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <source_location>
#include <string>
#include <vector>

#include "kiln/frontend/core/device.h"
#include "kiln/frontend/core/index.h"
#include "kiln/ir/host_tensor.h"
#include "kiln/ir/types.h"

namespace kiln::ir {
class Value;
}  // namespace kiln::ir

namespace kiln::runtime::cuda {
class DeviceBuffer;
}  // namespace kiln::runtime::cuda

namespace kiln {

// The caller's location, which every API that can fail takes last (defaulted) to name in errors.
using Loc = std::source_location;

namespace detail {
struct TensorAccess;
}  // namespace detail

class Scalar;

using ir::DType;
using ir::Shape;
using ir::TensorType;

inline constexpr DType f32 = DType::f32;
inline constexpr DType f64 = DType::f64;
inline constexpr DType i32 = DType::i32;
inline constexpr DType i64 = DType::i64;
inline constexpr DType boolean = DType::boolean;
inline constexpr DType u8 = DType::u8;
inline constexpr DType uint8 = DType::u8;

class Tensor {
 public:
  // An undefined tensor; most operations on it throw ValueError.
  Tensor() = default;
  // Wraps a concrete host tensor (shares its storage).
  explicit Tensor(ir::HostTensor value);

  bool defined() const { return impl_ != nullptr; }
  const TensorType& type() const;
  const Shape& shape() const { return type().shape; }
  DType dtype() const { return type().dtype; }
  int64_t rank() const { return shape().rank(); }
  // Number of elements.
  int64_t size() const { return shape().num_elements(); }
  // True inside a kiln::function trace: the tensor stands for a value the compiled function
  // computes later, so it has a type but no elements to read yet.
  bool is_symbolic() const;
  // Where the elements live: the CPU, or a GPU after .to(k::Device::cuda(i)). Symbolic tensors
  // say cpu for now.
  Device device() const;
  // This tensor on `device`: the same handle when it is there already, else a copy (host to GPU,
  // GPU to host, or GPU to GPU through the host). A GPU that cannot be used is a DeviceError
  // saying why; one without the memory, a ResourceError naming the sizes.
  Tensor to(const Device& device, std::source_location loc = std::source_location::current()) const;

  // The single element of a one-element tensor; T must match the dtype (TypeError otherwise).
  // A tensor on a GPU is copied to the host first, as are to_vector and printing.
  template <class T>
  T item(std::source_location loc = std::source_location::current()) const;
  // All elements in row-major order; T must match the dtype (TypeError otherwise).
  template <class T>
  std::vector<T> to_vector(std::source_location loc = std::source_location::current()) const;

  // NumPy-style indexing: integers drop a dimension, Slice keeps it, newaxis adds one,
  // ellipsis stands for the remaining dimensions. A.index({Slice(), 1}) is A[:, 1].
  Tensor index(std::initializer_list<IndexItem> items,
               std::source_location loc = std::source_location::current()) const;
  Tensor index(const std::vector<IndexItem>& items,
               std::source_location loc = std::source_location::current()) const;

  // A 0-d constant made from a plain C++ number with no dtype given (k::constant(10.f)) is
  // weakly typed, like the number itself: next to a tensor of another dtype in a binary op it
  // takes that tensor's dtype (JAX's weak types). The number, or nullptr for any other tensor.
  const Scalar* weak_scalar() const;
  // Marks this tensor as the weakly typed constant `value` (k::constant does this).
  void set_weak_scalar(const Scalar& value);

  // The concrete value (throws ValueError for an undefined or a symbolic tensor, DeviceError for
  // one on a GPU: copy it with .to(k::Device::cpu()) first).
  const ir::HostTensor& host() const;

  // TensorFlow-style text: values, shape and dtype.
  std::string to_string() const;

 private:
  friend struct detail::TensorAccess;
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// The values of a host tensor as NumPy prints them ("[[1. 2.]\n [3. 4.]]", "3.0").
std::string format_values(const ir::HostTensor& value);

namespace detail {
// The tracing machinery's view of a Tensor's symbolic state.
struct TensorAccess {
  // A symbolic tensor for `value` in the trace numbered `trace_id`.
  static Tensor symbolic(ir::Value* value, uint64_t trace_id);
  // The IR value of a symbolic tensor; nullptr for a concrete one.
  static ir::Value* value(const Tensor& t);
  // The trace a symbolic tensor belongs to (0 for a concrete one).
  static uint64_t trace_id(const Tensor& t);
  // Identifies the handle's shared state (copies of one Tensor share it).
  static const void* identity(const Tensor& t) { return t.impl_.get(); }
  // The host value of a defined, concrete tensor; nullptr for one on a GPU. apply() reads its
  // operands with this, so the CPU path pays no extra call for devices.
  static const ir::HostTensor* host_value(const Tensor& t);
  // Whether `t` is a host tensor that nothing else refers to: no other handle on its shared
  // state, and no other owner (view, variable, constant) of its buffer.
  static bool sole_host_owner(const Tensor& t);
  // A tensor of type `type` whose elements are in `buffer`, on GPU `device`.
  static Tensor on_device(TensorType type, Device device,
                          std::shared_ptr<runtime::cuda::DeviceBuffer> buffer);
  // The GPU memory of a tensor on a GPU; nullptr for any other tensor.
  static const std::shared_ptr<runtime::cuda::DeviceBuffer>& device_buffer(const Tensor& t);
};
}  // namespace detail

}  // namespace kiln
