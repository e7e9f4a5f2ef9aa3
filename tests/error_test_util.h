// Helpers for tests of error messages: the message an expected exception carries, and a check
// that it names what it should and the test's own line.
#pragma once

#include <catch2/catch.hpp>

#include <exception>
#include <initializer_list>
#include <string>

namespace kiln::testing {

// The message of the E that f throws; fails the test on no exception or another type.
template <class E, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("wrong exception type: " << e.what());
  }
  FAIL("no exception thrown");
  return "";
}

// Checks that `msg` names every part and the location `file`:`line`.
inline void check_message_at(const std::string& msg, std::initializer_list<std::string> parts,
                             const std::string& file, int line) {
  INFO(msg);
  for (const std::string& part : parts)
    CHECK_THAT(msg, Catch::Contains(part));
  CHECK_THAT(msg, Catch::Contains(file + ":" + std::to_string(line) + ":"));
}

}  // namespace kiln::testing
