#include "kiln/codegen/cache_key.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <fmt/format.h>
#include <llvm/Config/llvm-config.h>

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

}  // namespace kiln::codegen
