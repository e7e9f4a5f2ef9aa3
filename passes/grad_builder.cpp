#include "kiln/passes/grad_builder.h"

#include <algorithm>

#include "kiln/ir/error.h"

namespace kiln::passes::grad {

void Builder::set_origin(const ir::Node& node) {
  scope_ = node.scope().empty() ? "gradients" : "gradients/" + node.scope();
  loc_ = node.loc();
}

V Builder::op(ir::Op op, const std::vector<V>& inputs, ir::Attrs attrs) {
  std::vector<V> results = ops(op, inputs, std::move(attrs));
  KILN_CHECK(results.size() == 1, "grad::Builder::op on an op with several results");
  return results[0];
}

std::vector<V> Builder::ops(ir::Op op, const std::vector<V>& inputs, ir::Attrs attrs) {
  std::vector<ir::Value*> values;
  values.reserve(inputs.size());
  for (const V& input : inputs) {
    KILN_CHECK(input.value != nullptr, "a gradient rule used an empty value");
    values.push_back(input.value);
  }
  ir::Node* node = function_.append(op, std::move(values), std::move(attrs), scope_, loc_);
  std::vector<V> results;
  for (size_t i = 0; i < node->num_outputs(); ++i)
    results.push_back(wrap(node->output(i)));
  return results;
}

V Builder::scalar(double value, ir::DType dtype) {
  return full(ir::TensorType{dtype, ir::Shape{}}, value);
}

V Builder::full(const ir::TensorType& type, double value) {
  ir::Attrs attrs;
  attrs.set_ints("shape", type.shape.dims()).set_dtype("dtype", type.dtype);
  if (ir::is_floating(type.dtype)) {
    attrs.set_float("value", value);
  } else {
    attrs.set_int("value", static_cast<int64_t>(value));
  }
  return op(ir::Op::fill, {}, std::move(attrs));
}

namespace {
Builder& builder_of(V a, V b) {
  KILN_CHECK(a.builder != nullptr || b.builder != nullptr, "gradient values without a builder");
  return a.builder != nullptr ? *a.builder : *b.builder;
}
V unary(ir::Op op, V x, ir::Attrs attrs = {}) {
  return x.builder->op(op, {x}, std::move(attrs));
}
V binary(ir::Op op, V a, V b) {
  return builder_of(a, b).op(op, {a, b});
}
}  // namespace

V operator+(V a, V b) {
  return binary(ir::Op::add, a, b);
}
V operator-(V a, V b) {
  return binary(ir::Op::sub, a, b);
}
V operator*(V a, V b) {
  return binary(ir::Op::mul, a, b);
}
V operator/(V a, V b) {
  return binary(ir::Op::div, a, b);
}
V operator-(V a) {
  return unary(ir::Op::neg, a);
}
V operator+(V a, double b) {
  return a + scalar_like(a, b);
}
V operator-(V a, double b) {
  return a - scalar_like(a, b);
}
V operator*(V a, double b) {
  return a * scalar_like(a, b);
}
V operator/(V a, double b) {
  return a / scalar_like(a, b);
}
V operator+(double a, V b) {
  return scalar_like(b, a) + b;
}
V operator-(double a, V b) {
  return scalar_like(b, a) - b;
}
V operator*(double a, V b) {
  return scalar_like(b, a) * b;
}
V operator/(double a, V b) {
  return scalar_like(b, a) / b;
}

V exp(V x) {
  return unary(ir::Op::exp, x);
}
V log(V x) {
  return unary(ir::Op::log, x);
}
V sqrt(V x) {
  return unary(ir::Op::sqrt, x);
}
V sign(V x) {
  return unary(ir::Op::sign, x);
}
V sin(V x) {
  return unary(ir::Op::sin, x);
}
V cos(V x) {
  return unary(ir::Op::cos, x);
}
V sigmoid(V x) {
  return unary(ir::Op::sigmoid, x);
}
V square(V x) {
  return unary(ir::Op::square, x);
}
V abs(V x) {
  return unary(ir::Op::abs, x);
}
V pow(V a, V b) {
  return binary(ir::Op::pow, a, b);
}
V maximum(V a, V b) {
  return binary(ir::Op::maximum, a, b);
}
V minimum(V a, V b) {
  return binary(ir::Op::minimum, a, b);
}
V equal(V a, V b) {
  return binary(ir::Op::equal, a, b);
}
V greater(V a, V b) {
  return binary(ir::Op::greater, a, b);
}
V greater_equal(V a, V b) {
  return binary(ir::Op::greater_equal, a, b);
}
V less_equal(V a, V b) {
  return binary(ir::Op::less_equal, a, b);
}
V logical_and(V a, V b) {
  return binary(ir::Op::logical_and, a, b);
}
V logical_not(V x) {
  return unary(ir::Op::logical_not, x);
}

V cast(V x, ir::DType dtype) {
  if (x.dtype() == dtype) return x;
  ir::Attrs attrs;
  attrs.set_dtype("dtype", dtype);
  return unary(ir::Op::cast, x, std::move(attrs));
}

V select(V cond, V a, V b) {
  return cond.builder->op(ir::Op::select, {cond, a, b});
}

V zeros_like(V x) {
  return x.builder->full(x.type(), 0.0);
}
V ones_like(V x) {
  return x.builder->full(x.type(), 1.0);
}
V scalar_like(V x, double value) {
  return x.builder->scalar(value, x.dtype());
}

namespace {
V reduce(ir::Op op, V x, std::vector<int64_t> axes, bool keepdims) {
  ir::Attrs attrs;
  attrs.set_ints("axes", std::move(axes)).set_bool("keepdims", keepdims);
  return unary(op, x, std::move(attrs));
}
}  // namespace

V reduce_sum(V x, std::vector<int64_t> axes, bool keepdims) {
  return reduce(ir::Op::reduce_sum, x, std::move(axes), keepdims);
}
V reduce_max(V x, std::vector<int64_t> axes, bool keepdims) {
  return reduce(ir::Op::reduce_max, x, std::move(axes), keepdims);
}
V reduce_prod(V x, std::vector<int64_t> axes, bool keepdims) {
  return reduce(ir::Op::reduce_prod, x, std::move(axes), keepdims);
}

V reshape(V x, const ir::Shape& shape) {
  if (x.shape() == shape) return x;
  ir::Attrs attrs;
  attrs.set_ints("shape", shape.dims());
  return unary(ir::Op::reshape, x, std::move(attrs));
}

V broadcast_to(V x, const ir::Shape& shape) {
  if (x.shape() == shape) return x;
  ir::Attrs attrs;
  attrs.set_ints("shape", shape.dims());
  return unary(ir::Op::broadcast_to, x, std::move(attrs));
}

V transpose(V x, std::vector<int64_t> perm) {
  if (std::is_sorted(perm.begin(), perm.end())) return x;
  ir::Attrs attrs;
  attrs.set_ints("perm", std::move(perm));
  return unary(ir::Op::transpose, x, std::move(attrs));
}

V concat(const std::vector<V>& xs, int64_t axis) {
  if (xs.size() == 1) return xs[0];
  ir::Attrs attrs;
  attrs.set_int("axis", axis);
  return xs.at(0).builder->op(ir::Op::concat, xs, std::move(attrs));
}

V slice(V x, std::vector<int64_t> begin, std::vector<int64_t> end, std::vector<int64_t> strides) {
  ir::Attrs attrs;
  attrs.set_ints("begin", std::move(begin))
      .set_ints("end", std::move(end))
      .set_ints("strides", std::move(strides));
  return unary(ir::Op::slice, x, std::move(attrs));
}

V pad(V x, std::vector<int64_t> paddings, double value) {
  if (std::all_of(paddings.begin(), paddings.end(), [](int64_t p) { return p == 0; })) return x;
  ir::Attrs attrs;
  attrs.set_ints("paddings", std::move(paddings));
  if (ir::is_floating(x.dtype())) {
    attrs.set_float("value", value);
  } else {
    attrs.set_int("value", static_cast<int64_t>(value));
  }
  return unary(ir::Op::pad, x, std::move(attrs));
}

V one_hot(V indices, int64_t depth, ir::DType dtype) {
  ir::Attrs attrs;
  attrs.set_int("depth", depth)
      .set_float("on_value", 1.0)
      .set_float("off_value", 0.0)
      .set_int("axis", -1)
      .set_dtype("dtype", dtype);
  return unary(ir::Op::one_hot, indices, std::move(attrs));
}

V matmul(V a, V b, bool transpose_a, bool transpose_b) {
  ir::Attrs attrs;
  attrs.set_bool("transpose_a", transpose_a).set_bool("transpose_b", transpose_b);
  return a.builder->op(ir::Op::matmul, {a, b}, std::move(attrs));
}

V conv2d(V input, V filter, std::vector<int64_t> strides, const std::string& padding,
         std::vector<int64_t> dilations) {
  ir::Attrs attrs;
  attrs.set_ints("strides", std::move(strides))
      .set_string("padding", padding)
      .set_ints("dilations", std::move(dilations));
  return input.builder->op(ir::Op::conv2d, {input, filter}, std::move(attrs));
}

V spread_out(V g, int64_t axis, int64_t stride) {
  int64_t n = g.shape()[axis];
  if (stride == 1 || n <= 1) return g;
  std::vector<int64_t> dims = g.shape().dims();
  std::vector<int64_t> split = dims;
  split.insert(split.begin() + axis + 1, 1);
  std::vector<int64_t> paddings(2 * split.size(), 0);
  paddings[2 * (axis + 1) + 1] = stride - 1;
  V spaced = pad(reshape(g, ir::Shape(split)), paddings);
  dims[axis] = n * stride;
  V flat = reshape(spaced, ir::Shape(dims));
  std::vector<int64_t> begin(dims.size(), 0), end = dims, strides(dims.size(), 1);
  end[axis] = (n - 1) * stride + 1;
  return slice(flat, begin, end, strides);
}

V unbroadcast(V g, const ir::Shape& shape) {
  if (g.shape() == shape) return g;
  int64_t lead = g.rank() - shape.rank();
  KILN_CHECK(lead >= 0, "unbroadcast to a shape of higher rank");
  std::vector<int64_t> axes;
  for (int64_t i = 0; i < g.rank(); ++i) {
    if (i < lead || (shape[i - lead] == 1 && g.shape()[i] != 1)) axes.push_back(i);
  }
  return reshape(reduce_sum(g, axes), shape);
}

}  // namespace kiln::passes::grad
