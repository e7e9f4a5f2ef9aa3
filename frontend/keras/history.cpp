// History::to_csv and History::plot (declared in model.h).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kiln/frontend/formats/atomic_file.h"
#include "kiln/frontend/formats/markup.h"
#include "kiln/frontend/keras/model.h"

namespace kiln {

namespace {

// The chart geometry, in SVG pixels.
constexpr double kChartWidth = 480, kChartHeight = 320;
constexpr double kLeft = 70, kRight = 20, kTop = 40, kBottom = 56;
// Points get markers up to this many epochs (a single epoch is a point, not a line).
constexpr size_t kMaxMarkers = 60;
constexpr const char* kTrainColor = "#1f77b4";
constexpr const char* kValColor = "#ff7f0e";
constexpr const char* kDash = " stroke-dasharray=\"6,4\"";

// 1, 2 or 5 times a power of ten, at least `raw`.
double nice_step(double raw) {
  double power = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * power >= raw * (1 - 1e-9)) return m * power;
  return 10 * power;
}

struct Axis {
  double lo, hi;              // the drawn range
  std::vector<double> ticks;  // inside it
};

// A y axis with about five round ticks covering [lo, hi].
Axis value_axis(double lo, double hi) {
  if (hi - lo < 1e-12 * std::max(1.0, std::abs(hi))) {
    double pad = std::abs(hi) > 1e-12 ? std::abs(hi) * 0.1 : 0.5;
    lo -= pad;
    hi += pad;
  }
  double step = nice_step((hi - lo) / 5);
  // Whole multiples of the step (the 1e-9 keeps 0.7 / 0.02 = 34.999… from adding a tick).
  auto first = static_cast<int64_t>(std::floor(lo / step + 1e-9));
  auto last = static_cast<int64_t>(std::ceil(hi / step - 1e-9));
  Axis axis{double(first) * step, double(last) * step, {}};
  for (int64_t k = first; k <= last; ++k)
    axis.ticks.push_back(double(k) * step);
  return axis;
}

// An x axis over epochs 1..n with ticks at whole multiples of a round step (at most about
// ten); one epoch sits in the middle of [0.5, 1.5].
Axis epoch_axis(size_t n) {
  if (n <= 1) return {0.5, 1.5, {1.0}};
  auto step = static_cast<int64_t>(std::max(1.0, nice_step(double(n) / 10)));
  Axis axis{1, double(n), {}};
  for (int64_t t = step; t <= int64_t(n); t += step)
    axis.ticks.push_back(double(t));
  if (step > 1 && n < size_t(2 * step)) axis.ticks.insert(axis.ticks.begin(), 1.0);
  return axis;
}

std::string tick_label(double v) {
  return fmt::format("{:.4g}", v);
}

struct Series {
  const std::vector<double>* values;
  const char* color;
  const char* label;
  bool dashed;
};

// One chart, its top-left corner at x0: frame, grid, ticks, axis labels, curves, legend.
std::string chart(const std::string& metric, const std::vector<Series>& series, double x0) {
  size_t n = 0;
  double lo = INFINITY, hi = -INFINITY;
  for (const Series& s : series) {
    n = std::max(n, s.values->size());
    for (double v : *s.values) {
      if (!std::isfinite(v)) continue;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  const double left = x0 + kLeft, right = x0 + kChartWidth - kRight;
  const double top = kTop, bottom = kChartHeight - kBottom;
  std::string out;
  out += fmt::format(
      "<text x=\"{:.1f}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" "
      "font-weight=\"bold\">{}</text>\n",
      (left + right) / 2, kiln::detail::markup_escape(metric));
  out += fmt::format(
      "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"white\" "
      "stroke=\"#444\"/>\n",
      left, top, right - left, bottom - top);
  if (!(lo <= hi)) {
    out += fmt::format(
        "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">no finite values"
        "</text>\n",
        (left + right) / 2, (top + bottom) / 2);
    return out;
  }
  // 5% headroom keeps the points off the frame; losses and accuracies stay at or above 0.
  double pad = (hi - lo) * 0.05;
  Axis ya = value_axis(lo >= 0 ? std::max(0.0, lo - pad) : lo - pad, hi + pad);
  Axis xa = epoch_axis(n);
  auto px = [&](double epoch) { return left + (epoch - xa.lo) / (xa.hi - xa.lo) * (right - left); };
  auto py = [&](double v) { return bottom - (v - ya.lo) / (ya.hi - ya.lo) * (bottom - top); };
  for (double t : ya.ticks) {
    out += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{2:.1f}\" x2=\"{1:.1f}\" y2=\"{2:.1f}\" stroke=\"#ddd\"/>\n"
        "<line x1=\"{3:.1f}\" y1=\"{2:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"#444\"/>\n"
        "<text x=\"{4:.1f}\" y=\"{5:.1f}\" text-anchor=\"end\">{6}</text>\n",
        left, right, py(t), left - 5, left - 8, py(t) + 4, tick_label(t));
  }
  for (double t : xa.ticks) {
    out += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"#444\"/>\n"
        "<text x=\"{0:.1f}\" y=\"{3:.1f}\" text-anchor=\"middle\">{4}</text>\n",
        px(t), bottom, bottom + 5, bottom + 19, tick_label(t));
  }
  out += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">epoch</text>\n",
                     (left + right) / 2, kChartHeight - 14);
  out += fmt::format(
      "<text x=\"{0:.1f}\" y=\"{1:.1f}\" text-anchor=\"middle\" "
      "transform=\"rotate(-90 {0:.1f} {1:.1f})\">{2}</text>\n",
      x0 + 18, (top + bottom) / 2, kiln::detail::markup_escape(metric));
  for (const Series& s : series) {
    std::string points;
    for (size_t e = 0; e < s.values->size(); ++e) {
      double v = (*s.values)[e];
      if (!std::isfinite(v)) continue;
      points += fmt::format("{:.1f},{:.1f} ", px(double(e + 1)), py(v));
    }
    out +=
        fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{} points=\"{}\"/>\n",
                    s.color, s.dashed ? kDash : "", points);
    if (s.values->size() > kMaxMarkers) continue;
    for (size_t e = 0; e < s.values->size(); ++e) {
      double v = (*s.values)[e];
      if (!std::isfinite(v)) continue;
      out += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3.5\" fill=\"{}\"/>\n",
                         px(double(e + 1)), py(v), s.color);
    }
  }
  // The legend: a white box in the top right corner, over the curves.
  out += fmt::format(
      "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"112\" height=\"{:.1f}\" fill=\"white\" "
      "fill-opacity=\"0.85\" stroke=\"#ccc\"/>\n",
      right - 118, top + 6, 18.0 * double(series.size()) + 4);
  double legend_y = top + 16;
  for (const Series& s : series) {
    out += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{2:.1f}\" y2=\"{1:.1f}\" stroke=\"{3}\" "
        "stroke-width=\"2\"{4}/>\n<text x=\"{5:.1f}\" y=\"{6:.1f}\">{7}</text>\n",
        right - 110, legend_y, right - 86, s.color, s.dashed ? kDash : "", right - 80, legend_y + 4,
        s.label);
    legend_y += 18;
  }
  return out;
}

}  // namespace

void History::to_csv(const std::string& path, std::source_location loc) const {
  std::string text = "epoch";
  for (const auto& [name, values] : history)
    text += "," + name;
  text += "\n";
  for (size_t e = 0; e < epochs.size(); ++e) {
    text += std::to_string(epochs[e]);
    for (const auto& [name, values] : history)
      text += e < values.size() ? fmt::format(",{:.6g}", values[e]) : ",";
    text += "\n";
  }
  detail::write_file_atomically(path, text, "History.to_csv", loc);
}

void History::plot(const std::string& path, std::source_location loc) const {
  // One chart per series without the "val_" prefix; its "val_" twin is drawn dashed.
  std::vector<std::string> metrics;
  for (const auto& [name, values] : history)
    if (name.rfind("val_", 0) != 0 || history.count(name.substr(4)) == 0) metrics.push_back(name);
  // The loss first, as Keras users expect.
  std::stable_partition(metrics.begin(), metrics.end(),
                        [](const std::string& m) { return m == "loss"; });
  double width = kChartWidth * double(std::max<size_t>(1, metrics.size()));
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0:.0f}\" height=\"{1:.0f}\" "
      "viewBox=\"0 0 {0:.0f} {1:.0f}\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      width, kChartHeight);
  if (metrics.empty()) {
    svg += fmt::format(
        "<text x=\"{:.0f}\" y=\"{:.0f}\" text-anchor=\"middle\">no epochs "
        "recorded</text>\n",
        width / 2, kChartHeight / 2);
  }
  for (size_t m = 0; m < metrics.size(); ++m) {
    bool lone_val = metrics[m].rfind("val_", 0) == 0;
    std::vector<Series> series{{&history.at(metrics[m]), lone_val ? kValColor : kTrainColor,
                                lone_val ? "validation" : "train", lone_val}};
    auto val = history.find("val_" + metrics[m]);
    if (val != history.end()) series.push_back({&val->second, kValColor, "validation", true});
    svg += chart(metrics[m], series, kChartWidth * double(m));
  }
  svg += "</svg>\n";
  detail::write_file_atomically(path, svg, "History.plot", loc);
}

}  // namespace kiln
