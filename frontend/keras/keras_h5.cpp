// keras_h5: Keras 2's HDF5 weight layout on top of formats/hdf5.h. Loading runs in two halves:
// stage() reads and matches everything in a child process (formats/isolated.h) and sends back
// the values, then the caller assigns them; the child sees only plain descriptions of the
// model's weights, never the Variables.
#include "kiln/frontend/keras/keras_h5.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <map>
#include <optional>

#include "kiln/frontend/core/log.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/variable.h"
#include "kiln/frontend/formats/hdf5.h"
#include "kiln/frontend/formats/isolated.h"

namespace kiln::keras_h5 {

namespace {

constexpr const char* kLoadOp = "load_weights";
// Problems listed in one error before the rest are counted.
constexpr size_t kMaxProblems = 20;
// Room for the warnings in the child's reply.
constexpr size_t kWarningBytes = 1 << 20;

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A model layer as the child needs it: names and the types of its weights in Keras's legacy
// order (trainable, then non-trainable).
struct LayerSpec {
  std::string name;
  // Keras 3's name for the layer's place in the model: snake-case class name and a counter per
  // class ("dense_1" is the second Dense whatever its name).
  std::string keras3_name;
  std::vector<std::string> weight_names;
  std::vector<TensorType> weight_types;
  size_t first = 0;  // index of its first weight in the flat list
  // The weights in creation order (Keras 3's vars/0, vars/1, ...), as indices into the lists
  // above.
  std::vector<size_t> creation;
};

// A layer of the file.
struct SavedLayer {
  std::string name, group;
  std::vector<std::string> weight_names;
};

// What loading decided: a value (or none: skipped or not in the file) per model weight.
struct Staged {
  std::vector<std::string> warnings;
  std::vector<std::optional<ir::HostTensor>> values;
};

std::vector<Variable> legacy_weights(const layers::Layer& layer) {
  std::vector<Variable> out = layer.trainable_weights();
  for (const Variable& v : layer.non_trainable_weights())
    out.push_back(v);
  return out;
}

std::string shape_text(const Shape& s) {
  std::vector<std::string> dims;
  for (int64_t d : s.dims())
    dims.push_back(std::to_string(d));
  return fmt::format("({}{})", fmt::join(dims, ", "), dims.size() == 1 ? "," : "");
}

std::string join_names(const std::vector<std::string>& names) {
  if (names.empty()) return "(none)";
  std::vector<std::string> quoted;
  for (const std::string& n : names)
    quoted.push_back("'" + n + "'");
  return fmt::format("{}", fmt::join(quoted, ", "));
}

std::string child_path(const std::string& group, const std::string& name) {
  return group == "/" ? "/" + name : group + "/" + name;
}

class Stager {
 public:
  Stager(const std::string& path, const std::vector<LayerSpec>& specs, size_t weight_count,
         const std::string& model_name, const LoadWeightsOptions& options, Loc loc)
      : file_(hdf5::File::open(path, kLoadOp, loc)),
        path_(path),
        specs_(specs),
        model_name_(model_name),
        options_(options),
        loc_(loc) {
    staged_.values.resize(weight_count);
  }

  Staged run() {
    std::vector<std::pair<size_t, std::string>> reads;  // flat weight index, dataset
    if (!file_.has_attr("/", "layer_names") && !file_.has_attr("/", "layer_names0") &&
        !file_.has_group("/model_weights") && file_.has_group("/layers")) {
      match_keras3(reads);
      return finish(reads);
    }
    std::string root = find_root();
    check_version(root);
    read_layers(root);
    std::vector<std::pair<size_t, size_t>> pairs =
        options_.by_name ? pairs_by_name() : pairs_by_order();
    for (size_t k = 0; k < pairs.size(); ++k)
      match(k, pairs[k].first, pairs[k].second, reads);
    return finish(reads);
  }

 private:
  // Fails listing the problems, if any; else reads every planned value.
  Staged finish(const std::vector<std::pair<size_t, std::string>>& reads) {
    if (!problems_.empty()) {
      std::vector<std::string> shown(
          problems_.begin(),
          problems_.begin() + static_cast<ptrdiff_t>(std::min(problems_.size(), kMaxProblems)));
      if (problems_.size() > kMaxProblems)
        shown.push_back(fmt::format("... and {} more", problems_.size() - kMaxProblems));
      fail(fmt::format("the weights in '{}' do not fit model '{}'{}; nothing was loaded:\n  {}",
                       path_, model_name_,
                       options_.skip_mismatch ? "" : " (skip_mismatch=true skips them)",
                       fmt::join(shown, "\n  ")));
    }
    for (const auto& [index, dataset] : reads) {
      const LayerSpec& owner = owner_of(index);
      ir::HostTensor value(owner.weight_types[index - owner.first]);
      file_.read(dataset, value);
      staged_.values[index] = std::move(value);
    }
    return std::move(staged_);
  }

  // Keras 3's .weights.h5: walk the model, reading layers/<class>[_k]/vars/<i> for each layer
  // (a missing group is a layer with no variables); other groups of the file are ignored.
  void match_keras3(std::vector<std::pair<size_t, std::string>>& reads) {
    if (options_.by_name) {
      fail(
          fmt::format("'{}' is in Keras 3's .weights.h5 layout, which matches layers by their "
                      "place in the model, not by name (Keras has no by_name for it either)",
                      path_));
    }
    for (const LayerSpec& spec : specs_) {
      std::string group = "/layers/" + spec.keras3_name + "/vars";
      size_t saved = 0;
      if (file_.has_group(group)) {
        std::vector<std::string> children = file_.children(group);
        while (saved < children.size() &&
               std::find(children.begin(), children.end(), std::to_string(saved)) != children.end())
          ++saved;
      }
      std::string which = fmt::format("layer '{}' (model layer '{}')", spec.keras3_name, spec.name);
      if (saved != spec.creation.size()) {
        mismatch(fmt::format("Layer '{}' (model layer '{}') expected {} variables, but received "
                             "{} variables during loading",
                             spec.keras3_name, spec.name, spec.creation.size(), saved),
                 fmt::format("layer '{}'", spec.name));
        continue;
      }
      for (size_t c = 0; c < spec.creation.size(); ++c)
        check_dataset(which, spec, spec.creation[c], group + "/" + std::to_string(c),
                      spec.keras3_name + "/vars/" + std::to_string(c), reads);
    }
  }

  // Checks the dataset for weight i of `spec` (`saved_name` in messages) and plans its read,
  // or notes the problem.
  void check_dataset(const std::string& which, const LayerSpec& spec, size_t i,
                     const std::string& dataset, const std::string& saved_name,
                     std::vector<std::pair<size_t, std::string>>& reads) {
    if (!file_.has_dataset(dataset)) {
      throw_io(fmt::format("'{}' lists weight '{}' for {} but has no dataset {}", path_, saved_name,
                           which, dataset));
    }
    hdf5::DatasetInfo info = file_.dataset_info(dataset);
    const TensorType& want = spec.weight_types[i];
    bool want_float = want.dtype == f32 || want.dtype == f64;
    if (want_float ? !info.is_float : !info.is_integer) {
      problems_.push_back(fmt::format("{}: saved weight '{}' holds {} data, but weight '{}' is {}",
                                      which, saved_name, info.type, spec.weight_names[i],
                                      dtype_name(want.dtype)));
      return;
    }
    if (info.shape != want.shape) {
      mismatch(fmt::format("Shape mismatch in {} for weight '{}'. Weight expects shape {}. "
                           "Received saved weight '{}' with shape {}",
                           which, spec.weight_names[i], shape_text(want.shape), saved_name,
                           shape_text(info.shape)),
               fmt::format("weight '{}'", spec.weight_names[i]));
      return;
    }
    reads.emplace_back(spec.first + i, dataset);
  }

 private:
  [[noreturn]] void fail(std::string message) const {
    detail::raise<ValueError>(kLoadOp, {}, std::move(message), loc_);
  }

  const LayerSpec& owner_of(size_t index) const {
    for (const LayerSpec& s : specs_)
      if (index >= s.first && index < s.first + s.weight_types.size()) return s;
    KILN_CHECK(false, "a weight index outside every layer");
  }

  // The group whose attributes list the layers: the root of a save_weights file, the
  // `model_weights` group of a whole-model file.
  std::string find_root() const {
    if (file_.has_attr("/", "layer_names") || file_.has_attr("/", "layer_names0")) return "/";
    if (file_.has_group("/model_weights")) return "/model_weights";
    fail(
        fmt::format("'{}' is an HDF5 file but not Keras weights: it has no 'layer_names' "
                    "attribute and no 'model_weights' group",
                    path_));
  }

  void check_version(const std::string& root) const {
    std::optional<std::string> version = file_.string_attr(root, "keras_version");
    if (!version && root != "/") version = file_.string_attr("/", "keras_version");
    // Keras reads a missing version as "1" and then converts Keras 1 layouts; Kiln does not.
    if (!version || *version == "1") {
      fail(
          fmt::format("'{}' was saved by Keras 1 ({}), whose weight layouts Kiln does not "
                      "convert; load it in Keras 2 and save it again",
                      path_, version ? "keras_version is '1'" : "it has no keras_version"));
    }
  }

  void read_layers(const std::string& root) {
    std::optional<std::vector<std::string>> listed =
        file_.chunked_string_list_attr(root, "layer_names");
    if (!listed) {
      fail(
          fmt::format("'{}' has a {} group but no 'layer_names' attribute on it: not Keras weights",
                      path_, root));
    }
    std::vector<std::string> names = std::move(*listed);
    for (const std::string& name : names) {
      SavedLayer layer;
      layer.name = name;
      layer.group = child_path(root, name);
      if (name.empty() || !file_.has_group(layer.group)) {
        throw_io(fmt::format("'{}' lists layer '{}' in layer_names but has no group {} for it",
                             path_, name, layer.group));
      }
      layer.weight_names = file_.chunked_string_list_attr(layer.group, "weight_names")
                               .value_or(std::vector<std::string>{});
      saved_.push_back(std::move(layer));
    }
  }

  [[noreturn]] void throw_io(std::string message) const {
    detail::raise<IOError>(kLoadOp, {}, std::move(message), loc_);
  }

  // Keras's default: the k-th model layer with weights gets the k-th saved layer with weights.
  std::vector<std::pair<size_t, size_t>> pairs_by_order() const {
    std::vector<size_t> model, saved;
    std::vector<std::string> model_names, saved_names;
    for (size_t i = 0; i < specs_.size(); ++i) {
      if (specs_[i].weight_types.empty()) continue;
      model.push_back(i);
      model_names.push_back(specs_[i].name);
    }
    for (size_t i = 0; i < saved_.size(); ++i) {
      if (saved_[i].weight_names.empty()) continue;
      saved.push_back(i);
      saved_names.push_back(saved_[i].name);
    }
    if (model.size() != saved.size()) {
      fail(
          fmt::format("Layer count mismatch when loading weights from file '{}'. Model '{}' "
                      "expected {} layers, found {} saved layers (layers with weights, matched "
                      "by order; by_name=true matches by name).\n  model: {}\n  file: {}",
                      path_, model_name_, model.size(), saved.size(), join_names(model_names),
                      join_names(saved_names)));
    }
    std::vector<std::pair<size_t, size_t>> pairs;
    for (size_t k = 0; k < model.size(); ++k)
      pairs.emplace_back(model[k], saved[k]);
    return pairs;
  }

  // by_name: every model layer named like a saved layer gets it; the others keep their values.
  std::vector<std::pair<size_t, size_t>> pairs_by_name() const {
    std::vector<std::pair<size_t, size_t>> pairs;
    bool any_weights = false, matched_weights = false;
    for (const LayerSpec& spec : specs_)
      any_weights = any_weights || !spec.weight_types.empty();
    for (size_t s = 0; s < saved_.size(); ++s) {
      for (size_t m = 0; m < specs_.size(); ++m) {
        if (specs_[m].name != saved_[s].name) continue;
        pairs.emplace_back(m, s);
        matched_weights = matched_weights || !specs_[m].weight_types.empty();
      }
    }
    if (any_weights && !matched_weights) {
      std::vector<std::string> model_names, saved_names;
      for (const LayerSpec& spec : specs_)
        if (!spec.weight_types.empty()) model_names.push_back(spec.name);
      for (const SavedLayer& layer : saved_)
        if (!layer.weight_names.empty()) saved_names.push_back(layer.name);
      fail(
          fmt::format("by_name matched no layer of model '{}' that has weights to layers of "
                      "'{}', so nothing would be loaded (by_name=false matches by order).\n  "
                      "model: {}\n  file: {}",
                      model_name_, path_, join_names(model_names), join_names(saved_names)));
    }
    return pairs;
  }

  void mismatch(std::string message, std::string skip_note) {
    if (options_.skip_mismatch) {
      staged_.warnings.push_back(fmt::format("load_weights: skipping {}: {}", skip_note, message));
    } else {
      problems_.push_back(std::move(message));
    }
  }

  // Pair k: model layer m with saved layer s.
  void match(size_t k, size_t m, size_t s, std::vector<std::pair<size_t, std::string>>& reads) {
    const LayerSpec& spec = specs_[m];
    const SavedLayer& saved = saved_[s];
    std::string which = options_.by_name
                            ? fmt::format("layer '{}'", spec.name)
                            : fmt::format(
                                  "layer #{} (named '{}' in the current model, '{}' in the "
                                  "save file)",
                                  k, spec.name, saved.name);
    if (spec.weight_types.size() != saved.weight_names.size()) {
      mismatch(fmt::format("Weight count mismatch for {}. Layer expects {} weight(s). Received "
                           "{} saved weight(s)",
                           which, spec.weight_types.size(), saved.weight_names.size()),
               fmt::format("layer '{}'", spec.name));
      return;
    }
    for (size_t i = 0; i < saved.weight_names.size(); ++i) {
      if (saved.weight_names[i].empty()) {
        throw_io(fmt::format("'{}' lists an empty weight name for layer '{}'", path_, saved.name));
      }
      check_dataset(which, spec, i, child_path(saved.group, saved.weight_names[i]),
                    saved.weight_names[i], reads);
    }
  }

  hdf5::File file_;
  std::string path_;
  const std::vector<LayerSpec>& specs_;
  std::string model_name_;
  LoadWeightsOptions options_;
  Loc loc_;
  std::vector<SavedLayer> saved_;
  std::vector<std::string> problems_;
  Staged staged_;
};

// The child's reply: [u32 warning count][u32 length, bytes]... then per weight [u8 present]
// [the value's bytes].
void put_u32(std::string& out, uint32_t v) {
  out.append(reinterpret_cast<const char*>(&v), 4);
}

std::string encode(const Staged& staged) {
  std::string out;
  put_u32(out, static_cast<uint32_t>(staged.warnings.size()));
  for (const std::string& w : staged.warnings) {
    put_u32(out, static_cast<uint32_t>(w.size()));
    out += w;
  }
  for (const std::optional<ir::HostTensor>& v : staged.values) {
    out += v ? '\1' : '\0';
    if (v) out.append(reinterpret_cast<const char*>(v->raw()), v->nbytes());
  }
  return out;
}

// Decodes the reply against the types the parent knows; a malformed reply is an IOError.
Staged decode(const std::string& reply, const std::vector<TensorType>& types,
              const std::string& path, Loc loc) {
  size_t at = 0;
  auto bad = [&]() {
    detail::raise<IOError>(
        kLoadOp, {}, fmt::format("reading '{}': the reading process's reply is malformed", path),
        loc);
  };
  auto take = [&](size_t n) {
    if (reply.size() - at < n) bad();
    const char* p = reply.data() + at;
    at += n;
    return p;
  };
  auto u32 = [&]() {
    uint32_t v;
    std::memcpy(&v, take(4), 4);
    return v;
  };
  Staged staged;
  uint32_t warnings = u32();
  for (uint32_t i = 0; i < warnings; ++i) {
    uint32_t n = u32();
    staged.warnings.emplace_back(take(n), n);
  }
  for (const TensorType& type : types) {
    char present = *take(1);
    if (present == '\0') {
      staged.values.emplace_back();
      continue;
    }
    ir::HostTensor value(type);
    std::memcpy(value.raw(), take(value.nbytes()), value.nbytes());
    staged.values.emplace_back(std::move(value));
  }
  if (at != reply.size()) bad();
  return staged;
}

// Keras's to_snake_case: "Conv2D" → "conv2d", "BatchNormalization" → "batch_normalization",
// "MaxPooling2D" → "max_pooling2d" (its two regular expressions, applied left to right).
std::string snake_case(const std::string& class_name) {
  std::string name;
  for (char c : class_name)
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') name += c;
  auto upper = [](char c) { return c >= 'A' && c <= 'Z'; };
  auto lower = [](char c) { return c >= 'a' && c <= 'z'; };
  // (.)([A-Z][a-z]+) → \1_\2
  std::string a;
  for (size_t p = 0; p < name.size();) {
    if (p + 2 < name.size() && upper(name[p + 1]) && lower(name[p + 2])) {
      size_t end = p + 3;
      while (end < name.size() && lower(name[end]))
        ++end;
      a += name[p];
      a += '_';
      a += name.substr(p + 1, end - p - 1);
      p = end;
    } else {
      a += name[p++];
    }
  }
  // ([a-z])([A-Z]) → \1_\2
  std::string b;
  for (size_t p = 0; p < a.size();) {
    if (p + 1 < a.size() && lower(a[p]) && upper(a[p + 1])) {
      b += a[p];
      b += '_';
      b += a[p + 1];
      p += 2;
    } else {
      b += a[p++];
    }
  }
  for (char& c : b)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return b;
}

// Keras 3's names for the layers' places: snake-case class name, "_k" from the second of a class.
std::vector<std::string> keras3_layer_names(
    const std::vector<std::shared_ptr<layers::Layer>>& layers) {
  std::map<std::string, int> counts;
  std::vector<std::string> names;
  for (const std::shared_ptr<layers::Layer>& layer : layers) {
    std::string base = snake_case(layer->class_name());
    int n = counts[base]++;
    names.push_back(n == 0 ? base : fmt::format("{}_{}", base, n));
  }
  return names;
}

// Keras 3's .weights.h5: layers/<name>/vars/<i> in creation order, an (empty) vars group for
// every layer and for the model itself, as the newest Keras writes.
void save_keras3(const std::string& path, const std::vector<std::shared_ptr<layers::Layer>>& layers,
                 Loc loc) {
  const char* op = "save_weights";
  std::vector<std::string> names = keras3_layer_names(layers);
  hdf5::File file = hdf5::File::create(path, op, loc);
  for (size_t l = 0; l < layers.size(); ++l) {
    std::string group = "/layers/" + names[l] + "/vars";
    file.create_group(group);
    std::vector<Variable> weights = layers[l]->weights();
    for (size_t i = 0; i < weights.size(); ++i) {
      ir::HostTensor value = detail::VariableAccess::host_copy(weights[i], op, loc);
      file.write_dataset(group + "/" + std::to_string(i), value);
    }
  }
  file.create_group("/vars");
  file.commit();
}

}  // namespace

bool writes_h5(const std::string& path) {
  return ends_with(path, ".h5") || ends_with(path, ".hdf5");
}

bool reads_h5(const std::string& path) {
  return writes_h5(path) || hdf5::has_signature(path);
}

namespace {

// load_weights, reading the file in a child process when `isolate`.
void load(const std::string& path, const std::vector<std::shared_ptr<layers::Layer>>& layers,
          const std::string& model_name, const LoadWeightsOptions& options, Loc loc, bool isolate) {
  std::vector<LayerSpec> specs;
  std::vector<Variable> vars;
  std::vector<TensorType> types;
  size_t reply_bytes = sizeof(uint32_t) + kWarningBytes;
  std::vector<std::string> keras3_names = keras3_layer_names(layers);
  for (size_t l = 0; l < layers.size(); ++l) {
    const layers::Layer& layer = *layers[l];
    LayerSpec spec;
    spec.name = layer.name();
    spec.keras3_name = keras3_names[l];
    spec.first = vars.size();
    std::vector<Variable> legacy = legacy_weights(layer);
    for (const Variable& v : legacy) {
      spec.weight_names.push_back(v.name());
      spec.weight_types.push_back(v.type());
      types.push_back(v.type());
      vars.push_back(v);
      reply_bytes += 1 + v.type().nbytes();
    }
    for (const Variable& v : layer.weights()) {
      for (size_t i = 0; i < legacy.size(); ++i)
        if (legacy[i].is(v)) spec.creation.push_back(i);
    }
    specs.push_back(std::move(spec));
  }
  detail::IsolationLimits limits;
  limits.max_reply_bytes = reply_bytes;
  // A minute, and a second more per 100 MB of weights (libhdf5 reads fast; a loop is a hang).
  limits.timeout = std::chrono::milliseconds(60'000 + static_cast<int64_t>(reply_bytes / 100'000));
  auto work = [&] {
    return encode(Stager(path, specs, vars.size(), model_name, options, loc).run());
  };
  // In process, the reply still goes through encode and decode: only the fork is skipped.
  std::string reply =
      isolate ? detail::run_isolated(work, limits, fmt::format("reading '{}'", path), kLoadOp, loc)
              : work();
  Staged staged = decode(reply, types, path, loc);
  for (const std::string& w : staged.warnings)
    log_message(LogLevel::warning, w);
  // Everything is read and checked: only now do the weights change.
  for (size_t i = 0; i < vars.size(); ++i) {
    if (!staged.values[i]) continue;
    if (vars[i].device().is_cpu()) {
      vars[i].assign(Tensor(*staged.values[i]), loc);
    } else {
      detail::VariableAccess::set_host(vars[i], std::move(*staged.values[i]), loc);
    }
  }
}

}  // namespace

void load_weights(const std::string& path,
                  const std::vector<std::shared_ptr<layers::Layer>>& layers,
                  const std::string& model_name, const LoadWeightsOptions& options, Loc loc) {
  load(path, layers, model_name, options, loc, /*isolate=*/true);
}

void save_weights(const std::string& path,
                  const std::vector<std::shared_ptr<layers::Layer>>& layers, Loc loc) {
  const char* op = "save_weights";
  if (ends_with(path, ".weights.h5")) {
    save_keras3(path, layers, loc);
    return;
  }
  std::vector<std::string> names;
  for (const std::shared_ptr<layers::Layer>& layer : layers)
    names.push_back(layer->name());
  std::vector<std::shared_ptr<layers::Layer>> sorted = layers;
  // Keras makes the groups in name order; only layer_names carries the model's order.
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a->name() < b->name(); });
  hdf5::File file = hdf5::File::create(path, op, loc);
  file.write_string_list_attr("/", "layer_names", names);
  file.write_string_attr("/", "backend", "tensorflow");
  file.write_string_attr("/", "keras_version", kKerasVersion);
  for (const std::shared_ptr<layers::Layer>& layer : sorted) {
    std::string group = "/" + layer->name();
    file.create_group(group);
    std::vector<Variable> weights = legacy_weights(*layer);
    std::vector<std::string> weight_names;
    for (const Variable& v : weights)
      weight_names.push_back(v.name() + ":0");
    file.write_string_list_attr(group, "weight_names", weight_names);
    for (size_t i = 0; i < weights.size(); ++i) {
      ir::HostTensor value = detail::VariableAccess::host_copy(weights[i], op, loc);
      file.write_dataset(group + "/" + weight_names[i], value);
    }
  }
  // Recent Keras always writes this group for the model's own weights (none here).
  file.create_group("/top_level_model_weights");
  file.write_string_list_attr("/top_level_model_weights", "weight_names", {});
  file.commit();
}

}  // namespace kiln::keras_h5

void kiln::detail::keras_h5_load_weights_in_process(
    const std::string& path, const std::vector<std::shared_ptr<layers::Layer>>& layers,
    const std::string& model_name, const LoadWeightsOptions& options, Loc loc) {
  keras_h5::load(path, layers, model_name, options, loc, /*isolate=*/false);
}
