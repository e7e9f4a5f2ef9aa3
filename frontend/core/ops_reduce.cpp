// Reductions, arg-reductions and the reduction composites (variance, std, norm, logsumexp).
#include <numeric>

#include "kiln/frontend/core/apply.h"
#include "kiln/frontend/core/ops.h"

namespace kiln {

using detail::apply1;

std::vector<int64_t> Axes::resolve(int64_t rank) const {
  if (axes_) return *axes_;
  std::vector<int64_t> all(static_cast<size_t>(rank));
  std::iota(all.begin(), all.end(), 0);
  return all;
}

namespace {

Tensor reduce(ir::Op op, const Tensor& x, const Axes& axes, bool keepdims, const Loc& loc) {
  ir::Attrs attrs;
  attrs.set_ints("axes", axes.resolve(x.defined() ? x.rank() : 0));
  attrs.set_bool("keepdims", keepdims);
  return apply1(op, {x}, attrs, loc);
}

Tensor arg_reduce(ir::Op op, const Tensor& x, int64_t axis, DType dtype, const Loc& loc) {
  ir::Attrs attrs;
  attrs.set_int("axis", axis);
  attrs.set_dtype("dtype", dtype);
  return apply1(op, {x}, attrs, loc);
}

}  // namespace

Tensor reduce_sum(const Tensor& x, Axes axes, bool keepdims, Loc loc) {
  return reduce(ir::Op::reduce_sum, x, axes, keepdims, loc);
}
Tensor reduce_mean(const Tensor& x, Axes axes, bool keepdims, Loc loc) {
  return reduce(ir::Op::reduce_mean, x, axes, keepdims, loc);
}
Tensor reduce_max(const Tensor& x, Axes axes, bool keepdims, Loc loc) {
  return reduce(ir::Op::reduce_max, x, axes, keepdims, loc);
}
Tensor reduce_min(const Tensor& x, Axes axes, bool keepdims, Loc loc) {
  return reduce(ir::Op::reduce_min, x, axes, keepdims, loc);
}
Tensor reduce_prod(const Tensor& x, Axes axes, bool keepdims, Loc loc) {
  return reduce(ir::Op::reduce_prod, x, axes, keepdims, loc);
}

Tensor argmax(const Tensor& x, int64_t axis, DType dtype, Loc loc) {
  return arg_reduce(ir::Op::argmax, x, axis, dtype, loc);
}
Tensor argmin(const Tensor& x, int64_t axis, DType dtype, Loc loc) {
  return arg_reduce(ir::Op::argmin, x, axis, dtype, loc);
}

Tensor reduce_variance(const Tensor& x, Axes axes, bool keepdims, Loc loc) {
  Tensor mean = reduce_mean(x, axes, /*keepdims=*/true, loc);
  return reduce_mean(square(subtract(x, mean, loc), loc), axes, keepdims, loc);
}

Tensor reduce_std(const Tensor& x, Axes axes, bool keepdims, Loc loc) {
  return sqrt(reduce_variance(x, std::move(axes), keepdims, loc), loc);
}

Tensor norm(const Tensor& x, Axes axes, bool keepdims, Loc loc) {
  return sqrt(reduce_sum(square(x, loc), std::move(axes), keepdims, loc), loc);
}

Tensor reduce_logsumexp(const Tensor& x, Axes axes, bool keepdims, Loc loc) {
  // Shift by the max so exp cannot overflow; an infinite max (all -inf, or +inf present) would
  // give inf - inf = NaN, so shift by 0 there instead (as TensorFlow does). m - m == 0 exactly
  // when m is finite.
  Tensor max = reduce_max(x, axes, /*keepdims=*/true, loc);
  Tensor shift = where(equal(subtract(max, max, loc), 0, loc), max, 0, loc);
  Tensor sum = reduce_sum(exp(subtract(x, shift, loc), loc), axes, /*keepdims=*/true, loc);
  Tensor result = add(log(sum, loc), shift, loc);
  if (keepdims) return result;
  return squeeze(result, axes.resolve(x.rank()), loc);
}

}  // namespace kiln
