// Keras's functional API: symbolic tensors (k::Input) that layers are called on, recording a
// graph of layer calls that k::Model(inputs, outputs) runs; and the merge layers that take
// several inputs.
//
//   k::KerasTensor in = k::Input({28, 28, 1});
//   k::KerasTensor a = L::Conv2D(32, 3, {.padding = "same", .activation = "relu"})(in);
//   k::KerasTensor b = L::Conv2D(32, 1, {.activation = "relu"})(in);
//   k::KerasTensor out = L::Dense(10, "softmax")(L::GlobalAveragePooling2D()(
//       L::Concatenate()({a, b})));
//   k::Model model(in, out);
//
// A KerasTensor holds no values: calling a layer on one builds the layer (from the shape, with
// the batch and any None dimension at a stand-in size) and works out the output's shape by
// tracing the layer on symbolic stand-ins twice, with two different sizes for the unknown
// dimensions; dimensions that differ between the two are None in the result.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <source_location>
#include <string>
#include <vector>

#include "kiln/frontend/core/tensor.h"
#include "kiln/frontend/keras/layers.h"

namespace kiln {

// A symbolic tensor of the functional API: the output of k::Input or of a layer called on
// KerasTensors. Its shape has the batch dimension first; unknown sizes are k::None.
class KerasTensor {
 public:
  KerasTensor() = default;

  bool defined() const { return node_ != nullptr; }
  const Shape& shape() const;
  DType dtype() const;
  int64_t rank() const { return shape().rank(); }
  // "<layer>[<call>][<output>]", as Keras's summary names inbound tensors: "dense[0][0]".
  std::string name() const;
  // The layer that made this tensor (an InputLayer for k::Input).
  const std::shared_ptr<layers::Layer>& layer() const;

  // Internal: the recorded call and which of its outputs this is.
  const std::shared_ptr<detail::KerasNode>& node() const { return node_; }
  size_t output_index() const { return index_; }
  KerasTensor(std::shared_ptr<detail::KerasNode> node, size_t index)
      : node_(std::move(node)), index_(index) {}

 private:
  std::shared_ptr<detail::KerasNode> node_;
  size_t index_ = 0;
};

namespace detail {
// One call of a layer on KerasTensors (Keras's Node).
struct KerasNode {
  std::shared_ptr<layers::Layer> layer;
  std::vector<KerasTensor> inputs;
  // Batch first, None dimensions as k::None.
  std::vector<TensorType> outputs;
  // Which of the layer's calls this is.
  int64_t call_index = 0;
};

// The size an unknown (k::None) dimension takes when a model is traced to build its layers or
// work out shapes: large enough for any kernel a layer is likely to have.
inline constexpr int64_t kNoneStandIn = 64;
// `type` with every k::None dimension replaced by `stand_in`.
TensorType concrete_type(const TensorType& type, int64_t stand_in = kNoneStandIn);
// "(None, 28, 28, 1)": a shape as Keras prints it, k::None as None.
std::string shape_text(const Shape& shape);
// Runs `fn` on symbolic stand-ins of `types` (k::None dimensions, the batch's included, at
// stand-in sizes) twice, with two different stand-ins, and returns what fn reports for each
// value it makes, with the dimensions that differ between the two runs as k::None.
std::vector<TensorType> symbolic_types(
    const std::vector<TensorType>& types,
    const std::function<std::vector<TensorType>(const std::vector<Tensor>&)>& fn,
    const std::string& name);
}  // namespace detail

// keras.Input: a symbolic batch of samples of `shape` (no batch dimension; k::None for a
// dimension of any size). ValueError for a negative size other than k::None.
KerasTensor Input(const layers::InputShape& shape, DType dtype = f32, std::string name = "",
                  std::source_location loc = std::source_location::current());

namespace layers {

// The layer k::Input makes: the model's entry; passes its input through.
class InputLayer : public Layer {
 public:
  InputLayer(Shape sample_shape, DType dtype, std::string name);
  Tensor call(const Tensor& x, bool training) override;
  KILN_LAYER_CLASS(InputLayer)
  // The sample shape (k::None for any size) and dtype of the model's input.
  const Shape& sample_shape() const { return sample_shape_; }
  DType dtype() const { return dtype_; }

 private:
  Shape sample_shape_;
  DType dtype_;
};

// The merge layers: one output from a list of inputs of the same shape (Concatenate: the same
// shape but along `axis`). The arithmetic ones broadcast as NumPy does, like Keras's.
class Merge : public Layer {
 public:
  Tensor call(const Tensor& x, bool training) override;
  Tensor call_list(const std::vector<Tensor>& xs, bool training) override;

 protected:
  Merge(const std::string& kind, std::string name);
  // Combines the checked inputs (two or more).
  virtual Tensor merge(const std::vector<Tensor>& xs) = 0;
  // The least number of inputs (Subtract: exactly two).
  virtual size_t min_inputs() const { return 2; }
  virtual size_t max_inputs() const { return SIZE_MAX; }
};

// Joins the inputs along `axis` (default the last); every other dimension must agree.
class Concatenate : public Merge {
 public:
  explicit Concatenate(int64_t axis = -1, std::string name = "");
  KILN_LAYER_CLASS(Concatenate)

 protected:
  Tensor merge(const std::vector<Tensor>& xs) override;

 private:
  int64_t axis_;
};

// The element-wise sum of the inputs.
class Add : public Merge {
 public:
  explicit Add(std::string name = "");
  KILN_LAYER_CLASS(Add)

 protected:
  Tensor merge(const std::vector<Tensor>& xs) override;
};

// inputs[0] − inputs[1] (exactly two inputs).
class Subtract : public Merge {
 public:
  explicit Subtract(std::string name = "");
  KILN_LAYER_CLASS(Subtract)

 protected:
  Tensor merge(const std::vector<Tensor>& xs) override;
  size_t max_inputs() const override { return 2; }
};

// The element-wise product of the inputs.
class Multiply : public Merge {
 public:
  explicit Multiply(std::string name = "");
  KILN_LAYER_CLASS(Multiply)

 protected:
  Tensor merge(const std::vector<Tensor>& xs) override;
};

// The element-wise mean of the inputs.
class Average : public Merge {
 public:
  explicit Average(std::string name = "");
  KILN_LAYER_CLASS(Average)

 protected:
  Tensor merge(const std::vector<Tensor>& xs) override;
};

// The element-wise maximum of the inputs.
class Maximum : public Merge {
 public:
  explicit Maximum(std::string name = "");
  KILN_LAYER_CLASS(Maximum)

 protected:
  Tensor merge(const std::vector<Tensor>& xs) override;
};

// The element-wise minimum of the inputs.
class Minimum : public Merge {
 public:
  explicit Minimum(std::string name = "");
  KILN_LAYER_CLASS(Minimum)

 protected:
  Tensor merge(const std::vector<Tensor>& xs) override;
};

}  // namespace layers

namespace detail {

// The graph of a functional model: its inputs, its outputs, and the calls between them in an
// order that runs each after its inputs.
class FunctionalGraph {
 public:
  // Walks back from `outputs` to `inputs`; ValueError if an output depends on a KerasTensor
  // that is not one of the inputs, or an input is not a k::Input.
  FunctionalGraph(std::vector<KerasTensor> inputs, std::vector<KerasTensor> outputs,
                  const std::string& model, const std::source_location& loc);

  const std::vector<KerasTensor>& inputs() const { return inputs_; }
  const std::vector<KerasTensor>& outputs() const { return outputs_; }
  // The calls in the order they run (inputs' InputLayer nodes first).
  const std::vector<std::shared_ptr<KerasNode>>& nodes() const { return nodes_; }
  // The distinct layers in Keras's order (each at its first call, inputs first).
  std::vector<std::shared_ptr<layers::Layer>> layers() const;

  // Runs the calls on real (or traced) tensors, one per input.
  std::vector<Tensor> run(const std::vector<Tensor>& xs, bool training, const std::string& model,
                          const std::source_location& loc) const;

 private:
  std::vector<KerasTensor> inputs_, outputs_;
  std::vector<std::shared_ptr<KerasNode>> nodes_;
};

}  // namespace detail
}  // namespace kiln
