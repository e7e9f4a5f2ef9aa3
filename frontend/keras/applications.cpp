// keras.applications architectures, built with the functional API in Keras's order of layer
// creation (names follow from it).
#include "kiln/frontend/keras/applications.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/ops.h"
#include "kiln/frontend/keras/functional.h"
#include "kiln/frontend/keras/layers_depthwise.h"

namespace kiln {
namespace applications {

namespace {

namespace L = layers;

// The options of the classification head that every application checks alike.
void check_head(const char* model, const std::string& pooling, bool include_top, int64_t classes,
                const std::source_location& loc) {
  if (pooling != "" && pooling != "avg" && pooling != "max") {
    detail::raise<ValueError>(
        model, {}, fmt::format("pooling must be \"\", \"avg\" or \"max\", got \"{}\"", pooling),
        loc);
  }
  if (include_top && classes <= 0) {
    detail::raise<ValueError>(model, {}, fmt::format("classes must be positive, got {}", classes),
                              loc);
  }
}

// Keras's top of an application: average pooling and a Dense "predictions" layer, or without
// the top the pooling asked for (none, "avg" or "max"). `top_pool` names the top's pooling layer
// ("" for Keras's default name).
KerasTensor head(KerasTensor x, bool include_top, const std::string& pooling, int64_t classes,
                 const std::string& activation, const std::string& top_pool,
                 const std::source_location& loc) {
  if (include_top) {
    x = L::GlobalAveragePooling2D("channels_last", false, top_pool)(x);
    return L::Dense(classes, activation, std::nullopt, true, "glorot_uniform", "zeros",
                    "predictions", loc)(x);
  }
  if (pooling == "avg") return L::GlobalAveragePooling2D()(x);
  if (pooling == "max") return L::GlobalMaxPooling2D()(x);
  return x;
}

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
  check_head("InceptionV3", options.pooling, options.include_top, options.classes, loc);
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

  x = head(x, options.include_top, options.pooling, options.classes, options.classifier_activation,
           "avg_pool", loc);
  return Model(input, x, "inception_v3", loc);
}

Tensor inception_v3_preprocess_input(const Tensor& x, std::source_location loc) {
  Tensor f = ir::is_floating(x.dtype()) ? x : cast(x, f32, loc);
  return f * (1.0 / 127.5) - 1.0;
}

namespace {

// Keras's _make_divisible: `v` to the nearest multiple of `divisor` (halves up), at least
// `divisor`, and never more than 10% below v.
int64_t make_divisible(double v, int64_t divisor = 8) {
  int64_t rounded = std::max<int64_t>(
      divisor, static_cast<int64_t>(v + static_cast<double>(divisor) / 2) / divisor * divisor);
  if (static_cast<double>(rounded) < 0.9 * v) rounded += divisor;
  return rounded;
}

// MobileNetV2's BatchNormalization (epsilon 1e-3, momentum 0.999) and ReLU(6.0), as Keras's.
KerasTensor bn(const KerasTensor& x, const std::string& name) {
  return L::BatchNormalization(3, /*momentum=*/0.999, /*epsilon=*/1e-3, true, true, name)(x);
}

KerasTensor relu6(const KerasTensor& x, const std::string& name) {
  return L::ReLU(6.0, 0.0, 0.0, name)(x);
}

KerasTensor pointwise(const KerasTensor& x, int64_t filters, const std::string& name) {
  return L::Conv2D(filters, 1, {.padding = "same", .use_bias = false, .name = name})(x);
}

// Keras's imagenet_utils.correct_pad for a 3×3 kernel: one row and column of zeros before and
// after, less the one before on an even (or unknown) side, so a stride-2 "valid" window lines up
// as TensorFlow's "same" would.
std::pair<int64_t, int64_t> correct_pad(int64_t size) {
  int64_t adjust = size == kiln::None ? 1 : 1 - size % 2;
  return {1 - adjust, 1};
}

// Keras's _inverted_res_block: expand (not in block 0), depthwise, project, and the residual Add
// when the block keeps the shape.
KerasTensor inverted_res_block(const KerasTensor& inputs, int64_t expansion, int64_t stride,
                               double alpha, int64_t filters, int64_t block_id) {
  int64_t in_channels = inputs.shape()[3];
  int64_t pointwise_filters = make_divisible(
      static_cast<double>(static_cast<int64_t>(static_cast<double>(filters) * alpha)));
  std::string prefix = block_id ? fmt::format("block_{}_", block_id) : "expanded_conv_";
  KerasTensor x = inputs;
  if (block_id) {
    x = pointwise(x, expansion * in_channels, prefix + "expand");
    x = relu6(bn(x, prefix + "expand_BN"), prefix + "expand_relu");
  }
  if (stride == 2) {
    x = L::ZeroPadding2D({correct_pad(x.shape()[1]), correct_pad(x.shape()[2])}, prefix + "pad")(x);
  }
  x = L::DepthwiseConv2D(3, {.strides = stride,
                             .padding = stride == 1 ? "same" : "valid",
                             .use_bias = false,
                             .name = prefix + "depthwise"})(x);
  x = relu6(bn(x, prefix + "depthwise_BN"), prefix + "depthwise_relu");
  x = pointwise(x, pointwise_filters, prefix + "project");
  x = bn(x, prefix + "project_BN");
  if (in_channels == pointwise_filters && stride == 1) {
    return L::Add(prefix + "add")({inputs, x});
  }
  return x;
}

}  // namespace

Model MobileNetV2(const MobileNetV2Options& options, std::source_location loc) {
  // Keras's default: a fixed 224×224 with the classifier, any size without it.
  Shape shape = options.input_shape.shape.value_or(
      options.include_top ? Shape{224, 224, 3} : Shape{kiln::None, kiln::None, 3});
  bool sides_ok = shape.rank() == 3 && (shape[0] == kiln::None || shape[0] >= 32) &&
                  (shape[1] == kiln::None || shape[1] >= 32);
  if (!sides_ok || shape[2] <= 0) {
    detail::raise<ValueError>(
        "MobileNetV2", {},
        fmt::format("input_shape must be (height, width, channels) with height and width at "
                    "least 32 (or k::None) and a known number of channels, got {}",
                    shape.to_string()),
        loc);
  }
  if (options.include_top && (shape[0] == kiln::None || shape[1] == kiln::None)) {
    detail::raise<ValueError>(
        "MobileNetV2", {},
        fmt::format("include_top needs a known height and width, got input_shape {}",
                    shape.to_string()),
        loc);
  }
  if (!(options.alpha > 0) || !std::isfinite(options.alpha)) {
    detail::raise<ValueError>("MobileNetV2", {},
                              fmt::format("alpha must be positive, got {}", options.alpha), loc);
  }
  check_head("MobileNetV2", options.pooling, options.include_top, options.classes, loc);
  // Made before any layer, so that a bad activation leaves no layer names used.
  activations::get(options.classifier_activation, loc);
  const double alpha = options.alpha;

  KerasTensor input = Input(shape, f32, "", loc);
  KerasTensor x =
      L::Conv2D(make_divisible(32 * alpha), 3,
                {.strides = 2, .padding = "same", .use_bias = false, .name = "Conv1"})(input);
  x = relu6(bn(x, "bn_Conv1"), "Conv1_relu");

  // (filters, stride, expansion) of blocks 0 … 16, as in the paper's table 2.
  struct Block {
    int64_t filters, stride, expansion;
  };
  static constexpr Block kBlocks[] = {
      {16, 1, 1}, {24, 2, 6},  {24, 1, 6},  {32, 2, 6},  {32, 1, 6},  {32, 1, 6},
      {64, 2, 6}, {64, 1, 6},  {64, 1, 6},  {64, 1, 6},  {96, 1, 6},  {96, 1, 6},
      {96, 1, 6}, {160, 2, 6}, {160, 1, 6}, {160, 1, 6}, {320, 1, 6},
  };
  int64_t block_id = 0;
  for (const Block& b : kBlocks) {
    x = inverted_res_block(x, b.expansion, b.stride, alpha, b.filters, block_id++);
  }

  // The paper keeps the last convolution at 1280 filters for alpha <= 1.
  int64_t last_filters = alpha > 1.0 ? make_divisible(1280 * alpha) : 1280;
  x = L::Conv2D(last_filters, 1, {.use_bias = false, .name = "Conv_1"})(x);
  x = relu6(bn(x, "Conv_1_bn"), "out_relu");

  x = head(x, options.include_top, options.pooling, options.classes, options.classifier_activation,
           "", loc);
  std::string rows = shape[0] == kiln::None ? "None" : std::to_string(shape[0]);
  return Model(input, x, fmt::format("mobilenetv2_{:.2f}_{}", alpha, rows), loc);
}

Tensor mobilenet_v2_preprocess_input(const Tensor& x, std::source_location loc) {
  return inception_v3_preprocess_input(x, loc);
}

}  // namespace applications
}  // namespace kiln
