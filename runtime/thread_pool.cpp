#include "kiln/runtime/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "kiln/runtime/generated_code.h"
#include "kiln/runtime/log_level.h"

namespace kiln::runtime {

namespace {

// How many loop bodies this thread is inside; a parallel_for issued from a body runs inline.
thread_local int t_body_depth = 0;

// Chunks per thread: a few, so that uneven chunks still balance.
constexpr int64_t kChunksPerThread = 4;

int64_t ceil_div(int64_t a, int64_t b) {
  return a / b + (a % b != 0 ? 1 : 0);
}

bool is_space(char c) {
  return std::isspace(static_cast<unsigned char>(c)) != 0;
}

// The global pool's size as asked by request_global_threads (0: not asked), and whether the
// pool has been created (after which the request can no longer change).
std::mutex g_global_size_mutex;
int g_requested_threads = 0;
bool g_global_created = false;

int configured_threads() {
  {
    std::lock_guard lock(g_global_size_mutex);
    g_global_created = true;
    if (g_requested_threads > 0) return g_requested_threads;
  }
  const char* text = std::getenv("KILN_NUM_THREADS");
  if (text == nullptr) return hardware_threads();
  std::optional<int> parsed = parse_num_threads(text);
  // Level 2 and up hides warnings (frontend/core/log.h).
  if (!parsed && min_log_level() < 2) {
    std::fprintf(stderr,
                 "kiln: ignoring KILN_NUM_THREADS=\"%s\" (want a positive integer); using %d "
                 "threads\n",
                 text, hardware_threads());
  }
  return parsed ? *parsed : hardware_threads();
}

struct DepthGuard {
  DepthGuard() { ++t_body_depth; }
  ~DepthGuard() { --t_body_depth; }
  DepthGuard(const DepthGuard&) = delete;
  DepthGuard& operator=(const DepthGuard&) = delete;
};

}  // namespace

std::optional<int> parse_num_threads(const char* text) {
  if (text == nullptr) return std::nullopt;
  const char* p = text;
  while (is_space(*p))
    ++p;
  if (*p < '0' || *p > '9') return std::nullopt;
  int64_t value = 0;
  for (; *p >= '0' && *p <= '9'; ++p)
    value = std::min<int64_t>(value * 10 + (*p - '0'), kMaxThreads);
  while (is_space(*p))
    ++p;
  if (*p != '\0' || value == 0) return std::nullopt;
  return static_cast<int>(value);
}

int hardware_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(std::min<unsigned>(n, kMaxThreads));
}

// One parallel_for call. Lives on the caller's stack; the caller does not return before every
// worker that joined it (`helpers`) has left.
struct ThreadPool::Job {
  LoopBody body;
  void* context;
  int64_t n;
  int64_t chunk;
  int64_t num_chunks;
  std::atomic<int64_t> next_chunk{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  std::exception_ptr error;  // the first exception a body threw
  int helpers = 0;           // workers inside run_chunks; guarded by the pool's mutex

  bool exhausted() const { return next_chunk.load(std::memory_order_relaxed) >= num_chunks; }
};

ThreadPool::ThreadPool(int num_threads) {
  start_workers(std::clamp(num_threads, 1, kMaxThreads) - 1);
}

ThreadPool::~ThreadPool() {
  stop_workers();
}

void ThreadPool::start_workers(int count) {
  workers_.reserve(static_cast<size_t>(count));
  try {
    for (int i = 0; i < count; ++i)
      workers_.emplace_back([this] { worker_loop(); });
  } catch (...) {
    // The system would not give another thread: the pool is what started.
    num_threads_.store(static_cast<int>(workers_.size()) + 1, std::memory_order_relaxed);
    throw;
  }
  num_threads_.store(count + 1, std::memory_order_relaxed);
}

void ThreadPool::stop_workers() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  work_ready_.notify_all();
  for (std::thread& t : workers_)
    t.join();
  workers_.clear();
  std::lock_guard lock(mutex_);
  stop_ = false;
}

bool ThreadPool::resize(int num_threads) {
  if (t_body_depth > 0) return false;
  num_threads = std::clamp(num_threads, 1, kMaxThreads);
  // No parallel_for is using the workers while this is held, so no job is queued. The shared
  // mutex may let new readers in ahead of a waiting writer; while a resize is pending, new loops
  // run on their own thread instead, so the loops in flight drain and the resize gets in.
  struct Pending {
    std::atomic<int>& count;
    explicit Pending(std::atomic<int>& c) : count(c) { count.fetch_add(1); }
    ~Pending() { count.fetch_sub(1); }
  } pending(resize_pending_);
  std::unique_lock resize_lock(resize_mutex_);
  if (num_threads != this->num_threads()) {
    stop_workers();
    start_workers(num_threads - 1);
  }
  return true;
}

ThreadPool& ThreadPool::global() {
  static ThreadPool pool(configured_threads());
  return pool;
}

bool ThreadPool::request_global_threads(int num_threads) {
  if (num_threads < 1) return false;
  num_threads = std::min(num_threads, kMaxThreads);
  {
    std::lock_guard lock(g_global_size_mutex);
    if (!g_global_created) {
      g_requested_threads = num_threads;
      return true;
    }
  }
  return global().num_threads() == num_threads;
}

bool ThreadPool::set_global_threads(int num_threads) {
  if (num_threads < 1 || t_body_depth > 0) return false;
  num_threads = std::min(num_threads, kMaxThreads);
  {
    std::lock_guard lock(g_global_size_mutex);
    if (!g_global_created) {
      g_requested_threads = num_threads;
      return true;
    }
  }
  return global().resize(num_threads);
}

// Loop bodies are mostly generated code (generated_code.h).
KILN_CALLS_GENERATED_CODE void ThreadPool::run_chunks(Job& job) {
  DepthGuard depth;
  while (!job.failed.load(std::memory_order_relaxed)) {
    int64_t c = job.next_chunk.fetch_add(1, std::memory_order_relaxed);
    if (c >= job.num_chunks) break;
    int64_t begin = c * job.chunk;
    int64_t end = job.n - begin > job.chunk ? begin + job.chunk : job.n;
    try {
      job.body(job.context, begin, end);
    } catch (...) {
      std::lock_guard lock(job.error_mutex);
      if (!job.error) job.error = std::current_exception();
      job.failed.store(true, std::memory_order_relaxed);
    }
  }
}

// Takes `job` off the queue if it is still there; call with mutex_ held.
void ThreadPool::remove_job(Job* job) {
  auto it = std::find(jobs_.begin(), jobs_.end(), job);
  if (it != jobs_.end()) jobs_.erase(it);
}

void ThreadPool::worker_loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    work_ready_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
    if (stop_) return;
    Job* job = jobs_.front();
    if (job->exhausted() || job->failed.load(std::memory_order_relaxed)) {
      jobs_.pop_front();
      continue;
    }
    ++job->helpers;
    lock.unlock();
    run_chunks(*job);
    lock.lock();
    remove_job(job);
    if (--job->helpers == 0) job_done_.notify_all();
  }
}

KILN_CALLS_GENERATED_CODE void ThreadPool::parallel_for(int64_t n, int64_t grain, LoopBody body,
                                                        void* context) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  if (n <= grain || t_body_depth > 0 || num_threads() == 1 || resize_pending_.load() > 0) {
    body(context, 0, n);
    return;
  }
  std::shared_lock resize_lock(resize_mutex_);
  if (workers_.empty()) {  // resized to one thread meanwhile
    resize_lock.unlock();
    body(context, 0, n);
    return;
  }
  int64_t chunk = std::max(grain, ceil_div(n, num_threads() * kChunksPerThread));
  Job job;
  job.body = body;
  job.context = context;
  job.n = n;
  job.chunk = chunk;
  job.num_chunks = ceil_div(n, chunk);
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(&job);
  }
  int64_t wanted = std::min<int64_t>(job.num_chunks - 1, static_cast<int64_t>(workers_.size()));
  if (wanted == static_cast<int64_t>(workers_.size())) {
    work_ready_.notify_all();
  } else {
    for (int64_t i = 0; i < wanted; ++i)
      work_ready_.notify_one();
  }
  run_chunks(job);
  {
    std::unique_lock lock(mutex_);
    remove_job(&job);
    job_done_.wait(lock, [&job] { return job.helpers == 0; });
  }
  if (job.error) std::rethrow_exception(job.error);
}

}  // namespace kiln::runtime
