// Replays the fuzzers' corpora (fuzz/corpus/<target>/) through the fuzz targets (fuzz/targets.h)
// in the ordinary suite, with any compiler and no sanitizer: the seeds written by Kiln's own
// writers, and every input that once made a reader fail (fuzz/corpus/<target>/regression-*,
// docs/fuzzing.md), which so stays fixed. A target fails by crashing, by aborting on a broken
// invariant, or by letting an exception other than kiln::Error out. Also checks that the list of
// targets, their sources and their corpus folders agree.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "file_test_util.h"
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

}  // namespace

TEST_CASE("every fuzz target takes every input of its corpus", "[fuzz]") {
  for (const kiln::fuzz::Target& target : kiln::fuzz::targets()) {
    const std::vector<fs::path> files = corpus(target.name);
    INFO(target.name);
    CHECK(!files.empty());  // the seeds are there
    for (const fs::path& file : files) {
      INFO(file.string());
      const std::string bytes = kiln::testing::read_bytes(file.string());
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

// scripts/fuzz.sh runs one target per folder of fuzz/corpus, and fuzz/CMakeLists.txt builds one
// per fuzz/*_fuzz.cpp: a folder without a target, or a target without seeds, is a mistake.
TEST_CASE("every corpus folder has a fuzz target and every target a corpus", "[fuzz]") {
  std::set<std::string> names;
  for (const kiln::fuzz::Target& target : kiln::fuzz::targets()) {
    INFO(target.name);
    CHECK(names.insert(target.name).second);  // no target twice
    const bool has_folder =
        fs::is_directory(fs::path(KILN_SOURCE_DIR) / "fuzz/corpus" / target.name);
    CHECK(has_folder);
    if (has_folder) CHECK(!corpus(target.name).empty());
  }
  std::set<std::string> folders;
  for (const auto& entry : fs::directory_iterator(fs::path(KILN_SOURCE_DIR) / "fuzz/corpus"))
    if (entry.is_directory()) folders.insert(entry.path().filename().string());
  CHECK(folders == names);
  std::set<std::string> sources;
  for (const auto& entry : fs::directory_iterator(fs::path(KILN_SOURCE_DIR) / "fuzz")) {
    const std::string file = entry.path().filename().string();
    if (file.ends_with("_fuzz.cpp")) sources.insert(file.substr(0, file.size() - 4));
  }
  CHECK(sources == names);
}
