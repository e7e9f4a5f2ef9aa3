#include "kiln/frontend/keras/layers_depthwise.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <utility>

#include "kiln/frontend/core/index.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/ops.h"

namespace kiln {

namespace {

using Loc = std::source_location;
using detail::lower;

// One value for both spatial axes, or two; ValueError unless they are positive.
std::vector<int64_t> spatial_pair(std::string_view op, const char* what, std::vector<int64_t> v,
                                  const Loc& loc) {
  bool ok = (v.size() == 1 || v.size() == 2) &&
            std::all_of(v.begin(), v.end(), [](int64_t d) { return d > 0; });
  if (!ok) {
    detail::raise<ValueError>(
        op, {},
        fmt::format("{} needs one or two positive values, got ({})", what, fmt::join(v, ", ")),
        loc);
  }
  if (v.size() == 1) v.push_back(v[0]);
  return v;
}

// TensorFlow rejects a stride and a dilation above 1 together (the windows would skip taps
// unevenly); so does Keras when the layer is made.
void require_not_both(std::string_view op, const std::vector<int64_t>& strides,
                      const std::vector<int64_t>& dilations, const Loc& loc) {
  auto above_one = [](const std::vector<int64_t>& v) {
    return std::any_of(v.begin(), v.end(), [](int64_t d) { return d > 1; });
  };
  if (above_one(strides) && above_one(dilations)) {
    detail::raise<ValueError>(op, {},
                              fmt::format("strides ({}) above 1 cannot be combined with "
                                          "dilations ({}) above 1",
                                          fmt::join(strides, ", "), fmt::join(dilations, ", ")),
                              loc);
  }
}

std::string checked_padding(std::string_view op, std::string_view padding, const Loc& loc) {
  std::string mode = lower(padding);
  if (mode != "valid" && mode != "same") {
    detail::raise<ValueError>(
        op, {}, fmt::format("padding must be \"valid\" or \"same\", got \"{}\"", padding), loc);
  }
  return mode;
}

}  // namespace

Tensor depthwise_conv2d(const Tensor& input, const Tensor& filter, std::vector<int64_t> strides,
                        std::string_view padding, std::vector<int64_t> dilations, Loc loc) {
  const char* op = "depthwise_conv2d";
  strides = spatial_pair(op, "strides", std::move(strides), loc);
  dilations = spatial_pair(op, "dilations", std::move(dilations), loc);
  require_not_both(op, strides, dilations, loc);
  std::string mode = checked_padding(op, padding, loc);
  if (input.rank() != 4) {
    detail::raise<ShapeError>(
        op, {input},
        fmt::format("needs NHWC inputs of rank 4, got shape {}", input.shape().to_string()), loc);
  }
  const Shape& in = input.shape();
  if (filter.rank() != 4 || filter.shape()[2] != in[3]) {
    detail::raise<ShapeError>(op, {input, filter},
                              fmt::format("needs a filter [kh, kw, {}, multiplier] for an input "
                                          "with {} channels, got filter of shape {}",
                                          in[3], in[3], filter.shape().to_string()),
                              loc);
  }
  if (filter.dtype() != input.dtype() || !ir::is_floating(input.dtype())) {
    detail::raise<TypeError>(
        op, {input, filter},
        fmt::format("needs a floating input and a filter of the same dtype, "
                    "got {} and {}",
                    ir::dtype_name(input.dtype()), ir::dtype_name(filter.dtype())),
        loc);
  }
  const int64_t batch = in[0], channels = in[3], multiplier = filter.shape()[3];
  const int64_t kernel[2] = {filter.shape()[0], filter.shape()[1]};
  // Per spatial axis: the input span one output reads, the output size and the zeros before.
  int64_t out[2], before[2], after[2];
  for (int d = 0; d < 2; ++d) {
    int64_t size = in[1 + d];
    int64_t span = (kernel[d] - 1) * dilations[size_t(d)] + 1;
    int64_t stride = strides[size_t(d)];
    if (mode == "valid") {
      if (size < span) {
        detail::raise<ShapeError>(
            op, {input, filter},
            fmt::format("the kernel ({}x{}, dilations ({})) spans {} along {} but the input has "
                        "{} (shape {}) and padding is \"valid\": use a larger input, a smaller "
                        "kernel or padding \"same\"",
                        kernel[0], kernel[1], fmt::join(dilations, ", "), span,
                        d == 0 ? "the height" : "the width", size, in.to_string()),
            loc);
      }
      out[d] = (size - span) / stride + 1;
      before[d] = after[d] = 0;
    } else {
      // conv2d's (and TensorFlow's) "same": ceil(size / stride) outputs, odd padding after.
      out[d] = (size + stride - 1) / stride;
      int64_t total = std::max<int64_t>((out[d] - 1) * stride + span - size, 0);
      before[d] = total / 2;
      after[d] = total - before[d];
    }
  }
  if (batch == 0 || channels == 0 || multiplier == 0 || out[0] == 0 || out[1] == 0) {
    return zeros(Shape{batch, out[0], out[1], channels * multiplier}, input.dtype(), loc);
  }
  Tensor x = input;
  if (before[0] || after[0] || before[1] || after[1]) {
    x = pad(x, {{0, 0}, {before[0], after[0]}, {before[1], after[1]}, {0, 0}}, 0, loc);
  }
  // With a multiplier, an axis of size 1 after the channels meets the filter's [in, multiplier]
  // taps by broadcasting; the result's last two axes flatten to channel c·multiplier + m.
  const bool multiply = multiplier != 1;
  if (multiply) x = expand_dims(x, 4, loc);
  Tensor taps = multiply ? filter : reshape(filter, Shape{kernel[0], kernel[1], channels}, loc);
  Tensor y;
  for (int64_t i = 0; i < kernel[0]; ++i) {
    for (int64_t j = 0; j < kernel[1]; ++j) {
      int64_t top = i * dilations[0], left = j * dilations[1];
      std::vector<IndexItem> window{
          Slice(),
          Slice(top, top + (out[0] - 1) * strides[0] + 1, strides[0]),
          Slice(left, left + (out[1] - 1) * strides[1] + 1, strides[1]),
          Slice(),
      };
      if (multiply) window.push_back(Slice());
      Tensor term = x.index(window, loc) * taps.index({i, j}, loc);
      y = y.defined() ? y + term : term;
    }
  }
  if (multiply) y = reshape(y, Shape{batch, out[0], out[1], channels * multiplier}, loc);
  return y;
}

namespace layers {

DepthwiseConv2D::DepthwiseConv2D(SpatialSize kernel_size, DepthwiseConv2DOptions options, Loc loc)
    : Layer("depthwise_conv2d", std::move(options.name), std::move(options.input_shape)),
      kernel_size_(spatial_pair("DepthwiseConv2D", "kernel_size", kernel_size.dims, loc)),
      strides_(spatial_pair("DepthwiseConv2D", "strides", options.strides.dims, loc)),
      dilation_rate_(
          spatial_pair("DepthwiseConv2D", "dilation_rate", options.dilation_rate.dims, loc)),
      padding_(checked_padding("DepthwiseConv2D", options.padding, loc)),
      depth_multiplier_(options.depth_multiplier),
      activation_(activations::get(options.activation, loc)),
      use_bias_(options.use_bias),
      depthwise_initializer_(initializers::get(options.depthwise_initializer, loc)),
      bias_initializer_(initializers::get(options.bias_initializer, loc)) {
  // Keras checks its keywords when the layer is made, not on its first call.
  require_not_both("DepthwiseConv2D", strides_, dilation_rate_, loc);
  if (depth_multiplier_ <= 0) {
    detail::raise<ValueError>(
        "DepthwiseConv2D", {},
        fmt::format("depth_multiplier must be positive, got {}", depth_multiplier_), loc);
  }
}

void DepthwiseConv2D::build(const Shape& input_shape) {
  if (input_shape.rank() != 4) {
    detail::raise<ShapeError>(
        "DepthwiseConv2D", {},
        fmt::format("needs NHWC inputs of rank 4, got shape {}", input_shape.to_string()),
        std::source_location::current());
  }
  int64_t channels = input_shape[3];
  add_weight("depthwise_kernel",
             Shape{kernel_size_[0], kernel_size_[1], channels, depth_multiplier_},
             depthwise_initializer_);
  if (use_bias_) add_weight("bias", Shape{channels * depth_multiplier_}, bias_initializer_);
}

Variable DepthwiseConv2D::depthwise_kernel() const {
  return weights().at(0);
}

Variable DepthwiseConv2D::bias() const {
  return use_bias_ ? weights().at(1) : Variable();
}

Tensor DepthwiseConv2D::call(const Tensor& x, bool) {
  int64_t channels = depthwise_kernel().shape()[2];
  if (x.rank() != 4 || x.shape()[3] != channels) {
    detail::raise<ShapeError>("DepthwiseConv2D", {x},
                              fmt::format("the layer was built for NHWC inputs with {} channels, "
                                          "got input of shape {}",
                                          channels, x.shape().to_string()),
                              std::source_location::current());
  }
  Tensor y = depthwise_conv2d(x, depthwise_kernel(), strides_, padding_, dilation_rate_);
  if (use_bias_) y = y + bias();
  return activation_(y);
}

}  // namespace layers
}  // namespace kiln
