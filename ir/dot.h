// Graphviz DOT for an ir::Function, for people to look at (`kiln dump --format dot|svg`).
//
//   std::string dot = kiln::ir::to_dot(f);                       // layers collapsed
//   std::string all = kiln::ir::to_dot(f, {.expand = true});     // every node, scopes as clusters
//
// Nodes are labelled with their op and output type (constants, drawn small, with their type only),
// edges with the tensor type they carry. Parameters are input nodes, the results one output node
// and each update an "update %var" node. A node's name scope ("sequential/dense_1") is its
// layer: collapsed (the default), every layer is one box labelled with its scope and op count;
// expanded, layers are clusters holding their nodes. Nodes whose
// scope starts with "gradients" (the backward pass autodiff appends) are drawn in another colour
// than the forward ones, and optimizer updates (scope kOptimizerScope, "optimizer/SGD") in a
// third. Given a kernel grouping (after fusion), nodes are grouped by kernel instead. The same
// function gives the same text.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kiln/ir/function.h"

namespace kiln::ir {

// The name scope under which every optimizer puts its update nodes ("optimizer/<its name>"),
// which the dump draws in the optimizer colour.
inline constexpr std::string_view kOptimizerScope = "optimizer";

struct DotOptions {
  // Show every node, with name scopes as clusters, instead of one box per scope.
  bool expand = false;
  // Optional: the kernel each node runs in (after the pass pipeline). When given, nodes are
  // drawn one by one and grouped by kernel (a dashed cluster and one fill colour for each
  // kernel of several nodes) instead of by scope, whatever `expand` says. Nodes not in the map
  // (constants) stand alone.
  std::unordered_map<const Node*, int> kernel_of = {};
  // Clusters drawn as one box each (id "box_" + the cluster's id) standing for every node and
  // cluster inside, when nodes are drawn one by one (`expand` or `kernel_of`); named by the ids
  // dot_layout gives clusters ("cluster_3", "cluster_kernel_2"), which do not depend on this
  // set. Edges into and out of a box are drawn once per pair of endpoints.
  std::set<std::string> collapsed = {};
  // The graph's title (default: the function's name).
  std::string title = "";
};

// The function as a DOT digraph (valid input for Graphviz's `dot`).
std::string to_dot(const Function& function, const DotOptions& options = {});

// Where to_dot(function, options) draws each IR node and which nodes each cluster holds, for
// tools that add to the picture (`kiln dump --format html`).
struct DotLayout {
  struct Cluster {
    std::string id;                    // the DOT subgraph name, "cluster_3" or "cluster_kernel_2"
    std::string label;                 // the whole scope path ("mlp/hidden") or "kernel 2"
    std::string parent;                // the enclosing cluster's id; empty at the top level
    std::vector<std::string> members;  // DOT ids of the nodes inside, nested clusters included
  };
  // Each IR node, in function order, with the DOT node drawing it (a scope box or a collapsed
  // cluster's box draws several).
  std::vector<std::pair<std::string, const Node*>> nodes;
  // The clusters of scopes or kernels drawn (not the legend, nor collapsed ones), parents
  // before children.
  std::vector<Cluster> clusters;
};
DotLayout dot_layout(const Function& function, const DotOptions& options = {});

}  // namespace kiln::ir
