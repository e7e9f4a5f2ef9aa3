// ptxas from the CUDA toolkit found at build time (KILN_PTXAS, set by tests/CMakeLists.txt for
// the tests that assemble PTX), run on generated PTX.
#pragma once

#include <fmt/format.h>

#include <fstream>
#include <source_location>
#include <string>

#include "kiln/frontend/process.h"
#include "kiln/ir/sanitizers.h"

namespace kiln::testing {

// The ptxas the build found, or "": no CUDA toolkit, or an ASan build, where assembling the same
// PTX text again would cost CI's sanitizer stage time for nothing (the main stage assembles it).
inline std::string ptxas_path() {
#ifdef KILN_PTXAS
  if (ir::kAddressSanitizer) return "";
  return KILN_PTXAS;
#else
  return "";
#endif
}

// ptxas -arch=ARCH on `ptx`: "" when it assembles, else what ptxas said.
inline std::string ptxas_errors(const std::string& ptxas, const std::string& ptx,
                                const std::string& arch) {
  detail::TempDir dir("/tmp", "kiln_ptxas", "ptxas", std::source_location::current());
  const std::string source = dir.file("kernels.ptx");
  std::ofstream(source) << ptx;
  std::string error;
  const std::string log = dir.file("ptxas.log");
  int status = detail::run_program(
      {ptxas, "-arch=" + arch, "-o", dir.file("kernels.cubin"), source}, log, error);
  if (status == 0) return "";
  return fmt::format("ptxas exited {} {}: {}", status, error, detail::tail_of_file(log, 2000));
}

}  // namespace kiln::testing
