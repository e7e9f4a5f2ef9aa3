#include "kiln/ir/source_loc.h"

#include <fmt/format.h>

namespace kiln::ir {

SourceLoc SourceLoc::from(const std::source_location& loc) {
  return SourceLoc{loc.file_name(), loc.line(), loc.column()};
}

std::string SourceLoc::to_string() const {
  if (column == 0) return fmt::format("{}:{}", file, line);
  return fmt::format("{}:{}:{}", file, line, column);
}

void add_location(Error& error, std::string_view scope, const SourceLoc& loc) {
  if (loc.empty() && scope.empty()) return;
  std::string where = loc.empty() ? std::string("at unknown location") : "at " + loc.to_string();
  if (!scope.empty()) where += fmt::format(" (scope {})", scope);
  error.add_context(where);
}

}  // namespace kiln::ir
