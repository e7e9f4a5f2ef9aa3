// Model and Sequential themselves: calling them, their layers and weights, build and summary.
// compile / fit / evaluate / predict are in model_fit.cpp, saving and loading in
// model_saving.cpp, the callbacks in callbacks.cpp.
#include "kiln/frontend/keras/model.h"

#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <typeinfo>

#include "kiln/frontend/core/name_scope.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/trace.h"
#include "kiln/frontend/keras/batches.h"
#include "kiln/frontend/keras/model_compiled.h"

namespace kiln {

void detail::check_input(const std::optional<TensorType>& declared, const std::string& first,
                         const std::string& name, const Tensor& x,
                         const std::source_location& loc) {
  if (!declared || !x.defined()) return;
  const Shape& want = declared->shape;
  if (x.rank() == 0) {
    detail::raise<ShapeError>(name, {x},
                              fmt::format("the model expects a batch of samples of shape {} (the "
                                          "input_shape of its first layer '{}'), got a scalar",
                                          detail::shape_text(want), first),
                              loc);
  }
  Shape sample = detail::sample_shape(x.shape());
  bool same = sample.rank() == want.rank();
  for (int64_t d = 0; same && d < want.rank(); ++d)
    same = want[d] == kiln::None || want[d] == sample[d];
  if (!same) {
    detail::raise<ShapeError>(
        name, {x},
        fmt::format("the model expects samples of shape {} (the input_shape "
                    "of its first layer '{}'), got {} samples of shape {}",
                    detail::shape_text(want), first, x.shape()[0], sample.to_string()),
        loc);
  }
  if (!ir::is_floating(x.dtype()) && ir::is_floating(declared->dtype)) {
    detail::raise<TypeError>(name, {x},
                             fmt::format("the model computes in {} but its input is {}: {}",
                                         ir::dtype_name(declared->dtype), x.type().to_string(),
                                         detail::cast_hint(x.dtype(), declared->dtype)),
                             loc);
  }
}

namespace {

using detail::check_input;
using detail::sample_type;
using detail::with_batch;
using LayerList = std::vector<std::shared_ptr<layers::Layer>>;

// Runs the layers in order.
Tensor run_layers(const LayerList& layers, const std::string& name, const Tensor& x, bool training,
                  const std::source_location& loc) {
  if (layers.empty()) detail::raise<ValueError>(name, {x}, "the model has no layers", loc);
  Tensor h = x;
  for (const auto& l : layers)
    h = (*l)(h, training, loc);
  return h;
}

// One row of a summary table: each cell left-aligned in its column (right-aligned for a negative
// width; the last column unbounded for width 0). A cell longer than its column less one space
// goes on over the next lines, as Keras wraps a long "name (Type)".
std::string table_row(std::vector<std::string> cells, const std::vector<int>& widths) {
  std::string out;
  for (bool more = true; more;) {
    more = false;
    std::string line;
    for (size_t i = 0; i < cells.size(); ++i) {
      size_t width = static_cast<size_t>(std::abs(widths[i]));
      std::string part = cells[i];
      cells[i].clear();
      if (width > 0 && part.size() >= width) {
        // A cell indented by a space stays indented on its next lines.
        cells[i] = part.substr(width - 1);
        if (part[0] == ' ') cells[i].insert(0, 1, ' ');
        part.resize(width - 1);
      }
      more = more || !cells[i].empty();
      if (widths[i] < 0) {
        line += fmt::format("{:>{}}", part, width);
      } else {
        line += fmt::format("{:<{}}", part, width);
      }
    }
    out += line + "\n";
  }
  return out;
}

std::optional<TensorType> declared_sample(const LayerList& layers) {
  if (layers.empty() || !layers.front()->declared_input_shape()) return std::nullopt;
  // A model that starts with an Embedding takes integer indices.
  DType dtype = layers.front()->takes_indices() ? DType::i32 : f32;
  return TensorType{dtype, *layers.front()->declared_input_shape()};
}

// The layers' weights of one kind (Layer::weights, trainable_weights, non_trainable_weights), in
// layer order.
std::vector<Variable> collect(const LayerList& layers,
                              std::vector<Variable> (layers::Layer::*kind)() const) {
  std::vector<Variable> out;
  for (const auto& l : layers) {
    std::vector<Variable> w = ((*l).*kind)();
    out.insert(out.end(), w.begin(), w.end());
  }
  return out;
}

// Appends `layer` unless the model has a layer of its name (Keras: names are unique in a model,
// and weights are saved under them).
void add_layer(LayerList& layers, const std::string& model,
               const std::shared_ptr<layers::Layer>& layer, const std::source_location& loc) {
  for (const auto& l : layers) {
    if (l->name() != layer->name()) continue;
    // Layer handles share their state, name included: the same name object is the same layer.
    detail::raise<ValueError>(
        model, {},
        fmt::format("the model has a layer named '{}' already; layer names must be unique within "
                    "a model (their weights are saved under them): give one another name{}",
                    layer->name(),
                    &l->name() == &layer->name()
                        ? " (this is the same layer twice: to share its weights, call it "
                          "twice in a Model subclass's call() instead)"
                        : ""),
        loc);
  }
  layers.push_back(layer);
}

}  // namespace

Model::Model(std::string name) : name_(std::move(name)) {}

Model::Model(const KerasTensor& input, const KerasTensor& output, std::string name,
             std::source_location loc)
    : Model(std::vector<KerasTensor>{input}, std::vector<KerasTensor>{output}, std::move(name),
            loc) {}

Model::Model(std::vector<KerasTensor> inputs, std::vector<KerasTensor> outputs, std::string name,
             std::source_location loc)
    : name_(std::move(name)) {
  detail::UserSite site(loc);
  graph_ = std::make_shared<const detail::FunctionalGraph>(std::move(inputs), std::move(outputs),
                                                           name_, loc);
  layers_ = graph_->layers();
}

Tensor Model::call(const Tensor& x, bool training) {
  const std::source_location loc = std::source_location::current();
  if (!graph_) {
    detail::raise<ValueError>(name_, {x}, "a Model subclass must override call(x, training)", loc);
  }
  return call_at(x, training, loc);
}

Tensor Model::call_at(const Tensor& x, bool training, const std::source_location& loc) {
  // A subclass's call(), or the functional graph (with the caller's line for layers' errors).
  if (!graph_) return call(x, training);
  check_single_io("calls on one tensor", loc);
  return graph_->run({x}, training, name_, loc)[0];
}

std::vector<Tensor> Model::operator()(const std::vector<Tensor>& xs, bool training,
                                      std::source_location loc) {
  detail::UserSite site(loc);
  if (!graph_) {
    if (xs.size() != 1) {
      detail::raise<ValueError>(name_, xs,
                                fmt::format("the model takes one input, got {}", xs.size()), loc);
    }
    return {(*this)(xs[0], training, loc)};
  }
  name_scope scope(name_);
  return graph_->run(xs, training, name_, loc);
}

KerasTensor Model::operator()(const KerasTensor& x, std::source_location loc) {
  detail::UserSite site(loc);
  std::shared_ptr<layers::Layer> layer = detail::model_as_layer(share());
  return (*layer)(x, loc);
}

void Model::set_trainable(bool trainable) {
  for (const auto& l : layers_)
    l->trainable = trainable;
}

std::shared_ptr<Model> Model::share() const {
  if (typeid(*this) == typeid(Model)) return std::make_shared<Model>(*this);
  // A subclass's call() runs through this object (as its compiled steps do): not owned.
  return std::shared_ptr<Model>(std::shared_ptr<Model>(), const_cast<Model*>(this));
}

std::shared_ptr<Model> Sequential::share() const {
  return std::make_shared<Sequential>(*this);
}

std::shared_ptr<layers::Layer> detail::model_as_layer(std::shared_ptr<Model> model) {
  return std::make_shared<layers::ModelLayer>(std::move(model));
}

namespace layers {

ModelLayer::ModelLayer(std::shared_ptr<Model> model)
    : Layer("model", model->name(), std::nullopt), model_(std::move(model)) {}

Tensor ModelLayer::call(const Tensor& x, bool training) {
  // The layer's call has opened the model's name scope already.
  const std::source_location loc = std::source_location::current();
  model_->check_batch(x, loc);
  model_->note_input(x);
  return model_->call_at(x, training, loc);
}

std::string ModelLayer::class_name() const {
  if (model_->is_functional()) return "Functional";
  if (dynamic_cast<const Sequential*>(model_.get())) return "Sequential";
  return "Model";
}

bool ModelLayer::built() const {
  return model_->built();
}

std::vector<Variable> ModelLayer::weights() const {
  return model_->weights();
}

std::vector<Variable> ModelLayer::trainable_weights() const {
  if (!trainable()) return {};
  return model_->trainable_weights();
}

std::vector<Variable> ModelLayer::non_trainable_weights() const {
  if (!trainable()) return model_->weights();
  return model_->non_trainable_weights();
}

int64_t ModelLayer::count_params() const {
  return model_->count_params();
}

}  // namespace layers

void Model::check_single_io(const char* what, const std::source_location& loc) const {
  if (!graph_ || (graph_->inputs().size() == 1 && graph_->outputs().size() == 1)) return;
  detail::raise<ValueError>(
      name_, {},
      fmt::format("the model has {} inputs and {} outputs; {} needs a model of one input and "
                  "one output (call the model on a list of tensors instead)",
                  graph_->inputs().size(), graph_->outputs().size(), what),
      loc);
}

const detail::FunctionalGraph& Model::graph(const char* what,
                                            const std::source_location& loc) const {
  if (!graph_) {
    detail::raise<ValueError>(name_, {},
                              fmt::format("the model is not functional (made from k::Input "
                                          "tensors), so it has no symbolic {}",
                                          what),
                              loc);
  }
  return *graph_;
}

std::vector<KerasTensor> Model::inputs(std::source_location loc) const {
  return graph("inputs", loc).inputs();
}

std::vector<KerasTensor> Model::outputs(std::source_location loc) const {
  return graph("outputs", loc).outputs();
}

KerasTensor Model::input(std::source_location loc) const {
  std::vector<KerasTensor> all = inputs(loc);
  if (all.size() != 1) {
    detail::raise<ValueError>(
        name_, {}, fmt::format("the model has {} inputs: use inputs()", all.size()), loc);
  }
  return all[0];
}

KerasTensor Model::output(std::source_location loc) const {
  std::vector<KerasTensor> all = outputs(loc);
  if (all.size() != 1) {
    detail::raise<ValueError>(
        name_, {}, fmt::format("the model has {} outputs: use outputs()", all.size()), loc);
  }
  return all[0];
}

Tensor Model::operator()(const Tensor& x, bool training, std::source_location loc) {
  detail::UserSite site(loc);
  check_batch(x, loc);
  note_input(x);
  name_scope scope(name_);
  return call_at(x, training, loc);
}

void Model::check_batch(const Tensor& x, const std::source_location& loc) const {
  check_input(declared_input(), layers_.empty() ? "" : layers_.front()->name(), name_, x, loc);
}

void Model::note_input(const Tensor& x) {
  if (x.defined() && x.rank() > 0) seen_input_ = sample_type(x.type());
}

std::optional<TensorType> Model::input_spec() const {
  if (std::optional<TensorType> declared = declared_input()) return declared;
  return seen_input_;
}

std::function<Tensor(const Tensor&, bool)> Model::forward_fn() {
  // (A functional model's forward pass is forward_all's, over its graph.)
  return [this](const Tensor& x, bool training) { return (*this)(x, training); };
}

std::optional<TensorType> Model::declared_input() const {
  if (!graph_ || graph_->inputs().size() != 1) return std::nullopt;
  const KerasTensor& in = graph_->inputs()[0];
  return detail::sample_type(TensorType{in.dtype(), in.shape()});
}

void Model::track(const LayerHandle& layer, std::source_location loc) {
  add_layer(layers_, name_, layer.get(), loc);
}

layers::Layer& Model::get_layer(const std::string& name, std::source_location loc) const {
  std::vector<std::string> names;
  for (const auto& l : layers_) {
    if (l->name() == name) return *l;
    names.push_back(l->name());
  }
  detail::raise<ValueError>(
      "get_layer", {},
      fmt::format("no layer named '{}'; the layers are: {}", name, fmt::join(names, ", ")), loc);
}

std::vector<Variable> Model::weights() const {
  return collect(layers_, &layers::Layer::weights);
}

std::vector<Variable> Model::trainable_weights() const {
  return collect(layers_, &layers::Layer::trainable_weights);
}

std::vector<Variable> Model::non_trainable_weights() const {
  return collect(layers_, &layers::Layer::non_trainable_weights);
}

int64_t Model::count_params() const {
  int64_t n = 0;
  for (const auto& l : layers_)
    n += l->count_params();
  return n;
}

bool Model::built() const {
  return !layers_.empty() &&
         std::all_of(layers_.begin(), layers_.end(), [](const auto& l) { return l->built(); });
}

TensorType Model::dry_run(const TensorType& x, const std::optional<TensorType>& y,
                          const std::source_location& loc) {
  detail::Trace trace(name_ + "_check", {});
  detail::TraceScope scope(trace);
  Tensor pred = (*this)(trace.add_argument(x), false, loc);
  if (y && compiled_) {
    Tensor labels = trace.add_argument(*y);
    (*compiled_->loss)(labels, pred, Tensor(), loc);
    compiled_->metrics[0].batch_sums(labels, pred);
  }
  return pred.type();
}

void Model::build(const layers::InputShape& input_shape, DType dtype, std::source_location loc) {
  detail::UserSite site(loc);
  if (!input_shape.shape) {
    detail::raise<ValueError>("build", {}, "give the shape of one sample (no batch dimension)",
                              loc);
  }
  dry_run(detail::concrete_type(with_batch(1, TensorType{dtype, *input_shape.shape})), std::nullopt,
          loc);
}

namespace {

// Keras builds a Sequential as soon as its input shape is known (declared on its first layer),
// so weights and summary() are there before any call: what model.build(shape) does by hand.
void build_declared(Sequential& model, const std::source_location& loc) {
  std::optional<TensorType> sample = declared_sample(model.layers());
  if (!sample || model.built()) return;
  model.build(sample->shape, sample->dtype, loc);
}

}  // namespace

Sequential::Sequential(std::vector<LayerHandle> layers, std::string name, std::source_location loc)
    : Model(std::move(name)) {
  for (const LayerHandle& l : layers)
    add_layer(layers_, this->name(), l.get(), loc);
  build_declared(*this, loc);
}

void Sequential::add(const LayerHandle& layer, std::source_location loc) {
  add_layer(layers_, name(), layer.get(), loc);
  try {
    build_declared(*this, loc);
  } catch (...) {
    // As Keras's add(): a layer that does not fit the ones before it is not added.
    layers_.pop_back();
    throw;
  }
}

void Sequential::pop(std::source_location loc) {
  if (layers_.empty())
    detail::raise<ValueError>("Sequential.pop", {}, "the model has no layers", loc);
  layers_.pop_back();
}

Tensor Sequential::call(const Tensor& x, bool training) {
  return run_layers(layers_, name(), x, training, std::source_location::current());
}

Tensor Sequential::call_at(const Tensor& x, bool training, const std::source_location& loc) {
  return run_layers(layers_, name(), x, training, loc);
}

std::optional<TensorType> Sequential::declared_input() const {
  return declared_sample(layers_);
}

std::function<Tensor(const Tensor&, bool)> Sequential::forward_fn() {
  // The layer list as it is now (change the layers, compile again), not the model, so a
  // compiled Sequential may be moved.
  LayerList layers = layers_;
  std::string name = this->name();
  return [layers, name](const Tensor& x, bool training) {
    const std::source_location loc = std::source_location::current();
    check_input(declared_sample(layers), layers.empty() ? "" : layers.front()->name(), name, x,
                loc);
    name_scope scope(name);
    return run_layers(layers, name, x, training, loc);
  };
}

std::vector<Shape> Sequential::output_shapes() const {
  // The declared input, else the samples the model was called on (as Keras, once built): a
  // model that starts with Rescaling takes u8 images and declares no input_shape.
  std::optional<TensorType> spec = input_spec();
  if (layers_.empty() || !spec) return {};
  std::vector<TensorType> types = detail::symbolic_types(
      {with_batch(kiln::None, *spec)},
      [&](const std::vector<Tensor>& x) {
        Tensor h = x[0];
        std::vector<TensorType> out;
        for (const auto& l : layers_) {
          h = (*l)(h, false);
          out.push_back(h.type());
        }
        return out;
      },
      "summary");
  std::vector<Shape> shapes;
  for (const TensorType& t : types)
    shapes.push_back(t.shape);
  return shapes;
}

std::string Model::summary_text(std::source_location loc) const {
  detail::UserSite site(loc);
  if (graph_) return functional_summary();
  std::vector<Shape> shapes = output_shapes();
  if (!built()) {
    // Keras's words, with Kiln's ways to build.
    detail::raise<ValueError>(
        "summary", {},
        fmt::format("This model has not yet been built. Build the model first by calling build() "
                    "or by calling the model on a batch of data (or declare input_shape on its "
                    "first layer). Model '{}' has {} layers{}",
                    name_, layers_.size(), layers_.empty() ? "" : ", not all of them built"),
        loc);
  }
  std::string out = fmt::format("Model: \"{}\"\n", name_);
  std::string rule(65, '_'), thick(65, '=');
  out += rule + "\n";
  const std::vector<int> widths{29, 26, -10};
  out += table_row({" Layer (type)", "Output Shape", "Param #"}, widths);
  out += thick + "\n";
  for (size_t i = 0; i < layers_.size(); ++i) {
    const layers::Layer& l = *layers_[i];
    std::string shape = "?";
    if (i < shapes.size()) shape = detail::shape_text(shapes[i]);
    out += table_row({fmt::format(" {} ({})", l.name(), l.class_name()), shape,
                      std::to_string(l.count_params())},
                     widths);
    out += (i + 1 < layers_.size() ? std::string(65, ' ') : thick) + "\n";
  }
  int64_t trainable = 0, frozen = 0;
  for (const Variable& v : trainable_weights())
    trainable += v.shape().num_elements();
  for (const Variable& v : non_trainable_weights())
    frozen += v.shape().num_elements();
  out += fmt::format("Total params: {}\nTrainable params: {}\nNon-trainable params: {}\n",
                     trainable + frozen, trainable, frozen);
  out += rule + "\n";
  return out;
}

std::string Model::functional_summary() const {
  // Keras 2's functional table: 98 columns, "Connected to" listing each call's inputs.
  constexpr int kName = 32, kShape = 22, kParams = 10, kWidth = 98;
  std::string out = fmt::format("Model: \"{}\"\n", name_);
  out += std::string(kWidth, '_') + "\n";
  const std::vector<int> widths{kName, kShape, -kParams, 0};
  out += table_row({" Layer (type)", "Output Shape", "Param #", "  Connected to"}, widths);
  out += std::string(kWidth, '=') + "\n";
  for (size_t i = 0; i < layers_.size(); ++i) {
    const layers::Layer& l = *layers_[i];
    std::vector<const detail::KerasNode*> calls;
    for (const auto& node : graph_->nodes())
      if (&node->layer->name() == &l.name()) calls.push_back(node.get());
    std::string shape = "?";
    if (!calls.empty() && !calls[0]->outputs.empty()) {
      std::vector<std::string> each;
      for (const TensorType& t : calls[0]->outputs)
        each.push_back(detail::shape_text(t.shape));
      shape = fmt::format("{}", fmt::join(each, ", "));
      for (const detail::KerasNode* c : calls)
        if (c->outputs != calls[0]->outputs) shape = "multiple";
      if (each.size() > 1 || dynamic_cast<const layers::InputLayer*>(&l)) shape = "[" + shape + "]";
    }
    std::vector<std::string> connected;
    for (const detail::KerasNode* c : calls)
      for (const KerasTensor& t : c->inputs)
        connected.push_back(fmt::format("'{}'", t.name()));
    std::string first = connected.empty() ? "[]" : "[" + connected[0];
    if (connected.size() == 1) first += "]";
    if (connected.size() > 1) first += ",";
    out += table_row({fmt::format(" {} ({})", l.name(), l.class_name()), shape,
                      std::to_string(l.count_params()), "  " + first},
                     widths);
    for (size_t c = 1; c < connected.size(); ++c)
      out += table_row({"", "", "", "   " + connected[c] + (c + 1 == connected.size() ? "]" : ",")},
                       widths);
    out += (i + 1 < layers_.size() ? std::string(kWidth, ' ') : std::string(kWidth, '=')) + "\n";
  }
  int64_t trainable = 0, frozen = 0;
  for (const Variable& v : trainable_weights())
    trainable += v.shape().num_elements();
  for (const Variable& v : non_trainable_weights())
    frozen += v.shape().num_elements();
  out += fmt::format("Total params: {}\nTrainable params: {}\nNon-trainable params: {}\n",
                     trainable + frozen, trainable, frozen);
  out += std::string(kWidth, '_') + "\n";
  return out;
}

void Model::summary(std::source_location loc) const {
  std::cout << summary_text(loc);
}

}  // namespace kiln
