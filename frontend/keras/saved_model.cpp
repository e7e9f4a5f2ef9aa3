#include "kiln/frontend/keras/saved_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>

#include "kiln/frontend/core/compile.h"
#include "kiln/frontend/core/name_scope.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/ops.h"
#include "kiln/frontend/core/trace.h"
#include "kiln/frontend/formats/safetensors.h"
#include "kiln/frontend/keras/batches.h"
#include "kiln/frontend/keras/metrics.h"
#include "kiln/ir/parser.h"

namespace kiln {

struct SavedModel::Impl {
  ir::Function graph{"saved"};
  std::vector<ir::HostTensor> weights;  // parameters 1, 2, ...
  std::string name = "saved_model";
  std::shared_ptr<losses::Loss> loss;  // from the saved compile() configuration or compile()
  std::vector<std::string> metrics;    // their names, as saved
  metrics::MetricList resolved_metrics;
  // Compiled on the first call, so that a model loaded only to be looked at or compiled ahead
  // of time costs no JIT compile.
  std::once_flag compile_once;
  std::unique_ptr<CompiledFunction> compiled;
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
        fmt::format("the saved model takes {}, got {}{}", want.to_string(), x.type().to_string(),
                    want.shape.rank() > 0 ? "; predict() takes any number of samples" : ""),
        loc);
  }
  if (x.is_symbolic()) {
    detail::raise<ValueError>(impl_->graph.name(), {x},
                              "a saved model runs on concrete tensors, not inside a trace", loc);
  }
  std::vector<const ir::HostTensor*> args{&x.host()};
  for (const ir::HostTensor& w : impl_->weights)
    args.push_back(&w);
  std::call_once(impl_->compile_once,
                 [&] { impl_->compiled = kiln::compile(impl_->graph.clone()); });
  ir::EvalResult result = impl_->compiled->run(args);
  return Tensor(std::move(result.outputs.at(0)));
}

Tensor SavedModel::predict(const Tensor& x, std::source_location loc) const {
  const TensorType& want = input_type();
  if (!x.defined() || x.rank() == 0 || want.shape.rank() == 0) {
    detail::raise<ValueError>(
        "predict", {x},
        fmt::format("need a batch of samples for a model that takes {}", want.to_string()), loc);
  }
  const TensorType sample = detail::sample_type(want);
  if (detail::sample_type(x.type()) != sample) {
    detail::raise<ShapeError>(
        "predict", {x},
        fmt::format("the saved model takes samples of {} (here {}), got {}", sample.to_string(),
                    detail::with_batch(x.shape()[0], sample).to_string(), x.type().to_string()),
        loc);
  }
  int64_t n = x.shape()[0], batch = want.shape[0];
  if (n == 0 || batch <= 0) {
    detail::raise<ValueError>("predict", {x}, "no samples to predict (or a saved batch of 0)", loc);
  }
  std::vector<Tensor> parts;
  for (int64_t begin = 0; begin < n; begin += batch) {
    int64_t end = std::min(n, begin + batch);
    Tensor rows = x.index({Slice(begin, end)});
    if (end - begin < batch) {
      // The saved function has a fixed batch: pad the last one with zeros, keep its rows.
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
  const int64_t n = x.shape()[0], batch = std::max<int64_t>(1, input_type().shape[0]);
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
  out += fmt::format("Input: {}\nOutput: {}\nTotal params: {}\n", input_type().to_string(),
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
