// The metric objects of metric_objects.h. Each batch is read to the host once and reduced there
// in double, so long runs accumulate without f32 rounding and the Keras reduction rules
// (squeeze_or_expand_to_same_rank, per-sample weights) are spelled out in one place.
#include "kiln/frontend/keras/metric_objects.h"

#include <cmath>
#include <utility>

#include <fmt/format.h>

#include "kiln/frontend/core/device.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/ops.h"

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

// The values of an eager tensor; ValueError for an undefined or symbolic one.
HostArray read(const Metric& m, const Tensor& t, const char* what, const Loc& loc) {
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
  Tensor host = t.device().is_cpu() ? t : t.to(Device::cpu(), loc);
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

// Index of the first largest element of each row of length n (argmax).
int64_t argmax_row(const std::vector<double>& v, int64_t row, int64_t n) {
  int64_t best = 0;
  for (int64_t j = 1; j < n; ++j)
    if (v[size_t(row * n + j)] > v[size_t(row * n + best)]) best = j;
  return best;
}

void require_classes(const Metric& m, const HostArray& y_pred, const Loc& loc) {
  if (y_pred.rank() == 0 || y_pred.dims.back() == 0) {
    detail::raise<ShapeError>(op_name(m), {},
                              fmt::format("y_pred must have a non-empty class axis (the last), got "
                                          "shape {}",
                                          y_pred.shape()),
                              loc);
  }
}

}  // namespace

Tensor Metric::result() const {
  return constant(static_cast<float>(result_value()));
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

void Mean::add(const std::vector<double>& values, const Shape& shape,
               const std::vector<double>* weight, const Shape& weight_shape, const Loc& loc) {
  HostArray v{values, shape.dims()};
  if (weight == nullptr) {
    if (v.rank() == 0) {
      total_ += v.v[0];
      count_ += 1;
      return;
    }
    int64_t rows = v.dims[0];
    int64_t inner = rows == 0 ? 0 : Shape(v.dims).num_elements() / rows;
    for (int64_t r = 0; r < rows; ++r) {
      double s = 0;
      for (int64_t j = 0; j < inner; ++j)
        s += v.v[size_t(r * inner + j)];
      total_ += s / double(inner);
    }
    count_ += double(rows);
    return;
  }
  HostArray w{*weight, weight_shape.dims()};
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
  std::vector<double> wb = broadcast_weight(*this, w, v.dims, loc);
  if (v.rank() == 0) {
    total_ += v.v[0] * wb[0];
    count_ += wb[0];
    return;
  }
  int64_t rows = v.dims[0];
  int64_t inner = rows == 0 ? 0 : Shape(v.dims).num_elements() / rows;
  for (int64_t r = 0; r < rows; ++r) {
    double sv = 0, sw = 0;
    for (int64_t j = 0; j < inner; ++j) {
      size_t i = size_t(r * inner + j);
      sv += v.v[i] * wb[i];
      sw += wb[i];
    }
    total_ += sv / double(inner);
    count_ += sw / double(inner);
  }
}

void MeanMetricWrapper::update_state(const Tensor& y_true, const Tensor& y_pred,
                                     const Tensor& sample_weight, Loc loc) {
  Values vals = compute(y_true, y_pred, loc);
  if (!sample_weight.defined()) {
    add(vals.values, vals.shape, nullptr, Shape(), loc);
    return;
  }
  HostArray w = read(*this, sample_weight, "sample_weight", loc);
  add(vals.values, vals.shape, &w.v, Shape(w.dims), loc);
}

namespace {

// The per-sample mean over the last axis of f(y_true, y_pred) after the shape checks.
template <class F>
HostArray error_values(const Metric& m, const Tensor& y_true, const Tensor& y_pred, const Loc& loc,
                       F f) {
  HostArray t = read(m, y_true, "y_true", loc);
  HostArray p = read(m, y_pred, "y_pred", loc);
  same_shape(m, t, p, loc);
  for (size_t i = 0; i < p.v.size(); ++i)
    p.v[i] = f(t.v[i], p.v[i]);
  return mean_last_axis(std::move(p));
}

}  // namespace

MeanMetricWrapper::Values MeanSquaredError::compute(const Tensor& y_true, const Tensor& y_pred,
                                                    const Loc& loc) const {
  HostArray a = error_values(*this, y_true, y_pred, loc,
                             [](double t, double p) { return (p - t) * (p - t); });
  return {std::move(a.v), Shape(a.dims)};
}

MeanMetricWrapper::Values MeanAbsoluteError::compute(const Tensor& y_true, const Tensor& y_pred,
                                                     const Loc& loc) const {
  HostArray a =
      error_values(*this, y_true, y_pred, loc, [](double t, double p) { return std::abs(p - t); });
  return {std::move(a.v), Shape(a.dims)};
}

MeanMetricWrapper::Values RootMeanSquaredError::compute(const Tensor& y_true, const Tensor& y_pred,
                                                        const Loc& loc) const {
  // Keras feeds the element-wise squared error to Mean, whose reduction averages each sample.
  HostArray t = read(*this, y_true, "y_true", loc);
  HostArray p = read(*this, y_pred, "y_pred", loc);
  same_shape(*this, t, p, loc);
  for (size_t i = 0; i < p.v.size(); ++i)
    p.v[i] = (p.v[i] - t.v[i]) * (p.v[i] - t.v[i]);
  return {std::move(p.v), Shape(p.dims)};
}

double RootMeanSquaredError::result_value() const {
  return std::sqrt(Mean::result_value());
}

MeanMetricWrapper::Values Accuracy::compute(const Tensor& y_true, const Tensor& y_pred,
                                            const Loc& loc) const {
  HostArray t = read(*this, y_true, "y_true", loc);
  HostArray p = read(*this, y_pred, "y_pred", loc);
  same_shape(*this, t, p, loc);
  for (size_t i = 0; i < p.v.size(); ++i)
    p.v[i] = p.v[i] == t.v[i] ? 1.0 : 0.0;
  return {std::move(p.v), Shape(p.dims)};
}

MeanMetricWrapper::Values BinaryAccuracy::compute(const Tensor& y_true, const Tensor& y_pred,
                                                  const Loc& loc) const {
  double threshold = threshold_;
  HostArray a = error_values(*this, y_true, y_pred, loc, [threshold](double t, double p) {
    return (p > threshold ? 1.0 : 0.0) == t ? 1.0 : 0.0;
  });
  return {std::move(a.v), Shape(a.dims)};
}

MeanMetricWrapper::Values CategoricalAccuracy::compute(const Tensor& y_true, const Tensor& y_pred,
                                                       const Loc& loc) const {
  HostArray t = read(*this, y_true, "y_true", loc);
  HostArray p = read(*this, y_pred, "y_pred", loc);
  if (t.dims != p.dims) {
    detail::raise<ShapeError>(op_name(*this), {},
                              fmt::format("y_true (one-hot) and y_pred must have the same shape, "
                                          "got {} and {}",
                                          t.shape(), p.shape()),
                              loc);
  }
  require_classes(*this, p, loc);
  int64_t n = p.dims.back();
  std::vector<int64_t> dims(p.dims.begin(), p.dims.end() - 1);
  int64_t rows = Shape(dims).num_elements();
  Values out{{}, Shape(dims)};
  for (int64_t r = 0; r < rows; ++r)
    out.values.push_back(argmax_row(t.v, r, n) == argmax_row(p.v, r, n) ? 1.0 : 0.0);
  return out;
}

MeanMetricWrapper::Values SparseCategoricalAccuracy::compute(const Tensor& y_true,
                                                             const Tensor& y_pred,
                                                             const Loc& loc) const {
  HostArray t = read(*this, y_true, "y_true", loc);
  HostArray p = read(*this, y_pred, "y_pred", loc);
  require_classes(*this, p, loc);
  std::vector<int64_t> dims(p.dims.begin(), p.dims.end() - 1);
  if (t.rank() == p.rank() && t.dims.back() == 1) t.dims.pop_back();
  if (t.dims != dims) {
    detail::raise<ShapeError>(op_name(*this), {},
                              fmt::format("y_true must hold one class id per sample: shape {} (or "
                                          "with a trailing 1) for y_pred of shape {}, got {}",
                                          Shape(dims).to_string(), p.shape(), t.shape()),
                              loc);
  }
  int64_t n = p.dims.back();
  Values out{{}, Shape(dims)};
  for (size_t r = 0; r < t.v.size(); ++r)
    out.values.push_back(double(argmax_row(p.v, int64_t(r), n)) == t.v[r] ? 1.0 : 0.0);
  return out;
}

TopKCategoricalAccuracy::TopKCategoricalAccuracy(int64_t k, std::string name, Loc loc)
    : MeanMetricWrapper(std::move(name)), k_(k) {
  if (k < 1) {
    detail::raise<ValueError>(op_name(*this), {}, fmt::format("k must be at least 1, got {}", k),
                              loc);
  }
}

MeanMetricWrapper::Values TopKCategoricalAccuracy::compute(const Tensor& y_true,
                                                           const Tensor& y_pred,
                                                           const Loc& loc) const {
  HostArray t = read(*this, y_true, "y_true", loc);
  HostArray p = read(*this, y_pred, "y_pred", loc);
  if (t.dims != p.dims) {
    detail::raise<ShapeError>(op_name(*this), {},
                              fmt::format("y_true (one-hot) and y_pred must have the same shape, "
                                          "got {} and {}",
                                          t.shape(), p.shape()),
                              loc);
  }
  require_classes(*this, p, loc);
  int64_t n = p.dims.back();
  std::vector<int64_t> dims(p.dims.begin(), p.dims.end() - 1);
  int64_t rows = Shape(dims).num_elements();
  Values out{{}, Shape(dims)};
  for (int64_t r = 0; r < rows; ++r) {
    double target = p.v[size_t(r * n + argmax_row(t.v, r, n))];
    int64_t above = 0;  // predictions strictly above the label's: ties count as in the top k
    for (int64_t j = 0; j < n; ++j)
      above += p.v[size_t(r * n + j)] > target ? 1 : 0;
    out.values.push_back(above < k_ && !std::isnan(target) ? 1.0 : 0.0);
  }
  return out;
}

ConfusionCounts::ConfusionCounts(double threshold, std::string name, const Loc& loc)
    : Metric(std::move(name)), threshold_(threshold) {
  if (!(threshold >= 0.0 && threshold <= 1.0)) {
    detail::raise<ValueError>(op_name(*this), {},
                              fmt::format("threshold must be in [0, 1], got {}", threshold), loc);
  }
}

namespace {

// y_true, y_pred (shapes checked) and each element's weight, for the confusion-count metrics.
struct Labelled {
  HostArray t, p;
  std::vector<double> w;
};

Labelled read_labelled(const Metric& m, const Tensor& y_true, const Tensor& y_pred,
                       const Tensor& sample_weight, const Loc& loc) {
  Labelled out{read(m, y_true, "y_true", loc), read(m, y_pred, "y_pred", loc), {}};
  HostArray& p = out.p;
  same_shape(m, out.t, p, loc);
  out.w.assign(p.v.size(), 1.0);
  if (sample_weight.defined()) {
    HostArray sw = read(m, sample_weight, "sample_weight", loc);
    // A weight per sample of (n, 1) predictions arrives as (n,): give it the trailing 1.
    if (sw.rank() + 1 == p.rank() && p.dims.back() == 1 && sw.rank() >= 1) sw.dims.push_back(1);
    out.w = broadcast_weight(m, sw, p.dims, loc);
  }
  return out;
}

}  // namespace

void ConfusionCounts::update_state(const Tensor& y_true, const Tensor& y_pred,
                                   const Tensor& sample_weight, Loc loc) {
  Labelled in = read_labelled(*this, y_true, y_pred, sample_weight, loc);
  const HostArray& t = in.t;
  const HostArray& p = in.p;
  const std::vector<double>& w = in.w;
  // Sum into locals first so a batch that throws above leaves the state unchanged.
  double tp = 0, fp = 0, fn = 0;
  for (size_t i = 0; i < p.v.size(); ++i) {
    bool positive = p.v[i] > threshold_;
    bool truth = t.v[i] != 0.0;
    if (positive && truth) tp += w[i];
    if (positive && !truth) fp += w[i];
    if (!positive && truth) fn += w[i];
  }
  tp_ += tp;
  fp_ += fp;
  fn_ += fn;
}

AUC::AUC(int64_t num_thresholds, std::string name, Loc loc) : Metric(std::move(name)) {
  if (num_thresholds < 2) {
    detail::raise<ValueError>(
        op_name(*this), {},
        fmt::format("num_thresholds must be at least 2, got {}", num_thresholds), loc);
  }
  // Keras's evenly spaced thresholds, the ends pushed just outside [0, 1] so that predictions of
  // exactly 0 and 1 fall inside the curve.
  constexpr double kEpsilon = 1e-7;
  thresholds_.push_back(-kEpsilon);
  for (int64_t i = 1; i < num_thresholds - 1; ++i)
    thresholds_.push_back(double(i) / double(num_thresholds - 1));
  thresholds_.push_back(1.0 + kEpsilon);
  reset_state();
}

void AUC::reset_state() {
  tp_.assign(thresholds_.size(), 0.0);
  fp_.assign(thresholds_.size(), 0.0);
  tn_.assign(thresholds_.size(), 0.0);
  fn_.assign(thresholds_.size(), 0.0);
}

void AUC::update_state(const Tensor& y_true, const Tensor& y_pred, const Tensor& sample_weight,
                       Loc loc) {
  Labelled in = read_labelled(*this, y_true, y_pred, sample_weight, loc);
  for (size_t k = 0; k < thresholds_.size(); ++k) {
    for (size_t i = 0; i < in.p.v.size(); ++i) {
      bool positive = in.p.v[i] > thresholds_[k];
      bool truth = in.t.v[i] != 0.0;
      (positive ? (truth ? tp_ : fp_) : (truth ? fn_ : tn_))[k] += in.w[i];
    }
  }
}

double AUC::result_value() const {
  auto rate = [](double a, double b) { return a + b == 0 ? 0.0 : a / (a + b); };
  double area = 0;
  for (size_t k = 0; k + 1 < thresholds_.size(); ++k) {
    double tpr0 = rate(tp_[k], fn_[k]), tpr1 = rate(tp_[k + 1], fn_[k + 1]);
    double fpr0 = rate(fp_[k], tn_[k]), fpr1 = rate(fp_[k + 1], tn_[k + 1]);
    area += (fpr0 - fpr1) * (tpr0 + tpr1) / 2;  // trapezoid between neighbouring thresholds
  }
  return area;
}

}  // namespace kiln::metrics
