#include "kiln/frontend/core/tensor.h"

#include <optional>

#include "kiln/frontend/core/operand.h"

#include <fmt/format.h>

#include "kiln/frontend/core/op_error.h"
#include "kiln/ir/function.h"
#include "kiln/runtime/cuda/device.h"

namespace kiln {

// The indirection lets a Tensor be concrete (a host buffer or GPU memory) or symbolic (a value in
// a trace) without changing the handle users hold.
struct Tensor::Impl {
  ir::HostTensor value;
  // Symbolic and GPU tensors only (`value` is empty for both). The type is a copy so that a
  // symbolic tensor that outlives its trace (and the IR behind `symbol`) can still say what it
  // is; `symbol` is only followed while its trace is the active one.
  TensorType type;
  ir::Value* symbol = nullptr;
  uint64_t trace = 0;
  // Set for weakly typed scalar constants (see Tensor::weak_scalar).
  std::optional<Scalar> weak;
  // GPU tensors only: the memory holding the elements (shared, so that later views on the
  // device can share it too) and its device. Host tensors leave both at their defaults.
  std::shared_ptr<runtime::cuda::DeviceBuffer> buffer;
  Device device;
};

const Scalar* Tensor::weak_scalar() const {
  return impl_ && impl_->weak ? &*impl_->weak : nullptr;
}

void Tensor::set_weak_scalar(const Scalar& value) {
  if (!impl_) throw ValueError("set_weak_scalar on an undefined Tensor");
  impl_->weak = value;
}

namespace {
constexpr std::string_view kSymbolicRead =
    "cannot read the value of a symbolic tensor while tracing; inside kiln::function a tensor "
    "stands for a value computed when the compiled function runs. Return it from the function "
    "to see its value, and use tensor ops (k::where, k::maximum) instead of C++ branches on "
    "tensor values";
}  // namespace

Tensor::Tensor(ir::HostTensor value)
    : impl_(std::make_shared<Impl>(Impl{std::move(value), {}, nullptr, 0, std::nullopt, {}, {}})) {}

bool Tensor::is_symbolic() const {
  return impl_ && impl_->symbol != nullptr;
}

const ir::HostTensor& Tensor::host() const {
  if (!impl_) throw ValueError("use of an undefined Tensor");
  if (impl_->symbol) throw ValueError(std::string(kSymbolicRead));
  if (impl_->buffer) {
    throw DeviceError(fmt::format(
        "the tensor is on {}, not in host memory; copy it with .to(k::Device::cpu()) first",
        impl_->device.to_string()));
  }
  return impl_->value;
}

const TensorType& Tensor::type() const {
  if (!impl_) throw ValueError("use of an undefined Tensor");
  return impl_->symbol || impl_->buffer ? impl_->type : impl_->value.type();
}

Device Tensor::device() const {
  if (!impl_) throw ValueError("use of an undefined Tensor");
  return impl_->device;
}

namespace detail {

Tensor TensorAccess::symbolic(ir::Value* value, uint64_t trace_id) {
  KILN_CHECK(value != nullptr && trace_id != 0, "symbolic tensor without a value or trace");
  Tensor t;
  t.impl_ = std::make_shared<Tensor::Impl>(
      Tensor::Impl{{}, value->type(), value, trace_id, std::nullopt, {}, {}});
  return t;
}

const ir::HostTensor* TensorAccess::host_value(const Tensor& t) {
  return t.impl_->buffer ? nullptr : &t.impl_->value;
}

bool TensorAccess::sole_host_owner(const Tensor& t) {
  return t.impl_ != nullptr && t.impl_.use_count() == 1 && t.impl_->symbol == nullptr &&
         t.impl_->buffer == nullptr && t.impl_->value.owns_storage_alone();
}

Tensor TensorAccess::on_device(TensorType type, Device device,
                               std::shared_ptr<runtime::cuda::DeviceBuffer> buffer) {
  KILN_CHECK(device.is_cuda() && buffer != nullptr, "a device tensor without a GPU buffer");
  Tensor t;
  t.impl_ = std::make_shared<Tensor::Impl>(
      Tensor::Impl{{}, std::move(type), nullptr, 0, std::nullopt, std::move(buffer), device});
  return t;
}

const std::shared_ptr<runtime::cuda::DeviceBuffer>& TensorAccess::device_buffer(const Tensor& t) {
  static const std::shared_ptr<runtime::cuda::DeviceBuffer> none;
  return t.impl_ ? t.impl_->buffer : none;
}

ir::Value* TensorAccess::value(const Tensor& t) {
  return t.impl_ ? t.impl_->symbol : nullptr;
}

uint64_t TensorAccess::trace_id(const Tensor& t) {
  return t.impl_ ? t.impl_->trace : 0;
}

}  // namespace detail

namespace {
// The C++ element type of a dtype, as a user writes it in item<T>().
std::string_view cpp_type_name(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "float";
    case DType::f64:
      return "double";
    case DType::i32:
      return "int32_t";
    case DType::i64:
      return "int64_t";
    case DType::boolean:
      return "bool";
    case DType::u8:
      return "uint8_t";
  }
  return "?";
}

// "item<float>" for messages.
template <class T>
std::string accessor_name(std::string_view accessor) {
  return fmt::format("{}<{}>", accessor, cpp_type_name(ir::dtype_of<T>()));
}

// Checks that an accessor reading T may read `t`.
template <class T>
void check_access(const Tensor& t, std::string_view accessor, const std::source_location& loc) {
  std::string name = accessor_name<T>(accessor);
  if (!t.defined()) detail::raise<ValueError>(name, {}, "the Tensor is undefined", loc);
  if (t.is_symbolic()) detail::raise<ValueError>(name, {t}, std::string(kSymbolicRead), loc);
  if (t.dtype() != ir::dtype_of<T>()) {
    detail::raise<TypeError>(
        name, {t},
        fmt::format("the tensor's dtype is {} but {} was asked for; use k::cast or {}<{}>",
                    dtype_long_name(t.dtype()), dtype_long_name(ir::dtype_of<T>()), accessor,
                    cpp_type_name(t.dtype())),
        loc);
  }
}

// The host value of a concrete `t`: its own, or for a tensor on a GPU a copy kept in `copy`
// (reads copy back implicitly, as PyTorch's .item() and TensorFlow's .numpy() do).
const ir::HostTensor& host_of(const Tensor& t, const std::source_location& loc, Tensor& copy) {
  if (const ir::HostTensor* host = detail::TensorAccess::host_value(t)) return *host;
  copy = t.to(Device::cpu(), loc);
  return copy.host();
}
}  // namespace

template <class T>
T Tensor::item(std::source_location loc) const {
  check_access<T>(*this, "item", loc);
  if (size() != 1) {
    detail::raise<ValueError>(
        accessor_name<T>("item"), {*this},
        fmt::format("needs a tensor with exactly one element, got shape {} ({} elements)",
                    shape().to_string(), size()),
        loc);
  }
  Tensor copy;
  return host_of(*this, loc, copy).data<T>()[0];
}

template <class T>
std::vector<T> Tensor::to_vector(std::source_location loc) const {
  check_access<T>(*this, "to_vector", loc);
  Tensor copy;
  const ir::HostTensor& host = host_of(*this, loc, copy);
  const T* data = host.data<T>();
  return std::vector<T>(data, data + host.num_elements());
}

#define KILN_INSTANTIATE(T)                               \
  template T Tensor::item<T>(std::source_location) const; \
  template std::vector<T> Tensor::to_vector<T>(std::source_location) const;
KILN_INSTANTIATE(float)
KILN_INSTANTIATE(double)
KILN_INSTANTIATE(int32_t)
KILN_INSTANTIATE(int64_t)
KILN_INSTANTIATE(bool)
KILN_INSTANTIATE(uint8_t)
#undef KILN_INSTANTIATE

}  // namespace kiln
