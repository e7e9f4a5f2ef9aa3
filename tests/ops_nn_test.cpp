// Neural-network ops (conv2d, max_pool2d, avg_pool2d, softmax, log_softmax): shape rules, window
// geometry, interpreter values worked out by hand, and errors, for f32 and f64.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "kiln/ir/ops/window.h"
#include "op_test_util.h"

namespace {

using namespace kiln::testing;

Attrs conv_attrs(std::string padding, std::vector<int64_t> strides = {1, 1},
                 std::vector<int64_t> dilations = {1, 1}) {
  Attrs a;
  a.set_string("padding", std::move(padding));
  a.set_ints("strides", std::move(strides)).set_ints("dilations", std::move(dilations));
  return a;
}

Attrs pool_attrs(std::vector<int64_t> ksize, std::vector<int64_t> strides, std::string padding) {
  Attrs a;
  a.set_ints("ksize", std::move(ksize)).set_ints("strides", std::move(strides));
  a.set_string("padding", std::move(padding));
  return a;
}

// A [1, 3, 3, 1] image holding 1..9.
template <class T>
HostTensor image3x3() {
  return make<T>({1, 3, 3, 1}, as<T>({1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

template <class T>
HostTensor ones_filter(int64_t kh, int64_t kw) {
  return make<T>({kh, kw, 1, 1}, std::vector<T>(static_cast<size_t>(kh * kw), T{1}));
}

}  // namespace

TEST_CASE("window geometry follows TensorFlow", "[nn][window]") {
  using kiln::ir::compute_window;
  using kiln::ir::Padding;
  // same: out = ceil(in / stride); the odd padding element goes at the end.
  auto w = compute_window(3, 2, 1, 1, Padding::same);
  CHECK((w.out == 3 && w.pad_before == 0 && w.pad_after == 1));
  w = compute_window(5, 3, 2, 1, Padding::same);
  CHECK((w.out == 3 && w.pad_before == 1 && w.pad_after == 1));
  w = compute_window(4, 4, 1, 1, Padding::same);
  CHECK((w.out == 4 && w.pad_before == 1 && w.pad_after == 2));
  w = compute_window(3, 2, 1, 2, Padding::same);  // dilated extent 3
  CHECK((w.out == 3 && w.pad_before == 1 && w.pad_after == 1));
  w = compute_window(4, 1, 3, 1, Padding::same);  // no padding needed
  CHECK((w.out == 2 && w.pad_before == 0 && w.pad_after == 0));
  w = compute_window(0, 3, 1, 1, Padding::same);
  CHECK(w.out == 0);
  // valid: out = floor((in − extent) / stride) + 1, no padding.
  w = compute_window(7, 3, 2, 1, Padding::valid);
  CHECK((w.out == 3 && w.pad_before == 0 && w.pad_after == 0));
  w = compute_window(5, 2, 1, 3, Padding::valid);  // extent 4
  CHECK(w.out == 2);
  CHECK_THROWS_AS(compute_window(3, 2, 1, 3, Padding::valid), kiln::ShapeError);
  CHECK_THROWS_AS(compute_window(3, 3, 1, std::numeric_limits<int64_t>::max(), Padding::same),
                  kiln::ShapeError);
  CHECK_THROWS_AS(kiln::ir::parse_padding("SAME"), kiln::ValueError);
}

TEST_CASE("window taps inside the input", "[nn][window]") {
  using kiln::ir::compute_window;
  using kiln::ir::Padding;
  using Taps = std::pair<int64_t, int64_t>;
  // in 3, kernel 3, same: pad 1 each side; output 0 skips tap 0, output 2 skips tap 2.
  auto w = compute_window(3, 3, 1, 1, Padding::same);
  CHECK(w.taps_inside(0) == Taps{1, 3});
  CHECK(w.taps_inside(1) == Taps{0, 3});
  CHECK(w.taps_inside(2) == Taps{0, 2});
  // Dilation 2 on in 3, same: pad 1; output 0 taps at -1, 1 → only tap 1.
  w = compute_window(3, 2, 1, 2, Padding::same);
  CHECK(w.taps_inside(0) == Taps{1, 2});
  CHECK(w.taps_inside(1) == Taps{0, 2});
  // A window far larger than the input still visits only real positions.
  const int64_t huge = std::numeric_limits<int64_t>::max() / 4;
  w = compute_window(4, huge, 1, 1, Padding::same);
  CHECK(w.out == 4);
  for (int64_t o = 0; o < 4; ++o) {
    auto [first, last] = w.taps_inside(o);
    CHECK(last - first == 4);
    CHECK(w.input_pos(o, first) == 0);
  }
}

TEMPLATE_TEST_CASE("a pool window larger than the input covers all of it", "[nn][pool]", float,
                   double) {
  using T = TestType;
  const int64_t huge = std::numeric_limits<int64_t>::max() / 4;
  const Attrs attrs = pool_attrs({huge, huge}, {1, 1}, "same");
  check_values<T>(run1(Op::avg_pool2d, {image3x3<T>()}, attrs), {1, 3, 3, 1},
                  std::vector<T>(9, T{5}));
  check_values<T>(run1(Op::max_pool2d, {image3x3<T>()}, attrs), {1, 3, 3, 1},
                  std::vector<T>(9, T{9}));
}

TEMPLATE_TEST_CASE("conv2d with one channel", "[nn][conv2d]", float, double) {
  using T = TestType;
  HostTensor x = image3x3<T>();
  // Filter [[1, 0], [0, 1]] adds each pixel to its lower-right neighbour.
  HostTensor diag = make<T>({2, 2, 1, 1}, as<T>({1, 0, 0, 1}));
  check_values<T>(run1(Op::conv2d, {x, diag}, conv_attrs("valid")), {1, 2, 2, 1},
                  as<T>({6, 8, 12, 14}));
  // same: one padding row/column, at the end (bottom and right).
  check_values<T>(run1(Op::conv2d, {x, diag}, conv_attrs("same")), {1, 3, 3, 1},
                  as<T>({6, 8, 3, 12, 14, 6, 7, 8, 9}));
  // A 3x3 box filter with same padding sums each 3x3 neighbourhood.
  check_values<T>(run1(Op::conv2d, {x, ones_filter<T>(3, 3)}, conv_attrs("same")), {1, 3, 3, 1},
                  as<T>({12, 21, 16, 27, 45, 33, 24, 39, 28}));
  check_values<T>(run1(Op::conv2d, {x, ones_filter<T>(3, 3)}, conv_attrs("valid")), {1, 1, 1, 1},
                  as<T>({45}));
  // strides and dilations default to [1, 1].
  Attrs only_padding;
  only_padding.set_string("padding", "valid");
  check_values<T>(run1(Op::conv2d, {x, diag}, only_padding), {1, 2, 2, 1}, as<T>({6, 8, 12, 14}));
}

TEMPLATE_TEST_CASE("conv2d with several channels and images", "[nn][conv2d]", float, double) {
  using T = TestType;
  // 1x1 convolution: out = pixel · W with W = [[1, 0, 1], [0, 1, 1]].
  HostTensor x = make<T>({1, 1, 2, 2}, as<T>({1, 2, 3, 4}));
  HostTensor w = make<T>({1, 1, 2, 3}, as<T>({1, 0, 1, 0, 1, 1}));
  check_values<T>(run1(Op::conv2d, {x, w}, conv_attrs("same")), {1, 1, 2, 3},
                  as<T>({1, 2, 3, 3, 4, 7}));
  // 2x2x2 filter over a 2x2x2 image: one output, the sum of all products.
  HostTensor img = make<T>({1, 2, 2, 2}, as<T>({1, 2, 3, 4, 5, 6, 7, 8}));
  HostTensor f = make<T>({2, 2, 2, 1}, as<T>({1, -1, 2, 0, 0, 1, -1, 1}));
  check_values<T>(run1(Op::conv2d, {img, f}, conv_attrs("valid")), {1, 1, 1, 1}, as<T>({12}));
  // Two images; the second is the negation of the first.
  HostTensor two =
      make<T>({2, 3, 3, 1}, as<T>({1, 2, 3, 4, 5, 6, 7, 8, 9, -1, -2, -3, -4, -5, -6, -7, -8, -9}));
  HostTensor diag = make<T>({2, 2, 1, 1}, as<T>({1, 0, 0, 1}));
  check_values<T>(run1(Op::conv2d, {two, diag}, conv_attrs("valid")), {2, 2, 2, 1},
                  as<T>({6, 8, 12, 14, -6, -8, -12, -14}));
}

TEMPLATE_TEST_CASE("conv2d with strides and dilations", "[nn][conv2d]", float, double) {
  using T = TestType;
  HostTensor x16 =
      make<T>({1, 4, 4, 1}, as<T>({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}));
  check_values<T>(run1(Op::conv2d, {x16, ones_filter<T>(2, 2)}, conv_attrs("valid", {2, 2})),
                  {1, 2, 2, 1}, as<T>({14, 22, 46, 54}));
  // Stride 2, same, 3x3 input: out 2x2, one padding row/column at the end.
  HostTensor x = image3x3<T>();
  check_values<T>(run1(Op::conv2d, {x, ones_filter<T>(2, 2)}, conv_attrs("same", {2, 2})),
                  {1, 2, 2, 1}, as<T>({12, 9, 15, 9}));
  // Different strides per dimension.
  check_values<T>(run1(Op::conv2d, {x, ones_filter<T>(1, 1)}, conv_attrs("valid", {1, 2})),
                  {1, 3, 2, 1}, as<T>({1, 3, 4, 6, 7, 9}));
  // Dilation 2: taps at offsets 0 and 2.
  check_values<T>(run1(Op::conv2d, {x, ones_filter<T>(2, 2)}, conv_attrs("valid", {1, 1}, {2, 2})),
                  {1, 1, 1, 1}, as<T>({20}));
  check_values<T>(run1(Op::conv2d, {x, ones_filter<T>(2, 2)}, conv_attrs("same", {1, 1}, {2, 2})),
                  {1, 3, 3, 1}, as<T>({5, 10, 5, 10, 20, 10, 5, 10, 5}));
}

TEMPLATE_TEST_CASE("conv2d with zero-size dimensions", "[nn][conv2d]", float, double) {
  using T = TestType;
  // No input channels: every output is an empty sum.
  check_values<T>(
      run1(Op::conv2d, {make<T>({1, 2, 2, 0}, {}), make<T>({1, 1, 0, 2}, {})}, conv_attrs("same")),
      {1, 2, 2, 2}, std::vector<T>(8, T{0}));
  check_values<T>(
      run1(Op::conv2d, {make<T>({0, 3, 3, 1}, {}), ones_filter<T>(2, 2)}, conv_attrs("valid")),
      {0, 2, 2, 1}, std::vector<T>{});
  check_values<T>(run1(Op::conv2d, {image3x3<T>(), make<T>({2, 2, 1, 0}, {})}, conv_attrs("same")),
                  {1, 3, 3, 0}, std::vector<T>{});
}

TEMPLATE_TEST_CASE("pools ignore padding at the edges", "[nn][pool]", float, double) {
  using T = TestType;
  HostTensor x = image3x3<T>();
  const Attrs same2 = pool_attrs({2, 2}, {2, 2}, "same");
  check_values<T>(run1(Op::max_pool2d, {x}, same2), {1, 2, 2, 1}, as<T>({5, 6, 8, 9}));
  check_values<T>(run1(Op::avg_pool2d, {x}, same2), {1, 2, 2, 1}, as<T>({3, 4.5, 7.5, 9}));
  const Attrs same3 = pool_attrs({3, 3}, {1, 1}, "same");
  check_values<T>(run1(Op::max_pool2d, {x}, same3), {1, 3, 3, 1},
                  as<T>({5, 6, 6, 8, 9, 9, 8, 9, 9}));
  check_values<T>(run1(Op::avg_pool2d, {x}, same3), {1, 3, 3, 1},
                  as<T>({3, 3.5, 4, 4.5, 5, 5.5, 6, 6.5, 7}));
  const Attrs valid2 = pool_attrs({2, 2}, {1, 1}, "valid");
  check_values<T>(run1(Op::max_pool2d, {x}, valid2), {1, 2, 2, 1}, as<T>({5, 6, 8, 9}));
  check_values<T>(run1(Op::avg_pool2d, {x}, valid2), {1, 2, 2, 1}, as<T>({3, 4, 6, 7}));
  const Attrs rows = pool_attrs({3, 1}, {1, 1}, "valid");
  check_values<T>(run1(Op::avg_pool2d, {x}, rows), {1, 1, 3, 1}, as<T>({4, 5, 6}));
}

TEMPLATE_TEST_CASE("pools work channel by channel", "[nn][pool]", float, double) {
  using T = TestType;
  // Channel 1 is the negation of channel 0: its max is minus channel 0's min.
  HostTensor x = make<T>({1, 2, 2, 2}, as<T>({1, -1, 4, -4, 3, -3, 2, -2}));
  const Attrs all = pool_attrs({2, 2}, {2, 2}, "valid");
  check_values<T>(run1(Op::max_pool2d, {x}, all), {1, 1, 1, 2}, as<T>({4, -1}));
  check_values<T>(run1(Op::avg_pool2d, {x}, all), {1, 1, 1, 2}, as<T>({2.5, -2.5}));
  check_values<T>(run1(Op::max_pool2d, {make<T>({0, 2, 2, 2}, {})}, all), {0, 1, 1, 2},
                  std::vector<T>{});
  check_values<T>(
      run1(Op::avg_pool2d, {make<T>({1, 0, 0, 2}, {})}, pool_attrs({2, 2}, {1, 1}, "same")),
      {1, 0, 0, 2}, std::vector<T>{});
}

TEST_CASE("max_pool2d propagates NaN", "[nn][pool]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  HostTensor x = make<double>({1, 2, 2, 1}, {1, nan, 3, 2});
  check_values<double>(run1(Op::max_pool2d, {x}, pool_attrs({2, 1}, {1, 1}, "valid")), {1, 1, 2, 1},
                       {3, nan});
  check_values<double>(run1(Op::avg_pool2d, {x}, pool_attrs({1, 2}, {1, 1}, "valid")), {1, 2, 1, 1},
                       {nan, 2.5});
}

TEMPLATE_TEST_CASE("softmax and log_softmax", "[nn][softmax]", float, double) {
  using T = TestType;
  // exp(k − 3) / Σ for k = 1, 2, 3.
  const std::vector<double> p = {0.09003057317038046, 0.24472847105479764, 0.6652409557748219};
  const std::vector<double> logp = {-2.40760596444438, -1.40760596444438, -0.40760596444438};
  HostTensor x = make<T>({3}, as<T>({1, 2, 3}));
  check_values<T>(run1(Op::softmax, {x}), {3}, as<T>(p), 1e-6);
  check_values<T>(run1(Op::log_softmax, {x}), {3}, as<T>(logp), 1e-6);
  // Large inputs must not overflow: the max is subtracted first.
  HostTensor big = make<T>({1, 2}, as<T>({1000, 1001}));
  check_values<T>(run1(Op::softmax, {big}), {1, 2},
                  as<T>({0.2689414213699951, 0.7310585786300049}));
  check_values<T>(run1(Op::log_softmax, {big}), {1, 2},
                  as<T>({-1.3132616875182228, -0.31326168751822286}));
  HostTensor tiny = make<T>({2}, as<T>({-1000, -1000}));
  check_values<T>(run1(Op::softmax, {tiny}), {2}, as<T>({0.5, 0.5}));
  // Along axis 0 of a [3, 2] operand: each column is [1, 2, 3] shifted, so the same weights.
  HostTensor cols = make<T>({3, 2}, as<T>({1, 11, 2, 12, 3, 13}));
  Attrs axis0;
  axis0.set_int("axis", 0);
  check_values<T>(run1(Op::softmax, {cols}, axis0), {3, 2},
                  as<T>({p[0], p[0], p[1], p[1], p[2], p[2]}), 1e-6);
  Attrs neg2;
  neg2.set_int("axis", -2);
  check_values<T>(run1(Op::log_softmax, {cols}, neg2), {3, 2},
                  as<T>({logp[0], logp[0], logp[1], logp[1], logp[2], logp[2]}), 1e-6);
  // A size-1 axis gives 1 (log 0); a zero-size axis gives an empty result.
  check_values<T>(run1(Op::softmax, {make<T>({2, 1}, as<T>({5, -7}))}), {2, 1}, as<T>({1, 1}));
  check_values<T>(run1(Op::log_softmax, {make<T>({2, 1}, as<T>({5, -7}))}), {2, 1}, as<T>({0, 0}));
  check_values<T>(run1(Op::softmax, {make<T>({2, 0}, {})}), {2, 0}, std::vector<T>{});
}

TEMPLATE_TEST_CASE("softmax rows sum to one", "[nn][softmax]", float, double) {
  using T = TestType;
  HostTensor x = make<T>({3, 4}, as<T>({0.5, -3, 8, 2, 100, 99, -50, 0, 1e-3, 2e-3, 3e-3, 4e-3}));
  HostTensor y = run1(Op::softmax, {x});
  HostTensor logy = run1(Op::log_softmax, {x});
  for (int64_t r = 0; r < 3; ++r) {
    double sum = 0;
    for (int64_t c = 0; c < 4; ++c) {
      const double v = y.element_as_double(r * 4 + c);
      CHECK(v >= 0.0);
      CHECK(std::exp(logy.element_as_double(r * 4 + c)) == Approx(v).margin(1e-6));
      sum += v;
    }
    CHECK(sum == Approx(1.0).epsilon(1e-6));
  }
}

TEST_CASE("nn shape rules reject bad operands and attributes", "[nn][errors]") {
  using Catch::Contains;
  auto infer = [](Op op, std::vector<TensorType> in, const Attrs& attrs) {
    return kiln::ir::infer_types(op, in, attrs);
  };
  const TensorType img{DType::f32, {1, 5, 5, 3}};
  const TensorType filt{DType::f32, {3, 3, 3, 8}};
  CHECK(infer(Op::conv2d, {img, filt}, conv_attrs("same", {2, 2}))[0] ==
        TensorType{DType::f32, {1, 3, 3, 8}});
  CHECK(infer(Op::conv2d, {img, filt}, conv_attrs("valid", {2, 1}))[0] ==
        TensorType{DType::f32, {1, 2, 3, 8}});
  // dtypes
  CHECK_THROWS_AS(infer(Op::conv2d, {{DType::i32, {1, 5, 5, 3}}, {DType::i32, {3, 3, 3, 8}}},
                        conv_attrs("same")),
                  kiln::TypeError);
  CHECK_THROWS_WITH(infer(Op::conv2d, {img, {DType::f64, {3, 3, 3, 8}}}, conv_attrs("same")),
                    Contains("conv2d") && Contains("same dtype"));
  CHECK_THROWS_AS(
      infer(Op::max_pool2d, {{DType::i64, {1, 2, 2, 1}}}, pool_attrs({1, 1}, {1, 1}, "same")),
      kiln::TypeError);
  CHECK_THROWS_WITH(infer(Op::softmax, {{DType::i32, {3}}}, Attrs{}), Contains("floating"));
  // ranks and channels
  CHECK_THROWS_AS(infer(Op::conv2d, {{DType::f32, {5, 5, 3}}, filt}, conv_attrs("same")),
                  kiln::ShapeError);
  CHECK_THROWS_WITH(infer(Op::conv2d, {img, {DType::f32, {3, 3, 3}}}, conv_attrs("same")),
                    Contains("filter must have rank 4"));
  CHECK_THROWS_AS(infer(Op::conv2d, {img, {DType::f32, {3, 3, 4, 8}}}, conv_attrs("same")),
                  kiln::ShapeError);
  CHECK_THROWS_WITH(infer(Op::conv2d, {img, {DType::f32, {3, 3, 4, 8}}}, conv_attrs("same")),
                    Contains("in-channels") && Contains("(dimension 3, 3)"));
  CHECK_THROWS_AS(infer(Op::conv2d, {img, {DType::f32, {0, 3, 3, 8}}}, conv_attrs("same")),
                  kiln::ShapeError);
  CHECK_THROWS_AS(infer(Op::avg_pool2d, {{DType::f32, {4, 4}}}, pool_attrs({2, 2}, {2, 2}, "same")),
                  kiln::ShapeError);
  // window too large for "valid"
  CHECK_THROWS_AS(infer(Op::conv2d, {img, {DType::f32, {6, 1, 3, 1}}}, conv_attrs("valid")),
                  kiln::ShapeError);
  CHECK_THROWS_WITH(infer(Op::conv2d, {img, filt}, conv_attrs("valid", {1, 1}, {3, 3})),
                    Contains("larger than the input dimension 5"));
  CHECK_THROWS_AS(infer(Op::max_pool2d, {img}, pool_attrs({6, 6}, {1, 1}, "valid")),
                  kiln::ShapeError);
  // attribute values
  CHECK_THROWS_AS(infer(Op::conv2d, {img, filt}, conv_attrs("SAME")), kiln::ValueError);
  CHECK_THROWS_WITH(infer(Op::conv2d, {img, filt}, conv_attrs("full")),
                    Contains("\"same\" or \"valid\"") && Contains("\"full\""));
  CHECK_THROWS_AS(infer(Op::conv2d, {img, filt}, conv_attrs("same", {1})), kiln::ValueError);
  CHECK_THROWS_WITH(infer(Op::conv2d, {img, filt}, conv_attrs("same", {1, 0})),
                    Contains("'strides' must be positive"));
  CHECK_THROWS_WITH(infer(Op::conv2d, {img, filt}, conv_attrs("same", {1, 1}, {-1, 1})),
                    Contains("'dilations' must be positive"));
  CHECK_THROWS_AS(infer(Op::conv2d, {img, filt}, Attrs{}), kiln::ValueError);
  CHECK_THROWS_AS(infer(Op::max_pool2d, {img}, pool_attrs({2, 2, 1}, {1, 1}, "same")),
                  kiln::ValueError);
  CHECK_THROWS_AS(infer(Op::avg_pool2d, {img}, pool_attrs({0, 2}, {1, 1}, "same")),
                  kiln::ValueError);
  Attrs no_strides;
  no_strides.set_ints("ksize", {2, 2}).set_string("padding", "same");
  CHECK_THROWS_WITH(infer(Op::max_pool2d, {img}, no_strides), Contains("strides"));
  // softmax axis
  Attrs axis2;
  axis2.set_int("axis", 2);
  CHECK_THROWS_AS(infer(Op::softmax, {{DType::f32, {2, 2}}}, axis2), kiln::ShapeError);
  CHECK_THROWS_AS(infer(Op::log_softmax, {{DType::f32, {}}}, Attrs{}), kiln::ShapeError);
}
