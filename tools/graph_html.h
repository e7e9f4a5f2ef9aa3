// The page `kiln dump --format html` writes: one self-contained HTML file (no network, no
// external scripts or fonts) holding Graphviz SVG layouts of a function's graph, a JSON blob of
// node details and a small script. The page opens with name scopes collapsed, one box each
// (kernel clusters, after fusion, open); clicking a box opens its scope and clicking an open
// cluster's label closes it, and either shows a layout Graphviz made for the new set of open
// scopes (see graph_html.cpp for which sets are laid out). It pans (drag) and zooms (wheel,
// +/−/fit buttons), finds nodes by name, op or scope (Enter goes to the next match, opening its
// scope), and shows a clicked node's op, attributes, input and output types, scope and source
// line.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "kiln/ir/dot.h"
#include "kiln/ir/function.h"

namespace kiln::tools {

// Graphviz's SVG rendering (`dot -Tsvg`) of a DOT text; throws kiln::Error when it fails.
using RenderSvg = std::function<std::string(const std::string& dot)>;

// The HTML page for `function` drawn as to_dot(function, options) draws it with every node
// (options.expand or options.kernel_of), in several layouts made with `render`; `title` is the
// page's title. options.collapsed is ignored: the page picks what is collapsed in each layout.
std::string graph_html(const ir::Function& function, const ir::DotOptions& options,
                       const RenderSvg& render, std::string_view title);

// `text` as a JSON string literal, with '<', '>' and '&' escaped so it can sit in a <script>.
std::string json_string(std::string_view text);

}  // namespace kiln::tools
