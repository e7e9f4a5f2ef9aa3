#include "kiln/frontend/aot_gpu.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include <fmt/format.h>

#include "kiln/codegen/gpu.h"
#include "kiln/frontend/core/device_ops.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/formats/atomic_file.h"
#include "kiln/runtime/cuda/launch_plan_blob.h"

namespace kiln::aot::detail {

namespace {

namespace fs = std::filesystem;

void write_file(const std::string& path, const std::string& text, Loc loc) {
  kiln::detail::write_file_atomically(path, text, "aot::compile", loc);
}

// "sm_90a" → 90.
int arch_number(const std::string& arch) {
  return std::atoi(arch.c_str() + 3);
}

// Runs a CUDA tool (no shell); a failure is a CompileError with what it printed.
void run_cuda_tool(const std::vector<std::string>& argv, const kiln::detail::TempDir& dir,
                   const std::string& name, Loc loc) {
  const std::string tool = fs::path(argv.front()).filename().string();
  const std::string log = dir.file(tool + ".log");
  std::string error;
  const int status = kiln::detail::run_program(argv, log, error);
  if (status != 0) {
    kiln::detail::raise<CompileError>(
        "aot::compile", {},
        status < 0 ? fmt::format("cannot run {} to build lib{}.so: {}", argv.front(), name, error)
                   : fmt::format("{} failed building lib{}.so (exit status {}):\n{}", tool, name,
                                 status, kiln::detail::tail_of_file(log, 4000)),
        loc);
  }
}

}  // namespace

// "sm_80,sm_90" → {"sm_80", "sm_90"}: each sm_ and a number (sm_90a too), repeats dropped.
std::vector<std::string> gpu_archs(const std::string& list, Loc loc) {
  std::vector<std::string> archs;
  std::istringstream parts(list);
  for (std::string arch; std::getline(parts, arch, ',');) {
    arch.erase(0, arch.find_first_not_of(" \t"));
    arch.erase(arch.find_last_not_of(" \t") + 1);
    std::string digits = arch.size() > 3 ? arch.substr(3) : "";
    if (!digits.empty() && digits.back() == 'a') digits.pop_back();
    const bool ok =
        arch.starts_with("sm_") && !digits.empty() && digits.size() <= 3 &&
        std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!ok) {
      kiln::detail::raise<ValueError>(
          "aot::compile", {},
          fmt::format("gpu_arch '{}': '{}' is not a GPU architecture; give a comma-separated list "
                      "such as sm_80,sm_90",
                      list, arch),
          loc);
    }
    if (std::find(archs.begin(), archs.end(), arch) == archs.end()) archs.push_back(arch);
  }
  if (archs.empty()) {
    kiln::detail::raise<ValueError>(
        "aot::compile", {},
        fmt::format("gpu_arch '{}' names no GPU architecture; give e.g. sm_80,sm_90", list), loc);
  }
  return archs;
}

// ptxas and fatbinary from KILN_AOT_CUDA_BIN, else the toolkit Kiln was built with.
CudaTools find_cuda_tools(Loc loc) {
  const char* env = std::getenv("KILN_AOT_CUDA_BIN");
#ifdef KILN_CUDA_BIN_DIR
  const std::string built = KILN_CUDA_BIN_DIR;
#else
  const std::string built;
#endif
  const std::string dir = env != nullptr && *env != '\0' ? env : built;
  auto executable = [](const fs::path& p) {
    std::error_code ec;
    return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
  };
  const fs::path ptxas = fs::path(dir) / "ptxas", fatbinary = fs::path(dir) / "fatbinary";
  std::vector<std::string> missing;
  if (!executable(ptxas)) missing.push_back("ptxas");
  if (!executable(fatbinary)) missing.push_back("fatbinary");
  if (dir.empty()) {
    kiln::detail::raise<CompileError>(
        "aot::compile", {},
        "building a library for NVIDIA GPUs (device cuda) needs a CUDA toolkit (its ptxas and "
        "fatbinary), and Kiln was built without one: install the toolkit and rebuild Kiln, or set "
        "KILN_AOT_CUDA_BIN to the toolkit's bin folder",
        loc);
  }
  if (!missing.empty()) {
    kiln::detail::raise<CompileError>(
        "aot::compile", {},
        fmt::format("building a library for NVIDIA GPUs (device cuda) needs a CUDA toolkit's "
                    "ptxas and fatbinary, and {}{} has no {}",
                    dir, env != nullptr && *env != '\0' ? " (KILN_AOT_CUDA_BIN)" : "",
                    fmt::join(missing, " or ")),
        loc);
  }
  return {ptxas.string(), fatbinary.string()};
}

// A private folder for the PTX, cubins and fatbin. fatbinary reads its inputs from
// "kind=elf,sm=80,file=PATH", which a comma in PATH would break, so it is under $TMPDIR (or /tmp)
// rather than the user's output folder.
std::string gpu_temp_parent() {
  const char* tmp = std::getenv("TMPDIR");
  std::string parent = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  if (parent.find_first_of(",=") != std::string::npos) parent = "/tmp";
  return parent;
}

// The glue's embedded files for a GPU library, written into `dir`: NAME.fatbin (a cubin per
// architecture, plus the PTX of the newest one that is not architecture-specific, for later
// GPUs), NAME.plan (the launch plan) and NAME.weights.
GpuParts build_gpu_parts(const std::string& name, const passes::PipelineResult& compiled,
                         const std::vector<std::string>& archs, const CudaTools& tools,
                         const std::string& weights, const kiln::detail::TempDir& dir, Loc loc) {
  codegen::GpuOptions gpu_options;
  gpu_options.gpu_arch = fmt::format("{}", fmt::join(archs, ","));
  codegen::GpuModule gpu;
  try {
    gpu = codegen::compile_gpu(compiled.function, compiled.kernels, compiled.memory, gpu_options);
  } catch (Error& e) {
    e.add_context(fmt::format("while compiling lib{}.so for {}", name, gpu_options.gpu_arch));
    throw;
  }
  std::vector<std::string> unsupported;
  for (const codegen::GpuLaunch& launch : gpu.launches) {
    if (!launch.supported)
      unsupported.push_back(fmt::format("{} ({})", launch.label, launch.reason));
  }
  if (!unsupported.empty()) {
    kiln::detail::raise<CompileError>(
        "aot::compile", {},
        fmt::format("lib{}.so cannot be built for GPUs yet: the GPU path does not run {}", name,
                    fmt::join(unsupported, "; ")),
        loc);
  }
  std::vector<std::string> fatbinary{tools.fatbinary, "-64",
                                     "--create=" + dir.file(name + ".fatbin")};
  std::string ptx_arch;
  for (const std::string& arch : archs) {
    const std::string ptx = dir.file(arch + ".ptx"), cubin = dir.file(arch + ".cubin");
    write_file(ptx, gpu.ptx_for(arch), loc);
    run_cuda_tool({tools.ptxas, "-arch=" + arch, "-o", cubin, ptx}, dir, name, loc);
    fatbinary.push_back(fmt::format("--image3=kind=elf,sm={},file={}", arch.substr(3), cubin));
    if (!arch.ends_with("a") && (ptx_arch.empty() || arch_number(arch) > arch_number(ptx_arch)))
      ptx_arch = arch;
  }
  if (!ptx_arch.empty()) {
    fatbinary.push_back(fmt::format("--image3=kind=ptx,sm={},file={}", ptx_arch.substr(3),
                                    dir.file(ptx_arch + ".ptx")));
  }
  run_cuda_tool(fatbinary, dir, name, loc);

  GpuParts glue;
  glue.gpu_arch = gpu_options.gpu_arch;
  std::error_code ec;
  glue.fatbin_bytes = static_cast<int64_t>(fs::file_size(dir.file(name + ".fatbin"), ec));
  if (ec || glue.fatbin_bytes == 0) {
    kiln::detail::raise<CompileError>(
        "aot::compile", {}, fmt::format("fatbinary wrote no fatbin for lib{}.so", name), loc);
  }
  const std::string plan = runtime::cuda::serialize_launch_plan(kiln::detail::to_launch_plan(gpu));
  glue.plan_bytes = static_cast<int64_t>(plan.size());
  write_file(dir.file(name + ".plan"), plan, loc);
  write_file(dir.file(name + ".weights"), weights, loc);
  return glue;
}

}  // namespace kiln::aot::detail
