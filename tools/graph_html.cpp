#include "graph_html.h"

#include <fmt/format.h>

#include <string>
#include <vector>

#include "kiln/ir/printer.h"

namespace kiln::tools {

namespace {

constexpr const char* kStyle = R"CSS(
html, body { margin: 0; height: 100%; font: 13px/1.4 system-ui, sans-serif; color: #222; }
body { display: flex; flex-direction: column; }
#bar { display: flex; gap: 6px; align-items: center; padding: 6px 10px; border-bottom: 1px solid #ccc;
       background: #f6f6f6; }
#bar h1 { font-size: 14px; margin: 0 12px 0 0; }
#bar button { min-width: 28px; }
#bar .hint { color: #777; margin-left: auto; }
#main { flex: 1; display: flex; min-height: 0; }
#view { flex: 1; overflow: hidden; cursor: grab; background: #fff; }
#view.dragging { cursor: grabbing; }
#view svg { width: 100%; height: 100%; display: block; user-select: none; }
#panel { width: 340px; overflow: auto; border-left: 1px solid #ccc; padding: 8px 12px;
         background: #fafafa; }
#panel h2 { font-size: 14px; margin: 4px 0 8px; }
#panel dt { font-weight: 600; margin-top: 6px; }
#panel dd { margin: 0 0 0 8px; font-family: monospace; white-space: pre-wrap; word-break: break-all; }
.kiln-hidden { display: none; }
g.node { cursor: pointer; }
g.node.kiln-selected path, g.node.kiln-selected polygon, g.node.kiln-selected ellipse {
  stroke: #d62728; stroke-width: 3; }
g.cluster.kiln-clickable text { cursor: pointer; pointer-events: all; }
g.cluster.kiln-clickable path, g.cluster.kiln-clickable polygon { pointer-events: visibleStroke;
  cursor: pointer; }
g.cluster.kiln-collapsed path, g.cluster.kiln-collapsed polygon { fill: #d9d9e8; stroke: #444;
  stroke-width: 1.5; pointer-events: all; }
g.cluster.kiln-collapsed text { display: none; }
g.cluster text.kiln-summary { display: none; font-size: 12px; }
g.cluster.kiln-collapsed text.kiln-summary { display: inline; }
)CSS";

// The script: everything it knows comes from the JSON in #kiln-data and the SVG's <title>s.
constexpr const char* kScript = R"JS(
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('kiln-data').textContent);
  var view = document.getElementById('view');
  var svg = view.querySelector('svg');
  var panel = document.getElementById('panel');
  if (!svg) return;
  svg.removeAttribute('width');
  svg.removeAttribute('height');
  var vb = svg.viewBox.baseVal;
  var home = [vb.x, vb.y, vb.width, vb.height];
  var box = home.slice();
  function apply() { svg.setAttribute('viewBox', box.join(' ')); }
  function zoomAt(factor, cx, cy) {
    box = [cx - (cx - box[0]) * factor, cy - (cy - box[1]) * factor, box[2] * factor,
           box[3] * factor];
    apply();
  }
  function zoomCenter(factor) { zoomAt(factor, box[0] + box[2] / 2, box[1] + box[3] / 2); }
  function toSvg(ev) {
    var p = svg.createSVGPoint();
    p.x = ev.clientX;
    p.y = ev.clientY;
    return p.matrixTransform(svg.getScreenCTM().inverse());
  }
  view.addEventListener('wheel', function (ev) {
    ev.preventDefault();
    var p = toSvg(ev);
    zoomAt(Math.pow(1.0015, ev.deltaY), p.x, p.y);
  }, {passive: false});
  var drag = null, dragged = false;
  view.addEventListener('mousedown', function (ev) {
    if (ev.button !== 0) return;
    drag = {x: ev.clientX, y: ev.clientY, box: box.slice(), scale: 1 / svg.getScreenCTM().a};
    dragged = false;
  });
  window.addEventListener('mousemove', function (ev) {
    if (!drag) return;
    var dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (!dragged && Math.abs(dx) + Math.abs(dy) < 4) return;
    dragged = true;
    view.classList.add('dragging');
    box = [drag.box[0] - dx * drag.scale, drag.box[1] - dy * drag.scale, box[2], box[3]];
    apply();
  });
  window.addEventListener('mouseup', function () { drag = null; view.classList.remove('dragging'); });
  // A drag ends in a click; it pans, so it must not also select or collapse.
  view.addEventListener('click', function (ev) {
    if (dragged) { ev.stopPropagation(); dragged = false; }
  }, true);
  document.getElementById('zoom-in').onclick = function () { zoomCenter(1 / 1.25); };
  document.getElementById('zoom-out').onclick = function () { zoomCenter(1.25); };
  document.getElementById('zoom-fit').onclick = function () { box = home.slice(); apply(); };

  function titleOf(g) {
    var t = g.querySelector('title');
    return t ? t.textContent : '';
  }
  var nodeEls = {}, clusterEls = {}, edges = [];
  svg.querySelectorAll('g.node').forEach(function (g) { nodeEls[titleOf(g)] = g; });
  svg.querySelectorAll('g.cluster').forEach(function (g) { clusterEls[titleOf(g)] = g; });
  svg.querySelectorAll('g.edge').forEach(function (g) {
    var ends = titleOf(g).split('->');
    if (ends.length === 2) edges.push({el: g, from: ends[0], to: ends[1]});
  });

  var clusters = {}, inner = {};
  data.clusters.forEach(function (c) {
    clusters[c.id] = c;
    c.collapsed = false;
    // Parents come first, so the last cluster to claim a node is its innermost.
    c.members.forEach(function (m) { inner[m] = c.id; });
  });
  function outermostCollapsed(id) {
    var found = null;
    for (; id; id = clusters[id].parent) if (clusters[id].collapsed) found = id;
    return found;
  }
  // What stands for a node now: itself, or the outermost collapsed cluster around it.
  function shownAs(nodeId) {
    var c = inner[nodeId];
    return (c && outermostCollapsed(c)) || nodeId;
  }
  function refresh() {
    data.clusters.forEach(function (c) {
      var el = clusterEls[c.id];
      if (!el) return;
      var hidden = !!(c.parent && outermostCollapsed(c.parent));
      el.classList.toggle('kiln-hidden', hidden);
      el.classList.toggle('kiln-collapsed', c.collapsed && !hidden);
    });
    Object.keys(nodeEls).forEach(function (id) {
      nodeEls[id].classList.toggle('kiln-hidden', shownAs(id) !== id);
    });
    edges.forEach(function (e) {
      var a = shownAs(e.from);
      e.el.classList.toggle('kiln-hidden', a !== e.from && a === shownAs(e.to));
    });
  }
  function setCollapsed(c, collapsed) { c.collapsed = collapsed; refresh(); }

  data.clusters.forEach(function (c) {
    var el = clusterEls[c.id];
    if (!el) return;
    el.classList.add('kiln-clickable');
    var shape = el.querySelector('path, polygon');
    if (shape) {
      var b = shape.getBBox();
      var text = document.createElementNS(svg.namespaceURI, 'text');
      text.setAttribute('class', 'kiln-summary');
      text.setAttribute('text-anchor', 'middle');
      text.setAttribute('x', b.x + b.width / 2);
      text.setAttribute('y', b.y + b.height / 2);
      var lines = [c.label, c.members.length + (c.members.length === 1 ? ' op' : ' ops')];
      lines.forEach(function (line, i) {
        var span = document.createElementNS(svg.namespaceURI, 'tspan');
        span.setAttribute('x', b.x + b.width / 2);
        span.setAttribute('dy', i === 0 ? '0' : '1.2em');
        span.textContent = line;
        text.appendChild(span);
      });
      el.appendChild(text);
    }
    el.addEventListener('click', function (ev) {
      ev.stopPropagation();
      setCollapsed(c, !c.collapsed);
    });
  });
  document.getElementById('collapse-all').onclick = function () {
    data.clusters.forEach(function (c) { c.collapsed = !c.parent; });
    refresh();
  };
  document.getElementById('expand-all').onclick = function () {
    data.clusters.forEach(function (c) { c.collapsed = false; });
    refresh();
  };

  function row(list, name, value) {
    if (value === undefined || value === '' || (value.length === 0)) return;
    var dt = document.createElement('dt'), dd = document.createElement('dd');
    dt.textContent = name;
    dd.textContent = Array.isArray(value) ? value.join('\n') : value;
    list.appendChild(dt);
    list.appendChild(dd);
  }
  var selected = null;
  function show(id) {
    if (selected) selected.classList.remove('kiln-selected');
    selected = nodeEls[id] || null;
    if (selected) selected.classList.add('kiln-selected');
    panel.textContent = '';
    var h = document.createElement('h2'), list = document.createElement('dl');
    var d = data.nodes[id];
    if (d) {
      h.textContent = d.op;
      row(list, 'IR', d.ir);
      row(list, 'attributes', d.attrs);
      row(list, 'inputs', d.inputs);
      row(list, 'outputs', d.outputs);
      row(list, 'scope', d.scope);
      row(list, 'source', d.loc);
      if (inner[id]) row(list, 'cluster', clusters[inner[id]].label);
    } else {
      var texts = [];
      if (selected) selected.querySelectorAll('text').forEach(function (t) { texts.push(t.textContent); });
      h.textContent = texts.length ? texts[0] : id;
      row(list, 'label', texts.slice(1));
    }
    row(list, 'graph id', id);
    panel.appendChild(h);
    panel.appendChild(list);
  }
  Object.keys(nodeEls).forEach(function (id) {
    nodeEls[id].addEventListener('click', function (ev) { ev.stopPropagation(); show(id); });
  });

  // file.html#test-collapse: click the first cluster and the first node with details, so a
  // headless browser's DOM dump shows that collapsing and the panel work.
  if (location.hash === '#test-collapse') {
    var click = function (el) {
      if (el) el.dispatchEvent(new MouseEvent('click', {bubbles: true, cancelable: true}));
    };
    if (data.clusters.length) click(clusterEls[data.clusters[0].id].querySelector('text'));
    var first = Object.keys(data.nodes).filter(function (id) { return nodeEls[id]; })[0];
    click(nodeEls[first]);
  }
  document.body.setAttribute('data-ready', '1');
})();
)JS";

std::string html_escape(std::string_view text) {
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

// {"n3": {"op": ..., "ir": ..., ...}, ...} for the nodes drawn one by one.
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
        "{}\n{}:{{\"op\":{},\"ir\":{},\"attrs\":{},\"inputs\":{},\"outputs\":{},\"scope\":{},"
        "\"loc\":{}}}",
        first ? "" : ",", json_string(id), json_string(ir::op_name(node->op())),
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
                       std::string_view svg, std::string_view title) {
  const ir::DotLayout layout = ir::dot_layout(function, options);
  const std::string data =
      fmt::format("{{\"title\":{},\n\"nodes\":{},\n\"clusters\":{}}}", json_string(title),
                  nodes_json(function, layout), clusters_json(layout));
  std::string out = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  out += "<title>" + html_escape(title) + "</title>\n<style>" + kStyle + "</style>\n</head>\n";
  out += "<body>\n<div id=\"bar\"><h1>" + html_escape(title) + "</h1>";
  out +=
      "<button id=\"zoom-in\" title=\"zoom in\">+</button>"
      "<button id=\"zoom-out\" title=\"zoom out\">&minus;</button>"
      "<button id=\"zoom-fit\" title=\"show the whole graph\">fit</button>"
      "<button id=\"collapse-all\">collapse all</button>"
      "<button id=\"expand-all\">expand all</button>"
      "<span class=\"hint\">drag to pan, wheel to zoom; click a cluster's label to collapse or "
      "expand it, a node for its details</span></div>\n";
  out += "<div id=\"main\">\n<div id=\"view\">\n";
  out += svg_element(svg);
  out +=
      "\n</div>\n<div id=\"panel\"><p>Click a node to see its op, attributes, types, scope "
      "and source line.</p></div>\n</div>\n";
  out += "<script type=\"application/json\" id=\"kiln-data\">" + data + "</script>\n";
  out += "<script>" + std::string(kScript) + "</script>\n</body>\n</html>\n";
  return out;
}

}  // namespace kiln::tools
