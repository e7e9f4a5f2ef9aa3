// The runtime's fixed thread pool and its parallel_for. No LLVM, no IR: plain C++ and threads.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace kiln::runtime {

// Most threads a pool will start; larger KILN_NUM_THREADS values are clamped to it.
inline constexpr int kMaxThreads = 1024;

// Reads a KILN_NUM_THREADS value: a positive decimal integer, optionally surrounded by
// whitespace (clamped to kMaxThreads). nullopt for null, empty, zero, negative or malformed text.
std::optional<int> parse_num_threads(const char* text);
// std::thread::hardware_concurrency(), or 1 when the platform does not say.
int hardware_threads();

// Body of a parallel loop, as in kiln_rt.h: processes iterations [begin, end).
using LoopBody = void (*)(void* context, int64_t begin, int64_t end);

// A fixed set of worker threads. parallel_for splits [0, n) into chunks of at least `grain`
// iterations that the workers and the calling thread run; the call returns when all are done.
// Several threads may call parallel_for at once. A parallel_for from inside a loop body (on a
// worker or on a calling thread) runs inline, so nesting cannot deadlock.
//
// A body that throws: the first exception is rethrown to the caller after every chunk already
// started has finished; chunks not yet started are skipped. (Generated code never throws.)
class ThreadPool {
 public:
  // A pool of `num_threads` threads in all: the caller plus num_threads - 1 workers.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // The process-wide pool, created on first use with KILN_NUM_THREADS threads (default: all
  // cores; an invalid value falls back to the default with a warning on stderr).
  static ThreadPool& global();
  // Asks for the global pool to have `num_threads` threads (clamped to kMaxThreads) instead of
  // KILN_NUM_THREADS's count. Before the pool exists: records the size and returns true;
  // afterwards: true only if it already has that many. False for num_threads < 1.
  static bool request_global_threads(int num_threads);
  // Gives the global pool `num_threads` threads (clamped to kMaxThreads): recorded for its
  // creation if it does not exist yet, resized (see resize) otherwise. False for
  // num_threads < 1 or when called from inside a loop body.
  static bool set_global_threads(int num_threads);

  // Stops the workers and starts num_threads - 1 new ones (clamped to [1, kMaxThreads]), once
  // the parallel_for calls running now have returned; later calls wait for it. False, and
  // nothing changes, when called from inside a loop body (it would wait for itself).
  bool resize(int num_threads);

  int num_threads() const { return num_threads_.load(std::memory_order_relaxed); }

  void parallel_for(int64_t n, int64_t grain, LoopBody body, void* context);

  // parallel_for over any callable f(begin, end).
  template <class F>
  void parallel_for(int64_t n, int64_t grain, F&& f) {
    using Fn = std::remove_reference_t<F>;
    parallel_for(
        n, grain,
        [](void* context, int64_t begin, int64_t end) { (*static_cast<Fn*>(context))(begin, end); },
        const_cast<void*>(static_cast<const void*>(&f)));
  }

 private:
  struct Job;
  void worker_loop();
  void run_chunks(Job& job);
  void remove_job(Job* job);
  void start_workers(int count);
  void stop_workers();

  // parallel_for holds it shared while it uses the workers; resize holds it exclusively.
  std::shared_mutex resize_mutex_;
  std::atomic<int> resize_pending_{0};  // resizes waiting for resize_mutex_: loops run serially
  std::atomic<int> num_threads_{1};
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable work_ready_;  // workers wait here for jobs (or stop)
  std::condition_variable job_done_;    // callers wait here for their job's helpers to finish
  std::deque<Job*> jobs_;               // jobs that may still have unclaimed chunks
  bool stop_ = false;
};

}  // namespace kiln::runtime
