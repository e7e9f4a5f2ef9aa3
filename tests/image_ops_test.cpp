// The image ops (image_resize, image_transform): values against hand-computed references, in
// the interpreter and through compiled code (eager ops run compiled kernels), the compiled
// kernels against the interpreter on random images and transforms, gradients refused, and bad
// operands and attributes.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <cmath>
#include <limits>
#include <vector>

#include "codegen_test_util.h"
#include "op_test_util.h"

namespace k = kiln;
namespace ir = kiln::ir;
using namespace kiln::testing;

namespace {

// [1, h, w, 1] with pixel (r, c) = step·r + c: a linear image, which bilinear interpolation
// reproduces exactly at any source coordinate inside it.
HostTensor ramp(int64_t h, int64_t w, double step) {
  std::vector<double> v;
  for (int64_t r = 0; r < h; ++r)
    for (int64_t c = 0; c < w; ++c)
      v.push_back(step * static_cast<double>(r) + static_cast<double>(c));
  return make<double>(Shape{1, h, w, 1}, v);
}

Attrs resize_attrs(int64_t h, int64_t w, const char* method) {
  return Attrs().set_ints("size", {h, w}).set_string("method", method);
}

Attrs transform_attrs(const char* interpolation, const char* fill_mode, double fill = 0.0) {
  return Attrs()
      .set_string("interpolation", interpolation)
      .set_string("fill_mode", fill_mode)
      .set_float("fill_value", fill);
}

HostTensor matrix(std::vector<double> a, int64_t rows = 1) {
  return make<double>(Shape{rows, 8}, std::move(a));
}

// The op in the interpreter, and the same through the frontend's eager path (compiled kernels),
// in f64 and in f32.
void check_both(Op op, const std::vector<HostTensor>& inputs, const Attrs& attrs,
                const Shape& shape, const std::vector<double>& want) {
  INFO(ir::op_name(op));
  check_values<double>(run1(op, inputs, attrs), shape, want, 1e-12);
  std::vector<k::Tensor> args;
  for (const HostTensor& t : inputs)
    args.push_back(k::cast(k::Tensor(t), k::f32));
  k::Tensor got = k::detail::apply1(op, std::span<const k::Tensor>(args), attrs,
                                    std::source_location::current());
  check_values<float>(got.host(), shape, as<float>(want), 1e-6);
}

}  // namespace

TEST_CASE("image_resize bilinear up by 2: weights 0, 1/4, 3/4, 1 (half-pixel centres)", "[image]") {
  // Output row o samples (o + 0.5)/2 − 0.5: −0.25 (clamped to row 0), 0.25, 0.75, 1.25 (row 1).
  const double w[] = {0, 0.25, 0.75, 1};
  std::vector<double> want;
  for (double wy : w)
    for (double wx : w)
      want.push_back(2 * wy + wx);
  check_both(Op::image_resize, {ramp(2, 2, 2)}, resize_attrs(4, 4, "bilinear"), Shape{1, 4, 4, 1},
             want);
}

TEST_CASE("image_resize bilinear down: 4x4 to 2x2 and 3x3 to 2x2", "[image]") {
  // 4 → 2 samples 0.5 and 2.5; 3 → 2 samples 0.25 and 1.75.
  check_both(Op::image_resize, {ramp(4, 4, 4)}, resize_attrs(2, 2, "bilinear"), Shape{1, 2, 2, 1},
             {4 * 0.5 + 0.5, 4 * 0.5 + 2.5, 4 * 2.5 + 0.5, 4 * 2.5 + 2.5});
  check_both(Op::image_resize, {ramp(3, 3, 3)}, resize_attrs(2, 2, "bilinear"), Shape{1, 2, 2, 1},
             {1, 2.5, 5.5, 7});
  // The same size is the identity.
  check_both(Op::image_resize, {ramp(3, 2, 10)}, resize_attrs(3, 2, "bilinear"), Shape{1, 3, 2, 1},
             {0, 1, 10, 11, 20, 21});
}

TEST_CASE("image_resize nearest: floor((o + 0.5)·in/out)", "[image]") {
  // 3 → 2: rows 0.75 → 0 and 2.25 → 2; 2 → 5: (o + 0.5)·0.4 = 0.2, 0.6, 1.0, 1.4, 1.8.
  check_both(Op::image_resize, {ramp(3, 3, 10)}, resize_attrs(2, 2, "nearest"), Shape{1, 2, 2, 1},
             {0, 2, 20, 22});
  check_both(Op::image_resize, {ramp(1, 2, 10)}, resize_attrs(1, 5, "nearest"), Shape{1, 1, 5, 1},
             {0, 0, 1, 1, 1});
}

TEST_CASE("image_resize keeps batch and channels apart", "[image]") {
  // Two images of two channels: channel c of image n is 100·n + 10·c + pixel.
  std::vector<double> v;
  for (int n = 0; n < 2; ++n)
    for (int x = 0; x < 2; ++x)
      for (int c = 0; c < 2; ++c)
        v.push_back(100 * n + 10 * c + x);
  HostTensor images = make<double>(Shape{2, 1, 2, 2}, v);
  // 2 → 4 columns: weights 0, 0.25, 0.75, 1.
  std::vector<double> want;
  for (int n = 0; n < 2; ++n)
    for (double wx : {0.0, 0.25, 0.75, 1.0})
      for (int c = 0; c < 2; ++c)
        want.push_back(100 * n + 10 * c + wx);
  check_both(Op::image_resize, {images}, resize_attrs(1, 4, "bilinear"), Shape{2, 1, 4, 2}, want);
}

TEST_CASE("image_transform: a shift by 2 and by −2 under every fill mode", "[image]") {
  // One row [1, 2, 3, 4]; output x reads input x + a2.
  HostTensor row = make<double>(Shape{1, 1, 4, 1}, {1, 2, 3, 4});
  auto shift = [](double a2) { return matrix({1, 0, a2, 0, 1, 0, 0, 0}); };
  for (const char* interpolation : {"nearest", "bilinear"}) {
    INFO(interpolation);
    const Shape s{1, 1, 4, 1};
    check_both(Op::image_transform, {row, shift(2)}, transform_attrs(interpolation, "constant", -1),
               s, {3, 4, -1, -1});
    check_both(Op::image_transform, {row, shift(2)}, transform_attrs(interpolation, "nearest"), s,
               {3, 4, 4, 4});
    check_both(Op::image_transform, {row, shift(2)}, transform_attrs(interpolation, "wrap"), s,
               {3, 4, 1, 2});
    check_both(Op::image_transform, {row, shift(2)}, transform_attrs(interpolation, "reflect"), s,
               {3, 4, 4, 3});
    check_both(Op::image_transform, {row, shift(-2)},
               transform_attrs(interpolation, "constant", -1), s, {-1, -1, 1, 2});
    check_both(Op::image_transform, {row, shift(-2)}, transform_attrs(interpolation, "nearest"), s,
               {1, 1, 1, 2});
    check_both(Op::image_transform, {row, shift(-2)}, transform_attrs(interpolation, "wrap"), s,
               {3, 4, 1, 2});
    check_both(Op::image_transform, {row, shift(-2)}, transform_attrs(interpolation, "reflect"), s,
               {2, 1, 1, 2});
    // Far away: reflect has period 8, wrap 4.
    check_both(Op::image_transform, {row, shift(9)}, transform_attrs(interpolation, "reflect"), s,
               {2, 3, 4, 4});
    check_both(Op::image_transform, {row, shift(-7)}, transform_attrs(interpolation, "wrap"), s,
               {2, 3, 4, 1});
  }
}

TEST_CASE("image_transform: half-pixel shifts, bilinear weights and nearest rounding", "[image]") {
  HostTensor row = make<double>(Shape{1, 1, 4, 1}, {1, 2, 3, 4});
  HostTensor half = matrix({1, 0, 0.5, 0, 1, 0, 0, 0});
  const Shape s{1, 1, 4, 1};
  // Sources 0.5, 1.5, 2.5, 3.5: the last is half outside (constant 0) or clamped to 3.
  check_both(Op::image_transform, {row, half}, transform_attrs("bilinear", "constant", 0), s,
             {1.5, 2.5, 3.5, 2});
  check_both(Op::image_transform, {row, half}, transform_attrs("bilinear", "nearest"), s,
             {1.5, 2.5, 3.5, 4});
  // Nearest rounds halves away from zero: 0.5 → 1, 3.5 → 4 (outside).
  check_both(Op::image_transform, {row, half}, transform_attrs("nearest", "constant", -1), s,
             {2, 3, 4, -1});
  // A quarter shift on a 2x2: bilinear weights in both directions.
  HostTensor square = make<double>(Shape{1, 2, 2, 1}, {0, 1, 2, 3});
  HostTensor quarter = matrix({1, 0, 0.25, 0, 1, 0.25, 0, 0});
  // (y, x) = (0.25, 0.25) → 0.25·2 + 0.25 = 0.75; the others lean on fill 0 beyond the edge.
  check_both(Op::image_transform, {square, quarter}, transform_attrs("bilinear", "constant", 0),
             Shape{1, 2, 2, 1},
             {0.75, 0.75 * (0.75 * 1 + 0.25 * 3), 0.75 * (0.75 * 2 + 0.25 * 3), 0.75 * 0.75 * 3});
}

TEST_CASE("image_transform: a 90° rotation, a projective division and per-image matrices",
          "[image]") {
  // out[y][x] = in[2 − x][y] on a 3x3 with in[r][c] = 3r + c.
  HostTensor grid = ramp(3, 3, 3);
  std::vector<double> want;
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 3; ++x)
      want.push_back(3 * (2 - x) + y);
  check_both(Op::image_transform, {grid, matrix({0, 1, 0, -1, 0, 2, 0, 0})},
             transform_attrs("bilinear", "constant"), Shape{1, 3, 3, 1}, want);
  // k = 1 − x: column 0 is the identity, column 1 divides by 0 (fill), column 2 reads (−2, −y).
  check_both(Op::image_transform, {grid, matrix({1, 0, 0, 0, 1, 0, -1, 0})},
             transform_attrs("nearest", "constant", -5), Shape{1, 3, 3, 1},
             {0, -5, -5, 3, -5, -5, 6, -5, -5});
  // Two images, each with its own shift; a NaN matrix fills.
  HostTensor pair = make<double>(Shape{2, 1, 3, 1}, {1, 2, 3, 4, 5, 6});
  const double nan = std::numeric_limits<double>::quiet_NaN();
  check_both(Op::image_transform,
             {pair, matrix({1, 0, 1, 0, 1, 0, 0, 0, 1, 0, -1, 0, 1, 0, 0, 0}, 2)},
             transform_attrs("bilinear", "constant", 9), Shape{2, 1, 3, 1}, {2, 3, 9, 9, 4, 5});
  check_both(Op::image_transform, {pair, matrix({1, 0, nan, 0, 1, 0, 0, 0})},
             transform_attrs("bilinear", "reflect", 7), Shape{2, 1, 3, 1}, {7, 7, 7, 7, 7, 7});
}

TEST_CASE("compiled image ops equal the interpreter on random images and transforms",
          "[image][codegen]") {
  for (DType dtype : {DType::f32, DType::f64}) {
    INFO(ir::dtype_name(dtype));
    ir::Function f("images");
    const Shape shape{3, 7, 5, 2};
    ir::Value* x = f.add_param({dtype, shape});
    ir::Value* m = f.add_param({dtype, Shape{3, 8}});
    ir::Value* m1 = f.add_param({dtype, Shape{1, 8}});
    std::vector<ir::Value*> outs;
    for (const char* method : {"bilinear", "nearest"}) {
      for (auto [h, w] : {std::pair<int64_t, int64_t>{4, 9}, {7, 5}, {13, 3}, {1, 1}})
        outs.push_back(f.append(Op::image_resize, {x}, resize_attrs(h, w, method))->output());
      for (const char* fill : {"reflect", "wrap", "constant", "nearest"}) {
        outs.push_back(
            f.append(Op::image_transform, {x, m}, transform_attrs(method, fill, 0.5))->output());
        outs.push_back(
            f.append(Op::image_transform, {x, m1}, transform_attrs(method, fill, -2))->output());
      }
    }
    f.set_outputs(outs);
    // A rotation with zoom and shift, a strong projective one, and a shift far outside; the
    // coordinates avoid exact halves, where nearest rounding is a tie.
    const double c = std::cos(0.7) * 1.3, s = std::sin(0.7) * 1.3;
    HostTensor mats = ir::HostTensor::from_values<double>(
        Shape{3, 8}, std::vector<double>{c,   -s,  1.1,   s,    c,   -0.9, 0,    0,      //
                                         0.9, 0.2, 0.3,   -0.1, 1.1, 0.2,  0.05, -0.03,  //
                                         1,   0,   -13.3, 0,    1,   21.7, 0,    0});
    HostTensor one = ir::HostTensor::from_values<double>(
        Shape{1, 8}, std::vector<double>{-1, 0, 4.1, 0, 1.2, -0.35, 0, 0});
    auto as_dtype = [&](const HostTensor& t) {
      return dtype == DType::f64 ? t : run1(Op::cast, {t}, Attrs().set_dtype("dtype", dtype));
    };
    check_against_interpreter(f, {sample({dtype, shape}, 11, false), as_dtype(mats), as_dtype(one)},
                              1e-5);
  }
}

TEST_CASE("image ops have no gradient: differentiating through them is an error", "[image]") {
  k::Tensor x = k::random_uniform({1, 4, 4, 1}, 0, 1, 3);
  k::Tensor m = k::constant(std::vector<float>{1, 0, 0, 0, 1, 0, 0, 0});
  for (int which = 0; which < 2; ++which) {
    k::GradientTape tape;
    tape.watch(x);
    k::Tensor y =
        which == 0 ? k::image::resize(x, {2, 2}) : k::image::transform(x, k::reshape(m, {1, 8}));
    k::Tensor loss = k::reduce_sum(y);
    try {
      tape.gradient(loss, x);
      FAIL("no error");
    } catch (const k::Error& e) {
      CHECK_THAT(e.what(), Catch::Contains(which == 0 ? "image_resize" : "image_transform") &&
                               Catch::Contains("no gradient"));
    }
  }
}

TEST_CASE("image ops reject bad operands", "[image][errors]") {
  k::Tensor img = k::zeros({1, 4, 4, 1});
  k::Tensor m = k::zeros({1, 8});
  CHECK_THROWS_AS(k::image::resize(k::zeros({4, 4, 1}), {2, 2}), k::ShapeError);
  CHECK_THROWS_AS(k::image::resize(k::zeros({1, 4, 4, 1}, k::i32), {2, 2}), k::TypeError);
  CHECK_THROWS_AS(k::image::resize(k::zeros({1, 0, 4, 1}), {2, 2}), k::ShapeError);
  CHECK_THROWS_AS(k::image::transform(k::zeros({4, 4, 1}), m), k::ShapeError);
  CHECK_THROWS_AS(k::image::transform(img, k::zeros({1, 6})), k::ShapeError);
  CHECK_THROWS_AS(k::image::transform(img, k::zeros({2, 8})), k::ShapeError);
  CHECK_THROWS_AS(k::image::transform(img, k::zeros({1, 8}, k::f64)), k::TypeError);
  CHECK_THROWS_AS(k::image::transform(k::zeros({1, 4, 4, 1}, k::u8), m), k::TypeError);
}

TEST_CASE("image ops reject bad attributes", "[image][errors]") {
  k::Tensor img = k::zeros({1, 4, 4, 1});
  k::Tensor m = k::zeros({1, 8});
  CHECK_THROWS_AS(k::image::resize(img, {0, 2}), k::ValueError);
  CHECK_THROWS_AS(k::image::resize(img, {2}), k::ValueError);
  CHECK_THROWS_WITH(k::image::resize(img, {2, 2}, "bicubic"),
                    Catch::Contains("method must be \"bilinear\" or \"nearest\""));
  CHECK_THROWS_WITH(k::image::transform(img, m, "cubic"), Catch::Contains("interpolation must be"));
  CHECK_THROWS_WITH(k::image::transform(img, m, "bilinear", "mirror"),
                    Catch::Contains("fill_mode must be"));
  CHECK_THROWS_AS(k::image::transform(img, m, "bilinear", "mirror"), k::ValueError);
}
