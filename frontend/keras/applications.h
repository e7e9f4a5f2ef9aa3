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

}  // namespace applications
}  // namespace kiln
