// Keras-style layers (keras.layers): objects that own Variables and map tensors to tensors.
//
//   k::layers::Dense dense(512, "relu");
//   k::Tensor y = dense(x);          // builds on the first call: kernel [in, 512], bias [512]
//
// A layer is built lazily, on its first call, from the input's shape (`build`), then `call`s.
// Its weights are Variables made with `add_weight` (seeded initializers). Layer names are
// unique per kind like Keras's ("dense", "dense_1", ...) and become IR name scopes, so traced
// graphs and errors say which layer an op belongs to. Layers are shared handles: copies refer
// to the same layer (and weights).
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <source_location>
#include <string>
#include <vector>

#include "kiln/frontend/core/tensor.h"
#include "kiln/frontend/core/variable.h"

namespace kiln {

// Seeds the sequence unseeded initializers draw from (keras.utils.set_random_seed); the
// sequence starts from seed 0, so a program without a call is reproducible too.
void set_random_seed(uint64_t seed);

namespace initializers {

// Makes the initial value of a weight of `shape` and `dtype`.
using Initializer = std::function<Tensor(const Shape& shape, DType dtype)>;

Initializer zeros();
Initializer ones();
Initializer constant(double value);
// With no seed, each initializer made draws the next seed of the global sequence.
Initializer random_normal(double mean = 0.0, double stddev = 0.05,
                          std::optional<uint64_t> seed = std::nullopt);
Initializer random_uniform(double minval = -0.05, double maxval = 0.05,
                           std::optional<uint64_t> seed = std::nullopt);
// Uniform in ±sqrt(6 / (fan_in + fan_out)).
Initializer glorot_uniform(std::optional<uint64_t> seed = std::nullopt);
// Truncated-normal-like: normal with stddev sqrt(2 / (fan_in + fan_out)) (Keras truncates at 2σ;
// Kiln clips at 2σ).
Initializer glorot_normal(std::optional<uint64_t> seed = std::nullopt);
Initializer he_normal(std::optional<uint64_t> seed = std::nullopt);
Initializer he_uniform(std::optional<uint64_t> seed = std::nullopt);
// By Keras name ("glorot_uniform", "zeros", ...); ValueError naming the known ones otherwise.
Initializer get(const std::string& name,
                std::source_location loc = std::source_location::current());

}  // namespace initializers

namespace activations {
using Activation = std::function<Tensor(const Tensor&)>;
// By Keras name: "linear" (or ""), "relu", "sigmoid", "tanh", "softmax", "elu", "softplus",
// "gelu" (exact), "exponential"; ValueError otherwise.
Activation get(const std::string& name, std::source_location loc = std::source_location::current());
}  // namespace activations

namespace detail {
// What to do instead of feeding `got` (an integer or bool dtype) to a layer that computes in
// `want`: "cast to f32 and scale, e.g. k::cast(x, k::f32) / 255.f" for u8 images.
std::string cast_hint(DType got, DType want);
}  // namespace detail

namespace layers {

// The shape of one sample a layer expects (no batch dimension), as Keras's `input_shape=`:
// written `{28, 28}` or `k::Shape{28, 28}`; empty when not declared.
struct InputShape {
  std::optional<Shape> shape;
  InputShape() = default;
  InputShape(std::nullopt_t) {}                                            // NOLINT: implicit
  InputShape(std::initializer_list<int64_t> dims) : shape(Shape(dims)) {}  // NOLINT: implicit
  InputShape(Shape s) : shape(std::move(s)) {}                             // NOLINT: implicit
  InputShape(std::optional<Shape> s) : shape(std::move(s)) {}              // NOLINT: implicit
};

class Layer {
 public:
  virtual ~Layer() = default;

  // Builds the layer on the first call (from x's shape), then runs call() under the layer's
  // name scope.
  Tensor operator()(const Tensor& x, bool training = false,
                    std::source_location loc = std::source_location::current());

  // Makes the layer's weights for inputs of `input_shape` (the batch dimension included).
  virtual void build(const Shape& input_shape);
  // The layer's computation.
  virtual Tensor call(const Tensor& x, bool training) = 0;
  // The Keras class name ("Dense").
  virtual std::string class_name() const = 0;

  const std::string& name() const { return state_->name; }
  bool built() const { return state_->built; }
  // The input shape the layer was declared with (Flatten(/*input_shape=*/{28, 28})), without
  // the batch dimension; empty when not declared.
  const std::optional<Shape>& declared_input_shape() const { return state_->input_shape; }

  // All weights in creation order, the trainable ones, the others. A frozen layer
  // (set_trainable(false)) reports all its weights as non-trainable.
  std::vector<Variable> weights() const { return state_->weights; }
  std::vector<Variable> trainable_weights() const;
  std::vector<Variable> non_trainable_weights() const;
  bool trainable() const { return state_->trainable; }
  void set_trainable(bool trainable) { state_->trainable = trainable; }
  int64_t count_params() const;

 protected:
  // `kind` is the Keras snake-case name ("dense") used for unique names.
  Layer(const std::string& kind, std::string name, InputShape input_shape);
  Variable add_weight(const std::string& name, const Shape& shape,
                      const initializers::Initializer& initializer, bool trainable = true,
                      DType dtype = f32);

 private:
  struct State {
    std::string name;
    bool built = false;
    bool trainable = true;
    std::optional<Shape> input_shape;
    std::vector<Variable> weights;
    std::vector<bool> weight_trainable;
  };
  std::shared_ptr<State> state_;
};

// y = activation(x·kernel + bias), over the last axis of x.
class Dense : public Layer {
 public:
  explicit Dense(int64_t units, const std::string& activation = "", InputShape input_shape = {},
                 bool use_bias = true, const std::string& kernel_initializer = "glorot_uniform",
                 const std::string& bias_initializer = "zeros", std::string name = "",
                 std::source_location loc = std::source_location::current());
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& x, bool training) override;
  std::string class_name() const override { return "Dense"; }
  int64_t units() const { return units_; }
  Variable kernel() const;
  Variable bias() const;

 private:
  int64_t units_;
  std::string activation_name_;
  activations::Activation activation_;
  bool use_bias_;
  initializers::Initializer kernel_initializer_, bias_initializer_;
};

// Collapses every dimension but the batch one.
class Flatten : public Layer {
 public:
  explicit Flatten(InputShape input_shape = {}, std::string name = "");
  Tensor call(const Tensor& x, bool training) override;
  std::string class_name() const override { return "Flatten"; }
};

// Applies an activation function.
class Activation : public Layer {
 public:
  explicit Activation(const std::string& activation, std::string name = "",
                      std::source_location loc = std::source_location::current());
  Tensor call(const Tensor& x, bool training) override;
  std::string class_name() const override { return "Activation"; }

 private:
  activations::Activation activation_;
};

// Reshapes every sample to `target_shape` (batch dimension kept; one -1 allowed).
class Reshape : public Layer {
 public:
  explicit Reshape(Shape target_shape, InputShape input_shape = {}, std::string name = "");
  Tensor call(const Tensor& x, bool training) override;
  std::string class_name() const override { return "Reshape"; }

 private:
  Shape target_;
};

// 2-D convolution over NHWC inputs: y = activation(conv2d(x, kernel) + bias), kernel
// [kh, kw, in_channels, filters].
class Conv2D : public Layer {
 public:
  Conv2D(int64_t filters, std::vector<int64_t> kernel_size, std::vector<int64_t> strides = {1, 1},
         std::string padding = "valid", const std::string& activation = "",
         InputShape input_shape = {}, bool use_bias = true,
         const std::string& kernel_initializer = "glorot_uniform",
         const std::string& bias_initializer = "zeros", std::string name = "",
         std::source_location loc = std::source_location::current());
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& x, bool training) override;
  std::string class_name() const override { return "Conv2D"; }

 private:
  int64_t filters_;
  std::vector<int64_t> kernel_size_, strides_;
  std::string padding_;
  activations::Activation activation_;
  bool use_bias_;
  initializers::Initializer kernel_initializer_, bias_initializer_;
};

// 2-D pooling over NHWC inputs; strides default to pool_size. MaxPooling2D and
// AveragePooling2D differ only in the op their call() runs.
class Pooling2D : public Layer {
 protected:
  Pooling2D(const std::string& kind, std::vector<int64_t> pool_size, std::vector<int64_t> strides,
            std::string padding, std::string name);
  std::vector<int64_t> pool_size_, strides_;
  std::string padding_;
};

class MaxPooling2D : public Pooling2D {
 public:
  explicit MaxPooling2D(std::vector<int64_t> pool_size = {2, 2}, std::vector<int64_t> strides = {},
                        std::string padding = "valid", std::string name = "");
  Tensor call(const Tensor& x, bool training) override;
  std::string class_name() const override { return "MaxPooling2D"; }
};

class AveragePooling2D : public Pooling2D {
 public:
  explicit AveragePooling2D(std::vector<int64_t> pool_size = {2, 2},
                            std::vector<int64_t> strides = {}, std::string padding = "valid",
                            std::string name = "");
  Tensor call(const Tensor& x, bool training) override;
  std::string class_name() const override { return "AveragePooling2D"; }
};

// Pools over every spatial axis at once: [batch, steps, c] (1-D) or [batch, h, w, c] (2-D) to
// [batch, c], or [batch, 1, c] / [batch, 1, 1, c] with keepdims. data_format "channels_first"
// takes the channels before the spatial axes, as Keras. The four Global*Pooling* layers differ
// only in their spatial rank and reduction.
class GlobalPooling : public Layer {
 public:
  Tensor call(const Tensor& x, bool training) override;
  bool keepdims() const { return keepdims_; }
  const std::string& data_format() const { return data_format_; }

 protected:
  GlobalPooling(const std::string& kind, const char* class_name, int64_t spatial_rank, bool max,
                std::string data_format, bool keepdims, std::string name, std::source_location loc);

 private:
  int64_t spatial_rank_;
  bool max_;
  std::string data_format_;
  bool keepdims_;
};

// Mean over the time axis of [batch, steps, channels] inputs.
class GlobalAveragePooling1D : public GlobalPooling {
 public:
  explicit GlobalAveragePooling1D(std::string data_format = "channels_last", bool keepdims = false,
                                  std::string name = "",
                                  std::source_location loc = std::source_location::current());
  std::string class_name() const override { return "GlobalAveragePooling1D"; }
};

// Maximum over the time axis of [batch, steps, channels] inputs.
class GlobalMaxPooling1D : public GlobalPooling {
 public:
  explicit GlobalMaxPooling1D(std::string data_format = "channels_last", bool keepdims = false,
                              std::string name = "",
                              std::source_location loc = std::source_location::current());
  std::string class_name() const override { return "GlobalMaxPooling1D"; }
};

// Mean over height and width of NHWC inputs.
class GlobalAveragePooling2D : public GlobalPooling {
 public:
  explicit GlobalAveragePooling2D(std::string data_format = "channels_last", bool keepdims = false,
                                  std::string name = "",
                                  std::source_location loc = std::source_location::current());
  std::string class_name() const override { return "GlobalAveragePooling2D"; }
};

// Maximum over height and width of NHWC inputs.
class GlobalMaxPooling2D : public GlobalPooling {
 public:
  explicit GlobalMaxPooling2D(std::string data_format = "channels_last", bool keepdims = false,
                              std::string name = "",
                              std::source_location loc = std::source_location::current());
  std::string class_name() const override { return "GlobalMaxPooling2D"; }
};

// Pads NHWC inputs with zero rows and columns: {{top, bottom}, {left, right}}.
class ZeroPadding2D : public Layer {
 public:
  explicit ZeroPadding2D(
      std::pair<std::pair<int64_t, int64_t>, std::pair<int64_t, int64_t>> padding = {{1, 1},
                                                                                     {1, 1}},
      std::string name = "");
  // The same padding on every side.
  explicit ZeroPadding2D(int64_t padding, std::string name = "");
  Tensor call(const Tensor& x, bool training) override;
  std::string class_name() const override { return "ZeroPadding2D"; }

 private:
  std::pair<std::pair<int64_t, int64_t>, std::pair<int64_t, int64_t>> padding_;
};

// Zeroes a fraction `rate` of the inputs in training, scaling the rest by 1/(1 − rate); the
// identity otherwise. The mask is new on every training call — eager or compiled — because the
// layer keeps a step counter (an i64 Variable, not a weight) that each training call advances
// and draws with random_uniform_at(step); seeded, so runs repeat.
class Dropout : public Layer {
 public:
  explicit Dropout(double rate, std::optional<uint64_t> seed = std::nullopt, std::string name = "",
                   std::source_location loc = std::source_location::current());
  Tensor call(const Tensor& x, bool training) override;
  std::string class_name() const override { return "Dropout"; }
  double rate() const { return rate_; }

 private:
  double rate_;
  int64_t seed_;
  Variable step_;
};

// Normalizes over every axis but `axis` (the channels): in training with the batch's mean and
// (biased) variance, updating moving averages (moving = momentum·moving + (1 − momentum)·batch);
// otherwise with the moving averages. y = gamma·(x − mean)/sqrt(var + epsilon) + beta. Weights:
// gamma, beta (trainable), moving_mean, moving_variance (non-trainable), as Keras.
class BatchNormalization : public Layer {
 public:
  explicit BatchNormalization(int64_t axis = -1, double momentum = 0.99, double epsilon = 1e-3,
                              bool center = true, bool scale = true, std::string name = "",
                              std::source_location loc = std::source_location::current());
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& x, bool training) override;
  std::string class_name() const override { return "BatchNormalization"; }

 private:
  int64_t axis_;
  double momentum_, epsilon_;
  bool center_, scale_;
};

// Wraps a C++ function of tensors.
class Lambda : public Layer {
 public:
  explicit Lambda(std::function<Tensor(const Tensor&)> fn, std::string name = "");
  Tensor call(const Tensor& x, bool training) override;
  std::string class_name() const override { return "Lambda"; }

 private:
  std::function<Tensor(const Tensor&)> fn_;
};

}  // namespace layers
}  // namespace kiln
