// The runtime on its own: KILN_NUM_THREADS parsing, the thread pool's parallel_for (exact sums,
// every index once, nesting, concurrent callers, exceptions), the C ABI and Executable.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <thread>
#include <vector>

#include "kiln/runtime/executable.h"
#include "kiln/runtime/kiln_rt.h"
#include "kiln/runtime/thread_pool.h"

using kiln::runtime::Executable;
using kiln::runtime::parse_num_threads;
using kiln::runtime::ThreadPool;

namespace {

// Sum of i over [0, n), computed by parallel_for with per-chunk partial sums.
int64_t parallel_sum(ThreadPool& pool, int64_t n, int64_t grain) {
  std::atomic<int64_t> total{0};
  pool.parallel_for(n, grain, [&](int64_t begin, int64_t end) {
    int64_t s = 0;
    for (int64_t i = begin; i < end; ++i)
      s += i;
    total += s;
  });
  return total.load();
}

// Counts visits of each index in [0, n).
std::vector<int> visit_counts(ThreadPool& pool, int64_t n, int64_t grain) {
  std::vector<std::atomic<int>> counts(static_cast<size_t>(n));
  // Catch2's assertions are not thread-safe: the bodies only note a bad range (TSan saw the race).
  std::atomic<bool> bad_range{false};
  pool.parallel_for(n, grain, [&](int64_t begin, int64_t end) {
    if (begin < 0 || begin >= end || end > n) {
      bad_range = true;
      return;
    }
    for (int64_t i = begin; i < end; ++i)
      counts[static_cast<size_t>(i)]++;
  });
  REQUIRE_FALSE(bad_range);
  std::vector<int> result;
  for (auto& c : counts)
    result.push_back(c.load());
  return result;
}

}  // namespace

TEST_CASE("KILN_NUM_THREADS parsing", "[runtime]") {
  CHECK(parse_num_threads("4") == 4);
  CHECK(parse_num_threads("1") == 1);
  CHECK(parse_num_threads(" 8 ") == 8);
  CHECK(parse_num_threads("16\n") == 16);
  CHECK(parse_num_threads("007") == 7);
  CHECK(parse_num_threads("99999999999999999999999") == kiln::runtime::kMaxThreads);
  CHECK(parse_num_threads("1025") == kiln::runtime::kMaxThreads);
  for (const char* bad : {"", " ", "0", "-1", "-4", "+4", "abc", "4x", "4 4", "1.5", "0x10"}) {
    INFO("KILN_NUM_THREADS=\"" << bad << "\"");
    CHECK_FALSE(parse_num_threads(bad).has_value());
  }
  CHECK_FALSE(parse_num_threads(nullptr).has_value());
  CHECK(kiln::runtime::hardware_threads() >= 1);
}

TEST_CASE("parallel_for sums are exact and visit every index once", "[runtime]") {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    CHECK(pool.num_threads() == threads);
    for (int64_t grain : {int64_t{1}, int64_t{7}, int64_t{64}, int64_t{1000}}) {
      for (int64_t n :
           {int64_t{0}, int64_t{1}, grain - 1, grain, grain + 1, 3 * grain + 5, int64_t{100003}}) {
        INFO("threads " << threads << ", grain " << grain << ", n " << n);
        CHECK(parallel_sum(pool, n, grain) == (n > 0 ? n * (n - 1) / 2 : 0));
        if (n <= 20000) {
          std::vector<int> counts = visit_counts(pool, n, grain);
          CHECK(std::count(counts.begin(), counts.end(), 1) == n);
        }
      }
    }
  }
}

TEST_CASE("parallel_for with a huge range and a non-positive grain", "[runtime]") {
  ThreadPool pool(4);
  int64_t n = int64_t{1} << 26;
  CHECK(parallel_sum(pool, n, 0) == n * (n - 1) / 2);
  CHECK(parallel_sum(pool, 1000, -5) == 999 * 1000 / 2);
  CHECK(parallel_sum(pool, -3, 1) == 0);
  // Chunk bounds near INT64_MAX must not overflow: count the chunks of a range never iterated.
  std::atomic<int64_t> covered{0};
  int64_t big = INT64_MAX;
  pool.parallel_for(big, big / 3, [&](int64_t begin, int64_t end) { covered += end - begin; });
  CHECK(covered.load() == big);
}

TEST_CASE("nested parallel_for runs inline without deadlock", "[runtime]") {
  ThreadPool pool(4);
  std::atomic<int64_t> total{0};
  pool.parallel_for(64, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      pool.parallel_for(100, 1, [&](int64_t b, int64_t e) {
        for (int64_t j = b; j < e; ++j)
          total += j + i * 100;
      });
    }
  });
  CHECK(total.load() == (64 * 100) * (64 * 100 - 1) / 2);
}

TEST_CASE("concurrent callers share the pool", "[runtime]") {
  ThreadPool pool(3);
  std::vector<std::thread> callers;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 6; ++t) {
    callers.emplace_back([&pool, &wrong, t] {
      for (int rep = 0; rep < 50; ++rep) {
        int64_t n = 1000 + 37 * t + rep;
        if (parallel_sum(pool, n, 16) != n * (n - 1) / 2) wrong++;
      }
    });
  }
  for (auto& c : callers)
    c.join();
  CHECK(wrong.load() == 0);
}

TEST_CASE("a throwing body: the first exception reaches the caller after all chunks", "[runtime]") {
  ThreadPool pool(4);
  std::atomic<int> running{0};
  auto body = [&](int64_t begin, int64_t) {
    running++;
    std::this_thread::yield();
    running--;
    if (begin % 3 == 0) throw std::runtime_error("chunk failed");
  };
  CHECK_THROWS_WITH(pool.parallel_for(1000, 10, body), "chunk failed");
  CHECK(running.load() == 0);
  // The pool is still usable afterwards.
  CHECK(parallel_sum(pool, 5000, 10) == 5000 * 4999 / 2);
  // Inline (small range) runs propagate directly.
  CHECK_THROWS_AS(pool.parallel_for(5, 100, body), std::runtime_error);
}

namespace {

void add_range(void* context, int64_t begin, int64_t end) {
  auto* total = static_cast<std::atomic<int64_t>*>(context);
  int64_t s = 0;
  for (int64_t i = begin; i < end; ++i)
    s += i;
  *total += s;
}

}  // namespace

TEST_CASE("the C ABI: alloc, parallel_for, num_threads", "[runtime]") {
  CHECK(kiln_rt_abi_version() == KILN_RT_ABI_VERSION);
  CHECK(kiln_rt_num_threads() >= 1);
  std::atomic<int64_t> total{0};
  kiln_rt_parallel_for(123457, 100, add_range, &total);
  CHECK(total.load() == int64_t{123457} * 123456 / 2);
  for (size_t bytes : {size_t{0}, size_t{1}, size_t{64}, size_t{1000}}) {
    void* p = kiln_rt_alloc(bytes);
    REQUIRE(p != nullptr);
    CHECK(reinterpret_cast<uintptr_t>(p) % 64 == 0);
    std::memset(p, 0xab, bytes);
    kiln_rt_free(p);
  }
  CHECK(kiln_rt_alloc(SIZE_MAX) == nullptr);
  CHECK(kiln_rt_alloc(SIZE_MAX - 10) == nullptr);
}

namespace {

// A hand-written "compiled function": out[i] = in0[i] + in1[i], staged through the workspace,
// in parallel; it also checks the workspace's alignment.
void add_entry(const kiln_frame* frame) {
  struct Context {
    const float* a;
    const float* b;
    float* staged;
  } ctx{static_cast<const float*>(frame->inputs[0]), static_cast<const float*>(frame->inputs[1]),
        static_cast<float*>(frame->workspace)};
  if (reinterpret_cast<uintptr_t>(frame->workspace) % 64 != 0) throw std::logic_error("align");
  kiln_rt_parallel_for(
      1000, 64,
      [](void* c, int64_t begin, int64_t end) {
        auto* x = static_cast<Context*>(c);
        for (int64_t i = begin; i < end; ++i)
          x->staged[i] = x->a[i] + x->b[i];
      },
      &ctx);
  std::memcpy(frame->outputs[0], ctx.staged, 1000 * sizeof(float));
}

struct AlignedFloats {
  explicit AlignedFloats(size_t n) : ptr(static_cast<float*>(kiln_rt_alloc(n * sizeof(float)))) {}
  ~AlignedFloats() { kiln_rt_free(ptr); }
  AlignedFloats(const AlignedFloats&) = delete;
  AlignedFloats& operator=(const AlignedFloats&) = delete;
  float* ptr;
};

}  // namespace

TEST_CASE("Executable runs an entry with a cached workspace", "[runtime]") {
  constexpr size_t n = 1000, bytes = n * sizeof(float);
  Executable exe(add_entry, bytes, {bytes, bytes}, {bytes});
  CHECK(exe.num_inputs() == 2);
  CHECK(exe.num_outputs() == 1);
  CHECK(exe.workspace_bytes() == bytes);
  CHECK(exe.input_bytes(1) == bytes);
  AlignedFloats a(n), b(n), out(n);
  for (size_t i = 0; i < n; ++i) {
    a.ptr[i] = static_cast<float>(i);
    b.ptr[i] = 0.5f;
  }
  void* ins[] = {a.ptr, b.ptr};
  void* outs[] = {out.ptr};
  exe.run(ins, outs);
  exe.run(ins, outs);  // the second run reuses the workspace
  for (size_t i = 0; i < n; i += 111)
    CHECK(out.ptr[i] == static_cast<float>(i) + 0.5f);

  // Moved-from and moved-to executables keep working.
  Executable moved = std::move(exe);
  moved.run(ins, outs);
  CHECK(out.ptr[999] == 999.5f);

  // Several threads running one Executable at once, each with its own output.
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      AlignedFloats mine(n);
      void* my_outs[] = {mine.ptr};
      for (int rep = 0; rep < 20; ++rep) {
        moved.run(ins, my_outs);
        if (mine.ptr[500] != 500.5f) wrong++;
      }
    });
  }
  for (auto& t : threads)
    t.join();
  CHECK(wrong.load() == 0);
}

TEST_CASE("Executable rejects bad buffers", "[runtime]") {
  Executable exe(add_entry, 4000, {4000, 4000}, {4000});
  AlignedFloats a(1000);
  void* one[] = {a.ptr};
  void* two[] = {a.ptr, a.ptr};
  CHECK_THROWS_WITH(exe.run(one, one), Catch::Contains("expected 2 input buffers, got 1"));
  CHECK_THROWS_WITH(exe.run(two, two), Catch::Contains("expected 1 output buffers, got 2"));
  void* null_in[] = {a.ptr, nullptr};
  CHECK_THROWS_WITH(exe.run(null_in, one), Catch::Contains("input buffer 1 is null"));
  void* misaligned[] = {a.ptr + 1};
  CHECK_THROWS_WITH(exe.run(two, misaligned), Catch::Contains("output buffer 0 is not 64-byte"));
  CHECK_THROWS_AS(Executable(nullptr, 0, {}, {}), std::invalid_argument);
  // Zero-byte buffers may be anything, including null.
  Executable empty([](const kiln_frame*) {}, 0, {0}, {});
  void* null_only[] = {nullptr};
  CHECK_NOTHROW(empty.run(null_only, {}));
}

TEST_CASE("Executable hands the entry zeroed status words and returns them", "[runtime]") {
  Executable ok(
      [](const kiln_frame* frame) {
        if (frame->status == nullptr) throw std::logic_error("no status");
        for (int w = 0; w < KILN_RT_STATUS_WORDS; ++w)
          if (frame->status[w] != 0) throw std::logic_error("status not zeroed");
      },
      0, {}, {});
  CHECK_FALSE(ok.run({}, {}).failed());
  Executable bad(
      [](const kiln_frame* frame) {
        frame->status[0] = 3;   // kernel 2
        frame->status[1] = -1;  // the index
        frame->status[2] = 5;   // its position
        frame->status[3] = 4;   // the axis size
      },
      0, {}, {});
  kiln::runtime::RunStatus status = bad.run({}, {});
  CHECK(status.failed());
  CHECK(status.code == 3);
  CHECK(status.value == -1);
  CHECK(status.position == 5);
  CHECK(status.bound == 4);
  CHECK_FALSE(ok.run({}, {}).failed());  // each run starts from zero again
}
