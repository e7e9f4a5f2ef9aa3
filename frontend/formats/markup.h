// Escaping text for the SVG and HTML that Kiln writes (History::plot, the kiln dump page).
#pragma once

#include <string>
#include <string_view>

namespace kiln::detail {

// `text` with &, <, > and " replaced by entities, safe inside XML/HTML text and quoted
// attribute values.
inline std::string markup_escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace kiln::detail
