// Reductions (reduce_sum/mean/max/min/prod, argmax/argmin): shape rules, interpreter values and
// errors, checked against hand-computed tables for every numeric dtype.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "op_test_util.h"

namespace {

using namespace kiln::testing;

const double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::numeric_limits<double>::quiet_NaN();

// Hand-written values converted to T (every value in the tables is exact in every dtype).
Attrs reduce_attrs(std::vector<int64_t> axes, bool keepdims = false) {
  Attrs a;
  a.set_ints("axes", std::move(axes));
  if (keepdims) a.set_bool("keepdims", true);
  return a;
}

struct Row {
  Op op;
  std::vector<int64_t> axes;
  bool keepdims;
  Shape out;
  std::vector<double> want;
};

// x = [[1, -2, 4], [5, 4, 6]]: row sums 3, 15; column sums 6, 2, 10; total 18.
const std::vector<Row> kRows2x3 = {
    {Op::reduce_sum, {1}, false, {2}, {3, 15}},
    {Op::reduce_sum, {-1}, false, {2}, {3, 15}},
    {Op::reduce_sum, {0}, false, {3}, {6, 2, 10}},
    {Op::reduce_sum, {-2}, true, {1, 3}, {6, 2, 10}},
    {Op::reduce_sum, {0, 1}, false, {}, {18}},
    {Op::reduce_sum, {-1, 0}, true, {1, 1}, {18}},
    {Op::reduce_sum, {}, false, {2, 3}, {1, -2, 4, 5, 4, 6}},
    {Op::reduce_sum, {}, true, {2, 3}, {1, -2, 4, 5, 4, 6}},
    {Op::reduce_mean, {1}, false, {2}, {1, 5}},
    {Op::reduce_mean, {0}, false, {3}, {3, 1, 5}},
    {Op::reduce_mean, {1}, true, {2, 1}, {1, 5}},
    {Op::reduce_mean, {0, 1}, false, {}, {3}},
    {Op::reduce_max, {1}, false, {2}, {4, 6}},
    {Op::reduce_max, {-2}, false, {3}, {5, 4, 6}},
    {Op::reduce_max, {0, -1}, false, {}, {6}},
    {Op::reduce_max, {1}, true, {2, 1}, {4, 6}},
    {Op::reduce_min, {1}, false, {2}, {-2, 4}},
    {Op::reduce_min, {0}, false, {3}, {1, -2, 4}},
    {Op::reduce_min, {0, 1}, true, {1, 1}, {-2}},
    {Op::reduce_prod, {1}, false, {2}, {-8, 120}},
    {Op::reduce_prod, {0}, false, {3}, {5, -8, 24}},
    {Op::reduce_prod, {1, 0}, false, {}, {-960}},
    {Op::reduce_prod, {}, false, {2, 3}, {1, -2, 4, 5, 4, 6}},
};

// x[i][j][k] = 4i + 2j + k + 1 (1..8), reduced over axes 0 and 2.
const std::vector<Row> kRows2x2x2 = {
    {Op::reduce_sum, {0, 2}, false, {2}, {14, 22}},
    {Op::reduce_sum, {2, -3}, true, {1, 2, 1}, {14, 22}},
    {Op::reduce_sum, {1}, false, {2, 2}, {4, 6, 12, 14}},
    {Op::reduce_mean, {0, 2}, false, {2}, {3.5, 5.5}},
    {Op::reduce_max, {0, 2}, false, {2}, {6, 8}},
    {Op::reduce_min, {0, 2}, false, {2}, {1, 3}},
    {Op::reduce_prod, {0, 2}, false, {2}, {60, 672}},
    {Op::reduce_prod, {0, 1, 2}, false, {}, {40320}},
};

template <class T>
void check_rows(const HostTensor& x, const std::vector<Row>& rows) {
  for (const Row& row : rows) {
    INFO(kiln::ir::op_name(row.op)
         << " axes " << reduce_attrs(row.axes).to_string() << " keepdims " << row.keepdims);
    if (row.op == Op::reduce_mean && std::is_integral_v<T>) {
      // Integer means truncate; 3.5 and 5.5 become 3 and 5.
      std::vector<double> want;
      for (double v : row.want)
        want.push_back(std::trunc(v));
      check_values<T>(run1(row.op, {x}, reduce_attrs(row.axes, row.keepdims)), row.out,
                      as<T>(want));
    } else {
      check_values<T>(run1(row.op, {x}, reduce_attrs(row.axes, row.keepdims)), row.out,
                      as<T>(row.want));
    }
  }
}

}  // namespace

TEMPLATE_TEST_CASE("reductions over single, multiple, negative and all axes", "[reduction]", float,
                   double, int32_t, int64_t) {
  using T = TestType;
  check_rows<T>(make<T>({2, 3}, as<T>({1, -2, 4, 5, 4, 6})), kRows2x3);
  check_rows<T>(make<T>({2, 2, 2}, as<T>({1, 2, 3, 4, 5, 6, 7, 8})), kRows2x2x2);
}

TEMPLATE_TEST_CASE("reductions over size-1 dims and of scalars", "[reduction]", float, double,
                   int32_t, int64_t) {
  using T = TestType;
  HostTensor row = make<T>({1, 3}, as<T>({2, 3, 4}));
  check_values<T>(run1(Op::reduce_sum, {row}, reduce_attrs({0})), {3}, as<T>({2, 3, 4}));
  check_values<T>(run1(Op::reduce_prod, {row}, reduce_attrs({1}, true)), {1, 1}, as<T>({24}));
  check_values<T>(run1(Op::reduce_max, {row}, reduce_attrs({-2})), {3}, as<T>({2, 3, 4}));
  HostTensor scalar = make<T>({}, as<T>({7}));
  for (Op op : {Op::reduce_sum, Op::reduce_mean, Op::reduce_max, Op::reduce_min, Op::reduce_prod}) {
    check_values<T>(run1(op, {scalar}, reduce_attrs({})), {}, as<T>({7}));
  }
}

TEMPLATE_TEST_CASE("empty reductions give each op's identity", "[reduction]", float, double) {
  using T = TestType;
  HostTensor empty = make<T>({2, 0}, {});
  check_values<T>(run1(Op::reduce_sum, {empty}, reduce_attrs({1})), {2}, as<T>({0, 0}));
  check_values<T>(run1(Op::reduce_prod, {empty}, reduce_attrs({1})), {2}, as<T>({1, 1}));
  check_values<T>(run1(Op::reduce_max, {empty}, reduce_attrs({1})), {2}, as<T>({-kInf, -kInf}));
  check_values<T>(run1(Op::reduce_min, {empty}, reduce_attrs({-1})), {2}, as<T>({kInf, kInf}));
  check_values<T>(run1(Op::reduce_mean, {empty}, reduce_attrs({1}, true)), {2, 1},
                  as<T>({kNaN, kNaN}));
  check_values<T>(run1(Op::reduce_sum, {empty}, reduce_attrs({0})), {0}, std::vector<T>{});
  check_values<T>(run1(Op::reduce_sum, {empty}, reduce_attrs({0, 1})), {}, as<T>({0}));
}

TEMPLATE_TEST_CASE("empty integer reductions", "[reduction]", int32_t, int64_t) {
  using T = TestType;
  using L = std::numeric_limits<T>;
  HostTensor empty = make<T>({0, 2}, {});
  check_values<T>(run1(Op::reduce_sum, {empty}, reduce_attrs({0})), {2}, std::vector<T>{0, 0});
  check_values<T>(run1(Op::reduce_prod, {empty}, reduce_attrs({0})), {2}, std::vector<T>{1, 1});
  check_values<T>(run1(Op::reduce_max, {empty}, reduce_attrs({0})), {2},
                  std::vector<T>{L::lowest(), L::lowest()});
  check_values<T>(run1(Op::reduce_min, {empty}, reduce_attrs({0})), {2},
                  std::vector<T>{L::max(), L::max()});
  check_values<T>(run1(Op::reduce_mean, {empty}, reduce_attrs({0})), {2}, std::vector<T>{0, 0});
}

TEST_CASE("integer reductions wrap and integer means truncate toward zero", "[reduction]") {
  const int32_t i32max = std::numeric_limits<int32_t>::max();
  const int64_t i64max = std::numeric_limits<int64_t>::max();
  check_values<int32_t>(run1(Op::reduce_sum, {make<int32_t>({2}, {i32max, 1})}, reduce_attrs({0})),
                        {}, {std::numeric_limits<int32_t>::min()});
  check_values<int64_t>(run1(Op::reduce_sum, {make<int64_t>({2}, {i64max, 1})}, reduce_attrs({0})),
                        {}, {std::numeric_limits<int64_t>::min()});
  check_values<int32_t>(
      run1(Op::reduce_prod, {make<int32_t>({2}, {65536, 65536})}, reduce_attrs({0})), {}, {0});
  check_values<int32_t>(
      run1(Op::reduce_prod, {make<int32_t>({2}, {65536, -32768})}, reduce_attrs({0})), {},
      {std::numeric_limits<int32_t>::min()});
  check_values<int64_t>(
      run1(Op::reduce_prod, {make<int64_t>({2}, {int64_t{1} << 32, int64_t{1} << 32})},
           reduce_attrs({0})),
      {}, {0});
  check_values<int32_t>(run1(Op::reduce_mean, {make<int32_t>({2}, {-3, -4})}, reduce_attrs({0})),
                        {}, {-3});
  check_values<int64_t>(run1(Op::reduce_mean, {make<int64_t>({3}, {1, 1, 2})}, reduce_attrs({0})),
                        {}, {1});
  check_values<float>(run1(Op::reduce_mean, {make<float>({2}, {-3, -4})}, reduce_attrs({0})), {},
                      {-3.5f});
}

TEST_CASE("float sums accumulate in double", "[reduction]") {
  // Summed left to right in f32 this is 0; the interpreter accumulates in double.
  check_values<float>(
      run1(Op::reduce_sum, {make<float>({3}, {1e8f, 1.f, -1e8f})}, reduce_attrs({0})), {}, {1.f});
  check_values<float>(
      run1(Op::reduce_mean, {make<float>({3}, {1e8f, 3.f, -1e8f})}, reduce_attrs({0})), {}, {1.f});
}

TEST_CASE("max and min propagate NaN", "[reduction]") {
  HostTensor x = make<double>({2, 2}, {1, kNaN, 3, 2});
  check_values<double>(run1(Op::reduce_max, {x}, reduce_attrs({1})), {2}, {kNaN, 3});
  check_values<double>(run1(Op::reduce_min, {x}, reduce_attrs({1})), {2}, {kNaN, 2});
  check_values<double>(run1(Op::reduce_sum, {x}, reduce_attrs({0})), {2}, {4, kNaN});
}

TEMPLATE_TEST_CASE("argmax and argmin pick the first extreme", "[reduction]", float, double,
                   int32_t, int64_t) {
  using T = TestType;
  // [[1, 3, 3], [5, 0, 5]]: ties resolve to the earlier index.
  HostTensor x = make<T>({2, 3}, as<T>({1, 3, 3, 5, 0, 5}));
  Attrs axis1;
  axis1.set_int("axis", 1);
  Attrs axis0;
  axis0.set_int("axis", 0);
  Attrs last_i32;
  last_i32.set_int("axis", -1).set_dtype("dtype", DType::i32);
  check_values<int64_t>(run1(Op::argmax, {x}, axis1), {2}, {1, 0});
  check_values<int64_t>(run1(Op::argmin, {x}, axis1), {2}, {0, 1});
  check_values<int64_t>(run1(Op::argmax, {x}, axis0), {3}, {1, 0, 1});
  check_values<int64_t>(run1(Op::argmin, {x}, axis0), {3}, {0, 1, 0});
  check_values<int32_t>(run1(Op::argmax, {x}, last_i32), {2}, {1, 0});
  check_values<int32_t>(run1(Op::argmin, {x}, last_i32), {2}, {0, 1});
  // 3-D, middle axis; size-1 axis; zero-size other dims.
  HostTensor y = make<T>({2, 3, 1}, as<T>({4, 9, 2, -1, -5, 7}));
  check_values<int64_t>(run1(Op::argmax, {y}, axis1), {2, 1}, {1, 2});
  check_values<int64_t>(run1(Op::argmin, {y}, axis1), {2, 1}, {2, 1});
  Attrs axis2;
  axis2.set_int("axis", 2);
  check_values<int64_t>(run1(Op::argmax, {y}, axis2), {2, 3}, {0, 0, 0, 0, 0, 0});
  check_values<int64_t>(run1(Op::argmax, {make<T>({0, 3}, {})}, axis1), {0}, {});
}

TEST_CASE("argmax points at the first NaN", "[reduction]") {
  Attrs a;
  a.set_int("axis", 0);
  HostTensor x = make<float>({4}, {1, std::nanf(""), 7, std::nanf("")});
  check_values<int64_t>(run1(Op::argmax, {x}, a), {}, {1});
  check_values<int64_t>(run1(Op::argmin, {x}, a), {}, {1});
}

TEST_CASE("reduction shape rules reject bad operands and attributes", "[reduction][errors]") {
  using Catch::Contains;
  auto infer = [](Op op, TensorType t, const Attrs& a) {
    std::vector<TensorType> in{t};
    return kiln::ir::infer_types(op, in, a);
  };
  TensorType f23{DType::f32, {2, 3}};
  CHECK_THROWS_AS(infer(Op::reduce_sum, {DType::boolean, {2}}, reduce_attrs({0})), kiln::TypeError);
  CHECK_THROWS_WITH(infer(Op::reduce_max, {DType::boolean, {2}}, reduce_attrs({0})),
                    Contains("reduce_max") && Contains("numeric") && Contains("bool[2]"));
  CHECK_THROWS_AS(infer(Op::reduce_sum, f23, reduce_attrs({2})), kiln::ShapeError);
  CHECK_THROWS_WITH(infer(Op::reduce_sum, f23, reduce_attrs({-3})),
                    Contains("axis -3 is out of range"));
  CHECK_THROWS_AS(infer(Op::reduce_mean, f23, reduce_attrs({1, -1})), kiln::ValueError);
  CHECK_THROWS_WITH(infer(Op::reduce_mean, f23, reduce_attrs({1, -1})),
                    Contains("reduce_mean") && Contains("more than once"));
  CHECK_THROWS_AS(infer(Op::reduce_prod, f23, Attrs{}), kiln::ValueError);
  CHECK_THROWS_WITH(infer(Op::reduce_prod, f23, Attrs{}), Contains("axes"));

  Attrs axis1;
  axis1.set_int("axis", 1);
  CHECK_THROWS_AS(infer(Op::argmax, {DType::f32, {2, 0}}, axis1), kiln::ShapeError);
  CHECK_THROWS_WITH(infer(Op::argmin, {DType::f32, {2, 0}}, axis1),
                    Contains("argmin") && Contains("size 0"));
  CHECK_THROWS_AS(infer(Op::argmax, {DType::boolean, {2, 2}}, axis1), kiln::TypeError);
  CHECK_THROWS_AS(infer(Op::argmax, {DType::f32, {}}, Attrs(axis1).set_int("axis", 0)),
                  kiln::ShapeError);
  Attrs bad_dtype = axis1;
  bad_dtype.set_dtype("dtype", DType::f32);
  CHECK_THROWS_AS(infer(Op::argmax, f23, bad_dtype), kiln::TypeError);
  CHECK_THROWS_WITH(infer(Op::argmax, f23, bad_dtype), Contains("i32 or i64"));
  CHECK_THROWS_AS(infer(Op::argmax, f23, Attrs{}), kiln::ValueError);
}
