// The shared atomic writer (runtime/atomic_write.h) behind every save: files get the mode the
// umask gives a new file, a save leaves nothing but its target, and a save killed mid-write
// leaves the old target and no temporary (O_TMPFILE), or, with named temporaries, one that the
// next save of the same target removes once it is stale.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <source_location>
#include <string>
#include <vector>

#include "file_test_util.h"
#include "kiln/frontend/process.h"
#include "kiln/runtime/aot_model.h"
#include "kiln/runtime/aot_weights.h"
#include "kiln/runtime/atomic_write.h"

namespace k = kiln;
using k::runtime::AtomicWriter;
using k::testing::TempDir;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> listing(const TempDir& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir.path))
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

mode_t mode_of(const std::string& path) {
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

// Sets the umask for the lifetime of the guard.
struct Umask {
  explicit Umask(mode_t mask) : old(::umask(mask)) {}
  ~Umask() { ::umask(old); }
  mode_t old;
};

void write_whole(const std::string& path, const std::string& bytes,
                 AtomicWriter::Temporary kind = AtomicWriter::Temporary::unnamed_if_possible) {
  AtomicWriter w(path, kind);
  w.write(bytes.data(), bytes.size());
  w.commit();
}

// Forks a child that starts writing `path` (a large file, in 1 MiB pieces, never committed)
// and kills it with SIGKILL once it has written 8 MiB.
void kill_mid_write(const std::string& path, AtomicWriter::Temporary kind) {
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {  // never returns into the test framework
    ::close(ready[0]);
    try {
      AtomicWriter w(path, kind);
      std::string piece(size_t{1} << 20, 'x');
      for (int i = 0;; ++i) {
        w.write(piece.data(), piece.size());
        if (i == 8) (void)!::write(ready[1], "r", 1);
        if (i > 8) ::usleep(1000);
      }
    } catch (...) {
    }
    ::_exit(1);
  }
  ::close(ready[1]);
  char c = 0;
  REQUIRE(::read(ready[0], &c, 1) == 1);
  ::close(ready[0]);
  ::kill(child, SIGKILL);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFSIGNALED(status));
}

}  // namespace

TEST_CASE("saves honour the umask like a plain open", "[io][atomic]") {
  TempDir dir;
  {
    Umask mask(027);
    k::save_npy(dir.file("a.npy"), k::constant({1.f, 2.f}));
    CHECK(mode_of(dir.file("a.npy")) == 0640);
    write_whole(dir.file("named.bin"), "abc", AtomicWriter::Temporary::named);
    CHECK(mode_of(dir.file("named.bin")) == 0640);
    // The AOT runtime's weights writer.
    k::runtime::detail::TensorInfo t{"w", KILN_AOT_F32, {2}, 8, 0};
    float values[2] = {1.f, 2.f};
    void* data[1] = {values};
    k::runtime::detail::write_weights_file("m", dir.file("w.safetensors").c_str(), {&t, 1}, data);
    CHECK(mode_of(dir.file("w.safetensors")) == 0640);
  }
  {
    Umask mask(0);
    k::save_npy(dir.file("b.npy"), k::constant({1.f}));
    CHECK(mode_of(dir.file("b.npy")) == 0666);
  }
  {
    Umask mask(077);
    k::save_npy(dir.file("a.npy"), k::constant({3.f}));  // replaces: the new file's mode
    CHECK(mode_of(dir.file("a.npy")) == 0600);
  }
}

TEST_CASE("a save leaves only its target, new or replaced", "[io][atomic]") {
  TempDir dir;
  for (auto kind : {AtomicWriter::Temporary::unnamed_if_possible, AtomicWriter::Temporary::named}) {
    write_whole(dir.file("t.bin"), "first", kind);
    CHECK(listing(dir) == std::vector<std::string>{"t.bin"});
    write_whole(dir.file("t.bin"), "second", kind);
    CHECK(listing(dir) == std::vector<std::string>{"t.bin"});
    CHECK(k::testing::read_bytes(dir.file("t.bin")) == "second");
    fs::remove(dir.file("t.bin"));
  }
  // Through the frontend: npy, safetensors and a model save.
  k::save_npy(dir.file("x.npy"), k::constant({1.f}));
  k::safetensors::save(dir.file("s.safetensors"), {{"a", k::constant({1.f})}});
  CHECK(listing(dir) == std::vector<std::string>{"s.safetensors", "x.npy"});
  // Without commit(), nothing at all; an existing target stays as it was.
  for (auto kind : {AtomicWriter::Temporary::unnamed_if_possible, AtomicWriter::Temporary::named}) {
    {
      AtomicWriter w(dir.file("x.npy"), kind);
      w.write("garbage", 7);
    }
    CHECK(listing(dir) == std::vector<std::string>{"s.safetensors", "x.npy"});
    CHECK(k::load_npy(dir.file("x.npy")).to_vector<float>() == std::vector<float>{1.f});
  }
}

TEST_CASE("the unnamed temporary has no name until commit", "[io][atomic]") {
  TempDir dir;
  AtomicWriter w(dir.file("t.bin"));
  if (!w.unnamed()) {
    WARN("this file system has no O_TMPFILE; the named fallback is tested below");
    return;
  }
  w.write("hello", 5);
  CHECK(listing(dir).empty());
  w.commit();
  CHECK(listing(dir) == std::vector<std::string>{"t.bin"});
  CHECK(k::testing::read_bytes(dir.file("t.bin")) == "hello");
}

TEST_CASE("a save killed mid-write leaves the old target and no temporary", "[io][atomic]") {
  TempDir dir;
  {
    AtomicWriter probe(dir.file("probe"));
    if (!probe.unnamed()) {
      WARN("this file system has no O_TMPFILE; see the named-temporary case");
      return;
    }
  }
  // No target yet: nothing at all is left.
  kill_mid_write(dir.file("big.bin"), AtomicWriter::Temporary::unnamed_if_possible);
  CHECK(listing(dir).empty());
  // An existing target: it is left whole.
  write_whole(dir.file("big.bin"), "old");
  kill_mid_write(dir.file("big.bin"), AtomicWriter::Temporary::unnamed_if_possible);
  CHECK(listing(dir) == std::vector<std::string>{"big.bin"});
  CHECK(k::testing::read_bytes(dir.file("big.bin")) == "old");
}

TEST_CASE("named temporaries left by a killed save are removed by a later save once stale",
          "[io][atomic]") {
  TempDir dir;
  write_whole(dir.file("big.bin"), "old");
  kill_mid_write(dir.file("big.bin"), AtomicWriter::Temporary::named);
  std::vector<std::string> left = listing(dir);
  REQUIRE(left.size() == 2);
  const std::string temp = left[0] == "big.bin" ? left[1] : left[0];
  CHECK(temp.rfind("big.bin.kiln-tmp-", 0) == 0);
  CHECK(temp.size() == std::string("big.bin.kiln-tmp-").size() + 6);
  CHECK(k::testing::read_bytes(dir.file("big.bin")) == "old");

  // A fresh one may belong to a save still under way: kept.
  write_whole(dir.file("big.bin"), "new");
  CHECK(fs::exists(dir.file(temp)));
  // Once stale it goes; other files stay, even ones a user might name like a temporary
  // (".tmp-backup"), since only Kiln's own pattern is ever removed.
  for (const char* name : {"big.bin.tmp.AbC123", "big.bin.tmp-backup", "big.bin.tmp.toolong1",
                           "other.bin.kiln-tmp-abcdef", "big.bin.kiln-tmp-abc"}) {
    k::testing::write_bytes(dir.file(name), "x");
  }
  // Probed before anything is stale: a named fallback's constructor would clean up.
  const bool unnamed = AtomicWriter(dir.file("probe")).unnamed();
  const auto old = fs::file_time_type::clock::now() - std::chrono::hours(2);
  for (const auto& entry : fs::directory_iterator(dir.path))
    fs::last_write_time(entry.path(), old);
  if (unnamed) {
    // A save through the unnamed temporary, even one replacing its target, scans no folder:
    // the stale temporary stays for the next named save or remove_stale_temporaries().
    write_whole(dir.file("big.bin"), "replaced");
    CHECK(fs::exists(dir.file(temp)));
    CHECK(k::testing::read_bytes(dir.file("big.bin")) == "replaced");
  }
  CHECK(k::runtime::remove_stale_temporaries(dir.file("big.bin")) == 1);
  CHECK(listing(dir) == std::vector<std::string>{"big.bin", "big.bin.kiln-tmp-abc",
                                                 "big.bin.tmp-backup", "big.bin.tmp.AbC123",
                                                 "big.bin.tmp.toolong1",
                                                 "other.bin.kiln-tmp-abcdef"});
  // Every save with a named temporary does this housekeeping first.
  k::testing::write_bytes(dir.file("big.bin.kiln-tmp-QQQQQQ"), "x");
  fs::last_write_time(dir.file("big.bin.kiln-tmp-QQQQQQ"), old);
  write_whole(dir.file("big.bin"), "newer", AtomicWriter::Temporary::named);
  CHECK_FALSE(fs::exists(dir.file("big.bin.kiln-tmp-QQQQQQ")));
  CHECK(k::testing::read_bytes(dir.file("big.bin")) == "newer");
}

TEST_CASE("atomic write errors name the failed step", "[io][atomic]") {
  try {
    AtomicWriter w("/nonexistent-dir/x.bin");
    FAIL("no error");
  } catch (const k::runtime::AtomicWriteError& e) {
    CHECK(e.step() == "cannot create a temporary file");
    CHECK(e.error() == ENOENT);
  }
  // Through the frontend: an IOError naming the file and the op.
  CHECK_THROWS_WITH(k::save_npy("/nonexistent-dir/x.npy", k::constant({1.f})),
                    Catch::Contains("cannot write '/nonexistent-dir/x.npy'") &&
                        Catch::Contains("cannot create a temporary file"));
}

TEST_CASE("kiln::aot's temporary folders left by a killed process are removed once stale",
          "[io][atomic][aot]") {
  TempDir dir;
  for (const char* name :
       {".lib.aot.Stale1", ".lib.aot.Fresh1", ".lib.aot.toolong", ".other.X1b2c3"})
    fs::create_directories(dir.file(name));
  k::testing::write_bytes(dir.file(".lib.aot.Stale1/lib.o"), "object");
  const auto old = fs::file_time_type::clock::now() - std::chrono::hours(2);
  for (const char* name : {".lib.aot.Stale1", ".lib.aot.toolong", ".other.X1b2c3"})
    fs::last_write_time(dir.file(name), old);
  std::string made;
  {
    k::detail::TempDir temp(dir.path.string(), "lib.aot", "aot::compile",
                            std::source_location::current());
    made = fs::path(temp.path()).filename().string();
    CHECK(fs::is_directory(temp.path()));
  }
  CHECK(made.rfind(".lib.aot.", 0) == 0);
  CHECK(listing(dir) ==
        std::vector<std::string>{".lib.aot.Fresh1", ".lib.aot.toolong", ".other.X1b2c3"});
}
