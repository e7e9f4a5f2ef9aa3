// Model and Sequential themselves: calling them, their layers and weights, build and summary.
// compile / fit / evaluate / predict are in model_fit.cpp, saving and loading in
// model_saving.cpp, the callbacks in callbacks.cpp.
#include "kiln/frontend/keras/model.h"

#include <fmt/format.h>

#include <algorithm>
#include <iostream>

#include "kiln/frontend/core/name_scope.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/trace.h"
#include "kiln/frontend/keras/batches.h"
#include "kiln/frontend/keras/model_compiled.h"

namespace kiln {

namespace {

using detail::sample_type;
using detail::with_batch;
using LayerList = std::vector<std::shared_ptr<layers::Layer>>;

// Throws unless x is a batch of samples of the declared type: ShapeError naming the whole batch,
// TypeError (with what to do) for integer data into a floating model.
void check_input(const std::optional<TensorType>& declared, const std::string& first,
                 const std::string& name, const Tensor& x, const std::source_location& loc) {
  if (!declared || !x.defined()) return;
  const Shape& want = declared->shape;
  if (x.rank() == 0) {
    detail::raise<ShapeError>(name, {x},
                              fmt::format("the model expects a batch of samples of shape {} (the "
                                          "input_shape of its first layer '{}'), got a scalar",
                                          want.to_string(), first),
                              loc);
  }
  Shape sample = detail::sample_shape(x.shape());
  if (sample != want) {
    detail::raise<ShapeError>(
        name, {x},
        fmt::format("the model expects samples of shape {} (the input_shape "
                    "of its first layer '{}'), got {} samples of shape {}",
                    want.to_string(), first, x.shape()[0], sample.to_string()),
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

// Runs the layers in order.
Tensor run_layers(const LayerList& layers, const std::string& name, const Tensor& x, bool training,
                  const std::source_location& loc) {
  if (layers.empty()) detail::raise<ValueError>(name, {x}, "the model has no layers", loc);
  Tensor h = x;
  for (const auto& l : layers)
    h = (*l)(h, training, loc);
  return h;
}

std::optional<TensorType> declared_sample(const LayerList& layers) {
  if (layers.empty() || !layers.front()->declared_input_shape()) return std::nullopt;
  return TensorType{f32, *layers.front()->declared_input_shape()};
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

Tensor Model::call(const Tensor& x, bool) {
  detail::raise<ValueError>(name_, {x}, "a Model subclass must override call(x, training)",
                            std::source_location::current());
}

Tensor Model::call_at(const Tensor& x, bool training, const std::source_location&) {
  return call(x, training);
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
  return [this](const Tensor& x, bool training) { return (*this)(x, training); };
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
    compiled_->metrics.batch_sums(labels, pred);
  }
  return pred.type();
}

void Model::build(const layers::InputShape& input_shape, DType dtype, std::source_location loc) {
  detail::UserSite site(loc);
  if (!input_shape.shape) {
    detail::raise<ValueError>("build", {}, "give the shape of one sample (no batch dimension)",
                              loc);
  }
  dry_run(with_batch(1, TensorType{dtype, *input_shape.shape}), std::nullopt, loc);
}

Sequential::Sequential(std::vector<LayerHandle> layers, std::string name, std::source_location loc)
    : Model(std::move(name)) {
  for (const LayerHandle& l : layers)
    add_layer(layers_, this->name(), l.get(), loc);
}

void Sequential::add(const LayerHandle& layer, std::source_location loc) {
  add_layer(layers_, name(), layer.get(), loc);
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
  detail::Trace trace("summary", {});
  detail::TraceScope scope(trace);
  Tensor h = trace.add_argument(with_batch(1, *spec));
  std::vector<Shape> shapes;
  for (const auto& l : layers_) {
    h = (*l)(h, false);
    shapes.push_back(h.shape());
  }
  return shapes;
}

std::string Model::summary_text(std::source_location loc) const {
  detail::UserSite site(loc);
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
  out += fmt::format("{:<29}{:<26}{:>10}\n", " Layer (type)", "Output Shape", "Param #");
  out += thick + "\n";
  for (size_t i = 0; i < layers_.size(); ++i) {
    const layers::Layer& l = *layers_[i];
    std::string shape = "?";
    if (i < shapes.size()) {
      std::vector<std::string> dims{"None"};
      for (int64_t d = 1; d < shapes[i].rank(); ++d)
        dims.push_back(std::to_string(shapes[i][d]));
      shape = fmt::format("({})", fmt::join(dims, ", "));
    }
    // A long "name (Type)" keeps one space before the shape column.
    std::string layer = fmt::format(" {} ({}) ", l.name(), l.class_name());
    out += fmt::format("{:<29}{:<26}{:>10}\n", layer, shape, l.count_params());
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

void Model::summary(std::source_location loc) const {
  std::cout << summary_text(loc);
}

}  // namespace kiln
