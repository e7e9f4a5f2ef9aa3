// Helpers for the ahead-of-time tests: loading a compiled library with dlopen and calling its
// C API by name, and comparing its results with the JIT's.
#pragma once

#include <dlfcn.h>
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <cmath>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "process_test_util.h"

namespace kiln::testing {

// The dynamic libraries `path` needs (readelf's NEEDED entries).
inline std::set<std::string> needed(const std::string& path) {
  Outcome o = run({"readelf", "-d", path});
  REQUIRE(o.status == 0);
  std::set<std::string> names;
  std::istringstream lines(o.out);
  for (std::string line; std::getline(lines, line);) {
    auto open = line.find("(NEEDED)");
    if (open == std::string::npos) continue;
    auto a = line.find('['), b = line.find(']');
    names.insert(line.substr(a + 1, b - a - 1));
  }
  return names;
}

// CHECKs that the library at `path` needs libc and nothing but libm, libpthread and the loader.
inline void check_needs_only_libc(const std::string& path) {
  const std::set<std::string> allowed{"libc.so.6", "libm.so.6", "libpthread.so.0",
                                      "ld-linux-x86-64.so.2"};
  const std::set<std::string> libs = needed(path);
  CHECK(libs.count("libc.so.6") == 1);
  for (const std::string& name : libs) {
    INFO(name);
    CHECK(allowed.count(name) == 1);
  }
}

// A library from kiln::aot, opened with dlopen; fn<Signature>("run") finds NAME_run.
class AotLibrary {
 public:
  AotLibrary(const std::string& path, std::string name) : name_(std::move(name)) {
    handle_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    const char* error = handle_ != nullptr ? "" : dlerror();
    INFO(path << ": " << error);
    REQUIRE(handle_ != nullptr);
  }
  ~AotLibrary() { dlclose(handle_); }
  AotLibrary(const AotLibrary&) = delete;
  AotLibrary& operator=(const AotLibrary&) = delete;

  template <class Signature>
  Signature* fn(const std::string& suffix) const {
    void* symbol = dlsym(handle_, (name_ + "_" + suffix).c_str());
    INFO(name_ + "_" + suffix);
    REQUIRE(symbol != nullptr);
    return reinterpret_cast<Signature*>(symbol);
  }

  // A new instance (embedded weights, or `weights` when given); REQUIREs success.
  void* create(const char* weights = nullptr) const {
    void* model =
        weights ? fn<void*(const char*)>("create_from")(weights) : fn<void*()>("create")();
    INFO(last_error(nullptr));
    REQUIRE(model != nullptr);
    return model;
  }
  std::string last_error(void* model) const { return fn<const char*(void*)>("last_error")(model); }
  void destroy(void* model) const { fn<void(void*)>("destroy")(model); }

  // NAME_run for a library of one f32 input and one f32 output of `size` elements: runs `model`
  // on `x` and returns the output (REQUIREs success).
  std::vector<float> run(void* model, const Tensor& x, size_t size) const {
    std::vector<float> y(size);
    const int status =
        fn<int(void*, const float*, float*)>("run")(model, x.host().data<float>(), y.data());
    INFO(last_error(model));
    REQUIRE(status == 0);
    return y;
  }

 private:
  std::string name_;
  void* handle_ = nullptr;
};

// |a − b| ≤ tolerance · max(1, |b|) for every element of two f32 tensors of equal size.
inline void check_close(const float* a, const Tensor& b, double tolerance = 1e-6) {
  const Tensor expected = b.dtype() == f32 ? b : cast(b, f32);
  const float* e = expected.host().data<float>();
  for (int64_t i = 0; i < expected.size(); ++i) {
    INFO("element " << i << ": " << a[i] << " vs " << e[i]);
    REQUIRE(std::abs(double(a[i]) - double(e[i])) <=
            tolerance * std::max(1.0, std::abs(double(e[i]))));
  }
}

// Whether GPU libraries can be built here: Kiln was built with a CUDA toolkit (the test's target
// defines KILN_AOT_CUDA_TOOLKIT then). WARNs and says false otherwise.
inline bool have_cuda_toolkit() {
#ifdef KILN_AOT_CUDA_TOOLKIT
  return true;
#else
  WARN("skipped: Kiln was built without a CUDA toolkit, so it cannot build GPU libraries");
  return false;
#endif
}

}  // namespace kiln::testing
