#include "kiln/frontend/keras/progbar.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <iostream>

namespace kiln {

namespace {
constexpr int kBarWidth = 30;
// Erases from the cursor to the end of the line (ANSI EL), so a shorter line leaves nothing of
// the longer one it overwrites.
constexpr const char* kEraseToEnd = "\x1b[K";
}  // namespace

namespace detail {

std::string format_eta(double seconds) {
  auto s = static_cast<int64_t>(std::max(0.0, seconds));
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60);
  if (s >= 60) return fmt::format("{}:{:02}", s / 60, s % 60);
  return fmt::format("{}s", s);
}

std::string format_per_step(double seconds) {
  if (seconds >= 1 || seconds <= 0) return fmt::format("{:.0f}s/step", std::max(0.0, seconds));
  if (seconds >= 1e-3) return fmt::format("{:.0f}ms/step", seconds * 1e3);
  return fmt::format("{:.0f}us/step", seconds * 1e6);
}

std::string format_values(const ProgressValues& values) {
  std::string out;
  for (const auto& [name, value] : values) {
    if (std::abs(value) > 1e-3)
      out += fmt::format(" - {}: {:.4f}", name, value);
    else
      out += fmt::format(" - {}: {:.4e}", name, value);
  }
  return out;
}

}  // namespace detail

Progbar::Progbar(std::optional<int64_t> target, int verbose, std::string prefix, std::ostream& out,
                 Clock clock, bool terminal, double interval)
    : target_(target),
      verbose_(verbose),
      prefix_(std::move(prefix)),
      out_(out),
      clock_(std::move(clock)),
      live_(verbose == 1 && terminal),
      interval_(interval),
      start_(clock_()) {
  if (live_ && !prefix_.empty()) out_ << prefix_ << "\n" << std::flush;
}

Progbar::Progbar(std::optional<int64_t> target, int verbose, std::string prefix)
    : Progbar(target, verbose, std::move(prefix), std::cout, &Progbar::steady_seconds,
              verbose == 1 && stdout_is_terminal()) {}

double Progbar::steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

bool Progbar::stdout_is_terminal() {
  return isatty(STDOUT_FILENO) != 0;
}

double Progbar::seconds_per_step(int64_t current, double now) const {
  if (first_step_ && current > first_step_->first)
    return (now - first_step_->second) / double(current - first_step_->first);
  return current > 0 ? (now - start_) / double(current) : 0.0;
}

std::string Progbar::live_line(int64_t current, const ProgressValues& values, double now) const {
  double per_step = seconds_per_step(current, now);
  if (!target_) {
    return fmt::format("{}/Unknown - {:.0f}s {}{}", current, now - start_,
                       detail::format_per_step(per_step), detail::format_values(values));
  }
  int64_t target = *target_;
  int digits = static_cast<int>(std::to_string(target).size());
  std::string bar = fmt::format("{:>{}}/{} [", current, digits, target);
  double done = target > 0 ? std::min(1.0, double(current) / double(target)) : 1.0;
  auto width = static_cast<int>(kBarWidth * done);
  if (width > 0) bar += std::string(size_t(width - 1), '=') + (current < target ? ">" : "=");
  bar += std::string(size_t(kBarWidth - width), '.') + "]";
  double eta = per_step * double(std::max<int64_t>(0, target - current));
  return fmt::format("{} - ETA: {} - {}{}", bar, detail::format_eta(eta),
                     detail::format_per_step(per_step), detail::format_values(values));
}

std::string Progbar::final_line(int64_t current, const ProgressValues& values, double now) const {
  // An unknown target is known at the end.
  std::string count = fmt::format("{}/{}", current, target_.value_or(current));
  // Timed to the last training step, so validation after it does not count.
  double step_end = last_step_ && last_step_->first == current ? last_step_->second : now;
  std::string per_step = detail::format_per_step(seconds_per_step(current, step_end));
  std::string vals = detail::format_values(values);
  if (live_) {
    return fmt::format("{} [{}] - {:.0f}s {}{}", count, std::string(kBarWidth, '='), now - start_,
                       per_step, vals);
  }
  std::string lead = prefix_.empty() ? "" : prefix_ + " - ";
  return fmt::format("{}{} - {:.0f}s - {}{}", lead, count, now - start_, per_step, vals);
}

void Progbar::update(int64_t current, const ProgressValues& values, bool finalize) {
  if (verbose_ == 0) return;
  double now = clock_();
  if (!first_step_ && current > 0) first_step_ = {current, now};
  if (!finalize) last_step_ = {current, now};
  if (finalize) {
    std::string line = final_line(current, values, now);
    if (live_)
      out_ << "\r" << line << kEraseToEnd << "\n" << std::flush;
    else
      out_ << line << "\n" << std::flush;
    return;
  }
  if (!live_) return;
  if (last_draw_ && now - *last_draw_ < interval_) return;
  last_draw_ = now;
  out_ << "\r" << live_line(current, values, now) << kEraseToEnd << std::flush;
}

}  // namespace kiln
