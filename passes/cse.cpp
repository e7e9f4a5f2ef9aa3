#include "kiln/passes/cse.h"

#include <cstring>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "kiln/passes/rewrite.h"

namespace kiln::passes {

namespace {

void mix(size_t& h, size_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
}

// A hash over what makes two nodes equal; tensors contribute their type and first bytes only,
// full equality is checked on a hash match.
size_t node_hash(const ir::Node& n) {
  size_t h = static_cast<size_t>(n.op());
  for (const ir::Value* v : n.inputs())
    mix(h, std::hash<const void*>{}(v));
  for (const auto& [name, value] : n.attrs().items()) {
    mix(h, std::hash<std::string>{}(name));
    if (const auto* t = std::get_if<ir::HostTensor>(&value)) {
      size_t prefix = 0;
      std::memcpy(&prefix, t->raw(), std::min(sizeof prefix, t->nbytes()));
      mix(h, prefix);
      mix(h, static_cast<size_t>(t->num_elements()));
    } else if (const auto* f = std::get_if<ir::FunctionAttr>(&value)) {
      mix(h, f->hash());  // a scan body: its text's hash (attr_equal compares the text)
    } else {
      mix(h, std::hash<std::string>{}(ir::attr_to_string(value)));
    }
  }
  return h;
}

bool same_node(const ir::Node& a, const ir::Node& b) {
  if (a.op() != b.op() || a.num_outputs() != b.num_outputs()) return false;
  if (!std::equal(a.inputs().begin(), a.inputs().end(), b.inputs().begin(), b.inputs().end()))
    return false;
  return a.attrs() == b.attrs() && a.output_types() == b.output_types();
}

}  // namespace

bool eliminate_common_subexpressions(ir::Function& function) {
  auto& nodes = function.mutable_nodes();
  std::unordered_multimap<size_t, const ir::Node*> seen;
  // Uses of a removed duplicate are redirected when the walk reaches them (one map lookup per
  // operand rather than a rescan of the function per duplicate). Removed nodes live until the
  // end: their values' addresses are keys here.
  std::unordered_map<const ir::Value*, ir::Value*> replaced;
  std::vector<std::unique_ptr<ir::Node>> removed;
  size_t kept = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    ir::Node& node = *nodes[i];
    for (size_t k = 0; k < node.inputs().size() && !replaced.empty(); ++k) {
      auto it = replaced.find(node.input(k));
      if (it != replaced.end()) node.set_input(k, it->second);
    }
    size_t h = node_hash(node);
    const ir::Node* first = nullptr;
    auto [begin, end] = seen.equal_range(h);
    for (auto it = begin; it != end && !first; ++it)
      if (same_node(*it->second, node)) first = it->second;
    if (first == nullptr) {
      seen.emplace(h, &node);
      nodes[kept++] = std::move(nodes[i]);
      continue;
    }
    for (size_t o = 0; o < node.num_outputs(); ++o)
      replaced[node.output(o)] = first->output(o);
    removed.push_back(std::move(nodes[i]));
  }
  bool changed = kept != nodes.size();
  nodes.resize(kept);
  redirect_results(function, replaced);
  return changed;
}

}  // namespace kiln::passes
