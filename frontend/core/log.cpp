#include "kiln/frontend/core/log.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

#include "kiln/runtime/log_level.h"

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

void write_stderr(std::string_view message) {
  fmt::print(stderr, "kiln: {}\n", message);
}
}  // namespace

LogSink set_log_sink(LogSink sink) {
  std::lock_guard lock(state().mutex);
  LogSink previous = std::move(state().sink);
  state().sink = std::move(sink);
  return previous;
}

void set_min_log_level(int level) {
  runtime::set_min_log_level(level);
}

int min_log_level() {
  const int level = runtime::min_log_level();
  // A malformed KILN_LOG_LEVEL is warned about once (the warning itself asks for the level).
  static std::atomic<bool> checked{false};
  if (!checked.exchange(true)) {
    const char* text = std::getenv("KILN_LOG_LEVEL");
    if (text != nullptr && runtime::parse_log_level(text) < 0) {
      log_message(LogLevel::warning,
                  fmt::format("ignoring KILN_LOG_LEVEL=\"{}\" (want 0, 1, 2 or 3)", text));
    }
  }
  return level;
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
