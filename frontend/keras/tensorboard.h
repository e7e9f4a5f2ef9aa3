// keras.callbacks.TensorBoard: fit's loss and metrics as TensorBoard scalars.
//
//   k::callbacks::TensorBoard tensorboard("logs");           // per epoch
//   k::callbacks::TensorBoard every_100("logs", 100);        // and every 100 batches
//   model.fit(x, y, {.epochs = 5, .callbacks = {tensorboard}});
//   // then: tensorboard --logdir logs
#pragma once

#include <cstdint>
#include <memory>
#include <source_location>
#include <string>
#include <variant>

#include "kiln/frontend/keras/model.h"

namespace kiln::callbacks {

// How often TensorBoard writes batch summaries: "epoch" (never: epoch summaries only), "batch"
// (every batch) or every N batches.
using UpdateFreq = std::variant<std::string, int64_t>;

// Writes event files as Keras does: `log_dir`/train/events.out.tfevents.* with "epoch_loss",
// "epoch_accuracy", ... at step = epoch (from 0), and, when fit has validation data,
// `log_dir`/validation/ with the val_ metrics under the same tags. With update_freq N it also
// writes "batch_loss", ... (the epoch's running means) at every N-th step, counting training
// batches from 1 over the whole fit. Each fit starts new files. A log_dir that cannot be made
// (a file in the way, no permission) is an IOError naming it when fit starts; a bad update_freq
// is a ValueError here.
class TensorBoard : public Callback {
 public:
  explicit TensorBoard(std::string log_dir = "logs", UpdateFreq update_freq = "epoch",
                       std::source_location loc = std::source_location::current());
  void on_train_begin(Model& model) override;
  void on_train_batch_end(int64_t batch, const Logs& logs, Model& model) override;
  bool on_epoch_end(int64_t epoch, const Logs& logs, Model& model) override;
  void on_train_end(Model& model) override;

  const std::string& log_dir() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace kiln::callbacks
