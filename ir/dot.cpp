#include "kiln/ir/dot.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <map>
#include <set>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "kiln/ir/printer.h"
#include "kiln/ir/utf8.h"

namespace kiln::ir {

namespace {

// Fill colours: one per kind of node, constants and the boundary, and a palette cycled over
// kernel clusters (kept apart from the node colours so a node stands out in its cluster).
constexpr std::string_view kForwardFill = "#dae8fc";
constexpr std::string_view kGradientFill = "#f8cecc";
constexpr std::string_view kOptimizerFill = "#d5e8d4";
constexpr std::string_view kConstantFill = "#eeeeee";
constexpr std::string_view kBoundaryFill = "#ffffff";
constexpr std::array<std::string_view, 8> kKernelFills = {
    "#fff2cc", "#e1d5e7", "#ffe6cc", "#d4f1f4", "#f0e0d0", "#e6f0c0", "#f2d7ee", "#dddddd"};

enum class Role { forward, gradient, optimizer };

// Autodiff scopes gradient nodes "gradients[/forward scope]"; Optimizer::apply_gradients scopes
// its nodes "optimizer/<the optimizer's name>" (kOptimizerScope), whatever the optimizer.
Role role_of(std::string_view scope) {
  if (scope.starts_with("gradients")) return Role::gradient;
  if (scope.substr(0, scope.find('/')) == kOptimizerScope) return Role::optimizer;
  return Role::forward;
}

std::string_view fill_of(Role role) {
  switch (role) {
    case Role::gradient:
      return kGradientFill;
    case Role::optimizer:
      return kOptimizerFill;
    case Role::forward:
      break;
  }
  return kForwardFill;
}

std::string_view role_name(Role role) {
  switch (role) {
    case Role::gradient:
      return "gradients";
    case Role::optimizer:
      return "optimizer";
    case Role::forward:
      break;
  }
  return "forward";
}

// `text` as a DOT quoted string. `"` and `\` are escaped (so no escape sequence of Graphviz's
// labels, like \N or \l, can come from user text), a newline becomes `\n` (a line break in a
// label), other control characters become spaces and bytes that are not UTF-8 (which Graphviz
// rejects) '?'.
std::string quote(std::string_view text) {
  std::string out = "\"";
  for (size_t i = 0; i < text.size();) {
    char c = text[i];
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += ' ';
    } else if (size_t n = utf8_length(text, i); n > 0) {
      out.append(text.substr(i, n));
      i += n;
      continue;
    } else {
      out += '?';
    }
    ++i;
  }
  return out + "\"";
}

std::string types_text(const Node& node) {
  std::vector<TensorType> types = node.output_types();
  return types.empty() ? "()" : types_to_string(types);
}

// The printer's name of each parameter. print_value walks the whole function on every call, so
// it is asked about a copy holding only the parameters: their names depend on nothing else.
std::unordered_map<const Value*, std::string> param_names(const Function& function) {
  Function params_only;
  for (const auto& param : function.params())
    params_only.add_param(param->type(), param->name());
  std::unordered_map<const Value*, std::string> names;
  for (size_t i = 0; i < function.params().size(); ++i) {
    names[function.param(i)] = print_value(params_only, params_only.param(i));
  }
  return names;
}

// One name-scope cluster of the expanded view; clusters are kept flat (children by index) so a
// scope nested thousands deep needs no recursion.
struct Cluster {
  std::string name;
  std::vector<const Node*> nodes;
  std::vector<size_t> children;
  std::map<std::string, size_t, std::less<>> child_by_name;
};

class DotWriter {
 public:
  DotWriter(const Function& function, const DotOptions& options)
      : function_(function), options_(options), param_names_(param_names(function)) {
    for (size_t i = 0; i < function.nodes().size(); ++i) {
      const Node* node = function.nodes()[i].get();
      node_id_[node] = fmt::format("n{}", i);
    }
  }

  std::string write() {
    line(0, fmt::format("digraph {} {{", quote(function_.name())));
    line(1,
         fmt::format("// Fill colours: forward {}, gradients (scope \"gradients...\") {}, "
                     "optimizer (scope \"{}/...\") {}, constants {}.",
                     kForwardFill, kGradientFill, kOptimizerScope, kOptimizerFill, kConstantFill));
    line(1, "graph [fontname=\"Helvetica\", fontsize=10];");
    line(1, fmt::format("node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", "
                        "fontsize=10, fillcolor=\"{}\"];",
                        kForwardFill));
    line(1, "edge [fontname=\"Helvetica\", fontsize=8, color=\"#555555\"];");
    write_params();
    if (!options_.kernel_of.empty()) {
      write_kernels();
    } else if (options_.expand) {
      write_expanded();
    } else {
      write_collapsed();
    }
    write_results();
    write_edges();
    write_legend();
    // Last, so that clusters do not inherit the title as their label.
    const std::string& title = options_.title.empty() ? function_.name() : options_.title;
    line(1, fmt::format("graph [label={}, labelloc=t, fontsize=14];", quote(title)));
    line(0, "}");
    return std::move(out_);
  }

  // What write() drew where; call after write().
  DotLayout layout() {
    for (const auto& node : function_.nodes())
      layout_.nodes.emplace_back(node_id_.at(node.get()), node.get());
    return std::move(layout_);
  }

 private:
  // Starts a cluster in the layout, inside the clusters open now.
  void open_cluster(std::string id, std::string label) {
    std::string parent = open_clusters_.empty() ? "" : layout_.clusters[open_clusters_.back()].id;
    open_clusters_.push_back(layout_.clusters.size());
    layout_.clusters.push_back({std::move(id), std::move(label), std::move(parent), {}});
  }

  void line(size_t depth, std::string_view text) {
    out_.append(2 * depth, ' ');
    out_ += text;
    out_ += '\n';
  }

  void write_params() {
    for (size_t i = 0; i < function_.params().size(); ++i) {
      const Value* param = function_.param(i);
      param_id_[param] = fmt::format("p{}", i);
      std::string label = param_names_.at(param) + "\n" + param->type().to_string();
      line(1, fmt::format("{} [label={}, shape=ellipse, fillcolor=\"{}\"];",
                          quote(param_id_[param]), quote(label), kBoundaryFill));
    }
  }

  // One IR node as a node of the graph: "op\ntypes", or a small box with its type for a constant.
  void write_node(const Node& node, size_t depth, std::string_view kernel = "") {
    std::string tooltip = node.scope();
    for (const std::string& more :
         {node.loc().empty() ? "" : node.loc().to_string(), std::string(kernel)}) {
      if (!more.empty()) tooltip += fmt::format("{}{}", tooltip.empty() ? "" : "\n", more);
    }
    std::string extra = tooltip.empty() ? "" : fmt::format(", tooltip={}", quote(tooltip));
    const std::string& id = node_id_.at(&node);
    for (size_t open : open_clusters_)
      layout_.clusters[open].members.push_back(id);
    if (node.op() == Op::constant) {
      line(depth,
           fmt::format("{} [label={}, shape=box, style=filled, fillcolor=\"{}\", fontsize=8, "
                       "height=0.2, width=0.3, margin=\"0.04,0.02\"{}];",
                       quote(id), quote(types_text(node)), kConstantFill, extra));
      return;
    }
    Role role = role_of(node.scope());
    roles_.insert(role);
    std::string label = fmt::format("{}\n{}", op_name(node.op()), types_text(node));
    // A scan is one box; its body is named with its size (`kiln dump` of the body draws it).
    for (const auto& [name, value] : node.attrs().items()) {
      if (const auto* body = std::get_if<FunctionAttr>(&value)) {
        size_t n = body->function().nodes().size();
        label += fmt::format("\n{}: @{} ({} node{})", name, body->function().name(), n,
                             n == 1 ? "" : "s");
      }
    }
    line(depth, fmt::format("{} [label={}, fillcolor=\"{}\"{}];", quote(id), quote(label),
                            fill_of(role), extra));
  }

  // One box per distinct scope, drawn where its first node is; nodes without a scope alone.
  void write_collapsed() {
    struct Box {
      std::string id;
      std::vector<const Node*> nodes;
      bool written = false;
    };
    std::vector<Box> boxes;
    std::unordered_map<std::string_view, size_t> box_of_scope;
    for (const auto& node : function_.nodes()) {
      if (node->scope().empty()) continue;
      auto [it, added] = box_of_scope.try_emplace(node->scope(), boxes.size());
      if (added) boxes.push_back({fmt::format("s{}", boxes.size()), {}});
      boxes[it->second].nodes.push_back(node.get());
    }
    for (const auto& node : function_.nodes()) {
      if (node->scope().empty()) {
        write_node(*node, 1);
        continue;
      }
      Box& box = boxes[box_of_scope.at(node->scope())];
      if (std::exchange(box.written, true)) continue;
      Role role = role_of(node->scope());
      // The box has this fill even when it holds only constants, so the legend names it.
      roles_.insert(role);
      write_box(box.id, node->scope(), box.nodes, 1, fill_of(role));
    }
  }

  // Every node, inside nested clusters that follow its scope's '/' path.
  void write_expanded() {
    std::vector<Cluster> clusters(1);  // clusters[0]: the top level
    for (const auto& node : function_.nodes()) {
      size_t at = 0;
      std::string_view rest = node->scope();
      while (!rest.empty()) {
        size_t slash = rest.find('/');
        std::string_view name = rest.substr(0, slash);
        rest = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
        auto it = clusters[at].child_by_name.find(name);
        if (it == clusters[at].child_by_name.end()) {
          size_t child = clusters.size();
          clusters[at].child_by_name.emplace(std::string(name), child);
          clusters[at].children.push_back(child);
          clusters.push_back({std::string(name), {}, {}, {}});
          at = child;
        } else {
          at = it->second;
        }
      }
      clusters[at].nodes.push_back(node.get());
    }
    // Ids and paths first, in the depth-first order of drawing, so that collapsing a cluster
    // renumbers none of the others. Walks use an explicit stack: (cluster, next child).
    std::vector<std::string> ids(clusters.size()), paths(clusters.size());
    std::vector<std::pair<size_t, size_t>> stack = {{0, 0}};
    for (size_t next_id = 0; !stack.empty();) {
      auto& [at, next_child] = stack.back();
      if (next_child == clusters[at].children.size()) {
        stack.pop_back();
        continue;
      }
      size_t child = clusters[at].children[next_child++];
      ids[child] = fmt::format("cluster_{}", next_id++);
      paths[child] = at == 0 ? clusters[child].name : paths[at] + "/" + clusters[child].name;
      stack.push_back({child, 0});
    }
    for (const Node* node : clusters[0].nodes)
      write_node(*node, 1);
    stack = {{0, 0}};
    while (!stack.empty()) {
      auto& [at, next_child] = stack.back();
      if (next_child == clusters[at].children.size()) {
        if (at != 0) open_clusters_.pop_back();
        stack.pop_back();
        if (!stack.empty()) line(stack.size(), "}");
        continue;
      }
      size_t child = clusters[at].children[next_child++];
      size_t depth = stack.size();
      if (options_.collapsed.contains(ids[child])) {
        write_box("box_" + ids[child], paths[child], subtree_nodes(clusters, child), depth,
                  fill_of(role_of(paths[child])));
        continue;
      }
      open_cluster(ids[child], paths[child]);
      line(depth, fmt::format("subgraph {} {{", quote(ids[child])));
      line(depth + 1, fmt::format("label={}; style=rounded; color=\"#999999\"; fontsize=10;",
                                  quote(clusters[child].name)));
      for (const Node* node : clusters[child].nodes)
        write_node(*node, depth + 1);
      stack.push_back({child, 0});
    }
  }

  // The nodes of cluster `at` and of every cluster inside it.
  static std::vector<const Node*> subtree_nodes(const std::vector<Cluster>& clusters, size_t at) {
    std::vector<const Node*> nodes;
    std::vector<size_t> todo = {at};
    while (!todo.empty()) {
      size_t next = todo.back();
      todo.pop_back();
      nodes.insert(nodes.end(), clusters[next].nodes.begin(), clusters[next].nodes.end());
      todo.insert(todo.end(), clusters[next].children.begin(), clusters[next].children.end());
    }
    return nodes;
  }

  // One box `id` standing for `nodes` (a scope when collapsed, or a collapsed cluster, id
  // "box_<cluster id>"), labelled with `label` and the op count. Edges into and out of it are
  // drawn once per pair of endpoints.
  void write_box(const std::string& id, std::string_view label,
                 const std::vector<const Node*>& nodes, size_t depth, std::string_view fill) {
    boxes_.insert(id);
    for (const Node* node : nodes) {
      node_id_[node] = id;
      // The legend stays the same whatever is collapsed.
      if (node->op() != Op::constant) roles_.insert(role_of(node->scope()));
    }
    for (size_t open : open_clusters_)
      layout_.clusters[open].members.push_back(id);
    std::string text =
        fmt::format("{}\n{} op{}", label, nodes.size(), nodes.size() == 1 ? "" : "s");
    line(depth, fmt::format("{} [label={}, shape=box3d, style=filled, fillcolor=\"{}\"];",
                            quote(id), quote(text), fill));
  }

  // Every node; each kernel of two or more nodes is a dashed, filled cluster.
  void write_kernels() {
    std::map<int, std::vector<const Node*>> kernels;
    for (const auto& node : function_.nodes()) {
      auto it = options_.kernel_of.find(node.get());
      if (it != options_.kernel_of.end()) kernels[it->second].push_back(node.get());
    }
    for (const auto& node : function_.nodes()) {
      auto it = options_.kernel_of.find(node.get());
      if (it == options_.kernel_of.end()) {
        write_node(*node, 1);
      } else if (kernels.at(it->second).size() < 2) {
        write_node(*node, 1, fmt::format("kernel {}", it->second));
      }
    }
    size_t colour = 0;
    for (const auto& [kernel, nodes] : kernels) {
      if (nodes.size() < 2) continue;
      std::string name = fmt::format("kernel {}", kernel);
      std::string cluster_id = fmt::format("cluster_kernel_{}", kernel);
      std::string_view fill = kKernelFills[colour++ % kKernelFills.size()];
      if (options_.collapsed.contains(cluster_id)) {
        write_box("box_" + cluster_id, name, nodes, 1, fill);
        continue;
      }
      open_cluster(cluster_id, name);
      line(1, fmt::format("subgraph {} {{", quote(cluster_id)));
      line(2, fmt::format("label={}; style=\"dashed,filled\"; fillcolor=\"{}\"; color=\"#666666\"; "
                          "fontsize=10;",
                          quote(name), fill));
      for (const Node* node : nodes)
        write_node(*node, 2, name);
      open_clusters_.pop_back();
      line(1, "}");
    }
  }

  void write_results() {
    const std::vector<Value*>& outputs = function_.outputs();
    if (!outputs.empty()) {
      std::string types;
      for (const Value* v : outputs) {
        types += fmt::format("{}{}", types.empty() ? "" : ", ",
                             v == nullptr ? std::string("?") : v->type().to_string());
      }
      line(1, fmt::format("\"out\" [label={}, shape=ellipse, peripheries=2, fillcolor=\"{}\"];",
                          quote("return\n" + types), kBoundaryFill));
    }
    for (size_t i = 0; i < function_.updates().size(); ++i) {
      const Function::Update& update = function_.updates()[i];
      auto name = param_names_.find(update.param);
      std::string label = fmt::format(
          "update {}\n{}",
          name != param_names_.end() ? name->second : print_value(function_, update.param),
          update.param == nullptr ? std::string("?") : update.param->type().to_string());
      line(1,
           fmt::format("{} [label={}, shape=ellipse, style=\"dashed,filled\", fillcolor=\"{}\"];",
                       quote(fmt::format("u{}", i)), quote(label), kBoundaryFill));
    }
  }

  // The id of the graph node drawing `value`'s producer; empty for a value not in the function.
  std::string endpoint(const Value* value) const {
    if (value == nullptr) return "";
    if (value->is_param()) {
      auto it = param_id_.find(value);
      return it == param_id_.end() ? "" : it->second;
    }
    auto it = node_id_.find(value->producer());
    return it == node_id_.end() ? "" : it->second;
  }

  // Edges labelled with the type they carry: one per value and consumer, except into and out of
  // a box (a scope when collapsed, or a collapsed cluster), where one edge per pair of endpoints
  // (labelled with the first value's type) stands for all, and none inside a box.
  void write_edges() {
    std::set<std::tuple<std::string, std::string, const Value*>> seen;
    auto edge = [&](const Value* value, const std::string& to) {
      std::string from = endpoint(value);
      if (from.empty() || from == to) return;
      bool per_pair = boxes_.contains(from) || boxes_.contains(to);
      if (!seen.emplace(from, to, per_pair ? nullptr : value).second) return;
      line(1, fmt::format("{} -> {} [label={}];", quote(from), quote(to),
                          quote(value->type().to_string())));
    };
    for (const auto& node : function_.nodes()) {
      for (const Value* input : node->inputs())
        edge(input, node_id_.at(node.get()));
    }
    for (const Value* output : function_.outputs())
      edge(output, "out");
    for (size_t i = 0; i < function_.updates().size(); ++i) {
      edge(function_.updates()[i].value, fmt::format("u{}", i));
    }
  }

  // A key to the fill colours, when there is more than forward code to tell apart.
  void write_legend() {
    if (roles_.empty() || roles_ == std::set<Role>{Role::forward}) return;
    line(1, "subgraph \"cluster_legend\" {");
    line(2, "label=\"legend\"; style=rounded; color=\"#bbbbbb\"; fontsize=9;");
    for (Role role : roles_) {
      line(2, fmt::format("{} [label={}, fillcolor=\"{}\", fontsize=8];",
                          quote(fmt::format("legend_{}", role_name(role))), quote(role_name(role)),
                          fill_of(role)));
    }
    line(1, "}");
  }

  const Function& function_;
  const DotOptions& options_;
  std::unordered_map<const Value*, std::string> param_names_;
  // The graph node drawing each IR node ("n3", its scope's box "s1" or its collapsed cluster's
  // box "box_cluster_2") and parameter ("p0").
  std::unordered_map<const Node*, std::string> node_id_;
  std::unordered_map<const Value*, std::string> param_id_;
  std::set<Role> roles_;         // of the nodes and boxes drawn, for the legend
  std::set<std::string> boxes_;  // the ids of the boxes drawn (scopes or collapsed clusters)
  std::string out_;
  DotLayout layout_;
  std::vector<size_t> open_clusters_;  // indices into layout_.clusters, outermost first
};

}  // namespace

std::string to_dot(const Function& function, const DotOptions& options) {
  return DotWriter(function, options).write();
}

DotLayout dot_layout(const Function& function, const DotOptions& options) {
  DotWriter writer(function, options);
  writer.write();
  return writer.layout();
}

}  // namespace kiln::ir
