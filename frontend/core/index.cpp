// Tensor::index: Python/NumPy index expressions normalized to one IR slice (absolute begin, end,
// strides per dim) plus a reshape that drops integer-indexed dims and inserts new axes.
#include <fmt/format.h>

#include <algorithm>

#include "kiln/frontend/core/apply.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/ops.h"
#include "kiln/frontend/core/tensor.h"

namespace kiln {

namespace {

constexpr std::string_view kOp = "index";

// One dim of the IR slice.
struct DimSlice {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t stride = 1;
  int64_t length = 0;
};

// Python's slice.indices(size) followed by the length of the range.
DimSlice normalize_slice(const Slice& s, int64_t size, const Tensor& t, const Loc& loc) {
  int64_t step = s.step.value_or(1);
  if (step == 0) detail::raise<ValueError>(kOp, {t}, "slice step cannot be zero", loc);
  // Negative bounds count from the back; then clamp to the valid range for this direction.
  auto bound = [&](std::optional<int64_t> v, int64_t fallback, int64_t lo, int64_t hi) {
    if (!v) return fallback;
    int64_t x = *v < 0 ? *v + size : *v;
    return std::clamp(x, lo, hi);
  };
  // A step longer than the dim selects at most one element either way; clamping it keeps the
  // arithmetic below (and in the op) clear of overflow.
  step = std::clamp(step, -std::max<int64_t>(size, 1), std::max<int64_t>(size, 1));
  DimSlice d;
  d.stride = step;
  if (step > 0) {
    d.begin = bound(s.start, 0, 0, size);
    d.end = bound(s.stop, size, 0, size);
    d.length = d.end > d.begin ? (d.end - d.begin - 1) / step + 1 : 0;
  } else {
    d.begin = bound(s.start, size - 1, -1, size - 1);
    d.end = bound(s.stop, -1, -1, size - 1);
    d.length = d.begin > d.end ? (d.begin - d.end - 1) / -step + 1 : 0;
  }
  // An empty selection has no indices to check; give the op a canonical in-range form.
  if (d.length == 0) d = DimSlice{0, 0, 1, 0};
  return d;
}

DimSlice integer_index(int64_t index, int64_t dim, int64_t size, const Tensor& t, const Loc& loc) {
  int64_t i = index < 0 ? index + size : index;
  if (i < 0 || i >= size) {
    detail::raise<ShapeError>(
        kOp, {t},
        fmt::format("index {} is out of range for dimension {} of size {}", index, dim, size), loc);
  }
  return DimSlice{i, i + 1, 1, 1};
}

// Replaces the (at most one) ellipsis by full slices and pads the end with full slices, so that
// the items consume exactly `rank` dims.
std::vector<IndexItem> expand_items(std::span<const IndexItem> items, const Tensor& t,
                                    const Loc& loc) {
  int64_t consuming = 0;
  int ellipses = 0;
  for (const IndexItem& item : items) {
    if (std::holds_alternative<Ellipsis>(item.value()))
      ++ellipses;
    else if (!std::holds_alternative<NewAxis>(item.value()))
      ++consuming;
  }
  if (ellipses > 1) detail::raise<ValueError>(kOp, {t}, "an index can have only one ellipsis", loc);
  if (consuming > t.rank()) {
    detail::raise<ShapeError>(
        kOp, {t}, fmt::format("too many indices ({}) for a tensor of rank {}", consuming, t.rank()),
        loc);
  }
  std::vector<IndexItem> out;
  for (const IndexItem& item : items) {
    if (std::holds_alternative<Ellipsis>(item.value())) {
      for (int64_t i = consuming; i < t.rank(); ++i)
        out.emplace_back(Slice());
    } else {
      out.push_back(item);
    }
  }
  if (ellipses == 0) {
    for (int64_t i = consuming; i < t.rank(); ++i)
      out.emplace_back(Slice());
  }
  return out;
}

Tensor index_impl(const Tensor& t, std::span<const IndexItem> items, const Loc& loc) {
  if (!t.defined()) detail::raise<ValueError>(kOp, {}, "the Tensor is undefined", loc);
  std::vector<int64_t> begin, end, strides, sliced_shape, out_shape;
  int64_t dim = 0;
  for (const IndexItem& item : expand_items(items, t, loc)) {
    if (std::holds_alternative<NewAxis>(item.value())) {
      out_shape.push_back(1);
      continue;
    }
    int64_t size = t.shape()[dim];
    DimSlice d;
    if (const auto* i = std::get_if<int64_t>(&item.value())) {
      d = integer_index(*i, dim, size, t, loc);
    } else {
      d = normalize_slice(std::get<Slice>(item.value()), size, t, loc);
      out_shape.push_back(d.length);
    }
    begin.push_back(d.begin);
    end.push_back(d.end);
    strides.push_back(d.stride);
    sliced_shape.push_back(d.length);
    ++dim;
  }

  Tensor result = t;
  bool whole = sliced_shape == t.shape().dims() &&
               std::all_of(strides.begin(), strides.end(), [](int64_t s) { return s == 1; });
  if (!whole) {
    ir::Attrs attrs;
    attrs.set_ints("begin", std::move(begin));
    attrs.set_ints("end", std::move(end));
    attrs.set_ints("strides", std::move(strides));
    result = detail::apply1(ir::Op::slice, {t}, attrs, loc);
  }
  if (result.shape().dims() != out_shape) result = reshape(result, Shape(out_shape), loc);
  return result;
}

}  // namespace

Tensor Tensor::index(std::initializer_list<IndexItem> items, std::source_location loc) const {
  return index_impl(*this, std::span<const IndexItem>(items.begin(), items.size()), loc);
}

Tensor Tensor::index(const std::vector<IndexItem>& items, std::source_location loc) const {
  return index_impl(*this, items, loc);
}

}  // namespace kiln
