// A model saved by Model::save, loaded for inference and evaluation (keras.models.load_model).
//
//   k::SavedModel m = k::load_model("fashion_model");
//   m.summary();
//   k::Tensor probs = m.predict(x_test);                    // any number of samples
//   k::Tensor out = m(x);                                   // any batch (and None length)
//   std::vector<float> scores = m.evaluate(x_test, y_test);  // the loss and metrics of compile()
//   std::vector<k::Tensor> outs = two.predict({a, b});      // a model of two inputs (and outputs)
#pragma once

#include <memory>
#include <source_location>
#include <span>
#include <string>
#include <vector>

#include "kiln/frontend/core/tensor.h"
#include "kiln/frontend/keras/losses.h"
#include "kiln/ir/function.h"
#include "kiln/ir/host_tensor.h"

namespace kiln {

// The saved IR compiled once per input shape (on first use), the weights bound. model.kiln's
// first num_inputs() parameters are the model's inputs (a functional model's k::Inputs, in
// order), the others its weights; its results are the model's outputs.
class SavedModel {
 public:
  // The saved IR, unoptimized.
  const ir::Function& graph() const;
  // How many inputs and outputs the model has (1 and 1 for a Sequential model).
  size_t num_inputs() const;
  size_t num_outputs() const;
  // The type of each input model.kiln takes, batch included: the shapes the model was saved at,
  // its default specialisation. input_type() is the first input's.
  const TensorType& input_type() const;
  std::vector<TensorType> input_types() const;
  // The inputs the model takes: input_types() with kiln::None (-1) for each dimension of any
  // size (the batch, unless it had to stay fixed, and each None dimension of the saved model's
  // inputs). input_spec() is the first input's.
  TensorType input_spec() const;
  std::vector<TensorType> input_specs() const;
  // Whether the model takes batches of any size (input_spec()'s first dimension is None).
  bool batch_is_free() const;
  // Why the batch is fixed although the model's was not (model.shapes' note), or "".
  std::string shape_note() const;
  // The function specialised for inputs of `input_shapes`, one per input (parsed and verified;
  // model.kiln's function for input_types()): ShapeError when input_specs() does not admit the
  // shapes, the inputs' batches differ, or the function cannot take them (a size that becomes
  // negative, say). The one-shape form is for a model of one input.
  ir::Function graph_for(const std::vector<Shape>& input_shapes,
                         std::source_location loc = std::source_location::current()) const;
  ir::Function graph_for(const Shape& input_shape,
                         std::source_location loc = std::source_location::current()) const;
  // The weights: the values of the function's other parameters, in order.
  std::span<const ir::HostTensor> weights() const;
  // The model's name when it was saved.
  const std::string& name() const;

  // Runs the function on xs (one tensor per input) as one batch and returns every output
  // (ValueError for the wrong number of inputs, ShapeError / TypeError if input_specs() does not
  // admit them). Each new combination of input shapes is specialised and compiled on its first
  // call, which is logged ("recompiling saved model ..."); later calls of those shapes reuse it.
  std::vector<Tensor> operator()(const std::vector<Tensor>& xs,
                                 std::source_location loc = std::source_location::current()) const;
  // The same for a model of one input and one output (ValueError for another).
  Tensor operator()(const Tensor& x,
                    std::source_location loc = std::source_location::current()) const;
  // The outputs for every sample of xs, however many: run in batches of predict_batch_size(),
  // the last one padded, so that predict compiles one function per sample shape (ShapeError /
  // TypeError if a sample is not of the saved sample type, ValueError if the inputs hold
  // different numbers of samples).
  std::vector<Tensor> predict(const std::vector<Tensor>& xs,
                              std::source_location loc = std::source_location::current()) const;
  // The same for a model of one input and one output.
  Tensor predict(const Tensor& x, std::source_location loc = std::source_location::current()) const;
  // The batch predict and evaluate run: the saved batch size, or at least kPredictBatch (Keras's
  // default) when the batch is free.
  int64_t predict_batch_size() const;
  static constexpr int64_t kPredictBatch = 32;

  // The loss and metrics evaluate() uses, as Model::compile takes them (Keras: compile after
  // load_model). Model::save stores the model's compile() configuration and load_model restores
  // it, so this is needed only for a model saved before compile() or to evaluate differently.
  // One loss and one list of metrics serve every output.
  void compile(const losses::LossSpec& loss, const std::vector<std::string>& metrics = {},
               std::source_location loc = std::source_location::current());
  // A model of several outputs: one loss (and one list of metrics) for all outputs or one per
  // output, and each output's weight in the total loss (Keras's loss_weights; default 1).
  void compile(const std::vector<losses::LossSpec>& losses,
               const std::vector<std::vector<std::string>>& metrics = {},
               const std::vector<double>& loss_weights = {},
               std::source_location loc = std::source_location::current());
  // {loss, metrics...} over all of x and y, like Model::evaluate (ValueError when there is no
  // loss: neither saved nor set by compile()). With several outputs: the total loss, each
  // output's loss, then each output's metrics, named by metrics_names().
  std::vector<float> evaluate(const Tensor& x, const Tensor& y,
                              std::source_location loc = std::source_location::current()) const;
  std::vector<float> evaluate(const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                              std::source_location loc = std::source_location::current()) const;
  // What evaluate's values are, as Keras names them: "loss", "<output>_loss", "<output>_<metric>"
  // ("accuracy" alone for a model of one output); empty without a loss.
  std::vector<std::string> metrics_names() const;

  // A summary table: each layer (from the weight names) with its weights and parameter count,
  // the input and output types, the totals and the compile configuration.
  std::string summary_text() const;
  void summary() const;

 private:
  friend SavedModel load_model(const std::string& dir, std::source_location loc);
  struct Impl;
  std::shared_ptr<Impl> impl_;
  // The ValueError for a one-tensor call on a model of several inputs or outputs.
  void check_single_io(const char* what, const std::source_location& loc) const;
};

// Reads a directory written by Model::save: IOError if a file is missing or unreadable,
// ValueError if the weights do not match the function's parameters (names, types), the stored
// compile configuration is malformed, or model.shapes (the free dimensions; optional) is malformed
// or does not match model.kiln.
SavedModel load_model(const std::string& dir,
                      std::source_location loc = std::source_location::current());

namespace detail {
// The metadata keys Model::save writes the compile() configuration under. One output:
// "loss.<key>" for each key of the loss's get_config(), and "metrics" (comma-separated).
// Several: the same keys prefixed "output<o>." per output, and "output<o>.loss_weight".
// (The output names are the "outputs" key, which save writes whether or not it compiled.)
std::map<std::string, std::string> compile_metadata(
    const std::vector<std::shared_ptr<losses::Loss>>& losses,
    const std::vector<std::vector<std::string>>& metrics, const std::vector<double>& loss_weights);
}  // namespace detail

}  // namespace kiln
