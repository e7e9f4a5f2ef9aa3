// Graphviz DOT output (ir/dot.h): labels, one box per scope when collapsed, nested clusters when
// expanded, collapsed clusters as boxes and the edges into them, colours for gradients and
// optimizer updates, kernel clusters, escaping, determinism, and well-formedness (a small DOT
// reader here; Graphviz itself when `dot` is installed).
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kiln/ir/dot.h"
#include "kiln/ir/parser.h"
#include "kiln/ir/printer.h"
#include "process_test_util.h"

using namespace kiln;
using namespace kiln::ir;
using Catch::Contains;

namespace {

using AttrMap = std::map<std::string, std::string>;

// What the reader below finds in a DOT text. Strings are unescaped (`\"` → `"`, `\\` → `\`,
// `\n` → newline).
struct DotGraph {
  struct Decl {
    AttrMap attrs;
    int cluster = -1;  // innermost enclosing subgraph (index into clusters), -1 at top level
  };
  struct Edge {
    std::string from, to;
    AttrMap attrs;
  };
  struct Cluster {
    std::string id;
    AttrMap attrs;
    int parent = -1;
  };
  std::string name;
  std::map<std::string, Decl> nodes;
  std::vector<std::string> node_order;
  std::vector<Edge> edges;
  std::vector<Cluster> clusters;
  AttrMap graph_attrs;

  const AttrMap& node(const std::string& id) const {
    auto it = nodes.find(id);
    if (it == nodes.end()) FAIL("no node " << id);
    return it->second.attrs;
  }
  // Ids of the declared nodes whose label is `label`.
  std::vector<std::string> with_label(const std::string& label) const {
    std::vector<std::string> ids;
    for (const std::string& id : node_order) {
      auto it = nodes.at(id).attrs.find("label");
      if (it != nodes.at(id).attrs.end() && it->second == label) ids.push_back(id);
    }
    return ids;
  }
  // The one node labelled `label`.
  std::string id_of(const std::string& label) const {
    std::vector<std::string> ids = with_label(label);
    INFO("label: " << label);
    REQUIRE(ids.size() == 1);
    return ids[0];
  }
  // Indices of the clusters labelled `label`.
  std::vector<int> clusters_labelled(const std::string& label) const {
    std::vector<int> found;
    for (size_t i = 0; i < clusters.size(); ++i) {
      auto it = clusters[i].attrs.find("label");
      if (it != clusters[i].attrs.end() && it->second == label)
        found.push_back(static_cast<int>(i));
    }
    return found;
  }
  const Edge* edge(const std::string& from, const std::string& to) const {
    for (const Edge& e : edges) {
      if (e.from == from && e.to == to) return &e;
    }
    return nullptr;
  }
  // How many edges go from `from` to `to`.
  size_t edges_between(const std::string& from, const std::string& to) const {
    size_t n = 0;
    for (const Edge& e : edges)
      n += e.from == from && e.to == to;
    return n;
  }
};

struct Token {
  enum Kind { quoted, word, symbol } kind;
  std::string text;
};

std::vector<Token> tokenize(const std::string& dot) {
  std::vector<Token> tokens;
  size_t i = 0;
  auto is_word = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '#' ||
           c == '-';
  };
  while (i < dot.size()) {
    char c = dot[i];
    if (c == ' ' || c == '\n' || c == '\t') {
      ++i;
    } else if (dot.compare(i, 2, "//") == 0) {
      i = dot.find('\n', i);
      if (i == std::string::npos) i = dot.size();
    } else if (c == '"') {
      std::string text;
      for (++i;; ++i) {
        REQUIRE(i < dot.size());  // an unterminated string
        if (dot[i] == '"') break;
        REQUIRE(dot[i] != '\n');  // raw newlines are written as \n
        if (dot[i] == '\\') {
          REQUIRE(i + 1 < dot.size());
          char next = dot[++i];
          if (next == 'n') {
            text += '\n';
          } else if (next == '"' || next == '\\') {
            text += next;
          } else {
            FAIL("escape \\" << next << " in a string");
          }
        } else {
          text += dot[i];
        }
      }
      ++i;
      tokens.push_back({Token::quoted, text});
    } else if (dot.compare(i, 2, "->") == 0) {
      tokens.push_back({Token::symbol, "->"});
      i += 2;
    } else if (std::string_view("{}[];=,").find(c) != std::string_view::npos) {
      tokens.push_back({Token::symbol, std::string(1, c)});
      ++i;
    } else if (is_word(c)) {
      size_t start = i;
      while (i < dot.size() && is_word(dot[i]))
        ++i;
      tokens.push_back({Token::word, dot.substr(start, i - start)});
    } else {
      FAIL("unexpected character '" << c << "' at offset " << i);
    }
  }
  return tokens;
}

// Reads the subset of DOT that to_dot writes and checks that it is well formed: one digraph,
// balanced braces and brackets, every id quoted, every edge endpoint declared, no id declared
// twice.
DotGraph read_dot(const std::string& dot) {
  std::vector<Token> t = tokenize(dot);
  size_t i = 0;
  auto at = [&](size_t k) -> const Token& {
    REQUIRE(k < t.size());
    return t[k];
  };
  auto is = [&](size_t k, const char* text) {
    return k < t.size() && t[k].kind != Token::quoted && t[k].text == text;
  };
  auto expect = [&](const char* text) {
    INFO("token " << i << " should be " << text);
    REQUIRE(is(i, text));
    ++i;
  };
  auto value = [&]() {
    const Token& v = at(i++);
    REQUIRE(v.kind != Token::symbol);
    return v.text;
  };
  auto attr_list = [&]() {
    AttrMap attrs;
    expect("[");
    while (!is(i, "]")) {
      REQUIRE(at(i).kind == Token::word);
      std::string key = at(i++).text;
      expect("=");
      attrs[key] = value();
      if (is(i, ",")) ++i;
    }
    ++i;
    return attrs;
  };

  DotGraph g;
  expect("digraph");
  REQUIRE(at(i).kind == Token::quoted);
  g.name = at(i++).text;
  expect("{");
  std::vector<int> open = {-1};  // subgraphs being read; -1 is the graph itself
  std::set<std::string> subgraph_ids;
  while (!open.empty()) {
    const Token& tok = at(i);
    if (is(i, "}")) {
      open.pop_back();
      ++i;
    } else if (is(i, ";")) {
      ++i;
    } else if (is(i, "subgraph")) {
      ++i;
      REQUIRE(at(i).kind == Token::quoted);
      REQUIRE(subgraph_ids.insert(at(i).text).second);
      g.clusters.push_back({at(i).text, {}, open.back()});
      open.push_back(static_cast<int>(g.clusters.size()) - 1);
      ++i;
      expect("{");
    } else if (is(i, "graph") || is(i, "node") || is(i, "edge")) {
      bool graph = is(i, "graph");
      ++i;
      AttrMap attrs = attr_list();
      if (graph && open.back() == -1) {
        for (auto& [k, v] : attrs)
          g.graph_attrs[k] = v;
      }
      expect(";");
    } else if (tok.kind == Token::word) {  // key=value; inside a subgraph
      std::string key = tok.text;
      ++i;
      expect("=");
      REQUIRE(open.back() >= 0);
      g.clusters[open.back()].attrs[key] = value();
      expect(";");
    } else if (tok.kind == Token::quoted && is(i + 1, "->")) {
      REQUIRE(at(i + 2).kind == Token::quoted);
      DotGraph::Edge e{tok.text, at(i + 2).text, {}};
      i += 3;
      if (is(i, "[")) e.attrs = attr_list();
      expect(";");
      g.edges.push_back(e);
    } else if (tok.kind == Token::quoted) {
      std::string id = tok.text;
      ++i;
      INFO("node " << id);
      REQUIRE(g.nodes.count(id) == 0);
      DotGraph::Decl decl{is(i, "[") ? attr_list() : AttrMap{}, open.back()};
      expect(";");
      g.nodes.emplace(id, decl);
      g.node_order.push_back(id);
    } else {
      FAIL("unexpected token '" << tok.text << "' at " << i);
    }
  }
  CHECK(i == t.size());
  for (const DotGraph::Edge& e : g.edges) {
    INFO("edge " << e.from << " -> " << e.to);
    CHECK(g.nodes.count(e.from) == 1);
    CHECK(g.nodes.count(e.to) == 1);
  }
  return g;
}

// Graphviz's own verdict, where it is installed.
void check_with_graphviz(const std::string& dot) {
  static const bool have_dot = kiln::testing::have("dot");
  if (!have_dot) {
    static bool warned = false;
    if (!std::exchange(warned, true))
      WARN("Graphviz `dot` is not on PATH; skipping the checks that it renders the output");
    return;
  }
  auto dir = std::filesystem::temp_directory_path();
  std::string stem = fmt::format("kiln_ir_dot_test_{}", std::hash<std::string>{}(dot));
  std::string in = (dir / (stem + ".dot")).string();
  std::string out = (dir / (stem + ".svg")).string();
  std::ofstream(in) << dot;
  CHECK(kiln::testing::run({"dot", "-Tsvg", in, "-o", out}).status == 0);
  CHECK(std::filesystem::file_size(out) > 0);
  std::filesystem::remove(in);
  std::filesystem::remove(out);
}

// A dense layer, its gradient and an SGD update of the kernel.
const char* const kTrainStep =
    R"(func @train_step(%x: f32[4,8], %dense/kernel: f32[8,3], %dense/bias: f32[3]) -> f32[4,3] {
  %0 = matmul(%x, %dense/kernel) : f32[4,3]  scope "dense"
  %1 = add(%0, %dense/bias) : f32[4,3]  scope "dense"
  %2 = relu(%1) : f32[4,3]  scope "dense"
  %3 = constant() {value = dense<f32[]: 2.0>} : f32[]
  %4 = mul(%2, %3) : f32[4,3]
  %5 = transpose(%x) {perm = [1, 0]} : f32[8,4]  scope "gradients/dense"
  %6 = matmul(%5, %4) : f32[8,3]  scope "gradients/dense"
  %7 = mul(%6, %3) : f32[8,3]  scope "optimizer/SGD"
  %8 = sub(%dense/kernel, %7) : f32[8,3]  scope "optimizer/SGD"
  return %4
  update %dense/kernel = %8
}
)";

// Nested scopes, a multi-output node and a value used twice.
const char* const kNested = R"(func @nested(%x: f32[4,6], %w: f32[6,6]) -> (f32[4,3], f32[4,3]) {
  %0 = matmul(%x, %w) : f32[4,6]  scope "model/dense_1"
  %1 = relu(%0) : f32[4,6]  scope "model/dense_1"
  %2 = mul(%1, %1) : f32[4,6]  scope "model/dense_2"
  %3 = matmul(%2, %w) : f32[4,6]  scope "model/dense_2"
  %4, %5 = split(%3) {axis = 1, sizes = [3, 3]} : f32[4,3], f32[4,3]  scope "model"
  %6 = neg(%4) : f32[4,3]  scope "gradients/model/dense_2"
  %7 = matmul(%2, %w) : f32[4,6]  scope "gradients/model/dense_2"
  return %6, %5
}
)";

}  // namespace

TEST_CASE("to_dot: a small function, exactly", "[ir][dot]") {
  Function f = parse(R"(func @tiny(%x: f32[2,3]) -> f32[2,3] {
  %0 = constant() {value = dense<f32[]: 1.0>} : f32[]
  %1 = add(%x, %0) : f32[2,3]
  %2 = relu(%1) : f32[2,3]  scope "act"
  return %2
}
)");
  std::string dot = to_dot(f);
  CHECK(dot == R"(digraph "tiny" {
  // Fill colours: forward #dae8fc, gradients (scope "gradients...") #f8cecc, optimizer (scope "optimizer/...") #d5e8d4, constants #eeeeee.
  graph [fontname="Helvetica", fontsize=10];
  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10, fillcolor="#dae8fc"];
  edge [fontname="Helvetica", fontsize=8, color="#555555"];
  "p0" [label="%x\nf32[2,3]", shape=ellipse, fillcolor="#ffffff"];
  "n0" [label="f32[]", shape=box, style=filled, fillcolor="#eeeeee", fontsize=8, height=0.2, width=0.3, margin="0.04,0.02"];
  "n1" [label="add\nf32[2,3]", fillcolor="#dae8fc"];
  "s0" [label="act\n1 op", shape=box3d, style=filled, fillcolor="#dae8fc"];
  "out" [label="return\nf32[2,3]", shape=ellipse, peripheries=2, fillcolor="#ffffff"];
  "p0" -> "n1" [label="f32[2,3]"];
  "n0" -> "n1" [label="f32[]"];
  "n1" -> "s0" [label="f32[2,3]"];
  "s0" -> "out" [label="f32[2,3]"];
  graph [label="tiny", labelloc=t, fontsize=14];
}
)");
  read_dot(dot);
  check_with_graphviz(dot);
}

TEST_CASE("to_dot collapsed: one box per scope, deduplicated edges", "[ir][dot]") {
  Function f = parse(kTrainStep);
  std::string dot = to_dot(f);
  INFO(dot);
  DotGraph g = read_dot(dot);
  CHECK(g.name == "train_step");
  CHECK(g.graph_attrs.at("label") == "train_step");

  // Parameters (variables included) with their types; the result and the update.
  CHECK(g.node(g.id_of("%x\nf32[4,8]")).at("shape") == "ellipse");
  std::string kernel = g.id_of("%dense/kernel\nf32[8,3]");
  std::string bias = g.id_of("%dense/bias\nf32[3]");
  std::string out = g.id_of("return\nf32[4,3]");
  std::string update = g.id_of("update %dense/kernel\nf32[8,3]");

  // One box per scope with its op count; unscoped nodes stay nodes; no op of a box is drawn.
  std::string dense = g.id_of("dense\n3 ops");
  std::string grads = g.id_of("gradients/dense\n2 ops");
  std::string sgd = g.id_of("optimizer/SGD\n2 ops");
  std::string mul = g.id_of("mul\nf32[4,3]");
  std::string constant = g.id_of("f32[]");
  CHECK(g.node(constant).at("fontsize") == "8");
  CHECK(g.with_label("matmul\nf32[4,3]").empty());
  CHECK(g.with_label("relu\nf32[4,3]").empty());
  // 3 params, 3 boxes, mul, the constant, return, the update and a legend of 3.
  CHECK(g.nodes.size() == 13);

  // Edges between boxes once each, labelled with the type; none inside a box.
  std::set<std::pair<std::string, std::string>> pairs;
  for (const auto& e : g.edges) {
    INFO(e.from << " -> " << e.to);
    CHECK(pairs.insert({e.from, e.to}).second);
    CHECK(e.from != e.to);
    CHECK(!e.attrs.at("label").empty());
  }
  REQUIRE(g.edge(dense, mul) != nullptr);
  CHECK(g.edge(dense, mul)->attrs.at("label") == "f32[4,3]");
  CHECK(g.edge(kernel, dense) != nullptr);
  CHECK(g.edge(bias, dense)->attrs.at("label") == "f32[3]");
  CHECK(g.edge(constant, sgd)->attrs.at("label") == "f32[]");
  CHECK(g.edge(mul, grads) != nullptr);
  CHECK(g.edge(grads, sgd)->attrs.at("label") == "f32[8,3]");
  CHECK(g.edge(kernel, sgd) != nullptr);
  CHECK(g.edge(sgd, update)->attrs.at("label") == "f32[8,3]");
  CHECK(g.edge(mul, out)->attrs.at("label") == "f32[4,3]");
  CHECK(g.edges.size() == 12);

  // Forward, gradient and optimizer boxes in three colours, with a legend saying which.
  std::string forward_fill = g.node(dense).at("fillcolor");
  CHECK(g.node(mul).at("fillcolor") == forward_fill);
  CHECK(g.node(grads).at("fillcolor") != forward_fill);
  CHECK(g.node(sgd).at("fillcolor") != forward_fill);
  CHECK(g.node(sgd).at("fillcolor") != g.node(grads).at("fillcolor"));
  CHECK(g.node(g.id_of("gradients")).at("fillcolor") == g.node(grads).at("fillcolor"));
  CHECK(g.node(g.id_of("optimizer")).at("fillcolor") == g.node(sgd).at("fillcolor"));
  CHECK(g.node(g.id_of("forward")).at("fillcolor") == forward_fill);
  REQUIRE(g.clusters.size() == 1);
  CHECK(g.clusters[0].attrs.at("label") == "legend");
  check_with_graphviz(dot);
}

TEST_CASE("to_dot draws collapsed clusters as boxes and keeps every other id", "[ir][dot]") {
  // add takes two values (matmul's and relu's) from model/dense, mul one (relu's).
  Function f = parse(R"(func @f(%x: f32[4,8], %w: f32[8,3]) -> f32[4,3] {
  %0 = matmul(%x, %w) : f32[4,3]  scope "model/dense"
  %1 = relu(%0) : f32[4,3]  scope "model/dense"
  %2 = add(%1, %0) : f32[4,3]  scope "model/out"
  %3 = mul(%2, %1) : f32[4,3]  scope "model/out"
  %4 = exp(%3) : f32[4,3]
  return %4
}
)");
  DotLayout all = dot_layout(f, {.expand = true});
  REQUIRE(all.clusters.size() == 3);
  CHECK(all.clusters[1].label == "model/dense");
  CHECK(all.clusters[2].label == "model/out");

  // Nothing collapsed: one edge per value and consumer, so two from model/dense into add.
  DotGraph open = read_dot(to_dot(f, {.expand = true}));
  CHECK(open.edges_between("n0", "n2") == 1);
  CHECK(open.edges_between("n1", "n2") == 1);
  CHECK(open.edges_between("n1", "n3") == 1);
  CHECK(open.edges.size() == 9);

  // model/dense collapsed: its two nodes become one box, model/out keeps its id.
  DotOptions dense_closed{.expand = true, .collapsed = {all.clusters[1].id}};
  DotLayout layout = dot_layout(f, dense_closed);
  const std::string box = "box_" + all.clusters[1].id;
  CHECK(layout.nodes[0].first == box);
  CHECK(layout.nodes[1].first == box);
  CHECK(layout.nodes[2].first == "n2");
  REQUIRE(layout.clusters.size() == 2);
  CHECK(layout.clusters[0].id == all.clusters[0].id);
  CHECK(layout.clusters[0].members == std::vector<std::string>{box, "n2", "n3"});
  CHECK(layout.clusters[1].id == all.clusters[2].id);
  std::string dot = to_dot(f, dense_closed);
  INFO(dot);
  CHECK_THAT(dot, Contains("\"" + box + "\" [label=\"model/dense\\n2 ops\", shape=box3d"));
  CHECK_THAT(dot, !Contains("subgraph \"" + all.clusters[1].id + "\"") &&
                      Contains("subgraph \"" + all.clusters[2].id + "\""));
  DotGraph g = read_dot(dot);
  // One edge per pair of endpoints: the two values into add are one edge from the box, relu's
  // into mul another; none inside the box; each parameter into the box once.
  CHECK(g.edges_between(box, "n2") == 1);
  CHECK(g.edges_between(box, "n3") == 1);
  CHECK(g.edges_between(box, box) == 0);
  CHECK(g.edges_between("p0", box) == 1);
  CHECK(g.edges_between("p1", box) == 1);
  CHECK(g.edge(box, "n2")->attrs.at("label") == "f32[4,3]");
  CHECK(g.edges_between("n2", "n3") == 1);
  CHECK(g.edges.size() == 7);
  check_with_graphviz(dot);

  // By default each scope is a box, with the same rule: one edge from model/dense to model/out
  // for the three values it sends there.
  DotGraph scopes = read_dot(to_dot(f));
  std::string dense = scopes.id_of("model/dense\n2 ops");
  std::string out = scopes.id_of("model/out\n2 ops");
  CHECK(scopes.edges_between(dense, out) == 1);
  CHECK(scopes.edges.size() == 5);  // 2 params, dense -> out, out -> exp, exp -> return

  // The outer cluster collapsed holds everything in it, nested clusters included.
  DotLayout outer = dot_layout(f, {.expand = true, .collapsed = {all.clusters[0].id}});
  CHECK(outer.clusters.empty());
  for (size_t i = 0; i < 4; ++i)
    CHECK(outer.nodes[i].first == "box_" + all.clusters[0].id);
  CHECK(outer.nodes[4].first == "n4");
  CHECK_THAT(to_dot(f, {.expand = true, .collapsed = {all.clusters[0].id}}),
             Contains("label=\"model\\n4 ops\""));

  // Kernels collapse the same way.
  DotOptions kernels;
  kernels.kernel_of = {{f.nodes()[2].get(), 0}, {f.nodes()[3].get(), 0}, {f.nodes()[4].get(), 0}};
  kernels.collapsed = {"cluster_kernel_0"};
  DotLayout fused = dot_layout(f, kernels);
  CHECK(fused.clusters.empty());
  CHECK(fused.nodes[2].first == "box_cluster_kernel_0");
  CHECK_THAT(to_dot(f, kernels), Contains("label=\"kernel 0\\n3 ops\""));
  // Into the kernel's box one edge from each node outside it, though relu's value feeds two of
  // the box's nodes.
  DotGraph k = read_dot(to_dot(f, kernels));
  CHECK(k.edges_between("n0", "box_cluster_kernel_0") == 1);
  CHECK(k.edges_between("n1", "box_cluster_kernel_0") == 1);
}

TEST_CASE("to_dot: nodes outside boxes get one edge per value, collapsed or not", "[ir][dot]") {
  // Unscoped nodes are not boxes: the two halves of the split are two edges into add.
  Function f = parse(R"(func @f(%x: f32[4,6]) -> f32[4,3] {
  %0, %1 = split(%x) {axis = 1, sizes = [3, 3]} : f32[4,3], f32[4,3]
  %2 = add(%0, %1) : f32[4,3]
  %3 = neg(%2) : f32[4,3]  scope "head"
  %4 = exp(%3) : f32[4,3]  scope "head"
  return %4
}
)");
  for (bool expand : {false, true}) {
    INFO("expand " << expand);
    DotGraph g = read_dot(to_dot(f, {.expand = expand}));
    CHECK(g.edges_between("n0", "n1") == 2);
  }
  DotGraph g = read_dot(to_dot(f));
  CHECK(g.edges_between("n1", "s0") == 1);
  CHECK(g.edges_between("s0", "out") == 1);
  CHECK(g.edges.size() == 5);  // p0 -> split, split -> add twice, add -> head, head -> return
}

TEST_CASE("to_dot: every optimizer's scope gets the optimizer colour", "[ir][dot]") {
  // Whatever the optimizer's name: the colour comes from the "optimizer" scope alone.
  for (const char* scope :
       {"optimizer", "optimizer/SGD", "optimizer/sgd/momentum", "optimizer/my_own_optimizer"}) {
    Function f = parse(fmt::format(R"(func @f(%a: f32[2]) -> f32[2] {{
  %0 = neg(%a) : f32[2]
  %1 = neg(%0) : f32[2]  scope "{}"
  %2 = neg(%1) : f32[2]  scope "adamant"
  return %2
}})",
                                   scope));
    DotGraph g = read_dot(to_dot(f, {.expand = true}));
    INFO(scope);
    std::vector<std::string> negs = g.with_label("neg\nf32[2]");
    REQUIRE(negs.size() == 3);
    CHECK(g.node(negs[0]).at("fillcolor") == g.node(negs[2]).at("fillcolor"));
    CHECK(g.node(negs[1]).at("fillcolor") != g.node(negs[0]).at("fillcolor"));
    CHECK(g.node(negs[1]).at("fillcolor") == g.node(g.id_of("optimizer")).at("fillcolor"));
  }
  // An optimizer's name alone, or "optimizer" below the top, is an ordinary scope.
  for (const char* scope : {"SGD", "adam", "optimizers", "dense/optimizer"}) {
    Function f = parse(fmt::format(R"(func @f(%a: f32[2]) -> f32[2] {{
  %0 = neg(%a) : f32[2]
  %1 = neg(%0) : f32[2]  scope "{}"
  return %1
}})",
                                   scope));
    DotGraph g = read_dot(to_dot(f, {.expand = true}));
    INFO(scope);
    std::vector<std::string> negs = g.with_label("neg\nf32[2]");
    REQUIRE(negs.size() == 2);
    CHECK(g.node(negs[0]).at("fillcolor") == g.node(negs[1]).at("fillcolor"));
  }
}

TEST_CASE("to_dot expanded: every node, scopes as nested clusters", "[ir][dot]") {
  Function f = parse(kNested);
  std::string dot = to_dot(f, {.expand = true});
  INFO(dot);
  DotGraph g = read_dot(dot);
  for (const auto& c : g.clusters)
    CHECK(c.id.starts_with("cluster_"));

  // model ⊃ dense_1, dense_2; gradients ⊃ model ⊃ dense_2.
  std::vector<int> models = g.clusters_labelled("model");
  REQUIRE(models.size() == 2);
  int model = g.clusters[models[0]].parent == -1 ? models[0] : models[1];
  int grad_model = models[0] + models[1] - model;
  std::vector<int> gradients = g.clusters_labelled("gradients");
  REQUIRE(gradients.size() == 1);
  CHECK(g.clusters[gradients[0]].parent == -1);
  CHECK(g.clusters[model].parent == -1);
  CHECK(g.clusters[grad_model].parent == gradients[0]);
  std::vector<int> dense_1 = g.clusters_labelled("dense_1");
  REQUIRE(dense_1.size() == 1);
  CHECK(g.clusters[dense_1[0]].parent == model);
  std::vector<int> dense_2 = g.clusters_labelled("dense_2");
  REQUIRE(dense_2.size() == 2);
  CHECK(g.clusters[dense_2[0]].parent == model);
  CHECK(g.clusters[dense_2[1]].parent == grad_model);

  // Each node in the cluster of its whole scope.
  CHECK(g.nodes.at(g.id_of("relu\nf32[4,6]")).cluster == dense_1[0]);
  CHECK(g.nodes.at(g.id_of("mul\nf32[4,6]")).cluster == dense_2[0]);
  CHECK(g.nodes.at(g.id_of("split\nf32[4,3], f32[4,3]")).cluster == model);
  CHECK(g.nodes.at(g.id_of("neg\nf32[4,3]")).cluster == dense_2[1]);
  std::vector<std::string> matmuls = g.with_label("matmul\nf32[4,6]");
  REQUIRE(matmuls.size() == 3);
  CHECK(g.nodes.at(matmuls[0]).cluster == dense_1[0]);
  CHECK(g.nodes.at(matmuls[1]).cluster == dense_2[0]);
  CHECK(g.nodes.at(matmuls[2]).cluster == dense_2[1]);
  // 2 params, 7 nodes, return, a legend of 2.
  CHECK(g.nodes.size() == 12);

  // Gradient nodes in another colour than forward ones.
  CHECK(g.node(matmuls[2]).at("fillcolor") != g.node(matmuls[0]).at("fillcolor"));
  CHECK(g.node(matmuls[1]).at("fillcolor") == g.node(matmuls[0]).at("fillcolor"));

  // One edge per value and consumer (mul(%1, %1) draws one), each split result its own type.
  std::string relu = g.id_of("relu\nf32[4,6]");
  std::string mul = g.id_of("mul\nf32[4,6]");
  std::string split = g.id_of("split\nf32[4,3], f32[4,3]");
  int relu_to_mul = 0;
  for (const auto& e : g.edges)
    relu_to_mul += e.from == relu && e.to == mul;
  CHECK(relu_to_mul == 1);
  CHECK(g.edge(split, g.id_of("neg\nf32[4,3]"))->attrs.at("label") == "f32[4,3]");
  CHECK(g.edge(split, "out") != nullptr);
  // matmul×3 (2 each), relu, mul, split, neg: 10; two results: 12.
  CHECK(g.edges.size() == 12);
  check_with_graphviz(dot);
}

TEST_CASE("to_dot with kernels: dashed clusters, one colour each", "[ir][dot]") {
  Function f = parse(kTrainStep);
  auto node = [&](size_t i) { return f.nodes()[i].get(); };
  DotOptions options;
  options.kernel_of = {{node(0), 0}, {node(1), 0}, {node(2), 0}, {node(4), 1},
                       {node(5), 2}, {node(6), 2}, {node(7), 3}, {node(8), 3}};
  options.expand = true;  // ignored: kernels decide the grouping
  std::string dot = to_dot(f, options);
  INFO(dot);
  DotGraph g = read_dot(dot);

  for (int kernel : {0, 2, 3}) {
    std::vector<int> found = g.clusters_labelled(fmt::format("kernel {}", kernel));
    REQUIRE(found.size() == 1);
    const DotGraph::Cluster& c = g.clusters[found[0]];
    CHECK(c.id.starts_with("cluster_"));
    CHECK(c.attrs.at("style") == "dashed,filled");
    CHECK(c.parent == -1);
  }
  CHECK(g.clusters_labelled("kernel 1").empty());  // a kernel of one node stands alone
  std::set<std::string> fills;
  for (const char* kernel : {"kernel 0", "kernel 2", "kernel 3"})
    fills.insert(g.clusters[g.clusters_labelled(kernel)[0]].attrs.at("fillcolor"));
  CHECK(fills.size() == 3);

  int kernel0 = g.clusters_labelled("kernel 0")[0];
  CHECK(g.nodes.at(g.id_of("matmul\nf32[4,3]")).cluster == kernel0);
  CHECK(g.nodes.at(g.id_of("add\nf32[4,3]")).cluster == kernel0);
  CHECK(g.nodes.at(g.id_of("relu\nf32[4,3]")).cluster == kernel0);
  CHECK(g.nodes.at(g.id_of("mul\nf32[4,3]")).cluster == -1);
  CHECK(g.nodes.at(g.id_of("f32[]")).cluster == -1);
  CHECK(g.nodes.at(g.id_of("sub\nf32[8,3]")).cluster == g.clusters_labelled("kernel 3")[0]);
  CHECK(g.nodes.at(g.id_of("transpose\nf32[8,4]")).cluster == g.clusters_labelled("kernel 2")[0]);
  // Every node drawn: 3 params, 9 nodes, return, update, legend of 3.
  CHECK(g.nodes.size() == 17);
  check_with_graphviz(dot);
}

TEST_CASE("to_dot escapes scopes, names and titles", "[ir][dot]") {
  Function f = parse(R"(func @"odd \"fn\"" (%"a \"b\"": f32[2]) -> f32[2] {
  %0 = neg(%"a \"b\"") : f32[2]  scope "my \"odd\" layer\\"
  %1 = neg(%0) : f32[2]  scope "my \"odd\" layer\\/inner"
  return %1
}
)");
  // Characters the parser would not take: a newline, record syntax, a control character and
  // bytes that are not UTF-8.
  const std::string weird = "line1\nline2 <a>{b}|c\t\xff\xc3(é)";
  f.append_unchecked(Op::neg, {f.nodes()[1]->output()}, {}, {{DType::f32, Shape({2})}}, weird);

  for (bool expand : {false, true}) {
    std::string dot = to_dot(f, {.expand = expand, .title = "a \"title\"\\"});
    INFO(dot);
    CHECK(dot.find(R"(my \"odd\" layer\\)") != std::string::npos);
    DotGraph g = read_dot(dot);
    CHECK(g.name == "odd \"fn\"");
    CHECK(g.graph_attrs.at("label") == "a \"title\"\\");
    CHECK(g.with_label("%\"a \\\"b\\\"\"\nf32[2]").size() == 1);
    if (expand) {
      CHECK(g.clusters_labelled("my \"odd\" layer\\").size() == 1);
      CHECK(g.clusters_labelled("inner").size() == 1);
      CHECK(g.clusters_labelled("line1\nline2 <a>{b}|c ?"
                                "?(é)")
                .size() == 1);
    } else {
      CHECK(g.with_label("my \"odd\" layer\\\n1 op").size() == 1);
      CHECK(g.with_label("my \"odd\" layer\\/inner\n1 op").size() == 1);
      CHECK(g.with_label("line1\nline2 <a>{b}|c ?"
                         "?(é)\n1 op")
                .size() == 1);
    }
    check_with_graphviz(dot);
  }
}

TEST_CASE("to_dot is deterministic", "[ir][dot]") {
  Function f = parse(kNested);
  Function copy = parse(print(f));
  for (bool expand : {false, true}) {
    CHECK(to_dot(f, {.expand = expand}) == to_dot(f, {.expand = expand}));
    CHECK(to_dot(f, {.expand = expand}) == to_dot(copy, {.expand = expand}));
  }
  DotOptions a, b;
  for (size_t i = 0; i < f.nodes().size(); ++i)
    a.kernel_of[f.nodes()[i].get()] = int(i % 3);
  for (size_t i = f.nodes().size(); i-- > 0;)
    b.kernel_of[f.nodes()[i].get()] = int(i % 3);
  CHECK(to_dot(f, a) == to_dot(f, b));
}

TEST_CASE("to_dot: titles, empty functions and deep scopes", "[ir][dot]") {
  Function empty("nothing");
  DotGraph g = read_dot(to_dot(empty));
  CHECK(g.graph_attrs.at("label") == "nothing");
  CHECK(g.nodes.empty());
  CHECK(g.edges.empty());
  CHECK(read_dot(to_dot(empty, {.title = "step 3"})).graph_attrs.at("label") == "step 3");
  check_with_graphviz(to_dot(empty));

  // A scope 3000 levels deep is 3000 nested clusters, written without recursion.
  Function deep("deep");
  Value* x = deep.add_param({DType::f32, Shape({2})}, "x");
  std::string scope = "a";
  for (int i = 0; i < 2999; ++i)
    scope += "/a";
  Value* y = deep.append_unchecked(Op::neg, {x}, {}, {{DType::f32, Shape({2})}}, scope)->output();
  deep.set_outputs({y});
  DotGraph d = read_dot(to_dot(deep, {.expand = true}));
  REQUIRE(d.clusters.size() == 3000);
  CHECK(d.clusters.back().parent == 2998);
  CHECK(d.nodes.at(d.id_of("neg\nf32[2]")).cluster == 2999);
  CHECK(read_dot(to_dot(deep)).with_label(scope + "\n1 op").size() == 1);
}
