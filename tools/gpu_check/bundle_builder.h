// Builds gpu_check's phase-2 bundle here (with libkiln, LLVM and the CUDA toolkit): AOT GPU
// libraries of the differential op suite, the main job's MLP and convnet training steps, a GEMM
// sweep and a 64M-element elementwise chain, each with its inputs and the values the CPU (the
// JIT) computes for it, listed in a manifest (bundle_format.h) that gpu_check reads on the GPU
// machine (phase2.h). tools/gpu_check/build_bundle.cpp is its program; tests build a tiny bundle.
#pragma once

#include <kiln/kiln.h>

#include <memory>
#include <string>
#include <vector>

namespace kiln::gpu_check {

// What build_bundle builds.
struct BuildOptions {
  // Created if missing; the libraries, data files and manifest.txt are written into it.
  std::string out_dir;
  // The GPU architectures of every library (kiln aot --gpu-arch).
  std::string gpu_arch = "sm_90";
  // Tests: one small op library and one small GEMM library only (seconds, not minutes).
  bool tiny = false;
  // Print a line per library with its size and build time.
  bool verbose = true;
};

// One library built, with the graph it was compiled from (tests run its host shim on the mock
// driver).
struct BuiltLibrary {
  std::string name;
  std::string path;
  std::shared_ptr<const ir::Function> graph;
};

// Builds the bundle and writes its manifest; throws kiln::Error (from the compiler) or
// std::runtime_error (files) on failure.
std::vector<BuiltLibrary> build_bundle(const BuildOptions& options);

}  // namespace kiln::gpu_check
