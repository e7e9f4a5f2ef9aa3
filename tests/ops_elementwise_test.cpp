// Elementwise unary ops and cast: hand-computed values for every dtype each op accepts, edge
// cases (NaN, ±inf, integer extremes) and the dtype rules of the whole elementwise family.
#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include "kiln/ir/interp/elementwise_math.h"
#include "op_test_util.h"

using namespace kiln::testing;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

template <class T>
double tolerance() {
  return std::is_same_v<T, float> ? 1e-6 : 1e-12;
}

struct UnaryRow {
  Op op;
  std::vector<double> in;
  std::vector<double> want;
};

// Runs each row on a rank-1 tensor of T and on the same values shaped as a column.
template <class T>
void check_unary_rows(const std::vector<UnaryRow>& rows, const Attrs& attrs = {}) {
  for (const UnaryRow& row : rows) {
    INFO(kiln::ir::op_name(row.op) << " on " << kiln::ir::dtype_name(kiln::ir::dtype_of<T>()));
    int64_t n = static_cast<int64_t>(row.in.size());
    check_values<T>(run1(row.op, {make<T>({n}, as<T>(row.in))}, attrs), Shape{n}, as<T>(row.want),
                    tolerance<T>());
    check_values<T>(run1(row.op, {make<T>({n, 1}, as<T>(row.in))}, attrs), Shape{n, 1},
                    as<T>(row.want), tolerance<T>());
  }
}

}  // namespace

TEMPLATE_TEST_CASE("numeric unary ops", "[elementwise][unary]", float, double, int32_t, int64_t) {
  std::vector<double> x = {-3, 0, 2, 5};
  check_unary_rows<TestType>({
      {Op::neg, x, {3, 0, -2, -5}},
      {Op::abs, x, {3, 0, 2, 5}},
      {Op::sign, x, {-1, 0, 1, 1}},
      {Op::square, x, {9, 0, 4, 25}},
      {Op::relu, x, {0, 0, 2, 5}},
  });
}

TEMPLATE_TEST_CASE("integer unary ops wrap at the extremes", "[elementwise][unary]", int32_t,
                   int64_t) {
  using T = TestType;
  constexpr T kMin = std::numeric_limits<T>::min(), kMax = std::numeric_limits<T>::max();
  check_values<T>(run1(Op::neg, {make<T>({2}, {kMin, kMax})}), Shape{2}, {kMin, -kMax});
  check_values<T>(run1(Op::abs, {make<T>({2}, {kMin, kMax})}), Shape{2}, {kMin, kMax});
  check_values<T>(run1(Op::sign, {make<T>({2}, {kMin, kMax})}), Shape{2}, {-1, 1});
  check_values<T>(run1(Op::relu, {make<T>({2}, {kMin, kMax})}), Shape{2}, {0, kMax});
  check_values<T>(run1(Op::square, {make<T>({1}, {kMin})}), Shape{1}, {0});
}

TEST_CASE("square wraps in i32", "[elementwise][unary]") {
  check_values<int32_t>(run1(Op::square, {make<int32_t>({2}, {65536, 46341})}), Shape{2},
                        {0, -2147479015});
}

TEMPLATE_TEST_CASE("floating unary ops", "[elementwise][unary]", float, double) {
  const double e = std::numbers::e, pi = std::numbers::pi;
  check_unary_rows<TestType>({
      {Op::exp, {0, 1, -1, 2, -kInf}, {1, e, 1 / e, 7.38905609893065, 0}},
      {Op::log, {1, e, 0.5, 0, -1}, {0, 1, -0.693147180559945, -kInf, kNaN}},
      {Op::sqrt, {0, 4, 2.25, -1, kInf}, {0, 2, 1.5, kNaN, kInf}},
      {Op::rsqrt, {4, 0.25, 0}, {0.5, 2, kInf}},
      {Op::reciprocal, {2, -0.5, 0, kInf}, {0.5, -2, kInf, 0}},
      {Op::sin, {0, pi / 2, pi / 6}, {0, 1, 0.5}},
      {Op::cos, {0, pi, pi / 3}, {1, -1, 0.5}},
      {Op::tanh, {0, 1, -1, 20, -20}, {0, 0.761594155955765, -0.761594155955765, 1, -1}},
      {Op::sigmoid,
       {0, 2, -2, 100, -1000, 1000},
       {0.5, 0.880797077977882, 0.119202922022118, 1, 0, 1}},
      {Op::softplus,
       {0, 1, -1, 100, -1000, 1000},
       {0.693147180559945, 1.31326168751822, 0.313261687518223, 100, 0, 1000}},
      {Op::floor, {1.5, -1.5, 2, -0.5, kInf}, {1, -2, 2, -1, kInf}},
      {Op::ceil, {1.5, -1.5, 2, -0.5, -kInf}, {2, -1, 2, 0, -kInf}},
      {Op::round,
       {0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.4, 0.6, 2.7, -2.7, 3, kInf},
       {0, 2, 2, 0, -2, -2, 0, 1, 3, -3, 3, kInf}},
      {Op::elu, {1, 0, -1, -1000}, {1, 0, -0.632120558828558, -1}},
      {Op::gelu,
       {0, 1, -1, 2, -3, kInf},
       {0, 0.841344746068543, -0.158655253931457, 1.95449973610364, -0.00404969409489029, kInf}},
      {Op::erf, {0, 0.5, -1, kInf, -kInf}, {0, 0.520499877813047, -0.842700792949715, 1, -1}},
      {Op::log1p, {0, e - 1, -0.5, -1, -2, kInf}, {0, 1, -0.693147180559945, -kInf, kNaN, kInf}},
      {Op::expm1, {0, 1, -1, -kInf, kInf}, {0, e - 1, -0.632120558828558, -1, kInf}},
  });
  // keras.activations.gelu(x, approximate=True): ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
  check_unary_rows<TestType>(
      {{Op::gelu,
        {0, 1, -1, 2, -3, kInf},
        {0, 0.841191990608277, -0.158808009391723, 1.95459769408778, -0.00363739208177299, kInf}}},
      Attrs().set_bool("approximate", true));
  check_unary_rows<TestType>({{Op::elu, {-1, 3}, {-1.26424111765712, 3}}},
                             Attrs().set_float("alpha", 2.0));
}

TEMPLATE_TEST_CASE("floating unary ops propagate NaN", "[elementwise][unary]", float, double) {
  for (Op op : {Op::neg,   Op::abs,     Op::sign,  Op::square,     Op::relu,  Op::exp,
                Op::log,   Op::sqrt,    Op::rsqrt, Op::reciprocal, Op::sin,   Op::cos,
                Op::tanh,  Op::sigmoid, Op::elu,   Op::softplus,   Op::floor, Op::ceil,
                Op::round, Op::gelu,    Op::erf,   Op::log1p,      Op::expm1}) {
    INFO(kiln::ir::op_name(op));
    check_unary_rows<TestType>({{op, {kNaN}, {kNaN}}});
  }
  check_unary_rows<TestType>({{Op::gelu, {kNaN}, {kNaN}}}, Attrs().set_bool("approximate", true));
}

TEST_CASE("stable sigmoid and softplus stay accurate far from zero", "[elementwise][unary]") {
  check_values<double>(run1(Op::sigmoid, {make<double>({1}, {-100})}), Shape{1},
                       {3.720075976020836e-44}, 1e-12);
  check_values<double>(run1(Op::softplus, {make<double>({1}, {-100})}), Shape{1},
                       {3.720075976020836e-44}, 1e-12);
  HostTensor tiny = run1(Op::sigmoid, {make<double>({1}, {-100})});
  CHECK(tiny.data<double>()[0] > 0);
}

TEST_CASE("log1p, expm1 and gelu stay accurate where the naive forms lose it",
          "[elementwise][unary]") {
  // log(1 + x) and e^x − 1 round 1 + 1e-10 and lose six digits; log1p and expm1 do not.
  auto relative = [](double got, double want) { return std::abs(got - want) / std::abs(want); };
  HostTensor l = run1(Op::log1p, {make<double>({2}, {1e-10, -1e-12})});
  CHECK(relative(l.data<double>()[0], 9.9999999995e-11) < 1e-14);
  CHECK(relative(l.data<double>()[1], -1.0000000000005e-12) < 1e-14);
  HostTensor m = run1(Op::expm1, {make<float>({1}, {1e-7f})});
  CHECK(relative(m.data<float>()[0], 1.00000005e-7) < 1e-6);
  // Far in the negative tail x·Φ(x) is tiny but not 0 (½x(1 + erf(x/√2)) would give 0 in f32).
  HostTensor g = run1(Op::gelu, {make<float>({1}, {-10.0f})});
  CHECK(relative(g.data<float>()[0], -7.619853024160593e-23) < 1e-5);
}

TEST_CASE("round keeps the sign of zero", "[elementwise][unary]") {
  HostTensor r = run1(Op::round, {make<float>({2}, {-0.3f, -0.5f})});
  CHECK(std::signbit(r.data<float>()[0]));
  CHECK(std::signbit(r.data<float>()[1]));
}

TEST_CASE("logical_not", "[elementwise][unary]") {
  check_values<bool>(run1(Op::logical_not, {make<bool>({2, 1}, {true, false})}), Shape{2, 1},
                     {false, true});
}

TEST_CASE("unary ops on scalars and zero-size tensors", "[elementwise][unary]") {
  check_values<float>(run1(Op::neg, {make<float>({}, {2})}), Shape{}, {-2});
  check_values<float>(run1(Op::exp, {make<float>({0, 3}, {})}), Shape{0, 3}, {});
  check_values<bool>(run1(Op::logical_not, {make<bool>({2, 0}, {})}), Shape{2, 0}, {});
}

namespace {

template <class From, class To>
void check_cast(std::vector<From> in, std::vector<To> want) {
  INFO("cast " << kiln::ir::dtype_name(kiln::ir::dtype_of<From>()) << " -> "
               << kiln::ir::dtype_name(kiln::ir::dtype_of<To>()));
  int64_t n = static_cast<int64_t>(in.size());
  Attrs attrs;
  attrs.set_dtype("dtype", kiln::ir::dtype_of<To>());
  check_values<To>(run1(Op::cast, {make<From>({n}, in)}, attrs), Shape{n}, want, 0);
}

}  // namespace

TEST_CASE("cast between every pair of dtypes", "[elementwise][cast]") {
  constexpr int32_t kMin32 = std::numeric_limits<int32_t>::min();
  constexpr int32_t kMax32 = std::numeric_limits<int32_t>::max();
  constexpr int64_t kMin64 = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax64 = std::numeric_limits<int64_t>::max();
  const float nanf = std::numeric_limits<float>::quiet_NaN();
  const float inff = std::numeric_limits<float>::infinity();

  // float → int: truncate toward zero, saturate, NaN → 0
  check_cast<float, int32_t>({1.9f, -1.9f, 3e9f, -3e9f, nanf, inff, -inff, -0.0f},
                             {1, -1, kMax32, kMin32, 0, kMax32, kMin32, 0});
  check_cast<double, int32_t>({2147483647.9, -2147483648.9, 2147483648.0, kNaN},
                              {kMax32, kMin32, kMax32, 0});
  check_cast<double, int64_t>({1e19, -1e19, 9223372036854775808.0, -9223372036854775808.0, 2.5},
                              {kMax64, kMin64, kMax64, kMin64, 2});
  check_cast<float, int64_t>({9223372036854775808.0f, -1.5f, nanf}, {kMax64, -1, 0});
  // int → int wraps; int → float rounds to nearest
  check_cast<int64_t, int32_t>({4294967297, 2147483648, -1}, {1, kMin32, -1});
  check_cast<int32_t, int64_t>({kMin32, kMax32}, {kMin32, kMax32});
  check_cast<int32_t, float>({16777217, -3}, {16777216.0f, -3.0f});
  check_cast<int64_t, double>({kMax64, 5}, {9223372036854775808.0, 5.0});
  // float ↔ float
  check_cast<double, float>({1e300, 0.1, -1e300}, {inff, 0.1f, -inff});
  check_cast<float, double>({0.1f, inff}, {static_cast<double>(0.1f), kInf});
  check_cast<float, float>({1.5f, nanf}, {1.5f, nanf});
  // anything → bool is x != 0; bool → number is 0 or 1
  check_cast<float, bool>({0.0f, -0.0f, 0.5f, nanf}, {false, false, true, true});
  check_cast<int32_t, bool>({0, 5, -1}, {false, true, true});
  check_cast<int64_t, bool>({0, kMin64}, {false, true});
  check_cast<double, bool>({0.0, -2.0}, {false, true});
  check_cast<bool, float>({true, false}, {1.0f, 0.0f});
  check_cast<bool, double>({true, false}, {1.0, 0.0});
  check_cast<bool, int32_t>({true, false}, {1, 0});
  check_cast<bool, int64_t>({true, false}, {1, 0});
  check_cast<bool, bool>({true, false}, {true, false});
}

TEST_CASE("cast keeps the shape", "[elementwise][cast]") {
  Attrs attrs;
  attrs.set_dtype("dtype", DType::i32);
  check_values<int32_t>(run1(Op::cast, {make<float>({2, 2}, {1, 2, 3, 4})}, attrs), Shape{2, 2},
                        {1, 2, 3, 4});
  check_values<int32_t>(run1(Op::cast, {make<float>({0, 2}, {})}, attrs), Shape{0, 2}, {});
}

TEST_CASE("scalar helpers are defined on every input", "[elementwise][scalar]") {
  using kiln::ir::scalar::div;
  using kiln::ir::scalar::pow;
  constexpr int64_t kMin64 = std::numeric_limits<int64_t>::min();
  CHECK(div<int64_t>(kMin64, -1) == kMin64);
  CHECK(div<int64_t>(5, 0) == 0);
  CHECK(pow<int64_t>(2, 63) == kMin64);
  CHECK(pow<int64_t>(2, 64) == 0);
  CHECK(kiln::ir::scalar::round_half_even(4.5) == 4.0);
  CHECK(kiln::ir::scalar::round_half_even(-3.5f) == -4.0f);
  CHECK(kiln::ir::scalar::round_half_even(1e300) == 1e300);
  CHECK(kiln::ir::scalar::round_half_even(0.49999999999999994) == 0.0);
}

namespace {

// The dtypes docs/ops.md allows for each elementwise op (first operand; the others match).
struct DTypeRule {
  Op op;
  std::vector<DType> accepted;
};

const std::vector<DType> kNumeric = {DType::f32, DType::f64, DType::i32, DType::i64};
const std::vector<DType> kFloating = {DType::f32, DType::f64};
const std::vector<DType> kBool = {DType::boolean};
const std::vector<DType> kAll = {DType::f32, DType::f64, DType::i32, DType::i64, DType::boolean};

std::vector<DTypeRule> dtype_rules() {
  std::vector<DTypeRule> rules;
  for (Op op : {Op::neg, Op::abs, Op::sign, Op::square, Op::relu})
    rules.push_back({op, kNumeric});
  for (Op op : {Op::exp, Op::log, Op::sqrt, Op::rsqrt, Op::reciprocal, Op::sin, Op::cos, Op::tanh,
                Op::sigmoid, Op::elu, Op::softplus, Op::gelu, Op::erf, Op::log1p, Op::expm1,
                Op::floor, Op::ceil, Op::round}) {
    rules.push_back({op, kFloating});
  }
  rules.push_back({Op::logical_not, kBool});
  for (Op op : {Op::add, Op::sub, Op::mul, Op::div, Op::pow, Op::maximum, Op::minimum, Op::less,
                Op::less_equal, Op::greater, Op::greater_equal}) {
    rules.push_back({op, kNumeric});
  }
  rules.push_back({Op::equal, kAll});
  rules.push_back({Op::not_equal, kAll});
  rules.push_back({Op::logical_and, kBool});
  rules.push_back({Op::logical_or, kBool});
  return rules;
}

bool contains(const std::vector<DType>& v, DType d) {
  return std::find(v.begin(), v.end(), d) != v.end();
}

}  // namespace

TEST_CASE("each elementwise op accepts exactly its documented dtypes", "[elementwise][errors]") {
  for (const DTypeRule& rule : dtype_rules()) {
    for (DType dtype : kAll) {
      INFO(kiln::ir::op_name(rule.op) << " on " << kiln::ir::dtype_name(dtype));
      std::vector<TensorType> operands(static_cast<size_t>(kiln::ir::op_num_inputs(rule.op)),
                                       TensorType{dtype, Shape{2}});
      if (contains(rule.accepted, dtype)) {
        auto out = kiln::ir::infer_types(rule.op, operands, {});
        REQUIRE(out.size() == 1);
        CHECK(out[0].shape == Shape{2});
      } else {
        std::string name(kiln::ir::op_name(rule.op));
        CHECK_THROWS_AS(kiln::ir::infer_types(rule.op, operands, {}), kiln::TypeError);
        CHECK_THROWS_WITH(kiln::ir::infer_types(rule.op, operands, {}),
                          Catch::StartsWith(name + ":") &&
                              Catch::Contains(std::string(kiln::ir::dtype_name(dtype)) + "[2]"));
      }
    }
  }
}

TEST_CASE("every elementwise op accepts exactly the dtypes its table row names",
          "[elementwise][errors]") {
  for (int i = 0; i < kiln::ir::kNumOps; ++i) {
    const Op op = static_cast<Op>(i);
    if (!kiln::ir::has_trait(op, kiln::ir::kElementwise)) continue;
    const kiln::ir::DTypes accepted = kiln::ir::op_dtypes(op);
    INFO(kiln::ir::op_name(op));
    REQUIRE(accepted != kiln::ir::DTypes::by_rule);   // elementwise rules read the table
    if (accepted == kiln::ir::DTypes::any) continue;  // cast and select: tested apart
    for (DType dtype : kiln::ir::kAllDTypes) {
      INFO("on " << kiln::ir::dtype_name(dtype));
      std::vector<TensorType> operands(static_cast<size_t>(kiln::ir::op_num_inputs(op)),
                                       TensorType{dtype, Shape{2}});
      if (kiln::ir::dtypes_admit(accepted, dtype)) {
        auto out = kiln::ir::infer_types(op, operands, {});
        REQUIRE(out.size() == 1);
        CHECK(out[0].dtype ==
              (kiln::ir::has_trait(op, kiln::ir::kComparison) ? DType::boolean : dtype));
      } else {
        CHECK_THROWS_AS(kiln::ir::infer_types(op, operands, {}), kiln::TypeError);
      }
    }
  }
}

TEST_CASE("unary ops reject bad dtypes and attributes", "[elementwise][errors]") {
  std::vector<TensorType> i32 = {TensorType{DType::i32, Shape{3}}};
  std::vector<TensorType> f32 = {TensorType{DType::f32, Shape{3}}};
  CHECK_THROWS_WITH(kiln::ir::infer_types(Op::exp, i32, {}),
                    Catch::Contains("exp") && Catch::Contains("floating") &&
                        Catch::Contains("got i32") && Catch::Contains("operands: i32[3]"));
  CHECK_THROWS_AS(kiln::ir::infer_types(Op::cast, f32, {}), kiln::ValueError);
  CHECK_THROWS_WITH(kiln::ir::infer_types(Op::cast, f32, {}),
                    Catch::Contains("cast") && Catch::Contains("missing attribute 'dtype'"));
  CHECK_THROWS_AS(kiln::ir::infer_types(Op::cast, f32, Attrs().set_int("dtype", 1)),
                  kiln::ValueError);
  CHECK_THROWS_WITH(
      kiln::ir::infer_types(Op::elu, f32, Attrs().set_string("alpha", "big")),
      Catch::Contains("elu") && Catch::Contains("'alpha'") && Catch::Contains("float"));
  CHECK_THROWS_AS(kiln::ir::infer_types(Op::gelu, f32, Attrs().set_float("approximate", 1.0)),
                  kiln::ValueError);
  CHECK_THROWS_WITH(kiln::ir::infer_types(Op::gelu, f32, Attrs().set_int("approximate", 1)),
                    Catch::Contains("gelu") && Catch::Contains("'approximate'"));
  CHECK_THROWS_AS(kiln::ir::infer_types(Op::log1p, i32, {}), kiln::TypeError);
  CHECK_THROWS_WITH(kiln::ir::infer_types(Op::neg, {}, {}),
                    Catch::Contains("neg") && Catch::Contains("expects 1 operand"));
}
