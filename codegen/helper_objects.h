// Internal: the GEMM helpers' machine code (part bodies, micro-kernels: gemm.h's gemm_helpers),
// each an object file of its own, held for the whole process. compile_jit compiles a helper the
// first time a function's kernels call it and links the object into every later function that
// calls it; helpers Kiln compiled for its build machine when it was built ("prebuilt":
// tools/prebuilt_helpers) are there from the start.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace kiln::codegen {

struct HelperObject {
  std::string text;    // LLVM IR, or for a prebuilt helper a comment naming it
  std::string object;  // an ELF object defining the helper
};

class HelperObjects {
 public:
  static HelperObjects& get();

  // The helper under `key` (its name and everything that shapes its code: compiler.cpp), or
  // null. Prebuilt helpers are skipped while KILN_PREBUILT_HELPERS=off is in the environment.
  std::shared_ptr<const HelperObject> find(const std::string& key);
  // The first helper added under a key stays.
  void add(const std::string& key, std::shared_ptr<const HelperObject> helper);
  // How many helpers add() has been given: those this process compiled.
  size_t compile_count();
  // How many prebuilt helpers there are (0 when libkiln was built without them).
  size_t prebuilt_count();
  // Every helper compiled in this process (not the prebuilt ones), by key.
  std::map<std::string, std::shared_ptr<const HelperObject>> compiled();

  // The helpers `blob` (from to_blob) holds, as prebuilt ones. A blob that does not parse whole
  // adds none and returns false.
  bool add_prebuilt(std::string_view blob);
  static std::string to_blob(const std::map<std::string, std::shared_ptr<const HelperObject>>&);

 private:
  struct Entry {
    std::shared_ptr<const HelperObject> helper;
    bool prebuilt = false;
  };
  std::mutex mutex_;
  std::map<std::string, Entry> entries_;
  size_t compile_count_ = 0;
};

}  // namespace kiln::codegen
