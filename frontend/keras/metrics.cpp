#include "kiln/frontend/keras/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <map>

#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/ops.h"
#include "kiln/frontend/keras/losses.h"

namespace kiln::metrics {

namespace {

// compile()'s "accuracy": Keras picks binary, sparse categorical or categorical accuracy from
// the loss and, failing that, from the shapes of the first batch (the compiled step's trace).
class ResolvedAccuracy : public MeanMetricWrapper {
 public:
  ResolvedAccuracy(std::string name, const losses::Loss* loss)
      : MeanMetricWrapper(std::move(name)),
        binary_loss_(dynamic_cast<const losses::BinaryCrossentropy*>(loss) != nullptr),
        sparse_loss_(dynamic_cast<const losses::SparseCategoricalCrossentropy*>(loss) != nullptr) {}
  std::string kind() const override { return "accuracy"; }
  Tensor values(const Tensor& y_true, const Tensor& y_pred,
                const std::source_location& loc) const override {
    bool one_unit = y_pred.rank() > 0 && y_pred.shape().dims().back() == 1;
    if (binary_loss_ || one_unit) return BinaryAccuracy(0.5, name()).values(y_true, y_pred, loc);
    if (sparse_loss_ || sparse_labels(y_true.shape(), y_pred.shape()))
      return SparseCategoricalAccuracy(name()).values(y_true, y_pred, loc);
    return CategoricalAccuracy(name()).values(y_true, y_pred, loc);
  }

 private:
  bool binary_loss_, sparse_loss_;
};

using Factory = std::function<std::shared_ptr<Metric>(const std::string&, const losses::Loss*)>;

template <class M>
Factory make() {
  return [](const std::string& name, const losses::Loss*) {
    auto m = std::make_shared<M>();
    m->set_name(name);
    return m;
  };
}

// Every name get() knows, Keras's snake-case names and aliases first, then the class names.
const std::vector<std::pair<std::string, Factory>>& registry() {
  static const std::vector<std::pair<std::string, Factory>> table = {
      {"accuracy",
       [](const std::string& name, const losses::Loss* loss) {
         return std::make_shared<ResolvedAccuracy>(name, loss);
       }},
      {"acc",
       [](const std::string& name, const losses::Loss* loss) {
         return std::make_shared<ResolvedAccuracy>(name, loss);
       }},
      {"binary_accuracy", make<BinaryAccuracy>()},
      {"categorical_accuracy", make<CategoricalAccuracy>()},
      {"sparse_categorical_accuracy", make<SparseCategoricalAccuracy>()},
      {"top_k_categorical_accuracy", make<TopKCategoricalAccuracy>()},
      {"sparse_top_k_categorical_accuracy", make<SparseTopKCategoricalAccuracy>()},
      {"mean_squared_error", make<MeanSquaredError>()},
      {"mse", make<MeanSquaredError>()},
      {"mean_absolute_error", make<MeanAbsoluteError>()},
      {"mae", make<MeanAbsoluteError>()},
      {"root_mean_squared_error", make<RootMeanSquaredError>()},
      {"rmse", make<RootMeanSquaredError>()},
      {"precision", make<Precision>()},
      {"recall", make<Recall>()},
      {"auc", make<AUC>()},
      {"Accuracy", make<Accuracy>()},
      {"BinaryAccuracy", make<BinaryAccuracy>()},
      {"CategoricalAccuracy", make<CategoricalAccuracy>()},
      {"SparseCategoricalAccuracy", make<SparseCategoricalAccuracy>()},
      {"TopKCategoricalAccuracy", make<TopKCategoricalAccuracy>()},
      {"SparseTopKCategoricalAccuracy", make<SparseTopKCategoricalAccuracy>()},
      {"MeanSquaredError", make<MeanSquaredError>()},
      {"MeanAbsoluteError", make<MeanAbsoluteError>()},
      {"RootMeanSquaredError", make<RootMeanSquaredError>()},
      {"Precision", make<Precision>()},
      {"Recall", make<Recall>()},
      {"AUC", make<AUC>()},
  };
  return table;
}

}  // namespace

std::shared_ptr<Metric> get(const std::string& name, const losses::Loss* loss, const char* what,
                            const std::source_location& loc) {
  for (const auto& [key, factory] : registry())
    if (key == name) return factory(name, loss);
  std::vector<std::string> known;
  for (const auto& entry : registry())
    known.push_back(entry.first);
  detail::raise<ValueError>(
      what, {},
      fmt::format("unknown metric '{}'; known: {} (or pass a k::metrics object)", name,
                  fmt::join(known, ", ")),
      loc);
}

std::vector<MetricSpec> MetricList::saved_specs(const std::vector<std::string>& names,
                                                const losses::Loss* loss, const char* what,
                                                const std::source_location& loc) {
  std::vector<MetricSpec> out;
  for (const std::string& saved : names) {
    size_t eq = saved.find('=');
    if (eq == std::string::npos) {
      out.emplace_back(saved);
      continue;
    }
    std::shared_ptr<Metric> m = get(saved.substr(eq + 1), loss, what, loc);
    m->set_name(saved.substr(0, eq));
    out.push_back(MetricSpec(std::move(m)));
  }
  return out;
}

std::shared_ptr<Metric> MetricSpec::resolve(const losses::Loss* loss, const char* what,
                                            const std::source_location& loc) const {
  // A copy per compile(), so that two models compiled from one spec count apart.
  return copy_ ? copy_() : get(name_, loss, what, loc);
}

std::string MetricSpec::saved_name() const {
  if (!copy_) return name_;
  std::shared_ptr<Metric> m = copy_();
  return m->name() == m->kind() ? m->kind() : m->name() + "=" + m->kind();
}

MetricList::MetricList(const std::vector<MetricSpec>& metrics, const char* what,
                       const std::source_location& loc, const losses::Loss* loss) {
  std::vector<std::string> seen{"loss"};
  for (const MetricSpec& spec : metrics) {
    std::shared_ptr<Metric> m = spec.resolve(loss, what, loc);
    if (std::find(seen.begin(), seen.end(), m->name()) != seen.end()) {
      detail::raise<ValueError>(what, {},
                                fmt::format("two metrics would report as '{}' (or it is the "
                                            "loss's name): give the metric objects distinct "
                                            "names",
                                            m->name()),
                                loc);
    }
    seen.push_back(m->name());
    m->reset_state();
    metrics_.push_back(std::move(m));
  }
}

MetricList::MetricList(const std::vector<std::string>& names, const char* what,
                       const std::source_location& loc, const losses::Loss* loss)
    : MetricList(saved_specs(names, loss, what, loc), what, loc, loss) {}

std::vector<std::string> MetricList::names() const {
  std::vector<std::string> out;
  for (const auto& m : metrics_)
    out.push_back(m->name());
  return out;
}

std::vector<Tensor> MetricList::batch_sums(const Tensor& y, const Tensor& pred) const {
  std::vector<Tensor> out;
  for (const auto& m : metrics_)
    out.push_back(m->batch_state(y, pred));
  return out;
}

RunningMeans::RunningMeans(const MetricList& metrics) : RunningMeans({&metrics}, {""}) {}

RunningMeans::RunningMeans(const std::vector<const MetricList*>& lists,
                           const std::vector<std::string>& prefixes)
    : names_{"loss"}, loss_sums_(1, 0.0) {
  KILN_CHECK(lists.size() == prefixes.size() && !lists.empty(), "one prefix per metric list");
  if (lists.size() > 1) {
    for (const std::string& prefix : prefixes) {
      names_.push_back(prefix + "loss");
      loss_sums_.push_back(0.0);
    }
  }
  for (size_t l = 0; l < lists.size(); ++l) {
    for (const auto& m : lists[l]->metrics()) {
      names_.push_back(prefixes[l] + m->name());
      metrics_.push_back(m);
      m->reset_state();
    }
  }
}

void RunningMeans::add(int64_t size, double mean_loss, std::span<const Tensor> sums) {
  add(size, std::span<const double>(&mean_loss, 1), sums);
}

void RunningMeans::add(int64_t size, std::span<const double> mean_losses,
                       std::span<const Tensor> sums) {
  KILN_CHECK(sums.size() == metrics_.size(), "a batch with the wrong number of metric sums");
  KILN_CHECK(mean_losses.size() == loss_sums_.size(), "a batch with the wrong number of losses");
  for (size_t i = 0; i < loss_sums_.size(); ++i)
    loss_sums_[i] += mean_losses[i] * double(size);
  for (size_t i = 0; i < sums.size(); ++i)
    metrics_[i]->merge_state(sums[i]);
  samples_ += size;
}

std::vector<std::pair<std::string, double>> RunningMeans::logs() const {
  std::vector<std::pair<std::string, double>> out;
  for (size_t i = 0; i < loss_sums_.size(); ++i)
    out.emplace_back(names_[i], loss_sums_[i] / double(samples_));
  for (size_t i = 0; i < metrics_.size(); ++i)
    out.emplace_back(names_[loss_sums_.size() + i], metrics_[i]->result_value());
  return out;
}

std::vector<float> RunningMeans::values() const {
  std::vector<float> out;
  for (const auto& [name, value] : logs())
    out.push_back(float(value));
  return out;
}

bool sparse_labels(const Shape& y, const Shape& pred) {
  if (pred.rank() == 0) return false;
  return y.rank() == pred.rank() - 1 ||
         (y.rank() == pred.rank() && y.dims().back() == 1 && pred.dims().back() > 1);
}

}  // namespace kiln::metrics
