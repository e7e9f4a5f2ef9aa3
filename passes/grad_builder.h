// The vocabulary gradient rules are written in: a value handle whose arithmetic appends nodes to
// the function being differentiated, and free functions named like the frontend's ops
// (kiln::exp, kiln::reduce_sum, kiln::matmul ...), so a rule reads like the math:
//
//   reciprocal:  return {-dy * y * y};
//
// Every node a rule makes is an ordinary op of the table, so gradient graphs are optimized,
// compiled and differentiated again like any other code. (The passes may depend only on ir, so
// this is a thin twin of the frontend API over ir::Value rather than kiln::Tensor itself.)
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kiln/ir/function.h"

namespace kiln::passes::grad {

class Builder;

// A value in the function being built; empty (`!v`) stands for a zero gradient.
struct V {
  ir::Value* value = nullptr;
  Builder* builder = nullptr;

  explicit operator bool() const { return value != nullptr; }
  const ir::TensorType& type() const { return value->type(); }
  const ir::Shape& shape() const { return value->type().shape; }
  ir::DType dtype() const { return value->type().dtype; }
  int64_t rank() const { return shape().rank(); }
};

// Appends nodes at the end of a function, all carrying the scope and location of the forward
// node whose gradient is being built (so an error in a gradient names the user's line).
class Builder {
 public:
  explicit Builder(ir::Function& function) : function_(function) {}

  // Later nodes carry `node`'s location and the scope "gradients[/node's scope]".
  void set_origin(const ir::Node& node);

  ir::Function& function() { return function_; }
  V wrap(ir::Value* value) { return V{value, this}; }
  // A node of `op` with one result (types inferred by the op's rule).
  V op(ir::Op op, const std::vector<V>& inputs, ir::Attrs attrs = {});
  // A node of `op` with any number of results.
  std::vector<V> ops(ir::Op op, const std::vector<V>& inputs, ir::Attrs attrs = {});
  // `value` as a 0-d tensor of `dtype`.
  V scalar(double value, ir::DType dtype);
  // A tensor of `type` with every element `value`.
  V full(const ir::TensorType& type, double value);

 private:
  ir::Function& function_;
  std::string scope_;
  ir::SourceLoc loc_;
};

// Arithmetic. A double operand becomes a scalar of the other operand's dtype.
V operator+(V a, V b);
V operator-(V a, V b);
V operator*(V a, V b);
V operator/(V a, V b);
V operator-(V a);
V operator+(V a, double b);
V operator-(V a, double b);
V operator*(V a, double b);
V operator/(V a, double b);
V operator+(double a, V b);
V operator-(double a, V b);
V operator*(double a, V b);
V operator/(double a, V b);

// Elementwise functions.
V exp(V x);
V log(V x);
V sqrt(V x);
V sign(V x);
V sin(V x);
V cos(V x);
V sigmoid(V x);
V square(V x);
V abs(V x);
V pow(V a, V b);
V cast(V x, ir::DType dtype);
V maximum(V a, V b);
V minimum(V a, V b);
V select(V cond, V a, V b);
V equal(V a, V b);
V greater(V a, V b);
V greater_equal(V a, V b);
V less_equal(V a, V b);
V logical_and(V a, V b);
V logical_not(V x);
V zeros_like(V x);
V ones_like(V x);
// A scalar of x's dtype.
V scalar_like(V x, double value);

// Reductions; `axes` are normalized (non-negative).
V reduce_sum(V x, std::vector<int64_t> axes, bool keepdims = false);
V reduce_max(V x, std::vector<int64_t> axes, bool keepdims = false);
V reduce_prod(V x, std::vector<int64_t> axes, bool keepdims = false);

// Shape and data movement.
V reshape(V x, const ir::Shape& shape);
V broadcast_to(V x, const ir::Shape& shape);
V transpose(V x, std::vector<int64_t> perm);
V concat(const std::vector<V>& xs, int64_t axis);
V slice(V x, std::vector<int64_t> begin, std::vector<int64_t> end, std::vector<int64_t> strides);
// `paddings` holds (before, after) per dimension, flattened.
V pad(V x, std::vector<int64_t> paddings, double value = 0.0);
V one_hot(V indices, int64_t depth, ir::DType dtype);
V matmul(V a, V b, bool transpose_a = false, bool transpose_b = false);
V conv2d(V input, V filter, std::vector<int64_t> strides, const std::string& padding,
         std::vector<int64_t> dilations);

// Inserts stride−1 zeros between consecutive elements of `g` along `axis` (the adjoint of taking
// every stride-th element): [a, b, c] with stride 3 becomes [a, 0, 0, b, 0, 0, c].
V spread_out(V g, int64_t axis, int64_t stride);

// Sums `g` over the dimensions a NumPy broadcast added to reach g's shape from `shape`, so the
// result has `shape` (the adjoint of broadcasting).
V unbroadcast(V g, const ir::Shape& shape);

}  // namespace kiln::passes::grad
