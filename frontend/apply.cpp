#include "kiln/frontend/apply.h"

#include <fmt/format.h>

#include "kiln/frontend/check_numerics.h"
#include "kiln/frontend/eager.h"
#include "kiln/frontend/gradient_tape.h"
#include "kiln/frontend/inline_list.h"
#include "kiln/frontend/trace.h"
#include "kiln/ir/function.h"
#include "kiln/ir/infer.h"

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

// Kiln's source root as this file was compiled ("/src/kiln/" or "" under a relative prefix map).
std::string_view source_root() {
  static const std::string root = [] {
    std::string_view self = __FILE__;
    std::string_view tail = "frontend/apply.cpp";
    return std::string(self.ends_with(tail) ? self.substr(0, self.size() - tail.size()) : "");
  }();
  return root;
}

void add_user_location(Error& error, const std::source_location& loc) {
  ir::add_location(error, detail::node_scope(), detail::node_loc(loc));
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

void decorate(Error& error, std::string_view op, std::span<const Tensor> operands,
              const std::source_location& loc) {
  error.prefix(op);
  std::vector<TensorType> types;
  for (const Tensor& t : operands) {
    if (t.defined()) types.push_back(t.type());
  }
  if (!types.empty()) error.add_context(fmt::format("operands: {}", ir::types_to_string(types)));
  add_user_location(error, loc);
}

std::vector<Tensor> apply(ir::Op op, std::span<const Tensor> inputs, const ir::Attrs& attrs,
                          const std::source_location& loc) {
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) {
      raise<ValueError>(ir::op_name(op), inputs,
                        fmt::format("operand {} is an undefined Tensor", i), loc);
    }
  }
  // Tracing: the op becomes a node of the active trace (creation ops too, so constants made
  // inside a traced function are part of its IR); errors carry the scope and the user's line.
  if (Trace* trace = current_trace()) {
    std::vector<Tensor> results = trace->append(op, inputs, attrs, loc);
    if (tapes_recording()) record_on_tapes(op, inputs, attrs, results, loc);
    return results;
  }
  for (const Tensor& t : inputs) {
    if (t.is_symbolic()) {
      raise<ValueError>(ir::op_name(op), inputs,
                        "a symbolic tensor was used outside the kiln::function trace that made "
                        "it; return tensors from the traced function instead of keeping them",
                        loc);
    }
  }

  std::vector<TensorType> types;
  InlineList<const ir::HostTensor*> values(inputs.size());
  types.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    types.push_back(inputs[i].type());
    values[i] = &inputs[i].host();
  }

  std::vector<TensorType> out_types;
  try {
    out_types = ir::infer_types(op, types, attrs);
  } catch (InternalError&) {
    throw;
  } catch (Error& e) {
    add_user_location(e, loc);
    throw;
  }

  std::vector<ir::HostTensor> outs;
  try {
    outs = run_eager(op, values.span(), attrs, out_types);
  } catch (InternalError&) {
    throw;
  } catch (Error& e) {
    // run_eager names the op; a data-dependent failure also needs the operands to make sense.
    if (!types.empty()) e.add_context(fmt::format("operands: {}", ir::types_to_string(types)));
    add_user_location(e, loc);
    throw;
  }

  std::vector<Tensor> results;
  results.reserve(outs.size());
  for (ir::HostTensor& value : outs)
    results.emplace_back(std::move(value));
  if (check_numerics_enabled()) check_op_results(op, inputs, results, loc);
  if (tapes_recording()) record_on_tapes(op, inputs, attrs, results, loc);
  return results;
}

void replay(const ir::Function& function, size_t first,
            std::unordered_map<const ir::Value*, Tensor>& tensors,
            const std::source_location& loc) {
  auto nodes = function.nodes();
  for (size_t n = first; n < nodes.size(); ++n) {
    const ir::Node& node = *nodes[n];
    std::vector<Tensor> inputs;
    inputs.reserve(node.inputs().size());
    for (const ir::Value* v : node.inputs())
      inputs.push_back(tensors.at(v));
    ReplaySite site(node);
    std::vector<Tensor> results = apply(node.op(), inputs, node.attrs(), loc);
    for (size_t i = 0; i < results.size(); ++i)
      tensors[node.output(i)] = std::move(results[i]);
  }
}

Tensor apply1(ir::Op op, std::span<const Tensor> inputs, const ir::Attrs& attrs,
              const std::source_location& loc) {
  std::vector<Tensor> results = apply(op, inputs, attrs, loc);
  KILN_CHECK(results.size() == 1, "apply1 on an op with several results");
  return std::move(results[0]);
}

}  // namespace detail
}  // namespace kiln
