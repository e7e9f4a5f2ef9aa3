// Interpreter kernels for the shape ops. They move bytes (element size from dtype_size), so one
// kernel serves every dtype; only pad's fill value needs the C++ element type.
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "kiln/ir/error.h"
#include "kiln/ir/interp/util.h"
#include "kiln/ir/interpreter.h"
#include "kiln/ir/ops/families.h"

namespace kiln::ir {

namespace {

using interp::for_each_index;
using interp::offset_of;

// Where elements live: a base pointer plus an element offset and per-dimension element strides
// (negative strides walk backwards, as in a reversed slice).
struct ConstView {
  const std::byte* base;
  int64_t offset;
  std::vector<int64_t> strides;
};
struct View {
  std::byte* base;
  int64_t offset;
  std::vector<int64_t> strides;
};

ConstView whole(const HostTensor& t) {
  return {t.raw(), 0, t.shape().strides()};
}
View whole(HostTensor& t) {
  return {t.raw(), 0, t.shape().strides()};
}

// For every multi-index of `shape`: dst[index] = src[index], one element of `elem` bytes each.
void copy_elements(const Shape& shape, size_t elem, const ConstView& src, const View& dst) {
  for_each_index(shape, [&](std::span<const int64_t> index) {
    int64_t from = src.offset + offset_of(index, src.strides);
    int64_t to = dst.offset + offset_of(index, dst.strides);
    std::memcpy(dst.base + static_cast<size_t>(to) * elem,
                src.base + static_cast<size_t>(from) * elem, elem);
  });
}

size_t elem_size(const HostTensor& t) {
  return dtype_size(t.dtype());
}

// reshape, squeeze and expand_dims keep the row-major order of the elements.
void copy_all_bytes(const HostTensor& in, HostTensor& out) {
  KILN_CHECK(in.nbytes() == out.nbytes(), "element count changed");
  if (in.nbytes() > 0) std::memcpy(out.raw(), in.raw(), in.nbytes());
}

void run_transpose(const HostTensor& in, const Attrs& attrs, HostTensor& out) {
  // Output dimension i walks input dimension perm[i].
  std::vector<int64_t> in_strides = in.shape().strides();
  std::vector<int64_t> strides;
  for (int64_t p : attrs.get_ints("perm"))
    strides.push_back(in_strides[static_cast<size_t>(p)]);
  copy_elements(out.shape(), elem_size(in), {in.raw(), 0, strides}, whole(out));
}

void run_broadcast_to(const HostTensor& in, HostTensor& out) {
  copy_elements(out.shape(), elem_size(in),
                {in.raw(), 0, interp::broadcast_strides(in.shape(), out.shape())}, whole(out));
}

void run_concat(std::span<const HostTensor> inputs, const Attrs& attrs, HostTensor& out) {
  int64_t axis = normalize_axis(attrs.get_int("axis"), out.shape().rank());
  View dst = whole(out);
  int64_t start = 0;
  for (const HostTensor& in : inputs) {
    dst.offset = start * dst.strides[static_cast<size_t>(axis)];
    copy_elements(in.shape(), elem_size(in), whole(in), dst);
    start += in.shape()[axis];
  }
}

void run_split(const HostTensor& in, const Attrs& attrs, std::span<HostTensor> outputs) {
  int64_t axis = normalize_axis(attrs.get_int("axis"), in.shape().rank());
  ConstView src = whole(in);
  int64_t start = 0;
  for (HostTensor& out : outputs) {
    src.offset = start * src.strides[static_cast<size_t>(axis)];
    copy_elements(out.shape(), elem_size(in), src, whole(out));
    start += out.shape()[axis];
  }
}

void run_slice(const HostTensor& in, const Attrs& attrs, HostTensor& out) {
  // An empty result reads nothing, and its begin may be any value (even one whose offset would
  // overflow), so stop before computing offsets.
  if (out.num_elements() == 0) return;
  const auto& begin = attrs.get_ints("begin");
  const auto& steps = attrs.get_ints("strides");
  std::vector<int64_t> in_strides = in.shape().strides();
  ConstView src{in.raw(), 0, {}};
  for (size_t d = 0; d < begin.size(); ++d) {
    src.offset += begin[d] * in_strides[d];
    src.strides.push_back(steps[d] * in_strides[d]);
  }
  copy_elements(out.shape(), elem_size(in), src, whole(out));
}

// Reads indices of either integer dtype as int64.
int64_t index_at(const HostTensor& indices, int64_t i) {
  if (indices.dtype() == DType::i32) return indices.data<int32_t>()[i];
  return indices.data<int64_t>()[i];
}

void run_gather(const HostTensor& params, const HostTensor& indices, const Attrs& attrs,
                HostTensor& out) {
  // View params as [outer, dim, inner] and the result as [outer, count, inner]; each index
  // copies one contiguous block of `inner` elements.
  int64_t axis = normalize_axis(attrs.get_int("axis"), params.shape().rank());
  int64_t dim = params.shape()[axis];
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d)
    outer *= params.shape()[d];
  int64_t inner = 1;
  for (int64_t d = axis + 1; d < params.shape().rank(); ++d)
    inner *= params.shape()[d];
  int64_t count = indices.num_elements();
  // Every index is checked, even when the result is empty, so a bad index never goes unnoticed.
  for (int64_t j = 0; j < count; ++j) {
    int64_t idx = index_at(indices, j);
    if (idx < 0 || idx >= dim)
      throw IndexError(bad_index_message(Op::gather, attrs, params.shape(), idx, j));
  }
  size_t block = static_cast<size_t>(inner) * elem_size(params);
  if (block == 0) return;
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t j = 0; j < count; ++j) {
      int64_t from = (o * dim + index_at(indices, j)) * inner;
      int64_t to = (o * count + j) * inner;
      std::memcpy(out.raw() + static_cast<size_t>(to) * elem_size(params),
                  params.raw() + static_cast<size_t>(from) * elem_size(params), block);
    }
  }
}

// Float to integer as `cast` does it: truncate toward zero, saturate, NaN becomes 0.
template <class T>
T saturate_to_int(double v) {
  if (std::isnan(v)) return 0;
  if (v >= static_cast<double>(std::numeric_limits<T>::max())) {
    return std::numeric_limits<T>::max();
  }
  if (v <= static_cast<double>(std::numeric_limits<T>::min())) {
    return std::numeric_limits<T>::min();
  }
  return static_cast<T>(v);
}

// The `value` attribute (float or int, default 0) converted to T as `cast` would.
template <class T>
T pad_value(const Attrs& attrs) {
  const AttrValue* v = attrs.find("value");
  if (v == nullptr) return T{};
  if (const auto* i = std::get_if<int64_t>(v)) {
    if constexpr (std::is_same_v<T, bool>)
      return *i != 0;
    else
      return static_cast<T>(*i);
  }
  double f = std::get<double>(*v);
  if constexpr (std::is_same_v<T, bool>) {
    return f != 0;
  } else if constexpr (std::is_same_v<T, float>) {
    // Out-of-range doubles become ±inf rather than relying on an undefined conversion.
    if (std::isfinite(f) && std::abs(f) > std::numeric_limits<float>::max()) {
      return f > 0 ? std::numeric_limits<float>::infinity()
                   : -std::numeric_limits<float>::infinity();
    }
    return static_cast<float>(f);
  } else if constexpr (std::is_same_v<T, double>) {
    return f;
  } else {
    return saturate_to_int<T>(f);
  }
}

void run_pad(const HostTensor& in, const Attrs& attrs, HostTensor& out) {
  size_t elem = elem_size(out);
  std::vector<std::byte> value(elem);
  visit_dtype(out.dtype(), [&](auto zero) {
    auto v = pad_value<decltype(zero)>(attrs);
    std::memcpy(value.data(), &v, elem);
  });
  for (int64_t i = 0; i < out.num_elements(); ++i) {
    std::memcpy(out.raw() + static_cast<size_t>(i) * elem, value.data(), elem);
  }
  // The operand lands at offset `before` in every dimension.
  const auto& paddings = attrs.get_ints("paddings");
  View dst = whole(out);
  for (size_t d = 0; d < dst.strides.size(); ++d)
    dst.offset += paddings[2 * d] * dst.strides[d];
  copy_elements(in.shape(), elem, whole(in), dst);
}

void run_tile(const HostTensor& in, HostTensor& out) {
  // Output index i reads input index i mod dim, dimension by dimension.
  size_t elem = elem_size(in);
  std::vector<int64_t> in_strides = in.shape().strides();
  int64_t to = 0;
  for_each_index(out.shape(), [&](std::span<const int64_t> index) {
    int64_t from = 0;
    for (size_t d = 0; d < index.size(); ++d) {
      from += (index[d] % in.shape()[static_cast<int64_t>(d)]) * in_strides[d];
    }
    std::memcpy(out.raw() + static_cast<size_t>(to) * elem,
                in.raw() + static_cast<size_t>(from) * elem, elem);
    ++to;
  });
}

// Every element is checked, so the first bad one is reported, as compiled code reports it.
void run_check_index(const HostTensor& in, const Attrs& attrs, HostTensor& out) {
  const int64_t limit = attrs.get_int("limit");
  for (int64_t i = 0; i < in.num_elements(); ++i) {
    int64_t v = index_at(in, i);
    if (v < 0 || v >= limit)
      throw IndexError(bad_index_message(Op::check_index, attrs, in.shape(), v, i));
  }
  copy_all_bytes(in, out);
}

}  // namespace

std::string bad_index_message(Op op, const Attrs& attrs, const Shape& operand, int64_t value,
                              int64_t position) {
  if (op == Op::gather) {
    const int64_t axis = normalize_axis(attrs.get_int("axis"), operand.rank());
    const int64_t dim = operand[axis];
    std::string valid = dim == 0 ? "no index is valid" : fmt::format("valid: 0 to {}", dim - 1);
    return fmt::format(
        "index {} (element {} of indices) is out of range for axis {} of size {} ({})", value,
        position, axis, dim, valid);
  }
  KILN_CHECK(op == Op::check_index, "bad_index_message for an op that checks no index");
  const int64_t limit = attrs.get_int("limit");
  return fmt::format("{} {} at position {} is out of range [0, {}){}",
                     attrs.has("what") ? attrs.get_string("what") : std::string("index"), value,
                     position, limit, limit == 0 ? " (no value is valid)" : "");
}

void interpret_shape(Op op, std::span<const HostTensor> inputs, const Attrs& attrs,
                     std::span<HostTensor> outputs) {
  // The kernels trust validated attributes; re-running the rule makes that hold even when a
  // caller skipped shape inference, and costs nothing next to the copies.
  std::vector<TensorType> types;
  for (const HostTensor& t : inputs)
    types.push_back(t.type());
  std::vector<TensorType> want = infer_shape(op, types, attrs);
  KILN_CHECK(want.size() == outputs.size(), "wrong number of outputs");
  for (size_t i = 0; i < want.size(); ++i) {
    KILN_CHECK(want[i] == outputs[i].type(), "output type differs from the inferred type");
  }

  switch (op) {
    case Op::reshape:
    case Op::squeeze:
    case Op::expand_dims:
      copy_all_bytes(inputs[0], outputs[0]);
      return;
    case Op::transpose:
      run_transpose(inputs[0], attrs, outputs[0]);
      return;
    case Op::broadcast_to:
      run_broadcast_to(inputs[0], outputs[0]);
      return;
    case Op::concat:
      run_concat(inputs, attrs, outputs[0]);
      return;
    case Op::split:
      run_split(inputs[0], attrs, outputs);
      return;
    case Op::slice:
      run_slice(inputs[0], attrs, outputs[0]);
      return;
    case Op::gather:
      run_gather(inputs[0], inputs[1], attrs, outputs[0]);
      return;
    case Op::check_index:
      run_check_index(inputs[0], attrs, outputs[0]);
      return;
    case Op::pad:
      run_pad(inputs[0], attrs, outputs[0]);
      return;
    case Op::tile:
      run_tile(inputs[0], outputs[0]);
      return;
    default:
      break;
  }
  KILN_CHECK(false, "interpret_shape called for an op of another family");
}

}  // namespace kiln::ir
