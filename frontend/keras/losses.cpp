// The Keras losses of losses.h, composed from frontend ops only (no value is read in C++ except
// the eager range check of sparse labels), so the same code runs eagerly, traces and
// differentiates.
#include "kiln/frontend/keras/losses.h"

#include <charconv>
#include <cmath>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "kiln/frontend/core/apply.h"
#include "kiln/frontend/core/name_scope.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/ops.h"
#include "kiln/frontend/keras/metrics.h"

namespace kiln::losses {

namespace {

// Keras's backend epsilon, the clip margin of the probability forms.
constexpr double kEpsilon = 1e-7;

std::string op_name(const char* loss) {
  return fmt::format("losses.{}", loss);
}

void check_defined(const char* loss, const Tensor& y_true, const Tensor& y_pred, const Loc& loc) {
  if (!y_true.defined() || !y_pred.defined()) {
    detail::raise<ValueError>(op_name(loss), {}, "y_true and y_pred must be defined tensors", loc);
  }
  if (!ir::is_floating(y_pred.dtype())) {
    detail::raise<TypeError>(op_name(loss), {y_true, y_pred},
                             fmt::format("y_pred must be floating (f32 or f64), got {}",
                                         ir::dtype_long_name(y_pred.dtype())),
                             loc);
  }
}

// The class (or reduction) axis of y_pred, normalized; ShapeError naming the loss otherwise.
int64_t class_axis(const char* loss, const Tensor& y_true, const Tensor& y_pred, int64_t axis,
                   const Loc& loc) {
  int64_t rank = y_pred.rank();
  if (rank == 0) {
    detail::raise<ShapeError>(op_name(loss), {y_true, y_pred},
                              "y_pred must have at least one dimension (the axis the loss reduces "
                              "over), got shape ()",
                              loc);
  }
  if (axis < -rank || axis >= rank) {
    detail::raise<ShapeError>(op_name(loss), {y_true, y_pred},
                              fmt::format("axis {} is out of range for y_pred of shape {}", axis,
                                          y_pred.shape().to_string()),
                              loc);
  }
  return axis < 0 ? axis + rank : axis;
}

// Keras's squeeze_or_expand_to_same_rank: when the ranks differ by one and the longer shape ends
// in 1, that 1 is squeezed away, or the shorter one (if rank 1) gets a trailing 1.
void match_ranks(Tensor& a, Tensor& b, const Loc& loc) {
  if (a.rank() == b.rank() + 1 && a.shape().dims().back() == 1) {
    if (b.rank() == 1)
      b = expand_dims(b, -1, loc);
    else
      a = squeeze(a, -1, loc);
  } else if (b.rank() == a.rank() + 1 && b.shape().dims().back() == 1) {
    if (a.rank() == 1)
      a = expand_dims(a, -1, loc);
    else
      b = squeeze(b, -1, loc);
  }
}

// y_true and y_pred with their ranks matched (match_ranks) and equal shapes, y_true cast to
// y_pred's dtype. `same_rank_only` skips the rank fix-up (the categorical losses).
std::pair<Tensor, Tensor> labels_like(const char* loss, const Tensor& y_true, const Tensor& y_pred,
                                      const Loc& loc, bool same_rank_only = false) {
  check_defined(loss, y_true, y_pred, loc);
  Tensor y = y_true, p = y_pred;
  if (!same_rank_only) match_ranks(y, p, loc);
  if (y.shape() != p.shape()) {
    detail::raise<ShapeError>(op_name(loss), {y_true, y_pred},
                              fmt::format("y_true has shape {} but y_pred has shape {}; they must "
                                          "be equal",
                                          y_true.shape().to_string(), y_pred.shape().to_string()),
                              loc);
  }
  class_axis(loss, y_true, p, -1, loc);
  return {cast(y, p.dtype(), loc), p};
}

Tensor clip(const Tensor& p, const Loc& loc) {
  return minimum(maximum(p, kEpsilon, loc), 1.0 - kEpsilon, loc);
}

void check_smoothing(const char* loss, double label_smoothing, const Loc& loc) {
  if (!(label_smoothing >= 0.0 && label_smoothing <= 1.0)) {
    detail::raise<ValueError>(
        op_name(loss), {},
        fmt::format("label_smoothing must be in [0, 1], got {}", label_smoothing), loc);
  }
}

}  // namespace

Tensor mean_squared_error(const Tensor& y_true, const Tensor& y_pred, Loc loc) {
  auto [y, p] = labels_like("mean_squared_error", y_true, y_pred, loc);
  return reduce_mean(square(subtract(p, y, loc), loc), -1, false, loc);
}

Tensor mean_absolute_error(const Tensor& y_true, const Tensor& y_pred, Loc loc) {
  auto [y, p] = labels_like("mean_absolute_error", y_true, y_pred, loc);
  return reduce_mean(abs(subtract(p, y, loc), loc), -1, false, loc);
}

Tensor binary_crossentropy(const Tensor& y_true, const Tensor& y_pred, bool from_logits,
                           double label_smoothing, Loc loc) {
  check_smoothing("binary_crossentropy", label_smoothing, loc);
  auto [y, x] = labels_like("binary_crossentropy", y_true, y_pred, loc);
  if (label_smoothing > 0)
    y = add(multiply(y, 1.0 - label_smoothing, loc), 0.5 * label_smoothing, loc);
  Tensor per_element;
  if (from_logits) {
    // max(x, 0) − x·y + log(1 + e^−|x|), which never overflows. max(x, 0) and −|x| are written
    // as selects on one condition so that at x = 0 the gradient is σ(0) − y, not −y (relu and
    // abs both have slope 0 there).
    Tensor nonneg = greater_equal(x, 0, loc);
    Tensor relu_x = where(nonneg, x, 0, loc);
    Tensor neg_abs_x = where(nonneg, neg(x, loc), x, loc);
    per_element = add(subtract(relu_x, multiply(x, y, loc), loc), softplus(neg_abs_x, loc), loc);
  } else {
    Tensor p = clip(x, loc);
    Tensor pos = multiply(y, log(p, loc), loc);
    Tensor neg_part = multiply(subtract(1.0, y, loc), log(subtract(1.0, p, loc), loc), loc);
    per_element = neg(add(pos, neg_part, loc), loc);
  }
  return reduce_mean(per_element, -1, false, loc);
}

namespace {

// log p along `axis`: log_softmax of logits, or of probabilities normalized to sum to 1 along it
// and clipped to [eps, 1 − eps] (Keras's probability form).
Tensor log_probabilities(const Tensor& y_pred, bool from_logits, int64_t axis, const Loc& loc) {
  if (from_logits) return log_softmax(y_pred, axis, loc);
  Tensor normalized = divide(y_pred, reduce_sum(y_pred, axis, true, loc), loc);
  return log(clip(normalized, loc), loc);
}

}  // namespace

Tensor categorical_crossentropy(const Tensor& y_true, const Tensor& y_pred, bool from_logits,
                                double label_smoothing, int64_t axis, Loc loc) {
  const char* loss = "categorical_crossentropy";
  check_smoothing(loss, label_smoothing, loc);
  check_defined(loss, y_true, y_pred, loc);
  bool ids = metrics::sparse_labels(y_true.shape(), y_pred.shape());
  if (ids && !ir::is_floating(y_true.dtype())) {
    detail::raise<ShapeError>(
        op_name(loss), {y_true, y_pred},
        fmt::format("y_true {} looks like class ids, but this loss takes one-hot labels of "
                    "y_pred's shape {}: use SparseCategoricalCrossentropy "
                    "(\"sparse_categorical_crossentropy\") for class ids, or one-hot encode them "
                    "(k::one_hot(y, classes))",
                    y_true.type().to_string(), y_pred.shape().to_string()),
        loc);
  }
  auto [y, p] = labels_like(loss, y_true, y_pred, loc, /*same_rank_only=*/true);
  int64_t a = class_axis(loss, y_true, y_pred, axis, loc);
  if (label_smoothing > 0) {
    double classes = static_cast<double>(y_pred.shape()[a]);
    y = add(multiply(y, 1.0 - label_smoothing, loc), label_smoothing / classes, loc);
  }
  Tensor log_p = log_probabilities(p, from_logits, a, loc);
  return neg(reduce_sum(multiply(y, log_p, loc), a, false, loc), loc);
}

namespace {

// IndexError naming the first label of a concrete y_true outside [0, classes). Float labels are
// truncated first, as the cast to integer ids does.
void check_labels(const char* loss, const Tensor& y_true, const Tensor& y_pred, int64_t classes,
                  const Loc& loc) {
  // Labels on a GPU are checked in a host copy.
  const Tensor on_host = y_true.to(Device::cpu());
  const ir::HostTensor& ids = on_host.host();
  for (int64_t i = 0; i < ids.num_elements(); ++i) {
    double label = ids.element_as_double(i);
    double id = std::trunc(label);
    if (!(id >= 0 && id < static_cast<double>(classes))) {
      detail::raise<IndexError>(
          op_name(loss), {y_true, y_pred},
          fmt::format("label {} at position {} is out of range: y_pred has {} classes, so "
                      "labels must be in [0, {})",
                      label, i, classes, classes),
          loc);
    }
  }
}

}  // namespace

Tensor sparse_categorical_crossentropy(const Tensor& y_true, const Tensor& y_pred, bool from_logits,
                                       int64_t axis, Loc loc) {
  const char* loss = "sparse_categorical_crossentropy";
  check_defined(loss, y_true, y_pred, loc);
  int64_t a = class_axis(loss, y_true, y_pred, axis, loc);
  std::vector<int64_t> want = y_pred.shape().dims();
  int64_t classes = want[static_cast<size_t>(a)];
  want.erase(want.begin() + a);
  Tensor labels = y_true;
  if (labels.rank() == y_pred.rank() && labels.shape().dims().back() == 1)
    labels = squeeze(labels, -1, loc);
  if (labels.shape() != Shape(want)) {
    // Labels shaped like the predictions are one-hot rows: the other loss takes them.
    std::string hint = y_true.shape() == y_pred.shape()
                           ? "; these look like one-hot labels: use CategoricalCrossentropy "
                             "(\"categorical_crossentropy\") for them, or pass class ids"
                           : "";
    detail::raise<ShapeError>(
        op_name(loss), {y_true, y_pred},
        fmt::format("y_true must hold one class id per sample, shape {} (y_pred's shape {} "
                    "without axis {}), got {}{}",
                    Shape(want).to_string(), y_pred.shape().to_string(), a,
                    y_true.shape().to_string(), hint),
        loc);
  }
  if (labels.dtype() == DType::boolean) {
    detail::raise<TypeError>(op_name(loss), {y_true, y_pred},
                             "y_true must hold integer class ids, got bool", loc);
  }
  if (!y_true.is_symbolic()) check_labels(loss, y_true, y_pred, classes, loc);
  if (labels.is_symbolic() && is_floating(labels.dtype())) {
    // A traced float label that is no whole number (0.5, NaN) becomes -1, and a huge one is
    // clamped to 2^31 (its cast would be undefined), so check_index below rejects both.
    Tensor whole = kiln::equal(kiln::floor(labels, loc), labels, loc);
    Tensor bounded = kiln::minimum(kiln::maximum(labels, -1.0, loc), 2147483648.0, loc);
    labels = kiln::where(whole, bounded, -1.0, loc);
  }
  if (labels.dtype() != DType::i32 && labels.dtype() != DType::i64)
    labels = cast(labels, DType::i64, loc);
  // Traced labels are checked when the compiled code runs: without the check an out-of-range id
  // would one-hot encode to a zero row and give a silent loss of 0.
  if (labels.is_symbolic()) {
    ir::Attrs check;
    check.set_int("limit", classes);
    check.set_string("what", fmt::format("{} label", op_name(loss)));
    labels = detail::apply1(ir::Op::check_index, {labels}, check, loc);
  }
  Tensor hot = one_hot(labels, classes, 1.0, 0.0, a, y_pred.dtype(), loc);
  Tensor log_p = log_probabilities(y_pred, from_logits, a, loc);
  return neg(reduce_sum(multiply(hot, log_p, loc), a, false, loc), loc);
}

Tensor reduce_loss(const Tensor& per_sample, Reduction reduction, const Tensor& sample_weight,
                   Loc loc) {
  const char* op = "losses.reduce_loss";
  if (!per_sample.defined())
    detail::raise<ValueError>(op, {}, "the per-sample losses are an undefined Tensor", loc);
  if (!ir::is_floating(per_sample.dtype())) {
    detail::raise<TypeError>(op, {per_sample},
                             fmt::format("the per-sample losses must be floating, got {}",
                                         ir::dtype_long_name(per_sample.dtype())),
                             loc);
  }
  Tensor losses = per_sample;
  if (sample_weight.defined()) {
    Tensor w = cast(sample_weight, per_sample.dtype(), loc);
    // Weights per sample, shape (batch,) or (batch, 1), against losses of shape (batch, ...):
    // drop trailing 1s the losses lack, then align from the front (TensorFlow Keras's rule).
    while (w.rank() > losses.rank() && w.shape().dims().back() == 1)
      w = squeeze(w, -1, loc);
    while (w.rank() < losses.rank())
      w = expand_dims(w, -1, loc);
    try {
      ir::broadcast_shapes(w.shape(), losses.shape());
    } catch (const ShapeError&) {
      detail::raise<ShapeError>(
          op, {per_sample, sample_weight},
          fmt::format("sample_weight of shape {} does not broadcast against the per-sample "
                      "losses of shape {}",
                      sample_weight.shape().to_string(), per_sample.shape().to_string()),
          loc);
    }
    losses = multiply(losses, w, loc);
  }
  switch (reduction) {
    case Reduction::none:
      return losses;
    case Reduction::sum:
      return reduce_sum(losses, {}, false, loc);
    case Reduction::sum_over_batch_size:
      // No elements: the sum (0) rather than 0/0, as Keras's divide_no_nan.
      if (losses.size() == 0) return reduce_sum(losses, {}, false, loc);
      return divide(reduce_sum(losses, {}, false, loc), static_cast<double>(losses.size()), loc);
  }
  return losses;
}

std::string_view reduction_name(Reduction reduction) {
  switch (reduction) {
    case Reduction::none:
      return "none";
    case Reduction::sum:
      return "sum";
    case Reduction::sum_over_batch_size:
      return "sum_over_batch_size";
  }
  return "?";
}

Tensor Loss::operator()(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight,
                        Loc loc) const {
  kiln::name_scope scope(name_);  // the loss's ops under its Keras name, as in graph dumps
  return reduce_loss(call(y_true, y_pred, loc), reduction_, sample_weight, loc);
}

Tensor MeanSquaredError::call(const Tensor& y_true, const Tensor& y_pred, Loc loc) const {
  return mean_squared_error(y_true, y_pred, loc);
}

Tensor MeanAbsoluteError::call(const Tensor& y_true, const Tensor& y_pred, Loc loc) const {
  return mean_absolute_error(y_true, y_pred, loc);
}

Tensor BinaryCrossentropy::call(const Tensor& y_true, const Tensor& y_pred, Loc loc) const {
  return binary_crossentropy(y_true, y_pred, from_logits_, label_smoothing_, loc);
}

Tensor CategoricalCrossentropy::call(const Tensor& y_true, const Tensor& y_pred, Loc loc) const {
  return categorical_crossentropy(y_true, y_pred, from_logits_, label_smoothing_, axis_, loc);
}

Tensor SparseCategoricalCrossentropy::call(const Tensor& y_true, const Tensor& y_pred,
                                           Loc loc) const {
  return sparse_categorical_crossentropy(y_true, y_pred, from_logits_, -1, loc);
}

namespace {

std::string bool_text(bool b) {
  return b ? "true" : "false";
}

// The value of `key` in a loss config, or `fallback` when absent.
std::string config_value(const std::map<std::string, std::string>& config, const std::string& key,
                         const std::string& fallback) {
  auto it = config.find(key);
  return it == config.end() ? fallback : it->second;
}

[[noreturn]] void bad_config(const std::string& key, const std::string& value, const char* want,
                             const Loc& loc) {
  detail::raise<ValueError>("losses.from_config", {},
                            fmt::format("'{}' must be {}, got '{}'", key, want, value), loc);
}

bool config_bool(const std::map<std::string, std::string>& config, const std::string& key,
                 const Loc& loc) {
  std::string v = config_value(config, key, "false");
  if (v != "true" && v != "false") bad_config(key, v, "true or false", loc);
  return v == "true";
}

// A number in a loss config: a double or an int64_t, `fallback` when absent.
template <class T>
T config_number(const std::map<std::string, std::string>& config, const std::string& key,
                const char* fallback, const Loc& loc) {
  std::string v = config_value(config, key, fallback);
  T out = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || end != v.data() + v.size())
    bad_config(key, v, std::is_integral_v<T> ? "an integer" : "a number", loc);
  return out;
}

Reduction config_reduction(const std::map<std::string, std::string>& config, const Loc& loc) {
  std::string v = config_value(config, "reduction", "sum_over_batch_size");
  for (Reduction r : {Reduction::none, Reduction::sum, Reduction::sum_over_batch_size})
    if (reduction_name(r) == v) return r;
  bad_config("reduction", v, "none, sum or sum_over_batch_size", loc);
}

using Config = std::map<std::string, std::string>;

// Every loss get() and from_config() know: Keras's name, its short alias, its class name, and
// how to make one from a config.
struct LossKind {
  const char* name;
  const char* alias;  // "" when none
  const char* class_name;
  std::shared_ptr<Loss> (*make)(const Config& config, Reduction r, const Loc& loc);
};

const std::vector<LossKind>& loss_kinds() {
  static const std::vector<LossKind> kinds = {
      {"mean_squared_error", "mse", "MeanSquaredError",
       [](const Config&, Reduction r, const Loc&) -> std::shared_ptr<Loss> {
         return std::make_shared<MeanSquaredError>(r);
       }},
      {"mean_absolute_error", "mae", "MeanAbsoluteError",
       [](const Config&, Reduction r, const Loc&) -> std::shared_ptr<Loss> {
         return std::make_shared<MeanAbsoluteError>(r);
       }},
      {"binary_crossentropy", "", "BinaryCrossentropy",
       [](const Config& c, Reduction r, const Loc& loc) -> std::shared_ptr<Loss> {
         return std::make_shared<BinaryCrossentropy>(
             config_bool(c, "from_logits", loc),
             config_number<double>(c, "label_smoothing", "0", loc), r);
       }},
      {"categorical_crossentropy", "", "CategoricalCrossentropy",
       [](const Config& c, Reduction r, const Loc& loc) -> std::shared_ptr<Loss> {
         return std::make_shared<CategoricalCrossentropy>(
             config_bool(c, "from_logits", loc),
             config_number<double>(c, "label_smoothing", "0", loc),
             config_number<int64_t>(c, "axis", "-1", loc), r);
       }},
      {"sparse_categorical_crossentropy", "", "SparseCategoricalCrossentropy",
       [](const Config& c, Reduction r, const Loc& loc) -> std::shared_ptr<Loss> {
         return std::make_shared<SparseCategoricalCrossentropy>(config_bool(c, "from_logits", loc),
                                                                r);
       }},
  };
  return kinds;
}

// The kind `name` spells (Keras's name, alias or class name), or null.
const LossKind* find_kind(const std::string& name) {
  for (const LossKind& kind : loss_kinds())
    if (name == kind.name || (*kind.alias && name == kind.alias) || name == kind.class_name)
      return &kind;
  return nullptr;
}

[[noreturn]] void unknown_loss(const char* op, const std::string& name, const Loc& loc) {
  std::vector<std::string> known;
  for (const LossKind& kind : loss_kinds())
    known.push_back(*kind.alias ? fmt::format("{} ({})", kind.name, kind.alias) : kind.name);
  detail::raise<ValueError>(
      op, {},
      fmt::format("unknown loss '{}'; known: {} (or their class names, e.g. {})", name,
                  fmt::join(known, ", "), loss_kinds().back().class_name),
      loc);
}

}  // namespace

std::map<std::string, std::string> Loss::get_config() const {
  return {{"name", name_}, {"reduction", std::string(reduction_name(reduction_))}};
}

std::map<std::string, std::string> BinaryCrossentropy::get_config() const {
  std::map<std::string, std::string> config = Loss::get_config();
  config["from_logits"] = bool_text(from_logits_);
  config["label_smoothing"] = fmt::format("{}", label_smoothing_);
  return config;
}

std::map<std::string, std::string> CategoricalCrossentropy::get_config() const {
  std::map<std::string, std::string> config = Loss::get_config();
  config["from_logits"] = bool_text(from_logits_);
  config["label_smoothing"] = fmt::format("{}", label_smoothing_);
  config["axis"] = std::to_string(axis_);
  return config;
}

std::map<std::string, std::string> SparseCategoricalCrossentropy::get_config() const {
  std::map<std::string, std::string> config = Loss::get_config();
  config["from_logits"] = bool_text(from_logits_);
  return config;
}

std::shared_ptr<Loss> LossSpec::resolve(Loc loc) const {
  return loss_ ? loss_ : get(name_, loc);
}

std::shared_ptr<Loss> get(const std::string& name, Loc loc) {
  if (find_kind(name) == nullptr) unknown_loss("losses.get", name, loc);
  return from_config({{"name", name}}, loc);
}

std::shared_ptr<Loss> from_config(const std::map<std::string, std::string>& config, Loc loc) {
  const std::string name = config_value(config, "name", "");
  const LossKind* kind = find_kind(name);
  if (kind == nullptr) unknown_loss("losses.from_config", name, loc);
  return kind->make(config, config_reduction(config, loc), loc);
}

}  // namespace kiln::losses
