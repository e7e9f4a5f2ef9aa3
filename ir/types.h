// Element types, shapes and tensor types: the static type of every IR value.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::ir {

// Element type. f16/bf16 are reserved for later; the numbering leaves room. u8 is unsigned:
// its arithmetic wraps modulo 256, as NumPy's and TensorFlow's uint8.
enum class DType : uint8_t { f32, f64, i32, i64, boolean, u8 };

inline constexpr DType kAllDTypes[] = {DType::f32, DType::f64,     DType::i32,
                                       DType::i64, DType::boolean, DType::u8};

// Short name used in IR text: f32, f64, i32, i64, bool, u8.
std::string_view dtype_name(DType dtype);
// TensorFlow-style long name for printing tensors: float32, float64, int32, int64, bool, uint8.
std::string_view dtype_long_name(DType dtype);
// Parses a short or long name; nullopt if unknown.
std::optional<DType> parse_dtype(std::string_view name);
// Bytes per element.
size_t dtype_size(DType dtype);
bool is_floating(DType dtype);
// i32, i64 and u8.
bool is_integer(DType dtype);
// The unsigned integer dtypes: u8.
bool is_unsigned(DType dtype);
inline bool is_numeric(DType dtype) {
  return dtype != DType::boolean;
}
std::ostream& operator<<(std::ostream& os, DType dtype);

// A static shape: a list of non-negative dimension sizes. Rank 0 is a scalar.
class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) : dims_(dims) {}
  explicit Shape(std::vector<int64_t> dims) : dims_(std::move(dims)) {}
  explicit Shape(std::span<const int64_t> dims) : dims_(dims.begin(), dims.end()) {}

  int64_t rank() const { return static_cast<int64_t>(dims_.size()); }
  int64_t operator[](int64_t i) const { return dims_[static_cast<size_t>(i)]; }
  int64_t& operator[](int64_t i) { return dims_[static_cast<size_t>(i)]; }
  // Dimension i, counting from the back for negative i; throws ShapeError if out of range.
  int64_t dim(int64_t i) const;
  // Product of the dimensions (1 for a scalar, 0 if any dimension is 0).
  int64_t num_elements() const;
  const std::vector<int64_t>& dims() const { return dims_; }
  auto begin() const { return dims_.begin(); }
  auto end() const { return dims_.end(); }
  bool operator==(const Shape&) const = default;

  // Row-major strides in elements.
  std::vector<int64_t> strides() const;
  // "(2, 3)", "(4,)", "()" as TensorFlow prints TensorShape.
  std::string to_string() const;

 private:
  std::vector<int64_t> dims_;
};
std::ostream& operator<<(std::ostream& os, const Shape& shape);

// Normalizes axis (negative counts from the back) for a tensor of rank `rank`;
// throws ShapeError naming the axis and rank if it is out of range.
int64_t normalize_axis(int64_t axis, int64_t rank);
// NumPy broadcasting of two shapes; throws ShapeError if they are incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b);

// The static type of a value: element type and shape.
struct TensorType {
  DType dtype = DType::f32;
  Shape shape;
  bool operator==(const TensorType&) const = default;
  // Bytes of a dense tensor of this type.
  size_t nbytes() const { return static_cast<size_t>(shape.num_elements()) * dtype_size(dtype); }
  // Bytes of a dense tensor of this type, or nullopt when that overflows int64 (a shape with a
  // zero dimension is empty whatever its other dimensions, never an overflow). Dims must be >= 0.
  std::optional<int64_t> checked_nbytes() const {
    int64_t bytes = static_cast<int64_t>(dtype_size(dtype));
    bool overflow = false;
    for (int64_t d : shape) {
      if (d == 0) return 0;
      overflow = overflow || __builtin_mul_overflow(bytes, d, &bytes);
    }
    if (overflow) return std::nullopt;
    return bytes;
  }
  // "f32[2,3]", "i64[]".
  std::string to_string() const;
};
std::ostream& operator<<(std::ostream& os, const TensorType& type);

// Joins types as "f32[2,3], i32[4]" for error messages.
std::string types_to_string(std::span<const TensorType> types);

}  // namespace kiln::ir
