// matmul: shape rule, interpreter values (2-D, transposes, broadcast batches, odd and zero sizes,
// integer wrapping) and errors, for every numeric dtype.
#include <catch2/catch.hpp>

#include <limits>

#include "op_test_util.h"

namespace {

using namespace kiln::testing;

Attrs transposes(bool a, bool b) {
  Attrs attrs;
  attrs.set_bool("transpose_a", a).set_bool("transpose_b", b);
  return attrs;
}

// The fixed 3x4 and 4x2 matrices of the batched cases and their product, worked out by hand.
const std::vector<double> kA0 = {1, 0, 2, 1, 0, 1, 1, 0, 2, 1, 0, 1};
const std::vector<double> kB0 = {1, 2, 0, 1, 1, 0, 2, 1};
const std::vector<double> kP0 = {5, 3, 1, 1, 4, 6};

// Concatenates `base` scaled by each factor.
std::vector<double> scaled(const std::vector<double>& base, const std::vector<double>& factors) {
  std::vector<double> out;
  for (double f : factors) {
    for (double v : base)
      out.push_back(f * v);
  }
  return out;
}

}  // namespace

TEMPLATE_TEST_CASE("matmul of 2-D operands with every transpose combination", "[matmul]", float,
                   double, int32_t, int64_t) {
  using T = TestType;
  // [[1,2,3],[4,5,6]] x [[7,8],[9,10],[11,12]] = [[58,64],[139,154]]
  HostTensor a = make<T>({2, 3}, as<T>({1, 2, 3, 4, 5, 6}));
  HostTensor a_t = make<T>({3, 2}, as<T>({1, 4, 2, 5, 3, 6}));
  HostTensor b = make<T>({3, 2}, as<T>({7, 8, 9, 10, 11, 12}));
  HostTensor b_t = make<T>({2, 3}, as<T>({7, 9, 11, 8, 10, 12}));
  const std::vector<T> want = as<T>({58, 64, 139, 154});
  check_values<T>(run1(Op::matmul, {a, b}), {2, 2}, want);
  check_values<T>(run1(Op::matmul, {a, b}, transposes(false, false)), {2, 2}, want);
  check_values<T>(run1(Op::matmul, {a_t, b}, transposes(true, false)), {2, 2}, want);
  check_values<T>(run1(Op::matmul, {a, b_t}, transposes(false, true)), {2, 2}, want);
  check_values<T>(run1(Op::matmul, {a_t, b_t}, transposes(true, true)), {2, 2}, want);
  // The other order gives a 3x3 product.
  check_values<T>(run1(Op::matmul, {b, a}), {3, 3}, as<T>({39, 54, 69, 49, 68, 87, 59, 82, 105}));
}

TEMPLATE_TEST_CASE("matmul of odd sizes", "[matmul]", float, double, int32_t, int64_t) {
  using T = TestType;
  HostTensor row = make<T>({1, 5}, as<T>({1, 2, 3, 4, 5}));
  HostTensor col = make<T>({5, 1}, as<T>({2, -1, 0, 3, 1}));
  check_values<T>(run1(Op::matmul, {row, col}), {1, 1}, as<T>({17}));
  HostTensor u = make<T>({3, 1}, as<T>({1, 2, 3}));
  HostTensor v = make<T>({1, 3}, as<T>({4, 5, -6}));
  check_values<T>(run1(Op::matmul, {u, v}), {3, 3}, as<T>({4, 5, -6, 8, 10, -12, 12, 15, -18}));
  check_values<T>(run1(Op::matmul, {make<T>({1, 1}, as<T>({3})), make<T>({1, 1}, as<T>({-4}))}),
                  {1, 1}, as<T>({-12}));
}

TEMPLATE_TEST_CASE("batched matmul broadcasts batch dimensions", "[matmul]", float, double, int32_t,
                   int64_t) {
  using T = TestType;
  // a[i, 0] = (i+1)·A0, b[j] = (j+1)·B0, so out[i, j] = (i+1)(j+1)·P0.
  HostTensor a = make<T>({2, 1, 3, 4}, as<T>(scaled(kA0, {1, 2})));
  HostTensor b = make<T>({5, 4, 2}, as<T>(scaled(kB0, {1, 2, 3, 4, 5})));
  std::vector<double> want;
  for (double i : {1, 2}) {
    for (double j : {1, 2, 3, 4, 5}) {
      for (double v : kP0)
        want.push_back(i * j * v);
    }
  }
  check_values<T>(run1(Op::matmul, {a, b}), {2, 5, 3, 2}, as<T>(want));

  // A rank-2 operand broadcasts against every batch of the other; transposes apply per matrix.
  HostTensor a0 = make<T>({3, 4}, as<T>(kA0));
  HostTensor b3 = make<T>({3, 4, 2}, as<T>(scaled(kB0, {1, -1, 2})));
  check_values<T>(run1(Op::matmul, {a0, b3}), {3, 3, 2}, as<T>(scaled(kP0, {1, -1, 2})));
  // (B0ᵀ A0ᵀ) = P0ᵀ = [[5,1,4],[3,1,6]].
  check_values<T>(run1(Op::matmul, {b3, a0}, transposes(true, true)), {3, 2, 3},
                  as<T>(scaled({5, 1, 4, 3, 1, 6}, {1, -1, 2})));
  // Equal batch dims pair up element by element.
  HostTensor x = make<T>({2, 2, 2}, as<T>({1, 2, 3, 4, 0, 1, 1, 0}));
  HostTensor y = make<T>({2, 2, 2}, as<T>({1, 0, 0, 1, 5, 6, 7, 8}));
  check_values<T>(run1(Op::matmul, {x, y}), {2, 2, 2}, as<T>({1, 2, 3, 4, 7, 8, 5, 6}));
}

TEMPLATE_TEST_CASE("matmul with zero-size dimensions", "[matmul]", float, double, int32_t,
                   int64_t) {
  using T = TestType;
  // K = 0: every output is an empty sum.
  check_values<T>(run1(Op::matmul, {make<T>({2, 0}, {}), make<T>({0, 3}, {})}), {2, 3},
                  as<T>({0, 0, 0, 0, 0, 0}));
  check_values<T>(
      run1(Op::matmul, {make<T>({0, 2}, {}), make<T>({3, 0}, {})}, transposes(true, true)), {2, 3},
      as<T>({0, 0, 0, 0, 0, 0}));
  check_values<T>(
      run1(Op::matmul, {make<T>({0, 3}, {}), make<T>({3, 2}, as<T>({1, 2, 3, 4, 5, 6}))}), {0, 2},
      std::vector<T>{});
  check_values<T>(
      run1(Op::matmul, {make<T>({2, 3}, as<T>({1, 2, 3, 4, 5, 6})), make<T>({3, 0}, {})}), {2, 0},
      std::vector<T>{});
  check_values<T>(run1(Op::matmul, {make<T>({0, 2, 2}, {}), make<T>({2, 2}, as<T>({1, 2, 3, 4}))}),
                  {0, 2, 2}, std::vector<T>{});
  check_values<T>(run1(Op::matmul, {make<T>({3, 1, 2, 0}, {}), make<T>({4, 0, 1}, {})}),
                  {3, 4, 2, 1}, std::vector<T>(24, T{0}));
}

TEST_CASE("integer matmul wraps", "[matmul]") {
  check_values<int32_t>(
      run1(Op::matmul, {make<int32_t>({1, 1}, {65536}), make<int32_t>({1, 1}, {65536})}), {1, 1},
      {0});
  // 46341² = 2147488281 wraps to 2147488281 − 2³².
  check_values<int32_t>(
      run1(Op::matmul, {make<int32_t>({1, 1}, {46341}), make<int32_t>({1, 1}, {46341})}), {1, 1},
      {-2147479015});
  check_values<int32_t>(
      run1(Op::matmul, {make<int32_t>({1, 2}, {std::numeric_limits<int32_t>::max(), 1}),
                        make<int32_t>({2, 1}, {1, 1})}),
      {1, 1}, {std::numeric_limits<int32_t>::min()});
  const int64_t big = int64_t{1} << 32;
  check_values<int64_t>(
      run1(Op::matmul, {make<int64_t>({1, 1}, {big}), make<int64_t>({1, 1}, {big})}), {1, 1}, {0});
  check_values<int64_t>(run1(Op::matmul, {make<int64_t>({1, 1}, {big}),
                                          make<int64_t>({1, 1}, {-(int64_t{1} << 31)})}),
                        {1, 1}, {std::numeric_limits<int64_t>::min()});
}

TEST_CASE("float matmul accumulates in double", "[matmul]") {
  check_values<float>(run1(Op::matmul, {make<float>({1, 3}, {1e8f, 1.f, -1e8f}),
                                        make<float>({3, 1}, {1.f, 1.f, 1.f})}),
                      {1, 1}, {1.f});
}

TEST_CASE("matmul shape rule rejects bad operands", "[matmul][errors]") {
  using Catch::Contains;
  auto infer = [](TensorType a, TensorType b, const Attrs& attrs = {}) {
    std::vector<TensorType> in{a, b};
    return kiln::ir::infer_types(Op::matmul, in, attrs);
  };
  const TensorType f23{DType::f32, {2, 3}};
  const TensorType f34{DType::f32, {3, 4}};
  CHECK(infer(f23, f34)[0] == TensorType{DType::f32, {2, 4}});
  CHECK_THROWS_AS(infer({DType::f32, {3}}, f34), kiln::ShapeError);
  CHECK_THROWS_WITH(infer(f23, {DType::f32, {3}}), Contains("matmul") && Contains("rank 2"));
  CHECK_THROWS_AS(infer(f23, f23), kiln::ShapeError);
  CHECK_THROWS_WITH(infer(f23, f23), Contains("contraction") && Contains("f32[2,3], f32[2,3]"));
  CHECK_THROWS_WITH(infer(f23, f34, transposes(true, false)),
                    Contains("K = 2") && Contains("K = 3"));
  CHECK_THROWS_AS(infer({DType::f32, {2, 2, 3}}, {DType::f32, {3, 3, 4}}), kiln::ShapeError);
  CHECK_THROWS_WITH(infer({DType::f32, {2, 2, 3}}, {DType::f32, {3, 3, 4}}),
                    Contains("batch dimensions (2,) and (3,)"));
  CHECK_THROWS_AS(infer(f23, {DType::f64, {3, 4}}), kiln::TypeError);
  CHECK_THROWS_WITH(infer(f23, {DType::i32, {3, 4}}), Contains("same dtype"));
  CHECK_THROWS_AS(infer({DType::boolean, {2, 3}}, {DType::boolean, {3, 4}}), kiln::TypeError);
  Attrs bad;
  bad.set_int("transpose_a", 1);
  CHECK_THROWS_AS(infer(f23, f34, bad), kiln::ValueError);
}
