// Bad operands and attributes of the shape ops: each throws the right kiln::Error subclass with a
// message that says what is wrong.
#include <catch2/catch.hpp>

#include <limits>

#include "op_test_util.h"

namespace {

using kiln::IndexError;
using kiln::ShapeError;
using kiln::TypeError;
using kiln::ValueError;
using namespace kiln::testing;

// Shape inference alone: every error here is found before any data is touched.
std::vector<TensorType> infer(Op op, std::vector<TensorType> inputs, const Attrs& attrs) {
  return kiln::ir::infer_types(op, inputs, attrs);
}
TensorType f32(Shape shape) {
  return {DType::f32, std::move(shape)};
}

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

}  // namespace

#define CHECK_ERROR(expr, Type, text) \
  CHECK_THROWS_AS(expr, Type);        \
  CHECK_THROWS_WITH(expr, Catch::Contains(text))

TEST_CASE("reshape errors", "[shape][reshape][errors]") {
  CHECK_ERROR(infer(Op::reshape, {f32({2, 3})}, ints("shape", {4, 2})), ShapeError,
              "cannot reshape a tensor of shape (2, 3) (6 elements) into shape (4, 2)");
  CHECK_ERROR(infer(Op::reshape, {f32({2, 3})}, ints("shape", {4, -1})), ShapeError,
              "into shape (4, -1)");
  CHECK_ERROR(infer(Op::reshape, {f32({0, 3})}, ints("shape", {0, -1})), ShapeError, "ambiguous");
  CHECK_ERROR(infer(Op::reshape, {f32({4})}, ints("shape", {})), ShapeError, "into shape ()");
  CHECK_ERROR(infer(Op::reshape, {f32({2, 3})}, ints("shape", {-1, -1})), ValueError,
              "at most one -1");
  CHECK_ERROR(infer(Op::reshape, {f32({2, 3})}, ints("shape", {-2, -3})), ValueError,
              "negative dimension");
  CHECK_ERROR(infer(Op::reshape, {f32({2, 3})}, ints("shape", {kMax, kMax})), ShapeError,
              "overflows");
  // The op name and the operands come first, added by infer_types.
  CHECK_ERROR(infer(Op::reshape, {f32({2, 3})}, ints("shape", {5})), ShapeError,
              "reshape: cannot reshape");
  CHECK_ERROR(infer(Op::reshape, {f32({2, 3})}, Attrs()), ValueError, "missing attribute 'shape'");
}

TEST_CASE("transpose errors", "[shape][transpose][errors]") {
  CHECK_ERROR(infer(Op::transpose, {f32({2, 3})}, ints("perm", {0, 0})), ValueError,
              "'perm' [0, 0] is not a permutation of 0..1");
  CHECK_ERROR(infer(Op::transpose, {f32({2, 3})}, ints("perm", {0})), ValueError,
              "not a permutation");
  CHECK_ERROR(infer(Op::transpose, {f32({2, 3})}, ints("perm", {1, 2})), ValueError,
              "not a permutation");
  CHECK_ERROR(infer(Op::transpose, {f32({2, 3})}, ints("perm", {-1, 0})), ValueError,
              "not a permutation");
  CHECK_ERROR(infer(Op::transpose, {f32({2, 3})}, ints("perm", {0, 1, 2})), ValueError,
              "rank is 2");
}

TEST_CASE("squeeze and expand_dims errors", "[shape][squeeze][expand_dims][errors]") {
  CHECK_ERROR(infer(Op::squeeze, {f32({1, 2})}, ints("axes", {1})), ShapeError,
              "cannot squeeze axis 1 of shape (1, 2): its size is 2, not 1");
  CHECK_ERROR(infer(Op::squeeze, {f32({1, 2})}, ints("axes", {0, -2})), ValueError,
              "names axis 0 twice");
  CHECK_ERROR(infer(Op::squeeze, {f32({1, 2})}, ints("axes", {2})), ShapeError,
              "axis 2 is out of range");
  CHECK_ERROR(infer(Op::expand_dims, {f32({2})}, axis_attr(2)), ShapeError,
              "axis 2 is out of range for a tensor of rank 2");
  CHECK_ERROR(infer(Op::expand_dims, {f32({2})}, axis_attr(-3)), ShapeError, "out of range");
  CHECK_ERROR(infer(Op::expand_dims, {f32({})}, axis_attr(1)), ShapeError, "out of range");
}

TEST_CASE("broadcast_to errors", "[shape][broadcast_to][errors]") {
  CHECK_ERROR(infer(Op::broadcast_to, {f32({3})}, ints("shape", {4})), ShapeError,
              "cannot broadcast shape (3,) to shape (4,)");
  CHECK_ERROR(infer(Op::broadcast_to, {f32({2, 3})}, ints("shape", {3})), ShapeError,
              "cannot broadcast shape (2, 3)");
  // NumPy rules are one-way: a target dimension of 1 does not stretch.
  CHECK_ERROR(infer(Op::broadcast_to, {f32({2})}, ints("shape", {2, 1})), ShapeError,
              "cannot broadcast");
  CHECK_ERROR(infer(Op::broadcast_to, {f32({1})}, ints("shape", {-1})), ValueError, ">= 0");
  CHECK_ERROR(infer(Op::broadcast_to, {f32({1})}, ints("shape", {kMax, 4})), ShapeError,
              "too large");
}

TEST_CASE("concat errors", "[shape][concat][errors]") {
  CHECK_ERROR(infer(Op::concat, {f32({2}), TensorType{DType::i32, Shape{2}}}, axis_attr(0)),
              TypeError, "operand 1 has dtype i32, but operand 0 has f32");
  CHECK_ERROR(infer(Op::concat, {f32({2, 1}), f32({2})}, axis_attr(0)), ShapeError,
              "operand 1 has rank 1, but operand 0 has rank 2");
  CHECK_ERROR(infer(Op::concat, {f32({2, 1}), f32({1, 3}), f32({3, 1})}, axis_attr(0)), ShapeError,
              "operand 1 has shape (1, 3)");
  CHECK_ERROR(infer(Op::concat, {f32({2, 1}), f32({3, 1})}, axis_attr(1)), ShapeError,
              "differ in dimension 0");
  CHECK_ERROR(infer(Op::concat, {f32({}), f32({})}, axis_attr(0)), ShapeError,
              "out of range for a tensor of rank 0");
  CHECK_ERROR(infer(Op::concat, {f32({2}), f32({2})}, axis_attr(-2)), ShapeError, "out of range");
  CHECK_ERROR(infer(Op::concat, {}, axis_attr(0)), ValueError, "at least one operand");
}

TEST_CASE("split errors", "[shape][split][errors]") {
  Attrs attrs = ints("sizes", {1, 1});
  attrs.set_int("axis", 0);
  CHECK_ERROR(infer(Op::split, {f32({3, 2})}, attrs), ValueError,
              "'sizes' [1, 1] add up to 2, but axis 0 of shape (3, 2) has size 3");
  attrs.set_ints("sizes", {4, -1});
  CHECK_ERROR(infer(Op::split, {f32({3, 2})}, attrs), ValueError, "entries must be >= 0");
  attrs.set_ints("sizes", {});
  CHECK_ERROR(infer(Op::split, {f32({0})}, attrs), ValueError, "at least one size");
  attrs.set_ints("sizes", {3});
  attrs.set_int("axis", 2);
  CHECK_ERROR(infer(Op::split, {f32({3, 2})}, attrs), ShapeError, "out of range");
  attrs.set_ints("sizes", {kMax, kMax});
  attrs.set_int("axis", 0);
  CHECK_ERROR(infer(Op::split, {f32({3, 2})}, attrs), ShapeError, "overflows");
}

TEST_CASE("slice errors", "[shape][slice][errors]") {
  TensorType v = f32({5});
  CHECK_ERROR(infer(Op::slice, {v}, slice_attrs({0}, {6}, {1})), ShapeError,
              "dimension 0 of size 5: range(0, 6, 1) selects indices outside [0, 5)");
  CHECK_ERROR(infer(Op::slice, {v}, slice_attrs({5}, {6}, {1})), ShapeError, "outside [0, 5)");
  CHECK_ERROR(infer(Op::slice, {v}, slice_attrs({-1}, {2}, {1})), ShapeError, "outside");
  CHECK_ERROR(infer(Op::slice, {v}, slice_attrs({0}, {10}, {3})), ShapeError, "outside");
  CHECK_ERROR(infer(Op::slice, {v}, slice_attrs({1}, {-2}, {-1})), ShapeError, "outside");
  CHECK_ERROR(infer(Op::slice, {v}, slice_attrs({5}, {0}, {-1})), ShapeError, "outside");
  CHECK_ERROR(infer(Op::slice, {v}, slice_attrs({0}, {kMax}, {1})), ShapeError, "outside");
  CHECK_ERROR(infer(Op::slice, {f32({2, 2})}, slice_attrs({0, 0}, {2, 2}, {1, 0})), ValueError,
              "'strides' [1, 0] has a 0 in dimension 1");
  CHECK_ERROR(infer(Op::slice, {f32({2, 2})}, slice_attrs({0}, {2, 2}, {1, 1})), ValueError,
              "'begin' must have 2 (one per dimension), got 1 entries [0]");
  CHECK_ERROR(infer(Op::slice, {f32({2, 2})}, slice_attrs({0, 0}, {2, 2, 2}, {1, 1})), ValueError,
              "'end' must have 2");
  CHECK_ERROR(infer(Op::slice, {f32({2, 2})}, slice_attrs({0, 0}, {2, 2}, {})), ValueError,
              "'strides' must have 2");
}

TEST_CASE("gather errors", "[shape][gather][errors]") {
  auto params = make<float>({3, 2}, {1, 2, 3, 4, 5, 6});
  CHECK_ERROR(
      run1(Op::gather, {params, make<int32_t>({2}, {0, 3})}, axis_attr(0)), IndexError,
      "index 3 (element 1 of indices) is out of range for axis 0 of size 3 (valid: 0 to 2)");
  CHECK_ERROR(run1(Op::gather, {params, make<int64_t>({1, 1}, {-1})}, axis_attr(1)), IndexError,
              "index -1 (element 0 of indices) is out of range for axis 1 of size 2");
  CHECK_ERROR(run1(Op::gather, {params, make<int64_t>({1}, {5})}, axis_attr(0)), IndexError,
              "gather: index 5");
  // Every index is checked even when the result is empty.
  CHECK_ERROR(run1(Op::gather, {make<float>({2, 0}, {}), make<int64_t>({1}, {2})}, axis_attr(0)),
              IndexError, "index 2");
  CHECK_ERROR(run1(Op::gather, {make<float>({0}, {}), make<int64_t>({1}, {0})}, axis_attr(0)),
              IndexError, "axis 0 of size 0 (no index is valid)");
  CHECK_ERROR(infer(Op::gather, {f32({3}), f32({2})}, axis_attr(0)), TypeError,
              "indices must be i32 or i64, got f32");
  CHECK_ERROR(infer(Op::gather, {f32({3}), TensorType{DType::boolean, Shape{2}}}, axis_attr(0)),
              TypeError, "got bool");
  CHECK_ERROR(infer(Op::gather, {f32({3}), TensorType{DType::i32, Shape{2}}}, axis_attr(1)),
              ShapeError, "out of range");
  CHECK_ERROR(infer(Op::gather, {f32({}), TensorType{DType::i32, Shape{2}}}, axis_attr(0)),
              ShapeError, "rank 0");
}

TEST_CASE("pad errors", "[shape][pad][errors]") {
  CHECK_ERROR(infer(Op::pad, {f32({2, 2})}, ints("paddings", {0, 1, -1, 0})), ValueError,
              "'paddings' entries must be >= 0, got [0, 1, -1, 0]");
  CHECK_ERROR(infer(Op::pad, {f32({2, 2})}, ints("paddings", {1, 1})), ValueError,
              "'paddings' must have 4 (two per dimension: before, after), got 2 entries");
  CHECK_ERROR(infer(Op::pad, {f32({2})}, ints("paddings", {kMax, 1})), ShapeError, "overflows");
  Attrs attrs = ints("paddings", {1, 1});
  attrs.set_string("value", "zero");
  CHECK_ERROR(infer(Op::pad, {f32({2})}, attrs), ValueError, "'value' must be a float or an int");
}

TEST_CASE("tile errors", "[shape][tile][errors]") {
  CHECK_ERROR(infer(Op::tile, {f32({2, 2})}, ints("multiples", {1, -2})), ValueError,
              "'multiples' entries must be >= 0, got [1, -2]");
  CHECK_ERROR(infer(Op::tile, {f32({2, 2})}, ints("multiples", {2})), ValueError,
              "'multiples' must have 2 (one per dimension), got 1 entries [2]");
  CHECK_ERROR(infer(Op::tile, {f32({2})}, ints("multiples", {kMax})), ShapeError, "overflows");
  CHECK_ERROR(infer(Op::tile, {f32({2})}, ints("multiples", {kMax / 4})), ShapeError, "too large");
}

TEST_CASE("interpreter re-checks attributes it is handed directly", "[shape][errors]") {
  // run_op without shape inference still rejects a bad slice rather than reading out of bounds.
  auto x = make<float>({2}, {1, 2});
  std::vector<TensorType> types = {f32({2})};
  std::vector<kiln::ir::HostTensor> inputs = {x};
  CHECK_ERROR(kiln::ir::run_op(Op::slice, inputs, slice_attrs({0}, {3}, {1}), types), ShapeError,
              "slice: dimension 0");
}
