#include "graph_html.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "graph_page.h"
#include "kiln/frontend/formats/markup.h"
#include "kiln/ir/printer.h"

namespace kiln::tools {

namespace {

std::string json_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ',';
    out += json_string(items[i]);
  }
  return out + "]";
}

// The node lines of print(function), one per node in order (print_node would rename the whole
// function on each call). Empty when the count does not match.
std::vector<std::string> node_lines(const ir::Function& function) {
  std::vector<std::string> lines;
  const std::string text = ir::print(function, {.locations = false});
  size_t start = text.find('\n');
  while (start != std::string::npos && lines.size() < function.nodes().size()) {
    size_t end = text.find('\n', start + 1);
    if (end == std::string::npos) break;
    std::string_view line = std::string_view(text).substr(start + 1, end - start - 1);
    while (!line.empty() && line.front() == ' ')
      line.remove_prefix(1);
    // A constant's value can be long; the panel shows the start.
    constexpr size_t kMaxLine = 2000;
    lines.emplace_back(line.size() > kMaxLine ? std::string(line.substr(0, kMaxLine)) + " ..."
                                              : std::string(line));
    start = end;
  }
  if (lines.size() != function.nodes().size()) lines.clear();
  return lines;
}

// The names a node line defines: "%3" of "%3 = matmul(...)", "%4, %5" of a split.
std::string result_names(const std::string& line) {
  size_t eq = line.find(" = ");
  return eq == std::string::npos ? "" : line.substr(0, eq);
}

// {"n3": {"op": ..., "name": "%3", "ir": ..., ...}, ...} for the nodes drawn one by one.
std::string nodes_json(const ir::Function& function, const ir::DotLayout& layout) {
  std::vector<std::string> lines = node_lines(function);
  std::string out = "{";
  bool first = true;
  for (size_t i = 0; i < layout.nodes.size(); ++i) {
    const auto& [id, node] = layout.nodes[i];
    std::vector<std::string> inputs, outputs;
    for (const ir::Value* input : node->inputs())
      inputs.push_back(input == nullptr ? "?" : input->type().to_string());
    for (const ir::TensorType& type : node->output_types())
      outputs.push_back(type.to_string());
    out += fmt::format(
        "{}\n{}:{{\"op\":{},\"name\":{},\"ir\":{},\"attrs\":{},\"inputs\":{},\"outputs\":{},"
        "\"scope\":{},\"loc\":{}}}",
        first ? "" : ",", json_string(id), json_string(ir::op_name(node->op())),
        json_string(lines.empty() ? "" : result_names(lines[i])),
        json_string(lines.empty() ? "" : lines[i]), json_string(node->attrs().to_string()),
        json_list(inputs), json_list(outputs), json_string(node->scope()),
        json_string(node->loc().empty() ? "" : node->loc().to_string()));
    first = false;
  }
  return out + "}";
}

std::string clusters_json(const ir::DotLayout& layout) {
  std::string out = "[";
  for (size_t i = 0; i < layout.clusters.size(); ++i) {
    const ir::DotLayout::Cluster& c = layout.clusters[i];
    out += fmt::format("{}\n{{\"id\":{},\"label\":{},\"parent\":{},\"members\":{}}}",
                       i == 0 ? "" : ",", json_string(c.id), json_string(c.label),
                       json_string(c.parent), json_list(c.members));
  }
  return out + "]";
}

// Layouts. Graphviz lays out a graph as a whole: hiding the inside of a cluster in one layout
// leaves a hole, and drawing an opened cluster in place overlaps its neighbours. So the page
// holds one layout per state it can show (a state: the set of open clusters, each with its
// ancestors open), all made here, since a browser cannot run Graphviz. The candidates, in
// order:
//  - all collapsed and all expanded (always kept);
//  - every other state, when the cluster tree has at most kMaxCombinations of them (a model of
//    a few layers, or a few scopes of a few layers each), cheapest first; otherwise each
//    cluster open alone (with its ancestors), so that any one scope opens from the collapsed
//    view, then, if they all fit the budget below, everything open but one cluster, so that
//    any one closes from the expanded view.
// Graphviz's time grows with what it draws, so the candidates after the first two are kept
// while the nodes they draw add up to at most max(nodes of the expanded view,
// kMinExtraNodes) (a cheap state later in the list may still fit), and never past kMaxLayouts
// layouts or kMaxLayoutBytes of SVG. The page then costs about twice the time and size of the
// expanded drawing alone at most, or a small constant. A click whose exact state was not laid
// out shows the nearest one that was, and the page says so.
constexpr size_t kMaxCombinations = 32;
constexpr size_t kMinExtraNodes = 4000;
constexpr size_t kMaxLayouts = 64;
constexpr size_t kMaxLayoutBytes = size_t{32} << 20;

struct ClusterTree {
  std::vector<std::ptrdiff_t> parent;  // -1 at the top level
  std::vector<std::vector<size_t>> children;
  std::vector<size_t> roots;
  std::vector<size_t> direct;  // nodes directly inside each cluster, not in a nested one
  size_t loose = 0;            // graph nodes in no cluster (parameters and results included)
};

ClusterTree cluster_tree(const ir::DotLayout& layout, size_t boundary_nodes) {
  const size_t n = layout.clusters.size();
  ClusterTree tree{std::vector<std::ptrdiff_t>(n, -1),
                   std::vector<std::vector<size_t>>(n),
                   {},
                   std::vector<size_t>(n),
                   0};
  std::unordered_map<std::string_view, size_t> index_of;
  for (size_t i = 0; i < n; ++i) {
    index_of.emplace(layout.clusters[i].id, i);
    auto p = index_of.find(layout.clusters[i].parent);  // parents come first
    if (p != index_of.end()) tree.parent[i] = std::ptrdiff_t(p->second);
    if (tree.parent[i] < 0)
      tree.roots.push_back(i);
    else
      tree.children[size_t(tree.parent[i])].push_back(i);
    tree.direct[i] = layout.clusters[i].members.size();
  }
  size_t clustered = 0;
  for (size_t i = 0; i < n; ++i) {
    if (tree.parent[i] >= 0)
      tree.direct[size_t(tree.parent[i])] -= layout.clusters[i].members.size();
    else
      clustered += layout.clusters[i].members.size();
  }
  tree.loose = layout.nodes.size() - std::min(clustered, layout.nodes.size()) + boundary_nodes;
  return tree;
}

// The graph nodes a state draws: the nodes of open clusters and of none, one box per closed
// cluster in an open one (or at the top).
size_t drawn_nodes(const ClusterTree& tree, const std::vector<size_t>& open_list) {
  std::vector<bool> open(tree.parent.size(), false);
  for (size_t c : open_list)
    open[c] = true;
  size_t nodes = tree.loose;
  for (size_t c = 0; c < open.size(); ++c) {
    if (tree.parent[c] >= 0 && !open[size_t(tree.parent[c])]) continue;
    nodes += open[c] ? tree.direct[c] : 1;
  }
  return nodes;
}

// Every state of the forest of `roots`, unsorted. Recursion is as deep as the tree, which is
// at most kMaxCombinations when this is called.
std::vector<std::vector<size_t>> combinations(const std::vector<size_t>& roots,
                                              const std::vector<std::vector<size_t>>& children) {
  std::vector<std::vector<size_t>> out = {{}};
  for (size_t root : roots) {
    std::vector<std::vector<size_t>> choices = {{}};  // closed
    for (std::vector<size_t> inside : combinations(children[root], children)) {
      inside.push_back(root);
      choices.push_back(std::move(inside));
    }
    std::vector<std::vector<size_t>> next;
    for (const std::vector<size_t>& a : out) {
      for (const std::vector<size_t>& b : choices) {
        next.push_back(a);
        next.back().insert(next.back().end(), b.begin(), b.end());
      }
    }
    out = std::move(next);
  }
  return out;
}

// The states to lay out, in the order above (each list of open clusters ascending), and
// whether they are all the states there are.
struct States {
  std::vector<std::vector<size_t>> open;
  bool complete = true;
};

States plan_states(const ClusterTree& tree) {
  const size_t n = tree.parent.size();
  // The number of states of each subtree (closed, or open with any state of its children),
  // saturating just past the bound.
  std::vector<size_t> count(n);
  auto times = [](size_t a, size_t b) { return std::min(a * b, kMaxCombinations + 1); };
  for (size_t i = n; i-- > 0;) {
    size_t inside = 1;
    for (size_t c : tree.children[i])
      inside = times(inside, count[c]);
    count[i] = std::min(inside + 1, kMaxCombinations + 1);
  }
  size_t total = 1;
  for (size_t r : tree.roots)
    total = times(total, count[r]);

  std::vector<std::vector<size_t>> candidates;
  std::vector<size_t> everything(n);
  for (size_t i = 0; i < n; ++i)
    everything[i] = i;
  candidates.push_back({});
  candidates.push_back(everything);
  if (total <= kMaxCombinations) {
    std::vector<std::vector<size_t>> all = combinations(tree.roots, tree.children);
    for (std::vector<size_t>& open : all)
      std::sort(open.begin(), open.end());
    std::stable_sort(all.begin(), all.end(), [&](const auto& a, const auto& b) {
      return drawn_nodes(tree, a) < drawn_nodes(tree, b);
    });
    candidates.insert(candidates.end(), all.begin(), all.end());
  } else {
    // (A tree of thousands of clusters keeps at most kMaxLayouts: there is no use in listing
    // them all.)
    for (size_t i = 0; i < n && i < 4 * kMaxLayouts; ++i) {
      std::vector<size_t> open;
      for (std::ptrdiff_t c = std::ptrdiff_t(i); c >= 0; c = tree.parent[size_t(c)])
        open.push_back(size_t(c));
      std::sort(open.begin(), open.end());
      candidates.push_back(std::move(open));
    }
    // Everything but one cluster, when all of them fit in what is left of the budget (each
    // draws about as much as the expanded view): then every scope closes from there alone.
    size_t left = std::max(drawn_nodes(tree, everything), kMinExtraNodes);
    for (size_t i = 2; i < candidates.size(); ++i)
      left -= std::min(left, drawn_nodes(tree, candidates[i]));
    std::vector<std::vector<size_t>> all_but_one;
    size_t cost = 0;
    for (size_t i = 0; i < n && cost <= left; ++i) {
      std::vector<bool> inside(n, false);
      std::vector<size_t> open;
      for (size_t k = 0; k < n; ++k) {
        inside[k] = k == i || (tree.parent[k] >= 0 && inside[size_t(tree.parent[k])]);
        if (!inside[k]) open.push_back(k);
      }
      cost += drawn_nodes(tree, open);
      all_but_one.push_back(std::move(open));
    }
    if (cost <= left) candidates.insert(candidates.end(), all_but_one.begin(), all_but_one.end());
  }

  States states;
  std::set<std::vector<size_t>> seen;
  size_t budget = std::max(drawn_nodes(tree, everything), kMinExtraNodes);
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (!seen.insert(candidates[i]).second) continue;
    if (i >= 2) {
      size_t cost = drawn_nodes(tree, candidates[i]);
      if (cost > budget || states.open.size() >= kMaxLayouts) {
        states.complete = false;
        continue;
      }
      budget -= cost;
    }
    states.open.push_back(candidates[i]);
  }
  if (total > kMaxCombinations) states.complete = false;
  return states;
}

std::string indices_json(const std::vector<size_t>& indices) {
  return fmt::format("[{}]", fmt::join(indices, ","));
}

// The <svg> element alone: Graphviz's XML declaration, DOCTYPE (which names a URL) and
// comments before it are dropped.
std::string_view svg_element(std::string_view svg) {
  size_t start = svg.find("<svg");
  if (start == std::string_view::npos) return "";
  size_t end = svg.rfind("</svg>");
  return svg.substr(start,
                    end == std::string_view::npos ? std::string_view::npos : end + 6 - start);
}

}  // namespace

std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (byte < 0x20 || c == '<' || c == '>' || c == '&' || byte == 0x7f) {
      out += fmt::format("\\u{:04x}", byte);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string graph_html(const ir::Function& function, const ir::DotOptions& options,
                       const RenderSvg& render, std::string_view title) {
  ir::DotOptions all_open = options;
  all_open.collapsed.clear();
  const ir::DotLayout layout = ir::dot_layout(function, all_open);
  const size_t boundary = function.params().size() + 1 + function.updates().size();
  States states = plan_states(cluster_tree(layout, boundary));
  std::string layouts, svgs;
  size_t bytes = 0;
  for (size_t i = 0; i < states.open.size(); ++i) {
    if (i >= 2 && bytes > kMaxLayoutBytes) {
      states.open.resize(i);
      states.complete = false;
      break;
    }
    ir::DotOptions drawn = all_open;
    std::vector<bool> open(layout.clusters.size(), false);
    for (size_t c : states.open[i])
      open[c] = true;
    for (size_t c = 0; c < open.size(); ++c)
      if (!open[c]) drawn.collapsed.insert(layout.clusters[c].id);
    const std::string svg = render(ir::to_dot(function, drawn));
    bytes += svg.size();
    svgs += "<template class=\"kiln-layout\">";
    svgs += svg_element(svg);
    svgs += "</template>\n";
    layouts += fmt::format("{}{}", i == 0 ? "" : ",", indices_json(states.open[i]));
  }
  // Scopes start collapsed, as TensorBoard's graph does; kernels (after fusion) start open,
  // since how nodes are grouped into them is what that view is for.
  std::vector<size_t> initial;
  for (size_t c = 0; c < layout.clusters.size() && !options.kernel_of.empty(); ++c)
    initial.push_back(c);
  const std::string data = fmt::format(
      "{{\"title\":{},\n\"nodes\":{},\n\"clusters\":{},\n\"layouts\":[{}],\n\"initial\":{},"
      "\n\"complete\":{}}}",
      json_string(title), nodes_json(function, layout), clusters_json(layout), layouts,
      indices_json(initial), states.complete ? "true" : "false");
  std::string out = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  out += "<title>" + kiln::detail::markup_escape(title) + "</title>\n<style>";
  out += graph_page_style();
  out += "</style>\n</head>\n";
  out += "<body>\n<div id=\"bar\"><h1>" + kiln::detail::markup_escape(title) + "</h1>";
  out +=
      "<button id=\"zoom-in\" title=\"zoom in\">+</button>"
      "<button id=\"zoom-out\" title=\"zoom out\">&minus;</button>"
      "<button id=\"zoom-fit\" title=\"show the whole graph\">fit</button>"
      "<button id=\"collapse-all\">collapse all</button>"
      "<button id=\"expand-all\">expand all</button>"
      "<input id=\"search\" type=\"search\" placeholder=\"find: name, op, scope\" "
      "title=\"Enter: next match, Shift+Enter: previous, Esc: clear\">"
      "<span id=\"search-count\"></span>"
      "<span class=\"hint\">drag to pan, wheel to zoom; click a box to open it, a cluster's "
      "label to close it, a node for its details";
  if (!states.complete) {
    out += fmt::format(
        "<br>too many scopes to lay out every combination ({} layouts made): opening or "
        "closing one may close others",
        states.open.size());
  }
  out += "</span></div>\n";
  out +=
      "<div id=\"main\">\n<div id=\"view\"><noscript>This page draws the graph with "
      "JavaScript.</noscript></div>\n";
  out +=
      "<div id=\"panel\"><p>Click a node to see its op, attributes, types, scope and source "
      "line.</p></div>\n</div>\n";
  out += svgs;
  out += "<script type=\"application/json\" id=\"kiln-data\">" + data + "</script>\n";
  out += "<script>";
  out += graph_page_script();
  out += "</script>\n</body>\n</html>\n";
  return out;
}

}  // namespace kiln::tools
