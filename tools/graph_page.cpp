#include "graph_page.h"

namespace kiln::tools {

namespace {

constexpr std::string_view kStyle = R"CSS(
html, body { margin: 0; height: 100%; font: 13px/1.4 system-ui, sans-serif; color: #222; }
body { display: flex; flex-direction: column; }
#bar { display: flex; gap: 6px; align-items: center; padding: 6px 10px; border-bottom: 1px solid #ccc;
       background: #f6f6f6; flex-wrap: wrap; }
#bar h1 { font-size: 14px; margin: 0 12px 0 0; }
#bar button { min-width: 28px; }
#search { width: 220px; margin-left: 12px; }
#search-count { color: #555; min-width: 80px; }
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
g.node { cursor: pointer; }
g.node.kiln-box path, g.node.kiln-box polygon { stroke-width: 1.5; }
g.node.kiln-match path, g.node.kiln-match polygon, g.node.kiln-match ellipse {
  stroke: #ff7f0e; stroke-width: 3; }
g.node.kiln-selected path, g.node.kiln-selected polygon, g.node.kiln-selected ellipse {
  stroke: #d62728; stroke-width: 4; }
g.kiln-dim { opacity: 0.25; }
g.cluster.kiln-clickable text { cursor: pointer; pointer-events: all; }
g.cluster.kiln-clickable path, g.cluster.kiln-clickable polygon { pointer-events: visibleStroke;
  cursor: pointer; }
)CSS";

// Everything the script knows comes from the JSON in #kiln-data: node details keyed by DOT id,
// clusters (parents first), and for each <template class="kiln-layout"> the clusters open in
// it. A state is the set of open clusters whose ancestors are all open; the page shows the
// layout of that state, or the nearest one laid out (see graph_html.cpp).
constexpr std::string_view kScript = R"JS(
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('kiln-data').textContent);
  var view = document.getElementById('view');
  var panel = document.getElementById('panel');
  var search = document.getElementById('search');
  var searchCount = document.getElementById('search-count');
  var templates = document.querySelectorAll('template.kiln-layout');
  var clusters = data.clusters, byId = {}, inner = {};
  clusters.forEach(function (c, i) {
    byId[c.id] = i;
    c.parentIndex = c.parent && byId[c.parent] !== undefined ? byId[c.parent] : -1;
    // Parents come first, so the last cluster to claim a node is its innermost.
    c.members.forEach(function (m) { inner[m] = i; });
  });

  // States: one boolean per cluster, normalized so that a cluster counts as open only when
  // its ancestors are.
  function normalize(open) {
    var out = [];
    clusters.forEach(function (c, i) {
      out.push(!!open[i] && (c.parentIndex < 0 || out[c.parentIndex]));
    });
    return out;
  }
  function keyOf(state) {
    var open = [];
    state.forEach(function (o, i) { if (o) open.push(i); });
    return open.join(',');
  }
  function stateOf(indices) {
    var open = clusters.map(function () { return false; });
    indices.forEach(function (i) { open[i] = true; });
    return normalize(open);
  }
  function none() { return stateOf([]); }
  function all() { return stateOf(clusters.map(function (c, i) { return i; })); }
  function closure(i) {
    var open = [];
    for (; i >= 0; i = clusters[i].parentIndex) open.push(i);
    return stateOf(open);
  }
  var layoutOf = {};
  data.layouts.forEach(function (open, index) { layoutOf[keyOf(stateOf(open))] = index; });
  function laidOut(state) { return layoutOf[keyOf(state)] !== undefined; }
  function firstLaidOut(candidates) {
    for (var k = 0; k < candidates.length; ++k)
      if (candidates[k] && laidOut(candidates[k])) return candidates[k];
    return null;
  }

  var state = null, svg = null, home = null, box = null;
  var nodeEls = {}, selectedId = null;
  function titleOf(g) {
    var t = g.querySelector('title');
    return t ? t.textContent : '';
  }
  function apply() { svg.setAttribute('viewBox', box.join(' ')); }
  function toSvg(x, y) {
    var p = svg.createSVGPoint();
    p.x = x;
    p.y = y;
    return p.matrixTransform(svg.getScreenCTM().inverse());
  }
  function atHome() {
    return !box || box.every(function (v, k) { return Math.abs(v - home[k]) < 1e-6; });
  }
  // The element drawing `title` now, and its centre and size in SVG units.
  function placeOf(title) {
    var found = null;
    svg.querySelectorAll('g.node, g.cluster').forEach(function (g) {
      if (!found && titleOf(g) === title) found = g;
    });
    if (!found) return null;
    var r = found.getBoundingClientRect();
    var a = toSvg(r.left, r.top), b = toSvg(r.right, r.bottom);
    return {x: (a.x + b.x) / 2, y: (a.y + b.y) / 2, width: b.x - a.x, height: b.y - a.y,
            pixels: r.width};
  }
  // Keeps the scale and puts `title` in the middle; or, when `readable`, zooms in until it is
  // about 120 pixels wide.
  function centerOn(title, readable) {
    var place = placeOf(title);
    if (!place) return;
    var w = box[2], h = box[3];
    if (readable && place.pixels > 0 && place.pixels < 60) {
      var f = place.pixels / 120;
      w *= f;
      h *= f;
    }
    box = [place.x - w / 2, place.y - h / 2, w, h];
    apply();
  }

  // Shows the layout of `wanted` and keeps `focus` (a node or cluster title) in view: the whole
  // graph if the view showed the whole graph before, else the same scale centred on it.
  function go(wanted, focus) {
    var index = layoutOf[keyOf(wanted)];
    if (index === undefined) return;
    var fit = !svg || atHome();
    var size = box ? [box[2], box[3]] : null;
    var fragment = document.importNode(templates[index].content, true);
    view.textContent = '';
    view.appendChild(fragment);
    svg = view.querySelector('svg');
    svg.removeAttribute('width');
    svg.removeAttribute('height');
    var vb = svg.viewBox.baseVal;
    home = [vb.x, vb.y, vb.width, vb.height];
    box = home.slice();
    state = wanted;
    nodeEls = {};
    svg.querySelectorAll('g.node').forEach(function (g) {
      var t = titleOf(g);
      nodeEls[t] = g;
      if (t.indexOf('box_') === 0 && byId[t.slice(4)] !== undefined) g.classList.add('kiln-box');
    });
    svg.querySelectorAll('g.cluster').forEach(function (g) {
      if (byId[titleOf(g)] !== undefined) g.classList.add('kiln-clickable');
    });
    if (!fit && size) {
      box = [home[0], home[1], size[0], size[1]];
      if (focus) centerOn(focus, false);
      else apply();
    }
    if (selectedId && nodeEls[selectedId]) nodeEls[selectedId].classList.add('kiln-selected');
    highlight();
    document.body.setAttribute('data-layout', keyOf(state));
    document.body.setAttribute('data-viewbox', home.join(' '));
  }
  function openCluster(i, focus) {
    var path = closure(i);
    go(firstLaidOut([normalize(state.map(function (o, k) { return o || path[k]; })), path, all()]),
       focus || clusters[i].id);
  }
  function closeCluster(i) {
    var p = clusters[i].parentIndex;
    var without = state.slice();
    without[i] = false;
    go(firstLaidOut([normalize(without), p >= 0 ? closure(p) : null, none()]),
       'box_' + clusters[i].id);
  }

  view.addEventListener('wheel', function (ev) {
    ev.preventDefault();
    var p = toSvg(ev.clientX, ev.clientY), f = Math.pow(1.0015, ev.deltaY);
    box = [p.x - (p.x - box[0]) * f, p.y - (p.y - box[1]) * f, box[2] * f, box[3] * f];
    apply();
  }, {passive: false});
  function zoomCenter(f) {
    var cx = box[0] + box[2] / 2, cy = box[1] + box[3] / 2;
    box = [cx - box[2] * f / 2, cy - box[3] * f / 2, box[2] * f, box[3] * f];
    apply();
  }
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
  // A drag ends in a click; it pans, so it must not also select, open or close anything.
  view.addEventListener('click', function (ev) {
    if (dragged) { ev.stopPropagation(); dragged = false; }
  }, true);
  view.addEventListener('click', function (ev) {
    var g = ev.target.closest ? ev.target.closest('g.node, g.cluster') : null;
    if (!g) return;
    var t = titleOf(g);
    if (g.classList.contains('cluster')) {
      if (byId[t] !== undefined) closeCluster(byId[t]);
    } else if (t.indexOf('box_') === 0 && byId[t.slice(4)] !== undefined) {
      openCluster(byId[t.slice(4)]);
    } else {
      select(t);
    }
  });
  document.getElementById('zoom-in').onclick = function () { zoomCenter(1 / 1.25); };
  document.getElementById('zoom-out').onclick = function () { zoomCenter(1.25); };
  document.getElementById('zoom-fit').onclick = function () { box = home.slice(); apply(); };
  document.getElementById('collapse-all').onclick = function () { box = null; go(none()); };
  document.getElementById('expand-all').onclick = function () { box = null; go(all()); };

  function row(list, name, value) {
    if (value === undefined || value === '' || (value.length === 0)) return;
    var dt = document.createElement('dt'), dd = document.createElement('dd');
    dt.textContent = name;
    dd.textContent = Array.isArray(value) ? value.join('\n') : value;
    list.appendChild(dt);
    list.appendChild(dd);
  }
  function select(id) {
    svg.querySelectorAll('.kiln-selected').forEach(function (g) { g.classList.remove('kiln-selected'); });
    selectedId = id;
    var el = nodeEls[id];
    if (el) el.classList.add('kiln-selected');
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
      if (inner[id] !== undefined) row(list, 'cluster', clusters[inner[id]].label);
    } else {
      var texts = [];
      if (el) el.querySelectorAll('text').forEach(function (t) { texts.push(t.textContent); });
      h.textContent = texts.length ? texts[0] : id;
      row(list, 'label', texts.slice(1));
    }
    row(list, 'graph id', id);
    panel.appendChild(h);
    panel.appendChild(list);
  }

  // Search: a node matches when the text is part of its name (%3), or of its scope path and op
  // ("mlp/hidden/matmul"). Matches are outlined (or the collapsed box holding them), the rest
  // dimmed; Enter walks through them, opening scopes as needed (Shift+Enter backwards).
  var ids = Object.keys(data.nodes), haystack = {}, matches = [], cursor = -1;
  ids.forEach(function (id) {
    var d = data.nodes[id];
    haystack[id] = (d.name + '\n' + (d.scope ? d.scope + '/' : '') + d.op).toLowerCase();
  });
  // The title of what draws node `id` now: itself, or the box of its outermost closed cluster.
  function drawnAs(id) {
    if (nodeEls[id]) return id;
    var chain = [];
    for (var i = inner[id]; i !== undefined && i >= 0; i = clusters[i].parentIndex) chain.push(i);
    for (var k = chain.length - 1; k >= 0; --k)
      if (!state[chain[k]]) return 'box_' + clusters[chain[k]].id;
    return id;
  }
  function highlight() {
    svg.querySelectorAll('.kiln-match, .kiln-dim').forEach(function (g) {
      g.classList.remove('kiln-match', 'kiln-dim');
    });
    var query = search.value.trim();
    if (!query) {
      searchCount.textContent = '';
      return;
    }
    var hit = {};
    matches.forEach(function (id) { hit[drawnAs(id)] = true; });
    svg.querySelectorAll('g.node, g.edge').forEach(function (g) {
      g.classList.add(hit[titleOf(g)] ? 'kiln-match' : 'kiln-dim');
    });
    searchCount.textContent = matches.length === 0 ? 'no match'
        : (cursor >= 0 ? (cursor + 1) + ' of ' : '') + matches.length +
          (matches.length === 1 ? ' match' : ' matches');
  }
  function runSearch() {
    var query = search.value.trim().toLowerCase();
    matches = query ? ids.filter(function (id) { return haystack[id].indexOf(query) >= 0; }) : [];
    cursor = -1;
    highlight();
  }
  function reveal(id) {
    if (!nodeEls[id] && inner[id] !== undefined) openCluster(inner[id], id);
    select(id);
    centerOn(id, true);
    highlight();
  }
  search.addEventListener('input', runSearch);
  search.addEventListener('keydown', function (ev) {
    if (ev.key === 'Enter') {
      ev.preventDefault();
      if (!matches.length) return;
      cursor = (cursor + (ev.shiftKey ? matches.length - 1 : 1)) % matches.length;
      reveal(matches[cursor]);
    } else if (ev.key === 'Escape') {
      search.value = '';
      runSearch();
    }
  });

  go(stateOf(data.initial));

  // file.html#test-relayout&search=Q&search=R: opens the first top-level cluster, closes it
  // again, then searches for each Q and presses Enter, and writes what it saw as JSON into a
  // pre#kiln-test element at the end, for a headless browser's DOM dump.
  var hash = location.hash.slice(1);
  if (hash.indexOf('test-relayout') === 0) {
    var snapshot = function () {
      var places = {};
      ['out', 'p0'].forEach(function (t) {
        var p = placeOf(t);
        if (p) places[t] = [Math.round(p.x), Math.round(p.y)];
      });
      return {layout: keyOf(state), viewBox: home.join(' '), places: places,
              nodes: svg.querySelectorAll('g.node').length,
              boxes: svg.querySelectorAll('g.node.kiln-box').length,
              clusters: svg.querySelectorAll('g.cluster.kiln-clickable').length};
    };
    var click = function (el) {
      if (el) el.dispatchEvent(new MouseEvent('click', {bubbles: true, cancelable: true}));
    };
    var report = {layouts: templates.length, complete: data.complete, initial: snapshot()};
    var top = clusters.filter(function (c) { return c.parentIndex < 0; })[0];
    if (top) {
      click(nodeEls['box_' + top.id]);
      report.opened = snapshot();
      var drawn = null;
      svg.querySelectorAll('g.cluster').forEach(function (g) {
        if (titleOf(g) === top.id) drawn = g;
      });
      click(drawn && drawn.querySelector('text'));
      report.closed = snapshot();
    }
    report.searches = new URLSearchParams(hash).getAll('search').map(function (q) {
      search.value = q;
      search.dispatchEvent(new Event('input'));
      var r = {query: q, count: matches.length, shown: svg.querySelectorAll('g.node.kiln-match').length};
      search.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter'}));
      r.selected = selectedId;
      r.layout = keyOf(state);
      r.selectedDrawn = !!(nodeEls[selectedId] &&
                           nodeEls[selectedId].classList.contains('kiln-selected') &&
                           nodeEls[selectedId].classList.contains('kiln-match'));
      r.status = searchCount.textContent;
      return r;
    });
    var pre = document.createElement('pre');
    pre.id = 'kiln-test';
    pre.textContent = JSON.stringify(report);
    document.body.appendChild(pre);
  }
  document.body.setAttribute('data-ready', '1');
})();
)JS";

}  // namespace

std::string_view graph_page_style() {
  return kStyle;
}

std::string_view graph_page_script() {
  return kScript;
}

}  // namespace kiln::tools
