// Running tests/keras_h5_fixtures.py (h5py) from hdf5_test and keras_h5_test: fixtures written
// the way Keras writes them, and dumps of files Kiln wrote. Needs the KILN_H5PY_PYTHON and
// KILN_H5_FIXTURES definitions (tests/CMakeLists.txt).
#pragma once

#include <catch2/catch.hpp>

#include <kiln/frontend/process.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace h5fixtures {

// Runs the fixture script with `args` and returns what it printed; a failed run fails the test
// (a missing h5py too: scripts/setup.sh installs python3-h5py).
inline std::string run(const std::vector<std::string>& args) {
  std::string python = KILN_H5PY_PYTHON;
  if (python.empty())
    FAIL("no python3 with h5py was found at configure time: run scripts/setup.sh");
  std::vector<std::string> argv{python, KILN_H5_FIXTURES};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string log = args.size() > 1 ? args[1] + ".log" : "h5_fixtures.log";
  std::string error;
  int rc = kiln::detail::run_program(argv, log, error);
  std::ifstream in(log);
  std::stringstream out;
  out << in.rdbuf();
  std::remove(log.c_str());
  if (rc != 0) FAIL("keras_h5_fixtures.py failed (" << rc << " " << error << "):\n" << out.str());
  return out.str();
}

// Writes a Keras weights file at `path` with the script's options ("strings=fixed", "full", ...).
inline void keras(const std::string& path, std::vector<std::string> options = {}) {
  std::vector<std::string> args{"keras", path};
  args.insert(args.end(), options.begin(), options.end());
  run(args);
}

// Writes several Keras weights files in one run of the script: {path, options...} each.
inline void keras_many(const std::vector<std::vector<std::string>>& files) {
  std::vector<std::string> args;
  for (const std::vector<std::string>& file : files) {
    if (!args.empty()) args.push_back("+");
    args.push_back("keras");
    args.insert(args.end(), file.begin(), file.end());
  }
  run(args);
}

}  // namespace h5fixtures
