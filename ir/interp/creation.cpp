// Interpreter kernels for the creation ops.
#include <algorithm>
#include <cstring>
#include <variant>

#include "kiln/ir/error.h"
#include "kiln/ir/interp/elementwise_math.h"
#include "kiln/ir/interp/util.h"
#include "kiln/ir/ops/families.h"
#include "kiln/ir/philox.h"

namespace kiln::ir {

namespace {

// A float attribute converted to T with `cast` semantics (saturating for integers, != 0 for bool).
template <class T>
T from_double(double v) {
  return scalar::cast<T, double>(v);
}

void run_constant(const Attrs& attrs, HostTensor& out) {
  const HostTensor& value = attrs.get_tensor("value");
  KILN_CHECK(value.type() == out.type(), "constant result type differs from its value");
  std::memcpy(out.raw(), value.raw(), out.nbytes());
}

void run_fill(const Attrs& attrs, HostTensor& out) {
  visit_dtype(out.dtype(), [&](auto zero) {
    using T = decltype(zero);
    T value;
    if constexpr (std::is_floating_point_v<T>) {
      value = static_cast<T>(attrs.get_float("value"));
    } else if constexpr (std::is_same_v<T, bool>) {
      const AttrValue* v = attrs.find("value");
      value = v != nullptr && std::holds_alternative<bool>(*v) ? std::get<bool>(*v)
                                                               : attrs.get_int("value") != 0;
    } else {
      value = static_cast<T>(attrs.get_int("value"));  // range checked by shape inference
    }
    std::fill_n(out.data<T>(), out.num_elements(), value);
  });
}

void run_range(const Attrs& attrs, HostTensor& out) {
  visit_dtype(out.dtype(), [&](auto zero) {
    using T = decltype(zero);
    T* dst = out.data<T>();
    if constexpr (std::is_floating_point_v<T>) {
      double start = attrs.get_float("start"), delta = attrs.get_float("delta");
      for (int64_t i = 0; i < out.num_elements(); ++i) {
        dst[i] = static_cast<T>(start + static_cast<double>(i) * delta);
      }
    } else if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      // Every value lies in [start, limit), so it fits T; 128 bits keep i·delta exact.
      __int128 start = attrs.get_int("start"), delta = attrs.get_int("delta");
      for (int64_t i = 0; i < out.num_elements(); ++i)
        dst[i] = static_cast<T>(start + i * delta);
    }
  });
}

// The last value is exactly `stop`; the others are start + i·step in double.
void run_linspace(const Attrs& attrs, HostTensor& out) {
  visit_dtype(out.dtype(), [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_floating_point_v<T>) {
      double start = attrs.get_float("start"), stop = attrs.get_float("stop");
      int64_t n = out.num_elements();
      T* dst = out.data<T>();
      double step = n > 1 ? (stop - start) / static_cast<double>(n - 1) : 0.0;
      for (int64_t i = 0; i < n; ++i)
        dst[i] = static_cast<T>(start + static_cast<double>(i) * step);
      if (n > 1) dst[n - 1] = static_cast<T>(stop);
    }
  });
}

void run_random(Op op, const Attrs& attrs, HostTensor& out, uint64_t step = 0) {
  uint64_t seed = static_cast<uint64_t>(attrs.get_int("seed"));
  visit_dtype(out.dtype(), [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_floating_point_v<T>) {
      T* dst = out.data<T>();
      uint64_t n = static_cast<uint64_t>(out.num_elements());
      if (op == Op::random_uniform || op == Op::random_uniform_at) {
        double lo = attrs.get_float("minval"), hi = attrs.get_float("maxval");
        for (uint64_t i = 0; i < n; ++i)
          dst[i] = random_uniform_value<T>(seed, i, lo, hi, step);
      } else {
        double mean = attrs.get_float("mean"), stddev = attrs.get_float("stddev");
        for (uint64_t i = 0; i < n; ++i)
          dst[i] = random_normal_value<T>(seed, i, mean, stddev);
      }
    }
  });
}

// out[..., j (at axis), ...] = indices[...] == j ? on : off.
template <class Index>
void run_one_hot_typed(const HostTensor& indices, const Attrs& attrs, HostTensor& out) {
  int64_t axis = normalize_axis(attrs.get_int("axis", -1), out.shape().rank());
  std::vector<int64_t> index_strides = indices.shape().strides();
  index_strides.insert(index_strides.begin() + axis, 0);  // the depth axis does not move in indices
  const Index* idx = indices.data<Index>();
  visit_dtype(out.dtype(), [&](auto zero) {
    using T = decltype(zero);
    T on = from_double<T>(attrs.get_float("on_value"));
    T off = from_double<T>(attrs.get_float("off_value"));
    T* dst = out.data<T>();
    int64_t i = 0;
    interp::for_each_index(out.shape(), [&](std::span<const int64_t> pos) {
      Index want = idx[interp::offset_of(pos, index_strides)];
      dst[i++] = static_cast<int64_t>(want) == pos[static_cast<size_t>(axis)] ? on : off;
    });
  });
}

void run_one_hot(const HostTensor& indices, const Attrs& attrs, HostTensor& out) {
  if (indices.dtype() == DType::i32) return run_one_hot_typed<int32_t>(indices, attrs, out);
  KILN_CHECK(indices.dtype() == DType::i64, "one_hot indices must be i32 or i64");
  run_one_hot_typed<int64_t>(indices, attrs, out);
}

}  // namespace

void interpret_creation(Op op, std::span<const HostTensor> inputs, const Attrs& attrs,
                        std::span<HostTensor> outputs) {
  KILN_CHECK(outputs.size() == 1, "creation ops have one result");
  HostTensor& out = outputs[0];
  switch (op) {
    case Op::constant:
      return run_constant(attrs, out);
    case Op::fill:
      return run_fill(attrs, out);
    case Op::range:
      return run_range(attrs, out);
    case Op::linspace:
      return run_linspace(attrs, out);
    case Op::random_uniform:
    case Op::random_normal:
      return run_random(op, attrs, out);
    case Op::random_uniform_at:
      return run_random(op, attrs, out, static_cast<uint64_t>(inputs[0].data<int64_t>()[0]));
    case Op::one_hot:
      return run_one_hot(inputs[0], attrs, out);
    default:
      break;
  }
  KILN_CHECK(false, "not a creation op");
}

}  // namespace kiln::ir
