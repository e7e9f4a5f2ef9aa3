// The metric objects of metric_objects.h. Each metric's function of a batch is written once,
// with tensor ops: fit's compiled steps trace it (batch_state), and update_state runs it eagerly
// in f64 and reduces the result on the host in double, so long runs accumulate without f32
// rounding and the Keras reduction rules (squeeze_or_expand_to_same_rank, per-sample weights)
// are spelled out in one place.
#include "kiln/frontend/keras/metric_objects.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "kiln/frontend/core/device.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/ops.h"
#include "kiln/frontend/keras/metrics.h"

namespace kiln::metrics {

namespace {

using Loc = std::source_location;

// A batch read to the host: row-major values and their shape.
struct HostArray {
  std::vector<double> v;
  std::vector<int64_t> dims;
  int64_t rank() const { return static_cast<int64_t>(dims.size()); }
  std::string shape() const { return Shape(dims).to_string(); }
};

std::string op_name(const Metric& m) {
  return fmt::format("metrics '{}'", m.name());
}

// An argument of update_state on the CPU; ValueError for an undefined or symbolic one.
Tensor on_host(const Metric& m, const Tensor& t, const char* what, const Loc& loc) {
  if (!t.defined()) {
    detail::raise<ValueError>(op_name(m), {}, fmt::format("{} must be a defined tensor", what),
                              loc);
  }
  if (t.is_symbolic()) {
    detail::raise<ValueError>(op_name(m), {t},
                              fmt::format("{} is symbolic: metric objects keep their state on the "
                                          "host and take eager tensors only",
                                          what),
                              loc);
  }
  return t.device().is_cpu() ? t : t.to(Device::cpu(), loc);
}

// The values of an eager tensor, as on_host takes them.
HostArray read(const Metric& m, const Tensor& t, const char* what, const Loc& loc) {
  Tensor host = on_host(m, t, what, loc);
  HostArray out;
  out.dims = t.shape().dims();
  const ir::HostTensor& value = host.host();
  out.v.resize(static_cast<size_t>(t.size()));
  for (int64_t i = 0; i < t.size(); ++i)
    out.v[static_cast<size_t>(i)] = value.element_as_double(i);
  return out;
}

// Keras's squeeze_or_expand_to_same_rank: when the ranks differ by one and the longer shape ends
// in 1, that 1 is squeezed away, or the shorter one (if rank 1) gets a trailing 1.
void match_ranks(HostArray& a, HostArray& b) {
  auto fix = [](HostArray& longer, HostArray& shorter) {
    if (longer.rank() == shorter.rank() + 1 && longer.dims.back() == 1) {
      if (shorter.rank() == 1)
        shorter.dims.push_back(1);
      else
        longer.dims.pop_back();
    }
  };
  fix(a, b);
  fix(b, a);
}

// y_true and y_pred with matched ranks and equal shapes; ShapeError naming both otherwise.
void same_shape(const Metric& m, HostArray& y_true, HostArray& y_pred, const Loc& loc) {
  match_ranks(y_true, y_pred);
  if (y_true.dims != y_pred.dims) {
    detail::raise<ShapeError>(op_name(m), {},
                              fmt::format("y_true and y_pred must have the same shape, got {} and "
                                          "{}",
                                          y_true.shape(), y_pred.shape()),
                              loc);
  }
}

// The weight of each element of a tensor of shape `dims`, from weights whose shape is a prefix
// of dims with 1s allowed (per-sample weights broadcast over the trailing axes). ShapeError
// naming both shapes otherwise.
std::vector<double> broadcast_weight(const Metric& m, const HostArray& w,
                                     const std::vector<int64_t>& dims, const Loc& loc) {
  bool fits = w.rank() <= static_cast<int64_t>(dims.size());
  for (int64_t i = 0; fits && i < w.rank(); ++i)
    fits = w.dims[size_t(i)] == dims[size_t(i)] || w.dims[size_t(i)] == 1;
  if (!fits) {
    detail::raise<ShapeError>(
        op_name(m), {},
        fmt::format("sample_weight of shape {} does not broadcast to the values' shape {} (it "
                    "must have their leading dimensions, or 1s)",
                    w.shape(), Shape(dims).to_string()),
        loc);
  }
  int64_t total = Shape(dims).num_elements();
  // Elements per index of each of the weight's axes in the target, and the weight's strides.
  std::vector<double> out(static_cast<size_t>(total));
  int64_t inner = 1;
  for (size_t i = size_t(w.rank()); i < dims.size(); ++i)
    inner *= dims[i];
  for (int64_t flat = 0; flat < total; ++flat) {
    int64_t outer = inner == 0 ? 0 : flat / inner;  // index over the weight's axes
    int64_t widx = 0, wstride = 1;
    for (int64_t ax = w.rank() - 1; ax >= 0; --ax) {
      int64_t d = dims[size_t(ax)];
      int64_t i = outer % d;
      outer /= d;
      if (w.dims[size_t(ax)] != 1) widx += i * wstride;
      wstride *= w.dims[size_t(ax)];
    }
    out[size_t(flat)] = w.v[size_t(widx)];
  }
  return out;
}

// Means over the last axis: shape dims[:-1] (a rank-0 input is returned as it is).
HostArray mean_last_axis(HostArray a) {
  if (a.rank() == 0) return a;
  int64_t n = a.dims.back();
  a.dims.pop_back();
  HostArray out{{}, a.dims};
  int64_t rows = Shape(a.dims).num_elements();
  for (int64_t r = 0; r < rows; ++r) {
    double s = 0;
    for (int64_t j = 0; j < n; ++j)
      s += a.v[size_t(r * n + j)];
    out.v.push_back(s / double(n));
  }
  return out;
}

// same_shape on tensors (their static shapes, so eagerly and traced alike): y_true in y_pred's
// dtype (labels arrive as integers or booleans), both reshaped to the matched ranks.
std::pair<Tensor, Tensor> same_shape(const Metric& m, const Tensor& y_true, const Tensor& y_pred,
                                     const Loc& loc) {
  HostArray t{{}, y_true.shape().dims()}, p{{}, y_pred.shape().dims()};
  same_shape(m, t, p, loc);
  return {cast(reshape(y_true, Shape(t.dims)), y_pred.dtype()), reshape(y_pred, Shape(p.dims))};
}

// The one-hot y_true in y_pred's dtype; ShapeError unless the shapes are equal and have a
// non-empty class axis.
Tensor one_hot_labels(const Metric& m, const Tensor& y_true, const Tensor& y_pred, const Loc& loc) {
  if (y_true.shape() != y_pred.shape()) {
    detail::raise<ShapeError>(op_name(m), {},
                              fmt::format("y_true (one-hot) and y_pred must have the same shape, "
                                          "got {} and {}",
                                          y_true.shape().to_string(), y_pred.shape().to_string()),
                              loc);
  }
  return cast(y_true, y_pred.dtype());
}

void require_classes(const Metric& m, const Tensor& y_pred, const Loc& loc) {
  if (y_pred.rank() == 0 || y_pred.shape().dims().back() == 0) {
    detail::raise<ShapeError>(op_name(m), {},
                              fmt::format("y_pred must have a non-empty class axis (the last), got "
                                          "shape {}",
                                          y_pred.shape().to_string()),
                              loc);
  }
}

// An eager tensor's values for the host-side update_state: defined, eager, on the CPU, in f64 so
// that the metric's tensor function computes in double precision.
Tensor host_f64(const Metric& m, const Tensor& t, const char* what, const Loc& loc) {
  return cast(on_host(m, t, what, loc), f64);
}

// A host array as an eager f64 tensor.
Tensor to_tensor(const HostArray& a) {
  return constant(a.v, Shape(a.dims), f64);
}

}  // namespace

Tensor Metric::result() const {
  return constant(static_cast<float>(result_value()));
}

void Metric::reset_state() {
  std::fill(state_.begin(), state_.end(), 0.0);
}

void Metric::merge_state(const Tensor& increments) {
  KILN_CHECK(increments.defined() && increments.rank() == 1 &&
                 increments.size() == static_cast<int64_t>(state_.size()),
             "metric state increments of the wrong shape");
  Tensor host = increments.device().is_cpu() ? increments : increments.to(Device::cpu());
  for (size_t i = 0; i < state_.size(); ++i)
    state_[i] += host.host().element_as_double(static_cast<int64_t>(i));
}

void Mean::update_state(const Tensor& values, const Tensor& sample_weight, Loc loc) {
  HostArray v = read(*this, values, "values", loc);
  if (!sample_weight.defined()) {
    add(v.v, Shape(v.dims), nullptr, Shape(), loc);
    return;
  }
  HostArray w = read(*this, sample_weight, "sample_weight", loc);
  add(v.v, Shape(v.dims), &w.v, Shape(w.dims), loc);
}

void Mean::update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight,
                        Loc loc) {
  if (y_pred.defined()) {
    detail::raise<ValueError>(op_name(*this), {},
                              "Mean takes update_state(values, sample_weight), not y_pred", loc);
  }
  update_state(y_true, sample_weight, loc);
}

Tensor Mean::batch_state(const Tensor&, const Tensor&, Loc loc) const {
  detail::raise<ValueError>(op_name(*this), {},
                            "Mean averages values of your own, not (y_true, y_pred): compile() "
                            "takes metrics of y_true and y_pred such as MeanSquaredError",
                            loc);
}

void Mean::add(const std::vector<double>& values, const Shape& shape,
               const std::vector<double>* weight, const Shape& weight_shape, const Loc& loc) {
  HostArray v{values, shape.dims()};
  // Sum into locals first so a batch that throws leaves the state unchanged.
  double total = 0, count = 0;
  HostArray w{weight ? *weight : std::vector<double>{}, weight_shape.dims()};
  if (weight != nullptr) {
    match_ranks(v, w);
    if (w.rank() > v.rank()) {
      detail::raise<ShapeError>(op_name(*this), {},
                                fmt::format("sample_weight of shape {} has a higher rank than the "
                                            "values' shape {}",
                                            w.shape(), v.shape()),
                                loc);
    }
    // As Keras: values averaged down to the weight's rank, then weighted; samples whose weight
    // has several elements count with their mean weight.
    while (v.rank() > w.rank())
      v = mean_last_axis(std::move(v));
  }
  std::vector<double> wb =
      weight ? broadcast_weight(*this, w, v.dims, loc) : std::vector<double>(v.v.size(), 1.0);
  if (v.rank() == 0) {
    total = v.v[0] * wb[0];
    count = wb[0];
  } else {
    // Each sample (leading index) counts with the mean of its values and of their weights.
    int64_t rows = v.dims[0];
    int64_t inner = rows == 0 ? 0 : Shape(v.dims).num_elements() / rows;
    for (int64_t r = 0; r < rows; ++r) {
      double sv = 0, sw = 0;
      for (int64_t j = 0; j < inner; ++j) {
        size_t i = size_t(r * inner + j);
        sv += v.v[i] * wb[i];
        sw += wb[i];
      }
      total += sv / double(inner);
      count += sw / double(inner);
    }
  }
  state_[0] += total;
  state_[1] += count;
}

void MeanMetricWrapper::update_state(const Tensor& y_true, const Tensor& y_pred,
                                     const Tensor& sample_weight, Loc loc) {
  Tensor t = host_f64(*this, y_true, "y_true", loc);
  Tensor p = host_f64(*this, y_pred, "y_pred", loc);
  // The metric's values, computed eagerly in f64, are averaged as Mean's own (weights and all).
  Mean::update_state(values(t, p, loc), sample_weight, loc);
}

Tensor MeanMetricWrapper::batch_state(const Tensor& y_true, const Tensor& y_pred, Loc loc) const {
  Tensor v = cast(values(y_true, y_pred, loc), f32);
  if (v.rank() == 0) return stack({v, constant(1.f)});
  // Each sample counts once: its values are averaged first (Mean's unweighted reduction).
  int64_t rows = v.shape()[0];
  int64_t inner = rows == 0 ? 1 : v.size() / rows;
  Tensor per_sample = reduce_mean(reshape(v, Shape{rows, inner}), {1});
  return stack({reduce_sum(per_sample), constant(float(rows))});
}

namespace {

// The mean over the last axis (the rank-0 case kept as it is), as Keras's metric functions
// reduce per sample.
Tensor mean_last(const Tensor& v) {
  return v.rank() == 0 ? v : reduce_mean(v, {-1});
}

}  // namespace

Tensor MeanSquaredError::values(const Tensor& y_true, const Tensor& y_pred, const Loc& loc) const {
  auto [t, p] = same_shape(*this, y_true, y_pred, loc);
  return mean_last(square(p - t));
}

Tensor MeanAbsoluteError::values(const Tensor& y_true, const Tensor& y_pred, const Loc& loc) const {
  auto [t, p] = same_shape(*this, y_true, y_pred, loc);
  return mean_last(abs(p - t));
}

Tensor RootMeanSquaredError::values(const Tensor& y_true, const Tensor& y_pred,
                                    const Loc& loc) const {
  // Keras feeds the element-wise squared error to Mean, whose reduction averages each sample.
  auto [t, p] = same_shape(*this, y_true, y_pred, loc);
  return square(p - t);
}

double RootMeanSquaredError::result_value() const {
  return std::sqrt(Mean::result_value());
}

Tensor Accuracy::values(const Tensor& y_true, const Tensor& y_pred, const Loc& loc) const {
  auto [t, p] = same_shape(*this, y_true, y_pred, loc);
  return cast(equal(p, t), p.dtype());
}

Tensor BinaryAccuracy::values(const Tensor& y_true, const Tensor& y_pred, const Loc& loc) const {
  auto [t, p] = same_shape(*this, y_true, y_pred, loc);
  return mean_last(cast(equal(cast(greater(p, threshold_), p.dtype()), t), p.dtype()));
}

namespace {

// The class ids of labels for y_pred (shape y_pred's without the class axis, or with a trailing
// 1) in y_pred's dtype; ShapeError naming the shapes otherwise.
Tensor class_ids(const Metric& m, const Tensor& y_true, const Tensor& y_pred, const Loc& loc) {
  require_classes(m, y_pred, loc);
  std::vector<int64_t> dims(y_pred.shape().dims().begin(), y_pred.shape().dims().end() - 1);
  Tensor t = y_true;
  if (t.rank() == y_pred.rank() && t.shape().dims().back() == 1) t = squeeze(t, -1);
  if (t.shape().dims() != dims) {
    detail::raise<ShapeError>(op_name(m), {},
                              fmt::format("y_true must hold one class id per sample: shape {} (or "
                                          "with a trailing 1) for y_pred of shape {}, got {}",
                                          Shape(dims).to_string(), y_pred.shape().to_string(),
                                          y_true.shape().to_string()),
                              loc);
  }
  return cast(t, y_pred.dtype());
}

// 1 where the class `ids` (y_pred's dtype) is among the k highest of y_pred's row, else 0: the
// predictions strictly above the label's are counted, so ties at the k-th value count as in and
// a NaN there (or an id that is no class) as out.
Tensor in_top_k(const Tensor& y_pred, const Tensor& ids, int64_t k) {
  DType dtype = y_pred.dtype();
  int64_t n = y_pred.shape().dims().back();
  Tensor is_label = equal(cast(range(n), dtype), expand_dims(ids, -1));
  Tensor target = reduce_sum(where(is_label, y_pred, 0.0), {-1}, /*keepdims=*/true);
  Tensor above = reduce_sum(cast(greater(y_pred, target), dtype), {-1});
  Tensor found = reduce_sum(cast(is_label, dtype), {-1});
  Tensor target_ok = equal(squeeze(target, -1), squeeze(target, -1));  // not NaN
  return cast(logical_and(logical_and(less(above, double(k)), target_ok), greater(found, 0.5)),
              dtype);
}

}  // namespace

Tensor CategoricalAccuracy::values(const Tensor& y_true, const Tensor& y_pred,
                                   const Loc& loc) const {
  Tensor t = one_hot_labels(*this, y_true, y_pred, loc);
  require_classes(*this, y_pred, loc);
  return cast(equal(argmax(y_pred, -1), argmax(t, -1)), y_pred.dtype());
}

Tensor SparseCategoricalAccuracy::values(const Tensor& y_true, const Tensor& y_pred,
                                         const Loc& loc) const {
  // Compared as numbers, so a label that is no class id (1.5, −1) is simply a miss.
  Tensor ids = class_ids(*this, y_true, y_pred, loc);
  return cast(equal(cast(argmax(y_pred, -1), y_pred.dtype()), ids), y_pred.dtype());
}

TopKCategoricalAccuracy::TopKCategoricalAccuracy(int64_t k, std::string name, Loc loc)
    : MeanMetricWrapper(std::move(name)), k_(k) {
  if (k < 1) {
    detail::raise<ValueError>(op_name(*this), {}, fmt::format("k must be at least 1, got {}", k),
                              loc);
  }
}

Tensor TopKCategoricalAccuracy::values(const Tensor& y_true, const Tensor& y_pred,
                                       const Loc& loc) const {
  Tensor t = one_hot_labels(*this, y_true, y_pred, loc);
  require_classes(*this, y_pred, loc);
  return in_top_k(y_pred, cast(argmax(t, -1), y_pred.dtype()), k_);
}

Tensor SparseTopKCategoricalAccuracy::values(const Tensor& y_true, const Tensor& y_pred,
                                             const Loc& loc) const {
  return in_top_k(y_pred, class_ids(*this, y_true, y_pred, loc), k_);
}

ConfusionCounts::ConfusionCounts(std::vector<double> thresholds, std::string name)
    : Metric(std::move(name), 4 * thresholds.size()), thresholds_(std::move(thresholds)) {}

void ConfusionCounts::check_threshold(double threshold, const Loc& loc) const {
  if (!(threshold >= 0.0 && threshold <= 1.0)) {
    detail::raise<ValueError>(op_name(*this), {},
                              fmt::format("threshold must be in [0, 1], got {}", threshold), loc);
  }
}

namespace {

// The confusion counts of y_true and y_pred (same shape, floating) with per-element weights `w`
// (same shape) at each threshold: tp, fp, tn, fn, each a vector over the thresholds, as one
// vector in p's dtype. Runs eagerly (update_state, in f64) or traced (compiled steps).
Tensor confusion(const std::vector<double>& thresholds, const Tensor& t, const Tensor& p,
                 const std::optional<Tensor>& w) {
  DType dtype = p.dtype();
  int64_t m = p.size();
  auto k = static_cast<int64_t>(thresholds.size());
  Tensor cut = constant(thresholds, Shape{k, 1}, dtype);
  Tensor positive = cast(greater(reshape(p, Shape{1, m}), cut), dtype);  // (k, m)
  Tensor truth = cast(not_equal(reshape(t, Shape{1, m}), 0.0), dtype);   // (1, m)
  Tensor negative = 1.0 - positive, falsity = 1.0 - truth;
  if (w) {
    Tensor weight = reshape(*w, Shape{1, m});
    truth = truth * weight;
    falsity = falsity * weight;
  }
  std::vector<Tensor> parts;
  for (const auto& [predicted, actual] :
       {std::pair{positive, truth}, {positive, falsity}, {negative, falsity}, {negative, truth}})
    parts.push_back(reduce_sum(predicted * actual, {1}));
  return concat(parts, 0);
}

// Why labels for class scores do not suit a confusion metric, when they look like class ids.
void check_binary(const Metric& m, const Tensor& y_true, const Tensor& y_pred, const Loc& loc) {
  if (y_pred.rank() >= 1 && y_pred.shape().dims().back() > 1 &&
      sparse_labels(y_true.shape(), y_pred.shape())) {
    detail::raise<ShapeError>(
        op_name(m), {},
        fmt::format("needs binary (0/1) labels of y_pred's shape, one per output unit; y_true of "
                    "shape {} looks like class ids for y_pred of shape {} ({} classes). Use "
                    "SparseCategoricalAccuracy for class ids, or one-hot labels",
                    y_true.shape().to_string(), y_pred.shape().to_string(),
                    y_pred.shape().dims().back()),
        loc);
  }
}

}  // namespace

void ConfusionCounts::update_state(const Tensor& y_true, const Tensor& y_pred,
                                   const Tensor& sample_weight, Loc loc) {
  HostArray t = read(*this, y_true, "y_true", loc);
  HostArray p = read(*this, y_pred, "y_pred", loc);
  same_shape(*this, t, p, loc);
  std::optional<Tensor> w;
  if (sample_weight.defined()) {
    HostArray sw = read(*this, sample_weight, "sample_weight", loc);
    // A weight per sample of (n, 1) predictions arrives as (n,): give it the trailing 1.
    if (sw.rank() + 1 == p.rank() && p.dims.back() == 1 && sw.rank() >= 1) sw.dims.push_back(1);
    w = constant(broadcast_weight(*this, sw, p.dims, loc), Shape(p.dims), f64);
  }
  merge_state(confusion(thresholds_, to_tensor(t), to_tensor(p), w));
}

Tensor ConfusionCounts::batch_state(const Tensor& y_true, const Tensor& y_pred, Loc loc) const {
  check_binary(*this, y_true, y_pred, loc);
  auto [t, p] = same_shape(*this, y_true, y_pred, loc);
  return cast(confusion(thresholds_, t, p, std::nullopt), f32);
}

Precision::Precision(double threshold, std::string name, Loc loc)
    : ConfusionCounts({threshold}, std::move(name)) {
  check_threshold(threshold, loc);
}

Recall::Recall(double threshold, std::string name, Loc loc)
    : ConfusionCounts({threshold}, std::move(name)) {
  check_threshold(threshold, loc);
}

namespace {

// Keras's evenly spaced thresholds, the ends pushed just outside [0, 1] so that predictions of
// exactly 0 and 1 fall inside the curve (at least two; the constructor checks).
std::vector<double> auc_thresholds(int64_t n) {
  constexpr double kEpsilon = 1e-7;
  std::vector<double> out{-kEpsilon};
  for (int64_t i = 1; i < n - 1; ++i)
    out.push_back(double(i) / double(n - 1));
  out.push_back(1.0 + kEpsilon);
  return out;
}

}  // namespace

AUC::AUC(int64_t num_thresholds, std::string name, Loc loc)
    : ConfusionCounts(auc_thresholds(std::max<int64_t>(num_thresholds, 2)), std::move(name)) {
  if (num_thresholds < 2) {
    detail::raise<ValueError>(
        op_name(*this), {},
        fmt::format("num_thresholds must be at least 2, got {}", num_thresholds), loc);
  }
}

double AUC::result_value() const {
  auto rate = [](double a, double b) { return a + b == 0 ? 0.0 : a / (a + b); };
  double area = 0;
  for (size_t k = 0; k + 1 < num_thresholds(); ++k) {
    double tpr0 = rate(tp(k), fn(k)), tpr1 = rate(tp(k + 1), fn(k + 1));
    double fpr0 = rate(fp(k), tn(k)), fpr1 = rate(fp(k + 1), tn(k + 1));
    area += (fpr0 - fpr1) * (tpr0 + tpr1) / 2;  // trapezoid between neighbouring thresholds
  }
  return area;
}

}  // namespace kiln::metrics
