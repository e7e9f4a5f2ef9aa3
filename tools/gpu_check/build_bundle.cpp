// gpu_check_bundle: builds gpu_check's phase-2 bundle (bundle_builder.h) here, where libkiln,
// LLVM and the CUDA toolkit are; scripts/gpu_check.sh runs it and carries the result.
//
//   gpu_check_bundle OUT_DIR [--gpu-arch sm_90] [--tiny]
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>

#include "bundle_builder.h"

int main(int argc, char** argv) {
  kiln::gpu_check::BuildOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--tiny") {
      options.tiny = true;
    } else if (arg == "--gpu-arch" && i + 1 < argc) {
      options.gpu_arch = argv[++i];
    } else if (!arg.empty() && arg[0] != '-' && options.out_dir.empty()) {
      options.out_dir = arg;
    } else {
      std::fprintf(stderr, "usage: %s OUT_DIR [--gpu-arch sm_90] [--tiny]\n", argv[0]);
      return 2;
    }
  }
  if (options.out_dir.empty()) {
    std::fprintf(stderr, "usage: %s OUT_DIR [--gpu-arch sm_90] [--tiny]\n", argv[0]);
    return 2;
  }
  const auto start = std::chrono::steady_clock::now();
  try {
    const auto built = kiln::gpu_check::build_bundle(options);
    std::printf("gpu_check_bundle: %zu libraries for %s in %s, %.1f s\n", built.size(),
                options.gpu_arch.c_str(), options.out_dir.c_str(),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpu_check_bundle: %s\n", e.what());
    return 1;
  }
}
