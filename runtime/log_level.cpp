#include "kiln/runtime/log_level.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <string_view>

namespace kiln::runtime {

namespace {
// -1 until set_min_log_level or the first min_log_level reads KILN_LOG_LEVEL.
std::atomic<int> g_level{-1};
}  // namespace

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

void set_min_log_level(int level) {
  g_level = std::clamp(level, 0, 3);
}

int min_log_level() {
  int level = g_level.load();
  if (level >= 0) return level;
  const int parsed = parse_log_level(std::getenv("KILN_LOG_LEVEL"));
  int expected = -1;
  g_level.compare_exchange_strong(expected, parsed >= 0 ? parsed : 0);
  return g_level.load();
}

}  // namespace kiln::runtime
