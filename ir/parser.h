// Reads the IR text form that ir::print writes (see printer.h for the syntax).
#pragma once

#include <string>
#include <string_view>

#include "kiln/ir/function.h"

namespace kiln::ir {

struct ParseOptions {
  // Check every node against its op's shape-inference rule (result types as written, valid
  // attributes) and every update (target is a parameter, same type, at most one per parameter).
  // Off: only the syntax, the names and the signature are checked, so a test can build IR the
  // verifier would reject.
  bool verify = true;
};

// Parses one function. Every error is a kiln::ParseError whose message starts with
// "line:column: ".
Function parse(std::string_view text, const ParseOptions& options = {});
// Reads and parses a file; a file that cannot be read is an IOError, a parse error's message
// starts with "path:line:column: ".
Function parse_file(const std::string& path, const ParseOptions& options = {});

}  // namespace kiln::ir
