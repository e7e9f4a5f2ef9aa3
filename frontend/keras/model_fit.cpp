// Model::compile, fit, evaluate and predict: the compiled steps and the loops that feed them
// batches, check the data and report the loss and metrics (metrics::RunningMeans).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include "kiln/frontend/core/function.h"
#include "kiln/frontend/core/gradient_tape.h"
#include "kiln/frontend/core/name_scope.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/ops.h"
#include "kiln/frontend/keras/batches.h"
#include "kiln/frontend/keras/metrics.h"
#include "kiln/frontend/keras/model.h"
#include "kiln/frontend/keras/model_compiled.h"
#include "kiln/frontend/keras/progbar.h"

namespace kiln {

namespace {

using detail::check_data;
using detail::sample_type;
using detail::with_batch;
using Clock = std::chrono::steady_clock;
using Batch = std::pair<Tensor, Tensor>;
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

// A step's results: the mean loss, then the metrics' batch sums.
std::vector<Tensor> step_results(const Tensor& loss, std::vector<Tensor> sums) {
  sums.insert(sums.begin(), loss);
  return sums;
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
  auto c = std::make_shared<Compiled>();
  c->optimizer = optimizer.resolve(loc);
  c->loss = loss.resolve(loc);
  c->metrics = metrics::MetricList(metrics, "compile", loc, c->loss.get());
  for (const metrics::MetricSpec& m : metrics)
    c->metric_names.push_back(m.saved_name());
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
        return step_results(loss, raw->metrics.batch_sums(y, pred));
      },
      name_ + "_train_step");
  c->test_step = quiet_function(
      [forward, raw](const Tensor& x, const Tensor& y) {
        Tensor pred = forward(x, /*training=*/false);
        return step_results((*raw->loss)(y, pred), raw->metrics.batch_sums(y, pred));
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
    metrics::RunningMeans means(compiled_->metrics);
    int64_t s = 0;
    ProgressValues logs;
    while (std::optional<Batch> batch = next()) {
      std::vector<Tensor> out =
          compiled_->train_step(on_weights_device(batch->first), on_weights_device(batch->second));
      means.add(batch->first.shape()[0], double(out[0].item<float>()),
                std::span<const Tensor>(out).subspan(1));
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

Tensor Model::on_weights_device(const Tensor& t) const {
  // The steps run where the weights live (on a GPU when the model was built under a
  // DeviceScope); batches of data held elsewhere are copied there, as Keras does under
  // tf.device.
  const std::vector<Variable> w = weights();
  if (w.empty() || !w.front().device().is_cuda() || w.front().device() == t.device()) return t;
  return t.to(w.front().device());
}

std::vector<float> Model::evaluate_batches(const NextBatch& next, const char* what,
                                           const std::source_location& loc) {
  metrics::RunningMeans means(compiled_->metrics);
  while (std::optional<Batch> b = next()) {
    std::vector<Tensor> out =
        compiled_->test_step(on_weights_device(b->first), on_weights_device(b->second));
    means.add(b->first.shape()[0], double(out[0].item<float>()),
              std::span<const Tensor>(out).subspan(1));
  }
  if (means.samples() == 0) detail::raise<ValueError>(what, {}, "no samples to evaluate", loc);
  return means.values();
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
    parts.push_back(compiled_->predict_step(
        on_weights_device(rows(x, order, begin, std::min(n, begin + batch_size)))));
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

}  // namespace kiln
