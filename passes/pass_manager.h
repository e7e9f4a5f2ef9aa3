// The pass manager: runs named passes in order, verifies the IR between them (tests and debug
// builds), prints the IR after the passes KILN_PRINT_AFTER names, and records what changed.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/ir/function.h"

namespace kiln::passes {

// A pass: rewrites a function in place and returns whether it changed anything.
struct Pass {
  std::string name;
  std::function<bool(ir::Function&)> run;
};

// Whether to verify between passes unless told: KILN_VERIFY=0/1 when set, else on in builds
// without NDEBUG.
bool verify_by_default();
// The pass names in KILN_PRINT_AFTER (comma-separated; "all" matches every pass); empty if unset.
std::vector<std::string> print_after_from_env();

struct PassManagerOptions {
  // Run ir::verify on the input and after every pass; a failure is an InternalError naming the
  // pass that broke the IR.
  bool verify = verify_by_default();
  // Print the IR after these passes ("all" for every pass).
  std::vector<std::string> print_after = print_after_from_env();
  // Where printed IR goes; stderr when empty.
  std::function<void(std::string_view)> sink = nullptr;
};

class PassManager {
 public:
  explicit PassManager(PassManagerOptions options = {}) : options_(std::move(options)) {}

  // Appends a pass; passes run in the order they were added.
  PassManager& add(std::string name, std::function<bool(ir::Function&)> run);
  // Runs every pass in order, or those up to and including `stop_after` when it names one;
  // returns whether any of them changed the function.
  bool run(ir::Function& function, std::string_view stop_after = {});
  // Names of the passes that changed the function in the last run, in order.
  const std::vector<std::string>& changed() const { return changed_; }
  // Whether the IR (or plan) after `pass` is to be printed.
  bool prints_after(std::string_view pass) const;
  // Writes `text` under a header naming `pass` to the sink if prints_after(pass).
  void report(std::string_view pass, std::string_view text) const;
  const PassManagerOptions& options() const { return options_; }

 private:
  PassManagerOptions options_;
  std::vector<Pass> passes_;
  std::vector<std::string> changed_;
};

}  // namespace kiln::passes
