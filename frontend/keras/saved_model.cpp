#include "kiln/frontend/keras/saved_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>

#include "kiln/frontend/core/compile.h"
#include "kiln/frontend/core/log.h"
#include "kiln/frontend/core/name_scope.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/ops.h"
#include "kiln/frontend/core/trace.h"
#include "kiln/frontend/formats/safetensors.h"
#include "kiln/frontend/keras/batches.h"
#include "kiln/frontend/keras/layers.h"
#include "kiln/frontend/keras/metrics.h"
#include "kiln/frontend/keras/shape_generic.h"
#include "kiln/ir/parser.h"

namespace kiln {

struct SavedModel::Impl {
  ir::Function graph{"saved"};
  std::string text;                     // model.kiln as written
  size_t num_inputs = 1;                // parameters 0 .. num_inputs - 1
  detail::ShapeFormula formula;         // model.shapes: the free dimensions
  std::vector<ir::HostTensor> weights;  // parameters num_inputs, ...
  std::string name = "saved_model";
  // The output layers' names (several outputs), for evaluate's "<output>_loss".
  std::vector<std::string> output_names;
  // From the saved compile() configuration or compile(): one loss, loss weight and list of
  // metrics per output (empty: no loss).
  std::vector<std::shared_ptr<losses::Loss>> losses;
  std::vector<double> loss_weights;
  std::vector<std::vector<std::string>> metrics;  // their names, as saved
  std::vector<metrics::MetricList> resolved_metrics;
  // One compiled function per combination of input shapes, compiled on its first call, so that
  // a model loaded only to be looked at or compiled ahead of time costs no JIT compile.
  struct Variant {
    std::once_flag once;
    std::unique_ptr<CompiledFunction> compiled;
  };
  std::mutex variants_mutex;
  std::map<std::vector<std::vector<int64_t>>, std::shared_ptr<Variant>> variants;
  std::vector<std::string> compiled_shapes;  // in the order they were compiled, for messages
};

namespace detail {
std::map<std::string, std::string> compile_metadata(
    const std::vector<std::shared_ptr<losses::Loss>>& losses,
    const std::vector<std::vector<std::string>>& metrics, const std::vector<double>& loss_weights) {
  std::map<std::string, std::string> out;
  for (size_t o = 0; o < losses.size(); ++o) {
    const std::string prefix = losses.size() == 1 ? "" : fmt::format("output{}.", o);
    for (const auto& [key, value] : losses[o]->get_config())
      out[prefix + "loss." + key] = value;
    out[prefix + "metrics"] = fmt::format("{}", fmt::join(metrics.at(o), ","));
    if (losses.size() > 1) out[prefix + "loss_weight"] = fmt::format("{}", loss_weights.at(o));
  }
  return out;
}
}  // namespace detail

const ir::Function& SavedModel::graph() const {
  return impl_->graph;
}

std::span<const ir::HostTensor> SavedModel::weights() const {
  return impl_->weights;
}

size_t SavedModel::num_inputs() const {
  return impl_->num_inputs;
}

size_t SavedModel::num_outputs() const {
  return impl_->graph.outputs().size();
}

const TensorType& SavedModel::input_type() const {
  return impl_->graph.param(0)->type();
}

std::vector<TensorType> SavedModel::input_types() const {
  std::vector<TensorType> out;
  for (size_t i = 0; i < impl_->num_inputs; ++i)
    out.push_back(impl_->graph.param(i)->type());
  return out;
}

const std::string& SavedModel::name() const {
  return impl_->name;
}

std::vector<TensorType> SavedModel::input_specs() const {
  std::vector<TensorType> specs = input_types();
  for (const detail::FreeDim& d : impl_->formula.dims) {
    if (d.axis == 0) {
      for (TensorType& spec : specs)
        spec.shape[0] = kiln::None;  // the batch is every input's
    } else {
      specs.at(d.input).shape[d.axis] = kiln::None;
    }
  }
  return specs;
}

TensorType SavedModel::input_spec() const {
  return input_specs()[0];
}

bool SavedModel::batch_is_free() const {
  return !impl_->formula.dims.empty() && impl_->formula.dims.front().axis == 0;
}

std::string SavedModel::shape_note() const {
  return impl_->formula.note;
}

void SavedModel::check_single_io(const char* what, const std::source_location& loc) const {
  if (num_inputs() == 1 && num_outputs() == 1) return;
  detail::raise<ValueError>(
      impl_->graph.name(), {},
      fmt::format("saved model '{}' has {} input{} and {} output{}: {} takes a list of inputs "
                  "(and returns a list of outputs)",
                  impl_->name, num_inputs(), num_inputs() == 1 ? "" : "s", num_outputs(),
                  num_outputs() == 1 ? "" : "s", what),
      loc);
}

namespace {

std::string spec_text(const TensorType& spec) {
  std::vector<std::string> dims;
  for (int64_t d : spec.shape)
    dims.push_back(d == kiln::None ? "None" : std::to_string(d));
  return fmt::format("{}[{}]", ir::dtype_name(spec.dtype), fmt::join(dims, ","));
}

// "f32[None,4]" for one input, "(f32[None,4], f32[None,2])" for several.
std::string specs_text(const std::vector<TensorType>& specs) {
  std::vector<std::string> parts;
  for (const TensorType& t : specs)
    parts.push_back(spec_text(t));
  return parts.size() == 1 ? parts[0] : fmt::format("({})", fmt::join(parts, ", "));
}

std::string types_text(const std::vector<TensorType>& types) {
  std::vector<std::string> parts;
  for (const TensorType& t : types)
    parts.push_back(t.to_string());
  return parts.size() == 1 ? parts[0] : fmt::format("({})", fmt::join(parts, ", "));
}

bool admits(const TensorType& spec, const Shape& shape) {
  bool fits = shape.rank() == spec.shape.rank();
  for (int64_t d = 0; fits && d < spec.shape.rank(); ++d)
    fits = spec.shape[d] == kiln::None ? shape[d] >= 0 : shape[d] == spec.shape[d];
  return fits;
}

// Whether inputs of `shapes` are ones the model takes: each admitted by its spec, and one batch
// size for every input.
bool takes(const std::vector<TensorType>& specs, const std::vector<Shape>& shapes) {
  bool fits = shapes.size() == specs.size();
  for (size_t i = 0; fits && i < shapes.size(); ++i)
    fits = admits(specs[i], shapes[i]);
  for (size_t i = 1; fits && i < shapes.size(); ++i)
    fits = shapes[i].rank() > 0 && shapes[0].rank() > 0 && shapes[i][0] == shapes[0][0];
  return fits;
}

}  // namespace

ir::Function SavedModel::graph_for(const Shape& input_shape, std::source_location loc) const {
  check_single_io("graph_for", loc);
  return graph_for(std::vector<Shape>{input_shape}, loc);
}

ir::Function SavedModel::graph_for(const std::vector<Shape>& input_shapes,
                                   std::source_location loc) const {
  const std::vector<TensorType> specs = input_specs(), types = input_types();
  if (input_shapes.size() != specs.size()) {
    detail::raise<ValueError>(impl_->graph.name(), {},
                              fmt::format("the saved model takes {} inputs, got {} shapes",
                                          specs.size(), input_shapes.size()),
                              loc);
  }
  std::vector<TensorType> got;
  bool saved_shapes = true, same_sample = true;
  for (size_t i = 0; i < specs.size(); ++i) {
    got.push_back({specs[i].dtype, input_shapes[i]});
    saved_shapes = saved_shapes && input_shapes[i] == types[i].shape;
    same_sample = same_sample && input_shapes[i].rank() == specs[i].shape.rank() &&
                  input_shapes[i].rank() > 0 &&
                  detail::sample_type(got[i]) == detail::sample_type(specs[i]);
  }
  if (saved_shapes) return impl_->graph.clone();
  if (!takes(specs, input_shapes)) {
    detail::raise<ShapeError>(
        impl_->graph.name(), {},
        fmt::format("the saved model takes {}{}, got {}{}{}{}", specs_text(specs),
                    specs == types ? "" : fmt::format(" (saved as {})", types_text(types)),
                    types_text(got), specs.size() > 1 ? " (one batch size for every input)" : "",
                    impl_->formula.note.empty() ? "" : fmt::format("; {}", impl_->formula.note),
                    same_sample ? "; predict() takes any number of samples" : ""),
        loc);
  }
  std::vector<int64_t> sizes;
  for (const detail::FreeDim& d : impl_->formula.dims)
    sizes.push_back(input_shapes.at(d.input)[d.axis]);
  try {
    ir::Function f = ir::parse(detail::specialise(impl_->text, impl_->formula, sizes));
    // The weights' types never depend on the input's sizes; a sidecar that says otherwise is
    // caught here rather than in the compiled code.
    bool ok = f.params().size() == impl_->graph.params().size() &&
              f.outputs().size() == impl_->graph.outputs().size();
    for (size_t i = 0; ok && i < f.params().size(); ++i)
      ok = f.param(i)->type() == (i < got.size() ? got[i] : impl_->graph.param(i)->type());
    if (!ok) {
      throw ShapeError(fmt::format("model.shapes gives a function of another signature for {}",
                                   types_text(got)));
    }
    return f;
  } catch (const Error& e) {
    detail::raise<ShapeError>(
        impl_->graph.name(), {},
        fmt::format("the saved model cannot take {}: {}", types_text(got), e.what()), loc);
  }
}

std::vector<Tensor> SavedModel::operator()(const std::vector<Tensor>& xs,
                                           std::source_location loc) const {
  const std::vector<TensorType> types = input_types();
  if (xs.size() != types.size()) {
    detail::raise<ValueError>(impl_->graph.name(), {},
                              fmt::format("saved model '{}' takes {} input{}, got {}", impl_->name,
                                          types.size(), types.size() == 1 ? "" : "s", xs.size()),
                              loc);
  }
  std::vector<Shape> shapes;
  bool saved_shapes = true;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& x = xs[i];
    const std::string which = xs.size() == 1 ? "" : fmt::format(" (input {})", i);
    if (!x.defined()) {
      detail::raise<ValueError>(impl_->graph.name(), {},
                                fmt::format("the input{} is undefined", which), loc);
    }
    if (x.dtype() != types[i].dtype) {
      detail::raise<TypeError>(impl_->graph.name(), {x},
                               fmt::format("the saved model takes {}, got {}{}",
                                           specs_text(input_specs()), x.type().to_string(), which),
                               loc);
    }
    if (x.is_symbolic()) {
      detail::raise<ValueError>(impl_->graph.name(), {x},
                                "a saved model runs on concrete tensors, not inside a trace", loc);
    }
    shapes.push_back(x.shape());
    saved_shapes = saved_shapes && x.shape() == types[i].shape;
  }
  std::vector<std::vector<int64_t>> key;
  for (const Shape& shape : shapes)
    key.emplace_back(shape.begin(), shape.end());
  std::shared_ptr<Impl::Variant> variant;
  {
    std::lock_guard lock(impl_->variants_mutex);
    auto it = impl_->variants.find(key);
    if (it != impl_->variants.end()) variant = it->second;
  }
  if (!variant) {
    // Checks the shapes against the free dimensions (ShapeError) before anything is compiled.
    if (!saved_shapes && !takes(input_specs(), shapes)) graph_for(shapes, loc);  // throws
    std::lock_guard lock(impl_->variants_mutex);
    std::shared_ptr<Impl::Variant>& slot = impl_->variants[key];
    if (!slot) slot = std::make_shared<Impl::Variant>();
    variant = slot;
  }
  std::call_once(variant->once, [&] {
    ir::Function f = graph_for(shapes, loc);
    std::vector<TensorType> got;
    for (size_t i = 0; i < xs.size(); ++i)
      got.push_back(xs[i].type());
    std::vector<std::string> before;
    {
      std::lock_guard lock(impl_->variants_mutex);
      before = impl_->compiled_shapes;
    }
    // As kiln::function says when it retraces: each new shape costs a compile.
    if (!before.empty()) {
      log_message(fmt::format("recompiling saved model '{}' for input {} (compiled before: {})",
                              impl_->name, types_text(got), fmt::join(before, ", ")));
    }
    std::unique_ptr<CompiledFunction> compiled = kiln::compile(std::move(f));
    std::lock_guard lock(impl_->variants_mutex);
    impl_->compiled_shapes.push_back(types_text(got));
    variant->compiled = std::move(compiled);
  });
  std::vector<const ir::HostTensor*> args;
  for (const Tensor& x : xs)
    args.push_back(&x.host());
  for (const ir::HostTensor& w : impl_->weights)
    args.push_back(&w);
  ir::EvalResult result = variant->compiled->run(args);
  std::vector<Tensor> outputs;
  for (ir::HostTensor& out : result.outputs)
    outputs.emplace_back(std::move(out));
  return outputs;
}

Tensor SavedModel::operator()(const Tensor& x, std::source_location loc) const {
  check_single_io("a call on one tensor", loc);
  return (*this)(std::vector<Tensor>{x}, loc)[0];
}

int64_t SavedModel::predict_batch_size() const {
  const int64_t saved = input_type().shape.rank() > 0 ? input_type().shape[0] : 1;
  return batch_is_free() ? std::max<int64_t>(saved, kPredictBatch) : saved;
}

Tensor SavedModel::predict(const Tensor& x, std::source_location loc) const {
  check_single_io("predict on one tensor", loc);
  return predict(std::vector<Tensor>{x}, loc)[0];
}

std::vector<Tensor> SavedModel::predict(const std::vector<Tensor>& xs,
                                        std::source_location loc) const {
  const std::vector<TensorType> specs = input_specs();
  if (xs.size() != specs.size()) {
    detail::raise<ValueError>("predict", {},
                              fmt::format("saved model '{}' takes {} input{}, got {}", impl_->name,
                                          specs.size(), specs.size() == 1 ? "" : "s", xs.size()),
                              loc);
  }
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& x = xs[i];
    const TensorType& want = specs[i];
    if (!x.defined() || x.rank() == 0 || want.shape.rank() == 0) {
      detail::raise<ValueError>(
          "predict", {x},
          fmt::format("need a batch of samples for a model that takes {}", specs_text(specs)), loc);
    }
    const TensorType sample = detail::sample_type(want);
    bool fits = x.rank() == want.shape.rank();
    for (int64_t d = 1; fits && d < x.rank(); ++d)
      fits = want.shape[d] == kiln::None || want.shape[d] == x.shape()[d];
    if (!fits || x.dtype() != want.dtype) {
      detail::raise<ShapeError>(
          "predict", {x},
          fmt::format("the saved model takes samples of {} (here {}), got {}{}", spec_text(sample),
                      spec_text(detail::with_batch(x.shape()[0], sample)), x.type().to_string(),
                      xs.size() == 1 ? "" : fmt::format(" for input {}", i)),
          loc);
    }
    if (x.shape()[0] != xs[0].shape()[0]) {
      detail::raise<ValueError>(
          "predict", {xs[0], x},
          fmt::format("the inputs hold different numbers of samples: {} and {} (input {})",
                      xs[0].shape()[0], x.shape()[0], i),
          loc);
    }
  }
  const int64_t n = xs[0].shape()[0], batch = predict_batch_size();
  if (n == 0 || batch <= 0) {
    detail::raise<ValueError>("predict", {xs[0]}, "no samples to predict (or a saved batch of 0)",
                              loc);
  }
  std::vector<std::vector<Tensor>> parts(num_outputs());
  for (int64_t begin = 0; begin < n; begin += batch) {
    const int64_t end = std::min(n, begin + batch);
    std::vector<Tensor> rows;
    for (const Tensor& x : xs) {
      Tensor r = x.index({Slice(begin, end)});
      if (end - begin < batch) {
        // One batch size for every call, so predict compiles one function: the last batch is
        // padded with zeros and its rows kept.
        std::vector<std::pair<int64_t, int64_t>> padding(size_t(x.rank()), {0, 0});
        padding[0].second = batch - (end - begin);
        r = pad(r, padding, 0.0, loc);
      }
      rows.push_back(std::move(r));
    }
    std::vector<Tensor> outs = (*this)(rows, loc);
    for (size_t o = 0; o < outs.size(); ++o) {
      parts[o].push_back(end - begin < batch ? outs[o].index({Slice(0, end - begin)})
                                             : std::move(outs[o]));
    }
  }
  std::vector<Tensor> result;
  for (std::vector<Tensor>& p : parts)
    result.push_back(p.size() == 1 ? p[0] : concat(p, 0, loc));
  return result;
}

void SavedModel::compile(const losses::LossSpec& loss, const std::vector<std::string>& metrics,
                         std::source_location loc) {
  compile(std::vector<losses::LossSpec>{loss}, {metrics}, {}, loc);
}

void SavedModel::compile(const std::vector<losses::LossSpec>& losses,
                         const std::vector<std::vector<std::string>>& metrics,
                         const std::vector<double>& loss_weights, std::source_location loc) {
  const size_t outputs = num_outputs();
  detail::check_compile_counts("SavedModel.compile", outputs, losses.size(), metrics.size(),
                               loss_weights, loc);
  std::vector<std::shared_ptr<losses::Loss>> resolved;
  std::vector<double> weights;
  std::vector<std::vector<std::string>> names;
  std::vector<metrics::MetricList> lists;
  for (size_t o = 0; o < outputs; ++o) {
    resolved.push_back(losses.size() == 1 && o > 0 ? resolved[0] : losses[o].resolve(loc));
    weights.push_back(loss_weights.empty() ? 1.0 : loss_weights[loss_weights.size() == 1 ? 0 : o]);
    names.push_back(metrics.empty() ? std::vector<std::string>{}
                                    : metrics[metrics.size() == 1 ? 0 : o]);
    lists.emplace_back(names.back(), "SavedModel.compile", loc, resolved.back().get());
  }
  impl_->losses = std::move(resolved);
  impl_->loss_weights = std::move(weights);
  impl_->metrics = std::move(names);
  impl_->resolved_metrics = std::move(lists);
}

namespace {

std::vector<std::string> output_prefixes(const std::vector<std::string>& output_names,
                                         size_t outputs) {
  if (outputs == 1) return {""};
  std::vector<std::string> prefixes;
  for (size_t o = 0; o < outputs; ++o)
    prefixes.push_back(
        (o < output_names.size() ? output_names[o] : fmt::format("output_{}", o + 1)) + "_");
  return prefixes;
}

}  // namespace

std::vector<std::string> SavedModel::metrics_names() const {
  if (impl_->losses.empty()) return {};
  std::vector<const metrics::MetricList*> lists;
  for (const metrics::MetricList& list : impl_->resolved_metrics)
    lists.push_back(&list);
  return metrics::RunningMeans(lists, output_prefixes(impl_->output_names, num_outputs())).names();
}

std::vector<float> SavedModel::evaluate(const Tensor& x, const Tensor& y,
                                        std::source_location loc) const {
  check_single_io("evaluate on one tensor", loc);
  return evaluate(std::vector<Tensor>{x}, std::vector<Tensor>{y}, loc);
}

std::vector<float> SavedModel::evaluate(const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                                        std::source_location loc) const {
  if (impl_->losses.empty()) {
    detail::raise<ValueError>(
        "evaluate", {},
        fmt::format("saved model '{}' has no loss: it was saved before compile(); call "
                    "compile(loss, metrics) on the loaded model first",
                    impl_->name),
        loc);
  }
  const size_t outputs = num_outputs();
  if (x.size() != num_inputs() || y.size() != outputs) {
    detail::raise<ValueError>(
        "evaluate", {},
        fmt::format("saved model '{}' takes {} input{} and {} label tensor{}, got {} and {}",
                    impl_->name, num_inputs(), num_inputs() == 1 ? "" : "s", outputs,
                    outputs == 1 ? "" : "s", x.size(), y.size()),
        loc);
  }
  for (const Tensor& label : y)
    detail::check_data("evaluate", x[0], label, loc);
  detail::UserSite site(loc);
  // Batch by batch, each batch's mean losses weighted by its size, as Model::evaluate does.
  const int64_t n = x[0].shape()[0], batch = std::max<int64_t>(1, predict_batch_size());
  std::vector<const metrics::MetricList*> lists;
  for (const metrics::MetricList& list : impl_->resolved_metrics)
    lists.push_back(&list);
  metrics::RunningMeans means(lists, output_prefixes(impl_->output_names, outputs));
  for (int64_t begin = 0; begin < n; begin += batch) {
    const int64_t end = std::min(n, begin + batch);
    std::vector<Tensor> xb;
    for (const Tensor& t : x)
      xb.push_back(t.index({Slice(begin, end)}));
    std::vector<Tensor> preds = predict(xb, loc);
    std::vector<double> losses{0.0};
    std::vector<Tensor> sums;
    for (size_t o = 0; o < outputs; ++o) {
      Tensor yb = y[o].index({Slice(begin, end)});
      const double loss = double((*impl_->losses[o])(yb, preds[o], Tensor(), loc).item<float>());
      losses[0] += impl_->loss_weights[o] * loss;
      if (outputs > 1) losses.push_back(loss);
      for (Tensor& s : impl_->resolved_metrics[o].batch_sums(yb, preds[o]))
        sums.push_back(std::move(s));
    }
    means.add(end - begin, losses, sums);
  }
  return means.values();
}

std::string SavedModel::summary_text() const {
  // Layers in the order their weights are parameters; the layer is the name's part before '/'.
  std::vector<std::pair<std::string, std::vector<const ir::Value*>>> layers;
  for (size_t i = impl_->num_inputs; i < impl_->graph.params().size(); ++i) {
    const ir::Value* p = impl_->graph.param(i);
    std::string layer = p->name().substr(0, p->name().find('/'));
    if (layers.empty() || layers.back().first != layer) layers.push_back({layer, {}});
    layers.back().second.push_back(p);
  }
  std::string rule(65, '_'), thick(65, '=');
  std::string out = fmt::format("Model: \"{}\" (saved)\n{}\n", impl_->name, rule);
  out += fmt::format("{:<20}{:<35}{:>10}\n", " Layer", "Weights", "Param #");
  out += thick + "\n";
  int64_t total = 0;
  for (size_t l = 0; l < layers.size(); ++l) {
    int64_t params = 0;
    std::vector<std::string> weights;
    for (const ir::Value* p : layers[l].second) {
      params += p->type().shape.num_elements();
      weights.push_back(
          fmt::format("{} {}", p->name().substr(p->name().find('/') + 1), p->type().to_string()));
    }
    total += params;
    out += fmt::format("{:<20}{:<35}{:>10}\n", " " + layers[l].first + " ",
                       fmt::format("{}", fmt::join(weights, ", ")), params);
    out += (l + 1 < layers.size() ? std::string(65, ' ') : thick) + "\n";
  }
  const std::vector<TensorType> types = input_types(), specs = input_specs();
  std::vector<TensorType> output_types;
  for (const ir::Value* v : impl_->graph.outputs())
    output_types.push_back(v->type());
  out +=
      fmt::format("Input{}: {}{}\nOutput{}: {}\nTotal params: {}\n", types.size() == 1 ? "" : "s",
                  types_text(types),
                  specs == types ? std::string()
                                 : fmt::format(" (takes {}: None is any size)", specs_text(specs)),
                  output_types.size() == 1 ? "" : "s", types_text(output_types), total);
  if (!impl_->losses.empty()) {
    const std::vector<std::string> prefixes = output_prefixes(impl_->output_names, num_outputs());
    for (size_t o = 0; o < impl_->losses.size(); ++o) {
      const std::string head =
          num_outputs() == 1
              ? std::string()
              : fmt::format(" ({}, weight {})", prefixes[o].substr(0, prefixes[o].size() - 1),
                            impl_->loss_weights[o]);
      out += fmt::format("Loss{}: {}{}\n", head, impl_->losses[o]->name(),
                         impl_->metrics[o].empty()
                             ? ""
                             : fmt::format("; metrics: {}", fmt::join(impl_->metrics[o], ", ")));
    }
  } else {
    out += "Loss: none (saved before compile())\n";
  }
  out += rule + "\n";
  return out;
}

void SavedModel::summary() const {
  std::cout << summary_text();
}

namespace {

std::string read_text(const std::string& path, const std::source_location& loc) {
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof())
    detail::raise<IOError>("load_model", {}, fmt::format("cannot read {}", path), loc);
  return text;
}

}  // namespace

namespace {

// "a,b" → {"a", "b"}; "" → {}.
std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> out;
  for (size_t begin = 0; begin < text.size();) {
    const size_t end = std::min(text.find(separator, begin), text.size());
    out.push_back(text.substr(begin, end - begin));
    begin = end + 1;
  }
  return out;
}

// The compile() configuration Model::save stored (detail::compile_metadata), if any.
struct CompileConfig {
  std::vector<std::shared_ptr<losses::Loss>> losses;
  std::vector<double> loss_weights;
  std::vector<std::vector<std::string>> metrics;
  std::vector<metrics::MetricList> resolved_metrics;
};

CompileConfig read_compile_config(size_t outputs,
                                  const std::map<std::string, std::string>& metadata,
                                  const std::source_location& loc) {
  CompileConfig impl;
  for (size_t o = 0; o < outputs; ++o) {
    const std::string prefix = outputs == 1 ? "" : fmt::format("output{}.", o);
    std::map<std::string, std::string> loss_config;
    for (const auto& [key, value] : metadata)
      if (key.rfind(prefix + "loss.", 0) == 0) loss_config[key.substr(prefix.size() + 5)] = value;
    if (loss_config.empty()) {
      if (o == 0) return impl;  // saved before compile()
      throw ValueError(fmt::format("output {} has no loss", o));
    }
    impl.losses.push_back(losses::from_config(loss_config, loc));
    double weight = 1.0;
    if (auto it = metadata.find(prefix + "loss_weight"); it != metadata.end()) {
      size_t used = 0;
      try {
        weight = std::stod(it->second, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != it->second.size() || !std::isfinite(weight))
        throw ValueError(fmt::format("loss weight '{}' is not a finite number", it->second));
    }
    impl.loss_weights.push_back(weight);
    auto it = metadata.find(prefix + "metrics");
    impl.metrics.push_back(split(it == metadata.end() ? "" : it->second, ','));
    impl.resolved_metrics.emplace_back(impl.metrics.back(), "load_model", loc,
                                       impl.losses.back().get());
  }
  return impl;
}

}  // namespace

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
  impl->text = read_text(ir_path, loc);
  std::map<std::string, std::string> metadata = safetensors::metadata(weights_path, loc);
  if (auto it = metadata.find("model"); it != metadata.end()) impl->name = it->second;
  // How many of the parameters are inputs (models saved before several inputs: one).
  if (auto it = metadata.find("inputs"); it != metadata.end()) {
    size_t n = 0;
    auto [ptr, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), n);
    if (ec != std::errc() || ptr != it->second.data() + it->second.size() || n == 0 ||
        n > impl->graph.params().size()) {
      detail::raise<ValueError>(
          "load_model", {},
          fmt::format("{} says the model has '{}' inputs, but {} has {} parameters", weights_path,
                      it->second, ir_path, impl->graph.params().size()),
          loc);
    }
    impl->num_inputs = n;
  }
  if (impl->graph.params().empty() || impl->graph.outputs().empty()) {
    detail::raise<ValueError>(
        "load_model", {}, fmt::format("{} must take an input and return a result", ir_path), loc);
  }
  if (auto it = metadata.find("outputs"); it != metadata.end()) {
    impl->output_names = split(it->second, '\n');
    if (impl->output_names.size() != impl->graph.outputs().size()) {
      detail::raise<ValueError>(
          "load_model", {},
          fmt::format("{} names {} outputs, but {} returns {}", weights_path,
                      impl->output_names.size(), ir_path, impl->graph.outputs().size()),
          loc);
    }
  }
  // model.shapes (absent in models saved before it existed: every shape fixed).
  if (const std::string shapes_path = dir + "/model.shapes"; std::filesystem::exists(shapes_path)) {
    std::vector<TensorType> inputs;
    for (size_t i = 0; i < impl->num_inputs; ++i)
      inputs.push_back(impl->graph.param(i)->type());
    try {
      impl->formula =
          detail::read_shapes(read_text(shapes_path, loc), shapes_path, impl->text, inputs);
    } catch (ValueError& e) {
      detail::decorate(e, "load_model", {}, loc);
      throw;
    }
  }
  std::map<std::string, Tensor> loaded;
  for (auto& [name, t] : safetensors::load(weights_path, loc))
    loaded.emplace(name, t);
  std::vector<std::string> problems;
  for (size_t i = impl->num_inputs; i < impl->graph.params().size(); ++i) {
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
  try {
    CompileConfig config = read_compile_config(impl->graph.outputs().size(), metadata, loc);
    impl->losses = std::move(config.losses);
    impl->loss_weights = std::move(config.loss_weights);
    impl->metrics = std::move(config.metrics);
    impl->resolved_metrics = std::move(config.resolved_metrics);
  } catch (ValueError& e) {
    e.add_context(fmt::format("in the compile configuration stored in {}", weights_path));
    throw;
  }
  SavedModel model;
  model.impl_ = std::move(impl);
  return model;
}

}  // namespace kiln
