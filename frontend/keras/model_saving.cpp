// Model::save_weights, load_weights and save (the inference function and its weights).
#include <fmt/format.h>

#include <filesystem>
#include <map>

#include "kiln/frontend/core/function.h"
#include "kiln/frontend/core/name_scope.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/ops.h"
#include "kiln/frontend/formats/atomic_file.h"
#include "kiln/frontend/formats/safetensors.h"
#include "kiln/frontend/keras/batches.h"
#include "kiln/frontend/keras/model.h"
#include "kiln/frontend/keras/model_compiled.h"
#include "kiln/ir/printer.h"

namespace kiln {

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
  dry_run(detail::with_batch(1, *spec), std::nullopt, loc);
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
  for (Variable& v : vars) {
    const Tensor& value = values.at(v.name());
    if (v.device().is_cpu()) {
      v.assign(value, loc);
    } else {
      // Straight from the file's host copy into the variable's device (assign would refuse a
      // host value, and .to() then assign would copy twice).
      detail::VariableAccess::set_host(v, value.host(), loc);
    }
  }
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
  // The example batch lives where the weights do, as a traced function's tensors must.
  Tensor example = zeros(detail::with_batch(batch_size, *spec).shape, spec->dtype, loc);
  if (!vars.empty()) example = example.to(vars.front().device(), loc);
  const ir::Function& graph = inference.graph(example);

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
  if (compiled_)
    metadata.merge(detail::compile_metadata(*compiled_->loss, compiled_->metric_names));
  safetensors::save(dir + "/weights.safetensors", named, metadata, loc);
  detail::write_file_atomically(dir + "/model.kiln", ir::print(graph), "save", loc);
}

}  // namespace kiln
