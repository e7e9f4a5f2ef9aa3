#include "kiln/frontend/keras/metrics.h"

#include <fmt/format.h>

#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/ops.h"

namespace kiln::metrics {

MetricList::MetricList(const std::vector<std::string>& names, const char* what,
                       const std::source_location& loc) {
  for (const std::string& m : names) {
    if (m != "accuracy" && m != "acc") {
      detail::raise<ValueError>(what, {},
                                fmt::format("unknown metric '{}'; known: accuracy (acc)", m), loc);
    }
    accuracy_ = true;
  }
}

std::vector<std::string> MetricList::names() const {
  if (accuracy_) return {"accuracy"};
  return {};
}

std::vector<Tensor> MetricList::batch_sums(const Tensor& y, const Tensor& pred) const {
  if (accuracy_) return {correct_count(y, pred)};
  return {};
}

RunningMeans::RunningMeans(const MetricList& metrics) : names_{"loss"} {
  std::vector<std::string> names = metrics.names();
  names_.insert(names_.end(), names.begin(), names.end());
  sums_.assign(names_.size(), 0.0);
}

void RunningMeans::add(int64_t size, double mean_loss, std::span<const Tensor> sums) {
  KILN_CHECK(sums.size() + 1 == sums_.size(), "a batch with the wrong number of metric sums");
  sums_[0] += mean_loss * double(size);
  for (size_t i = 0; i < sums.size(); ++i)
    sums_[i + 1] += double(sums[i].item<float>());
  samples_ += size;
}

std::vector<std::pair<std::string, double>> RunningMeans::logs() const {
  std::vector<std::pair<std::string, double>> out;
  for (size_t i = 0; i < names_.size(); ++i)
    out.emplace_back(names_[i], sums_[i] / double(samples_));
  return out;
}

std::vector<float> RunningMeans::values() const {
  std::vector<float> out;
  for (double sum : sums_)
    out.push_back(float(sum / double(samples_)));
  return out;
}

bool sparse_labels(const Shape& y, const Shape& pred) {
  if (pred.rank() == 0) return false;
  return y.rank() == pred.rank() - 1 ||
         (y.rank() == pred.rank() && y.dims().back() == 1 && pred.dims().back() > 1);
}

Tensor correct_count(const Tensor& y, const Tensor& pred) {
  Tensor hits;
  if (sparse_labels(y.shape(), pred.shape())) {
    Tensor labels = y.rank() == pred.rank() ? squeeze(y, -1) : y;
    hits = equal(argmax(pred, -1), cast(labels, i64));
  } else if (pred.shape().dims().back() == 1) {
    hits = equal(greater(pred, 0.5), greater(cast(y, pred.dtype()), 0.5));
  } else {
    hits = equal(argmax(pred, -1), argmax(y, -1));
  }
  return reduce_sum(cast(hits, f32));
}

}  // namespace kiln::metrics
