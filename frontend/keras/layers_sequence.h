// Keras sequence layers without a recurrence: 1-D convolution and pooling over
// [batch, steps, channels], Embedding, and TimeDistributed.
//
//   k::Sequential model({
//       L::Conv1D(32, 5, {.padding = "causal", .activation = "relu", .input_shape = {k::None, 1}}),
//       L::MaxPooling1D(2),
//       L::Dense(1),                       // on [batch, steps, 32]: applied to every step
//   });
//
// The 1-D layers run the 2-D ops on a size-1 height axis (conv2d on [batch, 1, steps, c]), so
// they compile and differentiate like Conv2D and the pooling layers.
#pragma once

#include <concepts>
#include <cstdint>
#include <memory>
#include <optional>
#include <source_location>
#include <string>
#include <string_view>

#include "kiln/frontend/core/tensor.h"
#include "kiln/frontend/core/variable.h"
#include "kiln/frontend/keras/layers.h"

namespace kiln {

// 1-D convolution of `input` [batch, steps, in] by `filters` [kernel, in, out] (tf.nn.conv1d,
// Keras's Conv1D kernel layout) to [batch, out_steps, out]. padding is "valid", "same" (as
// conv2d: out_steps = ceil(steps / stride)) or "causal" (zeros before the sequence only, so
// output step t sees input steps <= t; out_steps as "same" at stride 1). A tap i of the kernel
// reads the input `i * dilation` steps after the window's start. ValueError for another
// padding, ShapeError for wrong ranks or a dilated kernel longer than a "valid" input.
Tensor conv1d(const Tensor& input, const Tensor& filters, int64_t stride = 1,
              std::string_view padding = "valid", int64_t dilation = 1,
              std::source_location loc = std::source_location::current());
// Max / average over windows of `pool_size` steps of [batch, steps, channels], moving `stride`
// steps; padding "valid" or "same" (an average counts only the real steps, as Keras).
Tensor max_pool1d(const Tensor& input, int64_t pool_size, int64_t stride,
                  std::string_view padding = "valid",
                  std::source_location loc = std::source_location::current());
Tensor avg_pool1d(const Tensor& input, int64_t pool_size, int64_t stride,
                  std::string_view padding = "valid",
                  std::source_location loc = std::source_location::current());

namespace layers {

// Conv1D's keyword arguments in Keras's order (designated initializers must keep it):
// `{.strides = 1, .padding = "causal", .activation = "relu", .input_shape = {k::None, 1}}`.
struct Conv1DOptions {
  int64_t strides = 1;
  std::string padding = "valid";  // "valid", "same" or "causal"
  int64_t dilation_rate = 1;
  std::string activation = "";
  bool use_bias = true;
  std::string kernel_initializer = "glorot_uniform";
  std::string bias_initializer = "zeros";
  InputShape input_shape = {};
  std::string name = "";
};

// 1-D convolution over [batch, steps, channels]: y = activation(conv1d(x, kernel) + bias),
// kernel [kernel_size, channels, filters] and bias [filters], as Keras.
class Conv1D : public Layer {
 public:
  Conv1D(int64_t filters, int64_t kernel_size, Conv1DOptions options = {},
         std::source_location loc = std::source_location::current());
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& x, bool training) override;
  KILN_LAYER_CLASS(Conv1D)
  Variable kernel() const;
  // Undefined without use_bias.
  Variable bias() const;

 private:
  int64_t filters_, kernel_size_, strides_, dilation_rate_;
  std::string padding_;
  activations::Activation activation_;
  bool use_bias_;
  initializers::Initializer kernel_initializer_, bias_initializer_;
};

// 1-D pooling over [batch, steps, channels]; strides default to pool_size, as Keras.
// MaxPooling1D and AveragePooling1D differ only in the op their call() runs.
class Pooling1D : public Layer {
 protected:
  Pooling1D(const std::string& kind, const char* class_name, int64_t pool_size,
            std::optional<int64_t> strides, std::string padding, std::string name,
            std::source_location loc);
  // Checks the input's rank, then pools with `max` or average.
  Tensor pool(const Tensor& x, bool max);
  int64_t pool_size_, strides_;
  std::string padding_;
};

class MaxPooling1D : public Pooling1D {
 public:
  explicit MaxPooling1D(int64_t pool_size = 2, std::optional<int64_t> strides = std::nullopt,
                        std::string padding = "valid", std::string name = "",
                        std::source_location loc = std::source_location::current());
  Tensor call(const Tensor& x, bool training) override;
  KILN_LAYER_CLASS(MaxPooling1D)
};

class AveragePooling1D : public Pooling1D {
 public:
  explicit AveragePooling1D(int64_t pool_size = 2, std::optional<int64_t> strides = std::nullopt,
                            std::string padding = "valid", std::string name = "",
                            std::source_location loc = std::source_location::current());
  Tensor call(const Tensor& x, bool training) override;
  KILN_LAYER_CLASS(AveragePooling1D)
};

// Looks up integer indices in a table `embeddings` [input_dim, output_dim]: an input of any
// shape S gives S + [output_dim]. The default initializer "uniform" is uniform in ±0.05, as
// Keras. Indices are i32 or i64 (other integer dtypes are widened); a floating input is a
// TypeError and an index outside [0, input_dim) an IndexError, eager or compiled.
class Embedding : public Layer {
 public:
  Embedding(int64_t input_dim, int64_t output_dim,
            const std::string& embeddings_initializer = "uniform", InputShape input_shape = {},
            std::string name = "", std::source_location loc = std::source_location::current());
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& x, bool training) override;
  bool takes_indices() const override { return true; }
  KILN_LAYER_CLASS(Embedding)
  Variable embeddings() const;
  int64_t input_dim() const { return input_dim_; }
  int64_t output_dim() const { return output_dim_; }

 private:
  int64_t input_dim_, output_dim_;
  initializers::Initializer initializer_;
};

// Applies a layer to every time step of [batch, steps, ...] inputs by folding the steps into
// the batch ([batch * steps, ...]) and unfolding the result. The inner layer's weights are the
// wrapper's (the same Variables: trained, counted and saved once); the inner layer is shared,
// not copied, like Keras's.
//
//   L::TimeDistributed(L::Dense(8))    // [batch, steps, features] -> [batch, steps, 8]
class TimeDistributed : public Wrapper {
 public:
  template <class L>
  requires std::derived_from<L, Layer>
  explicit TimeDistributed(const L& layer, std::string name = "",
                           std::source_location loc = std::source_location::current())
      : TimeDistributed(std::shared_ptr<Layer>(std::make_shared<L>(layer)), std::move(name), loc) {}
  // ValueError for a null layer.
  explicit TimeDistributed(std::shared_ptr<Layer> layer, std::string name = "",
                           std::source_location loc = std::source_location::current());
  Tensor call(const Tensor& x, bool training) override;
  bool takes_indices() const override { return layer_->takes_indices(); }
  KILN_LAYER_CLASS(TimeDistributed)
  Layer& layer() const { return *layer_; }

 private:
  std::shared_ptr<Layer> layer_;
};

}  // namespace layers
}  // namespace kiln
