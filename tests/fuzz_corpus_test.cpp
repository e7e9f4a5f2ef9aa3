// Replays the fuzzers' corpora (fuzz/corpus/<target>/) through the fuzz targets (fuzz/targets.h)
// in the ordinary suite, with any compiler and no sanitizer: the seeds written by Kiln's own
// writers, and every input that once made a reader fail (fuzz/corpus/<target>/regression-*,
// docs/fuzzing.md), which so stays fixed. A target fails by crashing, by aborting on a broken
// invariant, or by letting an exception other than kiln::Error out.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "targets.h"

namespace fs = std::filesystem;

namespace {

std::vector<fs::path> corpus(const std::string& target) {
  std::vector<fs::path> files;
  for (const auto& entry :
       fs::directory_iterator(fs::path(KILN_SOURCE_DIR) / "fuzz/corpus" / target))
    if (entry.is_regular_file()) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace

TEST_CASE("every fuzz target takes every input of its corpus", "[fuzz]") {
  for (const kiln::fuzz::Target& target : kiln::fuzz::targets()) {
    const std::vector<fs::path> files = corpus(target.name);
    INFO(target.name);
    CHECK(!files.empty());  // the seeds are there
    for (const fs::path& file : files) {
      INFO(file.string());
      const std::string bytes = read(file);
      CHECK(target.run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()) == 0);
    }
  }
}

TEST_CASE("fuzz targets take empty and one-byte inputs", "[fuzz]") {
  const uint8_t byte = 0;
  for (const kiln::fuzz::Target& target : kiln::fuzz::targets()) {
    INFO(target.name);
    CHECK(target.run(&byte, 0) == 0);
    CHECK(target.run(&byte, 1) == 0);
  }
}
