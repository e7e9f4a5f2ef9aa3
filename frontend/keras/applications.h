// keras.applications: well-known architectures built with the functional API, with Keras's
// layer names and order, so Keras weight files for them load (Model::load_weights). No
// pretrained weights come with Kiln (nothing is downloaded): load a file you have.
//
//   auto base = k::applications::InceptionV3({.input_shape = {150, 150, 3}, .include_top = false});
//   base.load_weights("inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5");
#pragma once

#include <cstdint>
#include <optional>
#include <source_location>
#include <string>

#include "kiln/frontend/keras/model.h"

namespace kiln {

namespace applications {

// keras.applications.InceptionV3's arguments (no `weights`: load a file with load_weights).
struct InceptionV3Options {
  // The shape of one image, at least 75×75 with 3 channels; (299, 299, 3) by default.
  layers::InputShape input_shape = {};
  // The classifier: global average pooling and Dense(classes) named "predictions".
  bool include_top = true;
  // Without the top: "" keeps the 4-D output of "mixed10", "avg" or "max" pools it to 2-D.
  std::string pooling = "";
  int64_t classes = 1000;
  std::string classifier_activation = "softmax";
};

// Inception v3 (Szegedy et al., 2015) as Keras builds it: 311 layers without the top (the input,
// 94 convolutions without bias each followed by BatchNormalization(scale = false) and ReLU,
// pooling, and the concatenations mixed0 … mixed10), named and ordered as in a fresh Keras
// session when made after clear_session(). ValueError for an input smaller than 75×75, not 3
// channels, or unknown pooling/activation.
Model InceptionV3(const InceptionV3Options& options = {},
                  std::source_location loc = std::source_location::current());

// Scales pixels in [0, 255] to [-1, 1] (x / 127.5 − 1), as keras.applications.inception_v3's
// preprocess_input; integer images come out f32.
Tensor inception_v3_preprocess_input(const Tensor& x,
                                     std::source_location loc = std::source_location::current());

// keras.applications.MobileNetV2's arguments (no `weights`: load a file with load_weights).
struct MobileNetV2Options {
  // The shape of one image, (height, width, channels) with height and width at least 32 or
  // k::None; (224, 224, 3) by default, (None, None, 3) by default without the top (as Keras).
  layers::InputShape input_shape = {};
  // The width multiplier: every block's filters times alpha, rounded to a multiple of 8 as
  // Keras's _make_divisible rounds (Keras's ImageNet weights exist for 0.35, 0.5, 0.75, 1.0, 1.3
  // and 1.4); the last convolution keeps 1280 filters unless alpha > 1.
  double alpha = 1.0;
  // The classifier: global average pooling and Dense(classes) named "predictions". It needs a
  // known height and width.
  bool include_top = true;
  // Without the top: "" keeps the 4-D output of "out_relu", "avg" or "max" pools it to 2-D.
  std::string pooling = "";
  int64_t classes = 1000;
  std::string classifier_activation = "softmax";
};

// MobileNetV2 (Sandler et al., 2018) as Keras builds it: Conv1 (stride 2), 17 inverted residual
// blocks (1×1 expansion, 3×3 DepthwiseConv2D, 1×1 linear projection, each convolution without
// bias and followed by BatchNormalization(epsilon = 1e-3, momentum = 0.999), ReLU(6) after the
// first two, an Add where shapes allow), Conv_1 and out_relu: 154 layers without the top, named
// as Keras names them ("block_3_depthwise", "block_3_project_BN", "block_4_add", ...) and in
// its order. The model is named as Keras's, "mobilenetv2_1.00_224". ValueError for an input
// other than (height, width, channels) with sides of at least 32, an unknown height or width
// with the top, alpha <= 0, classes <= 0, or unknown pooling or activation.
Model MobileNetV2(const MobileNetV2Options& options = {},
                  std::source_location loc = std::source_location::current());

// Scales pixels in [0, 255] to [-1, 1] (x / 127.5 − 1), as keras.applications.mobilenet_v2's
// preprocess_input; integer images come out f32.
Tensor mobilenet_v2_preprocess_input(const Tensor& x,
                                     std::source_location loc = std::source_location::current());

}  // namespace applications
}  // namespace kiln
