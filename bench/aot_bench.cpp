// Ahead-of-time libraries against the JIT, for the main job's two models at batch 1 (one
// Fashion-MNIST image, the deployment case): compile time, library size, the time from process
// start to the first answer (cold: dlopen + create + first run, against load_model + first
// call, which JIT-compiles), and steady-state latency per call.
//
//   build/bench/aot_bench [out_dir]
//
// Cold times run in fresh processes (this program started again with --cold-aot/--cold-jit),
// seven of each; every time quoted is a median.
#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "../examples/main_job_models.h"
#include "kiln/frontend/process.h"
#include "kiln/kiln.h"

namespace k = kiln;

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

using CreateFn = void*();
using RunFn = int(void*, const float*, float*);

// In a fresh process: dlopen, create and one run of library `path` (API prefix `name`).
int cold_aot(const std::string& path, const std::string& name) {
  std::vector<float> x(784, 0.5f), y(10);
  const auto start = Clock::now();
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) return 1;
  auto create = reinterpret_cast<CreateFn*>(dlsym(handle, (name + "_create").c_str()));
  auto run = reinterpret_cast<RunFn*>(dlsym(handle, (name + "_run").c_str()));
  void* model = create();
  if (model == nullptr || run(model, x.data(), y.data()) != 0) return 1;
  std::printf("%.3f\n", ms_since(start));
  return 0;
}

// In a fresh process: load_model and one call (tracing nothing, JIT-compiling the saved IR).
int cold_jit(const std::string& dir) {
  const auto start = Clock::now();
  k::SavedModel model = k::load_model(dir);
  k::Tensor y = model(k::fill({1, 28, 28}, 0.5f));
  if (y.size() != 10) return 1;
  std::printf("%.3f\n", ms_since(start));
  return 0;
}

// This program run again with `args` (no shell): the milliseconds it prints, or -1.
double run_self(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {std::filesystem::read_symlink("/proc/self/exe").string()};
  argv.insert(argv.end(), args.begin(), args.end());
  k::detail::TempDir dir(std::filesystem::temp_directory_path().string(), "kiln_aot_bench",
                         "aot_bench", std::source_location::current());
  std::string error;
  if (k::detail::run_program(argv, dir.file("out"), error, dir.file("err")) != 0) return -1;
  double ms = -1;
  std::ifstream in(dir.file("out"));
  return (in >> ms) ? ms : -1;
}

// Median of seven runs of this program with `args`, each printing milliseconds.
double cold(const std::vector<std::string>& args) {
  std::vector<double> times;
  for (int i = 0; i < 7; ++i)
    times.push_back(run_self(args));
  return median(times);
}

void measure(const std::string& label, k::Sequential model, const std::string& out) {
  k::set_random_seed(1);
  model(k::zeros({1, 28, 28}));
  const std::string saved = out + "/" + label;
  model.save(saved, /*batch_size=*/1);

  auto start = Clock::now();
  k::aot::compile(k::load_model(saved), {.name = label, .out_dir = out});
  const double aot_compile = ms_since(start);
  const std::string library = fmt::format("{}/lib{}.so", out, label);
  const double embedded_kib = double(std::filesystem::file_size(library)) / 1024;
  k::aot::compile(k::load_model(saved),
                  {.name = label + "_ext", .out_dir = out, .weights = k::aot::Weights::external});
  const double code_kib =
      double(std::filesystem::file_size(fmt::format("{}/lib{}_ext.so", out, label))) / 1024;

  // Steady state, in this process: the library through dlopen, the JIT through SavedModel.
  void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  auto create = reinterpret_cast<CreateFn*>(dlsym(handle, (label + "_create").c_str()));
  auto run = reinterpret_cast<RunFn*>(dlsym(handle, (label + "_run").c_str()));
  void* instance = create();
  k::SavedModel jit = k::load_model(saved);
  const k::Tensor x = k::random_uniform({1, 28, 28}, 0.0, 1.0, 3);
  std::vector<float> y(10);
  const int calls = label == "mlp" ? 2000 : 200;
  // Each path's calls back to back, as a deployment (and libtorch's --infer) makes them: calls
  // interleaved with the other path's would also time the two copies of the weights evicting
  // each other from the cache (the convnet's dense layer alone is 12.8 MB of a 32 MB L3).
  std::vector<double> aot_us, jit_us;
  for (int round = 0; round < 2; ++round) {  // the first round warms up
    aot_us.clear();
    jit_us.clear();
    for (int i = 0; i < calls; ++i) {
      const auto t = Clock::now();
      run(instance, x.host().data<float>(), y.data());
      aot_us.push_back(ms_since(t) * 1000);
    }
    for (int i = 0; i < calls; ++i) {
      const auto t = Clock::now();
      k::Tensor r = jit(x);
      jit_us.push_back(ms_since(t) * 1000);
    }
  }
  reinterpret_cast<void (*)(void*)>(dlsym(handle, (label + "_destroy").c_str()))(instance);

  const double cold_aot_ms = cold({"--cold-aot", library, label});
  const double cold_jit_ms = cold({"--cold-jit", saved});
  fmt::print(
      "{:8} aot compile {:7.0f} ms | .so {:7.0f} KiB, without weights {:5.0f} KiB | "
      "cold first answer: aot {:6.1f} ms, jit {:7.1f} ms ({:.0f}x) | steady per call: "
      "aot {:7.1f} us, jit {:7.1f} us ({:.2f}x)\n",
      label, aot_compile, embedded_kib, code_kib, cold_aot_ms, cold_jit_ms,
      cold_jit_ms / cold_aot_ms, median(aot_us), median(jit_us), median(jit_us) / median(aot_us));
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 3 && args[0] == "--cold-aot") return cold_aot(args[1], args[2]);
  if (args.size() == 2 && args[0] == "--cold-jit") return cold_jit(args[1]);
  const std::string out = args.empty() ? "/tmp/kiln_aot_bench" : args[0];
  std::filesystem::create_directories(out);
  measure("mlp", main_job::mlp(), out);
  measure("convnet", main_job::convnet(), out);
  return 0;
}
