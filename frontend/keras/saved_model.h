// A model saved by Model::save, loaded for inference and evaluation (keras.models.load_model).
//
//   k::SavedModel m = k::load_model("fashion_model");
//   m.summary();
//   k::Tensor probs = m.predict(x_test);                    // any number of samples
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
  // The type of the input the function takes (its first parameter), batch included.
  const TensorType& input_type() const;
  // The weights: the values of the function's other parameters, in order.
  std::span<const ir::HostTensor> weights() const;
  // The model's name when it was saved.
  const std::string& name() const;

  // Runs the compiled function on one batch (ShapeError / TypeError if x is not of
  // input_type()).
  Tensor operator()(const Tensor& x,
                    std::source_location loc = std::source_location::current()) const;
  // The outputs for every sample of x, however many: run in batches of the saved batch size, the
  // last one padded (ShapeError / TypeError if a sample is not of the saved sample type).
  Tensor predict(const Tensor& x, std::source_location loc = std::source_location::current()) const;

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
// ValueError if the weights do not match the function's parameters (names, types) or the stored
// compile configuration is malformed.
SavedModel load_model(const std::string& dir,
                      std::source_location loc = std::source_location::current());

namespace detail {
// The metadata keys Model::save writes the compile() configuration under: "loss.<key>" for each
// key of the loss's get_config(), and "metrics" (comma-separated).
std::map<std::string, std::string> compile_metadata(const losses::Loss& loss,
                                                    const std::vector<std::string>& metrics);
}  // namespace detail

}  // namespace kiln
