// libtorch's side of bench/eager_bench.cpp (issue 13's eager targets), written with libtorch's
// C++ API and no Kiln:
//   (a) step: one eager SGD step of an MLP 784-512(relu)-10 on a fixed batch of 128 (f32 inputs
//       uniform in [0,1), i64 labels in [0,10), fixed seed): forward with autograd (addmm, relu,
//       addmm, as torch::nn::Linear does), cross_entropy on the logits (mean over the batch),
//       torch::autograd::grad for the four parameters (like Kiln's GradientTape: no .grad
//       accumulation to clear), then p.sub_(0.1·grad) under torch::NoGradGuard; the loss is read
//       back (item) every step, as Kiln's bench does. --warmup untimed steps, then the median,
//       p10 and p90 of --steps timed steps.
//   (c) add: `a + b` on two f32[4] tensors (no autograd involved), --adds ops timed in rounds of
//       1000, the median per-op time over rounds.
// The summary lines are `bench=step impl=libtorch …` and `bench=add impl=libtorch …`.
// Threads: torch::set_num_threads(T) and openblas_set_num_threads(T) (Debian's libtorch does its
// GEMMs in OpenBLAS), one inter-op thread, as bench/libtorch/fashion_mnist_torch.cpp does.
//
// Build (opt-in; needs libtorch-dev, which scripts/setup_bench.sh installs) and run:
//   cmake -S . -B build-torch -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_BENCH_LIBTORCH=ON
//   cmake --build build-torch --target eager_torch
//   bin=build-torch/bench/libtorch/eager_torch
//   env -u OPENBLAS_CORETYPE $bin --threads 1
//   env -u OPENBLAS_CORETYPE OMP_WAIT_POLICY=passive $bin --threads 2
// OPENBLAS_CORETYPE=Haswell (set on this machine) would slow OpenBLAS on Zen 5; with 2 threads on
// a busy 2-core machine OpenMP's spinning threads starve OpenBLAS's, hence OMP_WAIT_POLICY=passive.
// Flags: --only LIST (comma-separated of step, add; default both), --steps N (default 200),
// --warmup N (default 20), --adds N (default 200000, at least 1000), --threads N (default 1).
// A bad flag prints the usage and exits with status 2.
#include <dlfcn.h>
#include <fmt/core.h>
#include <torch/torch.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

constexpr int64_t kBatch = 128, kIn = 784, kHidden = 512, kClasses = 10;
constexpr double kLearningRate = 0.1;
constexpr int64_t kAddsPerRound = 1000;

struct Options {
  bool step = true, add = true;
  int64_t steps = 200;
  int64_t warmup = 20;
  int64_t adds = 200000;
  int threads = 1;
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

// The network as plain parameter tensors, as Kiln's bench holds it in Variables.
struct Mlp {
  torch::Tensor w1 = (torch::randn({kIn, kHidden}) * 0.05).requires_grad_();
  torch::Tensor b1 = torch::zeros({kHidden}).requires_grad_();
  torch::Tensor w2 = (torch::randn({kHidden, kClasses}) * 0.05).requires_grad_();
  torch::Tensor b2 = torch::zeros({kClasses}).requires_grad_();
};

// One eager SGD step; returns the batch's mean loss, read back.
float train_step(Mlp& m, const torch::Tensor& x, const torch::Tensor& y) {
  torch::Tensor logits = torch::addmm(m.b2, torch::relu(torch::addmm(m.b1, x, m.w1)), m.w2);
  torch::Tensor loss = torch::nn::functional::cross_entropy(logits, y);
  std::vector<torch::Tensor> params{m.w1, m.b1, m.w2, m.b2};
  std::vector<torch::Tensor> grads = torch::autograd::grad({loss}, params);
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i)
      params[i].sub_(grads[i], kLearningRate);
  }
  return loss.item<float>();
}

void bench_step(const Options& opts) {
  torch::manual_seed(1);
  Mlp m;
  torch::Tensor x = torch::rand({kBatch, kIn});
  torch::Tensor y = torch::randint(0, kClasses, {kBatch}, torch::kInt64);
  std::vector<double> ms;
  float loss = 0;
  for (int64_t i = 0; i < opts.warmup + opts.steps; ++i) {
    auto start = Clock::now();
    loss = train_step(m, x, y);
    if (i >= opts.warmup) ms.push_back(1e3 * seconds_since(start));
  }
  std::sort(ms.begin(), ms.end());
  fmt::print(
      "bench=step impl=libtorch threads={} batch={} warmup={} steps={} median_ms={:.3f} "
      "p10_ms={:.3f} p90_ms={:.3f} last_loss={:.4f}\n",
      opts.threads, kBatch, opts.warmup, opts.steps, quantile(ms, 0.5), quantile(ms, 0.1),
      quantile(ms, 0.9), loss);
  std::fflush(stdout);
}

// a + b on f32[4]; each result replaces the last, so its release is timed too.
void bench_add(const Options& opts) {
  torch::Tensor a = torch::tensor({1.f, 2.f, 3.f, 4.f});
  torch::Tensor b = torch::tensor({0.5f, 0.25f, 0.125f, 0.0625f});
  torch::Tensor c;
  for (int64_t i = 0; i < 10 * kAddsPerRound; ++i)
    c = a + b;
  int64_t rounds = opts.adds / kAddsPerRound;
  std::vector<double> ns;
  for (int64_t r = 0; r < rounds; ++r) {
    auto start = Clock::now();
    for (int64_t i = 0; i < kAddsPerRound; ++i)
      c = a + b;
    ns.push_back(1e9 * seconds_since(start) / double(kAddsPerRound));
  }
  if (!torch::equal(c, torch::tensor({1.5f, 2.25f, 3.125f, 4.0625f})))
    throw std::runtime_error("a + b gave a wrong result");
  std::sort(ns.begin(), ns.end());
  fmt::print(
      "bench=add impl=libtorch threads={} adds={} median_ns={:.1f} p10_ns={:.1f} p90_ns={:.1f}\n",
      opts.threads, rounds * kAddsPerRound, quantile(ns, 0.5), quantile(ns, 0.1),
      quantile(ns, 0.9));
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
      opts.step = opts.add = false;
      size_t begin = 0;
      while (true) {
        size_t comma = list.find(',', begin);
        std::string name = list.substr(begin, comma == std::string::npos ? comma : comma - begin);
        if (name == "step") {
          opts.step = true;
        } else if (name == "add") {
          opts.add = true;
        } else {
          throw std::invalid_argument(
              fmt::format("--only takes step and add (comma-separated), got '{}'", name));
        }
        if (comma == std::string::npos) break;
        begin = comma + 1;
      }
    } else if (arg == "--steps") {
      opts.steps = number(i, 1);
    } else if (arg == "--warmup") {
      opts.warmup = number(i, 0);
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

// Debian's libtorch calls OpenBLAS's sgemm_ but never sets its thread count; found at run time
// so that this program does not link OpenBLAS itself.
int set_openblas_threads(int threads) {
  using SetThreads = void (*)(int);
  using GetThreads = int (*)();
  auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  auto get = reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  if (set) set(threads);
  return get ? get() : 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opts;
  try {
    opts = parse(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr,
               "{}\nusage: {} [--only step,add] [--steps N] [--warmup N] [--adds N] "
               "[--threads N]\n",
               e.what(), argv[0]);
    return 2;
  }
  try {
    at::set_num_interop_threads(1);
    torch::set_num_threads(opts.threads);
    int blas_threads = set_openblas_threads(opts.threads);
    const char* coretype = std::getenv("OPENBLAS_CORETYPE");
    const char* wait = std::getenv("OMP_WAIT_POLICY");
    fmt::print(
        "libtorch {}: intra-op threads {}, OpenBLAS threads {}, OPENBLAS_CORETYPE {}, "
        "OMP_WAIT_POLICY {}\n",
        TORCH_VERSION, torch::get_num_threads(), blas_threads, coretype ? coretype : "(unset)",
        wait ? wait : "(unset)");
    std::fflush(stdout);
    if (opts.step) bench_step(opts);
    if (opts.add) bench_add(opts);
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
