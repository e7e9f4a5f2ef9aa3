// The single path every frontend op takes: infer the result types with the op table, then run
// (eager) — tracing will add a branch here. Also the name-scope stack used in errors and nodes.
#pragma once

#include <source_location>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kiln/frontend/tensor.h"
#include "kiln/ir/attrs.h"
#include "kiln/ir/error.h"
#include "kiln/ir/function.h"
#include "kiln/ir/op.h"

namespace kiln {

// RAII guard that pushes a name scope for this thread: `kiln::name_scope scope("dense_1");`.
// Errors (and, once tracing lands, IR nodes) made while it lives carry "outer/dense_1".
class name_scope {
 public:
  [[nodiscard]] explicit name_scope(std::string_view name);
  ~name_scope();
  name_scope(const name_scope&) = delete;
  name_scope& operator=(const name_scope&) = delete;
};

// The current scope path of this thread ("" at top level, "outer/inner" when nested).
std::string current_name_scope();

namespace detail {

// While one lives on a thread, the ops applied there are attributed to `origin`'s scope and
// location instead of the caller's: GradientTape replays gradient nodes this way, so a traced
// gradient node, or an error raised by one, names the user's forward line.
class ReplaySite {
 public:
  [[nodiscard]] explicit ReplaySite(const ir::Node& origin);
  ~ReplaySite();
  ReplaySite(const ReplaySite&) = delete;
  ReplaySite& operator=(const ReplaySite&) = delete;

 private:
  const ir::Node* previous_;
};

// While one lives on a thread, a location inside Kiln's own sources (the matmul in Dense::call,
// a check in Model::fit) is reported as `loc`, the user's line that called into Kiln (a layer or
// model call, fit, evaluate, predict): in errors and in the nodes traced meanwhile. Lines in user
// code are kept, so the ops of a user's own layer or call() keep their lines. Sites nest and the
// innermost wins; a `loc` inside Kiln pushes nothing, so the user's line stays in force.
class UserSite {
 public:
  [[nodiscard]] explicit UserSite(const std::source_location& loc);
  ~UserSite();
  UserSite(const UserSite&) = delete;
  UserSite& operator=(const UserSite&) = delete;

 private:
  bool pushed_;
};

// Whether `file` (a std::source_location::file_name()) is one of Kiln's own sources or installed
// headers rather than user code.
bool is_kiln_source(std::string_view file);

// `loc`, or the innermost UserSite's location when `loc` is inside Kiln.
std::source_location user_loc(const std::source_location& loc);

// The scope and location a node made now by a call at `loc` carries (see ReplaySite, UserSite).
std::string node_scope();
ir::SourceLoc node_loc(const std::source_location& loc);

// Runs `op` on `inputs`: infers the result types (errors get the user's location and scope
// added) and computes the results eagerly.
std::vector<Tensor> apply(ir::Op op, std::span<const Tensor> inputs, const ir::Attrs& attrs,
                          const std::source_location& loc);
// apply() for ops with exactly one result.
Tensor apply1(ir::Op op, std::span<const Tensor> inputs, const ir::Attrs& attrs,
              const std::source_location& loc);
inline Tensor apply1(ir::Op op, std::initializer_list<Tensor> inputs, const ir::Attrs& attrs,
                     const std::source_location& loc) {
  return apply1(op, std::span<const Tensor>(inputs.begin(), inputs.size()), attrs, loc);
}

// Runs the nodes of `function` from index `first` on through apply() (so traces and tapes see
// them), each attributed to its own scope and location, reading operands from and adding
// results to `tensors` (which must hold every value those nodes read from before `first`).
void replay(const ir::Function& function, size_t first,
            std::unordered_map<const ir::Value*, Tensor>& tensors, const std::source_location& loc);

// Adds the op name, the operand types, the name scope and the user's location to an error
// raised by frontend code itself (argument checks made before an op runs).
void decorate(Error& error, std::string_view op, std::span<const Tensor> operands,
              const std::source_location& loc);

inline void decorate(Error& error, std::string_view op, std::initializer_list<Tensor> operands,
                     const std::source_location& loc) {
  decorate(error, op, std::span<const Tensor>(operands.begin(), operands.size()), loc);
}

// Throws E(message) decorated like an op error.
template <class E>
[[noreturn]] void raise(std::string_view op, std::span<const Tensor> operands, std::string message,
                        const std::source_location& loc) {
  E error(std::move(message));
  decorate(error, op, operands, loc);
  throw error;
}
template <class E>
[[noreturn]] void raise(std::string_view op, std::initializer_list<Tensor> operands,
                        std::string message, const std::source_location& loc) {
  raise<E>(op, std::span<const Tensor>(operands.begin(), operands.size()), std::move(message), loc);
}

}  // namespace detail
}  // namespace kiln
