#include "kiln/frontend/keras/tensorboard.h"

#include <filesystem>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/formats/event_file.h"

namespace kiln::callbacks {

namespace fs = std::filesystem;

struct TensorBoard::State {
  std::string log_dir;
  int64_t every = 0;  // batches between batch summaries; 0: epoch summaries only
  int64_t step = 0;   // training batches seen since fit began
  std::unique_ptr<detail::EventFile> train, validation;
  std::source_location loc;
};

namespace {

using Scalars = std::vector<std::pair<std::string, float>>;

int64_t batches_between(const UpdateFreq& freq, const std::source_location& loc) {
  if (const auto* text = std::get_if<std::string>(&freq)) {
    if (*text == "epoch") return 0;
    if (*text == "batch") return 1;
    detail::raise<ValueError>(
        "TensorBoard", {},
        fmt::format("update_freq must be \"epoch\", \"batch\" or a number of batches, got \"{}\"",
                    *text),
        loc);
  }
  int64_t n = std::get<int64_t>(freq);
  if (n <= 0) {
    detail::raise<ValueError>(
        "TensorBoard", {},
        fmt::format("update_freq must be a positive number of batches, got {}", n), loc);
  }
  return n;
}

}  // namespace

TensorBoard::TensorBoard(std::string log_dir, UpdateFreq update_freq, std::source_location loc)
    : state_(std::make_shared<State>()) {
  if (log_dir.empty()) detail::raise<ValueError>("TensorBoard", {}, "log_dir is empty", loc);
  state_->log_dir = std::move(log_dir);
  state_->every = batches_between(update_freq, loc);
  state_->loc = loc;
}

const std::string& TensorBoard::log_dir() const {
  return state_->log_dir;
}

void TensorBoard::on_train_begin(Model&) {
  State& s = *state_;
  s.train.reset();
  s.validation.reset();
  s.step = 0;
  // Made here so that an error names the folder the user gave, not train/ inside it.
  detail::make_folder(s.log_dir, "log_dir", "TensorBoard", s.loc);
  s.train = std::make_unique<detail::EventFile>((fs::path(s.log_dir) / "train").string(),
                                                "TensorBoard", s.loc);
}

void TensorBoard::on_train_batch_end(int64_t, const Logs& logs, Model&) {
  State& s = *state_;
  ++s.step;
  if (s.every == 0 || s.step % s.every != 0 || !s.train) return;
  Scalars scalars;
  for (const auto& [name, value] : logs)
    scalars.emplace_back("batch_" + name, static_cast<float>(value));
  s.train->write_scalars(s.step, scalars);
}

bool TensorBoard::on_epoch_end(int64_t epoch, const Logs& logs, Model&) {
  State& s = *state_;
  if (!s.train) return true;
  Scalars train, validation;
  for (const auto& [name, value] : logs) {
    if (name.starts_with("val_"))
      validation.emplace_back("epoch_" + name.substr(4), static_cast<float>(value));
    else
      train.emplace_back("epoch_" + name, static_cast<float>(value));
  }
  s.train->write_scalars(epoch, train);
  if (!validation.empty()) {
    if (!s.validation) {
      s.validation = std::make_unique<detail::EventFile>(
          (fs::path(s.log_dir) / "validation").string(), "TensorBoard", s.loc);
    }
    s.validation->write_scalars(epoch, validation);
  }
  return true;
}

void TensorBoard::on_train_end(Model&) {
  state_->train.reset();
  state_->validation.reset();
}

}  // namespace kiln::callbacks
