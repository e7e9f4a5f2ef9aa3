#include "kiln/ir/types.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <ostream>

#include "kiln/ir/error.h"

namespace kiln::ir {

std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "f32";
    case DType::f64:
      return "f64";
    case DType::i32:
      return "i32";
    case DType::i64:
      return "i64";
    case DType::boolean:
      return "bool";
    case DType::u8:
      return "u8";
  }
  return "?";
}

std::string_view dtype_long_name(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "float32";
    case DType::f64:
      return "float64";
    case DType::i32:
      return "int32";
    case DType::i64:
      return "int64";
    case DType::boolean:
      return "bool";
    case DType::u8:
      return "uint8";
  }
  return "?";
}

std::optional<DType> parse_dtype(std::string_view name) {
  for (DType d : kAllDTypes) {
    if (name == dtype_name(d) || name == dtype_long_name(d)) return d;
  }
  return std::nullopt;
}

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return 4;
    case DType::f64:
      return 8;
    case DType::i32:
      return 4;
    case DType::i64:
      return 8;
    case DType::boolean:
    case DType::u8:
      return 1;
  }
  return 0;
}

bool is_floating(DType dtype) {
  return dtype == DType::f32 || dtype == DType::f64;
}
bool is_integer(DType dtype) {
  return dtype == DType::i32 || dtype == DType::i64 || dtype == DType::u8;
}
bool is_unsigned(DType dtype) {
  return dtype == DType::u8;
}

std::ostream& operator<<(std::ostream& os, DType dtype) {
  return os << dtype_long_name(dtype);
}

int64_t Shape::dim(int64_t i) const {
  return dims_[static_cast<size_t>(normalize_axis(i, rank()))];
}

int64_t Shape::num_elements() const {
  // A zero dimension first: the product of the others may overflow (TensorType::checked_nbytes
  // lets such empty shapes through).
  if (std::find(dims_.begin(), dims_.end(), 0) != dims_.end()) return 0;
  int64_t n = 1;
  for (int64_t d : dims_)
    n *= d;
  return n;
}

std::vector<int64_t> Shape::strides() const {
  std::vector<int64_t> s(dims_.size(), 1);
  for (int64_t i = rank() - 2; i >= 0; --i) {
    s[static_cast<size_t>(i)] = s[static_cast<size_t>(i + 1)] * dims_[static_cast<size_t>(i + 1)];
  }
  return s;
}

std::string Shape::to_string() const {
  if (dims_.size() == 1) return fmt::format("({},)", dims_[0]);
  return fmt::format("({})", fmt::join(dims_, ", "));
}

std::ostream& operator<<(std::ostream& os, const Shape& shape) {
  return os << shape.to_string();
}

int64_t normalize_axis(int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank) {
    throw ShapeError(
        fmt::format("axis {} is out of range for a tensor of rank {} (valid: {} to {})", axis, rank,
                    -rank, rank - 1));
  }
  return axis < 0 ? axis + rank : axis;
}

Shape broadcast_shapes(const Shape& a, const Shape& b) {
  int64_t rank = std::max(a.rank(), b.rank());
  std::vector<int64_t> out(static_cast<size_t>(rank));
  for (int64_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.rank() ? 1 : a[i - (rank - a.rank())];
    int64_t db = i < rank - b.rank() ? 1 : b[i - (rank - b.rank())];
    if (da != db && da != 1 && db != 1) {
      throw ShapeError(
          fmt::format("shapes {} and {} cannot be broadcast together (dimension {}: {} vs {})",
                      a.to_string(), b.to_string(), i, da, db));
    }
    out[static_cast<size_t>(i)] = da == 1 ? db : da;
  }
  return Shape(std::move(out));
}

std::string TensorType::to_string() const {
  return fmt::format("{}[{}]", dtype_name(dtype), fmt::join(shape.dims(), ","));
}

std::ostream& operator<<(std::ostream& os, const TensorType& type) {
  return os << type.to_string();
}

std::string types_to_string(std::span<const TensorType> types) {
  std::string out;
  for (const TensorType& t : types) {
    if (!out.empty()) out += ", ";
    out += t.to_string();
  }
  return out;
}

}  // namespace kiln::ir
