// Gradient rules of the reductions: the result's gradient is broadcast back over the reduced
// axes (and, for max/min/prod, weighted by which elements produced the result).
#include <fmt/format.h>

#include "kiln/passes/grad_rules.h"

namespace kiln::passes::grad {

namespace {

using ir::Op;

std::vector<int64_t> reduced_axes(const Context& c) {
  std::vector<int64_t> axes;
  for (int64_t a : c.attrs().get_ints("axes"))
    axes.push_back(ir::normalize_axis(a, c.x().rank()));
  return axes;
}

// `v` (shaped like the result) reshaped as if the reduction had kept its dims.
V with_kept_dims(const Context& c, V v) {
  ir::Shape kept = c.x().shape();
  for (int64_t a : reduced_axes(c))
    kept[a] = 1;
  return reshape(v, kept);
}

// dy spread over the operand's shape.
V spread(const Context& c, V v) {
  return broadcast_to(with_kept_dims(c, v), c.x().shape());
}

int64_t reduced_count(const Context& c) {
  int64_t count = 1;
  for (int64_t a : reduced_axes(c))
    count *= c.x().shape()[a];
  return count;
}

// Max and min: the gradient goes to the elements equal to the result, shared evenly among ties
// (as TensorFlow does).
std::vector<V> extremum(const Context& c) {
  V x = c.x();
  V hits = cast(equal(x, spread(c, c.y())), x.dtype());
  V count = reduce_sum(hits, reduced_axes(c), /*keepdims=*/true);
  return {hits * spread(c, c.dy()) / count};
}

// Product: ∂/∂xᵢ = Π_{j≠i} xⱼ, computed without dividing by zero. With no zero in the slice it
// is prod/xᵢ; with exactly one, the zero element gets the product of the others and the rest
// get 0; with more, everything gets 0.
std::vector<V> product(const Context& c) {
  V x = c.x();
  std::vector<int64_t> axes = reduced_axes(c);
  V is_zero = equal(x, scalar_like(x, 0.0));
  V safe = select(is_zero, ones_like(x), x);
  V nonzero_product = broadcast_to(reduce_prod(safe, axes, true), x.shape());
  V zeros = broadcast_to(reduce_sum(cast(is_zero, x.dtype()), axes, true), x.shape());
  V none_zero = equal(zeros, scalar_like(x, 0.0));
  V one_zero = equal(zeros, scalar_like(x, 1.0));
  // Named locals: the operands of one call would be built in an unspecified order.
  V only_zero = logical_and(one_zero, is_zero);
  V one_zero_case = select(only_zero, nonzero_product, zeros_like(x));
  V no_zero_case = nonzero_product / safe;
  V others = select(none_zero, no_zero_case, one_zero_case);
  return {spread(c, c.dy()) * others};
}

}  // namespace

void add_reduction_rules(RuleTable& t) {
  t[size_t(Op::reduce_sum)] = [](const Context& c) -> std::vector<V> {
    return {spread(c, c.dy())};
  };
  t[size_t(Op::reduce_mean)] = [](const Context& c) -> std::vector<V> {
    return {spread(c, c.dy()) / static_cast<double>(reduced_count(c))};
  };
  t[size_t(Op::reduce_max)] = extremum;
  t[size_t(Op::reduce_min)] = extremum;
  t[size_t(Op::reduce_prod)] = product;
}

}  // namespace kiln::passes::grad
