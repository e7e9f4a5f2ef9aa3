// Collecting Kiln's log in a test.
#pragma once

#include "kiln/frontend/core/log.h"

#include <string>
#include <string_view>
#include <vector>

namespace kiln::testing {

// Collects the log messages while it lives, then restores the sink it replaced.
struct LogCapture {
  std::vector<std::string> lines;
  LogSink previous;
  LogCapture() {
    previous = set_log_sink([this](std::string_view m) { lines.emplace_back(m); });
  }
  ~LogCapture() { set_log_sink(previous); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  // Whether a message contains `text`.
  bool contains(const std::string& text) const {
    for (const std::string& line : lines)
      if (line.find(text) != std::string::npos) return true;
    return false;
  }
};

}  // namespace kiln::testing
