// Name scopes and user sites: which scope and which line of user code an op is attributed to.
// Errors and traced IR nodes carry both (see node_scope, node_loc).
#pragma once

#include <source_location>
#include <string>
#include <string_view>

#include "kiln/ir/function.h"

namespace kiln {

// RAII guard that pushes a name scope for this thread: `kiln::name_scope scope("dense_1");`.
// Errors and traced IR nodes made while it lives carry "outer/dense_1".
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

// The scope a node made now carries: the ReplaySite's origin's, else the current name scope.
std::string node_scope();
// The location a node made now by a call at `loc` carries (see ReplaySite, UserSite).
ir::SourceLoc node_loc(const std::source_location& loc);

}  // namespace detail
}  // namespace kiln
