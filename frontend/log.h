// Kiln's message channel: retrace notices and warnings go to one process-wide sink (stderr by
// default), so tests and applications can capture or silence them.
#pragma once

#include <functional>
#include <string_view>

namespace kiln {

using LogSink = std::function<void(std::string_view)>;

// Sends every later message to `sink` (an empty sink restores the default: one line on stderr,
// prefixed "kiln: "); returns the sink that was in place.
LogSink set_log_sink(LogSink sink);

// Hands one message (no trailing newline) to the current sink.
void log_message(std::string_view message);

}  // namespace kiln
