#include "phase2.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <utility>
#include <vector>

#include "bundle_format.h"
#include "kiln/runtime/safetensors.h"

namespace kiln::gpu_check {

std::string strf(const char* format, ...) {
  va_list args;
  va_start(args, format);
  char small[512];
  const int n = std::vsnprintf(small, sizeof small, format, args);
  va_end(args);
  if (n < static_cast<int>(sizeof small)) return small;
  std::string big(static_cast<size_t>(n) + 1, '\0');
  va_start(args, format);
  std::vsnprintf(big.data(), big.size(), format, args);
  va_end(args);
  big.resize(static_cast<size_t>(n));
  return big;
}

namespace {

namespace cu = kiln::runtime::cuda;
using Clock = std::chrono::steady_clock;

// The most inputs plus outputs a library may have (the op libraries have up to 33).
constexpr size_t kMaxArgs = 64;
// Mismatches printed per output; the rest are counted.
constexpr int kMaxPrinted = 3;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// NAME_run / NAME_run_device of any arity: int f(model, arg0, ..., argN-1), Arg a pointer or a
// uint64_t device address; the generated signatures' typed pointers pass as void*.
template <class Arg>
using Invoker = int (*)(void* fn, void* model, const Arg* args);

// `T`, whatever the index: repeats a parameter type once per element of an index pack.
template <class T, size_t>
using Repeat = T;

template <class Arg, size_t... I>
int call_with(void* fn, void* model, const Arg* args, std::index_sequence<I...>) {
  using Fn = int (*)(void*, Repeat<Arg, I>...);
  return reinterpret_cast<Fn>(fn)(model, args[I]...);
}

template <class Arg, size_t N>
int invoke(void* fn, void* model, const Arg* args) {
  return call_with<Arg>(fn, model, args, std::make_index_sequence<N>());
}

template <class Arg, size_t... N>
constexpr std::array<Invoker<Arg>, sizeof...(N)> invokers(std::index_sequence<N...>) {
  return {&invoke<Arg, N>...};
}

constexpr auto kHostInvokers = invokers<void*>(std::make_index_sequence<kMaxArgs + 1>());
constexpr auto kDeviceInvokers = invokers<uint64_t>(std::make_index_sequence<kMaxArgs + 1>());

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// "file:F" / "sample:COUNT:F": F; "random:SEED": SEED.
std::string after(const std::string& spec, char separator = ':') {
  return spec.substr(spec.rfind(separator) + 1);
}

// Element `i` of a buffer of `dtype`, as a double.
double element(const unsigned char* data, const std::string& dtype, int64_t i) {
  const auto at = static_cast<size_t>(i);
  if (dtype == "f32") {
    float v;
    std::memcpy(&v, data + at * 4, 4);
    return v;
  }
  if (dtype == "f64") {
    double v;
    std::memcpy(&v, data + at * 8, 8);
    return v;
  }
  if (dtype == "i32") {
    int32_t v;
    std::memcpy(&v, data + at * 4, 4);
    return v;
  }
  if (dtype == "i64") {
    int64_t v;
    std::memcpy(&v, data + at * 8, 8);
    return static_cast<double>(v);
  }
  return data[at];  // u8, bool
}

// Compares `count` values: got at `index(i)` of `got` against want[i].
struct Comparison {
  int64_t values = 0, mismatches = 0;
  double max_error = 0;  // |got - want| / (atol + rtol·|want|): <= 1 passes
  std::vector<std::string> first;
};

template <class Index>
Comparison compare(const unsigned char* got, const unsigned char* want, const std::string& dtype,
                   int64_t count, double atol, double rtol, Index index) {
  Comparison c;
  c.values = count;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t at = index(i);
    const double g = element(got, dtype, at), w = element(want, dtype, i);
    bool ok;
    double error = 0;
    if (std::isnan(w) || std::isnan(g)) {
      ok = std::isnan(w) && std::isnan(g);
    } else if (atol == 0 && rtol == 0) {
      ok = g == w;
    } else {
      error = std::fabs(g - w) / (atol + rtol * std::fabs(w));
      ok = error <= 1;
    }
    if (ok) {
      c.max_error = std::max(c.max_error, error);
      continue;
    }
    ++c.mismatches;
    c.max_error = INFINITY;
    if (static_cast<int>(c.first.size()) < kMaxPrinted)
      c.first.push_back(strf("[%lld] got %.9g, want %.9g", static_cast<long long>(at), g, w));
  }
  return c;
}

// A loaded library: its handle and the C API's entry points.
class Library {
 public:
  Library(const std::string& path, const std::string& name) : name_(name) {
    handle_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle_ == nullptr) throw std::runtime_error(strf("dlopen: %s", dlerror()));
    create = reinterpret_cast<void* (*)()>(symbol("create"));
    run = symbol("run");
    run_device = symbol("run_device");
    last_error = reinterpret_cast<const char* (*)(const void*)>(symbol("last_error"));
    save_weights = reinterpret_cast<int (*)(void*, const char*)>(symbol("save_weights"));
    destroy = reinterpret_cast<void (*)(void*)>(symbol("destroy"));
  }
  ~Library() { dlclose(handle_); }
  Library(const Library&) = delete;
  Library& operator=(const Library&) = delete;

  void* handle() const { return handle_; }

  void* (*create)() = nullptr;
  void* run = nullptr;
  void* run_device = nullptr;
  const char* (*last_error)(const void*) = nullptr;
  int (*save_weights)(void*, const char*) = nullptr;
  void (*destroy)(void*) = nullptr;

 private:
  void* symbol(const std::string& suffix) {
    void* s = dlsym(handle_, (name_ + "_" + suffix).c_str());
    if (s == nullptr) {
      dlclose(handle_);
      throw std::runtime_error("no symbol " + name_ + "_" + suffix +
                               " (not a Kiln GPU library of that name?)");
    }
    return s;
  }

  std::string name_;
  void* handle_ = nullptr;
};

// One model instance, destroyed at scope exit.
struct Instance {
  const Library& lib;
  void* model;
  ~Instance() { lib.destroy(model); }
};

class Runner {
 public:
  Runner(const cu::ContextPtr& context, const Phase2Options& options, const Baselines& baselines)
      : context_(context), options_(options), baselines_(baselines) {}

  void run(const LibraryRecord& record) {
    std::printf("  %s (%s, %zu inputs, %zu outputs%s)\n", record.name.c_str(), record.kind.c_str(),
                record.inputs.size(), record.outputs.size(),
                record.steps > 1 ? strf(", %d steps", record.steps).c_str() : "");
    std::fflush(stdout);
    if (record.inputs.size() + record.outputs.size() > kMaxArgs)
      return fail(record.name + ": more than 64 inputs and outputs");
    Library lib(path(record.file), record.name);
    if (options_.on_load) options_.on_load(lib.handle(), record.name);
    struct Unload {
      const Phase2Options& options;
      const Library& lib;
      const std::string& name;
      ~Unload() {
        if (options.on_unload) options.on_unload(lib.handle(), name);
      }
    } unload{options_, lib, record.name};

    // Host buffers of the inputs and outputs.
    std::vector<std::vector<unsigned char>> inputs, outputs;
    check_files(record);
    if (options_.run_filter && !options_.run_filter(record)) {
      std::printf("    not run here: its symbols and files are all there\n");
      table_row(record.name, "not run", "", "", "");
      return;
    }
    for (const InputRecord& in : record.inputs)
      inputs.push_back(make_input(in));
    for (const OutputRecord& out : record.outputs)
      outputs.emplace_back(static_cast<size_t>(out.elements * dtype_bytes(out.dtype)));
    std::vector<void*> host_args;
    for (auto& b : inputs)
      host_args.push_back(b.data());
    for (auto& b : outputs)
      host_args.push_back(b.data());

    const auto create = [&]() -> void* {
      void* model = lib.create();
      if (model == nullptr) throw std::runtime_error(strf("create: %s", lib.last_error(nullptr)));
      return model;
    };
    std::string checked;
    {
      Instance instance{lib, create()};
      checked = check(record, lib, instance.model, host_args, outputs);
    }
    if (!options_.timings) {
      table_row(record.name, checked, "", "", "");
      return;
    }

    // Timings on a fresh instance (a training step's state as the checks started from).
    Instance instance{lib, create()};
    std::vector<cu::DeviceBuffer> device;
    std::vector<uint64_t> device_args;
    for (size_t i = 0; i < inputs.size(); ++i) {
      device.emplace_back(context_, std::max<size_t>(inputs[i].size(), 1));
      device.back().copy_from_host(inputs[i].data(), inputs[i].size());
      device_args.push_back(device.back().get());
    }
    for (const auto& b : outputs) {
      device.emplace_back(context_, std::max<size_t>(b.size(), 1));
      device_args.push_back(device.back().get());
    }
    const size_t arity = host_args.size();
    const double t_device = time_calls(
        [&] { return kDeviceInvokers[arity](lib.run_device, instance.model, device_args.data()); },
        lib, instance.model, options_.samples);
    const double t_host =
        time_calls([&] { return kHostInvokers[arity](lib.run, instance.model, host_args.data()); },
                   lib, instance.model, std::min(options_.samples, 5));
    std::string metric;
    if (record.kind == "gemm") {
      const double flops = 2.0 * record.m * record.n * record.k;
      const auto base = baselines_.gemm_flops_per_s.find({record.m, record.n, record.k});
      metric = strf("%.2f TFLOP/s", flops / t_device / 1e12);
      if (base != baselines_.gemm_flops_per_s.end() && base->second > 0)
        metric += strf("; cuBLASLt alone %.2f TFLOP/s (%.0f%%)", base->second / 1e12,
                       100 * flops / t_device / base->second);
      else
        metric += "; cuBLASLt alone not measured at this shape";
    } else if (record.kind == "chain") {
      const double bytes = static_cast<double>(inputs[0].size());
      metric = strf("%.1f GB/s", bytes / t_device / 1e9);
      if (baselines_.d2d_bytes_per_s > 0)
        metric += strf("; D2D copy %.1f GB/s (%.0f%%)", baselines_.d2d_bytes_per_s / 1e9,
                       100 * bytes / t_device / baselines_.d2d_bytes_per_s);
    } else if (record.kind == "train") {
      metric = strf("%.3f ms/step (batch of %lld)", t_device * 1e3,
                    static_cast<long long>(record.outputs.empty() ? 0 : record.inputs[1].elements));
    }
    table_row(record.name, checked, strf("%.4f ms", t_device * 1e3), strf("%.4f ms", t_host * 1e3),
              metric);
    std::printf("    run_device %.4f ms, run (host copies) %.4f ms%s%s\n", t_device * 1e3,
                t_host * 1e3, metric.empty() ? "" : "; ", metric.c_str());
  }

  void fail(const std::string& what) {
    ++failures_;
    std::printf("  FAIL %s\n", what.c_str());
  }

  // The table's row of a library that could not be run.
  void failed_row(const std::string& name, const std::string& why) {
    table_ += strf("%-22s FAIL: %s\n", name.c_str(), why.c_str());
  }

  int failures() const { return failures_; }
  std::string table() const { return table_; }

 private:
  std::string path(const std::string& file) const {
    return (std::filesystem::path(options_.dir) / file).string();
  }

  // Every data file of `record` exists and has the manifest's size; throws if not.
  void check_files(const LibraryRecord& record) const {
    const auto expect_size = [&](const std::string& file, int64_t bytes) {
      std::error_code error;
      const auto size = std::filesystem::file_size(path(file), error);
      if (error) throw std::runtime_error(strf("%s: %s", file.c_str(), error.message().c_str()));
      if (size != static_cast<uint64_t>(bytes))
        throw std::runtime_error(strf("%s holds %llu bytes, not %lld", file.c_str(),
                                      static_cast<unsigned long long>(size),
                                      static_cast<long long>(bytes)));
    };
    for (const InputRecord& in : record.inputs)
      if (in.source.rfind("file:", 0) == 0)
        expect_size(after(in.source), in.elements * dtype_bytes(in.dtype));
    for (const OutputRecord& o : record.outputs) {
      if (o.expect.rfind("file:", 0) == 0)
        expect_size(after(o.expect), record.steps * o.elements * dtype_bytes(o.dtype));
      else if (o.expect.rfind("sample:", 0) == 0)
        expect_size(after(o.expect), std::stoll(o.expect.substr(7)) * dtype_bytes(o.dtype));
    }
    for (const StateRecord& st : record.state)
      expect_size(st.file, st.count * 4);
  }

  std::vector<unsigned char> make_input(const InputRecord& in) const {
    const auto bytes = static_cast<size_t>(in.elements * dtype_bytes(in.dtype));
    std::vector<unsigned char> data(bytes);
    if (in.source.rfind("random:", 0) == 0) {
      fill_uniform(reinterpret_cast<float*>(data.data()), in.elements,
                   std::stoull(after(in.source)));
      return data;
    }
    const std::string file = read_file(path(after(in.source)));
    if (file.size() != bytes)
      throw std::runtime_error(
          strf("%s holds %zu bytes, not %zu", after(in.source).c_str(), file.size(), bytes));
    std::memcpy(data.data(), file.data(), bytes);
    return data;
  }

  // Runs the steps from host memory and compares; returns the table's check column.
  std::string check(const LibraryRecord& record, const Library& lib, void* model,
                    const std::vector<void*>& host_args,
                    const std::vector<std::vector<unsigned char>>& outputs) {
    const int before = failures_;
    int64_t values = 0;
    double worst = 0;
    std::string worst_label;
    std::vector<std::string> expected(record.outputs.size());
    for (size_t j = 0; j < record.outputs.size(); ++j)
      if (record.outputs[j].expect != "none")
        expected[j] = read_file(path(after(record.outputs[j].expect)));
    for (int step = 0; step < record.steps; ++step) {
      if (kHostInvokers[host_args.size()](lib.run, model, host_args.data()) != 0) {
        fail(strf("%s: run (step %d): %s", record.name.c_str(), step, lib.last_error(model)));
        return "FAIL";
      }
      for (size_t j = 0; j < record.outputs.size(); ++j) {
        const OutputRecord& o = record.outputs[j];
        if (o.expect == "none") continue;
        const bool sample = o.expect.rfind("sample:", 0) == 0;
        if (sample && step > 0) continue;
        const int64_t count = sample ? std::stoll(o.expect.substr(7)) : o.elements;
        const auto want_bytes = static_cast<size_t>(count * dtype_bytes(o.dtype));
        const size_t offset = sample ? 0 : static_cast<size_t>(step) * want_bytes;
        if (expected[j].size() < offset + want_bytes) {
          fail(strf("%s: %s's expected values are short (%zu bytes)", record.name.c_str(),
                    o.label.c_str(), expected[j].size()));
          continue;
        }
        const auto* want = reinterpret_cast<const unsigned char*>(expected[j].data()) + offset;
        const int64_t elements = o.elements;
        const Comparison c = sample
                                 ? compare(outputs[j].data(), want, o.dtype, count, o.atol, o.rtol,
                                           [&](int64_t i) { return sample_index(i, elements); })
                                 : compare(outputs[j].data(), want, o.dtype, count, o.atol, o.rtol,
                                           [](int64_t i) { return i; });
        values += c.values;
        if (c.mismatches > 0) {
          std::string detail;
          for (const std::string& s : c.first)
            detail += " " + s;
          fail(strf("%s: %s%s: %lld of %lld values differ (atol %g, rtol %g):%s%s",
                    record.name.c_str(), o.label.c_str(),
                    record.steps > 1 ? strf(" (step %d)", step).c_str() : "",
                    static_cast<long long>(c.mismatches), static_cast<long long>(c.values), o.atol,
                    o.rtol, detail.c_str(), c.mismatches > kMaxPrinted ? " ..." : ""));
        } else if (c.max_error > worst || worst_label.empty()) {
          worst = c.max_error;
          worst_label = o.label;
        }
      }
    }
    if (!record.state.empty()) values += check_state(record, lib, model);
    const int failed = failures_ - before;
    if (failed == 0)
      std::printf(
          "    ok: %lld values within tolerance (largest error: %.2g of the tolerance, %s)\n",
          static_cast<long long>(values), worst, worst_label.c_str());
    return failed == 0 ? strf("ok (%lld values)", static_cast<long long>(values))
                       : strf("FAIL (%d)", failed);
  }

  // The state after the steps (NAME_save_weights' file) at the manifest's samples.
  int64_t check_state(const LibraryRecord& record, const Library& lib, void* model) {
    const std::string file =
        (std::filesystem::temp_directory_path() /
         strf("gpu_check_%d_%s.safetensors", static_cast<int>(getpid()), record.name.c_str()))
            .string();
    if (lib.save_weights(model, file.c_str()) != 0) {
      fail(strf("%s: save_weights: %s", record.name.c_str(), lib.last_error(model)));
      return 0;
    }
    int64_t values = 0;
    try {
      const runtime::safetensors::Reader reader(file);
      for (const StateRecord& s : record.state) {
        const runtime::safetensors::Entry* entry = reader.find(s.name);
        if (entry == nullptr) {
          fail(strf("%s: the saved state has no tensor %s", record.name.c_str(), s.name.c_str()));
          continue;
        }
        if (entry->end - entry->begin != static_cast<uint64_t>(s.elements * 4)) {
          fail(strf("%s: state %s has %llu bytes, want %lld", record.name.c_str(), s.name.c_str(),
                    static_cast<unsigned long long>(entry->end - entry->begin),
                    static_cast<long long>(s.elements * 4)));
          continue;
        }
        std::vector<unsigned char> got(entry->end - entry->begin);
        reader.read(*entry, got.data());
        const std::string want = read_file(path(s.file));
        if (want.size() != static_cast<size_t>(s.count * 4)) {
          fail(strf("%s: %s holds %zu bytes, not %lld", record.name.c_str(), s.file.c_str(),
                    want.size(), static_cast<long long>(s.count * 4)));
          continue;
        }
        const int64_t elements = s.elements;
        const Comparison c =
            compare(got.data(), reinterpret_cast<const unsigned char*>(want.data()), "f32", s.count,
                    s.atol, s.rtol, [&](int64_t i) { return sample_index(i, elements); });
        values += c.values;
        if (c.mismatches > 0) {
          std::string detail;
          for (const std::string& d : c.first)
            detail += " " + d;
          fail(strf("%s: state %s after %d steps: %lld of %lld sampled values differ:%s",
                    record.name.c_str(), s.name.c_str(), record.steps,
                    static_cast<long long>(c.mismatches), static_cast<long long>(c.values),
                    detail.c_str()));
        }
      }
    } catch (const std::exception& e) {
      fail(strf("%s: reading the saved state: %s", record.name.c_str(), e.what()));
    }
    std::filesystem::remove(file);
    return values;
  }

  // The median seconds per call of `call` over `samples` samples after two warm-up calls; each
  // sample repeats the call until it lasts >= 5 ms (every call returns with its outputs written).
  template <class Call>
  double time_calls(const Call& call, const Library& lib, void* model, int samples) {
    const auto once = [&](int reps) {
      const auto start = Clock::now();
      for (int i = 0; i < reps; ++i)
        if (call() != 0) throw std::runtime_error(strf("run: %s", lib.last_error(model)));
      return std::chrono::duration<double>(Clock::now() - start).count();
    };
    once(2);
    const double one = once(1);
    const int reps = samples <= 1 ? 1 : std::clamp(static_cast<int>(5e-3 / one) + 1, 1, 1000);
    std::vector<double> times;
    for (int i = 0; i < std::max(samples, 1); ++i)
      times.push_back(once(reps) / reps);
    return median(times);
  }

  void table_row(const std::string& name, const std::string& checked, const std::string& device,
                 const std::string& host, const std::string& metric) {
    table_ += strf("%-22s %-20s %-14s %-14s %s\n", name.c_str(), checked.c_str(), device.c_str(),
                   host.c_str(), metric.c_str());
  }

  cu::ContextPtr context_;
  const Phase2Options& options_;
  const Baselines& baselines_;
  int failures_ = 0;
  std::string table_;
};

}  // namespace

Phase2Result run_phase2(const cu::ContextPtr& context, const Phase2Options& options,
                        const Baselines& baselines) {
  Phase2Result result;
  Runner runner(context, options, baselines);
  std::vector<LibraryRecord> libraries;
  try {
    libraries =
        parse_manifest(read_file((std::filesystem::path(options.dir) / kManifestFile).string()));
    std::printf("  bundle %s: %zu libraries\n", options.dir.c_str(), libraries.size());
  } catch (const std::exception& e) {
    runner.fail(std::string("bundle ") + options.dir + ": " + e.what());
  }
  for (const LibraryRecord& record : libraries) {
    const auto start = Clock::now();
    try {
      runner.run(record);
    } catch (const std::exception& e) {
      runner.fail(record.name + ": " + e.what());
      runner.failed_row(record.name, e.what());
    }
    std::printf("    [%s: %.2f s]\n", record.name.c_str(),
                std::chrono::duration<double>(Clock::now() - start).count());
    std::fflush(stdout);
    ++result.libraries;
  }
  result.failures = runner.failures();
  result.table = strf("%-22s %-20s %-14s %-14s %s\n", "library", "check", "run_device",
                      "run (host)", "measure") +
                 runner.table();
  return result;
}

}  // namespace kiln::gpu_check
