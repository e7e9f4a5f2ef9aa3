// Shape and data-movement ops, plus stack and split's count/-1 forms.
#include <fmt/format.h>

#include <algorithm>
#include <numeric>

#include "kiln/frontend/core/apply.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/ops.h"

namespace kiln {

using detail::apply1;

Tensor reshape(const Tensor& x, const Shape& shape, Loc loc) {
  ir::Attrs attrs;
  attrs.set_ints("shape", shape.dims());
  return apply1(ir::Op::reshape, {x}, attrs, loc);
}

Tensor transpose(const Tensor& x, Loc loc) {
  std::vector<int64_t> perm(static_cast<size_t>(x.defined() ? x.rank() : 0));
  std::iota(perm.rbegin(), perm.rend(), 0);
  return transpose(x, std::move(perm), loc);
}

Tensor transpose(const Tensor& x, std::vector<int64_t> perm, Loc loc) {
  ir::Attrs attrs;
  attrs.set_ints("perm", std::move(perm));
  return apply1(ir::Op::transpose, {x}, attrs, loc);
}

Tensor squeeze(const Tensor& x, Axes axes, Loc loc) {
  std::vector<int64_t> list;
  if (axes.all() && x.defined()) {
    for (int64_t i = 0; i < x.rank(); ++i) {
      if (x.shape()[i] == 1) list.push_back(i);
    }
  } else {
    list = axes.resolve(0);
  }
  ir::Attrs attrs;
  attrs.set_ints("axes", std::move(list));
  return apply1(ir::Op::squeeze, {x}, attrs, loc);
}

Tensor expand_dims(const Tensor& x, int64_t axis, Loc loc) {
  ir::Attrs attrs;
  attrs.set_int("axis", axis);
  return apply1(ir::Op::expand_dims, {x}, attrs, loc);
}

Tensor broadcast_to(const Tensor& x, const Shape& shape, Loc loc) {
  ir::Attrs attrs;
  attrs.set_ints("shape", shape.dims());
  return apply1(ir::Op::broadcast_to, {x}, attrs, loc);
}

Tensor concat(const std::vector<Tensor>& xs, int64_t axis, Loc loc) {
  ir::Attrs attrs;
  attrs.set_int("axis", axis);
  return apply1(ir::Op::concat, xs, attrs, loc);
}

Tensor stack(const std::vector<Tensor>& xs, int64_t axis, Loc loc) {
  if (xs.empty()) detail::raise<ValueError>("stack", {}, "needs at least one tensor", loc);
  // Every operand must have the first one's shape; concat alone would accept [2,3] next to
  // [2,4] after expand_dims on the last axis.
  for (const Tensor& x : xs) {
    if (x.defined() && xs[0].defined() && x.shape() != xs[0].shape()) {
      detail::raise<ShapeError>("stack", xs,
                                fmt::format("all tensors need the same shape; got {} and {}",
                                            xs[0].shape().to_string(), x.shape().to_string()),
                                loc);
    }
  }
  std::vector<Tensor> expanded;
  expanded.reserve(xs.size());
  for (const Tensor& x : xs)
    expanded.push_back(expand_dims(x, axis, loc));
  int64_t out_axis = axis;
  if (axis < 0) out_axis = axis + expanded[0].rank();
  return concat(expanded, out_axis, loc);
}

namespace {

std::vector<Tensor> split_sizes(const Tensor& x, std::vector<int64_t> sizes, int64_t axis,
                                const Loc& loc) {
  ir::Attrs attrs;
  attrs.set_int("axis", axis);
  attrs.set_ints("sizes", std::move(sizes));
  return detail::apply(ir::Op::split, {&x, 1}, attrs, loc);
}

// The size of dim `axis` of x, with errors named after split.
int64_t split_dim(const Tensor& x, int64_t axis, const Loc& loc) {
  if (!x.defined()) detail::raise<ValueError>("split", {}, "the Tensor is undefined", loc);
  try {
    return x.shape().dim(axis);
  } catch (Error& e) {
    detail::decorate(e, "split", {x}, loc);
    throw;
  }
}

}  // namespace

std::vector<Tensor> split(const Tensor& x, int64_t count, int64_t axis, Loc loc) {
  int64_t dim = split_dim(x, axis, loc);
  if (count <= 0 || dim % count != 0) {
    detail::raise<ValueError>(
        "split", {x},
        fmt::format("cannot split dimension {} of size {} into {} equal pieces", axis, dim, count),
        loc);
  }
  return split_sizes(x, std::vector<int64_t>(static_cast<size_t>(count), dim / count), axis, loc);
}

std::vector<Tensor> split(const Tensor& x, std::vector<int64_t> sizes, int64_t axis, Loc loc) {
  auto unknown = std::find(sizes.begin(), sizes.end(), int64_t{-1});
  if (unknown != sizes.end() && std::find(unknown + 1, sizes.end(), int64_t{-1}) == sizes.end()) {
    // One -1 takes what the others leave (as tf.split); the op checks the rest.
    int64_t dim = split_dim(x, axis, loc);
    int64_t known = 0;
    for (int64_t s : sizes)
      known += s == -1 ? 0 : s;
    *unknown = dim - known;
    if (*unknown < 0) {
      detail::raise<ValueError>(
          "split", {x},
          fmt::format("sizes add up to {}, more than dimension {} of size {}", known, axis, dim),
          loc);
    }
  }
  return split_sizes(x, std::move(sizes), axis, loc);
}

Tensor gather(const Tensor& params, const Tensor& indices, int64_t axis, Loc loc) {
  ir::Attrs attrs;
  attrs.set_int("axis", axis);
  return apply1(ir::Op::gather, {params, indices}, attrs, loc);
}

Tensor pad(const Tensor& x, const std::vector<std::pair<int64_t, int64_t>>& paddings, Scalar value,
           Loc loc) {
  std::vector<int64_t> flat;
  for (const auto& [before, after] : paddings) {
    flat.push_back(before);
    flat.push_back(after);
  }
  ir::Attrs attrs;
  attrs.set_ints("paddings", std::move(flat));
  // The pad value is written in x's dtype: float for floating tensors, int otherwise.
  if (x.defined() && !ir::is_floating(x.dtype())) {
    ir::HostTensor host;
    try {
      host = value.to_host(DType::i64);
      if (x.dtype() != DType::i64) value.to_host(x.dtype());
    } catch (Error& e) {
      detail::decorate(e, "pad", {x}, loc);
      throw;
    }
    attrs.set_int("value", host.data<int64_t>()[0]);
  } else {
    attrs.set_float("value", value.as_double());
  }
  return apply1(ir::Op::pad, {x}, attrs, loc);
}

Tensor tile(const Tensor& x, std::vector<int64_t> multiples, Loc loc) {
  ir::Attrs attrs;
  attrs.set_ints("multiples", std::move(multiples));
  return apply1(ir::Op::tile, {x}, attrs, loc);
}

}  // namespace kiln
