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

// Declares, inside a layer class's public section, its Keras class name and its clone() (what a
// call on a KerasTensor keeps of the layer: functional models hold layers by their own class):
//
//   class Scale : public k::layers::Layer {
//    public:
//     KILN_LAYER_CLASS(Scale)
//     ...
//   };
#define KILN_LAYER_CLASS(Name)                                    \
  std::string class_name() const override {                       \
    return #Name;                                                 \
  }                                                               \
  std::shared_ptr<::kiln::layers::Layer> clone() const override { \
    return std::make_shared<Name>(*this);                         \
  }

namespace kiln {

// Seeds the sequence unseeded initializers draw from (keras.utils.set_random_seed); the
// sequence starts from seed 0, so a program without a call is reproducible too.
void set_random_seed(uint64_t seed);
// Keras's keras.backend.clear_session() as far as names go: the next layer of each kind is named
// without a suffix again ("dense", then "dense_1", ...). Layers already made keep their names.
void clear_session();

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
// A random orthogonal matrix times `gain` (keras.initializers.Orthogonal): a normal matrix of
// (rows, cols) = (product of all but the last dimension, the last), orthonormalised by QR with
// the signs of R's diagonal taken out, transposed when rows < cols. The recurrent kernels'
// default.
Initializer orthogonal(double gain = 1.0, std::optional<uint64_t> seed = std::nullopt);
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
// `seed`, or the next seed of the sequence set_random_seed starts (a layer's random draws).
uint64_t layer_seed(std::optional<uint64_t> seed);
}  // namespace detail

// A dimension of any size in a declared shape, as Keras's None: k::Input({k::None, 1}) takes
// sequences of any length. (The batch dimension is never written: it is always any size.)
inline constexpr int64_t None = -1;

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

class Layer;
}  // namespace layers

class KerasTensor;
namespace detail {
struct KerasNode;
struct LayerAccess;
}  // namespace detail

namespace layers {

class Layer {
  struct State;

 public:
  virtual ~Layer() = default;
  Layer(const Layer&) = default;
  // Makes this a handle of `other`'s layer (its state and trainable flag).
  Layer& operator=(const Layer& other);

  // Builds the layer on the first call (from x's shape), then runs call() under the layer's
  // name scope.
  Tensor operator()(const Tensor& x, bool training = false,
                    std::source_location loc = std::source_location::current());
  // A layer of several inputs (Concatenate, Add, ...): builds from all their shapes on the first
  // call, then runs call_list().
  Tensor operator()(const std::vector<Tensor>& xs, bool training = false,
                    std::source_location loc = std::source_location::current());
  // The functional API: calling a layer on symbolic tensors (k::Input and what layers made of
  // it) builds it, works out the output's shape and records the call, so a k::Model can be made
  // of the graph. A layer called on several KerasTensors shares its weights between the calls.
  KerasTensor operator()(const KerasTensor& x,
                         std::source_location loc = std::source_location::current());
  KerasTensor operator()(const std::vector<KerasTensor>& xs,
                         std::source_location loc = std::source_location::current());
  // Every output of the layer (an RNN with return_state has several: output, then states);
  // operator() gives the first of one-output layers only.
  std::vector<Tensor> outputs(const std::vector<Tensor>& xs, bool training = false,
                              std::source_location loc = std::source_location::current());
  std::vector<KerasTensor> apply(const std::vector<KerasTensor>& xs,
                                 std::source_location loc = std::source_location::current());

  // Makes the layer's weights for inputs of `input_shape` (the batch dimension included).
  virtual void build(const Shape& input_shape);
  // The layer's computation.
  virtual Tensor call(const Tensor& x, bool training) = 0;
  // For layers of several inputs: build and call on the list. By default a list of one goes to
  // build() and call(), and a longer one is a ValueError.
  virtual void build_list(const std::vector<Shape>& input_shapes);
  virtual Tensor call_list(const std::vector<Tensor>& xs, bool training);
  // All the layer's outputs: by default the one of call() (one input) or call_list().
  virtual std::vector<Tensor> call_outputs(const std::vector<Tensor>& xs, bool training);
  // The Keras class name ("Dense").
  virtual std::string class_name() const = 0;
  // A new handle of the layer's own class sharing its weights and state (KILN_LAYER_CLASS
  // defines it); null for a class declared without that macro, which functional models refuse.
  virtual std::shared_ptr<Layer> clone() const { return nullptr; }
  // Whether the layer's inputs are integer indices (Embedding) rather than values in its
  // weights' dtype; a Sequential that starts with it expects i32 samples.
  virtual bool takes_indices() const { return false; }

  const std::string& name() const { return state_->name; }
  // Whether the layer has made its weights (a nested model: all its layers).
  virtual bool built() const { return state_->built; }
  // The input shape the layer was declared with (Flatten(/*input_shape=*/{28, 28})), without
  // the batch dimension; empty when not declared.
  const std::optional<Shape>& declared_input_shape() const { return state_->input_shape; }

  // The symbolic input and output of the layer's call on KerasTensors (Keras's layer.input and
  // layer.output): ValueError if it was never called on one, or on several (then its outputs
  // differ: use the KerasTensors the calls returned).
  KerasTensor input(std::source_location loc = std::source_location::current()) const;
  KerasTensor output(std::source_location loc = std::source_location::current()) const;
  // How many times the layer was called on KerasTensors (Keras's inbound nodes).
  int64_t symbolic_calls() const;

  // All weights in creation order, the trainable ones, the others. A frozen layer
  // (trainable = false) reports all its weights as non-trainable.
  virtual std::vector<Variable> weights() const { return state_->weights; }
  virtual std::vector<Variable> trainable_weights() const;
  virtual std::vector<Variable> non_trainable_weights() const;

  // Keras's layer.trainable, shared by every handle of the layer: `layer.trainable = false;`
  // freezes it, `layer.trainable()` (or the flag in a condition) reads it. A frozen
  // BatchNormalization also runs in inference mode, as in Keras.
  class Trainable {
   public:
    Trainable& operator=(bool value) {
      *flag_ = value;
      return *this;
    }
    bool operator()() const { return *flag_; }
    operator bool() const { return *flag_; }  // NOLINT: reads like Keras's attribute

   private:
    friend class Layer;
    Trainable() : flag_(std::make_shared<bool>(true)) {}
    Trainable(const Trainable&) = default;
    // A layer assigned from another rebinds to its flag (Layer's copy assignment); assigning one
    // flag to another copies the value, as `a.trainable = b.trainable` reads.
    Trainable& operator=(const Trainable& other) {
      *flag_ = *other.flag_;
      return *this;
    }
    std::shared_ptr<bool> flag_;
  };
  Trainable trainable;
  void set_trainable(bool value) { trainable = value; }
  virtual int64_t count_params() const;

 protected:
  // `kind` is the Keras snake-case name ("dense") used for unique names.
  Layer(const std::string& kind, std::string name, InputShape input_shape);
  Variable add_weight(const std::string& name, const Shape& shape,
                      const initializers::Initializer& initializer, bool trainable = true,
                      DType dtype = f32);

 private:
  friend struct ::kiln::detail::LayerAccess;
  struct State {
    std::string name;
    bool built = false;
    std::optional<Shape> input_shape;
    std::vector<Variable> weights;
    std::vector<bool> weight_trainable;
    // The layer's calls on KerasTensors, in order (the nodes own the layer, hence weak).
    std::vector<std::weak_ptr<detail::KerasNode>> nodes;
  };
  // Checks the inputs against a declared input_shape and builds on the first call.
  void prepare(const std::vector<Tensor>& xs, const std::source_location& here);
  std::shared_ptr<State> state_;
};

// A layer made of other layers (TimeDistributed, Bidirectional): their weights, in order, are
// its weights (the same Variables, trained and saved once), and freezing it freezes them all.
class Wrapper : public Layer {
 public:
  bool built() const override;
  std::vector<Variable> weights() const override;
  std::vector<Variable> trainable_weights() const override;
  std::vector<Variable> non_trainable_weights() const override;
  int64_t count_params() const override;

 protected:
  Wrapper(const std::string& kind, std::string name, InputShape input_shape,
          std::vector<std::shared_ptr<Layer>> inner);
  std::vector<std::shared_ptr<Layer>> inner_;
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
  KILN_LAYER_CLASS(Dense)
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
  KILN_LAYER_CLASS(Flatten)
};

// Applies an activation function.
class Activation : public Layer {
 public:
  explicit Activation(const std::string& activation, std::string name = "",
                      std::source_location loc = std::source_location::current());
  Tensor call(const Tensor& x, bool training) override;
  KILN_LAYER_CLASS(Activation)

 private:
  activations::Activation activation_;
};

// keras.layers.ReLU: x above `threshold` passes (capped at max_value when given), the rest is
// negative_slope·(x − threshold). ReLU(6.0) is relu6, MobileNet's activation. Computed as
// Keras's activations.relu computes it, so values match Keras's everywhere (also where a
// negative threshold meets a max_value: Keras then clips at 0 from below). ValueError for a
// negative max_value or negative_slope, as Keras.
class ReLU : public Layer {
 public:
  explicit ReLU(std::optional<double> max_value = std::nullopt, double negative_slope = 0.0,
                double threshold = 0.0, std::string name = "",
                std::source_location loc = std::source_location::current());
  Tensor call(const Tensor& x, bool training) override;
  KILN_LAYER_CLASS(ReLU)
  const std::optional<double>& max_value() const { return max_value_; }

 private:
  std::optional<double> max_value_;
  double negative_slope_, threshold_;
};

// Reshapes every sample to `target_shape` (batch dimension kept; one -1 allowed).
class Reshape : public Layer {
 public:
  explicit Reshape(Shape target_shape, InputShape input_shape = {}, std::string name = "");
  Tensor call(const Tensor& x, bool training) override;
  KILN_LAYER_CLASS(Reshape)

 private:
  Shape target_;
};

// One size for both spatial axes (`3`) or one per axis (`{3, 5}`), as Keras's strides and
// dilation_rate take an int or a tuple.
struct SpatialSize {
  std::vector<int64_t> dims;
  SpatialSize(int64_t size) : dims{size} {}                           // NOLINT: implicit
  SpatialSize(std::initializer_list<int64_t> sizes) : dims(sizes) {}  // NOLINT: implicit
};

// Conv2D's keyword arguments in Keras's order (designated initializers must keep it):
// `{.padding = "same", .activation = "relu"}`.
struct Conv2DOptions {
  SpatialSize strides = 1;
  std::string padding = "valid";  // "valid" or "same"
  SpatialSize dilation_rate = 1;
  std::string activation = "";
  bool use_bias = true;
  std::string kernel_initializer = "glorot_uniform";
  std::string bias_initializer = "zeros";
  InputShape input_shape = {};
  std::string name = "";
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
  // Keras's keywords: Conv2D(32, 3, {.padding = "same", .activation = "relu"}); an int
  // kernel_size is square.
  Conv2D(int64_t filters, int64_t kernel_size, Conv2DOptions options = {},
         std::source_location loc = std::source_location::current());
  // Conv2D(32, {3, 5}, {.strides = 2}); an initializer list, as a vector would make a braced
  // kernel size ambiguous with the positional constructor.
  Conv2D(int64_t filters, std::initializer_list<int64_t> kernel_size, Conv2DOptions options,
         std::source_location loc = std::source_location::current());
  void build(const Shape& input_shape) override;
  Tensor call(const Tensor& x, bool training) override;
  KILN_LAYER_CLASS(Conv2D)

 private:
  int64_t filters_;
  std::vector<int64_t> kernel_size_, strides_;
  std::string padding_;
  activations::Activation activation_;
  bool use_bias_;
  initializers::Initializer kernel_initializer_, bias_initializer_;
  std::vector<int64_t> dilation_rate_{1, 1};
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
  KILN_LAYER_CLASS(MaxPooling2D)
};

class AveragePooling2D : public Pooling2D {
 public:
  explicit AveragePooling2D(std::vector<int64_t> pool_size = {2, 2},
                            std::vector<int64_t> strides = {}, std::string padding = "valid",
                            std::string name = "");
  Tensor call(const Tensor& x, bool training) override;
  KILN_LAYER_CLASS(AveragePooling2D)
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
  KILN_LAYER_CLASS(GlobalAveragePooling1D)
};

// Maximum over the time axis of [batch, steps, channels] inputs.
class GlobalMaxPooling1D : public GlobalPooling {
 public:
  explicit GlobalMaxPooling1D(std::string data_format = "channels_last", bool keepdims = false,
                              std::string name = "",
                              std::source_location loc = std::source_location::current());
  KILN_LAYER_CLASS(GlobalMaxPooling1D)
};

// Mean over height and width of NHWC inputs.
class GlobalAveragePooling2D : public GlobalPooling {
 public:
  explicit GlobalAveragePooling2D(std::string data_format = "channels_last", bool keepdims = false,
                                  std::string name = "",
                                  std::source_location loc = std::source_location::current());
  KILN_LAYER_CLASS(GlobalAveragePooling2D)
};

// Maximum over height and width of NHWC inputs.
class GlobalMaxPooling2D : public GlobalPooling {
 public:
  explicit GlobalMaxPooling2D(std::string data_format = "channels_last", bool keepdims = false,
                              std::string name = "",
                              std::source_location loc = std::source_location::current());
  KILN_LAYER_CLASS(GlobalMaxPooling2D)
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
  KILN_LAYER_CLASS(ZeroPadding2D)

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
  KILN_LAYER_CLASS(Dropout)
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
  KILN_LAYER_CLASS(BatchNormalization)

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
  KILN_LAYER_CLASS(Lambda)

 private:
  std::function<Tensor(const Tensor&)> fn_;
};

}  // namespace layers
}  // namespace kiln
