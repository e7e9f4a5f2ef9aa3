#include "kiln/frontend/core/name_scope.h"

#include <vector>

namespace kiln {

namespace {
// One stack per thread, so scopes opened by concurrent threads never mix.
std::vector<std::string>& scope_stack() {
  thread_local std::vector<std::string> stack;
  return stack;
}

const ir::Node*& replay_origin() {
  thread_local const ir::Node* origin = nullptr;
  return origin;
}

std::vector<std::source_location>& user_sites() {
  thread_local std::vector<std::source_location> sites;
  return sites;
}

// Kiln's source root as this file was compiled ("/src/kiln/" or "" under a relative prefix map):
// everything before the last "frontend/" in this file's own path, so moving the file within
// frontend/ keeps it right.
std::string_view source_root() {
  static const std::string root = [] {
    std::string_view self = __FILE__;
    size_t at = self.rfind("frontend/");
    return std::string(at == std::string_view::npos ? "" : self.substr(0, at));
  }();
  return root;
}
}  // namespace

name_scope::name_scope(std::string_view name) {
  scope_stack().emplace_back(name);
}

name_scope::~name_scope() {
  scope_stack().pop_back();
}

std::string current_name_scope() {
  std::string path;
  for (const std::string& name : scope_stack()) {
    if (!path.empty()) path += '/';
    path += name;
  }
  return path;
}

namespace detail {

ReplaySite::ReplaySite(const ir::Node& origin) : previous_(replay_origin()) {
  replay_origin() = &origin;
}

ReplaySite::~ReplaySite() {
  replay_origin() = previous_;
}

UserSite::UserSite(const std::source_location& loc) : pushed_(!is_kiln_source(loc.file_name())) {
  if (pushed_) user_sites().push_back(loc);
}

UserSite::~UserSite() {
  if (pushed_) user_sites().pop_back();
}

bool is_kiln_source(std::string_view file) {
  // Installed headers (…/include/kiln/…) hold inline code too.
  if (file.find("/include/kiln/") != std::string_view::npos) return true;
  std::string_view root = source_root();
  if (!file.starts_with(root)) return false;
  file.remove_prefix(root.size());
  for (std::string_view folder : {"frontend/", "ir/", "passes/", "codegen/", "runtime/"})
    if (file.starts_with(folder)) return true;
  return false;
}

std::source_location user_loc(const std::source_location& loc) {
  const std::vector<std::source_location>& sites = user_sites();
  if (sites.empty() || !is_kiln_source(loc.file_name())) return loc;
  return sites.back();
}

std::string node_scope() {
  const ir::Node* origin = replay_origin();
  return origin != nullptr ? origin->scope() : current_name_scope();
}

ir::SourceLoc node_loc(const std::source_location& loc) {
  const ir::Node* origin = replay_origin();
  return origin != nullptr ? origin->loc() : ir::SourceLoc::from(user_loc(loc));
}

}  // namespace detail
}  // namespace kiln
