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

void Error::add_layer_context(std::string_view name, std::string_view class_name) {
  if (has_layer_) return;
  has_layer_ = true;
  add_context(fmt::format("in layer '{}' ({})", name, class_name));
}

}  // namespace kiln
