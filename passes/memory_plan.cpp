#include "kiln/passes/memory_plan.h"

#include <algorithm>
#include <map>
#include <unordered_set>

#include <fmt/format.h>

#include "kiln/ir/error.h"

namespace kiln::passes {

using ir::Value;

namespace {

int64_t value_bytes(const Value* v) {
  return static_cast<int64_t>(v->type().nbytes());
}

int64_t align_up(int64_t n) {
  return (n + kWorkspaceAlignment - 1) / kWorkspaceAlignment * kWorkspaceAlignment;
}

// Live range of a workspace value in kernel indices: [def, last] (last = def if nobody reads it).
struct Range {
  size_t def = 0;
  size_t last = 0;
};

std::unordered_map<const Value*, Range> live_ranges(const KernelPlan& plan,
                                                    const MemoryPlan& memory) {
  std::unordered_map<const Value*, Range> ranges;
  for (size_t k = 0; k < plan.kernels.size(); ++k) {
    for (const Value* v : plan.kernels[k].outputs)
      if (memory.slots.at(v).kind == Slot::Kind::workspace) ranges[v] = {k, k};
    for (const Value* v : plan.kernels[k].inputs) {
      auto it = ranges.find(v);
      if (it != ranges.end()) it->second.last = k;
    }
  }
  return ranges;
}

// First-fit allocator over [0, ∞): blocks by offset.
class Arena {
 public:
  int64_t allocate(int64_t bytes) {
    int64_t size = align_up(bytes);
    int64_t offset = 0;
    for (const auto& [start, length] : blocks_) {
      if (start - offset >= size) break;
      offset = std::max(offset, start + length);
    }
    blocks_[offset] = size;
    high_ = std::max(high_, offset + size);
    return offset;
  }
  void release(int64_t offset) { blocks_.erase(offset); }
  int64_t high_water() const { return high_; }

 private:
  std::map<int64_t, int64_t> blocks_;  // offset → aligned size (zero-size blocks never stored)
  int64_t high_ = 0;
};

void assign_boundary_slots(const ir::Function& f, MemoryPlan& memory) {
  for (const auto& p : f.params())
    memory.slots[p.get()] = Slot{Slot::Kind::param, p->index(), 0, value_bytes(p.get())};
  for (const auto& n : f.nodes())
    if (n->op() == ir::Op::constant)
      memory.slots[n->output()] = Slot{Slot::Kind::constant, 0, 0, value_bytes(n->output())};
  std::vector<const Value*> outs(f.outputs().begin(), f.outputs().end());
  for (const auto& u : f.updates())
    outs.push_back(u.value);
  for (size_t i = 0; i < outs.size(); ++i) {
    const Value* v = outs[i];
    auto index = static_cast<int64_t>(i);
    if (memory.slots.contains(v)) {
      memory.copies.push_back({index, v, value_bytes(v)});
    } else {
      memory.slots[v] = Slot{Slot::Kind::output, index, 0, value_bytes(v)};
    }
  }
}

// A kernel that is one reshape: its output is its input's bytes, reinterpreted.
bool is_reshape_kernel(const Kernel& kernel) {
  return kernel.kind == KernelKind::op && kernel.nodes.size() == 1 &&
         kernel.nodes.front()->op() == ir::Op::reshape;
}

// Whether `v` reaches the result of `kernel` only through elementwise ops, so that element i of
// v is read only by the work that writes element i. A max-pool gradient fused into a loop kernel
// (passes/fusion.cpp) reads its x at the window's other taps too, and x may be computed from v
// inside the kernel: writing the result over v would feed results back in.
bool read_elementwise(const Kernel& kernel, const Value* v) {
  std::unordered_set<const Value*> derived{v};  // v and what the kernel computes from it
  for (const ir::Node* node : kernel.nodes) {   // topological order
    bool reads = false;
    for (const Value* in : node->inputs())
      reads = reads || derived.contains(in);
    if (!reads) continue;
    if (!ir::has_trait(node->op(), ir::kElementwise)) return false;
    for (size_t o = 0; o < node->num_outputs(); ++o)
      derived.insert(node->output(o));
  }
  return true;
}

// An input of kernel `k` whose block output `out` can take over, or nullptr: for a loop kernel
// an input of the output's shape and element size that only elementwise ops read (element i is
// read before it is written, and by nothing else), for a reshape its operand (the same bytes;
// codegen then emits no kernel at all).
const Value* in_place_source(const Kernel& kernel, size_t k, const Value* out,
                             const std::unordered_map<const Value*, Range>& ranges,
                             const std::unordered_set<const Value*>& donated) {
  const bool reshape = is_reshape_kernel(kernel);
  if (kernel.kind != KernelKind::loop && !reshape) return nullptr;
  for (const Value* in : kernel.inputs) {
    auto r = ranges.find(in);
    if (r == ranges.end() || r->second.last != k) continue;
    if (!reshape && in->type().shape != out->type().shape) continue;
    if (!reshape && !read_elementwise(kernel, in)) continue;
    if (ir::dtype_size(in->type().dtype) != ir::dtype_size(out->type().dtype)) continue;
    if (!donated.contains(in)) return in;
  }
  return nullptr;
}

// Bytes a scan kernel needs for itself alone: two blocks per carry (steps read one and write
// the other), then the body's workspace, which every step reuses.
int64_t scan_scratch_bytes(const Kernel& kernel) {
  const ir::Node& node = *kernel.nodes.front();
  const int64_t carries = node.attrs().get_int("carries");
  int64_t bytes = 0;
  for (int64_t c = 0; c < carries; ++c)
    bytes += 2 * align_up(value_bytes(node.input(static_cast<size_t>(c))));
  return bytes + kernel.scan->memory.workspace_bytes;
}

}  // namespace

bool is_view_in_place(const Kernel& kernel, const MemoryPlan& memory) {
  if (!is_reshape_kernel(kernel)) return false;
  auto it = memory.in_place.find(kernel.outputs.front());
  return it != memory.in_place.end() && it->second == kernel.inputs.front();
}

MemoryPlan plan_memory(const ir::Function& function, const KernelPlan& plan) {
  MemoryPlan memory;
  assign_boundary_slots(function, memory);
  for (const Kernel& k : plan.kernels)
    for (const Value* v : k.outputs)
      if (!memory.slots.contains(v))
        memory.slots[v] = Slot{Slot::Kind::workspace, 0, 0, value_bytes(v)};
  auto ranges = live_ranges(plan, memory);
  Arena arena;
  std::unordered_set<const Value*> donated;  // inputs whose block an in-place output took
  for (size_t k = 0; k < plan.kernels.size(); ++k) {
    const Kernel& kernel = plan.kernels[k];
    for (const Value* out : kernel.outputs) {
      Slot& slot = memory.slots.at(out);
      if (slot.kind != Slot::Kind::workspace) continue;
      if (is_reshape_kernel(kernel)) {
        // A reshape of a parameter is a view of the caller's buffer: never written (kernels
        // write only workspace and output slots), so no copy is needed.
        const Slot& from = memory.slots.at(kernel.inputs.front());
        if (from.kind == Slot::Kind::param) {
          slot = Slot{from.kind, from.index, 0, slot.bytes};
          memory.in_place[out] = kernel.inputs.front();
          ranges.erase(out);  // it holds no workspace block: nothing to give or take
          continue;
        }
      }
      if (const Value* in = in_place_source(kernel, k, out, ranges, donated)) {
        slot.offset = memory.slots.at(in).offset;
        memory.in_place[out] = in;
        donated.insert(in);
      } else if (slot.bytes > 0) {
        slot.offset = arena.allocate(slot.bytes);
      }
    }
    if (kernel.scan) {
      Slot scratch{Slot::Kind::workspace, 0, 0, scan_scratch_bytes(kernel)};
      if (scratch.bytes > 0) {
        scratch.offset = arena.allocate(scratch.bytes);
        arena.release(scratch.offset);  // live at this kernel only
      }
      memory.scratch[k] = scratch;
    }
    // Values whose last reader is this kernel die here, unless an output took their block (or
    // they are views of a parameter, which hold no block).
    auto holds_block = [&](const Value* v) {
      const Slot& s = memory.slots.at(v);
      return s.kind == Slot::Kind::workspace && s.bytes > 0;
    };
    for (const Value* v : kernel.inputs) {
      auto r = ranges.find(v);
      if (r == ranges.end() || r->second.last != k || !holds_block(v)) continue;
      if (!donated.contains(v)) arena.release(memory.slots.at(v).offset);
    }
    for (const Value* v : kernel.outputs) {
      auto r = ranges.find(v);
      if (r != ranges.end() && r->second.last == k && holds_block(v))
        arena.release(memory.slots.at(v).offset);
    }
  }
  memory.workspace_bytes = arena.high_water();
  return memory;
}

namespace {

[[noreturn]] void plan_broken(const ir::Function& f, const std::string& what) {
  throw InternalError(fmt::format("memory plan of @{} is broken: {}", f.name(), what));
}

bool overlaps(const Slot& a, const Slot& b) {
  if (a.bytes == 0 || b.bytes == 0) return false;
  return a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
}

}  // namespace

void check_memory_plan(const ir::Function& function, const KernelPlan& plan,
                       const MemoryPlan& memory) {
  for (const Kernel& k : plan.kernels) {
    for (const Value* v : k.inputs)
      if (!memory.slots.contains(v)) plan_broken(function, "a kernel input has no slot");
    for (const Value* v : k.outputs)
      if (!memory.slots.contains(v)) plan_broken(function, "a kernel output has no slot");
  }
  auto ranges = live_ranges(plan, memory);
  std::vector<std::pair<const Value*, Range>> list(ranges.begin(), ranges.end());
  auto check_block = [&](const Slot& s) {
    if (s.offset % kWorkspaceAlignment != 0) plan_broken(function, "unaligned workspace offset");
    if (s.offset + s.bytes > memory.workspace_bytes)
      plan_broken(function, "a workspace value ends past workspace_bytes");
  };
  for (const auto& [v, r] : list)
    check_block(memory.slots.at(v));
  // A kernel's scratch is a block live at that kernel alone, like a value born and dead there.
  for (size_t k = 0; k < plan.kernels.size(); ++k) {
    if (plan.kernels[k].scan && !memory.scratch.contains(k))
      plan_broken(function, "a scan kernel has no scratch");
    if (plan.kernels[k].scan)
      check_memory_plan(*plan.kernels[k].scan->body, plan.kernels[k].scan->kernels,
                        plan.kernels[k].scan->memory);
  }
  for (const auto& [k, s] : memory.scratch) {
    check_block(s);
    for (const auto& [v, r] : list)
      if (r.def <= k && k <= r.last && overlaps(s, memory.slots.at(v)))
        plan_broken(function, "a kernel's scratch overlaps a live workspace value");
  }
  for (size_t i = 0; i < list.size(); ++i) {
    for (size_t j = i + 1; j < list.size(); ++j) {
      auto [a, ra] = list[i];
      auto [b, rb] = list[j];
      bool live_together = ra.def <= rb.last && rb.def <= ra.last;
      if (!live_together || !overlaps(memory.slots.at(a), memory.slots.at(b))) continue;
      auto pair_of = [&](const Value* out, const Value* in) {
        auto it = memory.in_place.find(out);
        return it != memory.in_place.end() && it->second == in;
      };
      bool in_place = (pair_of(a, b) && rb.last == ra.def) || (pair_of(b, a) && ra.last == rb.def);
      if (!in_place) plan_broken(function, "two live workspace values overlap");
    }
  }
}

}  // namespace kiln::passes
