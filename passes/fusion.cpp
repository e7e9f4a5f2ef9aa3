#include "kiln/passes/fusion.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "kiln/ir/error.h"
#include "kiln/passes/memory_plan.h"

namespace kiln::passes {

using ir::Node;
using ir::Op;
using ir::Value;

KernelKind kernel_kind_of(Op op) {
  if (ir::has_trait(op, ir::kElementwise) || op == Op::broadcast_to) return KernelKind::loop;
  if (ir::has_trait(op, ir::kReduction)) return KernelKind::reduction;
  if (op == Op::matmul) return KernelKind::matmul;
  if (op == Op::conv2d || op == Op::conv2d_filter_grad) return KernelKind::conv2d;
  if (op == Op::scan) return KernelKind::scan;
  return KernelKind::op;
}

namespace {

bool is_loop_node(const Node& node) {
  return kernel_kind_of(node.op()) == KernelKind::loop && node.num_outputs() == 1;
}

// Ops that are not elementwise but that a loop kernel computes element by element as cheaply as
// their own kernel would, reading each operand element a bounded number of times: as producers
// inside a loop or reduction kernel they save a pass over memory (a max-pool gradient feeding
// the relu mask before it, a pad feeding an elementwise op).
bool is_gather_producer(const Node& node) {
  return node.op() == Op::pad || node.op() == Op::max_pool2d_grad;
}

// Who reads each value: consumer node indices (each node once) and whether the value leaves the
// function as a result or an update.
struct Uses {
  std::unordered_map<const Value*, std::vector<size_t>> consumers;
  std::unordered_set<const Value*> escapes;

  explicit Uses(const ir::Function& f) {
    for (size_t i = 0; i < f.nodes().size(); ++i) {
      for (const Value* v : f.nodes()[i]->inputs()) {
        auto& list = consumers[v];
        if (list.empty() || list.back() != i) list.push_back(i);
      }
    }
    escapes.insert(f.outputs().begin(), f.outputs().end());
    for (const auto& u : f.updates())
      escapes.insert(u.value);
  }
  std::span<const size_t> of(const Value* v) const {
    auto it = consumers.find(v);
    return it == consumers.end() ? std::span<const size_t>{} : std::span<const size_t>(it->second);
  }
};

class Partitioner {
 public:
  Partitioner(const ir::Function& f, const FusionOptions& options, bool fuse, int max_depth)
      : options_(options),
        f_(f),
        uses_(f),
        group_of_(f.nodes().size(), -1),
        depth_(f.nodes().size(), 0),
        fuse_(fuse),
        max_depth_(max_depth) {
    for (size_t i = 0; i < f.nodes().size(); ++i)
      index_[f.nodes()[i].get()] = i;
  }

  KernelPlan run() {
    if (fuse_) {
      for (size_t i = 0; i < nodes().size(); ++i) {
        Op op = nodes()[i]->op();
        const KernelKind kind = kernel_kind_of(op);
        if (group_of_[i] < 0 && (kind == KernelKind::matmul || kind == KernelKind::conv2d))
          grow_epilogue(i);
      }
    }
    for (size_t i = nodes().size(); i-- > 0;) {
      if (group_of_[i] >= 0 || nodes()[i]->op() == Op::constant) continue;
      int g = new_group(i, kernel_kind_of(nodes()[i]->op()));
      KernelKind kind = kinds_[static_cast<size_t>(g)];
      if (fuse_ && nodes()[i]->num_outputs() == 1 &&
          (kind == KernelKind::loop || kind == KernelKind::reduction))
        pull_producers(g, i);
    }
    return build();
  }

 private:
  std::span<const std::unique_ptr<Node>> nodes() const { return f_.nodes(); }

  int new_group(size_t node, KernelKind kind) {
    int g = static_cast<int>(groups_.size());
    groups_.push_back({node});
    kinds_.push_back(kind);
    group_of_[node] = g;
    return g;
  }
  void join(int g, size_t node) {
    groups_[static_cast<size_t>(g)].push_back(node);
    group_of_[node] = g;
  }
  bool all_uses_in(const Value* v, int g) const {
    for (size_t c : uses_.of(v))
      if (group_of_[c] != g) return false;
    return true;
  }

  // matmul/conv2d followed by a single-use chain of same-shape loop nodes.
  void grow_epilogue(size_t root) {
    int g = new_group(root, kernel_kind_of(nodes()[root]->op()));
    const ir::Shape& shape = nodes()[root]->output()->type().shape;
    const Value* tail = nodes()[root]->output();
    for (int length = 1;
         length < max_depth_ && !uses_.escapes.contains(tail) && uses_.of(tail).size() == 1;
         ++length) {
      size_t next = uses_.of(tail)[0];
      const Node& n = *nodes()[next];
      if (group_of_[next] >= 0 || !is_loop_node(n) || n.output()->type().shape != shape) break;
      join(g, next);
      tail = n.output();
    }
  }

  // Pulls same-shape loop producers into the group rooted at `root` (see fusion.h).
  void pull_producers(int g, size_t root) {
    const Node& r = *nodes()[root];
    bool reduction = kinds_[static_cast<size_t>(g)] == KernelKind::reduction;
    const ir::Shape& shape = reduction ? r.input(0)->type().shape : r.output()->type().shape;
    std::vector<size_t> work{root};
    while (!work.empty()) {
      const Node& n = *nodes()[work.back()];
      work.pop_back();
      for (const Value* v : n.inputs()) {
        if (v->is_param()) continue;
        size_t p = index_.at(v->producer());
        const Node& producer = *nodes()[p];
        if (group_of_[p] >= 0 || !(is_loop_node(producer) || is_gather_producer(producer)) ||
            v->type().shape != shape)
          continue;
        if (!all_uses_in(v, g) || (reduction && uses_.escapes.contains(v))) continue;
        // Its depth: one below its deepest consumer (all of them are in the group by now).
        int depth = 0;
        for (size_t c : uses_.of(v))
          depth = std::max(depth, depth_[c] + 1);
        if (depth >= max_depth_) continue;  // it roots a kernel of its own
        depth_[p] = depth;
        join(g, p);
        work.push_back(p);
      }
    }
  }

  Kernel make_kernel(size_t g) const {
    auto members = groups_[g];
    std::sort(members.begin(), members.end());
    Kernel k;
    k.kind = kinds_[g];
    int gi = static_cast<int>(g);
    auto inside = [&](const Value* v) {
      return !v->is_param() && group_of_[index_.at(v->producer())] == gi;
    };
    for (size_t m : members) {
      const Node& n = *nodes()[m];
      k.nodes.push_back(&n);
      for (const Value* v : n.inputs())
        if (!inside(v) && std::find(k.inputs.begin(), k.inputs.end(), v) == k.inputs.end())
          k.inputs.push_back(v);
      for (size_t o = 0; o < n.num_outputs(); ++o) {
        const Value* v = n.output(o);
        if (m == members.back() || uses_.escapes.contains(v) || !all_uses_in(v, gi))
          k.outputs.push_back(v);
      }
    }
    if (k.kind == KernelKind::scan) k.scan = plan_scan(*k.nodes.front());
    return k;
  }

  KernelPlan build() const {
    std::vector<size_t> order(groups_.size());
    for (size_t g = 0; g < order.size(); ++g)
      order[g] = g;
    auto last = [&](size_t g) { return *std::max_element(groups_[g].begin(), groups_[g].end()); };
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return last(a) < last(b); });
    KernelPlan plan;
    for (size_t g : order)
      plan.kernels.push_back(make_kernel(g));
    check_topological(plan);
    return plan;
  }

  void check_topological(const KernelPlan& plan) const {
    std::unordered_set<const Value*> ready;
    for (const auto& p : f_.params())
      ready.insert(p.get());
    for (const auto& n : nodes())
      if (n->op() == Op::constant) ready.insert(n->output());
    for (const Kernel& k : plan.kernels) {
      for (const Value* v : k.inputs)
        KILN_CHECK(ready.contains(v), "fusion made a kernel read a value computed after it");
      ready.insert(k.outputs.begin(), k.outputs.end());
    }
  }

  // The body's own kernel and memory plans (the body is one step; see ScanPlan).
  std::shared_ptr<const ScanPlan> plan_scan(const Node& node) const {
    auto scan = std::make_shared<ScanPlan>();
    scan->body = node.attrs().get_function("body").shared();
    scan->kernels = plan_kernels(*scan->body, options_);
    scan->memory = plan_memory(*scan->body, scan->kernels);
    return scan;
  }

  const FusionOptions& options_;
  const ir::Function& f_;
  Uses uses_;
  std::unordered_map<const Node*, size_t> index_;
  std::vector<int> group_of_;
  std::vector<int> depth_;  // nodes on the longest path from the group's root (root: 0)
  std::vector<std::vector<size_t>> groups_;
  std::vector<KernelKind> kinds_;
  bool fuse_;
  int max_depth_;
};

}  // namespace

KernelPlan plan_kernels(const ir::Function& function, const FusionOptions& options) {
  return Partitioner(function, options, options.fuse, std::max(1, options.max_depth)).run();
}

}  // namespace kiln::passes
