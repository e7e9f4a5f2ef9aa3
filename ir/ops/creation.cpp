// Shape inference and verifier rules for the creation ops.
#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "kiln/ir/error.h"
#include "kiln/ir/ops/families.h"

namespace kiln::ir {

namespace {

// Element count limit for created tensors, so that byte sizes stay far from int64 overflow.
constexpr int64_t kMaxCreatedElements = int64_t{1} << 59;

void require_finite(const char* name, double v) {
  if (!std::isfinite(v)) throw ValueError(fmt::format("'{}' must be finite, got {}", name, v));
}

void check_int_in_range(const char* name, int64_t v, DType dtype) {
  bool fits = true;
  if (dtype == DType::i32) {
    fits = v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max();
  } else if (dtype == DType::u8) {
    fits = v >= 0 && v <= std::numeric_limits<uint8_t>::max();
  }
  if (!fits) {
    throw ValueError(fmt::format("'{}' = {} does not fit in {}", name, v, dtype_name(dtype)));
  }
}

void check_element_count(const Shape& shape) {
  int64_t count = 1;
  for (int64_t d : shape) {
    if (__builtin_mul_overflow(count, d, &count) || count > kMaxCreatedElements) {
      throw ValueError(fmt::format("shape {} has too many elements", shape.to_string()));
    }
  }
}

Shape shape_attr(const Attrs& attrs, const char* name) {
  const std::vector<int64_t>& dims = attrs.get_ints(name);
  for (int64_t d : dims) {
    if (d < 0) throw ValueError(fmt::format("'{}' has a negative dimension: {}", name, d));
  }
  Shape shape(dims);
  check_element_count(shape);
  return shape;
}

int64_t range_length(const Attrs& attrs, DType dtype) {
  if (is_integer(dtype)) {
    int64_t start = attrs.get_int("start"), limit = attrs.get_int("limit");
    int64_t delta = attrs.get_int("delta");
    check_int_in_range("start", start, dtype);
    check_int_in_range("limit", limit, dtype);
    // A u8 range may count down: its delta is any step between −255 and 255.
    const bool u8_down = dtype == DType::u8 && delta < 0 && delta >= -255;
    check_int_in_range("delta", u8_down ? -delta : delta, dtype);
    if (delta == 0) throw ValueError("'delta' must not be 0");
    // 128-bit: limit − start may not fit in 64 bits.
    __int128 span = static_cast<__int128>(limit) - start;
    if ((span > 0) != (delta > 0) || span == 0) return 0;
    __int128 n = (span + delta + (delta > 0 ? -1 : 1)) / delta;  // ceil(span / delta)
    if (n > kMaxCreatedElements) throw ValueError("range has too many elements");
    return static_cast<int64_t>(n);
  }
  double start = attrs.get_float("start"), limit = attrs.get_float("limit");
  double delta = attrs.get_float("delta");
  require_finite("start", start);
  require_finite("limit", limit);
  require_finite("delta", delta);
  if (delta == 0) throw ValueError("'delta' must not be 0");
  double n = std::ceil((limit - start) / delta);
  if (!(n <= static_cast<double>(kMaxCreatedElements))) {
    throw ValueError("range has too many elements");
  }
  return n > 0 ? static_cast<int64_t>(n) : 0;
}

void require_floating(DType dtype) {
  if (!is_floating(dtype)) {
    throw TypeError(fmt::format("dtype must be floating (f32, f64), got {}", dtype_name(dtype)));
  }
}

// Checks the 'value' attribute of a fill of `dtype`: a float for floating dtypes, an int in the
// dtype's range for integer dtypes, an int (or bool) for bool.
void check_fill_value(const Attrs& attrs, DType dtype) {
  if (is_floating(dtype)) {
    attrs.get_float("value");
  } else if (dtype == DType::boolean) {
    const AttrValue* v = attrs.find("value");
    if (v == nullptr || !std::holds_alternative<bool>(*v)) attrs.get_int("value");
  } else {
    check_int_in_range("value", attrs.get_int("value"), dtype);
  }
}

TensorType infer_fill(const Attrs& attrs) {
  DType dtype = attrs.get_dtype("dtype");
  Shape shape = shape_attr(attrs, "shape");
  check_fill_value(attrs, dtype);
  return {dtype, std::move(shape)};
}

TensorType infer_range(const Attrs& attrs) {
  DType dtype = attrs.get_dtype("dtype");
  if (dtype == DType::boolean) throw TypeError("dtype must be numeric, got bool");
  return {dtype, Shape{range_length(attrs, dtype)}};
}

TensorType infer_linspace(const Attrs& attrs) {
  DType dtype = attrs.get_dtype("dtype");
  require_floating(dtype);
  require_finite("start", attrs.get_float("start"));
  require_finite("stop", attrs.get_float("stop"));
  int64_t num = attrs.get_int("num");
  if (num < 0) throw ValueError(fmt::format("'num' must be >= 0, got {}", num));
  return {dtype, Shape{num}};
}

TensorType infer_random(Op op, const Attrs& attrs) {
  DType dtype = attrs.get_dtype("dtype");
  require_floating(dtype);
  Shape shape = shape_attr(attrs, "shape");
  attrs.get_int("seed");
  if (op == Op::random_uniform) {
    double lo = attrs.get_float("minval"), hi = attrs.get_float("maxval");
    require_finite("minval", lo);
    require_finite("maxval", hi);
    if (lo > hi) {
      throw ValueError(fmt::format("'minval' ({}) must not exceed 'maxval' ({})", lo, hi));
    }
  } else {
    require_finite("mean", attrs.get_float("mean"));
    double stddev = attrs.get_float("stddev");
    require_finite("stddev", stddev);
    if (stddev < 0) throw ValueError(fmt::format("'stddev' must be >= 0, got {}", stddev));
  }
  return {dtype, std::move(shape)};
}

TensorType infer_one_hot(const TensorType& indices, const Attrs& attrs) {
  if (indices.dtype != DType::i32 && indices.dtype != DType::i64) {
    throw TypeError(fmt::format("indices must be i32 or i64, got {}", dtype_name(indices.dtype)));
  }
  int64_t depth = attrs.get_int("depth");
  if (depth < 0) throw ValueError(fmt::format("'depth' must be >= 0, got {}", depth));
  attrs.get_float("on_value");
  attrs.get_float("off_value");
  DType dtype = attrs.has("dtype") ? attrs.get_dtype("dtype") : DType::f32;
  int64_t rank = indices.shape.rank() + 1;
  int64_t axis = normalize_axis(attrs.get_int("axis", -1), rank);
  std::vector<int64_t> dims = indices.shape.dims();
  dims.insert(dims.begin() + axis, depth);
  Shape shape(std::move(dims));
  check_element_count(shape);
  return {dtype, std::move(shape)};
}

}  // namespace

std::vector<TensorType> infer_creation(Op op, std::span<const TensorType> inputs,
                                       const Attrs& attrs) {
  switch (op) {
    case Op::constant:
      return {attrs.get_tensor("value").type()};
    case Op::fill:
      return {infer_fill(attrs)};
    case Op::range:
      return {infer_range(attrs)};
    case Op::linspace:
      return {infer_linspace(attrs)};
    case Op::random_uniform:
    case Op::random_normal:
      return {infer_random(op, attrs)};
    case Op::random_uniform_at:
      if (inputs[0].dtype != DType::i64 || inputs[0].shape.rank() != 0) {
        throw TypeError(
            fmt::format("the step must be an i64 scalar, got {}", inputs[0].to_string()));
      }
      return {infer_random(Op::random_uniform, attrs)};
    case Op::one_hot:
      return {infer_one_hot(inputs[0], attrs)};
    default:
      break;
  }
  KILN_CHECK(false, "not a creation op");
}

}  // namespace kiln::ir
