#include "kiln/frontend/log.h"

#include <fmt/format.h>

#include <cstdio>
#include <mutex>

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

void log_message(std::string_view message) {
  std::lock_guard lock(state().mutex);
  if (state().sink)
    state().sink(message);
  else
    write_stderr(message);
}

}  // namespace kiln
