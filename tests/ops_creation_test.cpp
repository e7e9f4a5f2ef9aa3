// Creation ops (constant, fill, range, linspace, one_hot, random_uniform, random_normal) and the
// Philox-4x32-10 generator behind the random ops.
#include <cmath>
#include <limits>
#include <vector>

#include "kiln/ir/philox.h"
#include "op_test_util.h"

using namespace kiln::testing;

namespace {

HostTensor create(Op op, const Attrs& attrs) {
  return run1(op, {}, attrs);
}

Attrs fill_attrs(DType dtype, std::vector<int64_t> shape) {
  Attrs a;
  a.set_dtype("dtype", dtype).set_ints("shape", std::move(shape));
  return a;
}

Attrs range_attrs(DType dtype, double start, double limit, double delta) {
  Attrs a;
  a.set_dtype("dtype", dtype);
  if (kiln::ir::is_integer(dtype)) {
    a.set_int("start", static_cast<int64_t>(start)).set_int("limit", static_cast<int64_t>(limit));
    a.set_int("delta", static_cast<int64_t>(delta));
  } else {
    a.set_float("start", start).set_float("limit", limit).set_float("delta", delta);
  }
  return a;
}

Attrs linspace_attrs(DType dtype, double start, double stop, int64_t num) {
  Attrs a;
  a.set_dtype("dtype", dtype).set_float("start", start).set_float("stop", stop);
  a.set_int("num", num);
  return a;
}

Attrs uniform_attrs(DType dtype, std::vector<int64_t> shape, double lo, double hi, int64_t seed) {
  Attrs a = fill_attrs(dtype, std::move(shape));
  a.set_float("minval", lo).set_float("maxval", hi).set_int("seed", seed);
  return a;
}

Attrs normal_attrs(DType dtype, std::vector<int64_t> shape, double mean, double stddev,
                   int64_t seed) {
  Attrs a = fill_attrs(dtype, std::move(shape));
  a.set_float("mean", mean).set_float("stddev", stddev).set_int("seed", seed);
  return a;
}

Attrs one_hot_attrs(int64_t depth, double on = 1.0, double off = 0.0) {
  Attrs a;
  a.set_int("depth", depth).set_float("on_value", on).set_float("off_value", off);
  return a;
}

// Throws E from shape inference with a message starting with the op name and containing `what`.
template <class E>
void check_rejects(Op op, std::vector<TensorType> operands, const Attrs& attrs,
                   const std::string& what) {
  INFO(kiln::ir::op_name(op) << " " << attrs.to_string());
  CHECK_THROWS_AS(kiln::ir::infer_types(op, operands, attrs), E);
  CHECK_THROWS_WITH(
      kiln::ir::infer_types(op, operands, attrs),
      Catch::StartsWith(std::string(kiln::ir::op_name(op)) + ":") && Catch::Contains(what));
}

struct Moments {
  double mean = 0, stddev = 0, min = 0, max = 0;
};

template <class T>
Moments moments(const HostTensor& t) {
  Moments m{0, 0, std::numeric_limits<double>::infinity(),
            -std::numeric_limits<double>::infinity()};
  double sum = 0, sum_sq = 0;
  for (T v : t.values<T>()) {
    sum += v;
    sum_sq += static_cast<double>(v) * v;
    m.min = std::min<double>(m.min, v);
    m.max = std::max<double>(m.max, v);
  }
  double n = static_cast<double>(t.num_elements());
  m.mean = sum / n;
  m.stddev = std::sqrt(sum_sq / n - m.mean * m.mean);
  return m;
}

}  // namespace

TEST_CASE("philox4x32_10 matches the Random123 known-answer vectors", "[creation][philox]") {
  using kiln::ir::philox4x32_10;
  static_assert(philox4x32_10({0, 0, 0, 0}, {0, 0})[0] == 0x6627e8d5u);
  CHECK(philox4x32_10({0, 0, 0, 0}, {0, 0}) ==
        kiln::ir::PhiloxCounter{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8});
  CHECK(philox4x32_10({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}) ==
        kiln::ir::PhiloxCounter{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd});
  CHECK(philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}) ==
        kiln::ir::PhiloxCounter{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1});
  // Element i of seed s: counter (i low, i high, 0, 0), key (s low, s high).
  CHECK(kiln::ir::philox_for_element(0, 0) == philox4x32_10({0, 0, 0, 0}, {0, 0}));
  CHECK(kiln::ir::philox_for_element(0xffffffff00000001ull, 0x0000000500000007ull) ==
        philox4x32_10({7, 5, 0, 0}, {1, 0xffffffff}));
}

TEST_CASE("constant returns its value", "[creation]") {
  HostTensor value = make<int32_t>({2, 2}, {1, -2, 3, 4});
  CHECK(create(Op::constant, Attrs().set_tensor("value", value)).bitwise_equal(value));
  HostTensor scalar = make<double>({}, {2.5});
  CHECK(create(Op::constant, Attrs().set_tensor("value", scalar)).bitwise_equal(scalar));
  HostTensor empty = make<bool>({0, 3}, {});
  CHECK(create(Op::constant, Attrs().set_tensor("value", empty)).bitwise_equal(empty));
  check_rejects<kiln::ValueError>(Op::constant, {}, {}, "missing attribute 'value'");
  check_rejects<kiln::ValueError>(Op::constant, {}, Attrs().set_float("value", 1.0), "tensor");
}

TEST_CASE("fill for every dtype", "[creation]") {
  check_values<float>(create(Op::fill, fill_attrs(DType::f32, {2, 3}).set_float("value", 1.5)),
                      Shape{2, 3}, {1.5, 1.5, 1.5, 1.5, 1.5, 1.5});
  check_values<double>(create(Op::fill, fill_attrs(DType::f64, {2}).set_int("value", 2)), Shape{2},
                       {2.0, 2.0});
  check_values<int32_t>(create(Op::fill, fill_attrs(DType::i32, {}).set_int("value", -7)), Shape{},
                        {-7});
  check_values<int64_t>(
      create(Op::fill, fill_attrs(DType::i64, {1, 2}).set_int("value", int64_t{1} << 40)),
      Shape{1, 2}, {int64_t{1} << 40, int64_t{1} << 40});
  check_values<bool>(create(Op::fill, fill_attrs(DType::boolean, {2}).set_int("value", 1)),
                     Shape{2}, {true, true});
  check_values<bool>(create(Op::fill, fill_attrs(DType::boolean, {1}).set_bool("value", false)),
                     Shape{1}, {false});
  check_values<float>(create(Op::fill, fill_attrs(DType::f32, {0, 4}).set_float("value", 1)),
                      Shape{0, 4}, {});
}

TEST_CASE("fill rejects bad attributes", "[creation][errors]") {
  check_rejects<kiln::ValueError>(
      Op::fill, {}, fill_attrs(DType::f32, {2, -1}).set_float("value", 0), "negative dimension");
  check_rejects<kiln::ValueError>(Op::fill, {},
                                  Attrs().set_ints("shape", {2}).set_float("value", 0),
                                  "missing attribute 'dtype'");
  check_rejects<kiln::ValueError>(Op::fill, {}, fill_attrs(DType::f32, {2}), "'value'");
  check_rejects<kiln::ValueError>(Op::fill, {}, fill_attrs(DType::i32, {2}).set_float("value", 1.5),
                                  "'value' must be a int");
  check_rejects<kiln::ValueError>(
      Op::fill, {}, fill_attrs(DType::i32, {2}).set_int("value", int64_t{1} << 40), "i32");
  check_rejects<kiln::ValueError>(
      Op::fill, {},
      fill_attrs(DType::f32, {int64_t{1} << 40, int64_t{1} << 40}).set_float("value", 0),
      "too many elements");
  check_rejects<kiln::ValueError>(
      Op::fill, {},
      Attrs().set_dtype("dtype", DType::f32).set_int("shape", 3).set_float("value", 0), "int list");
}

TEST_CASE("range for numeric dtypes", "[creation]") {
  check_values<int32_t>(create(Op::range, range_attrs(DType::i32, 0, 5, 1)), Shape{5},
                        {0, 1, 2, 3, 4});
  check_values<int64_t>(create(Op::range, range_attrs(DType::i64, 10, 1, -3)), Shape{3},
                        {10, 7, 4});
  check_values<int32_t>(create(Op::range, range_attrs(DType::i32, 0, 0, 1)), Shape{0}, {});
  check_values<int32_t>(create(Op::range, range_attrs(DType::i32, 5, 0, 1)), Shape{0}, {});
  check_values<float>(create(Op::range, range_attrs(DType::f32, 0, 1, 0.25)), Shape{4},
                      {0, 0.25, 0.5, 0.75});
  check_values<double>(create(Op::range, range_attrs(DType::f64, 1, 2, 0.3)), Shape{4},
                       {1, 1.3, 1.6, 1.9}, 1e-12);
  check_values<double>(create(Op::range, range_attrs(DType::f64, 3, -1, -1.5)), Shape{3},
                       {3, 1.5, 0}, 1e-12);
  // limit − start overflows 64 bits here; the length is still exact.
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  Attrs wide;
  wide.set_dtype("dtype", DType::i64).set_int("start", kMin).set_int("limit", kMax);
  wide.set_int("delta", kMax);
  check_values<int64_t>(create(Op::range, wide), Shape{3}, {kMin, -1, kMax - 1});
}

TEST_CASE("range rejects bad attributes", "[creation][errors]") {
  check_rejects<kiln::ValueError>(Op::range, {}, range_attrs(DType::i32, 0, 5, 0),
                                  "'delta' must not be 0");
  check_rejects<kiln::ValueError>(Op::range, {}, range_attrs(DType::f32, 0, 5, 0),
                                  "'delta' must not be 0");
  check_rejects<kiln::TypeError>(Op::range, {}, range_attrs(DType::boolean, 0, 5, 1), "bool");
  check_rejects<kiln::ValueError>(
      Op::range, {}, range_attrs(DType::f32, 0, 5, 1).set_float("delta", NAN), "finite");
  check_rejects<kiln::ValueError>(Op::range, {},
                                  range_attrs(DType::i32, 0, 5, 1).set_float("limit", 5.0),
                                  "'limit' must be a int");
  check_rejects<kiln::ValueError>(Op::range, {}, range_attrs(DType::f32, 0, 1e30, 1e-30),
                                  "too many elements");
  check_rejects<kiln::ValueError>(Op::range, {}, range_attrs(DType::i32, 0, 1e10, 1), "i32");
}

TEST_CASE("linspace", "[creation]") {
  check_values<float>(create(Op::linspace, linspace_attrs(DType::f32, 0, 1, 5)), Shape{5},
                      {0, 0.25, 0.5, 0.75, 1});
  check_values<double>(create(Op::linspace, linspace_attrs(DType::f64, 1, -1, 3)), Shape{3},
                       {1, 0, -1}, 1e-12);
  check_values<double>(create(Op::linspace, linspace_attrs(DType::f64, 2, 7, 1)), Shape{1}, {2});
  check_values<float>(create(Op::linspace, linspace_attrs(DType::f32, 2, 7, 0)), Shape{0}, {});
  HostTensor t = create(Op::linspace, linspace_attrs(DType::f64, 0.1, 0.7, 7));
  CHECK(t.data<double>()[6] == 0.7);  // the last value is exactly stop
  check_rejects<kiln::TypeError>(Op::linspace, {}, linspace_attrs(DType::i32, 0, 1, 3), "floating");
  check_rejects<kiln::ValueError>(Op::linspace, {}, linspace_attrs(DType::f32, 0, 1, -1),
                                  "'num' must be >= 0");
  check_rejects<kiln::ValueError>(Op::linspace, {}, linspace_attrs(DType::f32, 0, INFINITY, 3),
                                  "finite");
}

TEST_CASE("one_hot", "[creation][one_hot]") {
  auto idx = make<int32_t>({3}, {0, 2, -1});
  check_values<float>(run1(Op::one_hot, {idx}, one_hot_attrs(3)), Shape{3, 3},
                      {1, 0, 0, 0, 0, 1, 0, 0, 0});
  SECTION("axis 0 puts depth first") {
    check_values<float>(run1(Op::one_hot, {idx}, one_hot_attrs(3).set_int("axis", 0)), Shape{3, 3},
                        {1, 0, 0, 0, 0, 0, 0, 1, 0});
  }
  SECTION("out-of-range indices give an off row") {
    check_values<float>(run1(Op::one_hot, {make<int64_t>({2}, {3, 100})}, one_hot_attrs(3)),
                        Shape{2, 3}, {0, 0, 0, 0, 0, 0});
  }
  SECTION("rank 2 indices, middle axis, integer and bool dtypes") {
    auto idx2 = make<int64_t>({2, 2}, {0, 1, 1, 0});
    Attrs a = one_hot_attrs(2, 5, -1).set_int("axis", 1).set_dtype("dtype", DType::i32);
    // out[i, d, j] = idx2[i, j] == d
    check_values<int32_t>(run1(Op::one_hot, {idx2}, a), Shape{2, 2, 2},
                          {5, -1, -1, 5, -1, 5, 5, -1});
    // out[i, j, d]; a nonzero off_value is true in bool, like cast
    Attrs b = one_hot_attrs(2).set_dtype("dtype", DType::boolean);
    check_values<bool>(run1(Op::one_hot, {idx2}, b), Shape{2, 2, 2},
                       {true, false, false, true, false, true, true, false});
    check_values<bool>(run1(Op::one_hot, {idx2}, a.set_dtype("dtype", DType::boolean)),
                       Shape{2, 2, 2}, {true, true, true, true, true, true, true, true});
    // out[d, i, j]
    a.set_dtype("dtype", DType::f64).set_int("axis", -3);
    check_values<double>(run1(Op::one_hot, {idx2}, a), Shape{2, 2, 2},
                         {5, -1, -1, 5, -1, 5, 5, -1});
  }
  SECTION("scalar index, zero depth, empty indices") {
    check_values<float>(run1(Op::one_hot, {make<int32_t>({}, {1})}, one_hot_attrs(3)), Shape{3},
                        {0, 1, 0});
    check_values<float>(run1(Op::one_hot, {idx}, one_hot_attrs(0)), Shape{3, 0}, {});
    check_values<float>(run1(Op::one_hot, {make<int32_t>({0}, {})}, one_hot_attrs(4)), Shape{0, 4},
                        {});
  }
  SECTION("float on/off values cast like cast does") {
    check_values<int64_t>(
        run1(Op::one_hot, {idx}, one_hot_attrs(2, 2.9, 1e30).set_dtype("dtype", DType::i64)),
        Shape{3, 2},
        {2, std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::max(),
         std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::max(),
         std::numeric_limits<int64_t>::max()});
  }
}

TEST_CASE("one_hot rejects bad operands and attributes", "[creation][one_hot][errors]") {
  TensorType i32{DType::i32, Shape{3}};
  check_rejects<kiln::TypeError>(Op::one_hot, {TensorType{DType::f32, Shape{3}}}, one_hot_attrs(3),
                                 "indices must be i32 or i64, got f32");
  check_rejects<kiln::ValueError>(Op::one_hot, {i32}, one_hot_attrs(-1), "'depth' must be >= 0");
  check_rejects<kiln::ShapeError>(Op::one_hot, {i32}, one_hot_attrs(3).set_int("axis", 2), "axis");
  check_rejects<kiln::ShapeError>(Op::one_hot, {i32}, one_hot_attrs(3).set_int("axis", -3), "axis");
  check_rejects<kiln::ValueError>(Op::one_hot, {i32}, Attrs().set_int("depth", 3),
                                  "missing attribute 'on_value'");
  check_rejects<kiln::ValueError>(Op::one_hot, {i32}, one_hot_attrs(3).set_string("dtype", "f32"),
                                  "'dtype'");
  CHECK_THROWS_WITH(
      kiln::ir::infer_types(Op::one_hot, std::vector<TensorType>{i32}, one_hot_attrs(-1)),
      Catch::Contains("operands: i32[3]") && Catch::Contains("depth = -1"));
}

TEMPLATE_TEST_CASE("random_uniform", "[creation][random]", float, double) {
  using T = TestType;
  constexpr DType dt = kiln::ir::dtype_of<T>();
  HostTensor a = create(Op::random_uniform, uniform_attrs(dt, {100000}, -2, 6, 42));
  SECTION("same seed, same bits; another seed, other bits") {
    CHECK(a.bitwise_equal(create(Op::random_uniform, uniform_attrs(dt, {100000}, -2, 6, 42))));
    HostTensor b = create(Op::random_uniform, uniform_attrs(dt, {100000}, -2, 6, 43));
    int64_t same = 0;
    for (int64_t i = 0; i < a.num_elements(); ++i)
      same += a.data<T>()[i] == b.data<T>()[i];
    CHECK(same < 100);
  }
  SECTION("range and moments") {
    Moments m = moments<T>(a);
    CHECK(m.min >= -2);
    CHECK(m.max < 6);
    CHECK(m.min < -1.99);
    CHECK(m.max > 5.99);
    CHECK(std::abs(m.mean - 2.0) < 0.05);  // σ of the mean ≈ 0.007
    CHECK(std::abs(m.stddev - 8 / std::sqrt(12.0)) < 0.02);
  }
  SECTION("element i depends only on the seed and i, not the shape") {
    HostTensor m = create(Op::random_uniform, uniform_attrs(dt, {2, 3}, -2, 6, 42));
    for (int64_t i = 0; i < 6; ++i)
      CHECK(m.data<T>()[i] == a.data<T>()[i]);
  }
}

TEST_CASE("random_uniform known answers and edge cases", "[creation][random]") {
  // seed 0, element 0 draws Philox words (0x6627e8d5, 0xe169c58d, ...).
  HostTensor f = create(Op::random_uniform, uniform_attrs(DType::f32, {1}, 0, 1, 0));
  CHECK(f.data<float>()[0] == static_cast<float>(0x6627e8 * 0x1p-24));
  HostTensor d = create(Op::random_uniform, uniform_attrs(DType::f64, {1}, 0, 1, 0));
  CHECK(d.data<double>()[0] == static_cast<double>(0x6627e8d5e169c58dull >> 11) * 0x1p-53);
  HostTensor shifted = create(Op::random_uniform, uniform_attrs(DType::f64, {1}, 10, 12, 0));
  CHECK(shifted.data<double>()[0] == 10 + 2 * d.data<double>()[0]);
  // Rounding to f32 may reach maxval; the result is kept below it.
  HostTensor narrow = create(Op::random_uniform, uniform_attrs(DType::f32, {200000}, 1, 2, 7));
  for (float v : narrow.values<float>()) {
    REQUIRE(v >= 1.0f);
    REQUIRE(v < 2.0f);
  }
  check_values<float>(create(Op::random_uniform, uniform_attrs(DType::f32, {2}, 3, 3, 1)), Shape{2},
                      {3, 3});
  check_values<float>(create(Op::random_uniform, uniform_attrs(DType::f32, {0, 2}, 0, 1, 1)),
                      Shape{0, 2}, {});
  CHECK(create(Op::random_uniform, uniform_attrs(DType::f64, {4}, 0, 1, -1)).num_elements() == 4);
}

TEMPLATE_TEST_CASE("random_normal", "[creation][random]", float, double) {
  using T = TestType;
  constexpr DType dt = kiln::ir::dtype_of<T>();
  HostTensor a = create(Op::random_normal, normal_attrs(dt, {100000}, 0, 1, 7));
  CHECK(a.bitwise_equal(create(Op::random_normal, normal_attrs(dt, {100000}, 0, 1, 7))));
  CHECK_FALSE(a.bitwise_equal(create(Op::random_normal, normal_attrs(dt, {100000}, 0, 1, 8))));
  Moments m = moments<T>(a);
  CHECK(std::isfinite(m.min));
  CHECK(std::isfinite(m.max));
  CHECK(std::abs(m.mean) < 0.02);  // σ of the mean ≈ 0.003
  CHECK(std::abs(m.stddev - 1) < 0.02);
  Moments shifted = moments<T>(create(Op::random_normal, normal_attrs(dt, {100000}, 3, 2, 9)));
  CHECK(std::abs(shifted.mean - 3) < 0.04);
  CHECK(std::abs(shifted.stddev - 2) < 0.04);
  check_values<T>(create(Op::random_normal, normal_attrs(dt, {3}, 1.5, 0, 9)), Shape{3},
                  {1.5, 1.5, 1.5});
}

TEST_CASE("random ops reject bad attributes", "[creation][random][errors]") {
  check_rejects<kiln::TypeError>(Op::random_uniform, {}, uniform_attrs(DType::i32, {2}, 0, 1, 1),
                                 "floating");
  check_rejects<kiln::TypeError>(Op::random_normal, {}, normal_attrs(DType::boolean, {2}, 0, 1, 1),
                                 "floating");
  check_rejects<kiln::ValueError>(Op::random_uniform, {}, uniform_attrs(DType::f32, {2}, 2, 1, 1),
                                  "must not exceed");
  check_rejects<kiln::ValueError>(Op::random_uniform, {},
                                  uniform_attrs(DType::f32, {2}, 0, INFINITY, 1), "finite");
  check_rejects<kiln::ValueError>(Op::random_uniform, {}, uniform_attrs(DType::f32, {-2}, 0, 1, 1),
                                  "negative dimension");
  check_rejects<kiln::ValueError>(Op::random_normal, {}, normal_attrs(DType::f32, {2}, 0, -1, 1),
                                  "'stddev' must be >= 0");
  check_rejects<kiln::ValueError>(Op::random_normal, {}, fill_attrs(DType::f32, {2}),
                                  "missing attribute");
  check_rejects<kiln::ValueError>(Op::random_normal, {},
                                  normal_attrs(DType::f32, {2}, 0, 1, 1).set_float("seed", 1.0),
                                  "'seed' must be a int");
}

TEST_CASE("random_uniform_at draws per step: step 0 is random_uniform", "[creation][random]") {
  Attrs attrs = uniform_attrs(DType::f32, {1000}, -1, 3, 42);
  auto at = [&](int64_t step) {
    return run1(Op::random_uniform_at, {HostTensor::scalar<int64_t>(step)}, attrs);
  };
  CHECK(at(0).bitwise_equal(create(Op::random_uniform, attrs)));
  HostTensor one = at(1), big = at(int64_t{1} << 40);
  CHECK(one.bitwise_equal(at(1)));
  int64_t same = 0;
  for (int64_t i = 0; i < 1000; ++i)
    same += one.data<float>()[i] == at(0).data<float>()[i];
  CHECK(same < 5);
  CHECK_FALSE(big.bitwise_equal(one));
  for (float v : big.values<float>()) {
    CHECK(v >= -1.f);
    CHECK(v < 3.f);
  }
  CHECK_THROWS_AS(kiln::ir::infer_types(Op::random_uniform_at,
                                        std::vector<TensorType>{{DType::i32, Shape{}}}, attrs),
                  kiln::TypeError);
  CHECK_THROWS_AS(kiln::ir::infer_types(Op::random_uniform_at,
                                        std::vector<TensorType>{{DType::i64, Shape{2}}}, attrs),
                  kiln::TypeError);
}
