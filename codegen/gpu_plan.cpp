// The launch plan's text form and look-ups, and the gpu_arch list's names (codegen/gpu.h).
#include <algorithm>

#include <fmt/format.h>

#include "kiln/codegen/gpu.h"
#include "kiln/ir/error.h"

namespace kiln::codegen {

std::vector<std::string> split_gpu_archs(std::string_view list) {
  std::vector<std::string> archs;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string_view::npos) end = list.size();
    std::string arch(list.substr(start, end - start));
    arch.erase(0, arch.find_first_not_of(" \t"));
    arch.erase(arch.find_last_not_of(" \t") + 1);
    if (!arch.empty() && std::find(archs.begin(), archs.end(), arch) == archs.end())
      archs.push_back(arch);
    start = end + 1;
  }
  return archs;
}

std::string GpuBufferRef::to_string() const {
  // A row of a scan's stacked buffer: "+96-32t" (offset, then bytes per trip t).
  std::string at = offset != 0 && kind != Kind::workspace ? fmt::format("+{}", offset) : "";
  if (step_bytes != 0) at += fmt::format("{:+}t", step_bytes);
  switch (kind) {
    case Kind::input:
      return fmt::format("in{}{}", index, at);
    case Kind::output:
      return fmt::format("out{}{}", index, at);
    case Kind::workspace:
      return fmt::format("ws+{}{}", offset, at);
    case Kind::status:
      return "status";
    case Kind::constant:
      return "const";
  }
  return "?";
}

std::string GpuGemm::to_string() const {
  std::string batch;
  for (int64_t d : batch_shape)
    batch += fmt::format("{},", d);
  auto matrix = [&](const char* name, int64_t rows, int64_t cols, bool transposed) {
    return transposed ? fmt::format("{}[{}{},{}]^T", name, batch, cols, rows)
                      : fmt::format("{}[{}{},{}]", name, batch, rows, cols);
  };
  std::string epilogue_text;
  if (epilogue == Epilogue::bias || epilogue == Epilogue::bias_relu) epilogue_text += " + bias";
  if (epilogue == Epilogue::relu || epilogue == Epilogue::bias_relu) epilogue_text += ", relu";
  std::string operands = fmt::format("a={} b={}", a.to_string(), b.to_string());
  if (epilogue == Epilogue::bias || epilogue == Epilogue::bias_relu)
    operands += fmt::format(" bias={}", bias.to_string());
  return fmt::format("gemm {} D[{}{},{}] = {} · {}{} ({} d={})", ir::dtype_name(dtype), batch, m, n,
                     matrix("A", m, k, transpose_a), matrix("B", k, n, transpose_b), epilogue_text,
                     operands, d.to_string());
}

std::string GpuLaunch::to_string() const {
  // "loop 30x7: " on the first launch of a scan's steps: it and the 6 after it run 30 times.
  const std::string head = loop ? fmt::format("loop {}x{}: ", loop->trips, loop->count) : "";
  if (gemm) return fmt::format("{}{}  # {}", head, gemm->to_string(), label);
  std::string args_text;
  for (const GpuBufferRef& ref : args) {
    if (!args_text.empty()) args_text += ", ";
    args_text += ref.to_string();
  }
  if (!supported) return fmt::format("{}unsupported ({}) {}: {}", head, args_text, label, reason);
  return fmt::format("{}{}<<<{}, {}>>>({}) items {}  # {}", head, symbol, grid_size, block_size,
                     args_text, items, label);
}

const std::string& GpuModule::ptx_for(std::string_view arch) const {
  auto it = std::find_if(ptx.begin(), ptx.end(), [&](const Ptx& p) { return p.arch == arch; });
  if (it == ptx.end()) throw CompileError(fmt::format("no PTX was compiled for {}", arch));
  return it->text;
}

bool GpuModule::fully_supported() const {
  return std::all_of(launches.begin(), launches.end(),
                     [](const GpuLaunch& l) { return l.supported; });
}

std::string print_launch_plan(const std::vector<GpuLaunch>& launches) {
  std::string text;
  for (const GpuLaunch& launch : launches)
    text += launch.to_string() + "\n";
  return text;
}

std::string GpuModule::print_launch_plan() const {
  return codegen::print_launch_plan(launches);
}

}  // namespace kiln::codegen
