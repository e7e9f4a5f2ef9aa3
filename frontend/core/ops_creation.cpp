// Creation ops: constants, fills, ranges and random numbers.
#include <fmt/format.h>

#include <atomic>

#include "kiln/frontend/core/apply.h"
#include "kiln/frontend/core/device.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/ops.h"

namespace kiln {

using detail::apply1;

namespace detail {

Tensor make_constant(ir::HostTensor value, std::optional<DType> dtype, const Loc& loc) {
  if (dtype && *dtype != value.dtype()) {
    // Convert element by element with the same exactness rules as scalar operands.
    ir::HostTensor converted(*dtype, value.shape());
    size_t width = dtype_size(*dtype);
    try {
      for (int64_t i = 0; i < value.num_elements(); ++i) {
        ir::visit_dtype(value.dtype(), [&](auto zero) {
          using T = decltype(zero);
          Scalar(value.data<T>()[i]).write(*dtype, converted.raw() + i * width);
        });
      }
    } catch (Error& e) {
      decorate(e, "constant", {}, loc);
      throw;
    }
    value = std::move(converted);
  }
  ir::Attrs attrs;
  attrs.set_tensor("value", std::move(value));
  return apply1(ir::Op::constant, {}, attrs, loc);
}

void ragged_constant(const Loc& loc) {
  raise<ValueError>("constant", {},
                    "nested lists must be rectangular: lists at the same depth need the same "
                    "length",
                    loc);
}

void check_constant_shape(size_t count, const Shape& shape, const Loc& loc) {
  for (int64_t d : shape) {
    if (d < 0) {
      raise<ValueError>("constant", {},
                        fmt::format("shape {} has a negative dimension", shape.to_string()), loc);
    }
  }
  if (static_cast<int64_t>(count) != shape.num_elements()) {
    raise<ValueError>("constant", {},
                      fmt::format("{} values cannot fill shape {} ({} elements)", count,
                                  shape.to_string(), shape.num_elements()),
                      loc);
  }
}

}  // namespace detail

namespace {

ir::AttrValue scalar_attr(const Scalar& value, DType dtype, std::string_view op, const Loc& loc) {
  // Floating dtypes take a float attribute, integer and bool dtypes an int (docs/ops.md).
  if (ir::is_floating(dtype)) return value.as_double();
  ir::HostTensor host;
  try {
    host = value.to_host(dtype);
  } catch (Error& e) {
    detail::decorate(e, op, {}, loc);
    throw;
  }
  return ir::visit_dtype(dtype, [&](auto zero) -> int64_t {
    using T = decltype(zero);
    return static_cast<int64_t>(host.data<T>()[0]);
  });
}

// A seed for a random op called without one: distinct per call, spread over 64 bits so it does
// not collide with the small seeds users pick.
int64_t fresh_seed() {
  static std::atomic<uint64_t> counter{0};
  uint64_t z = (counter.fetch_add(1) + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return static_cast<int64_t>(z ^ (z >> 31));
}

ir::Attrs random_attrs(const Shape& shape, std::string_view a_name, double a,
                       std::string_view b_name, double b, std::optional<int64_t> seed,
                       DType dtype) {
  ir::Attrs attrs;
  attrs.set_ints("shape", shape.dims());
  attrs.set_dtype("dtype", dtype);
  attrs.set_float(a_name, a);
  attrs.set_float(b_name, b);
  attrs.set_int("seed", seed ? *seed : fresh_seed());
  return attrs;
}

Tensor random(ir::Op op, const Shape& shape, std::string_view a_name, double a,
              std::string_view b_name, double b, std::optional<int64_t> seed, DType dtype,
              const Loc& loc) {
  return apply1(op, {}, random_attrs(shape, a_name, a, b_name, b, seed, dtype), loc);
}

// The dtype range() picks from its arguments: any double → f64, any float → f32, else i32
// unless a wide integer asks for i64.
DType range_dtype(std::initializer_list<const Scalar*> args) {
  bool any_float = false, any_double = false, any_i64 = false;
  for (const Scalar* s : args) {
    any_float |= s->natural_dtype() == DType::f32;
    any_double |= s->natural_dtype() == DType::f64;
    any_i64 |= s->natural_dtype() == DType::i64;
  }
  if (any_double) return DType::f64;
  if (any_float) return DType::f32;
  return any_i64 ? DType::i64 : DType::i32;
}

// fill() with the shape, the dtype (unless given) and the device of `like`, as PyTorch's
// zeros_like does, whatever DeviceScope is in force.
Tensor fill_like(const Tensor& like, const Scalar& value, std::optional<DType> dtype,
                 const Loc& loc) {
  const DType d = dtype.value_or(like.dtype());
  const Device device = like.device();
  if (device == current_device()) return fill(like.shape(), value, d, loc);
  DeviceScope on(device, loc);
  return fill(like.shape(), value, d, loc);
}

}  // namespace

Tensor constant(const ir::HostTensor& value, Loc loc) {
  return detail::make_constant(value, std::nullopt, loc);
}

Tensor fill(const Shape& shape, Scalar value, std::optional<DType> dtype, Loc loc) {
  DType d = dtype.value_or(value.natural_dtype());
  ir::Attrs attrs;
  attrs.set_ints("shape", shape.dims());
  attrs.set_dtype("dtype", d);
  attrs.set("value", scalar_attr(value, d, "fill", loc));
  return apply1(ir::Op::fill, {}, attrs, loc);
}

Tensor zeros(const Shape& shape, DType dtype, Loc loc) {
  return fill(shape, 0, dtype, loc);
}

Tensor ones(const Shape& shape, DType dtype, Loc loc) {
  return fill(shape, 1, dtype, loc);
}

Tensor zeros_like(const Tensor& like, std::optional<DType> dtype, Loc loc) {
  if (!like.defined()) detail::raise<ValueError>("zeros_like", {}, "the Tensor is undefined", loc);
  return fill_like(like, 0, dtype, loc);
}

Tensor ones_like(const Tensor& like, std::optional<DType> dtype, Loc loc) {
  if (!like.defined()) detail::raise<ValueError>("ones_like", {}, "the Tensor is undefined", loc);
  return fill_like(like, 1, dtype, loc);
}

Tensor range(Scalar limit, std::optional<DType> dtype, Loc loc) {
  return range(0, limit, 1, dtype ? dtype : range_dtype({&limit}), loc);
}

Tensor range(Scalar start, Scalar limit, Scalar delta, std::optional<DType> dtype, Loc loc) {
  DType d = dtype.value_or(range_dtype({&start, &limit, &delta}));
  ir::Attrs attrs;
  attrs.set_dtype("dtype", d);
  attrs.set("start", scalar_attr(start, d, "range", loc));
  attrs.set("limit", scalar_attr(limit, d, "range", loc));
  attrs.set("delta", scalar_attr(delta, d, "range", loc));
  return apply1(ir::Op::range, {}, attrs, loc);
}

Tensor linspace(double start, double stop, int64_t num, DType dtype, Loc loc) {
  ir::Attrs attrs;
  attrs.set_float("start", start);
  attrs.set_float("stop", stop);
  attrs.set_int("num", num);
  attrs.set_dtype("dtype", dtype);
  return apply1(ir::Op::linspace, {}, attrs, loc);
}

Tensor random_uniform(const Shape& shape, double minval, double maxval, std::optional<int64_t> seed,
                      DType dtype, Loc loc) {
  return random(ir::Op::random_uniform, shape, "minval", minval, "maxval", maxval, seed, dtype,
                loc);
}

Tensor random_normal(const Shape& shape, double mean, double stddev, std::optional<int64_t> seed,
                     DType dtype, Loc loc) {
  return random(ir::Op::random_normal, shape, "mean", mean, "stddev", stddev, seed, dtype, loc);
}

Tensor random_uniform_at(const Shape& shape, const Tensor& step, double minval, double maxval,
                         int64_t seed, DType dtype, Loc loc) {
  return apply1(ir::Op::random_uniform_at, {step},
                random_attrs(shape, "minval", minval, "maxval", maxval, seed, dtype), loc);
}

Tensor one_hot(const Tensor& indices, int64_t depth, double on_value, double off_value,
               int64_t axis, DType dtype, Loc loc) {
  ir::Attrs attrs;
  attrs.set_int("depth", depth);
  attrs.set_float("on_value", on_value);
  attrs.set_float("off_value", off_value);
  attrs.set_int("axis", axis);
  attrs.set_dtype("dtype", dtype);
  return apply1(ir::Op::one_hot, {indices}, attrs, loc);
}

}  // namespace kiln
