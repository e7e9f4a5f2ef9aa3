#include "kiln/ir/host_tensor.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace kiln::ir {

namespace {
constexpr size_t kAlignment = 64;

std::shared_ptr<std::byte> allocate(size_t nbytes, bool zeroed) {
  size_t rounded = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
  if (rounded == 0) rounded = kAlignment;
  void* p = std::aligned_alloc(kAlignment, rounded);
  if (p == nullptr) throw std::bad_alloc();
  if (zeroed) std::memset(p, 0, rounded);
  return std::shared_ptr<std::byte>(static_cast<std::byte*>(p), [](std::byte* q) { std::free(q); });
}
}  // namespace

HostTensor::HostTensor(TensorType type, bool zeroed) : type_(std::move(type)) {
  for (int64_t d : type_.shape) {
    KILN_CHECK(d >= 0, "negative dimension in HostTensor");
  }
  storage_ = allocate(nbytes(), zeroed);
}

HostTensor HostTensor::uninitialized(TensorType type) {
  return HostTensor(std::move(type), false);
}

double HostTensor::element_as_double(int64_t i) const {
  return visit_dtype(dtype(), [&](auto zero) -> double {
    using T = decltype(zero);
    return static_cast<double>(data<T>()[i]);
  });
}

HostTensor HostTensor::clone() const {
  if (!defined()) return {};
  HostTensor copy(type_);
  std::memcpy(copy.raw(), raw(), nbytes());
  return copy;
}

bool HostTensor::bitwise_equal(const HostTensor& other) const {
  if (type_ != other.type_) return false;
  if (!defined() || !other.defined()) return defined() == other.defined();
  return std::memcmp(raw(), other.raw(), nbytes()) == 0;
}

HostTensor HostTensor::reshaped(Shape shape) const {
  KILN_CHECK(shape.num_elements() == num_elements(), "reshaped() with a different element count");
  HostTensor view = *this;
  view.type_.shape = std::move(shape);
  return view;
}

}  // namespace kiln::ir
