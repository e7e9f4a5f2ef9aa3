// The persistent cache of compiled code (runtime/disk_cache.h): round trips, the environment's
// settings, and its safety: a corrupt, truncated, foreign or colliding entry is a miss with one
// warning and is removed; an unusable directory turns the cache off with one warning; the size
// bound evicts the least recently used entries; threads and processes may share a directory.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "env_test_util.h"
#include "file_test_util.h"
#include "kiln/runtime/disk_cache.h"
#include "kiln/runtime/log_level.h"

using Catch::Contains;
using kiln::runtime::DiskCache;
using kiln::testing::read_bytes;
using kiln::testing::ScopedEnv;
using kiln::testing::TempDir;
using kiln::testing::write_bytes;
namespace fs = std::filesystem;

namespace {

constexpr size_t kHeaderBytes = 40;  // runtime/disk_cache.cpp's entry layout

// The entry files in `dir`, sorted.
std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Checks that the cache gave exactly one warning (so far) and that it contains `what`.
void check_one_warning(const DiskCache& cache, const std::string& what) {
  const std::vector<std::string> w = cache.warnings();
  REQUIRE(w.size() == 1);
  CHECK_THAT(w[0], Contains(what));
}

// Hides the warnings' stderr lines for a test that provokes them on purpose.
struct QuietLog {
  QuietLog() { kiln::runtime::set_min_log_level(2); }
  ~QuietLog() { kiln::runtime::set_min_log_level(0); }
};

// A bad entry must read as a miss with one warning, be removed, and leave the cache usable.
void check_rejected(DiskCache& cache, const std::string& key, const std::string& why) {
  CHECK_FALSE(cache.get(key).has_value());
  check_one_warning(cache, why);
  CHECK_FALSE(fs::exists(cache.entry_path(key)));
  CHECK(cache.stats().bad_entries == 1);
  // A second get is a quiet miss; a put and get work again.
  CHECK_FALSE(cache.get(key).has_value());
  CHECK(cache.warnings().size() == 1);
  cache.put(key, "fresh");
  CHECK(cache.get(key) == "fresh");
}

}  // namespace

TEST_CASE("disk cache: a put is read back by a get, and by another cache on the directory") {
  TempDir dir;
  DiskCache cache(dir.path.string());
  REQUIRE(cache.enabled());
  std::string payload("ptx\0with zero bytes\xff", 21);
  cache.put("gpu|sm_90|func", payload);
  CHECK(cache.get("gpu|sm_90|func") == payload);
  DiskCache other(dir.path.string());
  CHECK(other.get("gpu|sm_90|func") == payload);
  // An empty payload and an empty key are entries like any other.
  cache.put("", "");
  CHECK(cache.get("") == std::string());
  // Replacing an entry.
  cache.put("gpu|sm_90|func", "v2");
  CHECK(cache.get("gpu|sm_90|func") == "v2");
  CHECK(cache.stats().hits == 3);
  CHECK(cache.stats().puts == 3);
  CHECK(cache.warnings().empty());
  CHECK(entries(dir.path.string()).size() == 2);
}

TEST_CASE("disk cache: an absent key is a quiet miss") {
  TempDir dir;
  DiskCache cache(dir.path.string());
  cache.put("a", "1");
  CHECK_FALSE(cache.get("b").has_value());
  CHECK_FALSE(cache.get("a ").has_value());
  CHECK(cache.stats().misses == 2);
  CHECK(cache.warnings().empty());
}

TEST_CASE("disk cache: a missing directory is created, nested folders included") {
  TempDir dir;
  const std::string nested = dir.file("a/b/c");
  DiskCache cache(nested + "/");
  CHECK(cache.enabled());
  CHECK(cache.directory() == nested);
  CHECK(fs::is_directory(nested));
  cache.put("k", "v");
  CHECK(cache.get("k") == "v");
  // Removed while in use (a user clearing the cache): the next put makes it again.
  fs::remove_all(dir.file("a"));
  cache.put("k", "v2");
  CHECK(cache.get("k") == "v2");
  CHECK(cache.warnings().empty());
}

TEST_CASE("disk cache: entry names are 32 hex digits whatever the key holds") {
  TempDir dir;
  DiskCache cache(dir.path.string());
  const std::string odd[] = {"../../etc/passwd",          "a/b\\c",
                             std::string("nul\0byte", 8), "spaces and\nnewlines\t",
                             "\xff\xfe unicode \xc3\xa9", ""};
  for (const std::string& key : odd) {
    const std::string name = DiskCache::entry_name(key);
    CHECK(name.size() == 36);
    CHECK(name.substr(32) == ".kce");
    CHECK(name.find_first_not_of("0123456789abcdef") == 32);
    cache.put(key, "payload of " + key);
  }
  // Every key has its own entry, inside the directory and nowhere else.
  CHECK(entries(dir.path.string()).size() == std::size(odd));
  for (const std::string& key : odd)
    CHECK(cache.get(key) == "payload of " + key);
  // The name is a stable function of the key (entries must survive a rebuild of Kiln).
  CHECK(DiskCache::entry_name("kiln") == DiskCache::entry_name(std::string("kiln")));
  CHECK(DiskCache::entry_name("kiln") != DiskCache::entry_name("kilm"));
  CHECK(DiskCache::hash64("abc") == DiskCache::hash64("abc"));
  CHECK(DiskCache::hash64("abc") != DiskCache::hash64("abc", 1));
}

TEST_CASE("disk cache: KILN_CACHE=off disables it; the directory comes from the environment") {
  TempDir dir;
  const std::string kiln_dir = dir.file("kiln-dir");
  {
    ScopedEnv off("KILN_CACHE", "off");
    ScopedEnv where("KILN_CACHE_DIR", kiln_dir.c_str());
    auto cache = DiskCache::from_environment();
    CHECK_FALSE(cache->enabled());
    cache->put("k", "v");
    CHECK_FALSE(cache->get("k").has_value());
    CHECK_FALSE(fs::exists(kiln_dir));  // nothing created
    CHECK(cache->warnings().empty());
  }
  {
    ScopedEnv on("KILN_CACHE", nullptr);
    ScopedEnv where("KILN_CACHE_DIR", kiln_dir.c_str());
    ScopedEnv xdg("XDG_CACHE_HOME", dir.file("xdg").c_str());
    auto cache = DiskCache::from_environment();
    CHECK(cache->enabled());
    CHECK(cache->directory() == kiln_dir);
    CHECK(cache->max_bytes() == DiskCache::kDefaultMaxBytes);
  }
  {
    ScopedEnv where("KILN_CACHE_DIR", "");
    ScopedEnv xdg("XDG_CACHE_HOME", dir.file("xdg").c_str());
    ScopedEnv max("KILN_CACHE_MAX_BYTES", "64M");
    auto cache = DiskCache::from_environment();
    CHECK(cache->directory() == dir.file("xdg") + "/kiln");
    CHECK(cache->max_bytes() == 64ull << 20);
  }
  {
    ScopedEnv where("KILN_CACHE_DIR", nullptr);
    ScopedEnv xdg("XDG_CACHE_HOME", "relative/ignored");
    ScopedEnv home("HOME", dir.file("home").c_str());
    ScopedEnv max("KILN_CACHE_MAX_BYTES", "123456");
    auto cache = DiskCache::from_environment();
    CHECK(cache->directory() == dir.file("home") + "/.cache/kiln");
    CHECK(cache->max_bytes() == 123456);
    CHECK(fs::is_directory(dir.file("home/.cache/kiln")));
  }
  {
    QuietLog quiet;
    ScopedEnv where("KILN_CACHE_DIR", kiln_dir.c_str());
    ScopedEnv on("KILN_CACHE", "maybe");
    ScopedEnv max("KILN_CACHE_MAX_BYTES", "lots");
    auto cache = DiskCache::from_environment();
    CHECK(cache->enabled());
    CHECK(cache->max_bytes() == DiskCache::kDefaultMaxBytes);
    const auto w = cache->warnings();
    REQUIRE(w.size() == 2);
    CHECK_THAT(w[0], Contains("KILN_CACHE=\"maybe\""));
    CHECK_THAT(w[1], Contains("KILN_CACHE_MAX_BYTES=\"lots\""));
  }
  {
    QuietLog quiet;
    ScopedEnv where("KILN_CACHE_DIR", nullptr);
    ScopedEnv xdg("XDG_CACHE_HOME", nullptr);
    ScopedEnv home("HOME", nullptr);
    auto cache = DiskCache::from_environment();
    CHECK_FALSE(cache->enabled());
    check_one_warning(*cache, "no cache directory");
  }
  {
    ScopedEnv where("KILN_CACHE_DIR", kiln_dir.c_str());
    ScopedEnv max("KILN_CACHE_MAX_BYTES", "0");
    CHECK_FALSE(DiskCache::from_environment()->enabled());
  }
  // The disabled default constructor.
  DiskCache none;
  none.put("k", "v");
  CHECK_FALSE(none.get("k").has_value());
}

TEST_CASE("disk cache: a corrupt payload byte is a miss with a warning, and the entry goes") {
  QuietLog quiet;
  TempDir dir;
  DiskCache cache(dir.path.string());
  cache.put("key", "the compiled code");
  std::string bytes = read_bytes(cache.entry_path("key"));
  bytes[bytes.size() - 3] ^= 0x20;
  write_bytes(cache.entry_path("key"), bytes);
  check_rejected(cache, "key", "checksum");
}

TEST_CASE("disk cache: a truncated entry is a miss with a warning") {
  QuietLog quiet;
  for (size_t keep : {size_t{0}, size_t{10}, kHeaderBytes, kHeaderBytes + 2, kHeaderBytes + 5}) {
    CAPTURE(keep);
    TempDir dir;
    DiskCache cache(dir.path.string());
    cache.put("key", "payload bytes");
    const std::string bytes = read_bytes(cache.entry_path("key"));
    write_bytes(cache.entry_path("key"), bytes.substr(0, keep));
    check_rejected(cache, "key", keep < kHeaderBytes ? "truncated or not a Kiln" : "truncated");
  }
}

TEST_CASE("disk cache: trailing bytes after the payload are a miss with a warning") {
  QuietLog quiet;
  TempDir dir;
  DiskCache cache(dir.path.string());
  cache.put("key", "payload");
  write_bytes(cache.entry_path("key"), read_bytes(cache.entry_path("key")) + "x");
  check_rejected(cache, "key", "trailing bytes");
}

TEST_CASE("disk cache: a foreign file with an entry's name is a miss with a warning") {
  QuietLog quiet;
  TempDir dir;
  DiskCache cache(dir.path.string());
  write_bytes(cache.entry_path("key"), std::string(100, 'z'));
  check_rejected(cache, "key", "bad magic");
}

TEST_CASE("disk cache: a symbolic link or a folder with an entry's name is never followed") {
  QuietLog quiet;
  TempDir dir;
  DiskCache cache(dir.path.string());
  write_bytes(dir.file("target"), "not an entry");
  fs::create_symlink(dir.file("target"), cache.entry_path("link"));
  check_rejected(cache, "link", "symbolic link");
  CHECK(read_bytes(dir.file("target")) == "not an entry");  // what it pointed to is untouched

  DiskCache second(dir.path.string());
  fs::create_directory(second.entry_path("folder"));
  CHECK_FALSE(second.get("folder").has_value());
  check_one_warning(second, "not a regular file");
  CHECK(fs::is_directory(second.entry_path("folder")));  // not ours to remove
}

TEST_CASE("disk cache: an entry holding another key (a collision) is a miss with a warning") {
  QuietLog quiet;
  TempDir dir;
  DiskCache cache(dir.path.string());
  // Other's entry copied under key's name, as a hash collision would leave it: same length...
  cache.put("key-b", "b's code");
  fs::rename(cache.entry_path("key-b"), cache.entry_path("key-a"));
  check_rejected(cache, "key-a", "another key");

  // ... and another length.
  DiskCache second(dir.path.string());
  second.put("a much longer key", "code");
  fs::rename(second.entry_path("a much longer key"), second.entry_path("short"));
  check_rejected(second, "short", "another key");
}

TEST_CASE("disk cache: an entry of another format version is a miss with a warning") {
  QuietLog quiet;
  TempDir dir;
  DiskCache cache(dir.path.string());
  cache.put("key", "payload");
  std::string bytes = read_bytes(cache.entry_path("key"));
  bytes[8] = static_cast<char>(DiskCache::kFormatVersion + 1);
  write_bytes(cache.entry_path("key"), bytes);
  check_rejected(cache, "key", "format version 2");
}

TEST_CASE("disk cache: a bad entry that cannot be removed is warned about once") {
  if (::geteuid() == 0) return;  // root may write anywhere: nothing to check here
  QuietLog quiet;
  TempDir dir;
  DiskCache cache(dir.path.string());
  write_bytes(cache.entry_path("key"), "junk");
  ::chmod(dir.path.c_str(), 0500);
  for (int i = 0; i < 3; ++i)
    CHECK_FALSE(cache.get("key").has_value());
  ::chmod(dir.path.c_str(), 0700);
  CHECK(cache.warnings().size() == 1);
  CHECK(cache.stats().bad_entries == 3);
}

TEST_CASE("disk cache: a directory that cannot be made or written turns it off, with a warning") {
  QuietLog quiet;
  TempDir dir;
  write_bytes(dir.file("file"), "a file where the cache's folder should be");
  SECTION("the directory is a file") {
    DiskCache cache(dir.file("file"));
    CHECK_FALSE(cache.enabled());
    check_one_warning(cache, "cannot create the cache directory");
    cache.put("k", "v");
    CHECK_FALSE(cache.get("k").has_value());
    CHECK(read_bytes(dir.file("file")) == "a file where the cache's folder should be");
    CHECK(cache.warnings().size() == 1);
  }
  SECTION("a parent is a file") {
    DiskCache cache(dir.file("file/cache"));
    CHECK_FALSE(cache.enabled());
    check_one_warning(cache, "Not a directory");
  }
  SECTION("the directory exists but takes no new files") {
    // /proc/self refuses new files even to root; elsewhere a folder without write permission.
    std::string where = "/proc/self";
    if (::geteuid() != 0) {
      where = dir.file("read-only");
      fs::create_directory(where);
      ::chmod(where.c_str(), 0500);
    }
    DiskCache cache(where);
    for (int i = 0; i < 3; ++i) {
      cache.put("k" + std::to_string(i), "v");
      CHECK_FALSE(cache.get("k" + std::to_string(i)).has_value());
    }
    CHECK_FALSE(cache.enabled());
    check_one_warning(cache, "cannot write to the cache directory");
    if (where != "/proc/self") ::chmod(where.c_str(), 0700);
  }
}

TEST_CASE("disk cache: the size bound evicts the least recently used entries, reads refresh") {
  TempDir dir;
  const std::string payload(1000, 'p');
  const uint64_t entry = kHeaderBytes + 2 + payload.size();  // keys are two characters
  DiskCache cache(dir.path.string(), 3 * entry + entry / 2);
  cache.put("k1", payload);
  cache.put("k2", payload);
  cache.put("k3", payload);
  CHECK(cache.stats().evictions == 0);
  // k1 read: k2 is now the least recently used.
  CHECK(cache.get("k1").has_value());
  cache.put("k4", payload);
  CHECK(cache.stats().evictions == 1);
  CHECK_FALSE(fs::exists(cache.entry_path("k2")));
  CHECK(cache.get("k1").has_value());
  CHECK(cache.get("k3").has_value());
  CHECK(cache.get("k4").has_value());
  // Order of use now: k1, k3, k4. A big entry evicts the two oldest.
  cache.put("k5", std::string(2 * payload.size(), 'q'));
  CHECK(cache.stats().evictions == 3);
  CHECK_FALSE(fs::exists(cache.entry_path("k1")));
  CHECK_FALSE(fs::exists(cache.entry_path("k3")));
  CHECK(cache.get("k4").has_value());
  CHECK(cache.get("k5").has_value());
  // An entry bigger than the bound is not stored (it would evict everything).
  cache.put("k6", std::string(4 * entry, 'r'));
  CHECK_FALSE(cache.get("k6").has_value());
  CHECK(cache.get("k4").has_value());
  // Files that are not entries are neither counted nor removed.
  write_bytes(dir.file("notes.txt"), std::string(10 * entry, 'n'));
  cache.put("k7", payload);
  CHECK(fs::exists(dir.file("notes.txt")));
  CHECK(cache.get("k7").has_value());
  CHECK(cache.warnings().empty());
}

TEST_CASE("disk cache: threads putting and getting the same key see whole entries") {
  TempDir dir;
  DiskCache cache(dir.path.string());
  // Two payloads of different lengths: a reader must see one or the other, never a mix.
  const std::string a(20000, 'a'), b(30000, 'b');
  std::atomic<int> bad{0}, hits{0};
  auto work = [&](const std::string& mine) {
    for (int i = 0; i < 100; ++i) {
      cache.put("shared", mine);
      std::optional<std::string> got = cache.get("shared");
      if (!got) continue;
      ++hits;
      if (*got != a && *got != b) ++bad;
    }
  };
  std::thread t1(work, std::cref(a)), t2(work, std::cref(b));
  t1.join();
  t2.join();
  CHECK(bad == 0);
  CHECK(hits == 200);
  CHECK(cache.warnings().empty());
  CHECK(entries(dir.path.string()).size() == 1);  // no temporaries left behind
}

TEST_CASE("disk cache: processes share a directory") {
  TempDir dir;
  const std::string a(5000, 'a'), b(7000, 'b');
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    DiskCache cache(dir.path.string());
    int bad = 0;
    for (int i = 0; i < 100; ++i) {
      cache.put("shared", a);
      std::optional<std::string> got = cache.get("shared");
      if (!got || (*got != a && *got != b)) ++bad;
    }
    ::_exit(bad == 0 && cache.warnings().empty() ? 0 : 1);
  }
  DiskCache cache(dir.path.string());
  int bad = 0;
  for (int i = 0; i < 100; ++i) {
    cache.put("shared", b);
    std::optional<std::string> got = cache.get("shared");
    if (!got || (*got != a && *got != b)) ++bad;
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(bad == 0);
  CHECK(cache.warnings().empty());
  CHECK(entries(dir.path.string()).size() == 1);
}
