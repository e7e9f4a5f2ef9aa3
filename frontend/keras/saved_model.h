// A model saved by Model::save, loaded for inference and evaluation (keras.models.load_model).
//
//   k::SavedModel m = k::load_model("fashion_model");
//   m.summary();
//   k::Tensor probs = m.predict(x_test);                    // any number of samples
//   k::Tensor out = m(x);                                   // any batch (and None length)
//   std::vector<float> scores = m.evaluate(x_test, y_test);  // the loss and metrics of compile()
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

// The saved IR compiled once (on first use), the weights bound.
class SavedModel {
 public:
  // The saved IR, unoptimized.
  const ir::Function& graph() const;
  // The type of the input model.kiln takes (its first parameter), batch included: the shape the
  // model was saved at, its default specialisation.
  const TensorType& input_type() const;
  // The inputs the model takes: input_type() with kiln::None (-1) for each dimension of any size
  // (the batch, unless it had to stay fixed, and each None dimension of the saved model's input).
  TensorType input_spec() const;
  // Whether the model takes batches of any size (input_spec()'s first dimension is None).
  bool batch_is_free() const;
  // Why the batch is fixed although the model's was not (model.shapes' note), or "".
  std::string shape_note() const;
  // The function specialised for an input of `input_shape` (parsed and verified; model.kiln's
  // function for input_type()): ShapeError when input_spec() does not admit the shape or the
  // function cannot take it (a size that becomes negative, say).
  ir::Function graph_for(const Shape& input_shape,
                         std::source_location loc = std::source_location::current()) const;
  // The weights: the values of the function's other parameters, in order.
  std::span<const ir::HostTensor> weights() const;
  // The model's name when it was saved.
  const std::string& name() const;

  // Runs the function on x as one batch (ShapeError / TypeError if input_spec() does not admit
  // x). Each new input shape is specialised and compiled on its first call, which is logged
  // ("recompiling saved model ..."); later calls of that shape reuse it.
  Tensor operator()(const Tensor& x,
                    std::source_location loc = std::source_location::current()) const;
  // The outputs for every sample of x, however many: run in batches of predict_batch_size(), the
  // last one padded, so that predict compiles one function per sample shape (ShapeError /
  // TypeError if a sample is not of the saved sample type).
  Tensor predict(const Tensor& x, std::source_location loc = std::source_location::current()) const;
  // The batch predict and evaluate run: the saved batch size, or at least kPredictBatch (Keras's
  // default) when the batch is free.
  int64_t predict_batch_size() const;
  static constexpr int64_t kPredictBatch = 32;

  // The loss and metrics evaluate() uses, as Model::compile takes them (Keras: compile after
  // load_model). Model::save stores the model's compile() configuration and load_model restores
  // it, so this is needed only for a model saved before compile() or to evaluate differently.
  void compile(const losses::LossSpec& loss, const std::vector<std::string>& metrics = {},
               std::source_location loc = std::source_location::current());
  // {loss, metrics...} over all of x and y, like Model::evaluate (ValueError when there is no
  // loss: neither saved nor set by compile()).
  std::vector<float> evaluate(const Tensor& x, const Tensor& y,
                              std::source_location loc = std::source_location::current()) const;

  // A summary table: each layer (from the weight names) with its weights and parameter count,
  // the input and output types, the totals and the compile configuration.
  std::string summary_text() const;
  void summary() const;

 private:
  friend SavedModel load_model(const std::string& dir, std::source_location loc);
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Reads a directory written by Model::save: IOError if a file is missing or unreadable,
// ValueError if the weights do not match the function's parameters (names, types), the stored
// compile configuration is malformed, or model.shapes (the free dimensions; optional) is malformed
// or does not match model.kiln.
SavedModel load_model(const std::string& dir,
                      std::source_location loc = std::source_location::current());

namespace detail {
// The metadata keys Model::save writes the compile() configuration under: "loss.<key>" for each
// key of the loss's get_config(), and "metrics" (comma-separated).
std::map<std::string, std::string> compile_metadata(const losses::Loss& loss,
                                                    const std::vector<std::string>& metrics);
}  // namespace detail

}  // namespace kiln
