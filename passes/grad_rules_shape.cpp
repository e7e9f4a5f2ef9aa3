// Gradient rules of the shape and data-movement ops: each moves the gradient back to where the
// forward op took its elements from (slices become pads, concat becomes slices, gather becomes
// a scatter-add, broadcasts become sums).
#include <numeric>

#include "kiln/passes/grad_rules.h"

namespace kiln::passes::grad {

namespace {

using ir::Op;

std::vector<V> back_to_shape(const Context& c) {
  return {reshape(c.dy(), c.x().shape())};
}

std::vector<V> transpose_rule(const Context& c) {
  const std::vector<int64_t>& perm = c.attrs().get_ints("perm");
  std::vector<int64_t> inverse(perm.size());
  for (size_t i = 0; i < perm.size(); ++i)
    inverse[static_cast<size_t>(perm[i])] = int64_t(i);
  return {transpose(c.dy(), inverse)};
}

std::vector<V> concat_rule(const Context& c) {
  int64_t rank = c.y().rank();
  int64_t axis = ir::normalize_axis(c.attrs().get_int("axis"), rank);
  std::vector<V> grads;
  int64_t offset = 0;
  for (size_t i = 0; i < c.node.inputs().size(); ++i) {
    const ir::Shape& shape = c.x(i).shape();
    std::vector<int64_t> begin(rank, 0), end = c.y().shape().dims(), strides(rank, 1);
    begin[axis] = offset;
    end[axis] = offset + shape[axis];
    offset = end[axis];
    grads.push_back(slice(c.dy(), begin, end, strides));
  }
  return grads;
}

std::vector<V> split_rule(const Context& c) {
  int64_t axis = ir::normalize_axis(c.attrs().get_int("axis"), c.x().rank());
  std::vector<V> parts;
  for (size_t i = 0; i < c.node.num_outputs(); ++i)
    parts.push_back(c.dy_or_zeros(i));
  return {concat(parts, axis)};
}

// A slice's gradient is its elements put back in place, zeros elsewhere: reverse the dims taken
// backwards, spread strided dims out, then pad to the operand's shape.
std::vector<V> slice_rule(const Context& c) {
  V g = c.dy();
  const ir::Shape& in = c.x().shape();
  const ir::Shape& out = g.shape();
  if (out.num_elements() == 0) return {zeros_like(c.x())};
  int64_t rank = in.rank();
  const std::vector<int64_t>& begin = c.attrs().get_ints("begin");
  const std::vector<int64_t>& strides = c.attrs().get_ints("strides");

  std::vector<int64_t> rb(rank, 0), re = out.dims(), rs(rank, 1), first(rank), step(rank);
  bool reversed = false;
  for (int64_t d = 0; d < rank; ++d) {
    first[d] = begin[d];
    step[d] = strides[d];
    if (strides[d] < 0) {
      reversed = true;
      rb[d] = out[d] - 1;
      re[d] = -1;
      rs[d] = -1;
      step[d] = -strides[d];
      first[d] = begin[d] - (out[d] - 1) * step[d];
    }
  }
  if (reversed) g = slice(g, rb, re, rs);
  std::vector<int64_t> paddings;
  for (int64_t d = 0; d < rank; ++d) {
    g = spread_out(g, d, step[d]);
    int64_t last = first[d] + (out[d] - 1) * step[d];
    paddings.push_back(first[d]);
    paddings.push_back(in[d] - last - 1);
  }
  return {pad(g, paddings)};
}

// gather's gradient adds each slice of dy into the row of params it was read from. Written as a
// one-hot matmul: with params [pre, N, post] and M indices, one_hot(indices)ᵀ [N, M] times dy
// [pre, M, post] sums the rows that share an index.
std::vector<V> gather_rule(const Context& c) {
  V params = c.x(0), indices = c.x(1);
  int64_t axis = ir::normalize_axis(c.attrs().get_int("axis"), params.rank());
  const ir::Shape& p = params.shape();
  int64_t pre = 1, post = 1;
  for (int64_t d = 0; d < axis; ++d)
    pre *= p[d];
  for (int64_t d = axis + 1; d < p.rank(); ++d)
    post *= p[d];
  int64_t m = indices.shape().num_elements();
  V hot = one_hot(reshape(indices, ir::Shape{m}), p[axis], params.dtype());
  V rows = reshape(c.dy(), ir::Shape{pre, m, post});
  return {reshape(matmul(hot, rows, /*transpose_a=*/true), p), V{}};
}

std::vector<V> pad_rule(const Context& c) {
  const std::vector<int64_t>& paddings = c.attrs().get_ints("paddings");
  const ir::Shape& in = c.x().shape();
  std::vector<int64_t> begin, end, strides;
  for (int64_t d = 0; d < in.rank(); ++d) {
    begin.push_back(paddings[2 * d]);
    end.push_back(paddings[2 * d] + in[d]);
    strides.push_back(1);
  }
  return {slice(c.dy(), begin, end, strides)};
}

// tile: dy viewed as [m0, d0, m1, d1, ...] summed over the copies.
std::vector<V> tile_rule(const Context& c) {
  const std::vector<int64_t>& multiples = c.attrs().get_ints("multiples");
  const ir::Shape& in = c.x().shape();
  std::vector<int64_t> split, copies;
  for (int64_t d = 0; d < in.rank(); ++d) {
    copies.push_back(2 * d);
    split.push_back(multiples[d]);
    split.push_back(in[d]);
  }
  return {reshape(reduce_sum(reshape(c.dy(), ir::Shape(split)), copies), in)};
}

}  // namespace

void add_shape_rules(RuleTable& t) {
  t[size_t(Op::reshape)] = back_to_shape;
  t[size_t(Op::squeeze)] = back_to_shape;
  t[size_t(Op::expand_dims)] = back_to_shape;
  t[size_t(Op::transpose)] = transpose_rule;
  t[size_t(Op::broadcast_to)] = [](const Context& c) -> std::vector<V> {
    return {unbroadcast(c.dy(), c.x().shape())};
  };
  t[size_t(Op::concat)] = concat_rule;
  t[size_t(Op::split)] = split_rule;
  t[size_t(Op::slice)] = slice_rule;
  t[size_t(Op::gather)] = gather_rule;
  t[size_t(Op::pad)] = pad_rule;
  t[size_t(Op::tile)] = tile_rule;
}

}  // namespace kiln::passes::grad
