// Shape inference and verifier rules for the shape ops.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <limits>
#include <set>

#include "kiln/ir/error.h"
#include "kiln/ir/ops/families.h"

namespace kiln::ir {

namespace {

constexpr int64_t kMaxInt64 = std::numeric_limits<int64_t>::max();

std::string list_to_string(std::span<const int64_t> values) {
  return fmt::format("[{}]", fmt::join(values, ", "));
}

// a * b and a + b for non-negative sizes; ShapeError instead of signed overflow.
int64_t checked_mul(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) {
    throw ShapeError(fmt::format("size {} x {} overflows a 64-bit integer", a, b));
  }
  return r;
}
int64_t checked_add(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) {
    throw ShapeError(fmt::format("size {} + {} overflows a 64-bit integer", a, b));
  }
  return r;
}

// The result type, after checking that its byte size fits in an int64 (so that element counts
// and byte offsets computed later cannot overflow).
TensorType result_type(DType dtype, std::vector<int64_t> dims) {
  for (int64_t d : dims)
    KILN_CHECK(d >= 0, "negative result dimension");
  TensorType type{dtype, Shape(std::move(dims))};
  if (!type.checked_nbytes()) {
    throw ShapeError(fmt::format("result shape {} is too large", type.shape.to_string()));
  }
  return type;
}

// An int-list attribute that must hold exactly `want` entries.
const std::vector<int64_t>& ints_of_length(const Attrs& attrs, std::string_view name, int64_t want,
                                           std::string_view what) {
  const std::vector<int64_t>& v = attrs.get_ints(name);
  if (static_cast<int64_t>(v.size()) != want) {
    throw ValueError(fmt::format("'{}' must have {} ({}), got {} entries {}", name, want, what,
                                 v.size(), list_to_string(v)));
  }
  return v;
}

void require_non_negative(std::span<const int64_t> values, std::string_view name) {
  for (int64_t v : values) {
    if (v < 0) {
      throw ValueError(
          fmt::format("'{}' entries must be >= 0, got {}", name, list_to_string(values)));
    }
  }
}

std::vector<TensorType> infer_reshape(const TensorType& in, const Attrs& attrs) {
  const std::vector<int64_t>& want = attrs.get_ints("shape");
  int64_t unknown = -1;
  int64_t known = 1;
  for (size_t i = 0; i < want.size(); ++i) {
    if (want[i] == -1) {
      if (unknown >= 0) {
        throw ValueError(fmt::format("'shape' {} may hold at most one -1", list_to_string(want)));
      }
      unknown = static_cast<int64_t>(i);
    } else if (want[i] < 0) {
      throw ValueError(
          fmt::format("'shape' {} has a negative dimension other than -1", list_to_string(want)));
    } else {
      known = checked_mul(known, want[i]);
    }
  }
  int64_t count = in.shape.num_elements();
  auto impossible = [&](std::string_view why) {
    return ShapeError(
        fmt::format("cannot reshape a tensor of shape {} ({} elements) into shape {}{}",
                    in.shape.to_string(), count, Shape(want).to_string(), why));
  };
  std::vector<int64_t> dims = want;
  if (unknown >= 0) {
    if (known == 0) throw impossible(": the -1 dimension is ambiguous when other dims are 0");
    if (count % known != 0) throw impossible("");
    dims[static_cast<size_t>(unknown)] = count / known;
  } else if (known != count) {
    throw impossible("");
  }
  return {result_type(in.dtype, std::move(dims))};
}

std::vector<TensorType> infer_transpose(const TensorType& in, const Attrs& attrs) {
  int64_t rank = in.shape.rank();
  const std::vector<int64_t>& perm = attrs.get_ints("perm");
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  bool ok = static_cast<int64_t>(perm.size()) == rank;
  for (size_t i = 0; ok && i < perm.size(); ++i) {
    ok = perm[i] >= 0 && perm[i] < rank && !seen[static_cast<size_t>(perm[i])];
    if (ok) seen[static_cast<size_t>(perm[i])] = true;
  }
  if (!ok) {
    throw ValueError(
        fmt::format("'perm' {} is not a permutation of 0..{} (the operand's rank is {})",
                    list_to_string(perm), rank - 1, rank));
  }
  std::vector<int64_t> dims;
  for (int64_t p : perm)
    dims.push_back(in.shape[p]);
  return {result_type(in.dtype, std::move(dims))};
}

std::vector<TensorType> infer_squeeze(const TensorType& in, const Attrs& attrs) {
  int64_t rank = in.shape.rank();
  std::vector<bool> drop(static_cast<size_t>(rank), false);
  for (int64_t axis : attrs.get_ints("axes")) {
    int64_t a = normalize_axis(axis, rank);
    if (drop[static_cast<size_t>(a)]) {
      throw ValueError(
          fmt::format("'axes' {} names axis {} twice", list_to_string(attrs.get_ints("axes")), a));
    }
    if (in.shape[a] != 1) {
      throw ShapeError(fmt::format("cannot squeeze axis {} of shape {}: its size is {}, not 1",
                                   axis, in.shape.to_string(), in.shape[a]));
    }
    drop[static_cast<size_t>(a)] = true;
  }
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < rank; ++i) {
    if (!drop[static_cast<size_t>(i)]) dims.push_back(in.shape[i]);
  }
  return {result_type(in.dtype, std::move(dims))};
}

std::vector<TensorType> infer_expand_dims(const TensorType& in, const Attrs& attrs) {
  // The new axis indexes the result, which has one more dimension than the operand.
  int64_t axis = normalize_axis(attrs.get_int("axis"), in.shape.rank() + 1);
  std::vector<int64_t> dims = in.shape.dims();
  dims.insert(dims.begin() + axis, 1);
  return {result_type(in.dtype, std::move(dims))};
}

std::vector<TensorType> infer_broadcast_to(const TensorType& in, const Attrs& attrs) {
  const std::vector<int64_t>& target = attrs.get_ints("shape");
  require_non_negative(target, "shape");
  int64_t lead = static_cast<int64_t>(target.size()) - in.shape.rank();
  bool ok = lead >= 0;
  for (int64_t i = 0; ok && i < in.shape.rank(); ++i) {
    int64_t d = in.shape[i];
    ok = d == 1 || d == target[static_cast<size_t>(i + lead)];
  }
  if (!ok) {
    throw ShapeError(fmt::format("cannot broadcast shape {} to shape {}", in.shape.to_string(),
                                 Shape(target).to_string()));
  }
  return {result_type(in.dtype, target)};
}

std::vector<TensorType> infer_concat(std::span<const TensorType> inputs, const Attrs& attrs) {
  const TensorType& first = inputs[0];
  int64_t axis = normalize_axis(attrs.get_int("axis"), first.shape.rank());
  std::vector<int64_t> dims = first.shape.dims();
  dims[static_cast<size_t>(axis)] = 0;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const TensorType& t = inputs[k];
    if (t.dtype != first.dtype) {
      throw TypeError(fmt::format("operand {} has dtype {}, but operand 0 has {}", k,
                                  dtype_name(t.dtype), dtype_name(first.dtype)));
    }
    if (t.shape.rank() != first.shape.rank()) {
      throw ShapeError(fmt::format("operand {} has rank {}, but operand 0 has rank {}", k,
                                   t.shape.rank(), first.shape.rank()));
    }
    for (int64_t d = 0; d < first.shape.rank(); ++d) {
      if (d != axis && t.shape[d] != first.shape[d]) {
        throw ShapeError(fmt::format(
            "operand {} has shape {}, operand 0 has {}: they differ in dimension {}, which is not "
            "the concat axis {}",
            k, t.shape.to_string(), first.shape.to_string(), d, axis));
      }
    }
    dims[static_cast<size_t>(axis)] = checked_add(dims[static_cast<size_t>(axis)], t.shape[axis]);
  }
  return {result_type(first.dtype, std::move(dims))};
}

std::vector<TensorType> infer_split(const TensorType& in, const Attrs& attrs) {
  int64_t axis = normalize_axis(attrs.get_int("axis"), in.shape.rank());
  const std::vector<int64_t>& sizes = attrs.get_ints("sizes");
  if (sizes.empty()) throw ValueError("'sizes' must hold at least one size");
  require_non_negative(sizes, "sizes");
  int64_t total = 0;
  for (int64_t s : sizes)
    total = checked_add(total, s);
  if (total != in.shape[axis]) {
    throw ValueError(fmt::format("'sizes' {} add up to {}, but axis {} of shape {} has size {}",
                                 list_to_string(sizes), total, axis, in.shape.to_string(),
                                 in.shape[axis]));
  }
  std::vector<TensorType> out;
  for (int64_t s : sizes) {
    std::vector<int64_t> dims = in.shape.dims();
    dims[static_cast<size_t>(axis)] = s;
    out.push_back(result_type(in.dtype, std::move(dims)));
  }
  return out;
}

// Length of Python's range(begin, end, stride), in 128 bits so that no input overflows.
int64_t range_length(int64_t begin, int64_t end, int64_t stride) {
  __int128 span =
      stride > 0 ? static_cast<__int128>(end) - begin : static_cast<__int128>(begin) - end;
  __int128 step = stride > 0 ? stride : -static_cast<__int128>(stride);
  if (span <= 0) return 0;
  __int128 n = (span + step - 1) / step;
  // Longer than any dimension anyway; the caller reports it out of range.
  return n > kMaxInt64 ? kMaxInt64 : static_cast<int64_t>(n);
}

std::vector<TensorType> infer_slice(const TensorType& in, const Attrs& attrs) {
  int64_t rank = in.shape.rank();
  const auto& begin = ints_of_length(attrs, "begin", rank, "one per dimension");
  const auto& end = ints_of_length(attrs, "end", rank, "one per dimension");
  const auto& strides = ints_of_length(attrs, "strides", rank, "one per dimension");
  std::vector<int64_t> dims;
  for (size_t d = 0; d < begin.size(); ++d) {
    if (strides[d] == 0) {
      throw ValueError(
          fmt::format("'strides' {} has a 0 in dimension {}", list_to_string(strides), d));
    }
    int64_t n = range_length(begin[d], end[d], strides[d]);
    if (n > 0) {
      int64_t dim = in.shape[static_cast<int64_t>(d)];
      __int128 last = static_cast<__int128>(begin[d]) + static_cast<__int128>(n - 1) * strides[d];
      if (begin[d] < 0 || begin[d] >= dim || last < 0 || last >= dim) {
        throw ShapeError(fmt::format(
            "dimension {} of size {}: range({}, {}, {}) selects indices outside [0, {})", d, dim,
            begin[d], end[d], strides[d], dim));
      }
    }
    dims.push_back(n);
  }
  return {result_type(in.dtype, std::move(dims))};
}

std::vector<TensorType> infer_gather(std::span<const TensorType> inputs, const Attrs& attrs) {
  const TensorType& params = inputs[0];
  const TensorType& indices = inputs[1];
  if (indices.dtype != DType::i32 && indices.dtype != DType::i64) {
    throw TypeError(fmt::format("indices must be i32 or i64, got {}", dtype_name(indices.dtype)));
  }
  int64_t axis = normalize_axis(attrs.get_int("axis"), params.shape.rank());
  const auto& p = params.shape.dims();
  std::vector<int64_t> dims(p.begin(), p.begin() + axis);
  dims.insert(dims.end(), indices.shape.begin(), indices.shape.end());
  dims.insert(dims.end(), p.begin() + axis + 1, p.end());
  return {result_type(params.dtype, std::move(dims))};
}

std::vector<TensorType> infer_check_index(const TensorType& in, const Attrs& attrs) {
  if (in.dtype != DType::i32 && in.dtype != DType::i64) {
    throw TypeError(fmt::format("the operand must be i32 or i64, got {}", dtype_name(in.dtype)));
  }
  if (attrs.get_int("limit") < 0) {
    throw ValueError(fmt::format("'limit' must be >= 0, got {}", attrs.get_int("limit")));
  }
  if (attrs.has("what")) attrs.get_string("what");  // a string, when given
  return {in};
}

std::vector<TensorType> infer_pad(const TensorType& in, const Attrs& attrs) {
  int64_t rank = in.shape.rank();
  const auto& paddings =
      ints_of_length(attrs, "paddings", 2 * rank, "two per dimension: before, after");
  require_non_negative(paddings, "paddings");
  if (const AttrValue* v = attrs.find("value")) {
    if (!std::holds_alternative<double>(*v) && !std::holds_alternative<int64_t>(*v)) {
      throw ValueError(
          fmt::format("'value' must be a float or an int, got {}", attr_to_string(*v)));
    }
  }
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < rank; ++d) {
    int64_t grown = checked_add(in.shape[d], paddings[static_cast<size_t>(2 * d)]);
    dims.push_back(checked_add(grown, paddings[static_cast<size_t>(2 * d + 1)]));
  }
  return {result_type(in.dtype, std::move(dims))};
}

std::vector<TensorType> infer_tile(const TensorType& in, const Attrs& attrs) {
  int64_t rank = in.shape.rank();
  const auto& multiples = ints_of_length(attrs, "multiples", rank, "one per dimension");
  require_non_negative(multiples, "multiples");
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < rank; ++d) {
    dims.push_back(checked_mul(in.shape[d], multiples[static_cast<size_t>(d)]));
  }
  return {result_type(in.dtype, std::move(dims))};
}

}  // namespace

std::vector<TensorType> infer_shape(Op op, std::span<const TensorType> inputs, const Attrs& attrs) {
  switch (op) {
    case Op::reshape:
      return infer_reshape(inputs[0], attrs);
    case Op::transpose:
      return infer_transpose(inputs[0], attrs);
    case Op::squeeze:
      return infer_squeeze(inputs[0], attrs);
    case Op::expand_dims:
      return infer_expand_dims(inputs[0], attrs);
    case Op::broadcast_to:
      return infer_broadcast_to(inputs[0], attrs);
    case Op::concat:
      return infer_concat(inputs, attrs);
    case Op::split:
      return infer_split(inputs[0], attrs);
    case Op::slice:
      return infer_slice(inputs[0], attrs);
    case Op::gather:
      return infer_gather(inputs, attrs);
    case Op::check_index:
      return infer_check_index(inputs[0], attrs);
    case Op::pad:
      return infer_pad(inputs[0], attrs);
    case Op::tile:
      return infer_tile(inputs[0], attrs);
    default:
      break;
  }
  KILN_CHECK(false, "infer_shape called for an op of another family");
}

}  // namespace kiln::ir
