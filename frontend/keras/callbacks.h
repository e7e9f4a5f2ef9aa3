// keras.callbacks: the hooks Model::fit calls during training (EarlyStopping, ModelCheckpoint, or
// a lambda (epoch, logs) -> bool), and the handle FitOptions::callbacks holds them by.
#pragma once

#include <concepts>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <source_location>
#include <string>
#include <type_traits>
#include <vector>

#include "kiln/frontend/core/tensor.h"

namespace kiln {

class Model;
using Logs = std::map<std::string, double>;

// Called after each epoch with its number (from 0) and its logs; returning false stops
// training (a lambda at epoch end).
using EpochCallback = std::function<bool(int64_t epoch, const Logs& logs)>;

namespace callbacks {

// keras.callbacks.Callback: hooks fit calls; on_epoch_end returning false stops training.
class Callback {
 public:
  virtual ~Callback() = default;
  virtual void on_train_begin(Model& model) { (void)model; }
  virtual bool on_epoch_end(int64_t epoch, const Logs& logs, Model& model) = 0;
  virtual void on_train_end(Model& model) { (void)model; }
  // After each training batch: its index in the epoch (from 0) and the epoch's logs so far
  // (running means, as the progress bar shows).
  virtual void on_train_batch_end(int64_t batch, const Logs& logs, Model& model) {
    (void)batch, (void)logs, (void)model;
  }
};

// Stops when `monitor` has not improved by more than min_delta for `patience` epochs;
// restore_best_weights puts back the weights of the best epoch at the end. mode "auto" minimizes
// unless the name contains "acc".
class EarlyStopping : public Callback {
 public:
  explicit EarlyStopping(std::string monitor = "val_loss", int64_t patience = 0,
                         double min_delta = 0.0, std::string mode = "auto",
                         bool restore_best_weights = false,
                         std::source_location loc = std::source_location::current());
  void on_train_begin(Model& model) override;
  bool on_epoch_end(int64_t epoch, const Logs& logs, Model& model) override;
  void on_train_end(Model& model) override;
  // The epoch training stopped at (-1 if it ran to the end).
  int64_t stopped_epoch() const { return state_->stopped_epoch; }

 private:
  struct State {
    std::string monitor, mode;
    int64_t patience;
    double min_delta;
    bool restore;
    bool maximize = false;
    double best = 0;
    bool have_best = false;
    int64_t wait = 0;
    int64_t stopped_epoch = -1;
    std::vector<Tensor> best_weights;
  };
  std::shared_ptr<State> state_;
  std::source_location loc_;
};

// Saves the model's weights (safetensors) after each epoch, or only when `monitor` improved.
class ModelCheckpoint : public Callback {
 public:
  explicit ModelCheckpoint(std::string filepath, std::string monitor = "val_loss",
                           bool save_best_only = false, std::string mode = "auto",
                           std::source_location loc = std::source_location::current());
  bool on_epoch_end(int64_t epoch, const Logs& logs, Model& model) override;

 private:
  std::string filepath_, monitor_;
  bool save_best_only_, maximize_;
  std::shared_ptr<std::optional<double>> best_;
  std::source_location loc_;
};

}  // namespace callbacks

// One entry of FitOptions::callbacks: a callback object or a lambda (epoch, logs) -> bool.
class CallbackHandle {
 public:
  template <class C>
  requires std::derived_from<C, callbacks::Callback> CallbackHandle(const C& callback)
      : callback_(std::make_shared<C>(callback)) {}  // NOLINT
  template <class F>
  requires(!std::derived_from<F, callbacks::Callback> &&
           std::is_invocable_r_v<bool, F, int64_t, const Logs&>) CallbackHandle(F fn)
      : callback_(std::make_shared<Lambda>(EpochCallback(std::move(fn)))) {}  // NOLINT
  callbacks::Callback& get() const { return *callback_; }

 private:
  struct Lambda : callbacks::Callback {
    explicit Lambda(EpochCallback f) : fn(std::move(f)) {}
    bool on_epoch_end(int64_t epoch, const Logs& logs, Model&) override { return fn(epoch, logs); }
    EpochCallback fn;
  };
  std::shared_ptr<callbacks::Callback> callback_;
};

}  // namespace kiln
