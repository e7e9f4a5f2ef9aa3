// The level below which Kiln hides its messages (KILN_LOG_LEVEL, set_min_log_level; levels in
// frontend/core/log.h). It lives in the runtime so that the runtime's own warnings (an ignored
// KILN_NUM_THREADS) and the frontend's log obey one setting.
#pragma once

namespace kiln::runtime {

// Reads a KILN_LOG_LEVEL value: a digit 0 to 3 (surrounding whitespace allowed); -1 otherwise.
int parse_log_level(const char* text);
// Hides messages below `level` (0 to 3, clamped); overrides KILN_LOG_LEVEL.
void set_min_log_level(int level);
// The level in force: set_min_log_level's, else KILN_LOG_LEVEL's (read once), else 0.
int min_log_level();

}  // namespace kiln::runtime
