// `kiln dump --format html`: one self-contained page with the graph's SVG layouts, node details
// as JSON and the script (checked in a headless Chromium when one is installed), and
// ir::dot_layout, which ties the page's details to the drawings (DotOptions::collapsed, which
// the page's layouts use, is tested in ir_dot_test.cpp).
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "cli_test_util.h"
#include "file_test_util.h"
#include "kiln/ir/dot.h"
#include "kiln/ir/parser.h"

namespace k = kiln;
using Catch::Contains;
using k::testing::count_of;
using k::testing::have;
using k::testing::kiln_cli;
using k::testing::Outcome;
using k::testing::saved_mlp;

namespace {

// Every "http://" or "https://" in `html` that is not the SVG or XLink namespace.
std::vector<std::string> external_urls(const std::string& html) {
  std::vector<std::string> found;
  for (const char* scheme : {"http://", "https://"}) {
    for (size_t at = html.find(scheme); at != std::string::npos; at = html.find(scheme, at + 1)) {
      std::string url = html.substr(at, html.find_first_of("\"' <>", at) - at);
      if (url != "http://www.w3.org/2000/svg" && url != "http://www.w3.org/1999/xlink")
        found.push_back(url);
    }
  }
  return found;
}

// The JSON key (DOT node id) of the first node detail whose op is `op`: {"n3":{"op":"matmul",...
std::string id_of_op(const std::string& html, const std::string& op) {
  size_t at = html.find("{\"op\":\"" + op + "\"");
  if (at == std::string::npos) return "";
  size_t close = html.rfind("\":", at), open = html.rfind('"', close - 1);
  return html.substr(open + 1, close - open - 1);
}

// The text between `open` and the next `close` in `text`, "" if there is none.
std::string between(const std::string& text, const std::string& open, const std::string& close) {
  size_t start = text.find(open);
  if (start == std::string::npos) return "";
  start += open.size();
  size_t end = text.find(close, start);
  return end == std::string::npos ? "" : text.substr(start, end - start);
}

// `text` with the entities a DOM dump writes in element text decoded.
std::string unescape_html(std::string text) {
  for (auto [entity, c] :
       {std::pair{"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&amp;", "&"}}) {
    for (size_t at = text.find(entity); at != std::string::npos; at = text.find(entity, at + 1))
      text.replace(at, std::strlen(entity), c);
  }
  return text;
}

}  // namespace

TEST_CASE("dot_layout: the DOT node and clusters of each IR node", "[tool][dot]") {
  k::ir::Function f = k::ir::parse(R"(func @f(%x: f32[4,8], %w: f32[8,3]) -> f32[4,3] {
  %0 = matmul(%x, %w) : f32[4,3]  scope "model/dense"
  %1 = relu(%0) : f32[4,3]  scope "model/dense"
  %2 = neg(%1) : f32[4,3]  scope "model"
  %3 = exp(%2) : f32[4,3]
  return %3
}
)");
  k::ir::DotLayout layout = k::ir::dot_layout(f, {.expand = true});
  REQUIRE(layout.nodes.size() == 4);
  CHECK(layout.nodes[0].first == "n0");
  CHECK(layout.nodes[0].second == f.nodes()[0].get());
  CHECK(layout.nodes[3].first == "n3");
  REQUIRE(layout.clusters.size() == 2);
  CHECK(layout.clusters[0].label == "model");
  CHECK(layout.clusters[0].parent.empty());
  CHECK(layout.clusters[0].members == std::vector<std::string>{"n2", "n0", "n1"});
  CHECK(layout.clusters[1].label == "model/dense");
  CHECK(layout.clusters[1].parent == layout.clusters[0].id);
  CHECK(layout.clusters[1].members == std::vector<std::string>{"n0", "n1"});
  // The ids are the ones to_dot writes.
  std::string dot = k::ir::to_dot(f, {.expand = true});
  for (const auto& c : layout.clusters)
    CHECK_THAT(dot, Contains("subgraph \"" + c.id + "\""));

  // Collapsed: scoped nodes share their scope's box; no clusters.
  k::ir::DotLayout collapsed = k::ir::dot_layout(f);
  CHECK(collapsed.clusters.empty());
  CHECK(collapsed.nodes[0].first == collapsed.nodes[1].first);
  CHECK(collapsed.nodes[3].first == "n3");

  // Kernels: one cluster per kernel of two or more nodes.
  k::ir::DotOptions kernels;
  kernels.kernel_of = {{f.nodes()[1].get(), 0}, {f.nodes()[2].get(), 0}, {f.nodes()[3].get(), 1}};
  k::ir::DotLayout fused = k::ir::dot_layout(f, kernels);
  REQUIRE(fused.clusters.size() == 1);
  CHECK(fused.clusters[0].id == "cluster_kernel_0");
  CHECK(fused.clusters[0].label == "kernel 0");
  CHECK(fused.clusters[0].members == std::vector<std::string>{"n1", "n2"});
}

TEST_CASE("kiln dump --format html writes one self-contained page", "[tool]") {
  k::testing::TempDir dir;
  saved_mlp(dir);
  Outcome no_output = kiln_cli("dump " + dir.file("mlp") + " --format html");
  CHECK(no_output.status == 2);
  CHECK_THAT(no_output.out, Contains("--format html needs -o FILE"));
  if (!have("dot")) {
    WARN("Graphviz's dot is not installed (Debian: graphviz); skipping --format html");
    return;
  }
  const std::string page = dir.file("mlp.html");
  Outcome o = kiln_cli("dump " + dir.file("mlp") + " --format html -o " + page);
  REQUIRE(o.status == 0);
  const std::string html = k::testing::read_bytes(page);
  CHECK(html.starts_with("<!DOCTYPE html>"));
  CHECK_THAT(html, Contains("<svg") && Contains("</svg>") && Contains("<script>") &&
                       Contains("data-ready"));
  CHECK_THAT(html, !Contains("<!DOCTYPE svg") && !Contains("<?xml") && !Contains(" src="));
  CHECK(external_urls(html).empty());
  // The hidden layer's matmul: its details, keyed by the id its <title> in the SVG holds.
  CHECK_THAT(html,
             Contains("\"op\":\"matmul\"") &&
                 Contains("\"inputs\":[\"f32[2,12]\",\"f32[12,5]\"],\"outputs\":[\"f32[2,5]\"]"
                          ",\"scope\":\"mlp/hidden\""));
  const std::string matmul = id_of_op(html, "matmul");
  CHECK(matmul.starts_with("n"));
  CHECK_THAT(html, Contains("<title>" + matmul + "</title>"));
  // Scopes as clusters, labelled with their whole path.
  CHECK_THAT(html, Contains("\"label\":\"mlp/hidden\"") && Contains("<title>cluster_"));
  // One layout per state of the scope tree mlp/{flatten, hidden, out}: closed, or open with each
  // child open or closed (1 + 2^3); the page opens with every scope collapsed.
  const nlohmann::json data = nlohmann::json::parse(
      between(html, "<script type=\"application/json\" id=\"kiln-data\">", "</script>"));
  REQUIRE(data.at("clusters").size() == 4);
  CHECK(data.at("clusters")[0].at("label") == "mlp");
  CHECK(data.at("layouts").size() == 9);
  CHECK(count_of(html, "<template class=\"kiln-layout\">") == 9);
  CHECK(data.at("complete") == true);
  CHECK(data.at("initial") == nlohmann::json::array());
  CHECK(data.at("nodes").at(matmul).at("name").get<std::string>().starts_with("%"));
  CHECK_FALSE(std::filesystem::exists(page + ".svg.tmp"));
  CHECK_FALSE(std::filesystem::exists(page + ".dot.tmp"));

  // After fusion the clusters are kernels.
  Outcome fused = kiln_cli("dump " + dir.file("mlp") + " --after fusion --format html -o " +
                           dir.file("fused.html"));
  REQUIRE(fused.status == 0);
  const std::string fused_html = k::testing::read_bytes(dir.file("fused.html"));
  CHECK_THAT(fused_html, Contains("\"label\":\"kernel ") && Contains("<title>cluster_kernel_") &&
                             Contains("after fusion"));
  // Kernels start open: the view after fusion is about how nodes are grouped.
  const nlohmann::json fused_data = nlohmann::json::parse(
      between(fused_html, "<script type=\"application/json\" id=\"kiln-data\">", "</script>"));
  CHECK(fused_data.at("initial").size() == fused_data.at("clusters").size());
  CHECK(external_urls(fused_html).empty());

  // A failed write leaves nothing behind.
  Outcome unwritable =
      kiln_cli("dump " + dir.file("mlp") + " --format html -o " + dir.file("no/such/g.html"));
  CHECK(unwritable.status == 1);
  CHECK_FALSE(std::filesystem::exists(dir.file("no")));

  // The script in a real browser (the page's #test-relayout hook reports what it saw): it opens
  // collapsed, opening the top scope shows another layout (its size and the places of nodes
  // outside the scope change) and closing it brings the first back; the search finds nodes by
  // op, scope and name and Enter opens the scope of the first match and selects it.
  std::string chromium = have("chromium")           ? "chromium"
                         : have("chromium-browser") ? "chromium-browser"
                                                    : "";
  if (chromium.empty()) {
    WARN("no chromium on PATH; skipping the headless-browser check of the page's script");
    return;
  }
  const std::string relu = id_of_op(html, "relu");
  std::string relu_name = data.at("nodes").at(relu).at("name");  // "%N", in a URL "%25N"
  relu_name.replace(0, 1, "%25");
  Outcome dom = k::testing::run(
      {"timeout", "120", chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
       "file://" + page + "#test-relayout&search=matmul&search=mlp%2Fout&search=" + relu_name},
      /*with_stderr=*/false);
  REQUIRE(dom.status == 0);
  CHECK_THAT(dom.out, Contains("<svg") && Contains("data-ready=\"1\""));
  const std::string report_text =
      unescape_html(between(dom.out, "<pre id=\"kiln-test\">", "</pre>"));
  INFO(report_text);
  const nlohmann::json report = nlohmann::json::parse(report_text);
  const nlohmann::json& initial = report.at("initial");
  CHECK(report.at("layouts") == 9);
  CHECK(initial.at("layout") == "");
  CHECK(initial.at("clusters") == 0);
  CHECK(initial.at("boxes") == 1);  // mlp
  const nlohmann::json& opened = report.at("opened");
  CHECK(opened.at("layout") == "0");
  CHECK(opened.at("clusters") == 1);
  CHECK(opened.at("boxes") == 3);  // flatten, hidden, out
  CHECK(opened.at("viewBox") != initial.at("viewBox"));
  CHECK(opened.at("places").at("out") != initial.at("places").at("out"));
  CHECK(report.at("closed") == initial);

  const nlohmann::json& searches = report.at("searches");
  REQUIRE(searches.size() == 3);
  // By op: the hidden layer's matmul and the output layer's, the first selected in its opened
  // scope.
  CHECK(searches[0].at("count") == 2);
  CHECK(searches[0].at("shown") == 1);  // both inside the collapsed mlp box
  CHECK(searches[0].at("selected") == matmul);
  CHECK(searches[0].at("selectedDrawn") == true);
  CHECK(searches[0].at("status") == "1 of 2 matches");
  // By scope: every node of mlp/out (matmul, add, softmax's ops).
  size_t in_out = 0;
  for (const auto& [id, node] : data.at("nodes").items())
    in_out += node.at("scope") == "mlp/out";
  CHECK(searches[1].at("count") == in_out);
  const std::string selected = searches[1].at("selected");
  CHECK(data.at("nodes").at(selected).at("scope") == "mlp/out");
  CHECK(searches[1].at("selectedDrawn") == true);
  // By name.
  CHECK(searches[2].at("selected") == relu);
  CHECK(searches[2].at("selectedDrawn") == true);
}
