#include "kiln/frontend/core/operand.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

#include "kiln/frontend/core/apply.h"
#include "kiln/frontend/core/device.h"
#include "kiln/frontend/core/op_error.h"

namespace kiln {

namespace {
template <class T>
void store(void* dst, T value) {
  std::memcpy(dst, &value, sizeof(T));
}

// Whether v is representable as Int.
template <class Int>
bool fits(int64_t v) {
  return v >= std::numeric_limits<Int>::min() && v <= std::numeric_limits<Int>::max();
}
}  // namespace

std::string Scalar::to_string() const {
  switch (kind_) {
    case Kind::boolean:
      return int_ ? "true" : "false";
    case Kind::integer:
      return fmt::format("{}", int_);
    case Kind::floating:
      return fmt::format("{}", float_);
  }
  return "?";
}

void Scalar::write(DType dtype, void* dst) const {
  auto lossy = [&]() {
    throw TypeError(fmt::format("cannot convert the scalar {} to {} without changing its value",
                                to_string(), dtype_long_name(dtype)));
  };
  if (ir::is_floating(dtype)) {
    double v = kind_ == Kind::floating ? float_ : static_cast<double>(int_);
    if (dtype == DType::f32)
      store(dst, static_cast<float>(v));
    else
      store(dst, v);
    return;
  }
  // Integer and bool targets: the value must be a whole number that fits.
  int64_t v = int_;
  if (kind_ == Kind::floating) {
    // 2^63 is the first double past the int64 range.
    if (!std::isfinite(float_) || std::trunc(float_) != float_ || float_ < -0x1p63 ||
        float_ >= 0x1p63) {
      lossy();
    }
    v = static_cast<int64_t>(float_);
  }
  switch (dtype) {
    case DType::i32:
      if (!fits<int32_t>(v)) lossy();
      store(dst, static_cast<int32_t>(v));
      return;
    case DType::i64:
      store(dst, v);
      return;
    case DType::u8:
      if (!fits<uint8_t>(v)) lossy();
      store(dst, static_cast<uint8_t>(v));
      return;
    case DType::boolean:
      if (v != 0 && v != 1) lossy();
      store(dst, v == 1);
      return;
    default:
      KILN_CHECK(false, "unhandled dtype in Scalar::write");
  }
}

ir::HostTensor Scalar::to_host(DType dtype) const {
  ir::HostTensor host(dtype, Shape{});
  write(dtype, host.raw());
  return host;
}

namespace detail {

namespace {
Tensor host_constant(ir::HostTensor host, const std::source_location& loc) {
  ir::Attrs attrs;
  attrs.set_tensor("value", std::move(host));
  if (current_device().is_cpu()) return apply1(ir::Op::constant, {}, attrs, loc);
  // A scalar operand stays on the host under a DeviceScope: 0-d cpu tensors go along with
  // operands on any device, so `x * 2.f` works wherever x lives.
  DeviceScope on_host(Device::cpu(), loc);
  return apply1(ir::Op::constant, {}, attrs, loc);
}
}  // namespace

Tensor scalar_tensor(const Scalar& value, DType dtype, std::string_view op,
                     const std::source_location& loc) {
  ir::HostTensor host;
  try {
    host = value.to_host(dtype);
  } catch (Error& e) {
    decorate(e, op, {}, loc);
    throw;
  }
  return host_constant(std::move(host), loc);
}

std::vector<Tensor> resolve_operands(std::string_view op, const Operand& a, const Operand& b,
                                     const std::source_location& loc) {
  std::vector<Tensor> tensors;
  for (const Operand* side : {&a, &b}) {
    if (side->is_tensor()) tensors.push_back(side->tensor());
  }
  // A scalar takes the dtype of the tensor beside it, or keeps its own next to another scalar.
  // A weakly typed constant (k::constant(10.f)) next to a strongly typed tensor of another dtype
  // acts as the plain number it was made from.
  auto strong_dtype = [](const Operand& side) -> std::optional<DType> {
    if (!side.is_tensor() || !side.tensor().defined() || side.tensor().weak_scalar()) return {};
    return side.tensor().dtype();
  };
  auto resolve = [&](const Operand& self, const Operand& other) {
    std::optional<DType> other_dtype = strong_dtype(other);
    const Scalar* weak = self.is_tensor() ? self.tensor().weak_scalar() : nullptr;
    if (self.is_tensor() && !(weak && other_dtype && *other_dtype != self.tensor().dtype())) {
      return self.tensor();
    }
    const Scalar& scalar = weak ? *weak : self.scalar();
    DType dtype = scalar.natural_dtype();
    if (other.is_tensor() && other.tensor().defined()) dtype = other.tensor().dtype();
    ir::HostTensor host;
    try {
      host = scalar.to_host(dtype);
    } catch (Error& e) {
      decorate(e, op, tensors, loc);
      throw;
    }
    return host_constant(std::move(host), loc);
  };
  return {resolve(a, b), resolve(b, a)};
}

}  // namespace detail
}  // namespace kiln
