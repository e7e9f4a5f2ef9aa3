#include "kiln/frontend/keras/saved_model.h"

#include <fmt/format.h>

#include <algorithm>
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
  detail::ShapeFormula formula;         // model.shapes: the free dimensions
  std::vector<ir::HostTensor> weights;  // parameters 1, 2, ...
  std::string name = "saved_model";
  std::shared_ptr<losses::Loss> loss;  // from the saved compile() configuration or compile()
  std::vector<std::string> metrics;    // their names, as saved
  metrics::MetricList resolved_metrics;
  // One compiled function per input shape, compiled on its first call, so that a model loaded
  // only to be looked at or compiled ahead of time costs no JIT compile.
  struct Variant {
    std::once_flag once;
    std::unique_ptr<CompiledFunction> compiled;
  };
  std::mutex variants_mutex;
  std::map<std::vector<int64_t>, std::shared_ptr<Variant>> variants;  // by input shape
  std::vector<Shape> compiled_shapes;  // in the order they were compiled, for messages
};

namespace detail {
std::map<std::string, std::string> compile_metadata(const losses::Loss& loss,
                                                    const std::vector<std::string>& metrics) {
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : loss.get_config())
    out["loss." + key] = value;
  out["metrics"] = fmt::format("{}", fmt::join(metrics, ","));
  return out;
}
}  // namespace detail

const ir::Function& SavedModel::graph() const {
  return impl_->graph;
}

std::span<const ir::HostTensor> SavedModel::weights() const {
  return impl_->weights;
}

const TensorType& SavedModel::input_type() const {
  return impl_->graph.param(0)->type();
}

const std::string& SavedModel::name() const {
  return impl_->name;
}

TensorType SavedModel::input_spec() const {
  TensorType spec = input_type();
  for (const detail::FreeDim& d : impl_->formula.dims)
    spec.shape[d.axis] = kiln::None;
  return spec;
}

bool SavedModel::batch_is_free() const {
  return !impl_->formula.dims.empty() && impl_->formula.dims.front().axis == 0;
}

std::string SavedModel::shape_note() const {
  return impl_->formula.note;
}

namespace {

std::string spec_text(const TensorType& spec) {
  std::vector<std::string> dims;
  for (int64_t d : spec.shape)
    dims.push_back(d == kiln::None ? "None" : std::to_string(d));
  return fmt::format("{}[{}]", ir::dtype_name(spec.dtype), fmt::join(dims, ","));
}

}  // namespace

ir::Function SavedModel::graph_for(const Shape& input_shape, std::source_location loc) const {
  const TensorType spec = input_spec();
  if (input_shape == input_type().shape) return impl_->graph.clone();
  bool fits = input_shape.rank() == spec.shape.rank();
  for (int64_t d = 0; fits && d < spec.shape.rank(); ++d)
    fits = (spec.shape[d] == kiln::None ? input_shape[d] >= 0 : input_shape[d] == spec.shape[d]);
  const TensorType got{spec.dtype, input_shape};
  if (!fits) {
    const bool batch_only = input_shape.rank() == spec.shape.rank() && input_shape.rank() > 0 &&
                            detail::sample_type(got) == detail::sample_type(spec);
    detail::raise<ShapeError>(
        impl_->graph.name(), {},
        fmt::format(
            "the saved model takes {}{}, got {}{}{}", spec_text(spec),
            spec == input_type() ? "" : fmt::format(" (saved as {})", input_type().to_string()),
            got.to_string(),
            impl_->formula.note.empty() ? "" : fmt::format("; {}", impl_->formula.note),
            batch_only ? "; predict() takes any number of samples" : ""),
        loc);
  }
  std::vector<int64_t> sizes;
  for (const detail::FreeDim& d : impl_->formula.dims)
    sizes.push_back(input_shape[d.axis]);
  try {
    ir::Function f = ir::parse(detail::specialise(impl_->text, impl_->formula, sizes));
    // The weights' types never depend on the input's sizes; a sidecar that says otherwise is
    // caught here rather than in the compiled code.
    bool ok = f.params().size() == impl_->graph.params().size() && f.param(0)->type() == got;
    for (size_t i = 1; ok && i < f.params().size(); ++i)
      ok = f.param(i)->type() == impl_->graph.param(i)->type();
    if (!ok) {
      throw ShapeError(fmt::format("model.shapes gives a function of another signature for {}",
                                   got.to_string()));
    }
    return f;
  } catch (const Error& e) {
    detail::raise<ShapeError>(
        impl_->graph.name(), {},
        fmt::format("the saved model cannot take {}: {}", got.to_string(), e.what()), loc);
  }
}

Tensor SavedModel::operator()(const Tensor& x, std::source_location loc) const {
  if (!x.defined())
    detail::raise<ValueError>(impl_->graph.name(), {}, "the input is undefined", loc);
  const TensorType& want = input_type();
  if (x.dtype() != want.dtype) {
    detail::raise<TypeError>(impl_->graph.name(), {x},
                             fmt::format("the saved model takes {}, got {}",
                                         spec_text(input_spec()), x.type().to_string()),
                             loc);
  }
  if (x.shape() != want.shape) {
    // Checks the shape against the free dimensions (ShapeError) before anything is compiled.
    const TensorType spec = input_spec();
    bool fits = x.rank() == spec.shape.rank();
    for (int64_t d = 0; fits && d < spec.shape.rank(); ++d)
      fits = spec.shape[d] == kiln::None || x.shape()[d] == spec.shape[d];
    if (!fits) graph_for(x.shape(), loc);  // throws the ShapeError
  }
  if (x.is_symbolic()) {
    detail::raise<ValueError>(impl_->graph.name(), {x},
                              "a saved model runs on concrete tensors, not inside a trace", loc);
  }
  std::shared_ptr<Impl::Variant> variant;
  {
    std::lock_guard lock(impl_->variants_mutex);
    std::shared_ptr<Impl::Variant>& slot =
        impl_->variants[std::vector<int64_t>(x.shape().begin(), x.shape().end())];
    if (!slot) slot = std::make_shared<Impl::Variant>();
    variant = slot;
  }
  std::call_once(variant->once, [&] {
    ir::Function f = graph_for(x.shape(), loc);
    std::vector<std::string> before;
    {
      std::lock_guard lock(impl_->variants_mutex);
      for (const Shape& s : impl_->compiled_shapes)
        before.push_back(TensorType{want.dtype, s}.to_string());
    }
    // As kiln::function says when it retraces: each new shape costs a compile.
    if (!before.empty()) {
      log_message(fmt::format("recompiling saved model '{}' for input {} (compiled before: {})",
                              impl_->name, x.type().to_string(), fmt::join(before, ", ")));
    }
    std::unique_ptr<CompiledFunction> compiled = kiln::compile(std::move(f));
    std::lock_guard lock(impl_->variants_mutex);
    impl_->compiled_shapes.push_back(x.shape());
    variant->compiled = std::move(compiled);
  });
  std::vector<const ir::HostTensor*> args{&x.host()};
  for (const ir::HostTensor& w : impl_->weights)
    args.push_back(&w);
  ir::EvalResult result = variant->compiled->run(args);
  return Tensor(std::move(result.outputs.at(0)));
}

int64_t SavedModel::predict_batch_size() const {
  const int64_t saved = input_type().shape.rank() > 0 ? input_type().shape[0] : 1;
  return batch_is_free() ? std::max<int64_t>(saved, kPredictBatch) : saved;
}

Tensor SavedModel::predict(const Tensor& x, std::source_location loc) const {
  const TensorType want = input_spec();
  if (!x.defined() || x.rank() == 0 || want.shape.rank() == 0) {
    detail::raise<ValueError>(
        "predict", {x},
        fmt::format("need a batch of samples for a model that takes {}", spec_text(want)), loc);
  }
  const TensorType sample = detail::sample_type(want);
  bool fits = x.rank() == want.shape.rank();
  for (int64_t d = 1; fits && d < x.rank(); ++d)
    fits = want.shape[d] == kiln::None || want.shape[d] == x.shape()[d];
  if (!fits || x.dtype() != want.dtype) {
    detail::raise<ShapeError>(
        "predict", {x},
        fmt::format("the saved model takes samples of {} (here {}), got {}", spec_text(sample),
                    spec_text(detail::with_batch(x.shape()[0], sample)), x.type().to_string()),
        loc);
  }
  int64_t n = x.shape()[0], batch = predict_batch_size();
  if (n == 0 || batch <= 0) {
    detail::raise<ValueError>("predict", {x}, "no samples to predict (or a saved batch of 0)", loc);
  }
  std::vector<Tensor> parts;
  for (int64_t begin = 0; begin < n; begin += batch) {
    int64_t end = std::min(n, begin + batch);
    Tensor rows = x.index({Slice(begin, end)});
    if (end - begin < batch) {
      // One batch size for every call, so predict compiles one function: the last batch is
      // padded with zeros and its rows kept.
      std::vector<std::pair<int64_t, int64_t>> padding(size_t(x.rank()), {0, 0});
      padding[0].second = batch - (end - begin);
      Tensor out = (*this)(pad(rows, padding, 0.0, loc), loc);
      parts.push_back(out.index({Slice(0, end - begin)}));
    } else {
      parts.push_back((*this)(rows, loc));
    }
  }
  return parts.size() == 1 ? parts[0] : concat(parts, 0, loc);
}

void SavedModel::compile(const losses::LossSpec& loss, const std::vector<std::string>& metrics,
                         std::source_location loc) {
  std::shared_ptr<losses::Loss> resolved = loss.resolve(loc);
  metrics::MetricList resolved_metrics(metrics, "SavedModel.compile", loc, resolved.get());
  impl_->loss = std::move(resolved);
  impl_->resolved_metrics = std::move(resolved_metrics);
  impl_->metrics = metrics;
}

std::vector<float> SavedModel::evaluate(const Tensor& x, const Tensor& y,
                                        std::source_location loc) const {
  if (!impl_->loss) {
    detail::raise<ValueError>(
        "evaluate", {},
        fmt::format("saved model '{}' has no loss: it was saved before compile(); call "
                    "compile(loss, metrics) on the loaded model first",
                    impl_->name),
        loc);
  }
  detail::check_data("evaluate", x, y, loc);
  detail::UserSite site(loc);
  // Batch by batch, each batch's mean loss weighted by its size, as Model::evaluate does.
  const int64_t n = x.shape()[0], batch = std::max<int64_t>(1, predict_batch_size());
  metrics::RunningMeans means(impl_->resolved_metrics);
  for (int64_t begin = 0; begin < n; begin += batch) {
    const int64_t end = std::min(n, begin + batch);
    Tensor yb = y.index({Slice(begin, end)});
    Tensor pred = predict(x.index({Slice(begin, end)}), loc);
    double loss = double((*impl_->loss)(yb, pred, Tensor(), loc).item<float>());
    means.add(end - begin, loss, impl_->resolved_metrics.batch_sums(yb, pred));
  }
  return means.values();
}

std::string SavedModel::summary_text() const {
  // Layers in the order their weights are parameters; the layer is the name's part before '/'.
  std::vector<std::pair<std::string, std::vector<const ir::Value*>>> layers;
  for (size_t i = 1; i < impl_->graph.params().size(); ++i) {
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
  out += fmt::format("Input: {}{}\nOutput: {}\nTotal params: {}\n", input_type().to_string(),
                     input_spec() == input_type()
                         ? std::string()
                         : fmt::format(" (takes {}: None is any size)", spec_text(input_spec())),
                     impl_->graph.outputs().at(0)->type().to_string(), total);
  if (impl_->loss) {
    out += fmt::format("Loss: {}{}\n", impl_->loss->name(),
                       impl_->metrics.empty()
                           ? ""
                           : fmt::format("; metrics: {}", fmt::join(impl_->metrics, ", ")));
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
  if (impl->graph.params().empty() || impl->graph.outputs().size() != 1) {
    detail::raise<ValueError>(
        "load_model", {}, fmt::format("{} must take an input and return one result", ir_path), loc);
  }
  // model.shapes (absent in models saved before it existed: every shape fixed).
  if (const std::string shapes_path = dir + "/model.shapes"; std::filesystem::exists(shapes_path)) {
    try {
      impl->formula = detail::read_shapes(read_text(shapes_path, loc), shapes_path, impl->text,
                                          impl->graph.param(0)->type());
    } catch (ValueError& e) {
      detail::decorate(e, "load_model", {}, loc);
      throw;
    }
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
  std::map<std::string, std::string> metadata = safetensors::metadata(weights_path, loc);
  if (auto it = metadata.find("model"); it != metadata.end()) impl->name = it->second;
  // The compile() configuration Model::save stored, if any.
  std::map<std::string, std::string> loss_config;
  for (const auto& [key, value] : metadata)
    if (key.rfind("loss.", 0) == 0) loss_config[key.substr(5)] = value;
  if (!loss_config.empty()) {
    try {
      impl->loss = losses::from_config(loss_config, loc);
      auto it = metadata.find("metrics");
      std::string text = it == metadata.end() ? "" : it->second;
      for (size_t begin = 0; begin < text.size();) {
        size_t end = std::min(text.find(',', begin), text.size());
        impl->metrics.push_back(text.substr(begin, end - begin));
        begin = end + 1;
      }
      impl->resolved_metrics =
          metrics::MetricList(impl->metrics, "load_model", loc, impl->loss.get());
    } catch (ValueError& e) {
      e.add_context(fmt::format("in the compile configuration stored in {}", weights_path));
      throw;
    }
  }
  SavedModel model;
  model.impl_ = std::move(impl);
  return model;
}

}  // namespace kiln
