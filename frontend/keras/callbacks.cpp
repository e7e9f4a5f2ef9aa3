#include "kiln/frontend/keras/callbacks.h"

#include <fmt/format.h>

#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/keras/model.h"

namespace kiln::callbacks {

namespace {
bool maximizes(const std::string& monitor, const std::string& mode, const char* what,
               const std::source_location& loc) {
  if (mode == "min") return false;
  if (mode == "max") return true;
  if (mode != "auto") {
    detail::raise<ValueError>(what, {},
                              fmt::format("mode must be auto, min or max, got '{}'", mode), loc);
  }
  return monitor.find("acc") != std::string::npos;
}

double monitored(const Logs& logs, const std::string& monitor, const char* what,
                 const std::source_location& loc) {
  auto it = logs.find(monitor);
  if (it == logs.end()) {
    std::vector<std::string> names;
    for (const auto& [name, value] : logs)
      names.push_back(name);
    detail::raise<ValueError>(what, {},
                              fmt::format("fit's logs have no '{}' (they have: {}); add "
                                          "validation data for val_ metrics",
                                          monitor, fmt::join(names, ", ")),
                              loc);
  }
  return it->second;
}
}  // namespace

EarlyStopping::EarlyStopping(std::string monitor, int64_t patience, double min_delta,
                             std::string mode, bool restore_best_weights, std::source_location loc)
    : state_(std::make_shared<State>()), loc_(loc) {
  if (patience < 0 || min_delta < 0) {
    detail::raise<ValueError>("EarlyStopping", {}, "patience and min_delta must be >= 0", loc);
  }
  state_->maximize = maximizes(monitor, mode, "EarlyStopping", loc);
  state_->monitor = std::move(monitor);
  state_->mode = std::move(mode);
  state_->patience = patience;
  state_->min_delta = min_delta;
  state_->restore = restore_best_weights;
}

void EarlyStopping::on_train_begin(Model&) {
  state_->have_best = false;
  state_->wait = 0;
  state_->stopped_epoch = -1;
  state_->best_weights.clear();
}

bool EarlyStopping::on_epoch_end(int64_t epoch, const Logs& logs, Model& model) {
  State& s = *state_;
  double value = monitored(logs, s.monitor, "EarlyStopping", loc_);
  bool better =
      !s.have_best || (s.maximize ? value > s.best + s.min_delta : value < s.best - s.min_delta);
  if (better) {
    s.best = value;
    s.have_best = true;
    s.wait = 0;
    if (s.restore) {
      s.best_weights.clear();
      for (const Variable& v : model.weights())
        s.best_weights.push_back(v.value());
    }
    return true;
  }
  if (++s.wait >= s.patience && epoch > 0) {  // Keras 3: patience epochs without improvement
    s.stopped_epoch = epoch;
    return false;
  }
  return true;
}

void EarlyStopping::on_train_end(Model& model) {
  if (!state_->restore || state_->best_weights.empty() || state_->stopped_epoch < 0) return;
  std::vector<Variable> weights = model.weights();
  for (size_t i = 0; i < weights.size() && i < state_->best_weights.size(); ++i)
    weights[i].assign(state_->best_weights[i]);
}

ModelCheckpoint::ModelCheckpoint(std::string filepath, std::string monitor, bool save_best_only,
                                 std::string mode, std::source_location loc)
    : filepath_(std::move(filepath)),
      monitor_(std::move(monitor)),
      save_best_only_(save_best_only),
      maximize_(maximizes(monitor_, mode, "ModelCheckpoint", loc)),
      best_(std::make_shared<std::optional<double>>()),
      loc_(loc) {}

bool ModelCheckpoint::on_epoch_end(int64_t, const Logs& logs, Model& model) {
  if (save_best_only_) {
    double value = monitored(logs, monitor_, "ModelCheckpoint", loc_);
    std::optional<double>& best = *best_;
    bool better = !best || (maximize_ ? value > *best : value < *best);
    if (!better) return true;
    best = value;
  }
  model.save_weights(filepath_, loc_);
  return true;
}

}  // namespace kiln::callbacks
