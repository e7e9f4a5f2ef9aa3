#include "kiln/ir/error.h"

#include <fmt/format.h>

namespace kiln {

void Error::prefix(std::string_view prefix) {
  message_ = fmt::format("{}: {}", prefix, message_);
}

void Error::add_context(std::string_view line) {
  message_ = fmt::format("{}\n  {}", message_, line);
}

namespace detail {
void internal_check_failed(const char* expr, const char* file, int line, std::string_view what) {
  throw InternalError(
      fmt::format("internal error: {} ({} failed at {}:{})", what, expr, file, line));
}
}  // namespace detail

}  // namespace kiln
