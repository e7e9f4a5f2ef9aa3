#include "kiln/frontend/model.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <numeric>
#include <random>

#include "kiln/frontend/apply.h"
#include "kiln/frontend/atomic_file.h"
#include "kiln/frontend/compile.h"
#include "kiln/frontend/function.h"
#include "kiln/frontend/gradient_tape.h"
#include "kiln/frontend/ops.h"
#include "kiln/frontend/safetensors.h"
#include "kiln/frontend/trace.h"
#include "kiln/ir/parser.h"
#include "kiln/ir/printer.h"

namespace kiln {

namespace {

using Clock = std::chrono::steady_clock;
using TwoTensorFn = std::function<std::vector<Tensor>(const Tensor&, const Tensor&)>;
using OneTensorFn = std::function<Tensor(const Tensor&)>;

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

// Throws ShapeError unless x is a batch of samples of the declared shape.
void check_input(const std::optional<TensorType>& declared, const std::string& name,
                 const Tensor& x, const std::source_location& loc) {
  if (!declared || !x.defined()) return;
  const Shape& want = declared->shape;
  std::vector<int64_t> got(x.shape().begin() + (x.rank() > 0 ? 1 : 0), x.shape().end());
  if (want.dims() != got) {
    detail::raise<ShapeError>(name, {x},
                              fmt::format("the model expects samples of shape {}, got a batch "
                                          "of shape {}",
                                          want.to_string(), x.shape().to_string()),
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

enum class AccuracyKind { sparse, binary, categorical };

// Keras resolves "accuracy" from the shapes: integer ids per sample → sparse; one output unit →
// binary; otherwise one-hot labels → categorical.
AccuracyKind accuracy_kind(const Tensor& y, const Tensor& pred) {
  if (y.rank() == pred.rank() - 1 ||
      (y.rank() == pred.rank() && y.shape().dims().back() == 1 && pred.shape().dims().back() > 1))
    return AccuracyKind::sparse;
  if (pred.shape().dims().back() == 1) return AccuracyKind::binary;
  return AccuracyKind::categorical;
}

// The number of correct predictions in a batch, as an f32 scalar (traced with the step).
Tensor correct_count(const Tensor& y, const Tensor& pred) {
  Tensor hits;
  switch (accuracy_kind(y, pred)) {
    case AccuracyKind::sparse: {
      Tensor labels = y.rank() == pred.rank() ? squeeze(y, -1) : y;
      hits = equal(argmax(pred, -1), cast(labels, i64));
      break;
    }
    case AccuracyKind::binary:
      hits = equal(greater(pred, 0.5), greater(cast(y, pred.dtype()), 0.5));
      break;
    case AccuracyKind::categorical:
      hits = equal(argmax(pred, -1), argmax(y, -1));
      break;
  }
  return reduce_sum(cast(hits, f32));
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

std::string format_logs(const std::vector<std::pair<std::string, double>>& logs) {
  std::string out;
  for (const auto& [name, value] : logs)
    out += fmt::format(" - {}: {:.4f}", name, value);
  return out;
}

}  // namespace

struct Model::Compiled {
  std::shared_ptr<optimizers::Optimizer> optimizer;
  std::shared_ptr<losses::Loss> loss;
  bool accuracy = false;
  TwoTensorFn train_step;  // (x, y) → {mean loss, correct count}
  TwoTensorFn test_step;   // (x, y) → {mean loss, correct count}
  OneTensorFn predict_step;
};

void History::to_csv(const std::string& path, std::source_location loc) const {
  std::string text = "epoch";
  for (const auto& [name, values] : history)
    text += "," + name;
  text += "\n";
  for (size_t e = 0; e < epochs.size(); ++e) {
    text += std::to_string(epochs[e]);
    for (const auto& [name, values] : history)
      text += fmt::format(",{:.6g}", values.at(e));
    text += "\n";
  }
  detail::write_file_atomically(path, text, "History.to_csv", loc);
}

void History::plot(const std::string& path, std::source_location loc) const {
  // One chart per series without the "val_" prefix; its "val_" twin is drawn dashed.
  std::vector<std::string> metrics;
  for (const auto& [name, values] : history)
    if (name.rfind("val_", 0) != 0) metrics.push_back(name);
  const int width = 420, height = 300, margin = 50;
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n",
      width * std::max<size_t>(1, metrics.size()), height);
  for (size_t m = 0; m < metrics.size(); ++m) {
    const std::string& metric = metrics[m];
    const std::vector<double>& train = history.at(metric);
    auto val_it = history.find("val_" + metric);
    double lo = *std::min_element(train.begin(), train.end());
    double hi = *std::max_element(train.begin(), train.end());
    if (val_it != history.end()) {
      lo = std::min(lo, *std::min_element(val_it->second.begin(), val_it->second.end()));
      hi = std::max(hi, *std::max_element(val_it->second.begin(), val_it->second.end()));
    }
    if (hi - lo < 1e-12) hi = lo + 1;
    int x0 = int(m) * width;
    auto px = [&](size_t e) {
      return x0 + margin +
             (train.size() > 1 ? double(e) * (width - 2 * margin) / double(train.size() - 1) : 0);
    };
    auto py = [&](double v) {
      return height - margin - (v - lo) * (height - 2 * margin) / (hi - lo);
    };
    auto line = [&](const std::vector<double>& values, const char* color, const char* dash) {
      std::string points;
      for (size_t e = 0; e < values.size(); ++e)
        points += fmt::format("{:.1f},{:.1f} ", px(e), py(values[e]));
      return fmt::format(
          "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" {}points=\"{}\"/>\n", color,
          dash, points);
    };
    svg += fmt::format("<text x=\"{}\" y=\"20\">{} per epoch</text>\n", x0 + margin, metric);
    svg += fmt::format(
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#999\"/>\n",
        x0 + margin, margin, width - 2 * margin, height - 2 * margin);
    svg += fmt::format("<text x=\"{}\" y=\"{}\">{:.4g}</text>\n", x0 + 2, margin + 4, hi);
    svg += fmt::format("<text x=\"{}\" y=\"{}\">{:.4g}</text>\n", x0 + 2, height - margin, lo);
    svg += fmt::format("<text x=\"{}\" y=\"{}\">epoch 1 … {}</text>\n", x0 + margin,
                       height - margin + 20, train.size());
    svg += line(train, "#1f77b4", "");
    svg += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#1f77b4\">train</text>\n",
                       x0 + width - margin - 60, height - 12);
    if (val_it != history.end()) {
      svg += line(val_it->second, "#ff7f0e", "stroke-dasharray=\"6,4\" ");
      svg += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#ff7f0e\">validation</text>\n",
                         x0 + width - margin - 60 + 40, height - 12);
    }
  }
  svg += "</svg>\n";
  detail::write_file_atomically(path, svg, "History.plot", loc);
}

Model::Model(std::string name) : name_(std::move(name)) {}

Tensor Model::call(const Tensor& x, bool) {
  detail::raise<ValueError>(name_, {x}, "a Model subclass must override call(x, training)",
                            std::source_location::current());
}

Tensor Model::call_at(const Tensor& x, bool training, const std::source_location&) {
  return call(x, training);
}

Tensor Model::operator()(const Tensor& x, bool training, std::source_location loc) {
  check_input(declared_input(), name_, x, loc);
  note_input(x);
  name_scope scope(name_);
  return call_at(x, training, loc);
}

void Model::note_input(const Tensor& x) {
  if (x.defined() && x.rank() > 0)
    seen_input_ =
        TensorType{x.dtype(), Shape(std::vector<int64_t>(x.shape().begin() + 1, x.shape().end()))};
}

std::optional<TensorType> Model::input_spec() const {
  if (std::optional<TensorType> declared = declared_input()) return declared;
  return seen_input_;
}

std::function<Tensor(const Tensor&, bool)> Model::forward_fn() {
  return [this](const Tensor& x, bool training) { return (*this)(x, training); };
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

Sequential::Sequential(std::vector<LayerHandle> layers, std::string name) : Model(std::move(name)) {
  for (const LayerHandle& l : layers)
    layers_.push_back(l.get());
}

void Sequential::add(const LayerHandle& layer) {
  layers_.push_back(layer.get());
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
    check_input(declared_sample(layers), name, x, loc);
    name_scope scope(name);
    return run_layers(layers, name, x, training, loc);
  };
}

void Model::compile_with(std::shared_ptr<optimizers::Optimizer> optimizer,
                         std::shared_ptr<losses::Loss> loss, std::vector<std::string> metrics,
                         const std::source_location& loc) {
  auto c = std::make_shared<Compiled>();
  c->optimizer = std::move(optimizer);
  c->loss = std::move(loss);
  for (const std::string& m : metrics) {
    if (m == "accuracy" || m == "acc") {
      c->accuracy = true;
    } else {
      detail::raise<ValueError>("compile", {},
                                fmt::format("unknown metric '{}'; known: accuracy", m), loc);
    }
  }
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
        return std::vector<Tensor>{loss, correct_count(y, pred)};
      },
      name_ + "_train_step");
  c->test_step = quiet_function(
      [forward, raw](const Tensor& x, const Tensor& y) {
        Tensor pred = forward(x, /*training=*/false);
        return std::vector<Tensor>{(*raw->loss)(y, pred), correct_count(y, pred)};
      },
      name_ + "_test_step");
  c->predict_step = quiet_function(
      [forward](const Tensor& x) { return forward(x, /*training=*/false); }, name_ + "_predict");
  compiled_ = std::move(c);
}

namespace {

void check_data(const char* what, const Tensor& x, const Tensor& y,
                const std::source_location& loc) {
  if (!x.defined() || !y.defined())
    detail::raise<ValueError>(what, {}, "x and y must be defined", loc);
  if (x.rank() == 0 || y.rank() == 0 || x.shape()[0] != y.shape()[0]) {
    detail::raise<ValueError>(
        what, {x, y},
        fmt::format("x and y must have the same number of samples (dimension 0), got {} and {}",
                    x.rank() > 0 ? x.shape()[0] : 0, y.rank() > 0 ? y.shape()[0] : 0),
        loc);
  }
}

// The labels of a sparse classification must be class ids of the model's output.
void check_labels(const Tensor& y, const Tensor& probe, const std::source_location& loc) {
  if (!ir::is_integer(y.dtype()) || accuracy_kind(y, probe) != AccuracyKind::sparse) return;
  int64_t classes = probe.shape().dims().back();
  const ir::HostTensor& ids = y.host();
  for (int64_t i = 0; i < ids.num_elements(); ++i) {
    auto id = static_cast<int64_t>(ids.element_as_double(i));
    if (id < 0 || id >= classes) {
      detail::raise<IndexError>("fit", {y},
                                fmt::format("label {} of sample {} is outside [0, {}), the "
                                            "model's {} output classes",
                                            id, i, classes, classes),
                                loc);
    }
  }
}

// Prints a Keras-like progress line; on a terminal it redraws in place.
class Progress {
 public:
  Progress(int verbose, int64_t epoch, int64_t epochs, int64_t steps)
      : verbose_(verbose), steps_(steps), tty_(verbose == 1 && isatty(STDOUT_FILENO) != 0) {
    if (verbose_ >= 1) std::cout << fmt::format("Epoch {}/{}\n", epoch + 1, epochs) << std::flush;
  }
  void update(int64_t step, double elapsed,
              const std::vector<std::pair<std::string, double>>& logs) {
    if (!tty_) return;
    double eta = step > 0 ? elapsed / double(step) * double(steps_ - step) : 0;
    int width = 30, done = int(double(width) * double(step) / double(steps_));
    std::string bar = std::string(size_t(std::max(0, done - 1)), '=') +
                      (step < steps_ ? ">" : "=") +
                      std::string(size_t(width - std::max(1, done)), '.');
    std::cout << fmt::format("\r{}/{} [{}] - ETA: {:.0f}s{}", step, steps_, bar, eta,
                             format_logs(logs))
              << std::flush;
  }
  void end(double seconds, const std::vector<std::pair<std::string, double>>& logs) {
    if (verbose_ == 0) return;
    std::cout << fmt::format("{}{}/{} - {:.1f}s{}\n", tty_ ? "\r" : "", steps_, steps_, seconds,
                             format_logs(logs))
              << std::flush;
  }

 private:
  int verbose_;
  int64_t steps_;
  bool tty_;
};

}  // namespace

History Model::fit(const Tensor& x, const Tensor& y, const FitOptions& options,
                   std::source_location loc) {
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
  std::optional<std::pair<Tensor, Tensor>> validation = options.validation_data;
  if (options.validation_split > 0) {
    x_train = rows(x, all, 0, split_at);
    y_train = rows(y, all, 0, split_at);
    validation = {rows(x, all, split_at, n), rows(y, all, split_at, n)};
    n = split_at;
  }
  if (n == 0) detail::raise<ValueError>("fit", {x, y}, "no training samples", loc);
  check_labels(y, (*this)(rows(x_train, all, 0, 1)), loc);
  if (validation) check_data("fit (validation data)", validation->first, validation->second, loc);

  History history;
  for (const CallbackHandle& callback : options.callbacks)
    callback.get().on_train_begin(*this);
  std::mt19937_64 rng(options.seed);
  int64_t steps = (n + options.batch_size - 1) / options.batch_size;
  for (int64_t epoch = 0; epoch < options.epochs; ++epoch) {
    auto start = Clock::now();
    std::vector<int64_t> order = iota(n);
    if (options.shuffle) std::shuffle(order.begin(), order.end(), rng);
    Progress progress(options.verbose, epoch, options.epochs, steps);
    double loss_sum = 0, correct = 0;
    int64_t seen = 0;
    std::vector<std::pair<std::string, double>> logs;
    for (int64_t s = 0; s < steps; ++s) {
      int64_t begin = s * options.batch_size, end = std::min(n, begin + options.batch_size);
      std::vector<Tensor> out =
          compiled_->train_step(rows(x_train, order, begin, end), rows(y_train, order, begin, end));
      loss_sum += double(out[0].item<float>()) * double(end - begin);
      correct += double(out[1].item<float>());
      seen += end - begin;
      logs = {{"loss", loss_sum / double(seen)}};
      if (compiled_->accuracy) logs.emplace_back("accuracy", correct / double(seen));
      progress.update(s + 1, std::chrono::duration<double>(Clock::now() - start).count(), logs);
    }
    if (validation) {
      std::vector<float> v =
          evaluate(validation->first, validation->second, options.batch_size, loc);
      logs.emplace_back("val_loss", v[0]);
      if (compiled_->accuracy) logs.emplace_back("val_accuracy", v[1]);
    }
    double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    progress.end(seconds, logs);
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

std::vector<float> Model::evaluate(const Tensor& x, const Tensor& y, int64_t batch_size,
                                   std::source_location loc) {
  if (!compiled_)
    detail::raise<ValueError>("evaluate", {}, "call compile() before evaluate()", loc);
  check_data("evaluate", x, y, loc);
  note_input(x);
  if (batch_size <= 0)
    detail::raise<ValueError>("evaluate", {}, "batch_size must be positive", loc);
  int64_t n = x.shape()[0];
  std::vector<int64_t> order = iota(n);
  double loss_sum = 0, correct = 0;
  for (int64_t begin = 0; begin < n; begin += batch_size) {
    int64_t end = std::min(n, begin + batch_size);
    std::vector<Tensor> out =
        compiled_->test_step(rows(x, order, begin, end), rows(y, order, begin, end));
    loss_sum += double(out[0].item<float>()) * double(end - begin);
    correct += double(out[1].item<float>());
  }
  std::vector<float> result{float(loss_sum / double(n))};
  if (compiled_->accuracy) result.push_back(float(correct / double(n)));
  return result;
}

Tensor Model::predict(const Tensor& x, int64_t batch_size, std::source_location loc) {
  if (!x.defined() || x.rank() == 0) {
    detail::raise<ValueError>("predict", {}, "x must be a defined tensor with a batch dimension",
                              loc);
  }
  if (batch_size <= 0) detail::raise<ValueError>("predict", {}, "batch_size must be positive", loc);
  note_input(x);
  if (!compiled_) {
    // Keras predicts without compile(): run eagerly.
    return (*this)(x, false, loc);
  }
  int64_t n = x.shape()[0];
  std::vector<int64_t> order = iota(n);
  std::vector<Tensor> parts;
  for (int64_t begin = 0; begin < n; begin += batch_size)
    parts.push_back(
        compiled_->predict_step(rows(x, order, begin, std::min(n, begin + batch_size))));
  return concat(parts, 0);
}

std::vector<Variable> Model::built_weights(const char* what, const std::source_location& loc) {
  bool built = !layers_.empty();
  for (const auto& l : layers_)
    built = built && l->built();
  if (built) return weights();
  std::optional<TensorType> spec = input_spec();
  if (!spec) {
    detail::raise<ValueError>(what, {},
                              fmt::format("model '{}' is not built: call it on data first, or "
                                          "declare input_shape on its first layer",
                                          name_),
                              loc);
  }
  // Tracing the model once on a symbolic batch of one builds every layer.
  std::vector<int64_t> dims{1};
  dims.insert(dims.end(), spec->shape.begin(), spec->shape.end());
  detail::Trace trace(name_ + "_build", {});
  detail::TraceScope scope(trace);
  (*this)(trace.add_argument(TensorType{spec->dtype, Shape(dims)}), false, loc);
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

std::string Model::summary_text() const {
  std::vector<Shape> shapes = output_shapes();
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

void Model::summary() const {
  std::cout << summary_text();
}

void Model::save(const std::string& dir, int64_t batch_size, std::source_location loc) {
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
  std::vector<int64_t> dims{batch_size};
  dims.insert(dims.end(), spec->shape.begin(), spec->shape.end());
  std::function<Tensor(const Tensor&, bool)> forward = forward_fn();
  auto inference = kiln::function([forward](const Tensor& x) { return forward(x, false); },
                                  name_ + "_inference");
  const ir::Function& graph = inference.graph(zeros(Shape(dims), spec->dtype, loc));

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
  safetensors::save(dir + "/weights.safetensors", named, {{"format", "kiln"}, {"model", name_}},
                    loc);
  detail::write_file_atomically(dir + "/model.kiln", ir::print(graph), "save", loc);
}

struct SavedModel::Impl {
  ir::Function graph{"saved"};
  std::vector<ir::HostTensor> weights;  // parameters 1, 2, ...
  // Compiled on the first call, so that a model loaded only to be looked at or compiled ahead
  // of time costs no JIT compile.
  mutable std::once_flag compile_once;
  mutable std::unique_ptr<CompiledFunction> compiled;
};

const ir::Function& SavedModel::graph() const {
  return impl_->graph;
}

std::span<const ir::HostTensor> SavedModel::weights() const {
  return impl_->weights;
}

const TensorType& SavedModel::input_type() const {
  return impl_->graph.param(0)->type();
}

Tensor SavedModel::operator()(const Tensor& x, std::source_location loc) const {
  if (!x.defined())
    detail::raise<ValueError>(impl_->graph.name(), {}, "the input is undefined", loc);
  const TensorType& want = input_type();
  if (x.dtype() != want.dtype) {
    detail::raise<TypeError>(
        impl_->graph.name(), {x},
        fmt::format("the saved model takes {}, got {}", want.to_string(), x.type().to_string()),
        loc);
  }
  if (x.shape() != want.shape) {
    detail::raise<ShapeError>(
        impl_->graph.name(), {x},
        fmt::format("the saved model takes {}, got {}", want.to_string(), x.type().to_string()),
        loc);
  }
  std::vector<const ir::HostTensor*> args{&x.host()};
  for (const ir::HostTensor& w : impl_->weights)
    args.push_back(&w);
  std::call_once(impl_->compile_once,
                 [&] { impl_->compiled = compile(detail::clone_function(impl_->graph)); });
  ir::EvalResult result = impl_->compiled->run(args);
  return Tensor(std::move(result.outputs.at(0)));
}

SavedModel load_model(const std::string& dir, std::source_location loc) {
  const std::string ir_path = dir + "/model.kiln", weights_path = dir + "/weights.safetensors";
  for (const std::string& path : {ir_path, weights_path}) {
    if (!std::filesystem::is_regular_file(path)) {
      detail::raise<IOError>("load_model", {},
                             fmt::format("{} is not a saved model: {} is missing", dir, path), loc);
    }
  }
  auto impl = std::make_shared<SavedModel::Impl>();
  impl->graph = ir::parse_file(ir_path);
  if (impl->graph.params().empty() || impl->graph.outputs().size() != 1) {
    detail::raise<ValueError>(
        "load_model", {}, fmt::format("{} must take an input and return one result", ir_path), loc);
  }
  std::map<std::string, Tensor> loaded;
  for (auto& [name, t] : safetensors::load(weights_path, loc))
    loaded.emplace(name, t);
  std::vector<std::string> problems;
  for (size_t i = 1; i < impl->graph.params().size(); ++i) {
    const ir::Value* p = impl->graph.param(i);
    auto it = loaded.find(p->name());
    if (it == loaded.end()) {
      problems.push_back(fmt::format("'{}' is missing", p->name()));
      continue;
    }
    if (it->second.type() != p->type()) {
      problems.push_back(fmt::format("'{}' is {} in the weights but {} in the function", p->name(),
                                     it->second.type().to_string(), p->type().to_string()));
    }
    impl->weights.push_back(it->second.host());
    loaded.erase(it);
  }
  for (const auto& [name, t] : loaded)
    problems.push_back(fmt::format("'{}' is not a parameter of the function", name));
  if (!problems.empty()) {
    detail::raise<ValueError>(
        "load_model", {},
        fmt::format("{} does not match {}: {}", weights_path, ir_path, fmt::join(problems, "; ")),
        loc);
  }
  SavedModel model;
  model.impl_ = std::move(impl);
  return model;
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
