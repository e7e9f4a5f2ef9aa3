#include "kiln/codegen/cache_key.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <fmt/format.h>
#include <llvm/Config/llvm-config.h>

#include "kiln/ir/printer.h"

#ifndef KILN_PROJECT_VERSION
#error "KILN_PROJECT_VERSION must be defined by the build (CMakeLists.txt)"
#endif

namespace kiln::codegen {

namespace {

std::string file_identity(const std::string& path) {
  if (path.empty()) return "";
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return fmt::format("{} missing", path);
  return fmt::format("{} size {} mtime {}.{:09}", path, st.st_size, st.st_mtim.tv_sec,
                     st.st_mtim.tv_nsec);
}

std::string_view slot_kind_name(passes::Slot::Kind kind) {
  switch (kind) {
    case passes::Slot::Kind::param:
      return "param";
    case passes::Slot::Kind::output:
      return "output";
    case passes::Slot::Kind::workspace:
      return "workspace";
    case passes::Slot::Kind::constant:
      return "constant";
  }
  return "?";
}

// Every slot of the memory plan, in the function's order of values: print_memory_plan shows the
// kernels' outputs only, and the launches read the parameters' slots too.
std::string print_slots(const ir::Function& function, const passes::MemoryPlan& memory) {
  std::string out;
  auto add = [&](const ir::Value* v) {
    auto it = memory.slots.find(v);
    if (it == memory.slots.end()) return;
    const passes::Slot& s = it->second;
    out += fmt::format("{} {} {} {} {}", ir::print_value(function, v), slot_kind_name(s.kind),
                       s.index, s.offset, s.bytes);
    if (auto in = memory.in_place.find(v); in != memory.in_place.end())
      out += " in_place " + ir::print_value(function, in->second);
    out += "\n";
  };
  for (size_t i = 0; i < function.params().size(); ++i)
    add(function.param(i));
  for (const auto& node : function.nodes()) {
    for (size_t r = 0; r < node->num_outputs(); ++r)
      add(node->output(r));
  }
  return out;
}

}  // namespace

const std::string& kiln_build_identity() {
  static const std::string identity = [] {
    Dl_info info{};
    if (::dladdr(reinterpret_cast<const void*>(&kiln_build_identity), &info) == 0 ||
        info.dli_fname == nullptr)
      return std::string("unknown");
    return file_identity(info.dli_fname);
  }();
  return identity;
}

CacheKey::CacheKey(std::string_view tag) {
  add("tag", tag);
  add("kiln", KILN_PROJECT_VERSION);
  add("build", kiln_build_identity());
  add("llvm", LLVM_VERSION_STRING);
}

CacheKey& CacheKey::add(std::string_view name, std::string_view value) {
  text_ += fmt::format("{}={}:{}\n", name, value.size(), value);
  return *this;
}

CacheKey& CacheKey::add(std::string_view name, int64_t value) {
  return add(name, std::to_string(value));
}

CacheKey& CacheKey::add_file(std::string_view name, const std::string& path) {
  return add(name, file_identity(path));
}

CacheKey& CacheKey::add_plans(const ir::Function& function, const passes::KernelPlan& plan,
                              const passes::MemoryPlan& memory) {
  return add("ir", ir::print(function))
      .add("kernel_plan", passes::print_plan(function, plan))
      .add("memory_plan", passes::print_memory_plan(function, plan, memory))
      .add("slots", print_slots(function, memory));
}

}  // namespace kiln::codegen
