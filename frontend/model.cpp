#include "kiln/frontend/model.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <numeric>
#include <random>

#include "kiln/frontend/apply.h"
#include "kiln/frontend/atomic_file.h"
#include "kiln/frontend/batches.h"
#include "kiln/frontend/function.h"
#include "kiln/frontend/gradient_tape.h"
#include "kiln/frontend/metrics.h"
#include "kiln/frontend/ops.h"
#include "kiln/frontend/progbar.h"
#include "kiln/frontend/safetensors.h"
#include "kiln/frontend/trace.h"
#include "kiln/ir/printer.h"

namespace kiln {

namespace {

using detail::check_data;
using detail::sample_type;
using detail::with_batch;
using Clock = std::chrono::steady_clock;
using TwoTensorFn = std::function<std::vector<Tensor>(const Tensor&, const Tensor&)>;
using OneTensorFn = std::function<Tensor(const Tensor&)>;
using Batch = std::pair<Tensor, Tensor>;
using NextBatch = std::function<std::optional<Batch>()>;

// A quiet kiln::function (the last partial batch retraces by design) kept behind a
// std::function, whose type does not name the lambda.
template <class F>
auto quiet_function(F fn, const std::string& name) {
  auto f = std::make_shared<decltype(kiln::function(std::move(fn), name))>(
      kiln::function(std::move(fn), name));
  f->set_log_retraces(false);
  return [f](const auto&... args) { return (*f)(args...); };
}

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

std::vector<Variable> trainable(const LayerList& layers) {
  return collect(layers, &layers::Layer::trainable_weights);
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

// Rows `begin`..`end` of x in the order `order` (an eager gather).
Tensor rows(const Tensor& x, const std::vector<int64_t>& order, int64_t begin, int64_t end) {
  std::vector<int64_t> idx(order.begin() + begin, order.begin() + end);
  return gather(x, constant(idx, Shape{end - begin}, i64));
}

std::vector<int64_t> iota(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

// The batches of `batch` rows of (x, y), the rows taken in `order`.
NextBatch tensor_batches(const Tensor& x, const Tensor& y,
                         std::shared_ptr<const std::vector<int64_t>> order, int64_t batch) {
  auto begin = std::make_shared<int64_t>(0);
  const auto n = static_cast<int64_t>(order->size());
  return [=]() -> std::optional<Batch> {
    if (*begin >= n) return std::nullopt;
    int64_t end = std::min(n, *begin + batch);
    Batch b{rows(x, *order, *begin, end), rows(y, *order, *begin, end)};
    *begin = end;
    return b;
  };
}

// The labels of a sparse classification must be class ids of the model's output.
void check_labels(const char* what, const Tensor& y, const TensorType& pred,
                  const std::source_location& loc) {
  if (!ir::is_integer(y.dtype()) || !metrics::sparse_labels(y.shape(), pred.shape)) return;
  int64_t classes = pred.shape.dims().back();
  const ir::HostTensor& ids = y.host();
  for (int64_t i = 0; i < ids.num_elements(); ++i) {
    auto id = static_cast<int64_t>(ids.element_as_double(i));
    if (id < 0 || id >= classes) {
      detail::raise<IndexError>(what, {y},
                                fmt::format("label {} of sample {} is outside [0, {}), the "
                                            "model's {} output classes",
                                            id, i, classes, classes),
                                loc);
    }
  }
}

// An (x, y) element of a dataset given to fit or evaluate.
Batch xy_element(const char* what, const data::Element& element, const std::source_location& loc) {
  if (element.size() != 2) {
    detail::raise<ValueError>(what, {},
                              fmt::format("the dataset must yield (x, y) pairs, as "
                                          "Dataset::from_tensor_slices({{x, y}}).batch(n) does; "
                                          "its elements have {} tensors",
                                          element.size()),
                              loc);
  }
  check_data(what, element[0], element[1], loc);
  return {element[0], element[1]};
}

// Keras's rule for a dataset's steps: at most steps_per_epoch, at most its cardinality.
std::optional<int64_t> dataset_steps(const char* what, const data::Dataset& ds,
                                     std::optional<int64_t> steps_per_epoch,
                                     const std::source_location& loc) {
  int64_t card = ds.cardinality();
  if (steps_per_epoch && *steps_per_epoch <= 0) {
    detail::raise<ValueError>(
        what, {}, fmt::format("steps_per_epoch must be positive, got {}", *steps_per_epoch), loc);
  }
  if (card == data::infinite_cardinality && !steps_per_epoch) {
    detail::raise<ValueError>(what, {},
                              "the dataset is endless (repeat() without a count): set "
                              "steps_per_epoch",
                              loc);
  }
  if (steps_per_epoch) return card >= 0 ? std::min(card, *steps_per_epoch) : *steps_per_epoch;
  return card >= 0 ? std::optional<int64_t>(card) : std::nullopt;
}

// The batches of one pass over a dataset of (x, y) elements, at most `limit` of them.
NextBatch dataset_batches(const data::Dataset& ds, std::optional<int64_t> limit, const char* what,
                          const std::source_location& loc) {
  auto it = std::make_shared<data::Dataset::Iterator>(ds.begin());
  auto taken = std::make_shared<int64_t>(0);
  return [it, taken, limit, what, loc]() -> std::optional<Batch> {
    if (limit && *taken >= *limit) return std::nullopt;
    std::optional<data::Element> element = it->next();
    if (!element) return std::nullopt;
    ++*taken;
    return xy_element(what, *element, loc);
  };
}

}  // namespace

// What a dataset's batches were checked for: one sample's input and output types.
struct Model::BatchChecker {
  std::optional<TensorType> input, output;
};

struct Model::Compiled {
  std::shared_ptr<optimizers::Optimizer> optimizer;
  std::shared_ptr<losses::Loss> loss;
  std::vector<std::string> metrics;
  bool accuracy = false;
  TwoTensorFn train_step;  // (x, y) → {mean loss, correct count}
  TwoTensorFn test_step;   // (x, y) → {mean loss, correct count}
  OneTensorFn predict_step;
};

// Where one fit's batches come from: tensors shuffled every epoch, or a dataset.
struct Model::EpochData {
  std::optional<int64_t> steps;  // per epoch; nullopt while unknown
  // A fresh pass over the training batches of `epoch`, called once per epoch in order.
  std::function<NextBatch(int64_t epoch)> batches;
  // {loss, metrics...} on the validation data; empty when there is none.
  std::function<std::vector<float>()> validate;
};

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
  return trainable(layers_);
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
    (*compiled_->loss)(trace.add_argument(*y), pred, Tensor(), loc);
    if (compiled_->accuracy) metrics::correct_count(trace.add_argument(*y), pred);
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

void Model::compile(const optimizers::OptimizerSpec& optimizer, const losses::LossSpec& loss,
                    std::vector<std::string> metrics, std::source_location loc) {
  auto c = std::make_shared<Compiled>();
  c->optimizer = optimizer.resolve(loc);
  c->loss = loss.resolve(loc);
  c->accuracy = metrics::parse_names(metrics, "compile", loc);
  c->metrics = std::move(metrics);
  // The steps hold the forward pass (see forward_fn), the tracked layers, the optimizer and
  // the loss.
  Compiled* raw = c.get();
  LayerList layers = layers_;
  std::function<Tensor(const Tensor&, bool)> forward = forward_fn();
  c->train_step = quiet_function(
      [layers, forward, raw](const Tensor& x, const Tensor& y) {
        GradientTape tape;
        Tensor pred = forward(x, /*training=*/true);
        Tensor loss = (*raw->loss)(y, pred);
        std::vector<Variable> vars = trainable(layers);
        raw->optimizer->apply_gradients(tape.gradient(loss, std::span<const Variable>(vars)), vars);
        return std::vector<Tensor>{loss, metrics::correct_count(y, pred)};
      },
      name_ + "_train_step");
  c->test_step = quiet_function(
      [forward, raw](const Tensor& x, const Tensor& y) {
        Tensor pred = forward(x, /*training=*/false);
        return std::vector<Tensor>{(*raw->loss)(y, pred), metrics::correct_count(y, pred)};
      },
      name_ + "_test_step");
  c->predict_step = quiet_function(
      [forward](const Tensor& x) { return forward(x, /*training=*/false); }, name_ + "_predict");
  compiled_ = std::move(c);
}

History Model::fit(const Tensor& x, const Tensor& y, const FitOptions& options,
                   std::source_location loc) {
  detail::UserSite site(loc);
  if (!compiled_) detail::raise<ValueError>("fit", {}, "call compile() before fit()", loc);
  check_data("fit", x, y, loc);
  if (options.batch_size <= 0 || options.epochs < 0 ||
      !(options.validation_split >= 0 && options.validation_split < 1)) {
    detail::raise<ValueError>(
        "fit", {},
        fmt::format("need batch_size > 0, epochs >= 0 and 0 <= validation_split < 1, got {}, "
                    "{} and {}",
                    options.batch_size, options.epochs, options.validation_split),
        loc);
  }
  int64_t n = x.shape()[0];
  auto split_at = static_cast<int64_t>(std::floor(double(n) * (1.0 - options.validation_split)));
  std::vector<int64_t> all = iota(n);
  Tensor x_train = x, y_train = y;
  std::optional<ValidationData> validation = options.validation_data;
  if (options.validation_split > 0) {
    x_train = rows(x, all, 0, split_at);
    y_train = rows(y, all, 0, split_at);
    validation = ValidationData(rows(x, all, split_at, n), rows(y, all, split_at, n));
    n = split_at;
  }
  if (n == 0) detail::raise<ValueError>("fit", {x, y}, "no training samples", loc);
  check_batch(x_train, loc);
  check_labels("fit", y_train, dry_run(x_train.type(), y_train.type(), loc), loc);

  EpochData data;
  int64_t batch = options.batch_size;
  data.steps = (n + batch - 1) / batch;
  auto rng = std::make_shared<std::mt19937_64>(options.seed);
  bool shuffle = options.shuffle;
  data.batches = [x_train, y_train, n, batch, rng, shuffle](int64_t) -> NextBatch {
    auto order = std::make_shared<std::vector<int64_t>>(iota(n));
    if (shuffle) std::shuffle(order->begin(), order->end(), *rng);
    return tensor_batches(x_train, y_train, std::move(order), batch);
  };
  if (validation) data.validate = validation_fn(*validation, batch, loc);
  return fit_epochs(data, options, loc);
}

History Model::fit(const data::Dataset& dataset, const FitOptions& options,
                   std::source_location loc) {
  detail::UserSite site(loc);
  if (!compiled_) detail::raise<ValueError>("fit", {}, "call compile() before fit()", loc);
  if (options.epochs < 0) {
    detail::raise<ValueError>("fit", {}, fmt::format("epochs must be >= 0, got {}", options.epochs),
                              loc);
  }
  if (options.validation_split != 0) {
    detail::raise<ValueError>("fit", {},
                              "validation_split needs tensor data; for a dataset, pass "
                              "validation_data (another dataset, or tensors)",
                              loc);
  }
  EpochData data;
  data.steps = dataset_steps("fit", dataset, options.steps_per_epoch, loc);
  std::optional<int64_t> limit = options.steps_per_epoch;
  auto checker = std::make_shared<BatchChecker>();
  data.batches = [this, dataset, limit, checker, loc](int64_t) -> NextBatch {
    NextBatch next = dataset_batches(dataset, limit, "fit", loc);
    return [this, next, checker, loc]() -> std::optional<Batch> {
      std::optional<Batch> b = next();
      if (b) check_dataset_batch(*checker, *b, "fit", loc);
      return b;
    };
  };
  if (options.validation_data)
    data.validate = validation_fn(*options.validation_data, options.batch_size, loc);
  return fit_epochs(data, options, loc);
}

std::function<std::vector<float>()> Model::validation_fn(const ValidationData& validation,
                                                         int64_t batch,
                                                         const std::source_location& loc) {
  const char* what = "fit (validation data)";
  if (validation.dataset) {
    // Checked batch by batch, each new input type dry-run once over all epochs.
    auto checker = std::make_shared<BatchChecker>();
    data::Dataset ds = *validation.dataset;
    std::optional<int64_t> steps = dataset_steps(what, ds, std::nullopt, loc);
    return [this, ds, steps, checker, what, loc] {
      NextBatch next = dataset_batches(ds, steps, what, loc);
      return evaluate_batches(
          [&]() -> std::optional<Batch> {
            std::optional<Batch> b = next();
            if (b) check_dataset_batch(*checker, *b, what, loc);
            return b;
          },
          what, loc);
    };
  }
  // Tensors are checked once, before the first epoch.
  const auto& [x, y] = *validation.tensors;
  check_data(what, x, y, loc);
  check_batch(x, loc);
  check_labels(what, y, dry_run(x.type(), y.type(), loc), loc);
  auto order = std::make_shared<const std::vector<int64_t>>(iota(x.shape()[0]));
  return [this, x, y, order, batch, what, loc] {
    return evaluate_batches(tensor_batches(x, y, order, batch), what, loc);
  };
}

History Model::fit_epochs(EpochData& data, const FitOptions& options,
                          const std::source_location& loc) {
  History history;
  for (const CallbackHandle& callback : options.callbacks)
    callback.get().on_train_begin(*this);
  for (int64_t epoch = 0; epoch < options.epochs; ++epoch) {
    auto start = Clock::now();
    Progbar progress(data.steps, options.verbose,
                     fmt::format("Epoch {}/{}", epoch + 1, options.epochs));
    NextBatch next = data.batches(epoch);
    double loss_sum = 0, correct = 0;
    int64_t seen = 0, s = 0;
    ProgressValues logs;
    while (std::optional<Batch> batch = next()) {
      std::vector<Tensor> out = compiled_->train_step(batch->first, batch->second);
      int64_t size = batch->first.shape()[0];
      loss_sum += double(out[0].item<float>()) * double(size);
      correct += double(out[1].item<float>());
      seen += size;
      logs = {{"loss", loss_sum / double(seen)}};
      if (compiled_->accuracy) logs.emplace_back("accuracy", correct / double(seen));
      progress.update(s + 1, logs);
      if (!options.callbacks.empty()) {
        const Logs batch_logs(logs.begin(), logs.end());
        for (const CallbackHandle& callback : options.callbacks)
          callback.get().on_train_batch_end(s, batch_logs, *this);
      }
      ++s;
    }
    if (seen == 0) detail::raise<ValueError>("fit", {}, "the training data has no batches", loc);
    if (!data.steps) data.steps = s;  // a dataset of unknown length: known after one pass
    if (data.validate) {
      std::vector<float> v = data.validate();
      logs.emplace_back("val_loss", v[0]);
      if (compiled_->accuracy) logs.emplace_back("val_accuracy", v[1]);
    }
    double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    progress.update(s, logs, /*finalize=*/true);
    history.epochs.push_back(epoch);
    history.seconds.push_back(seconds);
    std::map<std::string, double> log_map(logs.begin(), logs.end());
    for (const auto& [name, value] : logs)
      history.history[name].push_back(value);
    bool go_on = true;
    for (const CallbackHandle& callback : options.callbacks)
      go_on = callback.get().on_epoch_end(epoch, log_map, *this) && go_on;
    if (!go_on) break;
  }
  for (const CallbackHandle& callback : options.callbacks)
    callback.get().on_train_end(*this);
  return history;
}

void Model::check_dataset_batch(BatchChecker& checker, const std::pair<Tensor, Tensor>& batch,
                                const char* what, const std::source_location& loc) {
  check_batch(batch.first, loc);
  TensorType sample = sample_type(batch.first.type());
  if (!checker.input || *checker.input != sample) {
    // A new kind of batch (the first one): build the model and try the loss on symbolic
    // tensors, so errors name this batch rather than come from inside a compiled step.
    TensorType pred = dry_run(batch.first.type(), batch.second.type(), loc);
    checker.input = sample;
    checker.output = sample_type(pred);
  }
  check_labels(what, batch.second, with_batch(batch.first.shape()[0], *checker.output), loc);
}

std::vector<float> Model::evaluate_batches(const NextBatch& next, const char* what,
                                           const std::source_location& loc) {
  double loss_sum = 0, correct = 0;
  int64_t n = 0;
  while (std::optional<Batch> b = next()) {
    std::vector<Tensor> out = compiled_->test_step(b->first, b->second);
    int64_t size = b->first.shape()[0];
    loss_sum += double(out[0].item<float>()) * double(size);
    correct += double(out[1].item<float>());
    n += size;
  }
  if (n == 0) detail::raise<ValueError>(what, {}, "no samples to evaluate", loc);
  std::vector<float> result{float(loss_sum / double(n))};
  if (compiled_->accuracy) result.push_back(float(correct / double(n)));
  return result;
}

std::vector<float> Model::evaluate(const Tensor& x, const Tensor& y, int64_t batch_size,
                                   std::source_location loc) {
  detail::UserSite site(loc);
  if (!compiled_)
    detail::raise<ValueError>("evaluate", {}, "call compile() before evaluate()", loc);
  check_data("evaluate", x, y, loc);
  if (batch_size <= 0)
    detail::raise<ValueError>("evaluate", {}, "batch_size must be positive", loc);
  check_batch(x, loc);
  check_labels("evaluate", y, dry_run(x.type(), y.type(), loc), loc);
  note_input(x);
  auto order = std::make_shared<const std::vector<int64_t>>(iota(x.shape()[0]));
  return evaluate_batches(tensor_batches(x, y, order, batch_size), "evaluate", loc);
}

std::vector<float> Model::evaluate(const data::Dataset& dataset, std::source_location loc) {
  detail::UserSite site(loc);
  if (!compiled_)
    detail::raise<ValueError>("evaluate", {}, "call compile() before evaluate()", loc);
  NextBatch next = dataset_batches(dataset, dataset_steps("evaluate", dataset, std::nullopt, loc),
                                   "evaluate", loc);
  BatchChecker checker;
  return evaluate_batches(
      [&]() -> std::optional<Batch> {
        std::optional<Batch> b = next();
        if (b) check_dataset_batch(checker, *b, "evaluate", loc);
        return b;
      },
      "evaluate", loc);
}

Tensor Model::predict(const Tensor& x, int64_t batch_size, std::source_location loc) {
  detail::UserSite site(loc);
  std::optional<TensorType> dry_run_for;
  return predict_batches(x, batch_size, dry_run_for, loc);
}

Tensor Model::predict_batches(const Tensor& x, int64_t batch_size,
                              std::optional<TensorType>& dry_run_for,
                              const std::source_location& loc) {
  if (!x.defined() || x.rank() == 0) {
    detail::raise<ValueError>("predict", {}, "x must be a defined tensor with a batch dimension",
                              loc);
  }
  if (batch_size <= 0) detail::raise<ValueError>("predict", {}, "batch_size must be positive", loc);
  check_batch(x, loc);
  note_input(x);
  if (!compiled_) {
    // Keras predicts without compile(): run eagerly.
    return (*this)(x, false, loc);
  }
  // Errors in the model name the data: dry-run each new sample type once.
  if (dry_run_for != sample_type(x.type())) {
    dry_run(x.type(), std::nullopt, loc);
    dry_run_for = sample_type(x.type());
  }
  int64_t n = x.shape()[0];
  std::vector<int64_t> order = iota(n);
  std::vector<Tensor> parts;
  for (int64_t begin = 0; begin < n; begin += batch_size)
    parts.push_back(
        compiled_->predict_step(rows(x, order, begin, std::min(n, begin + batch_size))));
  return parts.size() == 1 ? parts[0] : concat(parts, 0);
}

Tensor Model::predict(const data::Dataset& dataset, std::source_location loc) {
  detail::UserSite site(loc);
  std::vector<Tensor> parts;
  std::optional<TensorType> dry_run_for;
  for (const data::Element& element : dataset) {
    if (element.empty()) {
      detail::raise<ValueError>("predict", {}, "the dataset's elements have no tensors", loc);
    }
    const Tensor& x = element[0];
    // One element is one batch.
    parts.push_back(predict_batches(
        x, std::max<int64_t>(1, x.defined() && x.rank() > 0 ? x.shape()[0] : 1), dry_run_for, loc));
  }
  if (parts.empty()) detail::raise<ValueError>("predict", {}, "the dataset has no elements", loc);
  return parts.size() == 1 ? parts[0] : concat(parts, 0);
}

std::vector<Variable> Model::built_weights(const char* what, const std::source_location& loc) {
  if (built()) return weights();
  std::optional<TensorType> spec = input_spec();
  if (!spec) {
    detail::raise<ValueError>(what, {},
                              fmt::format("model '{}' is not built: call it on data first, or "
                                          "declare input_shape on its first layer",
                                          name_),
                              loc);
  }
  // Tracing the model once on a symbolic batch of one builds every layer.
  dry_run(with_batch(1, *spec), std::nullopt, loc);
  return weights();
}

void Model::save_weights(const std::string& path, std::source_location loc) const {
  std::vector<std::pair<std::string, Tensor>> named;
  for (const Variable& v : const_cast<Model*>(this)->built_weights("save_weights", loc))
    named.emplace_back(v.name(), v.value());
  safetensors::save(path, named, {{"format", "kiln"}, {"model", name_}}, loc);
}

void Model::load_weights(const std::string& path, std::source_location loc) {
  std::vector<Variable> vars = built_weights("load_weights", loc);
  std::vector<std::pair<std::string, Tensor>> loaded = safetensors::load(path, loc);
  std::map<std::string, Tensor> by_name(loaded.begin(), loaded.end());
  std::vector<std::string> problems;
  for (const Variable& v : vars) {
    auto it = by_name.find(v.name());
    if (it == by_name.end()) {
      problems.push_back(fmt::format("'{}' is missing from the file", v.name()));
    } else if (it->second.type() != v.type()) {
      problems.push_back(fmt::format("'{}' is {} in the file but {} in the model", v.name(),
                                     it->second.type().to_string(), v.type().to_string()));
    }
    if (it != by_name.end()) by_name.erase(it);
  }
  for (const auto& [name, t] : by_name)
    problems.push_back(fmt::format("'{}' in the file is not a weight of the model", name));
  if (!problems.empty()) {
    detail::raise<ValueError>(
        "load_weights", {},
        fmt::format("'{}' does not match model '{}': {}", path, name_, fmt::join(problems, "; ")),
        loc);
  }
  std::map<std::string, Tensor> values(loaded.begin(), loaded.end());
  for (Variable& v : vars)
    v.assign(values.at(v.name()), loc);
}

std::vector<Shape> Sequential::output_shapes() const {
  const std::optional<Shape>& declared =
      layers_.empty() ? std::optional<Shape>() : layers_.front()->declared_input_shape();
  if (!declared) return {};
  std::vector<int64_t> dims{1};
  dims.insert(dims.end(), declared->begin(), declared->end());
  detail::Trace trace("summary", {});
  detail::TraceScope scope(trace);
  Tensor h = trace.add_argument(TensorType{f32, Shape(dims)});
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

void Model::save(const std::string& dir, int64_t batch_size, std::source_location loc) {
  detail::UserSite site(loc);
  if (batch_size <= 0)
    detail::raise<ValueError>("save", {},
                              fmt::format("batch_size must be positive, got {}", batch_size), loc);
  std::vector<Variable> vars = built_weights("save", loc);
  std::optional<TensorType> spec = input_spec();
  if (!spec) {
    detail::raise<ValueError>("save", {},
                              fmt::format("model '{}' does not know its input shape: call it on "
                                          "data first, or declare input_shape on its first layer",
                                          name_),
                              loc);
  }
  std::function<Tensor(const Tensor&, bool)> forward = forward_fn();
  auto inference = kiln::function([forward](const Tensor& x) { return forward(x, false); },
                                  name_ + "_inference");
  const ir::Function& graph =
      inference.graph(zeros(with_batch(batch_size, *spec).shape, spec->dtype, loc));

  std::map<std::string, Variable> by_name;
  for (const Variable& v : vars)
    by_name.emplace(v.name(), v);
  std::vector<std::pair<std::string, Tensor>> named;
  for (size_t i = 1; i < graph.params().size(); ++i) {
    const std::string& param = graph.param(i)->name();
    auto it = by_name.find(param);
    if (it == by_name.end()) {
      detail::raise<ValueError>(
          "save", {},
          fmt::format("the inference function of '{}' reads '{}', which is not one of its "
                      "weights (a tensor captured by a Lambda?); only weights can be saved",
                      name_, param),
          loc);
    }
    named.emplace_back(param, it->second.value());
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    detail::raise<IOError>("save", {}, fmt::format("cannot create {}: {}", dir, ec.message()), loc);
  // The compile() configuration goes with the weights, so load_model can evaluate.
  std::map<std::string, std::string> metadata{{"format", "kiln"}, {"model", name_}};
  if (compiled_) metadata.merge(detail::compile_metadata(*compiled_->loss, compiled_->metrics));
  safetensors::save(dir + "/weights.safetensors", named, metadata, loc);
  detail::write_file_atomically(dir + "/model.kiln", ir::print(graph), "save", loc);
}

}  // namespace kiln

namespace kiln::callbacks {

namespace {
bool maximizes(const std::string& monitor, const std::string& mode, const char* what,
               const std::source_location& loc) {
  if (mode == "min") return false;
  if (mode == "max") return true;
  if (mode != "auto") {
    detail::raise<ValueError>(what, {},
                              fmt::format("mode must be auto, min or max, got '{}'", mode), loc);
  }
  return monitor.find("acc") != std::string::npos;
}

double monitored(const Logs& logs, const std::string& monitor, const char* what,
                 const std::source_location& loc) {
  auto it = logs.find(monitor);
  if (it == logs.end()) {
    std::vector<std::string> names;
    for (const auto& [name, value] : logs)
      names.push_back(name);
    detail::raise<ValueError>(what, {},
                              fmt::format("fit's logs have no '{}' (they have: {}); add "
                                          "validation data for val_ metrics",
                                          monitor, fmt::join(names, ", ")),
                              loc);
  }
  return it->second;
}
}  // namespace

EarlyStopping::EarlyStopping(std::string monitor, int64_t patience, double min_delta,
                             std::string mode, bool restore_best_weights, std::source_location loc)
    : state_(std::make_shared<State>()), loc_(loc) {
  if (patience < 0 || min_delta < 0) {
    detail::raise<ValueError>("EarlyStopping", {}, "patience and min_delta must be >= 0", loc);
  }
  state_->maximize = maximizes(monitor, mode, "EarlyStopping", loc);
  state_->monitor = std::move(monitor);
  state_->mode = std::move(mode);
  state_->patience = patience;
  state_->min_delta = min_delta;
  state_->restore = restore_best_weights;
}

void EarlyStopping::on_train_begin(Model&) {
  state_->have_best = false;
  state_->wait = 0;
  state_->stopped_epoch = -1;
  state_->best_weights.clear();
}

bool EarlyStopping::on_epoch_end(int64_t epoch, const Logs& logs, Model& model) {
  State& s = *state_;
  double value = monitored(logs, s.monitor, "EarlyStopping", loc_);
  bool better =
      !s.have_best || (s.maximize ? value > s.best + s.min_delta : value < s.best - s.min_delta);
  if (better) {
    s.best = value;
    s.have_best = true;
    s.wait = 0;
    if (s.restore) {
      s.best_weights.clear();
      for (const Variable& v : model.weights())
        s.best_weights.push_back(v.value());
    }
    return true;
  }
  if (++s.wait >= s.patience && epoch > 0) {  // Keras 3: patience epochs without improvement
    s.stopped_epoch = epoch;
    return false;
  }
  return true;
}

void EarlyStopping::on_train_end(Model& model) {
  if (!state_->restore || state_->best_weights.empty() || state_->stopped_epoch < 0) return;
  std::vector<Variable> weights = model.weights();
  for (size_t i = 0; i < weights.size() && i < state_->best_weights.size(); ++i)
    weights[i].assign(state_->best_weights[i]);
}

ModelCheckpoint::ModelCheckpoint(std::string filepath, std::string monitor, bool save_best_only,
                                 std::string mode, std::source_location loc)
    : filepath_(std::move(filepath)),
      monitor_(std::move(monitor)),
      save_best_only_(save_best_only),
      maximize_(maximizes(monitor_, mode, "ModelCheckpoint", loc)),
      best_(std::make_shared<std::optional<double>>()),
      loc_(loc) {}

bool ModelCheckpoint::on_epoch_end(int64_t, const Logs& logs, Model& model) {
  if (save_best_only_) {
    double value = monitored(logs, monitor_, "ModelCheckpoint", loc_);
    std::optional<double>& best = *best_;
    bool better = !best || (maximize_ ? value > *best : value < *best);
    if (!better) return true;
    best = value;
  }
  model.save_weights(filepath_, loc_);
  return true;
}

}  // namespace kiln::callbacks
