// Process-wide settings a user changes from C++: the log level (KILN_LOG_LEVEL) and the thread
// count (KILN_NUM_THREADS, set_num_threads), including resizing the pool while it is in use.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <kiln/runtime/log_level.h>
#include <kiln/runtime/thread_pool.h>

#include "process_test_util.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace k = kiln;

namespace {
// Collects the messages that reach the sink while it lives, and restores the level.
struct LogCapture {
  std::vector<std::string> lines;
  k::LogSink previous;
  int level = k::min_log_level();
  LogCapture() {
    previous = k::set_log_sink([this](std::string_view m) { lines.emplace_back(m); });
  }
  ~LogCapture() {
    k::set_log_sink(previous);
    k::set_min_log_level(level);
  }
};
}  // namespace

TEST_CASE("the log level hides info, then warnings, then everything", "[config]") {
  LogCapture capture;
  for (int level = 0; level <= 3; ++level) {
    k::set_min_log_level(level);
    CHECK(k::min_log_level() == level);
    capture.lines.clear();
    k::log_message("an info");
    k::log_message(k::LogLevel::warning, "a warning");
    k::log_message(k::LogLevel::error, "an error");
    std::vector<std::string> expect;
    if (level <= 0) expect.push_back("an info");
    if (level <= 1) expect.push_back("warning: a warning");
    if (level <= 2) expect.push_back("error: an error");
    CHECK(capture.lines == expect);
  }
  k::set_min_log_level(9);
  CHECK(k::min_log_level() == 3);
  k::set_min_log_level(-4);
  CHECK(k::min_log_level() == 0);
}

TEST_CASE("retrace notices are info and the retracing warning is a warning", "[config]") {
  LogCapture capture;
  auto f = k::function([](const k::Tensor& x) { return x * 2.f; }, "log_level_fn");
  k::set_min_log_level(1);
  for (int n = 1; n <= 8; ++n)
    f(k::ones({n}));
  // Only the warning about repeated retracing is left.
  REQUIRE(capture.lines.size() == 1);
  CHECK(capture.lines[0].rfind("warning: function 'log_level_fn' was retraced", 0) == 0);
  capture.lines.clear();
  k::set_min_log_level(0);
  f(k::ones({9}));
  REQUIRE(capture.lines.size() == 1);
  CHECK(capture.lines[0].rfind("retracing function 'log_level_fn'", 0) == 0);
}

TEST_CASE("set_min_log_level is the runtime's level too", "[config]") {
  const int original = k::min_log_level();
  k::set_min_log_level(2);
  CHECK(kiln::runtime::min_log_level() == 2);  // what the runtime's own warnings obey
  k::set_min_log_level(7);                     // clamped
  CHECK(k::min_log_level() == 3);
  CHECK(kiln::runtime::min_log_level() == 3);
  k::set_min_log_level(original);
}

TEST_CASE("KILN_LOG_LEVEL values are digits 0 to 3", "[config]") {
  CHECK(kiln::runtime::parse_log_level("0") == 0);
  CHECK(kiln::runtime::parse_log_level(" 2\n") == 2);
  CHECK(kiln::runtime::parse_log_level("3") == 3);
  for (const char* bad : {"", "4", "-1", "1x", "warning", "12"}) {
    INFO(bad);
    CHECK(kiln::runtime::parse_log_level(bad) == -1);
  }
  CHECK(kiln::runtime::parse_log_level(nullptr) == -1);
}

namespace {
// How many threads run the chunks of a loop on `pool`: each chunk waits a little, so every
// worker the pool has gets some.
size_t threads_used(k::runtime::ThreadPool& pool) {
  std::mutex mutex;
  std::set<std::thread::id> ids;
  pool.parallel_for(64, 1, [&](int64_t, int64_t) {
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
    std::lock_guard lock(mutex);
    ids.insert(std::this_thread::get_id());
  });
  return ids.size();
}
}  // namespace

TEST_CASE("set_num_threads resizes the pool; compiled code gives the same results", "[config]") {
  auto f = k::function([](const k::Tensor& a, const k::Tensor& b) { return k::matmul(a, b); });
  k::Tensor a = k::random_normal({300, 200}, 0.0, 1.0, 1),
            b = k::random_normal({200, 100}, 0.0, 1.0, 2);
  std::vector<float> before = f(a, b).to_vector<float>();
  int original = k::get_num_threads();
  for (int n : {1, 3, 2}) {
    k::set_num_threads(n);
    CHECK(k::get_num_threads() == n);
    CHECK(threads_used(k::runtime::ThreadPool::global()) == size_t(n));  // workers really run
    CHECK(f(a, b).to_vector<float>() == before);
  }
  k::set_num_threads(original);
  CHECK(k::get_num_threads() == original);
}

TEST_CASE("a thread pool resizes while other threads run parallel loops", "[config]") {
  k::runtime::ThreadPool pool(3);
  std::atomic<bool> stop{false};
  std::atomic<int64_t> wrong{0};
  std::vector<std::thread> users;
  for (int t = 0; t < 3; ++t) {
    users.emplace_back([&] {
      while (!stop) {
        std::vector<int> hits(1000, 0);
        pool.parallel_for(1000, 10, [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i)
            ++hits[size_t(i)];
        });
        for (int h : hits)
          wrong += h != 1;
      }
    });
  }
  for (int round = 0; round < 20; ++round) {
    int n = 1 + round % 4;
    CHECK(pool.resize(n));
    CHECK(pool.num_threads() == n);
  }
  stop = true;
  for (std::thread& t : users)
    t.join();
  CHECK(wrong == 0);
  // With the users gone, the workers of the last size run loops.
  CHECK(threads_used(pool) == size_t(pool.num_threads()));

  // From inside a loop body a resize would wait for itself: refused.
  std::atomic<int> refused{0};
  pool.resize(2);
  pool.parallel_for(8, 1, [&](int64_t, int64_t) { refused += pool.resize(4) ? 0 : 1; });
  CHECK(refused > 0);
  CHECK(pool.num_threads() == 2);
  CHECK_FALSE(k::runtime::ThreadPool::set_global_threads(0));
}

// Run only as a child of the test below (hidden from the suite): the level KILN_LOG_LEVEL set
// in this process's environment, and which messages reach the sink.
TEST_CASE("child: KILN_LOG_LEVEL read from the environment", "[.][log_level_child]") {
  std::vector<std::string> seen;
  k::LogSink previous = k::set_log_sink([&](std::string_view m) { seen.emplace_back(m); });
  k::log_message("an info message");
  k::log_message(k::LogLevel::warning, "a warning");
  k::set_log_sink(previous);
  std::printf("level=%d messages=%zu\n", k::min_log_level(), seen.size());
  for (const std::string& m : seen)
    std::printf("message: %s\n", m.c_str());
}

TEST_CASE("KILN_LOG_LEVEL in the environment sets the level when Kiln starts", "[config]") {
  const std::string self = std::filesystem::canonical("/proc/self/exe").string();
  auto child = [&](const std::string& value) {
    kiln::testing::Outcome o =
        kiln::testing::run({"env", "KILN_LOG_LEVEL=" + value, self, "[log_level_child]"});
    INFO(o.out);
    CHECK(o.status == 0);
    return o.out;
  };
  CHECK_THAT(child("0"), Catch::Contains("level=0 messages=2"));
  CHECK_THAT(child("1"), Catch::Contains("level=1 messages=1"));  // the warning only
  CHECK_THAT(child("2"), Catch::Contains("level=2 messages=0"));
  CHECK_THAT(child("3"), Catch::Contains("level=3 messages=0"));
  // A value that means nothing is warned about and ignored.
  const std::string bad = child("loud");
  CHECK_THAT(bad, Catch::Contains("level=0") && Catch::Contains("ignoring KILN_LOG_LEVEL"));
}
