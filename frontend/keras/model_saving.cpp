// Model::save_weights, load_weights (safetensors; Keras .h5 files in keras_h5.cpp) and save (the
// inference function and its weights).
#include <fmt/format.h>

#include <filesystem>
#include <map>

#include "kiln/frontend/core/function.h"
#include "kiln/frontend/core/log.h"
#include "kiln/frontend/core/name_scope.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/ops.h"
#include "kiln/frontend/core/trace.h"
#include "kiln/frontend/formats/atomic_file.h"
#include "kiln/frontend/formats/safetensors.h"
#include "kiln/frontend/keras/batches.h"
#include "kiln/frontend/keras/functional.h"
#include "kiln/frontend/keras/keras_h5.h"
#include "kiln/frontend/keras/model.h"
#include "kiln/frontend/keras/model_compiled.h"
#include "kiln/frontend/keras/shape_generic.h"
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
  dry_run(detail::concrete_type(detail::with_batch(1, *spec)), std::nullopt, loc);
  return weights();
}

void Model::save_weights(const std::string& path, std::source_location loc) const {
  if (keras_h5::writes_h5(path)) {
    const_cast<Model*>(this)->built_weights("save_weights", loc);
    keras_h5::save_weights(path, layers_, loc);
    return;
  }
  std::vector<std::pair<std::string, Tensor>> named;
  for (const Variable& v : const_cast<Model*>(this)->built_weights("save_weights", loc))
    named.emplace_back(v.name(), v.value());
  // The model's order of the weights, so a copy of the model whose layers are named differently
  // (dense_4 instead of dense) can load the file by position, as Keras 3 matches.
  std::vector<std::string> order;
  for (const auto& [name, value] : named)
    order.push_back(name);
  safetensors::save(path, named,
                    {{"format", "kiln"},
                     {"model", name_},
                     {"weight_order", fmt::format("{}", fmt::join(order, "\n"))}},
                    loc);
}

void Model::load_weights(const std::string& path, const LoadWeightsOptions& options,
                         std::source_location loc) {
  std::vector<Variable> vars = built_weights("load_weights", loc);
  if (keras_h5::reads_h5(path)) {
    keras_h5::load_weights(path, layers_, name_, options, loc);
    return;
  }
  if (options.by_name || options.skip_mismatch) {
    detail::raise<ValueError>(
        "load_weights", {},
        fmt::format("by_name and skip_mismatch apply to Keras .h5 files only; '{}' is not one",
                    path),
        loc);
  }
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
  std::vector<Tensor> values;
  if (problems.empty()) {
    std::map<std::string, Tensor> all(loaded.begin(), loaded.end());
    for (const Variable& v : vars)
      values.push_back(all.at(v.name()));
  } else {
    // Not by name: by position, as Keras 3 matches, when the file records its order (a second
    // copy of the model in one process has its layers named dense_4, ... instead of dense).
    std::map<std::string, std::string> meta = safetensors::metadata(path, loc);
    auto order_it = meta.find("weight_order");
    std::vector<std::string> position_problems;
    if (order_it == meta.end()) {
      position_problems.push_back("the file does not record its weights' order");
    } else {
      std::vector<std::string> order;
      const std::string& text = order_it->second;
      for (size_t start = 0;;) {
        size_t nl = text.find('\n', start);
        order.push_back(text.substr(start, nl - start));
        if (nl == std::string::npos) break;
        start = nl + 1;
      }
      std::map<std::string, Tensor> all(loaded.begin(), loaded.end());
      if (order.size() != vars.size() || order.size() != loaded.size()) {
        position_problems.push_back(
            fmt::format("the file has {} weights, the model {}", loaded.size(), vars.size()));
      } else {
        for (size_t i = 0; i < vars.size(); ++i) {
          auto it = all.find(order[i]);
          if (it == all.end()) {
            position_problems.push_back(
                fmt::format("weight {} ('{}') is not in the file", i, order[i]));
          } else if (it->second.type() != vars[i].type()) {
            position_problems.push_back(
                fmt::format("weight {} is {} in the file ('{}') but {} in the model ('{}')", i,
                            it->second.type().to_string(), order[i], vars[i].type().to_string(),
                            vars[i].name()));
          } else {
            values.push_back(it->second);
          }
        }
      }
    }
    if (!position_problems.empty()) {
      detail::raise<ValueError>(
          "load_weights", {},
          fmt::format("'{}' does not match model '{}' by name ({}) nor by position ({})", path,
                      name_, fmt::join(problems, "; "), fmt::join(position_problems, "; ")),
          loc);
    }
  }
  for (size_t i = 0; i < vars.size(); ++i) {
    Variable& v = vars[i];
    const Tensor& value = values[i];
    if (v.device().is_cpu()) {
      v.assign(value, loc);
    } else {
      // Straight from the file's host copy into the variable's device (assign would refuse a
      // host value, and .to() then assign would copy twice).
      detail::VariableAccess::set_host(v, value.host(), loc);
    }
  }
}

namespace {

// Which of the model's input dimensions a saved model takes at any size (the batch, shared by
// every input, and each k::None dimension of a sample), and how the function's literals follow
// them (shape_generic.h). A None sample dimension that is not generic is a ValueError; a batch
// that is not, a warning and a fixed batch.
detail::ShapeFormula generalise_shapes(
    const std::string& model, const std::vector<TensorType>& specs,
    const std::vector<TensorType>& saved_types, const std::string& text,
    const std::function<ir::Function(const std::vector<TensorType>&)>& trace_at,
    const std::source_location& loc) {
  std::vector<detail::FreeDim> dims{{0, saved_types[0].shape[0], 0}};
  std::vector<std::string> names{"the batch"};
  for (size_t i = 0; i < specs.size(); ++i) {
    for (int64_t axis = 1; axis < saved_types[i].shape.rank(); ++axis) {
      if (specs[i].shape[axis - 1] != kiln::None) continue;
      dims.push_back({axis, saved_types[i].shape[axis], i});
      names.push_back(specs.size() == 1 ? fmt::format("input dimension {} (None in {})", axis,
                                                      detail::shape_text(specs[i].shape))
                                        : fmt::format("dimension {} of input {} (None in {})", axis,
                                                      i, detail::shape_text(specs[i].shape)));
    }
  }
  auto run = [&](const std::vector<detail::FreeDim>& free, const std::vector<std::string>& named) {
    auto trace_text = [&](std::span<const int64_t> sizes) {
      std::vector<TensorType> types = saved_types;
      for (size_t d = 0; d < free.size(); ++d) {
        if (free[d].axis == 0) {
          for (TensorType& type : types)
            type.shape[0] = sizes[d];  // the batch is every input's
        } else {
          types[free[d].input].shape[free[d].axis] = sizes[d];
        }
      }
      return ir::print(trace_at(types));
    };
    try {
      return detail::generalise(trace_text, free, named, text);
    } catch (ValueError& e) {
      detail::decorate(e, "save", {}, loc);
      throw;
    }
  };
  std::vector<std::string> spec_texts;
  for (const TensorType& spec : specs)
    spec_texts.push_back(detail::shape_text(spec.shape));
  const std::string shown = fmt::format("{}", fmt::join(spec_texts, " and "));
  detail::Generalised found = run(dims, names);
  std::string batch_reason;
  for (const auto& [d, reason] : found.not_free) {
    if (d == 0) {
      batch_reason = reason;
      continue;
    }
    detail::raise<ValueError>(
        "save", {},
        fmt::format("model '{}' takes samples of shape {}, but its function cannot be saved for "
                    "every size of {}: {}. Declare that size in the input shape to save the "
                    "model at it",
                    model, shown, names[d], reason),
        loc);
  }
  if (batch_reason.empty()) return found.formula;
  // The batch stays fixed; the sample's None dimensions may still be free.
  dims.erase(dims.begin());
  names.erase(names.begin());
  found = run(dims, names);
  for (const auto& [d, reason] : found.not_free) {
    detail::raise<ValueError>(
        "save", {},
        fmt::format("model '{}' cannot be saved for every size of {}: {}", model, names[d], reason),
        loc);
  }
  const int64_t batch = saved_types[0].shape[0];
  found.formula.note = fmt::format("the batch is fixed at {}: {}", batch, batch_reason);
  log_message(LogLevel::warning, fmt::format("model '{}' is saved for batches of {} only: {}",
                                             model, batch, batch_reason));
  return found.formula;
}

}  // namespace

void Model::save(const std::string& dir, int64_t batch_size, std::source_location loc) {
  detail::UserSite site(loc);
  if (batch_size <= 0)
    detail::raise<ValueError>("save", {},
                              fmt::format("batch_size must be positive, got {}", batch_size), loc);
  std::vector<Variable> vars = built_weights("save", loc);
  // Each input's sample type: a functional model's k::Inputs, else the declared or seen one.
  std::vector<TensorType> specs;
  if (graph_) {
    for (const KerasTensor& in : graph_->inputs())
      specs.push_back(detail::sample_type(TensorType{in.dtype(), in.shape()}));
  } else if (std::optional<TensorType> spec = input_spec()) {
    specs.push_back(*spec);
  } else {
    detail::raise<ValueError>("save", {},
                              fmt::format("model '{}' does not know its input shape: call it on "
                                          "data first, or declare input_shape on its first layer",
                                          name_),
                              loc);
  }
  // The inference function traced at `types` without running it (symbolic inputs, no compile).
  std::function<std::vector<Tensor>(const std::vector<Tensor>&, bool)> forward = forward_all();
  auto trace_at = [&](const std::vector<TensorType>& types) {
    detail::Trace trace(name_ + "_inference", {});
    detail::TraceScope scope(trace);
    std::vector<Tensor> args;
    for (const TensorType& type : types)
      args.push_back(trace.add_argument(type));
    std::vector<Tensor> ys = forward(args, false);
    trace.finish(ys);
    return std::move(trace.function());
  };
  // The default specialisation: model.kiln. A k::None sample dimension takes the stand-in size
  // the layers were built with.
  std::vector<TensorType> saved_types;
  for (const TensorType& spec : specs)
    saved_types.push_back(detail::concrete_type(detail::with_batch(batch_size, spec)));
  const ir::Function graph = trace_at(saved_types);
  const std::string text = ir::print(graph);
  detail::ShapeFormula formula = generalise_shapes(name_, specs, saved_types, text, trace_at, loc);
  std::map<std::string, Variable> by_name;
  for (const Variable& v : vars)
    by_name.emplace(v.name(), v);
  std::vector<std::pair<std::string, Tensor>> named;
  for (size_t i = specs.size(); i < graph.params().size(); ++i) {
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
  // How many parameters are inputs, the outputs' names, and the compile() configuration, so that
  // load_model can evaluate.
  std::map<std::string, std::string> metadata{
      {"format", "kiln"}, {"model", name_}, {"inputs", std::to_string(specs.size())}};
  if (graph_ && graph_->outputs().size() > 1) {
    std::vector<std::string> outputs;
    for (const KerasTensor& out : graph_->outputs())
      outputs.push_back(out.layer()->name());
    metadata["outputs"] = fmt::format("{}", fmt::join(outputs, "\n"));
  }
  if (compiled_) {
    metadata.merge(detail::compile_metadata(compiled_->losses, compiled_->metric_names,
                                            compiled_->loss_weights));
  }
  safetensors::save(dir + "/weights.safetensors", named, metadata, loc);
  detail::write_file_atomically(dir + "/model.kiln", text, "save", loc);
  detail::write_file_atomically(dir + "/model.shapes", detail::write_shapes(formula), "save", loc);
}

}  // namespace kiln
