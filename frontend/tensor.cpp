#include "kiln/frontend/tensor.h"

#include <fmt/format.h>

#include "kiln/frontend/apply.h"

namespace kiln {

// The indirection lets a Tensor be either concrete (a host buffer, today) or symbolic (a value
// in a trace, once kiln::function lands) without changing the handle users hold.
struct Tensor::Impl {
  ir::HostTensor value;
};

Tensor::Tensor(ir::HostTensor value) : impl_(std::make_shared<Impl>(Impl{std::move(value)})) {}

const ir::HostTensor& Tensor::host() const {
  if (!impl_) throw ValueError("use of an undefined Tensor");
  return impl_->value;
}

const TensorType& Tensor::type() const {
  return host().type();
}

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
  }
  return "?";
}

// "item<float>" for messages.
template <class T>
std::string accessor_name(std::string_view accessor) {
  return fmt::format("{}<{}>", accessor, cpp_type_name(ir::dtype_of<T>()));
}

template <class T>
const ir::HostTensor& checked_host(const Tensor& t, std::string_view accessor,
                                   const std::source_location& loc) {
  std::string name = accessor_name<T>(accessor);
  if (!t.defined()) detail::raise<ValueError>(name, {}, "the Tensor is undefined", loc);
  const ir::HostTensor& host = t.host();
  if (host.dtype() != ir::dtype_of<T>()) {
    detail::raise<TypeError>(
        name, {t},
        fmt::format("the tensor's dtype is {} but {} was asked for; use k::cast or {}<{}>",
                    dtype_long_name(host.dtype()), dtype_long_name(ir::dtype_of<T>()), accessor,
                    cpp_type_name(host.dtype())),
        loc);
  }
  return host;
}
}  // namespace

template <class T>
T Tensor::item(std::source_location loc) const {
  const ir::HostTensor& host = checked_host<T>(*this, "item", loc);
  if (host.num_elements() != 1) {
    detail::raise<ValueError>(
        accessor_name<T>("item"), {*this},
        fmt::format("needs a tensor with exactly one element, got shape {} ({} elements)",
                    host.shape().to_string(), host.num_elements()),
        loc);
  }
  return host.data<T>()[0];
}

template <class T>
std::vector<T> Tensor::to_vector(std::source_location loc) const {
  const ir::HostTensor& host = checked_host<T>(*this, "to_vector", loc);
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
#undef KILN_INSTANTIATE

}  // namespace kiln
