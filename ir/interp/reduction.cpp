// Interpreter kernels for the reduction ops.
//
// Accuracy: this is the oracle, so floating sums, means and products accumulate in double
// (plain summation in double, not Kahan) and round to the result dtype once at the end.
// Integer sums and products accumulate in uint64_t, which wraps without undefined behaviour and
// agrees with two's-complement wrapping in i32 and i64 after the final narrowing.
#include <cmath>
#include <limits>
#include <type_traits>

#include "kiln/ir/error.h"
#include "kiln/ir/interp/util.h"
#include "kiln/ir/ops/families.h"
#include "kiln/ir/ops/reduction.h"

namespace kiln::ir {

namespace {

// The accumulator type of a sum or product of T.
template <class T>
using Wide = std::conditional_t<std::is_floating_point_v<T>, double, uint64_t>;

template <class T>
Wide<T> widen(T x) {
  if constexpr (std::is_floating_point_v<T>) {
    return static_cast<double>(x);
  } else {
    return static_cast<uint64_t>(x);  // modular: negative values wrap to their two's complement
  }
}

// Back to T; for integers the conversion is modular (defined in C++20).
template <class T>
T narrow(Wide<T> acc) {
  return static_cast<T>(acc);
}

// Folds every element of `in` into the accumulator of its output position; the accumulators are
// laid out as the result with the reduced dimensions kept as size 1 (the same row-major order as
// the result with or without keepdims).
template <class T, class Acc, class F>
std::vector<Acc> accumulate(const HostTensor& in, const std::vector<bool>& mask, Acc init,
                            F combine) {
  Shape kept = reduced_shape(in.shape(), mask, true);
  std::vector<int64_t> out_strides = kept.strides();
  for (size_t d = 0; d < mask.size(); ++d) {
    if (mask[d]) out_strides[d] = 0;
  }
  std::vector<Acc> acc(static_cast<size_t>(kept.num_elements()), init);
  const T* x = in.data<T>();
  int64_t i = 0;
  interp::for_each_index(in.shape(), [&](std::span<const int64_t> index) {
    Acc& a = acc[static_cast<size_t>(interp::offset_of(index, out_strides))];
    a = combine(a, x[i++]);
  });
  return acc;
}

// Number of input elements folded into each output element.
int64_t reduction_count(const Shape& shape, const std::vector<bool>& mask) {
  int64_t count = 1;
  for (int64_t d = 0; d < shape.rank(); ++d) {
    if (mask[static_cast<size_t>(d)]) count *= shape[d];
  }
  return count;
}

// The identity of max: -inf for floats, the lowest value for integers.
template <class T>
T max_identity() {
  if constexpr (std::is_floating_point_v<T>)
    return -std::numeric_limits<T>::infinity();
  else
    return std::numeric_limits<T>::lowest();
}

template <class T>
T min_identity() {
  if constexpr (std::is_floating_point_v<T>)
    return std::numeric_limits<T>::infinity();
  else
    return std::numeric_limits<T>::max();
}

template <class T>
bool is_nan(T x) {
  if constexpr (std::is_floating_point_v<T>)
    return std::isnan(x);
  else
    return false;
}

// Whether `x` should replace the running best `best`: a NaN wins and then sticks (max and min
// propagate NaN, argmax/argmin point at the first NaN, as NumPy); ties keep the earlier element.
template <class T>
bool beats_max(T x, T best) {
  if (is_nan(best)) return false;
  return is_nan(x) || x > best;
}

template <class T>
bool beats_min(T x, T best) {
  if (is_nan(best)) return false;
  return is_nan(x) || x < best;
}

template <class T>
void reduce_typed(Op op, const HostTensor& in, const std::vector<bool>& mask, HostTensor& out) {
  T* y = out.data<T>();
  auto store = [&](const auto& acc, auto finish) {
    for (size_t i = 0; i < acc.size(); ++i)
      y[i] = finish(acc[i]);
  };
  switch (op) {
    case Op::reduce_sum: {
      auto acc = accumulate<T>(in, mask, Wide<T>{0}, [](Wide<T> a, T x) { return a + widen(x); });
      store(acc, [](Wide<T> a) { return narrow<T>(a); });
      return;
    }
    case Op::reduce_prod: {
      auto acc = accumulate<T>(in, mask, Wide<T>{1}, [](Wide<T> a, T x) { return a * widen(x); });
      store(acc, [](Wide<T> a) { return narrow<T>(a); });
      return;
    }
    case Op::reduce_mean: {
      auto acc = accumulate<T>(in, mask, Wide<T>{0}, [](Wide<T> a, T x) { return a + widen(x); });
      const int64_t count = reduction_count(in.shape(), mask);
      store(acc, [count](Wide<T> a) -> T {
        if constexpr (std::is_floating_point_v<T>) {
          return static_cast<T>(a / static_cast<double>(count));  // 0/0 = NaN when empty
        } else {
          // Mean of the wrapped sum, truncating; count ≥ 1 rules out MIN / -1.
          if (count == 0) return 0;
          return static_cast<T>(static_cast<int64_t>(narrow<T>(a)) / count);
        }
      });
      return;
    }
    case Op::reduce_max: {
      auto acc = accumulate<T>(in, mask, max_identity<T>(),
                               [](T a, T x) { return beats_max(x, a) ? x : a; });
      store(acc, [](T a) { return a; });
      return;
    }
    case Op::reduce_min: {
      auto acc = accumulate<T>(in, mask, min_identity<T>(),
                               [](T a, T x) { return beats_min(x, a) ? x : a; });
      store(acc, [](T a) { return a; });
      return;
    }
    default:
      KILN_CHECK(false, "not a set-of-axes reduction");
  }
}

// argmax/argmin along one axis, viewing the operand as [outer, n, inner].
template <class T, class Index>
void arg_reduce_typed(bool is_max, const HostTensor& in, int64_t axis, HostTensor& out) {
  const Shape& shape = in.shape();
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d)
    outer *= shape[d];
  for (int64_t d = axis + 1; d < shape.rank(); ++d)
    inner *= shape[d];
  const int64_t n = shape[axis];
  KILN_CHECK(n > 0 || out.num_elements() == 0, "argmax over an empty axis");
  const T* x = in.data<T>();
  Index* y = out.data<Index>();
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t j = 0; j < inner; ++j) {
      const T* row = x + o * n * inner + j;
      int64_t best = 0;
      for (int64_t k = 1; k < n; ++k) {
        T v = row[k * inner];
        if (is_max ? beats_max(v, row[best * inner]) : beats_min(v, row[best * inner])) best = k;
      }
      y[o * inner + j] = static_cast<Index>(best);
    }
  }
}

void arg_reduce(Op op, const HostTensor& in, const Attrs& attrs, HostTensor& out) {
  int64_t axis = arg_reduce_axis(attrs, in.shape().rank());
  bool is_max = op == Op::argmax;
  visit_dtype(in.dtype(), [&](auto t) {
    using T = decltype(t);
    if constexpr (std::is_same_v<T, bool>) {
      KILN_CHECK(false, "argmax on bool");
    } else if (out.dtype() == DType::i32) {
      arg_reduce_typed<T, int32_t>(is_max, in, axis, out);
    } else {
      arg_reduce_typed<T, int64_t>(is_max, in, axis, out);
    }
  });
}

}  // namespace

void interpret_reduction(Op op, std::span<const HostTensor> inputs, const Attrs& attrs,
                         std::span<HostTensor> outputs) {
  const HostTensor& in = inputs[0];
  if (op == Op::argmax || op == Op::argmin) {
    arg_reduce(op, in, attrs, outputs[0]);
    return;
  }
  std::vector<bool> mask = reduced_axes_mask(attrs, in.shape().rank());
  visit_dtype(in.dtype(), [&](auto t) {
    using T = decltype(t);
    if constexpr (std::is_same_v<T, bool>) {
      KILN_CHECK(false, "reduction on bool");
    } else {
      reduce_typed<T>(op, in, mask, outputs[0]);
    }
  });
}

}  // namespace kiln::ir
