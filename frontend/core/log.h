// Kiln's message channel: retrace notices and warnings go to one process-wide sink (stderr by
// default), so tests and applications can capture or silence them. KILN_LOG_LEVEL, like
// TensorFlow's TF_CPP_MIN_LOG_LEVEL, hides the less important ones:
//
//   0 (default)  everything: info (retrace notices, a full eager kernel cache) and the rest
//   1            no info
//   2            no info, no warnings (repeated retracing, an ignored KILN_NUM_THREADS)
//   3            nothing: no errors either (Kiln reports errors by throwing; this silences only
//                those it can only print)
//
// Errors thrown as exceptions, fit's progress bar (FitOptions::verbose) and summary() are not
// log messages and are never hidden.
#pragma once

#include <functional>
#include <string_view>

namespace kiln {

// How important a message is.
enum class LogLevel { info = 0, warning = 1, error = 2 };

using LogSink = std::function<void(std::string_view)>;

// Sends every later message to `sink` (an empty sink restores the default: one line on stderr,
// prefixed "kiln: "); returns the sink that was in place. Hidden messages never reach it.
LogSink set_log_sink(LogSink sink);

// Hides messages below `level` (0 to 3, clamped; see above); overrides KILN_LOG_LEVEL.
void set_min_log_level(int level);
// The level in force: set_min_log_level's, else KILN_LOG_LEVEL's (read once), else 0.
int min_log_level();

// Hands one info message (no trailing newline) to the current sink, unless hidden.
void log_message(std::string_view message);
// The same at `level`; warnings and errors reach the sink prefixed "warning: " / "error: ".
void log_message(LogLevel level, std::string_view message);

}  // namespace kiln
