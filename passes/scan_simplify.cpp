#include "kiln/passes/scan_simplify.h"

#include <algorithm>
#include <memory>
#include <unordered_map>
#include <unordered_set>

#include "kiln/ir/ops/control.h"
#include "kiln/passes/dce.h"
#include "kiln/passes/rewrite.h"

namespace kiln::passes {

namespace {

std::unordered_set<const ir::Value*> used_values(const ir::Function& f) {
  std::unordered_set<const ir::Value*> used(f.outputs().begin(), f.outputs().end());
  for (const auto& u : f.updates())
    used.insert(u.value);
  for (const auto& node : f.nodes())
    used.insert(node->inputs().begin(), node->inputs().end());
  return used;
}

// Moves the nodes appended since the function had `count` nodes to position `index`.
void move_appended(ir::Function& f, size_t count, size_t index) {
  auto& nodes = f.mutable_nodes();
  std::rotate(nodes.begin() + static_cast<std::ptrdiff_t>(index),
              nodes.begin() + static_cast<std::ptrdiff_t>(count), nodes.end());
}

// Replacements for the results of a scan of length 0 (at `index`), built just before it.
void replace_empty_scan(ir::Function& f, size_t index, const ir::ScanAttrs& s,
                        std::unordered_map<const ir::Value*, ir::Value*>& replaced) {
  const ir::Node& node = *f.nodes()[index];
  const size_t count = f.nodes().size();
  Rewriter rewrite(f, node);
  for (size_t r = 0; r < node.num_outputs(); ++r) {
    const auto c = static_cast<size_t>(s.carries);
    replaced[node.output(r)] =
        r < c ? node.input(r) : rewrite.constant(ir::HostTensor(node.output(r)->type()));
  }
  move_appended(f, count, index);
}

// A copy of the scan without the stacked ys `dead` and, with `drop_saved`, without saved carries,
// built just before it; its results (or nullptr for a dropped one) in the old results' order.
std::vector<ir::Value*> smaller_scan(ir::Function& f, size_t index, const ir::ScanAttrs& s,
                                     const std::vector<bool>& dead, bool drop_saved) {
  const ir::Node& node = *f.nodes()[index];
  const auto C = static_cast<size_t>(s.carries);
  ir::Function body = s.body->clone();
  std::vector<ir::Value*> outputs(body.outputs().begin(), body.outputs().begin() + C);
  std::vector<ir::TensorType> types;
  for (size_t c = 0; c < C; ++c)
    types.push_back(node.output(c)->type());
  for (size_t y = 0; y < dead.size(); ++y) {
    if (dead[y]) continue;
    outputs.push_back(body.outputs()[C + y]);
    types.push_back(node.output(C + y)->type());
  }
  body.set_outputs(outputs);
  eliminate_dead_code(body);
  const bool save = s.save_carries && !drop_saved;
  if (save) {
    for (size_t c = 0; c < C; ++c)
      types.push_back(node.output(C + dead.size() + c)->type());
  }
  ir::Attrs attrs = node.attrs();
  attrs.set_bool("save_carries", save);
  attrs.set_function("body", std::make_shared<const ir::Function>(std::move(body)));
  std::vector<ir::Value*> inputs(node.inputs().begin(), node.inputs().end());
  const size_t count = f.nodes().size();
  ir::Node* fresh = f.append_unchecked(ir::Op::scan, std::move(inputs), std::move(attrs),
                                       std::move(types), node.scope(), node.loc());
  move_appended(f, count, index);

  std::vector<ir::Value*> results(node.num_outputs(), nullptr);
  size_t next = 0;
  for (size_t c = 0; c < C; ++c)
    results[c] = fresh->output(next++);
  for (size_t y = 0; y < dead.size(); ++y)
    if (!dead[y]) results[C + y] = fresh->output(next++);
  if (save) {
    for (size_t c = 0; c < C; ++c)
      results[C + dead.size() + c] = fresh->output(next++);
  }
  return results;
}

}  // namespace

bool simplify_scans(ir::Function& function) {
  bool changed = false;
  std::unordered_set<const ir::Value*> used = used_values(function);
  std::unordered_map<const ir::Value*, ir::Value*> replaced;
  std::unordered_set<const ir::Node*> gone;
  for (size_t i = 0; i < function.nodes().size(); ++i) {
    const ir::Node& node = *function.nodes()[i];
    if (node.op() != ir::Op::scan) continue;
    const ir::ScanAttrs s = ir::scan_attrs(node.attrs(), node.inputs().size());
    const auto C = static_cast<size_t>(s.carries);
    const auto Y = static_cast<size_t>(s.ys);
    if (s.length == 0) {
      size_t before = function.nodes().size();
      replace_empty_scan(function, i, s, replaced);
      i += function.nodes().size() - before;  // the constants went in before it
      gone.insert(function.nodes()[i].get());
      changed = true;
      continue;
    }
    std::vector<bool> dead(Y);
    bool any_dead = false;
    for (size_t y = 0; y < Y; ++y)
      any_dead |= dead[y] = !used.contains(node.output(C + y));
    bool drop_saved = s.save_carries;
    for (size_t c = 0; c < C && s.save_carries; ++c)
      drop_saved &= !used.contains(node.output(C + Y + c));
    if (!any_dead && !drop_saved) continue;
    std::vector<ir::Value*> results = smaller_scan(function, i, s, dead, drop_saved);
    ++i;  // the new scan went in before the old one
    const ir::Node& old = *function.nodes()[i];
    for (size_t r = 0; r < results.size(); ++r)
      if (results[r] != nullptr) replaced[old.output(r)] = results[r];
    gone.insert(&old);
    changed = true;
  }
  if (!changed) return false;
  for (const auto& node : function.nodes())
    for (size_t k = 0; k < node->inputs().size(); ++k)
      node->set_input(k, resolve_replaced(replaced, node->input(k)));
  redirect_results(function, replaced);
  auto& nodes = function.mutable_nodes();
  std::erase_if(nodes, [&](const std::unique_ptr<ir::Node>& n) { return gone.contains(n.get()); });
  return true;
}

}  // namespace kiln::passes
