// The progress display of fit (keras.utils.Progbar). On a terminal it redraws one line in place,
// at most every `interval` seconds, with a bar, the ETA, the time per step and the running
// values, and leaves the epoch's summary line at the end:
//
//   Epoch 1/5
//   1875/1875 [==============================] - 3s 2ms/step - loss: 0.5012 - accuracy: 0.8231
//
// Elsewhere (a file, a pipe, verbose 2) it prints one line per epoch, when the epoch ends:
//
//   Epoch 1/5 - 1875/1875 - 3s - 2ms/step - loss: 0.5012 - accuracy: 0.8231
//
// The stream, the clock and the terminal decision are parameters, so tests can drive it.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kiln {

// Named running values shown after the bar, in order ("loss", "accuracy", "val_loss", ...).
using ProgressValues = std::vector<std::pair<std::string, double>>;

class Progbar {
 public:
  // Seconds from any fixed origin; steady.
  using Clock = std::function<double()>;

  // `target`: the number of steps, or nullopt when unknown (a dataset of unknown cardinality).
  // `verbose`: 0 prints nothing, 1 the live bar on a terminal and the one-line form elsewhere, 2
  // the one-line form. `prefix` ("Epoch 1/5") is printed above the bar, or starts the line.
  // `terminal` (default: whether standard output is a terminal) picks the form for verbose 1.
  Progbar(std::optional<int64_t> target, int verbose, std::string prefix, std::ostream& out,
          Clock clock, bool terminal, double interval = 0.1);
  // The same on std::cout with a steady clock, asking isatty whether stdout is a terminal.
  Progbar(std::optional<int64_t> target, int verbose, std::string prefix = "");

  // Reports that `current` steps are done, with these values; `finalize` ends the epoch (always
  // drawn, then a newline). Non-final updates redraw only on a terminal, and at most once per
  // interval.
  void update(int64_t current, const ProgressValues& values, bool finalize = false);

  // A steady clock in seconds.
  static double steady_seconds();
  // Whether standard output is a terminal.
  static bool stdout_is_terminal();

 private:
  std::string live_line(int64_t current, const ProgressValues& values, double now) const;
  std::string final_line(int64_t current, const ProgressValues& values, double now) const;
  double seconds_per_step(int64_t current, double now) const;

  std::optional<int64_t> target_;
  int verbose_;
  std::string prefix_;
  std::ostream& out_;
  Clock clock_;
  bool live_;
  double interval_;
  double start_;
  std::optional<double> last_draw_;
  // When the first step ended: later steps are timed from there, so the first step's trace and
  // compile do not inflate the time per step.
  std::optional<std::pair<int64_t, double>> first_step_;
  // The last non-final update: steps done and when.
  std::optional<std::pair<int64_t, double>> last_step_;
};

namespace detail {
// Keras's duration formats: "3s", "1:05", "1:00:05" (ETA); "2ms/step", "15us/step", "3s/step".
std::string format_eta(double seconds);
std::string format_per_step(double seconds);
// " - name: 0.5012" (or 1.2345e-04 when |value| <= 1e-3) for each value.
std::string format_values(const ProgressValues& values);
}  // namespace detail

}  // namespace kiln
