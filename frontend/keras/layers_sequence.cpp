#include "kiln/frontend/keras/layers_sequence.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <vector>

#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/ops.h"

namespace kiln {

namespace {

using Loc = std::source_location;
using detail::lower;

// ShapeError unless x is [batch, steps, channels].
void require_sequence(std::string_view op, const Tensor& x, const Loc& loc) {
  if (x.rank() != 3) {
    detail::raise<ShapeError>(op, {x},
                              fmt::format("needs inputs of rank 3 [batch, steps, channels], got "
                                          "shape {}",
                                          x.shape().to_string()),
                              loc);
  }
}

// ValueError unless `value` is positive.
void require_positive(std::string_view op, const char* what, int64_t value, const Loc& loc) {
  if (value <= 0) {
    detail::raise<ValueError>(op, {}, fmt::format("{} must be positive, got {}", what, value), loc);
  }
}

// ShapeError when a "valid" window of `span` steps does not fit in `steps`.
void require_fits(std::string_view op, const Tensor& x, int64_t span, const std::string& what,
                  const Loc& loc) {
  if (x.shape()[1] < span) {
    detail::raise<ShapeError>(op, {x},
                              fmt::format("the {} spans {} steps but the input has {} (shape {}) "
                                          "and padding is \"valid\": use a longer input, a "
                                          "smaller window or padding \"same\"",
                                          what, span, x.shape()[1], x.shape().to_string()),
                              loc);
  }
}

Tensor pool1d(bool max, const Tensor& input, int64_t pool_size, int64_t stride,
              std::string_view padding, const Loc& loc) {
  const char* op = max ? "max_pool1d" : "avg_pool1d";
  require_positive(op, "pool_size", pool_size, loc);
  require_positive(op, "strides", stride, loc);
  std::string mode = lower(padding);
  if (mode != "valid" && mode != "same") {
    detail::raise<ValueError>(
        op, {}, fmt::format("padding must be \"valid\" or \"same\", got \"{}\"", padding), loc);
  }
  require_sequence(op, input, loc);
  if (mode == "valid") require_fits(op, input, pool_size, "pool window", loc);
  Tensor x = expand_dims(input, 1, loc);
  Tensor y = max ? max_pool2d(x, {1, pool_size}, {1, stride}, mode, loc)
                 : avg_pool2d(x, {1, pool_size}, {1, stride}, mode, loc);
  return squeeze(y, {1}, loc);
}

}  // namespace

Tensor conv1d(const Tensor& input, const Tensor& filters, int64_t stride, std::string_view padding,
              int64_t dilation, Loc loc) {
  require_positive("conv1d", "strides", stride, loc);
  require_positive("conv1d", "dilation_rate", dilation, loc);
  std::string mode = lower(padding);
  if (mode != "valid" && mode != "same" && mode != "causal") {
    detail::raise<ValueError>(
        "conv1d", {},
        fmt::format("padding must be \"valid\", \"same\" or \"causal\", got \"{}\"", padding), loc);
  }
  require_sequence("conv1d", input, loc);
  if (filters.rank() != 3 || filters.shape()[1] != input.shape()[2]) {
    detail::raise<ShapeError>(
        "conv1d", {input, filters},
        fmt::format("needs filters [kernel, {}, out] for an input with {} "
                    "channels, got filters of shape {}",
                    input.shape()[2], input.shape()[2], filters.shape().to_string()),
        loc);
  }
  // The steps one output step reads, first tap to last.
  const int64_t span = (filters.shape()[0] - 1) * dilation + 1;
  Tensor x = expand_dims(input, 1, loc);
  if (mode == "causal") {
    // Zeros before the sequence only: then a "valid" window ending at step t starts at t − span
    // + 1.
    x = pad(x, {{0, 0}, {0, 0}, {span - 1, 0}, {0, 0}}, 0, loc);
    mode = "valid";
  } else if (mode == "valid") {
    require_fits("conv1d", input, span,
                 fmt::format("kernel ({} taps, dilation {})", filters.shape()[0], dilation), loc);
  }
  Tensor y = conv2d(x, expand_dims(filters, 0, loc), {1, stride}, mode, {1, dilation}, loc);
  return squeeze(y, {1}, loc);
}

Tensor max_pool1d(const Tensor& input, int64_t pool_size, int64_t stride, std::string_view padding,
                  Loc loc) {
  return pool1d(true, input, pool_size, stride, padding, loc);
}

Tensor avg_pool1d(const Tensor& input, int64_t pool_size, int64_t stride, std::string_view padding,
                  Loc loc) {
  return pool1d(false, input, pool_size, stride, padding, loc);
}

namespace layers {

Conv1D::Conv1D(int64_t filters, int64_t kernel_size, Conv1DOptions options, Loc loc)
    : Layer("conv1d", std::move(options.name), std::move(options.input_shape)),
      filters_(filters),
      kernel_size_(kernel_size),
      strides_(options.strides),
      dilation_rate_(options.dilation_rate),
      padding_(lower(options.padding)),
      activation_(activations::get(options.activation, loc)),
      use_bias_(options.use_bias),
      kernel_initializer_(initializers::get(options.kernel_initializer, loc)),
      bias_initializer_(initializers::get(options.bias_initializer, loc)) {
  require_positive("Conv1D", "filters", filters, loc);
  require_positive("Conv1D", "kernel_size", kernel_size, loc);
  require_positive("Conv1D", "strides", strides_, loc);
  require_positive("Conv1D", "dilation_rate", dilation_rate_, loc);
  if (padding_ != "valid" && padding_ != "same" && padding_ != "causal") {
    detail::raise<ValueError>(
        "Conv1D", {},
        fmt::format("padding must be \"valid\", \"same\" or \"causal\", got \"{}\"",
                    options.padding),
        loc);
  }
}

void Conv1D::build(const Shape& input_shape) {
  if (input_shape.rank() != 3) {
    detail::raise<ShapeError>("Conv1D", {},
                              fmt::format("needs inputs of rank 3 [batch, steps, channels], got "
                                          "shape {}",
                                          input_shape.to_string()),
                              Loc::current());
  }
  add_weight("kernel", Shape{kernel_size_, input_shape[2], filters_}, kernel_initializer_);
  if (use_bias_) add_weight("bias", Shape{filters_}, bias_initializer_);
}

Variable Conv1D::kernel() const {
  return weights().at(0);
}

Variable Conv1D::bias() const {
  return use_bias_ ? weights().at(1) : Variable();
}

Tensor Conv1D::call(const Tensor& x, bool) {
  const Loc here = Loc::current();
  require_sequence("Conv1D", x, here);
  int64_t channels = kernel().shape()[1];
  if (x.shape()[2] != channels) {
    detail::raise<ShapeError>("Conv1D", {x},
                              fmt::format("the layer was built for inputs with {} channels, got "
                                          "input of shape {}",
                                          channels, x.shape().to_string()),
                              here);
  }
  Tensor y = conv1d(x, kernel(), strides_, padding_, dilation_rate_, here);
  if (use_bias_) y = y + bias();
  return activation_(y);
}

Pooling1D::Pooling1D(const std::string& kind, const char* class_name, int64_t pool_size,
                     std::optional<int64_t> strides, std::string padding, std::string name, Loc loc)
    : Layer(kind, std::move(name), std::nullopt),
      pool_size_(pool_size),
      strides_(strides.value_or(pool_size)),
      padding_(lower(padding)) {
  // A base constructor cannot call the virtual class_name(): the subclass passes its own.
  require_positive(class_name, "pool_size", pool_size_, loc);
  require_positive(class_name, "strides", strides_, loc);
  if (padding_ != "valid" && padding_ != "same") {
    detail::raise<ValueError>(
        class_name, {}, fmt::format("padding must be \"valid\" or \"same\", got \"{}\"", padding),
        loc);
  }
}

Tensor Pooling1D::pool(const Tensor& x, bool max) {
  const Loc here = Loc::current();
  require_sequence(class_name(), x, here);
  return max ? max_pool1d(x, pool_size_, strides_, padding_, here)
             : avg_pool1d(x, pool_size_, strides_, padding_, here);
}

MaxPooling1D::MaxPooling1D(int64_t pool_size, std::optional<int64_t> strides, std::string padding,
                           std::string name, Loc loc)
    : Pooling1D("max_pooling1d", "MaxPooling1D", pool_size, strides, std::move(padding),
                std::move(name), loc) {}

Tensor MaxPooling1D::call(const Tensor& x, bool) {
  return pool(x, true);
}

AveragePooling1D::AveragePooling1D(int64_t pool_size, std::optional<int64_t> strides,
                                   std::string padding, std::string name, Loc loc)
    : Pooling1D("average_pooling1d", "AveragePooling1D", pool_size, strides, std::move(padding),
                std::move(name), loc) {}

Tensor AveragePooling1D::call(const Tensor& x, bool) {
  return pool(x, false);
}

namespace {
// Keras's Embedding default "uniform" is RandomUniform(-0.05, 0.05).
initializers::Initializer embedding_initializer(const std::string& name, const Loc& loc) {
  if (name == "uniform") return initializers::random_uniform(-0.05, 0.05);
  return initializers::get(name, loc);
}
}  // namespace

Embedding::Embedding(int64_t input_dim, int64_t output_dim,
                     const std::string& embeddings_initializer, InputShape input_shape,
                     std::string name, Loc loc)
    : Layer("embedding", std::move(name), std::move(input_shape)),
      input_dim_(input_dim),
      output_dim_(output_dim),
      initializer_(embedding_initializer(embeddings_initializer, loc)) {
  require_positive("Embedding", "input_dim", input_dim, loc);
  require_positive("Embedding", "output_dim", output_dim, loc);
}

void Embedding::build(const Shape&) {
  add_weight("embeddings", Shape{input_dim_, output_dim_}, initializer_);
}

Variable Embedding::embeddings() const {
  return weights().at(0);
}

Tensor Embedding::call(const Tensor& x, bool) {
  const Loc here = Loc::current();
  if (!ir::is_integer(x.dtype())) {
    detail::raise<TypeError>(
        "Embedding", {x},
        fmt::format("takes integer indices in [0, {}), got {}: cast them, e.g. k::cast(x, k::i32)",
                    input_dim_, x.type().to_string()),
        here);
  }
  Tensor indices = x;
  if (x.dtype() != DType::i32 && x.dtype() != DType::i64) indices = cast(x, DType::i32, here);
  return gather(embeddings(), indices, 0, here);
}

TimeDistributed::TimeDistributed(std::shared_ptr<Layer> layer, std::string name, Loc loc)
    : Wrapper("time_distributed", std::move(name), std::nullopt, {layer}),
      layer_(std::move(layer)) {
  if (!layer_) {
    detail::raise<ValueError>("TimeDistributed", {}, "needs a layer to wrap, got none", loc);
  }
}

Tensor TimeDistributed::call(const Tensor& x, bool training) {
  const Loc here = Loc::current();
  if (x.rank() < 3) {
    detail::raise<ShapeError>("TimeDistributed", {x},
                              fmt::format("needs inputs of rank >= 3 [batch, steps, ...], got "
                                          "shape {}",
                                          x.shape().to_string()),
                              here);
  }
  const int64_t batch = x.shape()[0], steps = x.shape()[1];
  std::vector<int64_t> folded{batch * steps};
  folded.insert(folded.end(), x.shape().begin() + 2, x.shape().end());
  Tensor y = (*layer_)(reshape(x, Shape(folded), here), training, here);
  if (y.rank() < 1 || y.shape()[0] != batch * steps) {
    detail::raise<ShapeError>("TimeDistributed", {x, y},
                              fmt::format("the wrapped layer '{}' must keep the batch dimension "
                                          "({} = batch × steps), got output of shape {}",
                                          layer_->name(), batch * steps, y.shape().to_string()),
                              here);
  }
  std::vector<int64_t> unfolded{batch, steps};
  unfolded.insert(unfolded.end(), y.shape().begin() + 1, y.shape().end());
  return reshape(y, Shape(unfolded), here);
}

}  // namespace layers
}  // namespace kiln
