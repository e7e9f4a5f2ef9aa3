#include "kiln/passes/pass_manager.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

#include "kiln/ir/error.h"
#include "kiln/ir/printer.h"
#include "kiln/ir/verifier.h"

namespace kiln::passes {

bool verify_by_default() {
  if (const char* env = std::getenv("KILN_VERIFY")) return std::string_view(env) != "0";
#ifdef NDEBUG
  return false;
#else
  return true;
#endif
}

std::vector<std::string> print_after_from_env() {
  std::vector<std::string> names;
  const char* env = std::getenv("KILN_PRINT_AFTER");
  if (env == nullptr) return names;
  std::string_view list(env);
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view name = list.substr(0, comma);
    while (!name.empty() && name.front() == ' ')
      name.remove_prefix(1);
    while (!name.empty() && name.back() == ' ')
      name.remove_suffix(1);
    if (!name.empty()) names.emplace_back(name);
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
  }
  return names;
}

namespace {

void verify_or_throw(const ir::Function& function, std::string_view when) {
  try {
    ir::verify(function);
  } catch (const Error& e) {
    throw InternalError(fmt::format("the IR is invalid {}: {}", when, e.what()));
  }
}

}  // namespace

PassManager& PassManager::add(std::string name, std::function<bool(ir::Function&)> run) {
  passes_.push_back({std::move(name), std::move(run)});
  return *this;
}

bool PassManager::run(ir::Function& function, std::string_view stop_after) {
  changed_.clear();
  if (options_.verify) verify_or_throw(function, "before the first pass");
  for (const Pass& pass : passes_) {
    bool changed = pass.run(function);
    if (changed) changed_.push_back(pass.name);
    if (options_.verify) verify_or_throw(function, fmt::format("after pass '{}'", pass.name));
    if (prints_after(pass.name))
      report(pass.name,
             fmt::format("{}{}", changed ? "" : "// (unchanged)\n", ir::print(function)));
    if (pass.name == stop_after) break;
  }
  return !changed_.empty();
}

bool PassManager::prints_after(std::string_view pass) const {
  const auto& names = options_.print_after;
  return std::any_of(names.begin(), names.end(),
                     [&](const std::string& n) { return n == "all" || n == pass; });
}

void PassManager::report(std::string_view pass, std::string_view text) const {
  if (!prints_after(pass)) return;
  std::string block = fmt::format("// ----- after {} -----\n{}", pass, text);
  if (options_.sink) {
    options_.sink(block);
  } else {
    std::fwrite(block.data(), 1, block.size(), stderr);
  }
}

}  // namespace kiln::passes
