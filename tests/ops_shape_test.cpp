// Values of the shape ops through shape inference and the interpreter, against hand-computed
// results. The error cases live in ops_shape_errors_test.cpp.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "op_test_util.h"

namespace {

using namespace kiln::testing;

// Small integers as T. bool keeps only odd/even, which still tells neighbouring elements apart,
// so a kernel that moved the wrong bytes shows up.
template <class T>
T as(int v) {
  if constexpr (std::is_same_v<T, bool>)
    return v % 2 != 0;
  else
    return static_cast<T>(v);
}
template <class T>
std::vector<T> vals(std::initializer_list<int> v) {
  std::vector<T> out;
  for (int x : v)
    out.push_back(as<T>(x));
  return out;
}
template <class T>
HostTensor tensor(Shape shape, std::initializer_list<int> v) {
  return make<T>(std::move(shape), vals<T>(v));
}
template <class T>
void expect(const HostTensor& got, const Shape& shape, std::initializer_list<int> want) {
  check_values<T>(got, shape, vals<T>(want));
}

}  // namespace

// One row per op for every dtype: the kernels move bytes, so this mostly checks element sizes.
TEMPLATE_TEST_CASE("shape ops work for every dtype", "[shape][dtype]", float, double, int32_t,
                   int64_t, bool) {
  using T = TestType;
  HostTensor x = tensor<T>({2, 3}, {1, 2, 3, 4, 5, 6});

  SECTION("reshape") {
    expect<T>(run1(Op::reshape, {x}, ints("shape", {3, -1})), {3, 2}, {1, 2, 3, 4, 5, 6});
  }
  SECTION("transpose") {
    expect<T>(run1(Op::transpose, {x}, ints("perm", {1, 0})), {3, 2}, {1, 4, 2, 5, 3, 6});
  }
  SECTION("squeeze") {
    HostTensor y = tensor<T>({1, 3, 1}, {1, 2, 3});
    expect<T>(run1(Op::squeeze, {y}, ints("axes", {0, -1})), {3}, {1, 2, 3});
  }
  SECTION("expand_dims") {
    expect<T>(run1(Op::expand_dims, {x}, axis_attr(-1)), {2, 3, 1}, {1, 2, 3, 4, 5, 6});
    expect<T>(run1(Op::expand_dims, {x}, axis_attr(0)), {1, 2, 3}, {1, 2, 3, 4, 5, 6});
  }
  SECTION("broadcast_to") {
    expect<T>(run1(Op::broadcast_to, {tensor<T>({3}, {1, 2, 3})}, ints("shape", {2, 3})), {2, 3},
              {1, 2, 3, 1, 2, 3});
    expect<T>(run1(Op::broadcast_to, {tensor<T>({2, 1}, {1, 2})}, ints("shape", {2, 3})), {2, 3},
              {1, 1, 1, 2, 2, 2});
  }
  SECTION("concat of three, one empty") {
    HostTensor a = tensor<T>({1, 2}, {1, 2});
    HostTensor b = tensor<T>({2, 2}, {3, 4, 5, 6});
    HostTensor e = tensor<T>({0, 2}, {});
    expect<T>(run1(Op::concat, {a, e, b}, axis_attr(0)), {3, 2}, {1, 2, 3, 4, 5, 6});
  }
  SECTION("split into unequal sizes") {
    Attrs attrs = ints("sizes", {1, 0, 2});
    attrs.set_int("axis", 1);
    auto out = run(Op::split, {x}, attrs);
    REQUIRE(out.size() == 3);
    expect<T>(out[0], {2, 1}, {1, 4});
    expect<T>(out[1], {2, 0}, {});
    expect<T>(out[2], {2, 2}, {2, 3, 5, 6});
  }
  SECTION("slice reversed with a step") {
    // Rows 1, 0 and columns 2, 0.
    expect<T>(run1(Op::slice, {x}, slice_attrs({1, 2}, {-1, -1}, {-1, -2})), {2, 2}, {6, 4, 3, 1});
  }
  SECTION("gather") {
    HostTensor idx = make<int32_t>({2, 2}, {2, 0, 1, 1});
    expect<T>(run1(Op::gather, {x, idx}, axis_attr(1)), {2, 2, 2}, {3, 1, 2, 2, 6, 4, 5, 5});
  }
  SECTION("pad") {
    Attrs attrs = ints("paddings", {1, 0, 0, 1});
    attrs.set_int("value", 7);
    expect<T>(run1(Op::pad, {x}, attrs), {3, 4}, {7, 7, 7, 7, 1, 2, 3, 7, 4, 5, 6, 7});
  }
  SECTION("tile") {
    expect<T>(run1(Op::tile, {tensor<T>({1, 2}, {1, 2})}, ints("multiples", {2, 2})), {2, 4},
              {1, 2, 1, 2, 1, 2, 1, 2});
  }
}

TEST_CASE("bool elements keep their exact pattern", "[shape][dtype]") {
  HostTensor x = make<bool>({2, 3}, {true, true, false, false, false, true});
  check_values<bool>(run1(Op::transpose, {x}, ints("perm", {1, 0})), {3, 2},
                     {true, false, true, false, false, true});
  check_values<bool>(run1(Op::slice, {x}, slice_attrs({1, 0}, {-1, 3}, {-1, 1})), {2, 3},
                     {false, false, true, true, true, false});
}

TEST_CASE("reshape", "[shape][reshape]") {
  struct Row {
    Shape in;
    std::vector<int64_t> shape;
    Shape want;
  };
  std::vector<Row> rows = {
      {{2, 3}, {6}, {6}},
      {{2, 3}, {-1}, {6}},
      {{2, 3}, {1, -1, 2}, {1, 3, 2}},
      {{2, 3}, {3, 2}, {3, 2}},
      {{1}, {}, {}},
      {{}, {1, -1}, {1, 1}},
      {{0, 3}, {3, 0}, {3, 0}},
      {{0, 3}, {-1, 3}, {0, 3}},
      {{2, 0}, {0, 5, 7}, {0, 5, 7}},
  };
  for (const Row& row : rows) {
    INFO("reshape " << row.in << " to " << Shape(row.shape));
    std::vector<int32_t> values(static_cast<size_t>(row.in.num_elements()));
    for (size_t i = 0; i < values.size(); ++i)
      values[i] = static_cast<int32_t>(i) + 1;
    HostTensor out = run1(Op::reshape, {make<int32_t>(row.in, values)}, ints("shape", row.shape));
    check_values<int32_t>(out, row.want, values);
  }
}

TEST_CASE("transpose", "[shape][transpose]") {
  std::vector<int32_t> iota(12);
  for (int i = 0; i < 12; ++i)
    iota[static_cast<size_t>(i)] = i;
  HostTensor x = make<int32_t>({2, 3, 2}, iota);
  // out[i, j, k] = x[j, k, i].
  check_values<int32_t>(run1(Op::transpose, {x}, ints("perm", {2, 0, 1})), {2, 2, 3},
                        {0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11});
  check_values<int32_t>(run1(Op::transpose, {x}, ints("perm", {0, 1, 2})), {2, 3, 2}, iota);
  check_values<float>(run1(Op::transpose, {make<float>({}, {2.5f})}, ints("perm", {})), {}, {2.5f});
  check_values<float>(run1(Op::transpose, {make<float>({0, 2}, {})}, ints("perm", {1, 0})), {2, 0},
                      {});
}

TEST_CASE("squeeze and expand_dims", "[shape][squeeze][expand_dims]") {
  HostTensor x = tensor<float>({1, 2, 1}, {1, 2});
  check_values<float>(run1(Op::squeeze, {x}, ints("axes", {})), {1, 2, 1}, {1, 2});
  check_values<float>(run1(Op::squeeze, {x}, ints("axes", {-3})), {2, 1}, {1, 2});
  check_values<float>(run1(Op::squeeze, {x}, ints("axes", {2, 0})), {2}, {1, 2});
  check_values<float>(run1(Op::squeeze, {make<float>({1, 0, 1}, {})}, ints("axes", {0, 2})), {0},
                      {});
  check_values<float>(run1(Op::squeeze, {make<float>({1}, {4})}, ints("axes", {0})), {}, {4});

  HostTensor v = tensor<int64_t>({2}, {1, 2});
  check_values<int64_t>(run1(Op::expand_dims, {v}, axis_attr(1)), {2, 1}, {1, 2});
  check_values<int64_t>(run1(Op::expand_dims, {v}, axis_attr(-1)), {2, 1}, {1, 2});
  check_values<int64_t>(run1(Op::expand_dims, {v}, axis_attr(-2)), {1, 2}, {1, 2});
  HostTensor s = make<int64_t>({}, {9});
  check_values<int64_t>(run1(Op::expand_dims, {s}, axis_attr(0)), {1}, {9});
  check_values<int64_t>(run1(Op::expand_dims, {s}, axis_attr(-1)), {1}, {9});
  check_values<int64_t>(run1(Op::expand_dims, {make<int64_t>({0}, {})}, axis_attr(0)), {1, 0}, {});
}

TEST_CASE("broadcast_to", "[shape][broadcast_to]") {
  check_values<double>(run1(Op::broadcast_to, {make<double>({}, {1.5})}, ints("shape", {2, 2})),
                       {2, 2}, {1.5, 1.5, 1.5, 1.5});
  check_values<double>(
      run1(Op::broadcast_to, {make<double>({2, 1}, {1, 2})}, ints("shape", {3, 2, 2})), {3, 2, 2},
      {1, 1, 2, 2, 1, 1, 2, 2, 1, 1, 2, 2});
  check_values<double>(run1(Op::broadcast_to, {make<double>({2}, {1, 2})}, ints("shape", {2})), {2},
                       {1, 2});
  check_values<double>(
      run1(Op::broadcast_to, {make<double>({1, 3}, {1, 2, 3})}, ints("shape", {0, 3})), {0, 3}, {});
  check_values<double>(run1(Op::broadcast_to, {make<double>({0}, {})}, ints("shape", {2, 0})),
                       {2, 0}, {});
}

TEST_CASE("concat", "[shape][concat]") {
  HostTensor a = tensor<int64_t>({2, 1}, {1, 2});
  HostTensor b = tensor<int64_t>({2, 2}, {3, 4, 5, 6});
  HostTensor e = tensor<int64_t>({2, 0}, {});
  check_values<int64_t>(run1(Op::concat, {a, b}, axis_attr(-1)), {2, 3}, {1, 3, 4, 2, 5, 6});
  check_values<int64_t>(run1(Op::concat, {b, e, a}, axis_attr(1)), {2, 3}, {3, 4, 1, 5, 6, 2});
  check_values<int64_t>(run1(Op::concat, {a}, axis_attr(0)), {2, 1}, {1, 2});
  check_values<int64_t>(run1(Op::concat, {e, e}, axis_attr(0)), {4, 0}, {});
  HostTensor c = tensor<int64_t>({1}, {7});
  check_values<int64_t>(run1(Op::concat, {c, tensor<int64_t>({2}, {8, 9}), c}, axis_attr(0)), {4},
                        {7, 8, 9, 7});
}

TEST_CASE("split", "[shape][split]") {
  HostTensor x = tensor<float>({3, 2}, {1, 2, 3, 4, 5, 6});
  Attrs attrs = ints("sizes", {2, 1});
  attrs.set_int("axis", -2);
  auto out = run(Op::split, {x}, attrs);
  REQUIRE(out.size() == 2);
  check_values<float>(out[0], {2, 2}, {1, 2, 3, 4});
  check_values<float>(out[1], {1, 2}, {5, 6});

  attrs = ints("sizes", {2});
  attrs.set_int("axis", 1);
  out = run(Op::split, {x}, attrs);
  REQUIRE(out.size() == 1);
  check_values<float>(out[0], {3, 2}, {1, 2, 3, 4, 5, 6});

  attrs = ints("sizes", {0, 0});
  attrs.set_int("axis", 0);
  out = run(Op::split, {make<float>({0, 2}, {})}, attrs);
  REQUIRE(out.size() == 2);
  check_values<float>(out[0], {0, 2}, {});
  check_values<float>(out[1], {0, 2}, {});
}

TEST_CASE("slice", "[shape][slice]") {
  HostTensor v = tensor<int32_t>({5}, {0, 1, 2, 3, 4});
  struct Row {
    int64_t begin, end, stride;
    std::vector<int32_t> want;
  };
  std::vector<Row> rows = {
      {0, 5, 1, {0, 1, 2, 3, 4}},
      {1, 4, 1, {1, 2, 3}},
      {0, 5, 2, {0, 2, 4}},
      {1, 5, 3, {1, 4}},
      {0, 6, 3, {0, 3}},
      {4, -1, -1, {4, 3, 2, 1, 0}},
      {4, -1, -2, {4, 2, 0}},
      {3, 0, -2, {3, 1}},
      {2, 3, 1, {2}},
      {3, 3, 1, {}},
      {10, 2, 1, {}},
      {-5, -8, 1, {}},
      {0, 4, -1, {}},
      {7, 9, -1, {}},
      {-1, 2, 5, {0}},
  };
  rows.back() = {0, 2, 5, {0}};
  for (const Row& r : rows) {
    INFO("range(" << r.begin << ", " << r.end << ", " << r.stride << ")");
    HostTensor out = run1(Op::slice, {v}, slice_attrs({r.begin}, {r.end}, {r.stride}));
    check_values<int32_t>(out, {static_cast<int64_t>(r.want.size())}, r.want);
  }

  HostTensor x = tensor<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  // Reverse rows, keep columns.
  check_values<float>(run1(Op::slice, {x}, slice_attrs({1, 0}, {-1, 3}, {-1, 1})), {2, 3},
                      {4, 5, 6, 1, 2, 3});
  check_values<float>(run1(Op::slice, {x}, slice_attrs({0, 1}, {2, 3}, {1, 1})), {2, 2},
                      {2, 3, 5, 6});
  // An empty dimension empties the result whatever the others say.
  check_values<float>(run1(Op::slice, {x}, slice_attrs({0, 99}, {2, 99}, {1, 1})), {2, 0}, {});
  check_values<float>(
      run1(Op::slice, {make<float>({0, 2}, {})}, slice_attrs({0, 0}, {0, 2}, {1, 1})), {0, 2}, {});
  check_values<float>(run1(Op::slice, {make<float>({}, {3})}, slice_attrs({}, {}, {})), {}, {3});
  // Extreme positions with an empty range must not overflow.
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  check_values<int32_t>(run1(Op::slice, {v}, slice_attrs({kMax}, {kMin}, {1})), {0}, {});
  check_values<int32_t>(run1(Op::slice, {v}, slice_attrs({kMin}, {kMax}, {-1})), {0}, {});
}

TEST_CASE("gather", "[shape][gather]") {
  HostTensor p = tensor<float>({3, 2}, {1, 2, 3, 4, 5, 6});
  // Axis 0 with 2-D indices: rows 2, 0, 1, 2.
  check_values<float>(run1(Op::gather, {p, make<int64_t>({2, 2}, {2, 0, 1, 2})}, axis_attr(0)),
                      {2, 2, 2}, {5, 6, 1, 2, 3, 4, 5, 6});
  // Axis 1 (as -1) with 2-D indices: out[i, a, b] = p[i, idx[a, b]].
  check_values<float>(run1(Op::gather, {p, make<int32_t>({2, 2}, {1, 0, 1, 1})}, axis_attr(-1)),
                      {3, 2, 2}, {2, 1, 2, 2, 4, 3, 4, 4, 6, 5, 6, 6});
  check_values<float>(run1(Op::gather, {p, make<int32_t>({}, {1})}, axis_attr(0)), {2}, {3, 4});
  check_values<float>(run1(Op::gather, {p, make<int32_t>({0}, {})}, axis_attr(0)), {0, 2}, {});
  check_values<float>(run1(Op::gather, {p, make<int64_t>({1, 0}, {})}, axis_attr(1)), {3, 1, 0},
                      {});
  check_values<float>(
      run1(Op::gather, {make<float>({0, 2}, {}), make<int64_t>({2}, {1, 0})}, axis_attr(1)), {0, 2},
      {});
}

TEST_CASE("pad", "[shape][pad]") {
  HostTensor x = tensor<float>({2, 2}, {1, 2, 3, 4});
  check_values<float>(run1(Op::pad, {x}, ints("paddings", {0, 1, 1, 0})), {3, 3},
                      {0, 1, 2, 0, 3, 4, 0, 0, 0});
  Attrs attrs = ints("paddings", {1, 1, 0, 0});
  attrs.set_float("value", 1.5);
  check_values<float>(run1(Op::pad, {x}, attrs), {4, 2}, {1.5f, 1.5f, 1, 2, 3, 4, 1.5f, 1.5f});
  check_values<float>(run1(Op::pad, {make<float>({0, 1}, {})}, attrs), {2, 1}, {1.5f, 1.5f});
  check_values<float>(run1(Op::pad, {make<float>({}, {5})}, ints("paddings", {})), {}, {5});

  // The value converts as `cast` does: truncate and saturate toward integers, NaN becomes 0.
  HostTensor i = tensor<int32_t>({1}, {9});
  struct Row {
    double value;
    int32_t want;
  };
  std::vector<Row> rows = {{2.7, 2},
                           {-2.7, -2},
                           {1e30, std::numeric_limits<int32_t>::max()},
                           {-1e30, std::numeric_limits<int32_t>::min()},
                           {std::nan(""), 0}};
  for (const Row& r : rows) {
    INFO("value " << r.value);
    Attrs a = ints("paddings", {1, 0});
    a.set_float("value", r.value);
    check_values<int32_t>(run1(Op::pad, {i}, a), {2}, {r.want, 9});
  }
  Attrs b = ints("paddings", {0, 2});
  b.set_float("value", 0.25);
  check_values<bool>(run1(Op::pad, {make<bool>({1}, {false})}, b), {3}, {false, true, true});
  b.set_int("value", 0);
  check_values<bool>(run1(Op::pad, {make<bool>({1}, {true})}, b), {3}, {true, false, false});
  b.set_int("value", -3);
  check_values<double>(run1(Op::pad, {make<double>({1}, {0.5})}, b), {3}, {0.5, -3, -3});
  b.set_float("value", 1e300);
  check_values<float>(run1(Op::pad, {make<float>({1}, {0.5f})}, b), {3},
                      {0.5f, INFINITY, INFINITY});
}

TEST_CASE("tile", "[shape][tile]") {
  check_values<int32_t>(run1(Op::tile, {tensor<int32_t>({2}, {1, 2})}, ints("multiples", {3})), {6},
                        {1, 2, 1, 2, 1, 2});
  check_values<int32_t>(
      run1(Op::tile, {tensor<int32_t>({2, 1}, {1, 2})}, ints("multiples", {1, 3})), {2, 3},
      {1, 1, 1, 2, 2, 2});
  check_values<int32_t>(
      run1(Op::tile, {tensor<int32_t>({1, 2}, {1, 2})}, ints("multiples", {0, 2})), {0, 4}, {});
  check_values<int32_t>(run1(Op::tile, {tensor<int32_t>({0, 2}, {})}, ints("multiples", {3, 1})),
                        {0, 2}, {});
  check_values<int32_t>(run1(Op::tile, {make<int32_t>({}, {4})}, ints("multiples", {})), {}, {4});
}
