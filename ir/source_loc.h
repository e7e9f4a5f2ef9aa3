// Where the user's code made something (a node, an error), and how errors say so.
#pragma once

#include <cstdint>
#include <source_location>
#include <string>
#include <string_view>

#include "kiln/ir/error.h"

namespace kiln::ir {

// Where the user's code created a node. Empty when unknown (e.g. parsed without a loc).
struct SourceLoc {
  std::string file;
  uint32_t line = 0;
  uint32_t column = 0;

  static SourceLoc from(const std::source_location& loc);
  bool empty() const { return file.empty() && line == 0; }
  // "file.cpp:12:5"
  std::string to_string() const;
  bool operator==(const SourceLoc&) const = default;
};

// Adds "at FILE:LINE:COL (scope S)" to an error, when known.
void add_location(Error& error, std::string_view scope, const SourceLoc& loc);

}  // namespace kiln::ir
