#include "kiln/passes/kernel_plan.h"

#include <fmt/format.h>

#include "kiln/ir/printer.h"

namespace kiln::passes {

std::string_view kernel_kind_name(KernelKind kind) {
  switch (kind) {
    case KernelKind::loop:
      return "loop";
    case KernelKind::reduction:
      return "reduction";
    case KernelKind::matmul:
      return "matmul";
    case KernelKind::conv2d:
      return "conv2d";
    case KernelKind::op:
      return "op";
    case KernelKind::scan:
      return "scan";
  }
  return "?";
}

std::vector<const Kernel*> number_kernels(const KernelPlan& plan) {
  std::vector<const Kernel*> out;
  for (const Kernel& k : plan.kernels)
    out.push_back(&k);
  for (const Kernel& k : plan.kernels) {
    if (!k.scan) continue;
    std::vector<const Kernel*> body = number_kernels(k.scan->kernels);
    out.insert(out.end(), body.begin(), body.end());
  }
  return out;
}

namespace {

// Node lines and value names as ir::print writes them, computed once (print_node and
// print_value re-number the whole function on every call).
struct PrintedNames {
  std::unordered_map<const ir::Node*, std::string> lines;
  std::unordered_map<const ir::Value*, std::string> names;

  explicit PrintedNames(const ir::Function& f) {
    std::string text = ir::print(f);
    std::vector<std::string> all;
    for (size_t pos = 0; pos < text.size();) {
      size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      all.push_back(text.substr(pos, end - pos));
      pos = end + 1;
    }
    for (size_t i = 0; i < f.nodes().size() && i + 1 < all.size(); ++i) {
      const ir::Node* node = f.nodes()[i].get();
      std::string line = all[i + 1];
      line.erase(0, line.find_first_not_of(' '));
      lines[node] = line;
      std::string lhs = line.substr(0, line.find(" = "));
      size_t start = 0;
      for (size_t o = 0; o < node->num_outputs(); ++o) {
        size_t comma = lhs.find(", ", start);
        names[node->output(o)] =
            lhs.substr(start, comma == std::string::npos ? comma : comma - start);
        start = comma == std::string::npos ? lhs.size() : comma + 2;
      }
    }
    for (const auto& p : f.params())
      names[p.get()] = ir::print_value(f, p.get());
  }
  std::string name(const ir::Value* v) const {
    auto it = names.find(v);
    return it == names.end() ? "%<undefined>" : it->second;
  }
  std::string join(const std::vector<const ir::Value*>& values) const {
    std::string out;
    for (const ir::Value* v : values)
      out += (out.empty() ? "" : ", ") + name(v);
    return out;
  }
};

// Every line of `text` indented by two spaces.
std::string indented(const std::string& text) {
  std::string out;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    out += "  " + text.substr(pos, end - pos) + "\n";
    pos = end + 1;
  }
  return out;
}

}  // namespace

std::string print_plan(const ir::Function& function, const KernelPlan& plan) {
  PrintedNames printed(function);
  std::string out;
  for (size_t k = 0; k < plan.kernels.size(); ++k) {
    const Kernel& kernel = plan.kernels[k];
    out += fmt::format("kernel {} {}({}) -> {} {{\n", k, kernel_kind_name(kernel.kind),
                       printed.join(kernel.inputs), printed.join(kernel.outputs));
    for (const ir::Node* node : kernel.nodes) {
      auto it = printed.lines.find(node);
      out +=
          fmt::format("  {}\n", it == printed.lines.end() ? "<node not in function>" : it->second);
    }
    if (kernel.scan)
      out += fmt::format("  body @{}:\n{}", kernel.scan->body->name(),
                         indented(indented(print_plan(*kernel.scan->body, kernel.scan->kernels))));
    out += "}\n";
  }
  return out;
}

namespace {

std::string slot_text(const PrintedNames& printed, const ir::Value* v, const MemoryPlan& memory) {
  auto it = memory.slots.find(v);
  if (it == memory.slots.end()) return fmt::format("{} <no slot>", printed.name(v));
  const Slot& s = it->second;
  std::string where;
  switch (s.kind) {
    case Slot::Kind::param:
      where = fmt::format("param {}", s.index);
      break;
    case Slot::Kind::output:
      where = fmt::format("output {}", s.index);
      break;
    case Slot::Kind::workspace:
      where = fmt::format("workspace+{}", s.offset);
      break;
    case Slot::Kind::constant:
      where = "constant";
      break;
  }
  std::string extra;
  if (auto ip = memory.in_place.find(v); ip != memory.in_place.end())
    extra = fmt::format(", in place of {}", printed.name(ip->second));
  return fmt::format("{} {} ({} bytes{})", printed.name(v), where, s.bytes, extra);
}

}  // namespace

std::string print_memory_plan(const ir::Function& function, const KernelPlan& plan,
                              const MemoryPlan& memory) {
  PrintedNames printed(function);
  std::string out = fmt::format("workspace {} bytes\n", memory.workspace_bytes);
  for (size_t k = 0; k < plan.kernels.size(); ++k) {
    std::string slots;
    for (const ir::Value* v : plan.kernels[k].outputs)
      slots += (slots.empty() ? "" : ", ") + slot_text(printed, v, memory);
    out += fmt::format("kernel {}: {}\n", k, slots);
    if (auto it = memory.scratch.find(k); it != memory.scratch.end())
      out +=
          fmt::format("  scratch workspace+{} ({} bytes)\n", it->second.offset, it->second.bytes);
    if (const auto& scan = plan.kernels[k].scan)
      out += fmt::format(
          "  body @{}:\n{}", scan->body->name(),
          indented(indented(print_memory_plan(*scan->body, scan->kernels, scan->memory))));
  }
  for (const auto& copy : memory.copies)
    out += fmt::format("copy output {} <- {} ({} bytes)\n", copy.output_index,
                       printed.name(copy.value), copy.bytes);
  return out;
}

}  // namespace kiln::passes
