#include "kiln/frontend/log.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

namespace kiln {

namespace {
struct SinkState {
  std::mutex mutex;
  LogSink sink;
};

// The sink is process-wide on purpose (like the default stderr it replaces); the mutex keeps
// messages from concurrent threads whole.
SinkState& state() {
  static SinkState s;
  return s;
}

// -1 until set_min_log_level or the first message reads KILN_LOG_LEVEL.
std::atomic<int>& level_setting() {
  static std::atomic<int> level{-1};
  return level;
}

void write_stderr(std::string_view message) {
  fmt::print(stderr, "kiln: {}\n", message);
}
}  // namespace

namespace detail {
int parse_log_level(const char* text) {
  if (text == nullptr) return -1;
  std::string_view s(text);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  if (s.size() != 1 || s[0] < '0' || s[0] > '3') return -1;
  return s[0] - '0';
}
}  // namespace detail

LogSink set_log_sink(LogSink sink) {
  std::lock_guard lock(state().mutex);
  LogSink previous = std::move(state().sink);
  state().sink = std::move(sink);
  return previous;
}

void set_min_log_level(int level) {
  level_setting() = std::clamp(level, 0, 3);
}

int min_log_level() {
  int level = level_setting().load();
  if (level >= 0) return level;
  const char* text = std::getenv("KILN_LOG_LEVEL");
  int parsed = detail::parse_log_level(text);
  int expected = -1;
  level_setting().compare_exchange_strong(expected, parsed >= 0 ? parsed : 0);
  if (text != nullptr && parsed < 0) {
    log_message(LogLevel::warning,
                fmt::format("ignoring KILN_LOG_LEVEL=\"{}\" (want 0, 1, 2 or 3)", text));
  }
  return level_setting().load();
}

void log_message(std::string_view message) {
  log_message(LogLevel::info, message);
}

void log_message(LogLevel level, std::string_view message) {
  if (static_cast<int>(level) < min_log_level()) return;
  std::string text(message);
  if (level == LogLevel::warning) text = "warning: " + text;
  if (level == LogLevel::error) text = "error: " + text;
  std::lock_guard lock(state().mutex);
  if (state().sink)
    state().sink(text);
  else
    write_stderr(text);
}

}  // namespace kiln
