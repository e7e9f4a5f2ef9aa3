// The page `kiln dump --format html` writes: one self-contained HTML file (no network, no
// external scripts or fonts) holding Graphviz's SVG of a function's expanded graph, a JSON blob
// of node details and a small script. The page pans (drag) and zooms (wheel, +/−/fit buttons),
// collapses and expands a name-scope or kernel cluster when its label or box is clicked, and
// shows a clicked node's op, attributes, input and output types, scope and source line.
#pragma once

#include <string>
#include <string_view>

#include "kiln/ir/dot.h"
#include "kiln/ir/function.h"

namespace kiln::tools {

// The HTML page for `function` drawn as to_dot(function, options) draws it; `svg` is Graphviz's
// rendering of that DOT (`dot -Tsvg`), `title` the page's title.
std::string graph_html(const ir::Function& function, const ir::DotOptions& options,
                       std::string_view svg, std::string_view title);

// `text` as a JSON string literal, with '<', '>' and '&' escaped so it can sit in a <script>.
std::string json_string(std::string_view text);

}  // namespace kiln::tools
