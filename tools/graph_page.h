// The style sheet and script of the graph page graph_html writes (kept apart from the C++ that
// assembles the page).
#pragma once

#include <string_view>

namespace kiln::tools {

// The page's CSS.
std::string_view graph_page_style();
// The page's script: it reads the JSON in #kiln-data and the SVG layouts in
// <template class="kiln-layout"> elements.
std::string_view graph_page_script();

}  // namespace kiln::tools
