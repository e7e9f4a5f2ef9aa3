// Elementwise binary ops and select: hand-computed values for every dtype each op accepts,
// integer and IEEE edge cases, NumPy broadcasting, and operand errors.
#include <cmath>
#include <limits>
#include <vector>

#include "op_test_util.h"

using namespace kiln::testing;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Shape inference on a braced list of operand types.
std::vector<TensorType> infer(Op op, std::vector<TensorType> operands, const Attrs& attrs = {}) {
  return kiln::ir::infer_types(op, operands, attrs);
}

struct BinaryRow {
  Op op;
  std::vector<double> a;
  std::vector<double> b;
  std::vector<double> want;
};

// Runs each row on rank-1 operands of T; comparisons produce bool, the rest T.
template <class T>
void check_binary_rows(const std::vector<BinaryRow>& rows) {
  for (const BinaryRow& row : rows) {
    INFO(kiln::ir::op_name(row.op) << " on " << kiln::ir::dtype_name(kiln::ir::dtype_of<T>()));
    int64_t n = static_cast<int64_t>(row.a.size());
    HostTensor got = run1(row.op, {make<T>({n}, as<T>(row.a)), make<T>({n}, as<T>(row.b))});
    if (got.dtype() == DType::boolean) {
      check_values<bool>(got, Shape{n}, as<bool>(row.want));
    } else {
      check_values<T>(got, Shape{n}, as<T>(row.want), std::is_same_v<T, float> ? 1e-6 : 1e-12);
    }
  }
}

}  // namespace

TEMPLATE_TEST_CASE("arithmetic and comparison ops", "[elementwise][binary]", float, double, int32_t,
                   int64_t) {
  std::vector<double> a = {6, -7, 2, 0}, b = {3, 2, -4, 5};
  std::vector<double> c = {1, 2, 3}, d = {2, 2, 2};
  check_binary_rows<TestType>({
      {Op::add, a, b, {9, -5, -2, 5}},
      {Op::sub, a, b, {3, -9, 6, -5}},
      {Op::mul, a, b, {18, -14, -8, 0}},
      {Op::maximum, a, b, {6, 2, 2, 5}},
      {Op::minimum, a, b, {3, -7, -4, 0}},
      {Op::pow, {2, -3, 5, 0, -2}, {3, 2, 0, 2, 3}, {8, 9, 1, 0, -8}},
      {Op::equal, c, d, {0, 1, 0}},
      {Op::not_equal, c, d, {1, 0, 1}},
      {Op::less, c, d, {1, 0, 0}},
      {Op::less_equal, c, d, {1, 1, 0}},
      {Op::greater, c, d, {0, 0, 1}},
      {Op::greater_equal, c, d, {0, 1, 1}},
  });
}

TEMPLATE_TEST_CASE("float division, pow and NaN rules", "[elementwise][binary]", float, double) {
  check_binary_rows<TestType>({
      {Op::div,
       {6, -7, 2, 0, 1, -1, 0},
       {3, 2, -4, 5, 0, 0, 0},
       {2, -3.5, -0.5, 0, kInf, -kInf, kNaN}},
      {Op::pow,
       {2, 4, -8, 0, 2},
       {0.5, -0.5, 1.0 / 3, -1, 10},
       {1.4142135623730951, 0.5, kNaN, kInf, 1024}},
      {Op::maximum, {kNaN, 1, -kInf}, {1, kNaN, 3}, {kNaN, kNaN, 3}},
      {Op::minimum, {kNaN, 1, kInf}, {1, kNaN, 3}, {kNaN, kNaN, 3}},
      {Op::add, {kInf, kNaN}, {-kInf, 1}, {kNaN, kNaN}},
      {Op::equal, {kNaN, 1}, {kNaN, 1}, {0, 1}},
      {Op::not_equal, {kNaN, 1}, {kNaN, 1}, {1, 0}},
      {Op::less, {kNaN, 1}, {1, kNaN}, {0, 0}},
      {Op::greater_equal, {kNaN, kInf}, {kNaN, kInf}, {0, 1}},
  });
}

TEMPLATE_TEST_CASE("integer arithmetic never traps", "[elementwise][binary]", int32_t, int64_t) {
  using T = TestType;
  constexpr T kMin = std::numeric_limits<T>::min(), kMax = std::numeric_limits<T>::max();
  constexpr T kBits = sizeof(T) * 8;
  auto check = [](Op op, std::vector<T> a, std::vector<T> b, std::vector<T> want) {
    INFO(kiln::ir::op_name(op));
    int64_t n = static_cast<int64_t>(a.size());
    check_values<T>(run1(op, {make<T>({n}, a), make<T>({n}, b)}), Shape{n}, want);
  };
  check(Op::add, {kMax, kMin}, {1, -1}, {kMin, kMax});
  check(Op::sub, {kMin, kMax}, {1, -1}, {kMax, kMin});
  check(Op::mul, {kMax, kMin, kMin}, {2, -1, kMin}, {-2, kMin, 0});
  check(Op::div, {7, -7, 7, -7, 7, kMin, kMin, 0}, {2, 2, -2, -2, 0, -1, 1, 0},
        {3, -3, -3, 3, 0, kMin, kMin, 0});
  check(Op::pow, {2, 3, 2, 1, -1, -1, 0, 0, 5}, {kBits - 1, 4, -1, -5, -3, -2, -1, 0, -2},
        {kMin, 81, 0, 1, -1, 1, 0, 1, 0});
  check(Op::pow, {2}, {kBits}, {0});
  check(Op::maximum, {kMin, kMax}, {kMax, kMin}, {kMax, kMax});
  check(Op::minimum, {kMin, kMax}, {kMax, kMin}, {kMin, kMin});
}

TEST_CASE("integer pow wraps like repeated multiplication", "[elementwise][binary]") {
  check_values<int32_t>(run1(Op::pow, {make<int32_t>({1}, {3}), make<int32_t>({1}, {20})}),
                        Shape{1}, {-808182895});
  check_values<int64_t>(run1(Op::pow, {make<int64_t>({1}, {3}), make<int64_t>({1}, {40})}),
                        Shape{1}, {-6289078614652622815});
}

TEST_CASE("bool ops: equal, not_equal, logical_and, logical_or", "[elementwise][binary]") {
  auto a = make<bool>({4}, {true, true, false, false});
  auto b = make<bool>({4}, {true, false, true, false});
  check_values<bool>(run1(Op::equal, {a, b}), Shape{4}, {true, false, false, true});
  check_values<bool>(run1(Op::not_equal, {a, b}), Shape{4}, {false, true, true, false});
  check_values<bool>(run1(Op::logical_and, {a, b}), Shape{4}, {true, false, false, false});
  check_values<bool>(run1(Op::logical_or, {a, b}), Shape{4}, {true, true, true, false});
}

TEST_CASE("binary ops broadcast NumPy-style", "[elementwise][broadcast]") {
  auto m23 = make<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  auto s = make<float>({}, {10});
  SECTION("scalar with tensor, both orders") {
    check_values<float>(run1(Op::sub, {s, m23}), Shape{2, 3}, {9, 8, 7, 6, 5, 4});
    check_values<float>(run1(Op::sub, {m23, s}), Shape{2, 3}, {-9, -8, -7, -6, -5, -4});
    check_values<float>(run1(Op::add, {s, s}), Shape{}, {20});
  }
  SECTION("rank mismatch aligns at the back") {
    auto row = make<float>({3}, {10, 20, 30});
    check_values<float>(run1(Op::add, {m23, row}), Shape{2, 3}, {11, 22, 33, 14, 25, 36});
    check_values<float>(run1(Op::div, {row, m23}), Shape{2, 3}, {10, 10, 10, 2.5, 4, 5});
  }
  SECTION("size-1 dimensions stretch") {
    auto col = make<float>({2, 1}, {1, 2});
    auto row = make<float>({1, 3}, {10, 20, 30});
    check_values<float>(run1(Op::add, {col, row}), Shape{2, 3}, {11, 21, 31, 12, 22, 32});
    check_values<float>(run1(Op::sub, {col, m23}), Shape{2, 3}, {0, -1, -2, -2, -3, -4});
  }
  SECTION("rank 3 against rank 2") {
    auto a = make<int32_t>({2, 1, 2}, {1, 2, 3, 4});
    auto b = make<int32_t>({3, 1}, {10, 20, 30});
    check_values<int32_t>(run1(Op::mul, {a, b}), Shape{2, 3, 2},
                          {10, 20, 20, 40, 30, 60, 30, 40, 60, 80, 90, 120});
  }
  SECTION("zero-size dimensions") {
    check_values<float>(run1(Op::add, {make<float>({0, 3}, {}), make<float>({1, 3}, {1, 2, 3})}),
                        Shape{0, 3}, {});
    check_values<float>(run1(Op::add, {make<float>({2, 0}, {}), make<float>({2, 1}, {1, 2})}),
                        Shape{2, 0}, {});
    check_values<float>(run1(Op::mul, {make<float>({0}, {}), s}), Shape{0}, {});
    check_values<bool>(run1(Op::less, {make<float>({0, 1}, {}), make<float>({4}, {1, 2, 3, 4})}),
                       Shape{0, 4}, {});
  }
  SECTION("comparisons broadcast and return bool") {
    check_values<bool>(run1(Op::greater, {m23, make<float>({}, {3.5})}), Shape{2, 3},
                       {false, false, false, true, true, true});
    check_values<bool>(
        run1(Op::logical_or, {make<bool>({2, 1}, {true, false}), make<bool>({2}, {false, true})}),
        Shape{2, 2}, {true, true, false, true});
  }
}

TEST_CASE("select broadcasts all three operands", "[elementwise][select]") {
  auto cond = make<bool>({2, 1}, {true, false});
  check_values<float>(run1(Op::select, {cond, make<float>({3}, {1, 2, 3}), make<float>({}, {0})}),
                      Shape{2, 3}, {1, 2, 3, 0, 0, 0});
  check_values<int64_t>(
      run1(Op::select, {make<bool>({3}, {true, false, true}), make<int64_t>({3}, {1, 2, 3}),
                        make<int64_t>({3}, {-1, -2, -3})}),
      Shape{3}, {1, -2, 3});
  check_values<bool>(run1(Op::select, {make<bool>({}, {false}), make<bool>({2}, {true, true}),
                                       make<bool>({2}, {false, true})}),
                     Shape{2}, {false, true});
  check_values<int32_t>(
      run1(Op::select, {make<bool>({0}, {}), make<int32_t>({1}, {1}), make<int32_t>({}, {2})}),
      Shape{0}, {});
  check_values<double>(run1(Op::select, {make<bool>({2}, {false, true}), make<double>({}, {kNaN}),
                                         make<double>({2, 1}, {1, 2})}),
                       Shape{2, 2}, {1, kNaN, 2, kNaN});
}

TEST_CASE("binary ops reject mixed dtypes and incompatible shapes", "[elementwise][errors]") {
  auto f32 = [](Shape s) { return TensorType{DType::f32, std::move(s)}; };
  auto i32 = [](Shape s) { return TensorType{DType::i32, std::move(s)}; };
  std::vector<TensorType> mixed = {f32({2}), i32({2})};
  CHECK_THROWS_AS(infer(Op::add, mixed), kiln::TypeError);
  CHECK_THROWS_WITH(infer(Op::add, mixed), Catch::StartsWith("add:") &&
                                               Catch::Contains("same dtype") &&
                                               Catch::Contains("f32 and i32") &&
                                               Catch::Contains("operands: f32[2], i32[2]"));

  std::vector<TensorType> bad_shapes = {f32({2, 3}), f32({2})};
  CHECK_THROWS_AS(infer(Op::mul, bad_shapes), kiln::ShapeError);
  CHECK_THROWS_WITH(infer(Op::mul, bad_shapes),
                    Catch::StartsWith("mul:") && Catch::Contains("f32[2,3], f32[2]"));

  CHECK_THROWS_AS(
      infer(Op::less, {TensorType{DType::boolean, Shape{2}}, TensorType{DType::boolean, Shape{2}}}),
      kiln::TypeError);
  CHECK_THROWS_WITH(infer(Op::add, std::vector<TensorType>{f32({2})}),
                    Catch::Contains("add") && Catch::Contains("expects 2 operands, got 1"));
}

TEST_CASE("select rejects a non-bool condition and mismatched branches", "[elementwise][errors]") {
  TensorType b2{DType::boolean, Shape{2}}, f2{DType::f32, Shape{2}}, i2{DType::i64, Shape{2}};
  CHECK_THROWS_AS(infer(Op::select, {f2, f2, f2}), kiln::TypeError);
  CHECK_THROWS_WITH(infer(Op::select, {f2, f2, f2}),
                    Catch::StartsWith("select:") && Catch::Contains("condition must be bool") &&
                        Catch::Contains("got f32"));
  CHECK_THROWS_AS(infer(Op::select, {b2, f2, i2}), kiln::TypeError);
  CHECK_THROWS_WITH(infer(Op::select, {b2, f2, i2}),
                    Catch::Contains("f32 and i64") && Catch::Contains("bool[2], f32[2], i64[2]"));
  TensorType f3{DType::f32, Shape{3}};
  CHECK_THROWS_AS(infer(Op::select, {b2, f3, f3}), kiln::ShapeError);
}
