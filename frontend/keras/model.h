// Keras-style models: Model (subclassed with a call()), Sequential, compile / fit / evaluate /
// predict / summary / save, History; callbacks in callbacks.h; load_model (saved_model.h) for
// saved models.
//
//   k::Sequential model({
//       k::layers::Flatten(/*input_shape=*/{28, 28}),
//       k::layers::Dense(512, "relu"),
//       k::layers::Dense(10, "softmax"),
//   });
//   model.compile(k::optimizers::RMSprop(1e-3), k::losses::SparseCategoricalCrossentropy(),
//                 {"accuracy"});
//   // or by Keras's names: model.compile("rmsprop", "sparse_categorical_crossentropy", ...)
//   k::History h = model.fit(x_train, y_train, {.epochs = 5, .batch_size = 128});
//
// Errors from a layer call, fit, evaluate and predict name the layer and the caller's line (the
// line that called fit or the model or layer), and say what to do where the fix is plain.
//
// fit traces one whole training step (forward, loss, GradientTape backward, optimizer update,
// metric counts) into one compiled kiln::function and runs it per batch; evaluate and predict
// run compiled inference functions batch by batch.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <source_location>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "kiln/frontend/core/tensor.h"
#include "kiln/frontend/keras/callbacks.h"
#include "kiln/frontend/keras/data.h"
#include "kiln/frontend/keras/functional.h"
#include "kiln/frontend/keras/layers.h"
#include "kiln/frontend/keras/losses.h"
#include "kiln/frontend/keras/metrics.h"
#include "kiln/frontend/keras/optimizers.h"
#include "kiln/frontend/keras/saved_model.h"
#include "kiln/ir/function.h"

namespace kiln {

// Per-epoch values of the loss and metrics ("loss", "accuracy", "val_loss", "val_accuracy").
class History {
 public:
  std::map<std::string, std::vector<double>> history;
  std::vector<int64_t> epochs;
  // Seconds each epoch took.
  std::vector<double> seconds;

  // One row per epoch: epoch, then every series in name order; written to a temporary file and
  // renamed into place.
  void to_csv(const std::string& path,
              std::source_location loc = std::source_location::current()) const;
  // An SVG with one chart per metric (loss first, then accuracy, ...): train and validation
  // curves over the epochs with a marker per epoch (up to 60), value and epoch axes with round
  // ticks, labels and a legend; one epoch is a point. Written to a temporary file and renamed
  // into place.
  void plot(const std::string& path,
            std::source_location loc = std::source_location::current()) const;
};

// fit's validation data: (x, y) tensors, one tensor per input and per output of a model of
// several, or a batched dataset of (x, y) elements (of inputs then labels).
struct ValidationData {
  ValidationData(Tensor x, Tensor y) : tensors(std::pair{std::move(x), std::move(y)}) {}
  ValidationData(std::pair<Tensor, Tensor> xy) : tensors(std::move(xy)) {}  // NOLINT: implicit
  ValidationData(std::vector<Tensor> xs, std::vector<Tensor> ys)
      : lists(std::pair{std::move(xs), std::move(ys)}) {}
  ValidationData(data::Dataset ds) : dataset(std::move(ds)) {}  // NOLINT: implicit

  std::optional<std::pair<Tensor, Tensor>> tensors;
  std::optional<std::pair<std::vector<Tensor>, std::vector<Tensor>>> lists;
  std::optional<data::Dataset> dataset;
};

// fit's options, in this order so designated initializers read like Keras's keyword arguments.
struct FitOptions {
  int64_t epochs = 1;
  // Samples per step for tensor data (a dataset is batched already).
  int64_t batch_size = 32;
  // The last fraction of the samples (taken before shuffling, as Keras) held out for
  // validation; tensor data only.
  double validation_split = 0.0;
  std::optional<ValidationData> validation_data = std::nullopt;
  // Reshuffles tensor data every epoch (a dataset shuffles itself: Dataset::shuffle).
  bool shuffle = true;
  // 0: silent; 1: a progress bar redrawn in place on a terminal (Progbar), one line per epoch
  // otherwise; 2: one line per epoch.
  int verbose = 1;
  std::vector<CallbackHandle> callbacks = {};
  // Seeds the per-epoch shuffles.
  uint64_t seed = 0;
  // For a dataset: at most this many batches an epoch (needed for an endless one). Each epoch
  // iterates the dataset afresh.
  std::optional<int64_t> steps_per_epoch = std::nullopt;
};

class Model;
namespace layers {
class ModelLayer;
}  // namespace layers
namespace detail {
// A model as a layer of another (layers::ModelLayer).
std::shared_ptr<layers::Layer> model_as_layer(std::shared_ptr<Model> model);
}  // namespace detail

// A layer handle of any kind, so a list of different layers can be written inline. A model in
// the list is a layer too (a handle: it shares its layers and weights with the model given).
class LayerHandle {
 public:
  template <class L>
  requires std::derived_from<L, layers::Layer> LayerHandle(const L& layer)
      : layer_(std::make_shared<L>(layer)) {}  // NOLINT: implicit
  template <class M>
  requires std::derived_from<M, Model> LayerHandle(const M& model)
      : layer_(detail::model_as_layer(std::make_shared<M>(model))) {}  // NOLINT: implicit
  const std::shared_ptr<layers::Layer>& get() const { return layer_; }

 private:
  std::shared_ptr<layers::Layer> layer_;
};

// How Model::load_weights matches a Keras HDF5 file's weights to the model's (Keras's arguments).
struct LoadWeightsOptions {
  // Match layers by name instead of by order (legacy .h5 files only).
  bool by_name = false;
  // Warn and skip layers or weights whose count or shape differs, instead of failing.
  bool skip_mismatch = false;
};

// keras.Model: compile / fit / evaluate / predict / save over a forward pass. Sequential runs a
// list of layers; a subclass writes its own call() and tracks the layers it owns, so their
// weights are the model's (Keras tracks attributes; C++ asks, as libtorch's register_module):
//
//   struct Mlp : k::Model {
//     k::layers::Dense hidden{64, "relu"}, out{10, "softmax"};
//     Mlp() : Model("mlp") {
//       track(hidden);
//       track(out);
//     }
//     k::Tensor call(const k::Tensor& x, bool training) override {
//       return out(hidden(x, training), training);
//     }
//   };
//
// Layers are handles: a tracked layer and the member it was tracked from share their weights.
// A subclass's compiled steps call its call(), so keep it where it is after compile(); a
// Sequential's steps hold its layer list and may be moved.
class Model {
 public:
  explicit Model(std::string name = "model");
  // A functional model (keras.Model(inputs, outputs)): the layer calls between k::Input
  // tensors and the outputs. ValueError if an output depends on a KerasTensor that is not one of
  // the inputs, an input is not made by k::Input, or two different layers share a name.
  Model(const KerasTensor& input, const KerasTensor& output, std::string name = "model",
        std::source_location loc = std::source_location::current());
  Model(std::vector<KerasTensor> inputs, std::vector<KerasTensor> outputs,
        std::string name = "model", std::source_location loc = std::source_location::current());
  virtual ~Model() = default;
  Model(const Model&) = default;
  Model(Model&&) = default;
  Model& operator=(const Model&) = default;
  Model& operator=(Model&&) = default;

  // The forward pass, run under the model's name scope. Subclasses override it.
  virtual Tensor call(const Tensor& x, bool training);
  // Runs call() (eagerly or inside a trace).
  Tensor operator()(const Tensor& x, bool training = false,
                    std::source_location loc = std::source_location::current());
  // A model is a layer of the functional API too: calling it on a KerasTensor records one call
  // of the whole model (its weights are shared with this model).
  KerasTensor operator()(const KerasTensor& x,
                         std::source_location loc = std::source_location::current());
  // Freezes (false) or unfreezes every layer, as Keras's `model.trainable = False`.
  void set_trainable(bool trainable);
  // A functional model of several inputs or outputs: one tensor per input, one per output.
  std::vector<Tensor> operator()(const std::vector<Tensor>& xs, bool training = false,
                                 std::source_location loc = std::source_location::current());

  // A functional model's k::Input tensors and outputs (Keras's model.inputs / model.outputs);
  // input() and output() when there is one of each. ValueError for a model that is not
  // functional, or input()/output() on one of several.
  std::vector<KerasTensor> inputs(std::source_location loc = std::source_location::current()) const;
  std::vector<KerasTensor> outputs(
      std::source_location loc = std::source_location::current()) const;
  KerasTensor input(std::source_location loc = std::source_location::current()) const;
  KerasTensor output(std::source_location loc = std::source_location::current()) const;
  // Whether the model was made from KerasTensors.
  bool is_functional() const { return graph_ != nullptr; }

  const std::vector<std::shared_ptr<layers::Layer>>& layers() const { return layers_; }
  // The layer named `name` (ValueError listing the names otherwise).
  layers::Layer& get_layer(const std::string& name,
                           std::source_location loc = std::source_location::current()) const;

  std::vector<Variable> weights() const;
  std::vector<Variable> trainable_weights() const;
  std::vector<Variable> non_trainable_weights() const;
  int64_t count_params() const;

  // Sets the optimizer, the loss and the metrics fit and evaluate use, each an object or a Keras
  // name: compile("adam", "sparse_categorical_crossentropy", {"accuracy", k::metrics::AUC()})
  // (see optimizers::get, losses::get, metrics::get; ValueError listing the known names for
  // others).
  void compile(const optimizers::OptimizerSpec& optimizer, const losses::LossSpec& loss,
               std::vector<metrics::MetricSpec> metrics = {},
               std::source_location loc = std::source_location::current());
  // A model of several outputs: one loss for all outputs or one per output, one list of metrics
  // for all or one per output, and each output's weight in the total loss (Keras's
  // loss_weights; 1 by default). History and the progress bar report the total "loss", each
  // output's "<output layer>_loss" and its metrics as "<output layer>_<metric>", as Keras does.
  void compile(const optimizers::OptimizerSpec& optimizer, std::vector<losses::LossSpec> losses,
               std::vector<std::vector<metrics::MetricSpec>> metrics = {},
               std::vector<double> loss_weights = {},
               std::source_location loc = std::source_location::current());

  History fit(const Tensor& x, const Tensor& y, const FitOptions& options = {},
              std::source_location loc = std::source_location::current());
  // fit a model of several inputs or outputs: x holds one tensor per input and y one per output,
  // in the order of inputs() and outputs() (Keras's lists), all with the same number of samples.
  // A dataset for such a model yields the inputs then the labels.
  History fit(const std::vector<Tensor>& x, const std::vector<Tensor>& y,
              const FitOptions& options = {},
              std::source_location loc = std::source_location::current());
  // fit on a batched dataset of (x, y) elements, iterated afresh every epoch (batch_size,
  // validation_split and shuffle do not apply).
  History fit(const data::Dataset& dataset, const FitOptions& options = {},
              std::source_location loc = std::source_location::current());
  // {loss, metrics...} over the whole data, in batches.
  std::vector<float> evaluate(const Tensor& x, const Tensor& y, int64_t batch_size = 32,
                              std::source_location loc = std::source_location::current());
  // The same for a model of several inputs or outputs: {loss, each output's loss, metrics...}.
  std::vector<float> evaluate(const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                              int64_t batch_size = 32,
                              std::source_location loc = std::source_location::current());
  // {loss, metrics...} over a batched dataset of (x, y) elements.
  std::vector<float> evaluate(const data::Dataset& dataset,
                              std::source_location loc = std::source_location::current());
  // The outputs for every sample, in batches.
  Tensor predict(const Tensor& x, int64_t batch_size = 32,
                 std::source_location loc = std::source_location::current());
  // The outputs of a model of several inputs or outputs: one tensor per output.
  std::vector<Tensor> predict(const std::vector<Tensor>& x, int64_t batch_size = 32,
                              std::source_location loc = std::source_location::current());
  // The outputs for every batch of a dataset (its elements' first component), concatenated.
  Tensor predict(const data::Dataset& dataset,
                 std::source_location loc = std::source_location::current());

  // Builds every layer for samples of `input_shape` (no batch dimension; keras.Model.build takes
  // the batch too) by tracing the model once on a symbolic batch.
  void build(const layers::InputShape& input_shape, DType dtype = f32,
             std::source_location loc = std::source_location::current());
  // Whether the model has layers and all are built.
  bool built() const;

  // Writes every weight, named "<layer>/<weight>", to a safetensors file, or to a path ending in
  // .h5/.hdf5 in Keras's HDF5 layout (keras_h5.h), atomically: a failed save leaves an existing
  // file as it was. The model must be built.
  void save_weights(const std::string& path,
                    std::source_location loc = std::source_location::current()) const;
  // Reads weights saved by save_weights into this model's variables, matched by name, or else
  // by position (as Keras 3: a second copy of a model, whose layers are named dense_4 ... instead
  // of dense ..., loads its twin's file); every shape and dtype must match (ValueError listing
  // what differs either way; nothing is assigned then). A Keras HDF5 file (.h5) is matched as Keras
  // does, by layer order or `options.by_name` (keras_h5.h).
  void load_weights(const std::string& path, const LoadWeightsOptions& options = {},
                    std::source_location loc = std::source_location::current());
  // Saves the inference function for batches of `batch_size` into the directory `dir` (made if
  // missing): `model.kiln`, its IR as text (parameter 0 the input, then one per weight), and
  // `weights.safetensors`, the weights named as those parameters. Each file is written
  // atomically. load_model() and the kiln tool read it. The model must be built and know its
  // input shape (declared on a Sequential's first layer, or seen in a call).
  void save(const std::string& dir, int64_t batch_size = 1,
            std::source_location loc = std::source_location::current());

  // The Keras summary table: layers, output shapes, parameter counts. Builds the model first
  // if its input shape is known; ValueError ("This model has not yet been built...") if it
  // cannot be built.
  std::string summary_text(std::source_location loc = std::source_location::current()) const;
  void summary(std::source_location loc = std::source_location::current()) const;

  const std::string& name() const { return name_; }

 protected:
  friend class layers::ModelLayer;
  // A handle of this model of its own class, for a call on a KerasTensor: a copy for Model and
  // Sequential (sharing the layers), this very object for a subclass (keep it alive).
  virtual std::shared_ptr<Model> share() const;
  // Makes `layer` one of the model's layers (its weights become the model's); ValueError if the
  // model has a layer of that name already.
  void track(const LayerHandle& layer, std::source_location loc = std::source_location::current());
  // The forward pass the compiled steps run. This default calls this object's call(); Sequential
  // gives its layer list instead.
  virtual std::function<Tensor(const Tensor&, bool)> forward_fn();
  // The per-sample input type (no batch dimension) the model is declared for, if any.
  // (A functional model's: its k::Input's, None dimensions as k::None.)
  virtual std::optional<TensorType> declared_input() const;
  // Each layer's output shape (batch and unknown dimensions k::None), building the layers if
  // needed; empty when the input shape is unknown or the layers do not form a chain.
  virtual std::vector<Shape> output_shapes() const { return {}; }
  // Weights, building the model from its input shape if it is not built yet.
  std::vector<Variable> built_weights(const char* what, const std::source_location& loc);
  // `t` on the device of the model's weights (a copy when they live on a GPU elsewhere).
  Tensor on_weights_device(const Tensor& t) const;
  // The per-sample input type: declared, or seen in the last call.
  std::optional<TensorType> input_spec() const;
  // call() with the caller's source location, for layers' errors; Sequential passes it on.
  virtual Tensor call_at(const Tensor& x, bool training, const std::source_location& loc);

  std::vector<std::shared_ptr<layers::Layer>> layers_;

 private:
  void note_input(const Tensor& x);
  // Throws unless x is a batch of the declared input (shape naming the whole batch; integer
  // data into a floating model, with what to do).
  void check_batch(const Tensor& x, const std::source_location& loc) const;
  // Runs the model (and the loss on `y`, when given) on symbolic tensors of these types,
  // building the layers: shape errors then name the whole data, and nothing is computed.
  // Returns the output type.
  TensorType dry_run(const TensorType& x, const std::optional<TensorType>& y,
                     const std::source_location& loc);
  struct Compiled;
  struct EpochData;
  struct BatchChecker;
  // Checks one (inputs, labels) batch of a dataset (input types, labels), dry-running the model
  // on the first batch of each input type.
  void check_dataset_batch(BatchChecker& checker,
                           const std::pair<std::vector<Tensor>, std::vector<Tensor>>& batch,
                           const char* what, const std::source_location& loc);
  // The number of inputs and outputs: a functional model's, else one of each.
  size_t num_inputs() const;
  size_t num_outputs() const;
  // check_batch for each input of a functional model (against its k::Input).
  void check_inputs(const std::vector<Tensor>& xs, const std::source_location& loc) const;
  // Checks a whole (x, y) for fit or evaluate: the inputs, a dry run with the losses, the labels.
  void check_data_types(const char* what, const std::vector<Tensor>& x,
                        const std::vector<Tensor>& y, const std::source_location& loc);
  // dry_run over every input and output.
  std::vector<TensorType> dry_run(const std::vector<TensorType>& xs,
                                  const std::optional<std::vector<TensorType>>& ys,
                                  const std::source_location& loc);
  // The forward pass over every input and output that the compiled steps run.
  std::function<std::vector<Tensor>(const std::vector<Tensor>&, bool)> forward_all();
  // The running means of an epoch or an evaluation over the compiled losses and metrics.
  metrics::RunningMeans running_means() const;
  std::vector<Tensor> on_weights_device(const std::vector<Tensor>& ts) const;
  // The only output (ValueError naming `what` for a model of several).
  Tensor single_output(std::vector<Tensor> outputs, const char* what,
                       const std::source_location& loc) const;
  History fit_epochs(EpochData& data, const FitOptions& options, const std::source_location& loc);
  // The per-epoch evaluation of fit's validation data; tensors are checked here, once.
  std::function<std::vector<float>()> validation_fn(const ValidationData& validation, int64_t batch,
                                                    const std::source_location& loc);
  // predict's work on one batch of inputs; `dry_run_for` is the sample types last dry-run,
  // updated.
  std::vector<Tensor> predict_batches(const std::vector<Tensor>& x, int64_t batch_size,
                                      std::optional<std::vector<TensorType>>& dry_run_for,
                                      const std::source_location& loc);
  std::vector<float> evaluate_batches(
      const std::function<std::optional<std::pair<std::vector<Tensor>, std::vector<Tensor>>>()>&
          next,
      const char* what, const std::source_location& loc);

  // The functional graph; ValueError naming `what` for a model that has none.
  const detail::FunctionalGraph& graph(const char* what, const std::source_location& loc) const;
  // The summary table of a functional model, with Keras's "Connected to" column.
  std::string functional_summary() const;
  // Throws unless the model has one input and one output (what fit, evaluate, predict and save
  // take today).
  void check_single_io(const char* what, const std::source_location& loc) const;

  std::string name_;
  std::shared_ptr<Compiled> compiled_;
  std::optional<TensorType> seen_input_;
  std::shared_ptr<const detail::FunctionalGraph> graph_;
};

// keras.Sequential: a model that runs its layers in order.
class Sequential : public Model {
 public:
  // ValueError if two layers share a name (Keras: names must be unique within a model).
  explicit Sequential(std::vector<LayerHandle> layers = {}, std::string name = "sequential",
                      std::source_location loc = std::source_location::current());

  // Appends a layer (ValueError for a name the model has already).
  void add(const LayerHandle& layer, std::source_location loc = std::source_location::current());
  // Removes the last layer (ValueError when empty).
  void pop(std::source_location loc = std::source_location::current());

  Tensor call(const Tensor& x, bool training) override;

 protected:
  std::shared_ptr<Model> share() const override;
  std::function<Tensor(const Tensor&, bool)> forward_fn() override;
  std::optional<TensorType> declared_input() const override;
  std::vector<Shape> output_shapes() const override;
  Tensor call_at(const Tensor& x, bool training, const std::source_location& loc) override;
};

namespace layers {

// A model used as a layer of another model (Keras's models are layers): its weights are the
// outer model's; `trainable = false` on it freezes all of them.
class ModelLayer : public Layer {
 public:
  explicit ModelLayer(std::shared_ptr<Model> model);
  Tensor call(const Tensor& x, bool training) override;
  // "Sequential", "Functional", or "Model" for a subclass.
  std::string class_name() const override;
  std::shared_ptr<Layer> clone() const override { return std::make_shared<ModelLayer>(*this); }
  bool built() const override;
  std::vector<Variable> weights() const override;
  std::vector<Variable> trainable_weights() const override;
  std::vector<Variable> non_trainable_weights() const override;
  int64_t count_params() const override;
  const std::shared_ptr<Model>& model() const { return model_; }

 private:
  std::shared_ptr<Model> model_;
};

}  // namespace layers
}  // namespace kiln
