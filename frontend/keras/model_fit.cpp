// Model::compile, fit, evaluate and predict: the compiled steps and the loops that feed them
// batches, check the data and report the loss and metrics (metrics::RunningMeans).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>
#include <set>

#include "kiln/frontend/core/function.h"
#include "kiln/frontend/core/gradient_tape.h"
#include "kiln/frontend/core/name_scope.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/ops.h"
#include "kiln/frontend/core/trace.h"
#include "kiln/frontend/keras/batches.h"
#include "kiln/frontend/keras/metrics.h"
#include "kiln/frontend/keras/model.h"
#include "kiln/frontend/keras/model_compiled.h"
#include "kiln/frontend/keras/progbar.h"

namespace kiln {

namespace {

using detail::check_data;
using detail::check_input;
using detail::sample_type;
using detail::with_batch;
using Clock = std::chrono::steady_clock;
using Tensors = std::vector<Tensor>;
// (inputs, labels): one tensor per input and one per output.
using Batch = std::pair<Tensors, Tensors>;
using NextBatch = std::function<std::optional<Batch>()>;
using LayerList = std::vector<std::shared_ptr<layers::Layer>>;

// A quiet kiln::function (the last partial batch retraces by design) kept behind a
// std::function, whose type does not name the lambda.
template <class F>
auto quiet_function(F fn, const std::string& name) {
  auto f = std::make_shared<decltype(kiln::function(std::move(fn), name))>(
      kiln::function(std::move(fn), name));
  f->set_log_retraces(false);
  return [f](const auto&... args) { return (*f)(args...); };
}

// Samples in a batch.
int64_t batch_rows(const Batch& b) {
  return b.first[0].shape()[0];
}

std::vector<Variable> trainable(const LayerList& layers) {
  std::vector<Variable> out;
  for (const auto& l : layers) {
    std::vector<Variable> w = l->trainable_weights();
    out.insert(out.end(), w.begin(), w.end());
  }
  return out;
}

// Rows `begin`..`end` of x in the order `order` (an eager gather).
Tensor rows(const Tensor& x, const std::vector<int64_t>& order, int64_t begin, int64_t end) {
  std::vector<int64_t> idx(order.begin() + begin, order.begin() + end);
  return gather(x, constant(idx, Shape{end - begin}, i64));
}

// The same rows of every tensor.
Tensors rows(const Tensors& xs, const std::vector<int64_t>& order, int64_t begin, int64_t end) {
  Tensors out;
  for (const Tensor& x : xs)
    out.push_back(rows(x, order, begin, end));
  return out;
}

std::vector<int64_t> iota(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

// The batches of `batch` rows of (x, y), the rows taken in `order`.
NextBatch tensor_batches(const Tensors& x, const Tensors& y,
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
  const Tensor on_host = y.to(Device::cpu());  // labels on a GPU are checked in a host copy
  const ir::HostTensor& ids = on_host.host();
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

// Throws unless xs and ys are one batch of samples for a model of `inputs` inputs and `outputs`
// outputs: as many tensors, each with the same number of samples (dimension 0).
void check_lists(const char* what, const Tensors& xs, const Tensors& ys, size_t inputs,
                 size_t outputs, const std::source_location& loc) {
  if (inputs == 1 && outputs == 1 && xs.size() == 1 && ys.size() == 1) {
    check_data(what, xs[0], ys[0], loc);
    return;
  }
  if (xs.size() != inputs || ys.size() != outputs) {
    detail::raise<ValueError>(
        what, {},
        fmt::format("the model has {} input{} and {} output{}: give as many x tensors (got {}) "
                    "and y tensors (got {}), in the order of model.inputs() and model.outputs()",
                    inputs, inputs == 1 ? "" : "s", outputs, outputs == 1 ? "" : "s", xs.size(),
                    ys.size()),
        loc);
  }
  Tensors all = xs;
  all.insert(all.end(), ys.begin(), ys.end());
  for (size_t i = 0; i < all.size(); ++i) {
    const char* kind = i < xs.size() ? "x" : "y";
    size_t index = i < xs.size() ? i : i - xs.size();
    if (!all[i].defined() || all[i].rank() == 0) {
      detail::raise<ValueError>(
          what, {},
          fmt::format("{}[{}] must be a defined tensor with a batch dimension", kind, index), loc);
    }
    if (all[i].shape()[0] != all[0].shape()[0]) {
      detail::raise<ValueError>(what, {all[0], all[i]},
                                fmt::format("every x and y must have the same number of samples "
                                            "(dimension 0): x[0] has {}, {}[{}] has {}",
                                            all[0].shape()[0], kind, index, all[i].shape()[0]),
                                loc);
    }
  }
}

// An element of a dataset given to fit or evaluate: (x, y), or the inputs then the labels of a
// model of several.
Batch xy_element(const char* what, const data::Element& element, size_t inputs, size_t outputs,
                 const std::source_location& loc) {
  if (element.size() != inputs + outputs) {
    std::string want = inputs == 1 && outputs == 1
                           ? std::string(
                                 "(x, y) pairs, as Dataset::from_tensor_slices({x, y})"
                                 ".batch(n) does")
                           : fmt::format("{} tensors, the model's {} inputs then its {} labels",
                                         inputs + outputs, inputs, outputs);
    detail::raise<ValueError>(what, {},
                              fmt::format("the dataset must yield {}; its elements have {} tensors",
                                          want, element.size()),
                              loc);
  }
  Batch b{Tensors(element.begin(), element.begin() + static_cast<std::ptrdiff_t>(inputs)),
          Tensors(element.begin() + static_cast<std::ptrdiff_t>(inputs), element.end())};
  check_lists(what, b.first, b.second, inputs, outputs, loc);
  return b;
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
NextBatch dataset_batches(const data::Dataset& ds, std::optional<int64_t> limit, size_t inputs,
                          size_t outputs, const char* what, const std::source_location& loc) {
  auto it = std::make_shared<data::Dataset::Iterator>(ds.begin());
  auto taken = std::make_shared<int64_t>(0);
  return [it, taken, limit, inputs, outputs, what, loc]() -> std::optional<Batch> {
    if (limit && *taken >= *limit) return std::nullopt;
    std::optional<data::Element> element = it->next();
    if (!element) return std::nullopt;
    ++*taken;
    return xy_element(what, *element, inputs, outputs, loc);
  };
}

// The mean losses of a step's results (the total, then each output's) as doubles.
std::vector<double> step_losses(const Tensors& out, size_t count) {
  std::vector<double> losses;
  for (size_t i = 0; i < count; ++i)
    losses.push_back(double(out[i].item<float>()));
  return losses;
}

}  // namespace

// What a dataset's batches were checked for: one sample's input and output types.
struct Model::BatchChecker {
  std::optional<std::vector<TensorType>> inputs, outputs;
};

// Where one fit's batches come from: tensors shuffled every epoch, or a dataset.
struct Model::EpochData {
  std::optional<int64_t> steps;  // per epoch; nullopt while unknown
  // A fresh pass over the training batches of `epoch`, called once per epoch in order.
  std::function<NextBatch(int64_t epoch)> batches;
  // {loss, metrics...} on the validation data; empty when there is none.
  std::function<std::vector<float>()> validate;
};

void Model::compile(const optimizers::OptimizerSpec& optimizer, const losses::LossSpec& loss,
                    std::vector<metrics::MetricSpec> metrics, std::source_location loc) {
  // One loss and one list of metrics serve every output, as in Keras.
  compile(optimizer, std::vector<losses::LossSpec>{loss},
          std::vector<std::vector<metrics::MetricSpec>>{std::move(metrics)}, {}, loc);
}

void Model::compile(const optimizers::OptimizerSpec& optimizer,
                    std::vector<losses::LossSpec> losses,
                    std::vector<std::vector<metrics::MetricSpec>> metrics,
                    std::vector<double> loss_weights, std::source_location loc) {
  const size_t outputs = num_outputs();
  if (metrics.empty()) metrics.emplace_back();
  detail::check_compile_counts("compile", outputs, losses.size(), metrics.size(), loss_weights,
                               loc);
  auto c = std::make_shared<Compiled>();
  c->optimizer = optimizer.resolve(loc);
  for (size_t o = 0; o < outputs; ++o) {
    c->losses.push_back(losses.size() == 1 && o > 0 ? c->losses[0] : losses[o].resolve(loc));
    c->loss_weights.push_back(
        loss_weights.empty() ? 1.0 : loss_weights[loss_weights.size() == 1 ? 0 : o]);
    const std::vector<metrics::MetricSpec>& specs = metrics[metrics.size() == 1 ? 0 : o];
    // Each output's list resolves its own metric objects (a metric object given once for all
    // outputs is copied for each; a shared_ptr one would be shared, which RunningMeans refuses).
    c->metrics.emplace_back(specs, "compile", loc, c->losses[o].get());
    c->prefixes.push_back(outputs == 1 ? std::string()
                                       : graph_->outputs()[o].layer()->name() + "_");
  }
  c->loss = c->losses[0];
  for (size_t o = 0; o < outputs; ++o) {
    c->metric_names.emplace_back();
    for (const metrics::MetricSpec& m : metrics[metrics.size() == 1 ? 0 : o])
      c->metric_names.back().push_back(m.saved_name());
  }
  std::set<const metrics::Metric*> seen;
  for (const metrics::MetricList& list : c->metrics) {
    for (const auto& m : list.metrics()) {
      if (!seen.insert(m.get()).second) {
        detail::raise<ValueError>("compile", {},
                                  fmt::format("the metric object '{}' is given for several "
                                              "outputs; give each output its own",
                                              m->name()),
                                  loc);
      }
    }
  }
  // The steps hold the forward pass (see forward_all), the tracked layers, the optimizer and
  // the losses.
  Compiled* raw = c.get();
  LayerList layers = layers_;
  std::function<Tensors(const Tensors&, bool)> forward = forward_all();
  // {total loss, each output's loss when there are several, each output's metric sums}.
  auto results = [raw](const Tensors& ys, const Tensors& preds) {
    Tensors out{Tensor()}, sums;
    Tensor total;
    for (size_t o = 0; o < preds.size(); ++o) {
      Tensor loss = (*raw->losses[o])(ys[o], preds[o]);
      Tensor weighted = raw->loss_weights[o] == 1.0 ? loss : loss * float(raw->loss_weights[o]);
      total = o == 0 ? weighted : total + weighted;
      if (preds.size() > 1) out.push_back(loss);
      Tensors batch = raw->metrics[o].batch_sums(ys[o], preds[o]);
      sums.insert(sums.end(), batch.begin(), batch.end());
    }
    out[0] = total;
    out.insert(out.end(), sums.begin(), sums.end());
    return out;
  };
  c->train_step = quiet_function(
      [layers, forward, raw, results](const Tensors& x, const Tensors& y) {
        GradientTape tape;
        Tensors out = results(y, forward(x, /*training=*/true));
        std::vector<Variable> vars = trainable(layers);
        raw->optimizer->apply_gradients(tape.gradient(out[0], std::span<const Variable>(vars)),
                                        vars);
        return out;
      },
      name_ + "_train_step");
  c->test_step = quiet_function(
      [forward, results](const Tensors& x, const Tensors& y) {
        return results(y, forward(x, /*training=*/false));
      },
      name_ + "_test_step");
  c->predict_step = quiet_function(
      [forward](const Tensors& x) { return forward(x, /*training=*/false); }, name_ + "_predict");
  compiled_ = std::move(c);
}

metrics::RunningMeans Model::running_means() const {
  std::vector<const metrics::MetricList*> lists;
  for (const metrics::MetricList& list : compiled_->metrics)
    lists.push_back(&list);
  return metrics::RunningMeans(lists, compiled_->prefixes);
}

History Model::fit(const Tensor& x, const Tensor& y, const FitOptions& options,
                   std::source_location loc) {
  return fit(Tensors{x}, Tensors{y}, options, loc);
}

History Model::fit(const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                   const FitOptions& options, std::source_location loc) {
  detail::UserSite site(loc);
  if (!compiled_) detail::raise<ValueError>("fit", {}, "call compile() before fit()", loc);
  check_lists("fit", x, y, num_inputs(), num_outputs(), loc);
  if (options.batch_size <= 0 || options.epochs < 0 ||
      !(options.validation_split >= 0 && options.validation_split < 1)) {
    detail::raise<ValueError>(
        "fit", {},
        fmt::format("need batch_size > 0, epochs >= 0 and 0 <= validation_split < 1, got {}, "
                    "{} and {}",
                    options.batch_size, options.epochs, options.validation_split),
        loc);
  }
  int64_t n = x[0].shape()[0];
  auto split_at = static_cast<int64_t>(std::floor(double(n) * (1.0 - options.validation_split)));
  // validation_split: the last rows validate. Both parts stay rows of x and y (the batches gather
  // their rows anyway), so the data is not copied: the training batches draw from the first
  // split_at rows, the validation batches are the others in order.
  std::optional<ValidationData> validation = options.validation_data;
  std::shared_ptr<const std::vector<int64_t>> validation_rows;
  if (options.validation_split > 0) {
    // (No rows held out: the first validation says there are no samples to evaluate.)
    std::vector<int64_t> held_out;
    for (int64_t i = split_at; i < n; ++i)
      held_out.push_back(i);
    validation_rows = std::make_shared<const std::vector<int64_t>>(std::move(held_out));
    validation.reset();
    n = split_at;
  }
  if (n == 0) {
    Tensors both = x;
    both.insert(both.end(), y.begin(), y.end());
    detail::raise<ValueError>("fit", both, "no training samples", loc);
  }
  check_data_types("fit", x, y, loc);

  EpochData data;
  int64_t batch = options.batch_size;
  data.steps = (n + batch - 1) / batch;
  auto rng = std::make_shared<std::mt19937_64>(options.seed);
  bool shuffle = options.shuffle;
  data.batches = [x, y, n, batch, rng, shuffle](int64_t) -> NextBatch {
    auto order = std::make_shared<std::vector<int64_t>>(iota(n));
    if (shuffle) std::shuffle(order->begin(), order->end(), *rng);
    return tensor_batches(x, y, std::move(order), batch);
  };
  if (validation) data.validate = validation_fn(*validation, batch, loc);
  if (validation_rows) {
    data.validate = [this, x, y, validation_rows, batch, loc] {
      return evaluate_batches(tensor_batches(x, y, validation_rows, batch), "fit (validation data)",
                              loc);
    };
  }
  return fit_epochs(data, options, loc);
}

void Model::check_data_types(const char* what, const std::vector<Tensor>& x,
                             const std::vector<Tensor>& y, const std::source_location& loc) {
  check_inputs(x, loc);
  std::vector<TensorType> xt, yt;
  for (const Tensor& t : x)
    xt.push_back(t.type());
  for (const Tensor& t : y)
    yt.push_back(t.type());
  std::vector<TensorType> preds = dry_run(xt, yt, loc);
  for (size_t o = 0; o < y.size(); ++o)
    check_labels(what, y[o], preds[o], loc);
  if (x.size() == 1) note_input(x[0]);
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
  size_t inputs = num_inputs(), outputs = num_outputs();
  data.batches = [this, dataset, limit, checker, inputs, outputs, loc](int64_t) -> NextBatch {
    NextBatch next = dataset_batches(dataset, limit, inputs, outputs, "fit", loc);
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
    size_t inputs = num_inputs(), outputs = num_outputs();
    return [this, ds, steps, checker, inputs, outputs, what, loc] {
      NextBatch next = dataset_batches(ds, steps, inputs, outputs, what, loc);
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
  Tensors x, y;
  if (validation.tensors) {
    x = {validation.tensors->first};
    y = {validation.tensors->second};
  } else {
    x = validation.lists->first;
    y = validation.lists->second;
  }
  check_lists(what, x, y, num_inputs(), num_outputs(), loc);
  check_data_types(what, x, y, loc);
  auto order = std::make_shared<const std::vector<int64_t>>(iota(x[0].shape()[0]));
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
    metrics::RunningMeans means = running_means();
    int64_t s = 0;
    ProgressValues logs;
    while (std::optional<Batch> batch = next()) {
      Tensors out =
          compiled_->train_step(on_weights_device(batch->first), on_weights_device(batch->second));
      means.add(batch_rows(*batch), step_losses(out, means.num_losses()),
                std::span<const Tensor>(out).subspan(means.num_losses()));
      logs = means.logs();
      progress.update(s + 1, logs);
      if (!options.callbacks.empty()) {
        const Logs batch_logs(logs.begin(), logs.end());
        for (const CallbackHandle& callback : options.callbacks)
          callback.get().on_train_batch_end(s, batch_logs, *this);
      }
      ++s;
    }
    if (means.samples() == 0)
      detail::raise<ValueError>("fit", {}, "the training data has no batches", loc);
    if (!data.steps) data.steps = s;  // a dataset of unknown length: known after one pass
    if (data.validate) {
      std::vector<float> v = data.validate();
      for (size_t i = 0; i < v.size(); ++i)
        logs.emplace_back("val_" + means.names()[i], v[i]);
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

void Model::check_dataset_batch(BatchChecker& checker,
                                const std::pair<std::vector<Tensor>, std::vector<Tensor>>& batch,
                                const char* what, const std::source_location& loc) {
  check_inputs(batch.first, loc);
  std::vector<TensorType> samples, labels;
  for (const Tensor& x : batch.first)
    samples.push_back(sample_type(x.type()));
  for (const Tensor& y : batch.second)
    labels.push_back(y.type());
  if (!checker.inputs || *checker.inputs != samples) {
    // A new kind of batch (the first one): build the model and try the loss on symbolic
    // tensors, so errors name this batch rather than come from inside a compiled step.
    std::vector<TensorType> xs;
    for (const Tensor& x : batch.first)
      xs.push_back(x.type());
    std::vector<TensorType> preds = dry_run(xs, labels, loc);
    checker.inputs = samples;
    checker.outputs.emplace();
    for (const TensorType& p : preds)
      checker.outputs->push_back(sample_type(p));
  }
  const int64_t n = batch.first[0].shape()[0];
  for (size_t o = 0; o < batch.second.size(); ++o)
    check_labels(what, batch.second[o], with_batch(n, (*checker.outputs)[o]), loc);
}

Tensor Model::on_weights_device(const Tensor& t) const {
  // The steps run where the weights live (on a GPU when the model was built under a
  // DeviceScope); batches of data held elsewhere are copied there, as Keras does under
  // tf.device.
  const std::vector<Variable> w = weights();
  if (w.empty() || !w.front().device().is_cuda() || w.front().device() == t.device()) return t;
  return t.to(w.front().device());
}

std::vector<Tensor> Model::on_weights_device(const std::vector<Tensor>& ts) const {
  Tensors out;
  for (const Tensor& t : ts)
    out.push_back(on_weights_device(t));
  return out;
}

std::vector<float> Model::evaluate_batches(const NextBatch& next, const char* what,
                                           const std::source_location& loc) {
  metrics::RunningMeans means = running_means();
  while (std::optional<Batch> b = next()) {
    Tensors out = compiled_->test_step(on_weights_device(b->first), on_weights_device(b->second));
    means.add(batch_rows(*b), step_losses(out, means.num_losses()),
              std::span<const Tensor>(out).subspan(means.num_losses()));
  }
  if (means.samples() == 0) detail::raise<ValueError>(what, {}, "no samples to evaluate", loc);
  return means.values();
}

std::vector<float> Model::evaluate(const Tensor& x, const Tensor& y, int64_t batch_size,
                                   std::source_location loc) {
  return evaluate(Tensors{x}, Tensors{y}, batch_size, loc);
}

std::vector<float> Model::evaluate(const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                                   int64_t batch_size, std::source_location loc) {
  detail::UserSite site(loc);
  if (!compiled_)
    detail::raise<ValueError>("evaluate", {}, "call compile() before evaluate()", loc);
  check_lists("evaluate", x, y, num_inputs(), num_outputs(), loc);
  if (batch_size <= 0)
    detail::raise<ValueError>("evaluate", {}, "batch_size must be positive", loc);
  check_data_types("evaluate", x, y, loc);
  auto order = std::make_shared<const std::vector<int64_t>>(iota(x[0].shape()[0]));
  return evaluate_batches(tensor_batches(x, y, order, batch_size), "evaluate", loc);
}

std::vector<float> Model::evaluate(const data::Dataset& dataset, std::source_location loc) {
  detail::UserSite site(loc);
  if (!compiled_)
    detail::raise<ValueError>("evaluate", {}, "call compile() before evaluate()", loc);
  NextBatch next = dataset_batches(dataset, dataset_steps("evaluate", dataset, std::nullopt, loc),
                                   num_inputs(), num_outputs(), "evaluate", loc);
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
  std::optional<std::vector<TensorType>> dry_run_for;
  return single_output(predict_batches({x}, batch_size, dry_run_for, loc), "predict", loc);
}

std::vector<Tensor> Model::predict(const std::vector<Tensor>& x, int64_t batch_size,
                                   std::source_location loc) {
  detail::UserSite site(loc);
  std::optional<std::vector<TensorType>> dry_run_for;
  return predict_batches(x, batch_size, dry_run_for, loc);
}

Tensor Model::single_output(std::vector<Tensor> outputs, const char* what,
                            const std::source_location& loc) const {
  if (outputs.size() != 1) {
    detail::raise<ValueError>(what, {},
                              fmt::format("the model has {} outputs: call {} on a list of "
                                          "inputs, which returns one tensor per output",
                                          outputs.size(), what),
                              loc);
  }
  return std::move(outputs[0]);
}

std::vector<Tensor> Model::predict_batches(const std::vector<Tensor>& x, int64_t batch_size,
                                           std::optional<std::vector<TensorType>>& dry_run_for,
                                           const std::source_location& loc) {
  if (x.size() != num_inputs()) {
    detail::raise<ValueError>("predict", {},
                              fmt::format("the model takes {} input{}, got {}", num_inputs(),
                                          num_inputs() == 1 ? "" : "s", x.size()),
                              loc);
  }
  for (const Tensor& t : x) {
    if (!t.defined() || t.rank() == 0) {
      detail::raise<ValueError>("predict", {}, "x must be a defined tensor with a batch dimension",
                                loc);
    }
    if (t.shape()[0] != x[0].shape()[0]) {
      detail::raise<ValueError>(
          "predict", x, "every input must have the same number of samples (dimension 0)", loc);
    }
  }
  if (batch_size <= 0) detail::raise<ValueError>("predict", {}, "batch_size must be positive", loc);
  check_inputs(x, loc);
  if (x.size() == 1) note_input(x[0]);
  if (!compiled_) {
    // Keras predicts without compile(): run eagerly.
    if (x.size() == 1 && num_outputs() == 1) return {(*this)(x[0], false, loc)};
    return (*this)(x, false, loc);
  }
  // Errors in the model name the data: dry-run each new sample type once.
  std::vector<TensorType> samples;
  for (const Tensor& t : x)
    samples.push_back(sample_type(t.type()));
  if (dry_run_for != samples) {
    std::vector<TensorType> types;
    for (const Tensor& t : x)
      types.push_back(t.type());
    dry_run(types, std::nullopt, loc);
    dry_run_for = samples;
  }
  int64_t n = x[0].shape()[0];
  std::vector<int64_t> order = iota(n);
  std::vector<Tensors> parts(num_outputs());
  for (int64_t begin = 0; begin < n; begin += batch_size) {
    Tensors out = compiled_->predict_step(
        on_weights_device(rows(x, order, begin, std::min(n, begin + batch_size))));
    for (size_t o = 0; o < out.size(); ++o)
      parts[o].push_back(out[o]);
  }
  Tensors result;
  for (Tensors& p : parts)
    result.push_back(p.size() == 1 ? p[0] : concat(p, 0));
  return result;
}

Tensor Model::predict(const data::Dataset& dataset, std::source_location loc) {
  detail::UserSite site(loc);
  std::vector<Tensors> parts(num_outputs());
  std::optional<std::vector<TensorType>> dry_run_for;
  const size_t inputs = num_inputs();
  for (const data::Element& element : dataset) {
    if (element.size() < inputs) {
      detail::raise<ValueError>(
          "predict", {},
          fmt::format("the dataset's elements have {} tensors; the model takes {} input{}",
                      element.size(), inputs, inputs == 1 ? "" : "s"),
          loc);
    }
    // An element's first tensors are the inputs; one element is one batch.
    Tensors x(element.begin(), element.begin() + static_cast<std::ptrdiff_t>(inputs));
    const Tensor& first = x[0];
    Tensors out = predict_batches(
        x, std::max<int64_t>(1, first.defined() && first.rank() > 0 ? first.shape()[0] : 1),
        dry_run_for, loc);
    for (size_t o = 0; o < out.size(); ++o)
      parts[o].push_back(out[o]);
  }
  if (parts[0].empty())
    detail::raise<ValueError>("predict", {}, "the dataset has no elements", loc);
  Tensors result;
  for (Tensors& p : parts)
    result.push_back(p.size() == 1 ? p[0] : concat(p, 0));
  return single_output(std::move(result), "predict", loc);
}

size_t Model::num_inputs() const {
  return graph_ ? graph_->inputs().size() : 1;
}

size_t Model::num_outputs() const {
  return graph_ ? graph_->outputs().size() : 1;
}

void Model::check_inputs(const std::vector<Tensor>& xs, const std::source_location& loc) const {
  if (!graph_ || xs.size() != graph_->inputs().size()) {
    if (xs.size() == 1) check_batch(xs[0], loc);
    return;
  }
  for (size_t i = 0; i < xs.size(); ++i) {
    const KerasTensor& in = graph_->inputs()[i];
    check_input(sample_type(TensorType{in.dtype(), in.shape()}), in.layer()->name(), name_, xs[i],
                loc);
  }
}

std::function<std::vector<Tensor>(const std::vector<Tensor>&, bool)> Model::forward_all() {
  if (graph_) {
    // The graph, not the model, so a compiled functional model may be moved.
    std::shared_ptr<const detail::FunctionalGraph> graph = graph_;
    std::string name = name_;
    return [graph, name](const Tensors& xs, bool training) {
      const std::source_location loc = std::source_location::current();
      for (size_t i = 0; i < xs.size() && i < graph->inputs().size(); ++i) {
        const KerasTensor& in = graph->inputs()[i];
        check_input(sample_type(TensorType{in.dtype(), in.shape()}), in.layer()->name(), name,
                    xs[i], loc);
      }
      name_scope scope(name);
      return graph->run(xs, training, name, loc);
    };
  }
  std::function<Tensor(const Tensor&, bool)> forward = forward_fn();
  return [forward](const Tensors& xs, bool training) { return Tensors{forward(xs[0], training)}; };
}

std::vector<TensorType> Model::dry_run(const std::vector<TensorType>& xs,
                                       const std::optional<std::vector<TensorType>>& ys,
                                       const std::source_location& loc) {
  if (!graph_ && xs.size() == 1) {
    std::optional<TensorType> y;
    if (ys && ys->size() == 1) y = (*ys)[0];
    return {dry_run(xs[0], y, loc)};
  }
  detail::Trace trace(name_ + "_check", {});
  detail::TraceScope scope(trace);
  Tensors args;
  for (const TensorType& t : xs)
    args.push_back(trace.add_argument(t));
  Tensors preds = (*this)(args, false, loc);
  std::vector<TensorType> out;
  for (size_t o = 0; o < preds.size(); ++o) {
    out.push_back(preds[o].type());
    if (ys && compiled_ && o < ys->size()) {
      Tensor labels = trace.add_argument((*ys)[o]);
      (*compiled_->losses[o])(labels, preds[o], Tensor(), loc);
      compiled_->metrics[o].batch_sums(labels, preds[o]);
    }
  }
  return out;
}

}  // namespace kiln
