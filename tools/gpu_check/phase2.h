// Phase 2 of gpu_check: runs the AOT GPU libraries of a bundle (bundle_format.h, built here by
// gpu_check_bundle) on the GPU, compares every result with the CPU's values carried in the
// bundle, and times them against phase 1's baselines: each GEMM library's TFLOP/s against
// cuBLASLt alone at its shape, the fused elementwise chain's GB/s against a device-to-device
// copy, and the training steps' ms/step; NAME_run_device (inputs already on the GPU) and NAME_run
// (host copies in and out) both.
//
// A library's C API is reached with dlopen/dlsym by name: NAME_run and NAME_run_device take one
// pointer (device address) per input and per output, so they are called through function
// pointer types of the arity the manifest gives. Needs only the static runtime (no LLVM, no
// libkiln): gpu_check links it; tests/gpu_bundle_test.cpp runs it on the mock driver.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "bundle_format.h"
#include "kiln/runtime/cuda/device.h"

namespace kiln::gpu_check {

// printf into a std::string (gpu_check links no fmt: it must run where only libc is).
__attribute__((format(printf, 1, 2))) std::string strf(const char* format, ...);

// What phase 1 measured, for the comparisons (0: not measured).
struct Baselines {
  // One 256 MiB device-to-device copy: bytes copied per second.
  double d2d_bytes_per_s = 0;
  // cuBLASLt alone, f32 with FP32 compute, by {M, N, K}: FLOP per second.
  std::map<std::array<int64_t, 3>, double> gemm_flops_per_s;
};

struct Phase2Options {
  // The bundle's folder (manifest.txt, the libraries, the data files).
  std::string dir;
  // Time the libraries (else only the checks).
  bool timings = true;
  // Samples per timing (the median is reported) after two warm-up runs; 1 on the mock driver.
  int samples = 15;
  // Called after a library is loaded (its dlopen handle) and before its first instance, and
  // after its last instance is destroyed: tests hand its runtime the mock driver and take it back.
  // Their arguments: the library's dlopen handle and its name.
  std::function<void(void*, const std::string&)> on_load, on_unload;
  // Which libraries run (all when unset); the others are only checked: loaded, their symbols
  // and data files present and of the manifest's sizes. gpu_check --mock runs only those whose
  // plans are small GEMMs (no kernels: the mock needs no host shim for them).
  std::function<bool(const LibraryRecord&)> run_filter;
};

struct Phase2Result {
  int libraries = 0;
  int failures = 0;   // failed checks, each printed as a FAIL line
  std::string table;  // the timings table, one line per library, with a header
};

// Runs every library of the bundle in `options.dir` on `context`'s GPU; prints a line per check
// and returns the failures and the table. Never throws: a bad manifest or a library that cannot
// be loaded or created is a failure.
Phase2Result run_phase2(const runtime::cuda::ContextPtr& context, const Phase2Options& options,
                        const Baselines& baselines);

}  // namespace kiln::gpu_check
