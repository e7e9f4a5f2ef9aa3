// keras.applications architectures, built with the functional API in Keras's order of layer
// creation (names follow from it).
#include "kiln/frontend/keras/applications.h"

#include <fmt/format.h>

#include <string>
#include <vector>

#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/ops.h"

namespace kiln {
namespace applications {

namespace {

namespace L = layers;

// Conv2D without bias, BatchNormalization without scale, ReLU: Keras's conv2d_bn helper.
KerasTensor conv2d_bn(const KerasTensor& x, int64_t filters, int64_t rows, int64_t cols,
                      const std::string& padding = "same", std::vector<int64_t> strides = {1, 1}) {
  KerasTensor y = L::Conv2D(filters, {rows, cols}, std::move(strides), padding, "", std::nullopt,
                            /*use_bias=*/false)(x);
  y = L::BatchNormalization(3, 0.99, 1e-3, /*center=*/true, /*scale=*/false)(y);
  return L::Activation("relu")(y);
}

KerasTensor avg_pool_same(const KerasTensor& x) {
  return L::AveragePooling2D({3, 3}, {1, 1}, "same")(x);
}

KerasTensor max_pool(const KerasTensor& x) {
  return L::MaxPooling2D({3, 3}, {2, 2})(x);
}

// mixed0 … mixed2: 35×35.
KerasTensor block_35(const KerasTensor& x, int64_t pool_filters, const std::string& name) {
  KerasTensor b1 = conv2d_bn(x, 64, 1, 1);
  KerasTensor b5 = conv2d_bn(conv2d_bn(x, 48, 1, 1), 64, 5, 5);
  KerasTensor b3 = conv2d_bn(conv2d_bn(conv2d_bn(x, 64, 1, 1), 96, 3, 3), 96, 3, 3);
  KerasTensor bp = conv2d_bn(avg_pool_same(x), pool_filters, 1, 1);
  return L::Concatenate(3, name)({b1, b5, b3, bp});
}

// mixed4 … mixed7: 17×17 with factorised 7×7 convolutions of `c` channels.
KerasTensor block_17(const KerasTensor& x, int64_t c, const std::string& name) {
  KerasTensor b1 = conv2d_bn(x, 192, 1, 1);
  KerasTensor b7 = conv2d_bn(x, c, 1, 1);
  b7 = conv2d_bn(b7, c, 1, 7);
  b7 = conv2d_bn(b7, 192, 7, 1);
  KerasTensor bd = conv2d_bn(x, c, 1, 1);
  bd = conv2d_bn(bd, c, 7, 1);
  bd = conv2d_bn(bd, c, 1, 7);
  bd = conv2d_bn(bd, c, 7, 1);
  bd = conv2d_bn(bd, 192, 1, 7);
  KerasTensor bp = conv2d_bn(avg_pool_same(x), 192, 1, 1);
  return L::Concatenate(3, name)({b1, b7, bd, bp});
}

// mixed9, mixed10: 8×8.
KerasTensor block_8(const KerasTensor& x, int64_t i) {
  KerasTensor b1 = conv2d_bn(x, 320, 1, 1);
  KerasTensor b3 = conv2d_bn(x, 384, 1, 1);
  KerasTensor b3_1 = conv2d_bn(b3, 384, 1, 3);
  KerasTensor b3_2 = conv2d_bn(b3, 384, 3, 1);
  b3 = L::Concatenate(3, fmt::format("mixed9_{}", i))({b3_1, b3_2});
  KerasTensor bd = conv2d_bn(conv2d_bn(x, 448, 1, 1), 384, 3, 3);
  KerasTensor bd_1 = conv2d_bn(bd, 384, 1, 3);
  KerasTensor bd_2 = conv2d_bn(bd, 384, 3, 1);
  bd = L::Concatenate(3)({bd_1, bd_2});
  KerasTensor bp = conv2d_bn(avg_pool_same(x), 192, 1, 1);
  return L::Concatenate(3, fmt::format("mixed{}", 9 + i))({b1, b3, bd, bp});
}

}  // namespace

Model InceptionV3(const InceptionV3Options& options, std::source_location loc) {
  Shape shape = options.input_shape.shape.value_or(Shape{299, 299, 3});
  if (shape.rank() != 3 || shape[2] != 3 || shape[0] < 75 || shape[1] < 75) {
    detail::raise<ValueError>(
        "InceptionV3", {},
        fmt::format("input_shape must be (height, width, 3) with height and width at least 75, "
                    "got {}",
                    shape.to_string()),
        loc);
  }
  if (options.pooling != "" && options.pooling != "avg" && options.pooling != "max") {
    detail::raise<ValueError>(
        "InceptionV3", {},
        fmt::format("pooling must be \"\", \"avg\" or \"max\", got \"{}\"", options.pooling), loc);
  }
  if (options.include_top && options.classes <= 0) {
    detail::raise<ValueError>(
        "InceptionV3", {}, fmt::format("classes must be positive, got {}", options.classes), loc);
  }
  KerasTensor input = Input(shape, f32, "", loc);
  KerasTensor x = conv2d_bn(input, 32, 3, 3, "valid", {2, 2});
  x = conv2d_bn(x, 32, 3, 3, "valid");
  x = conv2d_bn(x, 64, 3, 3);
  x = max_pool(x);
  x = conv2d_bn(x, 80, 1, 1, "valid");
  x = conv2d_bn(x, 192, 3, 3, "valid");
  x = max_pool(x);

  x = block_35(x, 32, "mixed0");
  x = block_35(x, 64, "mixed1");
  x = block_35(x, 64, "mixed2");

  // mixed3: 35×35 to 17×17.
  {
    KerasTensor b3 = conv2d_bn(x, 384, 3, 3, "valid", {2, 2});
    KerasTensor bd = conv2d_bn(conv2d_bn(x, 64, 1, 1), 96, 3, 3);
    bd = conv2d_bn(bd, 96, 3, 3, "valid", {2, 2});
    KerasTensor bp = max_pool(x);
    x = L::Concatenate(3, "mixed3")({b3, bd, bp});
  }
  x = block_17(x, 128, "mixed4");
  x = block_17(x, 160, "mixed5");
  x = block_17(x, 160, "mixed6");
  x = block_17(x, 192, "mixed7");

  // mixed8: 17×17 to 8×8.
  {
    KerasTensor b3 = conv2d_bn(conv2d_bn(x, 192, 1, 1), 320, 3, 3, "valid", {2, 2});
    KerasTensor b7 = conv2d_bn(x, 192, 1, 1);
    b7 = conv2d_bn(b7, 192, 1, 7);
    b7 = conv2d_bn(b7, 192, 7, 1);
    b7 = conv2d_bn(b7, 192, 3, 3, "valid", {2, 2});
    KerasTensor bp = max_pool(x);
    x = L::Concatenate(3, "mixed8")({b3, b7, bp});
  }
  x = block_8(x, 0);
  x = block_8(x, 1);

  if (options.include_top) {
    x = L::GlobalAveragePooling2D("channels_last", false, "avg_pool")(x);
    x = L::Dense(options.classes, options.classifier_activation, std::nullopt, true,
                 "glorot_uniform", "zeros", "predictions", loc)(x);
  } else if (options.pooling == "avg") {
    x = L::GlobalAveragePooling2D()(x);
  } else if (options.pooling == "max") {
    x = L::GlobalMaxPooling2D()(x);
  }
  return Model(input, x, "inception_v3", loc);
}

Tensor inception_v3_preprocess_input(const Tensor& x, std::source_location loc) {
  Tensor f = ir::is_floating(x.dtype()) ? x : cast(x, f32, loc);
  return f * (1.0 / 127.5) - 1.0;
}

}  // namespace applications
}  // namespace kiln
