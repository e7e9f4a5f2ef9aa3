// libtorch's side of the main job's comparison: seconds per training epoch on Fashion-MNIST for
// the two models examples/fashion_mnist.cpp trains with Kiln, built with libtorch's C++ API
// (torch::nn, torch::optim) and no Kiln. As in Keras fit(validation_split=0.1) and in Kiln, the
// first 54,000 training images are trained on (batch 128, reshuffled each epoch) and the last
// 6,000 validate; an epoch's time covers shuffling, the training steps and the validation pass.
//   - mlp: Flatten, Linear 784→512, ReLU, Linear 512→10; RMSprop 1e-3 (rho 0.9, eps 1e-7);
//   - convnet: Conv 1→32 5×5 pad 2, ReLU, MaxPool 2, Conv 32→64 5×5 pad 2, ReLU, MaxPool 2,
//     Flatten, Linear 3136→1024, ReLU, Dropout 0.4, Linear 1024→10; Adam 1e-3 (eps 1e-7).
// Weights start as Keras's do (Glorot uniform, zero biases); the loss is cross-entropy on logits.
// The summary line per model is
//   model=mlp threads=T epochs=N median_epoch_s=X test_accuracy=Y
// Threads: torch::set_num_threads(T) (OpenMP, oneDNN) and openblas_set_num_threads(T), since
// Debian's libtorch does its GEMMs in OpenBLAS and leaves OpenBLAS's thread count alone.
//
// Build (opt-in; needs libtorch-dev, which scripts/setup_bench.sh installs) and run:
//   cmake -S . -B build-torch -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_BENCH_LIBTORCH=ON
//   cmake --build build-torch --target fashion_mnist_torch
//   bin=build-torch/bench/libtorch/fashion_mnist_torch
//   uptime  # the machine is shared: note its load
//   env -u OPENBLAS_CORETYPE $bin --model mlp --epochs 3 --threads 1
//   env -u OPENBLAS_CORETYPE OMP_WAIT_POLICY=passive $bin --model mlp --epochs 3 --threads 2
//   env -u OPENBLAS_CORETYPE $bin --model convnet --epochs 2 --threads 1
//   env -u OPENBLAS_CORETYPE OMP_WAIT_POLICY=passive $bin --model convnet --epochs 2 --threads 2
// OPENBLAS_CORETYPE=Haswell (set on this machine) would slow OpenBLAS on Zen 5. With T=2 on a
// busy 2-core machine, OpenMP's default spin-waiting threads starve OpenBLAS's (the MLP took
// 25-45 s per epoch instead of 1.9 s), hence OMP_WAIT_POLICY=passive.
// The data are the IDX files of the Debian package dataset-fashion-mnist.
//
// --infer: no data and no training; latency of one eval-mode forward pass at batch 1 (a random
// [1,1,28,28] input in [0,1]; the MLP's Flatten takes it too) on a freshly initialised model.
// First the cold start: model construction + init + first forward call, under NoGradGuard; then,
// for each of torch::NoGradGuard and c10::InferenceMode, 200 warm-up calls and N timed calls
// (--calls N; default 2000 for mlp, 300 for convnet), summarised as
//   model=mlp mode=first_call threads=T first_call_ms=X
//   model=mlp mode=infer guard=no_grad threads=T calls=N median_us=X p10_us=Y p90_us=Z
// With --model both, the convnet's first call is no longer the process's first.
//   env -u OPENBLAS_CORETYPE $bin --model mlp --infer --threads 1
//   env -u OPENBLAS_CORETYPE OMP_WAIT_POLICY=passive $bin --model mlp --infer --threads 2
//   env -u OPENBLAS_CORETYPE $bin --model convnet --infer --threads 1
//   env -u OPENBLAS_CORETYPE OMP_WAIT_POLICY=passive $bin --model convnet --infer --threads 2
#include <c10/core/InferenceMode.h>
#include <dlfcn.h>
#include <fmt/core.h>
#include <torch/torch.h>
#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

const char* const kDataDir = "/usr/share/datasets/fashion-mnist";
constexpr int64_t kBatch = 128;
constexpr double kValidationSplit = 0.1;

struct Options {
  int64_t epochs = 3;
  int threads = 1;
  std::string model = "both";
  bool infer = false;
  int64_t calls = 0;  // --infer's timed calls; 0: the model's default
};

struct Split {
  torch::Tensor images;  // f32 [n, 1, 28, 28] in [0, 1]
  torch::Tensor labels;  // i64 [n]
};

// The whole of a gzip file, inflated.
std::vector<uint8_t> gunzip(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (!file) throw std::runtime_error(fmt::format("cannot open {}", path));
  std::vector<uint8_t> bytes;
  std::vector<uint8_t> chunk(1 << 20);
  int got = 0;
  while ((got = gzread(file, chunk.data(), static_cast<unsigned>(chunk.size()))) > 0)
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + got);
  bool failed = got < 0;
  gzclose(file);
  if (failed) throw std::runtime_error(fmt::format("{} is not a valid gzip file", path));
  return bytes;
}

uint32_t big_endian_u32(const std::vector<uint8_t>& bytes, size_t at) {
  return uint32_t(bytes[at]) << 24 | uint32_t(bytes[at + 1]) << 16 | uint32_t(bytes[at + 2]) << 8 |
         uint32_t(bytes[at + 3]);
}

// An IDX file of unsigned bytes (magic 0x08, `rank` dimensions) as a u8 tensor.
torch::Tensor read_idx(const std::string& path, int rank) {
  std::vector<uint8_t> bytes = gunzip(path);
  size_t header = 4 + 4 * size_t(rank);
  if (bytes.size() < header || big_endian_u32(bytes, 0) != uint32_t(0x0800 | rank))
    throw std::runtime_error(fmt::format("{} is not a rank-{} u8 IDX file", path, rank));
  std::vector<int64_t> shape;
  int64_t count = 1;
  for (int d = 0; d < rank; ++d) {
    shape.push_back(big_endian_u32(bytes, 4 + 4 * size_t(d)));
    count *= shape.back();
  }
  if (bytes.size() != header + size_t(count))
    throw std::runtime_error(
        fmt::format("{}: {} data bytes, the header says {}", path, bytes.size() - header, count));
  torch::Tensor t = torch::empty(shape, torch::kUInt8);
  std::copy(bytes.begin() + long(header), bytes.end(), t.data_ptr<uint8_t>());
  return t;
}

Split load_split(const std::string& prefix) {
  torch::Tensor images = read_idx(fmt::format("{}/{}-images-idx3-ubyte.gz", kDataDir, prefix), 3);
  torch::Tensor labels = read_idx(fmt::format("{}/{}-labels-idx1-ubyte.gz", kDataDir, prefix), 1);
  if (images.size(0) != labels.size(0))
    throw std::runtime_error(
        fmt::format("{}: {} images but {} labels", prefix, images.size(0), labels.size(0)));
  return {images.to(torch::kFloat32).div_(255.f).unsqueeze(1), labels.to(torch::kInt64)};
}

// Keras's Dense and Conv2D defaults: Glorot-uniform kernels, zero biases.
void init_like_keras(torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  for (auto& module : model.modules(/*include_self=*/false)) {
    for (auto& item : module->named_parameters(/*recurse=*/false)) {
      if (item.key() == "weight") torch::nn::init::xavier_uniform_(item.value());
      if (item.key() == "bias") item.value().zero_();
    }
  }
}

torch::nn::Sequential make_mlp() {
  namespace nn = torch::nn;
  return nn::Sequential(nn::Flatten(), nn::Linear(784, 512), nn::ReLU(), nn::Linear(512, 10));
}

torch::nn::Sequential make_convnet() {
  namespace nn = torch::nn;
  return nn::Sequential(nn::Conv2d(nn::Conv2dOptions(1, 32, 5).padding(2)), nn::ReLU(),
                        nn::MaxPool2d(2), nn::Conv2d(nn::Conv2dOptions(32, 64, 5).padding(2)),
                        nn::ReLU(), nn::MaxPool2d(2), nn::Flatten(), nn::Linear(3136, 1024),
                        nn::ReLU(), nn::Dropout(0.4), nn::Linear(1024, 10));
}

struct Scores {
  double loss = 0, accuracy = 0;
};

// Mean loss and accuracy over a split, in eval mode (dropout off), without gradients.
Scores evaluate(torch::nn::Sequential& model, const Split& data) {
  torch::NoGradGuard no_grad;
  model->eval();
  int64_t n = data.images.size(0);
  double loss = 0, correct = 0;
  for (int64_t begin = 0; begin < n; begin += kBatch) {
    int64_t end = std::min(n, begin + kBatch);
    torch::Tensor logits = model->forward(data.images.slice(0, begin, end));
    torch::Tensor y = data.labels.slice(0, begin, end);
    loss += torch::nn::functional::cross_entropy(logits, y).item<double>() * double(end - begin);
    correct += logits.argmax(1).eq(y).sum().item<double>();
  }
  return {loss / double(n), correct / double(n)};
}

// Trains for opts.epochs, printing each epoch, then tests; ends with the summary line.
void run(const std::string& tag, torch::nn::Sequential model, torch::optim::Optimizer& optimizer,
         const Split& train, const Split& validation, const Split& test, const Options& opts) {
  int64_t n = train.images.size(0);
  std::vector<double> seconds;
  for (int64_t epoch = 0; epoch < opts.epochs; ++epoch) {
    auto start = std::chrono::steady_clock::now();
    model->train();
    torch::Tensor order = torch::randperm(n, torch::kInt64);
    double loss_sum = 0, correct = 0;
    for (int64_t begin = 0; begin < n; begin += kBatch) {
      torch::Tensor rows = order.slice(0, begin, std::min(n, begin + kBatch));
      torch::Tensor x = train.images.index_select(0, rows);
      torch::Tensor y = train.labels.index_select(0, rows);
      optimizer.zero_grad();
      torch::Tensor logits = model->forward(x);
      torch::Tensor loss = torch::nn::functional::cross_entropy(logits, y);
      loss.backward();
      optimizer.step();
      loss_sum += loss.item<double>() * double(rows.size(0));
      correct += logits.argmax(1).eq(y).sum().item<double>();
    }
    Scores val = evaluate(model, validation);
    seconds.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    fmt::print(
        "{} epoch {}/{}: {:.3f} s, loss {:.4f}, accuracy {:.4f}, val_loss {:.4f}, "
        "val_accuracy {:.4f}\n",
        tag, epoch + 1, opts.epochs, seconds.back(), loss_sum / double(n), correct / double(n),
        val.loss, val.accuracy);
  }
  Scores scores = evaluate(model, test);
  fmt::print("{}: test loss {:.4f}, test accuracy {:.4f}\n", tag, scores.loss, scores.accuracy);
  std::vector<double> sorted = seconds;
  std::sort(sorted.begin(), sorted.end());
  size_t m = sorted.size();
  double median = m == 0 ? 0 : m % 2 ? sorted[m / 2] : (sorted[m / 2 - 1] + sorted[m / 2]) / 2;
  fmt::print("model={} threads={} epochs={} median_epoch_s={:.3f} test_accuracy={:.4f}\n", tag,
             opts.threads, opts.epochs, median, scores.accuracy);
  std::fflush(stdout);
}

// The q-quantile of sorted values, interpolating between neighbours.
double quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  double at = q * double(sorted.size() - 1);
  auto below = static_cast<size_t>(at);
  size_t above = std::min(below + 1, sorted.size() - 1);
  return sorted[below] + (at - double(below)) * (sorted[above] - sorted[below]);
}

// Microseconds per forward call of `model` on `x`, one entry per timed call, after warm-up; the
// caller holds the gradient guard.
std::vector<double> time_forward(torch::nn::Sequential& model, const torch::Tensor& x,
                                 int64_t calls) {
  constexpr int kWarmup = 200;
  for (int i = 0; i < kWarmup; ++i)
    model->forward(x);
  std::vector<double> micros;
  micros.reserve(size_t(calls));
  for (int64_t i = 0; i < calls; ++i) {
    auto start = std::chrono::steady_clock::now();
    torch::Tensor y = model->forward(x);
    micros.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
            .count());
  }
  std::sort(micros.begin(), micros.end());
  return micros;
}

// --infer for one model: the cold first call, then batch-1 latency under each gradient guard.
void run_infer(const std::string& tag, torch::nn::Sequential (*make)(), int64_t default_calls,
               const Options& opts) {
  int64_t calls = opts.calls > 0 ? opts.calls : default_calls;
  torch::Tensor x = torch::rand({1, 1, 28, 28});
  torch::nn::Sequential model;
  {
    torch::NoGradGuard no_grad;
    auto start = std::chrono::steady_clock::now();
    model = make();
    init_like_keras(*model);
    model->eval();
    torch::Tensor y = model->forward(x);
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (y.dim() != 2 || y.size(0) != 1 || y.size(1) != 10)
      throw std::runtime_error(fmt::format("{}: output is not [1, 10]", tag));
    fmt::print("model={} mode=first_call threads={} first_call_ms={:.3f}\n", tag, opts.threads, ms);
  }
  auto report = [&](const char* guard, const std::vector<double>& us) {
    fmt::print(
        "model={} mode=infer guard={} threads={} calls={} median_us={:.1f} p10_us={:.1f} "
        "p90_us={:.1f}\n",
        tag, guard, opts.threads, calls, quantile(us, 0.5), quantile(us, 0.1), quantile(us, 0.9));
    std::fflush(stdout);
  };
  {
    torch::NoGradGuard no_grad;
    report("no_grad", time_forward(model, x, calls));
  }
  {
    c10::InferenceMode inference;
    report("inference_mode", time_forward(model, x, calls));
  }
}

Options parse(int argc, char** argv) {
  Options opts;
  auto value = [&](int& i) -> std::string {
    if (i + 1 >= argc) throw std::invalid_argument(fmt::format("{} needs a value", argv[i]));
    return argv[++i];
  };
  auto number = [&](int& i) -> int64_t {
    std::string flag = argv[i], text = value(i);
    int64_t n = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (error != std::errc() || end != text.data() + text.size())
      throw std::invalid_argument(fmt::format("{} needs a whole number, got '{}'", flag, text));
    return n;
  };
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--epochs") {
      opts.epochs = number(i);
    } else if (arg == "--threads") {
      opts.threads = int(std::clamp<int64_t>(number(i), 0, 1024));
    } else if (arg == "--model") {
      opts.model = value(i);
    } else if (arg == "--infer") {
      opts.infer = true;
    } else if (arg == "--calls") {
      opts.calls = number(i);
      if (opts.calls < 1) throw std::invalid_argument("--calls needs a number >= 1");
    } else {
      throw std::invalid_argument(fmt::format("unknown argument '{}'", arg));
    }
  }
  if (opts.epochs < 1 || opts.threads < 1 ||
      (opts.model != "mlp" && opts.model != "convnet" && opts.model != "both"))
    throw std::invalid_argument("need --epochs >= 1, --threads >= 1, --model mlp|convnet|both");
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

// One inter-op thread and `threads` intra-op and OpenBLAS threads; prints what took effect.
void set_threads(int threads) {
  at::set_num_interop_threads(1);
  torch::set_num_threads(threads);
  int blas_threads = set_openblas_threads(threads);
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  fmt::print("libtorch {}: intra-op threads {}, OpenBLAS threads {}, OPENBLAS_CORETYPE {}\n",
             TORCH_VERSION, torch::get_num_threads(), blas_threads,
             coretype ? coretype : "(unset)");
}

}  // namespace

int main(int argc, char** argv) {
  Options opts;
  try {
    opts = parse(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr,
               "{}\nusage: {} [--epochs N] [--threads T] [--model mlp|convnet|both] "
               "[--infer [--calls N]]\n",
               e.what(), argv[0]);
    return 2;
  }
  if (opts.infer) {
    try {
      set_threads(opts.threads);
      torch::manual_seed(1);
      if (opts.model != "convnet") run_infer("mlp", make_mlp, 2000, opts);
      if (opts.model != "mlp") run_infer("convnet", make_convnet, 300, opts);
    } catch (const std::exception& e) {
      fmt::print(stderr, "error: {}\n", e.what());
      return 1;
    }
    return 0;
  }
  for (const char* name : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                           "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}) {
    if (!std::filesystem::exists(fmt::format("{}/{}", kDataDir, name))) {
      fmt::print(stderr, "{}/{} is missing: install the package dataset-fashion-mnist\n", kDataDir,
                 name);
      return 1;
    }
  }
  try {
    set_threads(opts.threads);
    torch::manual_seed(1);

    Split all = load_split("train"), test = load_split("t10k");
    int64_t n = all.images.size(0);
    auto split_at = static_cast<int64_t>(double(n) * (1.0 - kValidationSplit));
    Split train{all.images.slice(0, 0, split_at), all.labels.slice(0, 0, split_at)};
    Split validation{all.images.slice(0, split_at, n), all.labels.slice(0, split_at, n)};
    fmt::print("train {}, validation {}, test {}\n", train.images.size(0),
               validation.images.size(0), test.images.size(0));

    if (opts.model != "convnet") {
      torch::nn::Sequential mlp = make_mlp();
      init_like_keras(*mlp);
      torch::optim::RMSprop optimizer(mlp->parameters(),
                                      torch::optim::RMSpropOptions(1e-3).alpha(0.9).eps(1e-7));
      run("mlp", mlp, optimizer, train, validation, test, opts);
    }
    if (opts.model != "mlp") {
      torch::nn::Sequential convnet = make_convnet();
      init_like_keras(*convnet);
      torch::optim::Adam optimizer(convnet->parameters(),
                                   torch::optim::AdamOptions(1e-3).eps(1e-7));
      run("convnet", convnet, optimizer, train, validation, test, opts);
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
