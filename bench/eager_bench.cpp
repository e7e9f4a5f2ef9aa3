// Eager execution speed (issue 13's targets), Kiln's side; bench/libtorch/eager_torch.cpp is
// libtorch's side of (a) and (c). Three measurements, in this order in one process:
//   (b) epoch: a "network from scratch" training loop (shared/tutorials/001) run eagerly: an MLP
//       784-512(relu)-10 on synthetic data (60000×784 f32 uniform in [0,1), integer labels in
//       [0,10), fixed seeds), batches of 128 sliced in order (468 full batches and a last one of
//       96 rows, as Fashion-MNIST's 60000 images give), each step a GradientTape over the forward
//       pass and sparse softmax cross-entropy on the logits (mean over the batch), then
//       w.assign_sub(0.1·grad) per variable. Each epoch's wall time; the first includes every
//       kernel compile the loop needs (it runs first, so nothing is compiled before it), and the
//       line `ratio` is the first epoch over the median of the later ones (target: < 2).
//   (a) step: the same step on one fixed batch of 128, after --warmup steps: median, p10 and
//       p90 of --steps timed steps (target: within 1.5× of libtorch's eager step).
//   (c) add: `a + b` on two f32[4] tensors: --adds ops timed in rounds of 1000, the median
//       per-op time over rounds (target: < 1 µs).
// Every step reads its loss back (item), as a loop that prints it would; libtorch's does the same.
// Each measurement prints one summary line `bench=… impl=kiln …`; the epoch also one per epoch.
// Which eager path ran (the reference interpreter, or compiled kernels) is whatever this build
// does; KILN_EAGER is echoed so that a run with KILN_EAGER=interpret says so.
//
//   flock /tmp/kiln-build.lock cmake --build build --target eager_bench
//   build/bench/eager_bench                          # everything, defaults below
//   build/bench/eager_bench --threads 1
//   build/bench/eager_bench --only step,add --steps 20 --epochs 0
// Flags: --only LIST (comma-separated of step, epoch, add; default all), --steps N (timed steps,
// default 100), --warmup N (untimed steps before them, default 10), --epochs N (default 2; 0 skips
// the epoch run, 1 times only the first epoch), --adds N (timed adds, default 200000, at least
// 1000), --threads N (Kiln's pool; default KILN_NUM_THREADS or every core). A bad flag prints
// the usage and exits with status 2.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "kiln/kiln.h"

// The compiled eager path's kernel cache counters; a tree without them (the interpreter only)
// builds this program too, without the cache fields.
#if __has_include("kiln/frontend/core/eager.h")
#include "kiln/frontend/core/eager.h"
#define KILN_BENCH_EAGER_CACHE 1
#endif

namespace k = kiln;

namespace {

using Clock = std::chrono::steady_clock;

constexpr int64_t kBatch = 128, kIn = 784, kHidden = 512, kClasses = 10;
constexpr int64_t kSamples = 60000;
constexpr float kLearningRate = 0.1f;
constexpr int64_t kAddsPerRound = 1000;

struct Options {
  bool step = true, epoch = true, add = true;
  int64_t steps = 100;
  int64_t warmup = 10;
  int64_t epochs = 2;
  int64_t adds = 200000;
  int threads = 0;  // 0: the pool's default
};

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The q-quantile of sorted values, interpolating between neighbours.
double quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  double at = q * double(sorted.size() - 1);
  auto below = static_cast<size_t>(at);
  size_t above = std::min(below + 1, sorted.size() - 1);
  return sorted[below] + (at - double(below)) * (sorted[above] - sorted[below]);
}

// What the eager kernel cache did since `before` (a cache_snapshot()), as
// " compiles=… compile_s=… hits=…", or nothing without the cache.
#ifdef KILN_BENCH_EAGER_CACHE
using CacheSnapshot = k::EagerCacheInfo;
CacheSnapshot cache_snapshot() {
  return k::eager_cache_info();
}
std::string cache_delta(const CacheSnapshot& before) {
  k::EagerCacheInfo now = k::eager_cache_info();
  return fmt::format(" compiles={} compile_s={:.3f} hits={} generic={} evictions={}",
                     now.compiles - before.compiles, now.compile_seconds - before.compile_seconds,
                     now.hits - before.hits, now.generic - before.generic,
                     now.evictions - before.evictions);
}
#else
struct CacheSnapshot {};
CacheSnapshot cache_snapshot() {
  return {};
}
std::string cache_delta(const CacheSnapshot&) {
  return "";
}
#endif

// The network of the tutorial: two dense layers as plain Variables.
struct Mlp {
  k::Variable w1{k::random_normal({kIn, kHidden}, 0.0, 0.05, 1), "w1"};
  k::Variable b1{k::zeros({kHidden}), "b1"};
  k::Variable w2{k::random_normal({kHidden, kClasses}, 0.0, 0.05, 2), "w2"};
  k::Variable b2{k::zeros({kClasses}), "b2"};
  std::vector<k::Variable> weights() const { return {w1, b1, w2, b2}; }
};

// One eager SGD step; returns the batch's mean loss, read back.
float train_step(const Mlp& m, const k::Tensor& x, const k::Tensor& y) {
  std::vector<k::Variable> weights = m.weights();
  k::GradientTape tape;
  k::Tensor logits = k::matmul(k::relu(k::matmul(x, m.w1) + m.b1), m.w2) + m.b2;
  k::Tensor loss =
      k::reduce_mean(k::losses::sparse_categorical_crossentropy(y, logits, /*from_logits=*/true));
  std::vector<k::Tensor> grads = tape.gradient(loss, weights);
  for (size_t i = 0; i < weights.size(); ++i)
    weights[i].assign_sub(grads[i] * kLearningRate);
  return loss.item<float>();
}

// i32 class ids in [0, classes), drawn with `seed`.
k::Tensor random_labels(int64_t n, int64_t seed) {
  return k::cast(k::random_uniform({n}, 0.0, double(kClasses), seed), k::i32);
}

// (b): whole epochs over synthetic data, the first one cold.
void bench_epochs(const Options& opts, int threads) {
  auto start = Clock::now();
  k::Tensor images = k::random_uniform({kSamples, kIn}, 0.0, 1.0, 10);
  k::Tensor labels = random_labels(kSamples, 11);
  fmt::print("epoch data: {}x{} f32 and {} labels made in {:.2f} s (not timed)\n", kSamples, kIn,
             kSamples, seconds_since(start));
  std::fflush(stdout);
  Mlp m;
  int64_t batches = (kSamples + kBatch - 1) / kBatch;
  std::vector<double> seconds;
  for (int64_t epoch = 0; epoch < opts.epochs; ++epoch) {
    CacheSnapshot cache = cache_snapshot();
    start = Clock::now();
    float last_loss = 0;
    for (int64_t begin = 0; begin < kSamples; begin += kBatch) {
      int64_t end = std::min(kSamples, begin + kBatch);
      last_loss =
          train_step(m, images.index({k::Slice(begin, end)}), labels.index({k::Slice(begin, end)}));
    }
    seconds.push_back(seconds_since(start));
    fmt::print(
        "bench=epoch impl=kiln threads={} epoch={} steps={} s={:.3f} ms_per_step={:.3f} "
        "last_loss={:.4f}{}\n",
        threads, epoch + 1, batches, seconds.back(), 1e3 * seconds.back() / double(batches),
        last_loss, cache_delta(cache));
    std::fflush(stdout);
  }
  if (seconds.size() >= 2) {
    std::vector<double> later(seconds.begin() + 1, seconds.end());
    std::sort(later.begin(), later.end());
    double median = quantile(later, 0.5);
    fmt::print(
        "bench=epoch impl=kiln threads={} epochs={} first_s={:.3f} later_median_s={:.3f} "
        "ratio={:.2f}\n",
        threads, seconds.size(), seconds.front(), median, seconds.front() / median);
  }
}

// (a): steps on one fixed batch.
void bench_step(const Options& opts, int threads) {
  Mlp m;
  k::Tensor x = k::random_uniform({kBatch, kIn}, 0.0, 1.0, 3);
  k::Tensor y = random_labels(kBatch, 4);
  std::vector<double> ms;
  float loss = 0;
  CacheSnapshot cache;
  for (int64_t i = 0; i < opts.warmup + opts.steps; ++i) {
    if (i == opts.warmup) cache = cache_snapshot();
    auto start = Clock::now();
    loss = train_step(m, x, y);
    if (i >= opts.warmup) ms.push_back(1e3 * seconds_since(start));
    if (i == 0)
      fmt::print(
          "step: first step {:.1f} ms (compiles included unless the epoch run came "
          "first)\n",
          1e3 * seconds_since(start));
  }
  std::sort(ms.begin(), ms.end());
  fmt::print(
      "bench=step impl=kiln threads={} batch={} warmup={} steps={} median_ms={:.3f} "
      "p10_ms={:.3f} p90_ms={:.3f} last_loss={:.4f}{}\n",
      threads, kBatch, opts.warmup, opts.steps, quantile(ms, 0.5), quantile(ms, 0.1),
      quantile(ms, 0.9), loss, cache_delta(cache));
}

// (c): a + b on f32[4]; each result replaces the last, so its release is timed too.
void bench_add(const Options& opts, int threads) {
  k::Tensor a = k::constant({1.f, 2.f, 3.f, 4.f});
  k::Tensor b = k::constant({0.5f, 0.25f, 0.125f, 0.0625f});
  k::Tensor c;
  for (int64_t i = 0; i < 10 * kAddsPerRound; ++i)  // warm-up (and, compiled, the compile)
    c = a + b;
  int64_t rounds = opts.adds / kAddsPerRound;
  std::vector<double> ns;
  CacheSnapshot cache = cache_snapshot();
  for (int64_t r = 0; r < rounds; ++r) {
    auto start = Clock::now();
    for (int64_t i = 0; i < kAddsPerRound; ++i)
      c = a + b;
    ns.push_back(1e9 * seconds_since(start) / double(kAddsPerRound));
  }
  if (c.to_vector<float>() != std::vector<float>{1.5f, 2.25f, 3.125f, 4.0625f})
    throw std::runtime_error("a + b gave a wrong result");
  std::sort(ns.begin(), ns.end());
  fmt::print(
      "bench=add impl=kiln threads={} adds={} median_ns={:.1f} p10_ns={:.1f} "
      "p90_ns={:.1f}{}\n",
      threads, rounds * kAddsPerRound, quantile(ns, 0.5), quantile(ns, 0.1), quantile(ns, 0.9),
      cache_delta(cache));
}

Options parse(int argc, char** argv) {
  Options opts;
  auto value = [&](int& i) -> std::string {
    if (i + 1 >= argc) throw std::invalid_argument(fmt::format("{} needs a value", argv[i]));
    return argv[++i];
  };
  auto number = [&](int& i, int64_t min) -> int64_t {
    std::string flag = argv[i], text = value(i);
    int64_t n = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (error != std::errc() || end != text.data() + text.size())
      throw std::invalid_argument(fmt::format("{} needs a whole number, got '{}'", flag, text));
    if (n < min) throw std::invalid_argument(fmt::format("{} needs a number >= {}", flag, min));
    return n;
  };
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--only") {
      std::string list = value(i);
      opts.step = opts.epoch = opts.add = false;
      size_t begin = 0;
      while (true) {
        size_t comma = list.find(',', begin);
        std::string name = list.substr(begin, comma == std::string::npos ? comma : comma - begin);
        if (name == "step") {
          opts.step = true;
        } else if (name == "epoch") {
          opts.epoch = true;
        } else if (name == "add") {
          opts.add = true;
        } else {
          throw std::invalid_argument(
              fmt::format("--only takes step, epoch and add (comma-separated), got '{}'", name));
        }
        if (comma == std::string::npos) break;
        begin = comma + 1;
      }
    } else if (arg == "--steps") {
      opts.steps = number(i, 1);
    } else if (arg == "--warmup") {
      opts.warmup = number(i, 0);
    } else if (arg == "--epochs") {
      opts.epochs = number(i, 0);
    } else if (arg == "--adds") {
      opts.adds = number(i, kAddsPerRound);
    } else if (arg == "--threads") {
      opts.threads = int(number(i, 1));
      if (opts.threads > 1024) throw std::invalid_argument("--threads needs a number <= 1024");
    } else {
      throw std::invalid_argument(fmt::format("unknown argument '{}'", arg));
    }
  }
  return opts;
}

}  // namespace

int main(int argc, char** argv) {
  Options opts;
  try {
    opts = parse(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr,
               "{}\nusage: {} [--only step,epoch,add] [--steps N] [--warmup N] [--epochs N] "
               "[--adds N] [--threads N]\n",
               e.what(), argv[0]);
    return 2;
  }
  try {
    if (opts.threads > 0) k::set_num_threads(opts.threads);
    int threads = k::get_num_threads();
    const char* eager = std::getenv("KILN_EAGER");
    fmt::print("kiln {}: threads {}, KILN_EAGER {}\n", k::version(), threads,
               eager ? eager : "(unset)");
    std::fflush(stdout);
    // The epoch run goes first so that its first epoch is the process's first use of the step.
    if (opts.epoch && opts.epochs > 0) bench_epochs(opts, threads);
    if (opts.step) bench_step(opts, threads);
    if (opts.add) bench_add(opts, threads);
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
