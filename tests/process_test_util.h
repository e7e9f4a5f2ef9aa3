// Running programs from tests without a shell: an argument vector in, output and status out.
#pragma once

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <source_location>
#include <sstream>
#include <string>
#include <vector>

#include "kiln/frontend/process.h"

namespace kiln::testing {

struct Outcome {
  int status = -1;
  std::string out;  // standard output and (unless left out) error together
};

// Runs argv[0] (looked up on PATH) with the arguments argv[1...], no shell involved, through
// the same kiln::detail::run_program that Kiln uses, and captures its output and exit status
// (127 when there is no such program, -1 when it cannot start or is killed by a signal).
inline Outcome run(const std::vector<std::string>& argv, bool with_stderr = true) {
  REQUIRE(!argv.empty());
  kiln::detail::TempDir dir(std::filesystem::temp_directory_path().string(), "kiln_test_run",
                            "test", std::source_location::current());
  std::string error;
  const int status =
      kiln::detail::run_program(argv, dir.file("out"), error, with_stderr ? "" : dir.file("err"));
  Outcome o;
  if (status == kiln::detail::kProgramNotFound || status < 0) {
    o.status = status == kiln::detail::kProgramNotFound ? 127 : -1;
    o.out = argv[0] + ": " + error;
    return o;
  }
  std::ifstream in(dir.file("out"), std::ios::binary);
  o.out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  o.status = status;
  return o;
}

// `command` split at blanks into a program and its arguments (no quoting, no shell).
inline std::vector<std::string> words(const std::string& command) {
  std::vector<std::string> out;
  std::istringstream in(command);
  for (std::string word; in >> word;)
    out.push_back(word);
  return out;
}

// Runs a command of plain words (see `words`) without a shell.
inline Outcome run_words(const std::string& command) {
  return run(words(command));
}

// Whether `program` is an executable on PATH.
inline bool have(const std::string& program) {
  return !kiln::detail::find_program(program).empty();
}

}  // namespace kiln::testing
