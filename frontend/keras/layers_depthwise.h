// Depthwise 2-D convolution (tf.nn.depthwise_conv2d, keras.layers.DepthwiseConv2D): every input
// channel convolved with its own depth_multiplier filters, no sum over channels. MobileNet's
// building block.
//
//   k::KerasTensor y = L::DepthwiseConv2D(3, {.strides = 2, .padding = "same"})(x);
//
// It runs on the existing ops, with no op of its own: the input padded once, then for each of
// the kh·kw taps a strided slice times that tap's weights, summed. Slices, pads and the products
// are all element-wise to fusion, so the whole convolution (and the BatchNormalization and ReLU
// after it) compiles to one loop, and its gradient comes from the slice, pad and mul rules.
#pragma once

#include <cstdint>
#include <source_location>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/frontend/core/tensor.h"
#include "kiln/frontend/keras/layers.h"

namespace kiln {

// Depthwise convolution of `input` [batch, h, w, in] by `filter` [kh, kw, in, multiplier] to
// [batch, oh, ow, in·multiplier]; output channel c·multiplier + m is input channel c convolved
// with filter[:, :, c, m]. strides and dilations take one value (both axes) or two; padding is
// "valid" or "same" (any case), with conv2d's output sizes and padding split. ValueError for bad
// strides, dilations or padding, or strides and dilations both above 1 (as TensorFlow);
// ShapeError for wrong ranks, a filter whose channels differ from the input's, or a dilated
// kernel larger than a "valid" input; TypeError unless both are of one floating dtype.
Tensor depthwise_conv2d(const Tensor& input, const Tensor& filter,
                        std::vector<int64_t> strides = {1, 1}, std::string_view padding = "valid",
                        std::vector<int64_t> dilations = {1, 1},
                        std::source_location loc = std::source_location::current());

namespace layers {

// DepthwiseConv2D's keyword arguments in Keras's order (designated initializers must keep it):
// `{.strides = 2, .padding = "same", .use_bias = false}`. No data_format: channels last only.
struct DepthwiseConv2DOptions {
  SpatialSize strides = 1;
  std::string padding = "valid";  // "valid" or "same"
  int64_t depth_multiplier = 1;
  SpatialSize dilation_rate = 1;
  std::string activation = "";
  bool use_bias = true;
  std::string depthwise_initializer = "glorot_uniform";
  std::string bias_initializer = "zeros";
  InputShape input_shape = {};
  std::string name = "";
};

// y = activation(depthwise_conv2d(x, depthwise_kernel) + bias) over NHWC inputs. Weights:
// depthwise_kernel [kh, kw, in, depth_multiplier], then bias [in·depth_multiplier] (Keras's
// names and order, so Keras weight files load). ValueError when made with a non-positive
// kernel_size, strides, dilation_rate or depth_multiplier, strides and dilation_rate both above
// 1, another padding or an unknown activation or initializer; ShapeError on inputs not of rank 4.
class DepthwiseConv2D : public Layer {
 public:
  // An int kernel_size is square: DepthwiseConv2D(3), DepthwiseConv2D({3, 5}, {.strides = 2}).
  explicit DepthwiseConv2D(SpatialSize kernel_size, DepthwiseConv2DOptions options = {},
                           std::source_location loc = std::source_location::current());
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& x, bool training) override;
  KILN_LAYER_CLASS(DepthwiseConv2D)
  int64_t depth_multiplier() const { return depth_multiplier_; }
  Variable depthwise_kernel() const;
  // Undefined for a layer made with use_bias = false.
  Variable bias() const;

 private:
  std::vector<int64_t> kernel_size_, strides_, dilation_rate_;
  std::string padding_;
  int64_t depth_multiplier_;
  activations::Activation activation_;
  bool use_bias_;
  initializers::Initializer depthwise_initializer_, bias_initializer_;
};

}  // namespace layers
}  // namespace kiln
