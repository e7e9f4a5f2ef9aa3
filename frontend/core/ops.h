// Kiln's eager tensor ops, named as in TensorFlow. Every function takes the caller's source
// location as its last (defaulted) parameter, so an error names the user's line; binary ops and
// operators take a Tensor or a plain C++ scalar on either side (`3.f * A`, `k::greater(x, 0.5f)`),
// the scalar taking the tensor's dtype. docs/ops.md describes each op's dtypes and semantics.
#pragma once

#include <algorithm>
#include <array>
#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <source_location>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kiln/frontend/core/operand.h"
#include "kiln/frontend/core/tensor.h"

namespace kiln {

// The axes a reduction works on: all of them (the default, `{}`), one (`1`) or a list (`{0, 2}`).
// An explicitly empty std::vector reduces nothing, as in TensorFlow.
class Axes {
 public:
  Axes() = default;
  template <std::integral T>
  requires(!std::same_as<T, bool>) Axes(T axis)
      : axes_(std::vector<int64_t>{static_cast<int64_t>(axis)}) {}
  Axes(std::initializer_list<int64_t> axes) : axes_(std::vector<int64_t>(axes)) {}
  Axes(std::vector<int64_t> axes) : axes_(std::move(axes)) {}

  bool all() const { return !axes_.has_value(); }
  // The listed axes, or 0..rank-1 for "all" (not normalized or checked; the op does that).
  std::vector<int64_t> resolve(int64_t rank) const;

 private:
  std::optional<std::vector<int64_t>> axes_;
};

// Creation.

namespace detail {
// How deeply initializer lists nest in L (0 for a plain element).
template <class L>
inline constexpr size_t kNesting = 0;
template <class U>
inline constexpr size_t kNesting<std::initializer_list<U>> = 1 + kNesting<U>;

// Nested initializer lists flattened to dims + row-major values; `ragged` if sizes disagree.
template <class T, size_t Rank>
struct Nested {
  std::array<int64_t, Rank> dims{};
  std::array<bool, Rank> seen{};
  std::vector<std::conditional_t<std::is_same_v<T, bool>, uint8_t, T>> values;
  bool ragged = false;

  template <size_t Depth>
  void add(const T& value) {
    values.push_back(value);
  }
  template <size_t Depth, class U>
  void add(std::initializer_list<U> list) {
    auto n = static_cast<int64_t>(list.size());
    if (!seen[Depth]) {
      seen[Depth] = true;
      dims[Depth] = n;  // dims below an empty list stay 0
    } else if (dims[Depth] != n) {
      ragged = true;
    }
    for (const U& item : list)
      add<Depth + 1>(item);
  }
};

// A constant from `value`, converted to `dtype` when given (TypeError if an element does not
// fit exactly).
Tensor make_constant(ir::HostTensor value, std::optional<DType> dtype, const Loc& loc);
// ValueError for a ragged nested list.
[[noreturn]] void ragged_constant(const Loc& loc);

// Stores n C++ values into `host` (whose dtype is T's natural dtype), in row-major order.
template <class T, class Values>
void store_values(const Values& values, ir::HostTensor& host) {
  constexpr bool exact = std::is_same_v<T, float> || std::is_same_v<T, double> ||
                         std::is_same_v<T, int32_t> || std::is_same_v<T, int64_t>;
  if constexpr (exact && std::is_same_v<typename Values::value_type, T>) {
    std::copy(values.begin(), values.end(), host.data<T>());
  } else {
    // Going through Scalar lands every other C++ type (bool, unsigned, short...) in its dtype.
    DType dtype = host.dtype();
    size_t width = dtype_size(dtype);
    for (size_t i = 0; i < values.size(); ++i) {
      Scalar(static_cast<T>(values[i])).write(dtype, host.raw() + i * width);
    }
  }
}

template <class T, class List>
Tensor nested_constant(const List& list, std::optional<DType> dtype, const Loc& loc) {
  Nested<T, kNesting<List>> nested;
  nested.template add<0>(list);
  if (nested.ragged) ragged_constant(loc);
  ir::HostTensor host(Scalar(T{}).natural_dtype(),
                      Shape(std::vector<int64_t>(nested.dims.begin(), nested.dims.end())));
  store_values<T>(nested.values, host);
  return make_constant(std::move(host), dtype, loc);
}

// Checks a user-given shape (no negative dims) and the value count; ValueError otherwise.
void check_constant_shape(size_t count, const Shape& shape, const Loc& loc);

// `s` in lower case: tf.nn spells padding "SAME"/"VALID", Keras "same"/"valid"; ops and layers
// take either and use lower case.
std::string lower(std::string_view s);
}  // namespace detail

// A scalar constant: C++ float→f32, double→f64, int→i32, int64_t→i64, bool→bool, unless
// `dtype` says otherwise. Without a dtype it is weakly typed (see Tensor::weak_scalar): like the
// plain number, it takes the dtype of the tensor it is combined with.
template <Arithmetic T>
Tensor constant(T value, std::optional<DType> dtype = std::nullopt, Loc loc = Loc::current()) {
  Tensor t =
      detail::make_constant(Scalar(value).to_host(Scalar(value).natural_dtype()), dtype, loc);
  if (!dtype) t.set_weak_scalar(Scalar(value));
  return t;
}
// Constants from nested lists of rank 1 to 4: k::constant({{1.f, 2.f}, {3.f, 4.f}}),
// k::constant({2, 3}, k::i64). Ragged lists are a ValueError.
template <Arithmetic T>
Tensor constant(std::initializer_list<T> values, std::optional<DType> dtype = std::nullopt,
                Loc loc = Loc::current()) {
  return detail::nested_constant<T>(values, dtype, loc);
}
template <Arithmetic T>
Tensor constant(std::initializer_list<std::initializer_list<T>> values,
                std::optional<DType> dtype = std::nullopt, Loc loc = Loc::current()) {
  return detail::nested_constant<T>(values, dtype, loc);
}
template <Arithmetic T>
Tensor constant(std::initializer_list<std::initializer_list<std::initializer_list<T>>> values,
                std::optional<DType> dtype = std::nullopt, Loc loc = Loc::current()) {
  return detail::nested_constant<T>(values, dtype, loc);
}
template <Arithmetic T>
Tensor constant(
    std::initializer_list<std::initializer_list<std::initializer_list<std::initializer_list<T>>>>
        values,
    std::optional<DType> dtype = std::nullopt, Loc loc = Loc::current()) {
  return detail::nested_constant<T>(values, dtype, loc);
}
// A constant of the given shape from row-major values (ValueError if the count differs).
template <Arithmetic T>
Tensor constant(const std::vector<T>& values, const Shape& shape,
                std::optional<DType> dtype = std::nullopt, Loc loc = Loc::current()) {
  detail::check_constant_shape(values.size(), shape, loc);
  ir::HostTensor host(Scalar(T{}).natural_dtype(), shape);
  detail::store_values<T>(values, host);
  return detail::make_constant(std::move(host), dtype, loc);
}
// A 1-D constant from a vector, as tf.constant(list): k::constant(std::vector<float>{1, 2}).
template <Arithmetic T>
Tensor constant(const std::vector<T>& values, std::optional<DType> dtype = std::nullopt,
                Loc loc = Loc::current()) {
  return constant(values, Shape{static_cast<int64_t>(values.size())}, dtype, loc);
}
// A constant holding (sharing) a host tensor.
Tensor constant(const ir::HostTensor& value, Loc loc = Loc::current());

// A tensor of `shape` filled with zeros / ones of `dtype`.
Tensor zeros(const Shape& shape, DType dtype = f32, Loc loc = Loc::current());
Tensor ones(const Shape& shape, DType dtype = f32, Loc loc = Loc::current());
// A tensor of `shape` filled with `value` (dtype: the value's, unless given).
Tensor fill(const Shape& shape, Scalar value, std::optional<DType> dtype = std::nullopt,
            Loc loc = Loc::current());
// Zeros / ones with the shape (and, unless given, the dtype) of `like`.
Tensor zeros_like(const Tensor& like, std::optional<DType> dtype = std::nullopt,
                  Loc loc = Loc::current());
Tensor ones_like(const Tensor& like, std::optional<DType> dtype = std::nullopt,
                 Loc loc = Loc::current());
// [0, limit) step 1, and [start, limit) step delta. The dtype is given or follows the
// arguments (integers → i32/i64, any float → f32, any double → f64).
Tensor range(Scalar limit, std::optional<DType> dtype = std::nullopt, Loc loc = Loc::current());
Tensor range(Scalar start, Scalar limit, Scalar delta = 1,
             std::optional<DType> dtype = std::nullopt, Loc loc = Loc::current());
// `num` evenly spaced values from start to stop inclusive.
Tensor linspace(double start, double stop, int64_t num, DType dtype = f32,
                Loc loc = Loc::current());
// Uniform random numbers in [minval, maxval); a fresh seed per call when none is given.
Tensor random_uniform(const Shape& shape, double minval = 0.0, double maxval = 1.0,
                      std::optional<int64_t> seed = std::nullopt, DType dtype = f32,
                      Loc loc = Loc::current());
// Normal random numbers; a fresh seed per call when none is given.
Tensor random_normal(const Shape& shape, double mean = 0.0, double stddev = 1.0,
                     std::optional<int64_t> seed = std::nullopt, DType dtype = f32,
                     Loc loc = Loc::current());
// Uniform random numbers that differ with `step` (an i64 scalar tensor, possibly computed inside
// a traced function): the same seed and step give the same numbers, step 0 those of
// random_uniform. Compiled steps draw new numbers each call by passing a counter (dropout).
Tensor random_uniform_at(const Shape& shape, const Tensor& step, double minval, double maxval,
                         int64_t seed, DType dtype = f32, Loc loc = Loc::current());
// One-hot encoding of integer `indices` with a new dimension of size `depth` at `axis`.
Tensor one_hot(const Tensor& indices, int64_t depth, double on_value = 1.0, double off_value = 0.0,
               int64_t axis = -1, DType dtype = f32, Loc loc = Loc::current());

// Elementwise unary.

Tensor neg(const Tensor& x, Loc loc = Loc::current());         // -x
Tensor abs(const Tensor& x, Loc loc = Loc::current());         // |x|
Tensor sign(const Tensor& x, Loc loc = Loc::current());        // -1, 0 or 1
Tensor exp(const Tensor& x, Loc loc = Loc::current());         // e^x
Tensor log(const Tensor& x, Loc loc = Loc::current());         // natural logarithm
Tensor sqrt(const Tensor& x, Loc loc = Loc::current());        // √x
Tensor rsqrt(const Tensor& x, Loc loc = Loc::current());       // 1/√x
Tensor square(const Tensor& x, Loc loc = Loc::current());      // x²
Tensor reciprocal(const Tensor& x, Loc loc = Loc::current());  // 1/x
Tensor sin(const Tensor& x, Loc loc = Loc::current());         // sine
Tensor cos(const Tensor& x, Loc loc = Loc::current());         // cosine
Tensor tanh(const Tensor& x, Loc loc = Loc::current());        // hyperbolic tangent
Tensor sigmoid(const Tensor& x, Loc loc = Loc::current());     // 1/(1+e^-x)
Tensor relu(const Tensor& x, Loc loc = Loc::current());        // max(x, 0)
// x if x > 0 else alpha·(e^x − 1).
Tensor elu(const Tensor& x, double alpha = 1.0, Loc loc = Loc::current());
Tensor softplus(const Tensor& x, Loc loc = Loc::current());  // log(1 + e^x)
// x·Φ(x), Φ the standard normal CDF; with `approximate`, the tanh form
// ½x(1 + tanh(√(2/π)(x + 0.044715x³))). As keras.activations.gelu(x, approximate).
Tensor gelu(const Tensor& x, bool approximate = false, Loc loc = Loc::current());
Tensor erf(const Tensor& x, Loc loc = Loc::current());          // error function
Tensor log1p(const Tensor& x, Loc loc = Loc::current());        // log(1 + x), accurate near 0
Tensor expm1(const Tensor& x, Loc loc = Loc::current());        // e^x − 1, accurate near 0
Tensor floor(const Tensor& x, Loc loc = Loc::current());        // round down
Tensor ceil(const Tensor& x, Loc loc = Loc::current());         // round up
Tensor round(const Tensor& x, Loc loc = Loc::current());        // to nearest, ties to even
Tensor logical_not(const Tensor& x, Loc loc = Loc::current());  // !x for bool tensors
// Converts to `dtype` (float→int truncates and saturates; anything→bool is x != 0).
Tensor cast(const Tensor& x, DType dtype, Loc loc = Loc::current());

// Elementwise binary (NumPy broadcasting; a scalar takes the tensor's dtype).

Tensor add(const Operand& a, const Operand& b, Loc loc = Loc::current());       // a + b
Tensor subtract(const Operand& a, const Operand& b, Loc loc = Loc::current());  // a − b
Tensor multiply(const Operand& a, const Operand& b, Loc loc = Loc::current());  // a · b
Tensor divide(const Operand& a, const Operand& b, Loc loc = Loc::current());    // a / b
Tensor pow(const Operand& a, const Operand& b, Loc loc = Loc::current());       // a^b
Tensor maximum(const Operand& a, const Operand& b, Loc loc = Loc::current());
Tensor minimum(const Operand& a, const Operand& b, Loc loc = Loc::current());
Tensor equal(const Operand& a, const Operand& b, Loc loc = Loc::current());
Tensor not_equal(const Operand& a, const Operand& b, Loc loc = Loc::current());
Tensor less(const Operand& a, const Operand& b, Loc loc = Loc::current());
Tensor less_equal(const Operand& a, const Operand& b, Loc loc = Loc::current());
Tensor greater(const Operand& a, const Operand& b, Loc loc = Loc::current());
Tensor greater_equal(const Operand& a, const Operand& b, Loc loc = Loc::current());
Tensor logical_and(const Operand& a, const Operand& b, Loc loc = Loc::current());
Tensor logical_or(const Operand& a, const Operand& b, Loc loc = Loc::current());
// cond ? a : b elementwise, all three broadcast together.
Tensor where(const Operand& cond, const Operand& a, const Operand& b, Loc loc = Loc::current());
Tensor select(const Operand& cond, const Operand& a, const Operand& b, Loc loc = Loc::current());

// Operators; the location is that of the user's expression (recorded by Operand).
Tensor operator+(const Operand& a, const Operand& b);
Tensor operator-(const Operand& a, const Operand& b);
Tensor operator*(const Operand& a, const Operand& b);
Tensor operator/(const Operand& a, const Operand& b);
Tensor operator-(const Operand& x);
Tensor& operator+=(Tensor& a, const Operand& b);
Tensor& operator-=(Tensor& a, const Operand& b);
Tensor& operator*=(Tensor& a, const Operand& b);
Tensor& operator/=(Tensor& a, const Operand& b);

// Reductions.

// Sum / mean / max / min / product over `axes` (all by default), dropping them unless keepdims.
Tensor reduce_sum(const Tensor& x, Axes axes = {}, bool keepdims = false, Loc loc = Loc::current());
Tensor reduce_mean(const Tensor& x, Axes axes = {}, bool keepdims = false,
                   Loc loc = Loc::current());
Tensor reduce_max(const Tensor& x, Axes axes = {}, bool keepdims = false, Loc loc = Loc::current());
Tensor reduce_min(const Tensor& x, Axes axes = {}, bool keepdims = false, Loc loc = Loc::current());
Tensor reduce_prod(const Tensor& x, Axes axes = {}, bool keepdims = false,
                   Loc loc = Loc::current());
// Index of the first largest / smallest element along `axis`.
Tensor argmax(const Tensor& x, int64_t axis, DType dtype = i64, Loc loc = Loc::current());
Tensor argmin(const Tensor& x, int64_t axis, DType dtype = i64, Loc loc = Loc::current());
// Population variance and standard deviation, as tf.math.reduce_variance / reduce_std.
Tensor reduce_variance(const Tensor& x, Axes axes = {}, bool keepdims = false,
                       Loc loc = Loc::current());
Tensor reduce_std(const Tensor& x, Axes axes = {}, bool keepdims = false, Loc loc = Loc::current());
// Euclidean norm over all or the given axes.
Tensor norm(const Tensor& x, Axes axes = {}, bool keepdims = false, Loc loc = Loc::current());
// log Σ exp(x), computed without overflow.
Tensor reduce_logsumexp(const Tensor& x, Axes axes = {}, bool keepdims = false,
                        Loc loc = Loc::current());

// Linear algebra.

// Matrix product over the last two dims (optionally transposed); batch dims broadcast.
Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a = false, bool transpose_b = false,
              Loc loc = Loc::current());

// Shape and data movement.

// Same elements with another shape; one dimension may be -1 (inferred).
Tensor reshape(const Tensor& x, const Shape& shape, Loc loc = Loc::current());
// Reverses the dimensions.
Tensor transpose(const Tensor& x, Loc loc = Loc::current());
// Output dim i is input dim perm[i].
Tensor transpose(const Tensor& x, std::vector<int64_t> perm, Loc loc = Loc::current());
// Removes the given size-1 dims (every size-1 dim by default).
Tensor squeeze(const Tensor& x, Axes axes = {}, Loc loc = Loc::current());
// Inserts a size-1 dim at `axis` (in [-rank-1, rank]).
Tensor expand_dims(const Tensor& x, int64_t axis, Loc loc = Loc::current());
// NumPy broadcast to `shape`.
Tensor broadcast_to(const Tensor& x, const Shape& shape, Loc loc = Loc::current());
// Joins tensors along an existing axis.
Tensor concat(const std::vector<Tensor>& xs, int64_t axis, Loc loc = Loc::current());
// Joins tensors along a new axis.
Tensor stack(const std::vector<Tensor>& xs, int64_t axis = 0, Loc loc = Loc::current());
// `count` equal pieces along `axis` (ValueError if it does not divide the dim).
// Note: split(x, {3}) is a count of 3; pass std::vector<int64_t>{3} for one piece of size 3.
std::vector<Tensor> split(const Tensor& x, int64_t count, int64_t axis = 0,
                          Loc loc = Loc::current());
// Pieces of the given sizes along `axis`; one size may be -1 (the rest).
std::vector<Tensor> split(const Tensor& x, std::vector<int64_t> sizes, int64_t axis = 0,
                          Loc loc = Loc::current());
// Slices of `params` along `axis` picked by integer `indices`.
Tensor gather(const Tensor& params, const Tensor& indices, int64_t axis = 0,
              Loc loc = Loc::current());
// Constant padding: one (before, after) pair per dim.
Tensor pad(const Tensor& x, const std::vector<std::pair<int64_t, int64_t>>& paddings,
           Scalar value = 0, Loc loc = Loc::current());
// Repeats the tensor multiples[i] times along dim i.
Tensor tile(const Tensor& x, std::vector<int64_t> multiples, Loc loc = Loc::current());

// Neural-network ops (NHWC activations, HWIO filters).

// 2-D convolution; strides and dilations take one value (both dims) or two; padding is
// "valid" or "same" (any case).
Tensor conv2d(const Tensor& input, const Tensor& filter, std::vector<int64_t> strides = {1, 1},
              std::string_view padding = "valid", std::vector<int64_t> dilations = {1, 1},
              Loc loc = Loc::current());
// Max / average pooling; strides default to ksize.
Tensor max_pool2d(const Tensor& input, std::vector<int64_t> ksize,
                  std::vector<int64_t> strides = {}, std::string_view padding = "valid",
                  Loc loc = Loc::current());
Tensor avg_pool2d(const Tensor& input, std::vector<int64_t> ksize,
                  std::vector<int64_t> strides = {}, std::string_view padding = "valid",
                  Loc loc = Loc::current());
// exp(x) / Σ exp(x) along `axis`, and its logarithm.
Tensor softmax(const Tensor& x, int64_t axis = -1, Loc loc = Loc::current());
Tensor log_softmax(const Tensor& x, int64_t axis = -1, Loc loc = Loc::current());

// Image ops on NHWC images (f32 or f64; frontend/core/ops_image.cpp). They have no gradient.
namespace image {
// tf.image.resize to size {height, width}: method "bilinear" (half-pixel centres) or "nearest".
Tensor resize(const Tensor& images, std::vector<int64_t> size, std::string_view method = "bilinear",
              Loc loc = Loc::current());
// TensorFlow's ImageProjectiveTransformV3: output pixel (x, y) of image n reads the input at
// ((a0·x + a1·y + a2) / k, (a3·x + a4·y + a5) / k), k = a6·x + a7·y + 1, where a = transforms[n]
// ([N, 8], or [1, 8] for every image). interpolation "bilinear" or "nearest"; fill_mode
// "reflect", "wrap", "constant" (fill_value) or "nearest" says what lies outside the image.
Tensor transform(const Tensor& images, const Tensor& transforms,
                 std::string_view interpolation = "bilinear",
                 std::string_view fill_mode = "reflect", double fill_value = 0.0,
                 Loc loc = Loc::current());
}  // namespace image

}  // namespace kiln
