// Printing tensors as TensorFlow does: NumPy's str() of the values (numpy.array2string with its
// defaults: 8 digits of precision, 75-column lines, summarized above 1000 elements with 3 edge
// items), wrapped in "kiln.Tensor(..., shape=..., dtype=...)".
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>
#include <ostream>

#include "kiln/frontend/core/tensor.h"

namespace kiln {

namespace {

constexpr size_t kLineWidth = 75;
constexpr int64_t kThreshold = 1000;
constexpr int64_t kEdgeItems = 3;
constexpr size_t kPrecision = 8;

// Float digits.

// Shortest round-trip text of x in the given notation (float's own shortest for f32).
template <class T>
std::string chars(T x, std::chars_format format) {
  char buf[400];
  auto result = std::to_chars(buf, buf + sizeof buf, x, format);
  return std::string(buf, result.ptr);
}

// x correctly rounded to `precision` digits after the point.
template <class T>
std::string chars(T x, std::chars_format format, int precision) {
  char buf[400];
  auto result = std::to_chars(buf, buf + sizeof buf, x, format, precision);
  return std::string(buf, result.ptr);
}

void strip_trailing_zeros(std::string& digits) {
  while (!digits.empty() && digits.back() == '0')
    digits.pop_back();
}

// Positional text split at the point: the shortest digits, cut to `max_frac` fractional
// digits (rounded) when longer. 0.5 → {"0", "5"}, 2 → {"2", ""}.
struct Positional {
  std::string int_part;
  std::string frac_part;
};

template <class T>
Positional positional(T x, size_t max_frac) {
  std::string s = chars(x, std::chars_format::fixed);
  size_t dot = s.find('.');
  if (dot != std::string::npos && s.size() - dot - 1 > max_frac) {
    s = chars(x, std::chars_format::fixed, static_cast<int>(max_frac));
    dot = s.find('.');
  }
  if (dot == std::string::npos) return {s, ""};
  Positional p{s.substr(0, dot), s.substr(dot + 1)};
  strip_trailing_zeros(p.frac_part);
  return p;
}

// Scientific text split into mantissa integer part, fraction digits and exponent.
// 1.5e-05 → {"1", "5", '-', "05"}.
struct Scientific {
  std::string int_part;
  std::string frac_part;
  char exp_sign = '+';
  std::string exp_digits;
};

template <class T>
Scientific scientific(T x, size_t max_frac) {
  std::string s = chars(x, std::chars_format::scientific);
  size_t e = s.find('e');
  size_t dot = s.find('.');
  size_t frac_len = dot == std::string::npos ? 0 : e - dot - 1;
  if (frac_len > max_frac) {
    s = chars(x, std::chars_format::scientific, static_cast<int>(max_frac));
    e = s.find('e');
    dot = s.find('.');
  }
  Scientific out;
  out.int_part = s.substr(0, dot == std::string::npos ? e : dot);
  if (dot != std::string::npos) out.frac_part = s.substr(dot + 1, e - dot - 1);
  strip_trailing_zeros(out.frac_part);
  out.exp_sign = s[e + 1];
  out.exp_digits = s.substr(e + 2);
  return out;
}

std::string non_finite(double x) {
  if (std::isnan(x)) return "nan";
  return x < 0 ? "-inf" : "inf";
}

std::string pad_left(const std::string& s, size_t width) {
  return s.size() >= width ? s : std::string(width - s.size(), ' ') + s;
}

std::string pad_right(const std::string& s, size_t width, char fill = ' ') {
  return s.size() >= width ? s : s + std::string(width - s.size(), fill);
}

// NumPy's FloatingFormat in its default 'maxprec' mode: one layout for all shown elements.
template <class T>
class FloatFormat {
 public:
  explicit FloatFormat(const std::vector<T>& shown) {
    std::vector<T> finite;
    bool any_neg_inf = false;
    for (T x : shown) {
      if (std::isfinite(x))
        finite.push_back(x);
      else if (std::isinf(x) && x < 0)
        any_neg_inf = true;
    }
    choose_notation(finite);
    if (finite.empty()) {
      pad_left_ = pad_right_ = 0;
    } else if (exp_) {
      for (T x : finite) {
        Scientific s = scientific(x, kPrecision);
        precision_ = std::max(precision_, s.frac_part.size());
        exp_size_ = std::max(exp_size_, s.exp_digits.size());
        pad_left_ = std::max(pad_left_, s.int_part.size());
      }
      pad_right_ = exp_size_ + 2 + precision_;
    } else {
      for (T x : finite) {
        Positional p = positional(x, kPrecision);
        pad_left_ = std::max(pad_left_, p.int_part.size());
        pad_right_ = std::max(pad_right_, p.frac_part.size());
      }
    }
    if (finite.size() != shown.size()) {
      // Room for "nan" and "inf"/"-inf" in the integer column plus point and fraction.
      size_t offset = pad_right_ + 1;
      size_t inf_len = 3 + (any_neg_inf ? 1 : 0);
      if (3 > offset) pad_left_ = std::max(pad_left_, 3 - offset);
      if (inf_len > offset) pad_left_ = std::max(pad_left_, inf_len - offset);
    }
  }

  std::string operator()(T x) const {
    if (!std::isfinite(x)) return pad_left(non_finite(x), pad_left_ + pad_right_ + 1);
    if (exp_) {
      Scientific s = scientific(x, kPrecision);
      return pad_left(s.int_part, pad_left_) + "." + pad_right(s.frac_part, precision_, '0') + "e" +
             s.exp_sign + pad_left_zeros(s.exp_digits, exp_size_);
    }
    Positional p = positional(x, kPrecision);
    return pad_left(p.int_part, pad_left_) + "." + pad_right(p.frac_part, pad_right_);
  }

 private:
  // Scientific when the magnitudes are huge, tiny, or spread over more than 3 decades.
  void choose_notation(const std::vector<T>& finite) {
    double max = 0, min = INFINITY;
    for (T x : finite) {
      double a = std::abs(static_cast<double>(x));
      if (a == 0) continue;
      max = std::max(max, a);
      min = std::min(min, a);
    }
    exp_ = max > 0 && (max >= 1e8 || min < 1e-4 || max / min > 1000.0);
  }

  static std::string pad_left_zeros(const std::string& s, size_t width) {
    return s.size() >= width ? s : std::string(width - s.size(), '0') + s;
  }

  bool exp_ = false;
  size_t pad_left_ = 0;
  size_t pad_right_ = 0;
  size_t precision_ = 0;
  size_t exp_size_ = 0;
};

// A 0-d float as NumPy's str() of a scalar: "3.0", "0.1", "1e-05", "nan".
template <class T>
std::string float_scalar(T x) {
  if (!std::isfinite(x)) return non_finite(x);
  double a = std::abs(static_cast<double>(x));
  if (a == 0 || (a >= 1e-4 && a < 1e16)) {
    Positional p = positional(x, 400);
    return p.int_part + "." + (p.frac_part.empty() ? "0" : p.frac_part);
  }
  Scientific s = scientific(x, 400);
  std::string mantissa = s.frac_part.empty() ? s.int_part : s.int_part + "." + s.frac_part;
  return mantissa + "e" + s.exp_sign + s.exp_digits;
}

// Layout.

// The positions shown along a dim of size n: all, or the first and last kEdgeItems.
std::vector<int64_t> shown_positions(int64_t n, bool summarize) {
  std::vector<int64_t> out;
  bool cut = summarize && n > 2 * kEdgeItems;
  for (int64_t i = 0; i < n; ++i) {
    if (!cut || i < kEdgeItems || i >= n - kEdgeItems) out.push_back(i);
  }
  return out;
}

// Flat offsets of every shown element, row-major.
void collect_shown(const Shape& shape, const std::vector<int64_t>& strides, bool summarize,
                   int64_t axis, int64_t offset, std::vector<int64_t>& out) {
  if (axis == shape.rank()) {
    out.push_back(offset);
    return;
  }
  for (int64_t i : shown_positions(shape[axis], summarize)) {
    collect_shown(shape, strides, summarize, axis + 1, offset + i * strides[axis], out);
  }
}

// NumPy's _formatArray for str(): separator ' ', hanging indent ' ', wrapping at kLineWidth.
class ArrayLayout {
 public:
  ArrayLayout(const Shape& shape, bool summarize, std::function<std::string(int64_t)> element)
      : shape_(shape),
        strides_(shape.strides()),
        summarize_(summarize),
        element_(std::move(element)) {}

  std::string format() const { return recurse(0, 0, " ", kLineWidth); }

 private:
  // Appends `word` to `line`, first moving `line` into `s` when it would overflow `width`.
  static void extend(std::string& s, std::string& line, const std::string& word, size_t width,
                     const std::string& hanging) {
    bool wrap = line.size() + word.size() > width && line.size() > hanging.size();
    if (wrap) {
      while (!line.empty() && line.back() == ' ')
        line.pop_back();
      s += line + "\n";
      line = hanging;
    }
    line += word;
  }

  std::string recurse(int64_t axis, int64_t offset, const std::string& hanging,
                      size_t width) const {
    if (axis == shape_.rank()) return element_(offset);
    std::string next_hanging = hanging + " ";
    size_t next_width = width - 1;  // room for this level's ']'
    int64_t n = shape_[axis];
    bool summary = summarize_ && n > 2 * kEdgeItems;
    auto child = [&](int64_t i) {
      return recurse(axis + 1, offset + i * strides_[axis], next_hanging, next_width);
    };
    std::vector<int64_t> positions = shown_positions(n, summarize_);
    std::string s;
    if (axis == shape_.rank() - 1) {
      size_t elem_width = width - 1;
      std::string line = hanging;
      for (size_t k = 0; k < positions.size(); ++k) {
        if (summary && k == static_cast<size_t>(kEdgeItems)) {
          extend(s, line, "...", elem_width, hanging);
          line += " ";
        }
        extend(s, line, child(positions[k]), elem_width, hanging);
        if (k + 1 < positions.size()) line += " ";
      }
      s += line;
    } else {
      std::string line_sep(static_cast<size_t>(shape_.rank() - axis - 1), '\n');
      for (size_t k = 0; k < positions.size(); ++k) {
        if (summary && k == static_cast<size_t>(kEdgeItems)) s += hanging + "..." + line_sep;
        s += hanging + child(positions[k]);
        if (k + 1 < positions.size()) s += line_sep;
      }
    }
    // Built by appending: `"[" + std::string` trips a GCC 12 -Wrestrict false positive.
    std::string out(1, '[');
    out.append(s, hanging.size());
    out += ']';
    return out;
  }

  Shape shape_;
  std::vector<int64_t> strides_;
  bool summarize_;
  std::function<std::string(int64_t)> element_;
};

// The element formatter for the shown elements of `t`, as NumPy picks it per dtype.
std::function<std::string(int64_t)> element_formatter(const ir::HostTensor& t,
                                                      const std::vector<int64_t>& shown) {
  return ir::visit_dtype(t.dtype(), [&](auto zero) -> std::function<std::string(int64_t)> {
    using T = decltype(zero);
    const T* data = t.data<T>();
    if constexpr (std::is_same_v<T, bool>) {
      return [data](int64_t i) { return std::string(data[i] ? " True" : "False"); };
    } else if constexpr (std::is_floating_point_v<T>) {
      std::vector<T> values;
      for (int64_t i : shown)
        values.push_back(data[i]);
      FloatFormat<T> format(values);
      return [data, format](int64_t i) { return format(data[i]); };
    } else {
      size_t width = 0;
      for (int64_t i : shown)
        width = std::max(width, fmt::format("{}", data[i]).size());
      return [data, width](int64_t i) { return fmt::format("{:>{}}", data[i], width); };
    }
  });
}

std::string scalar_text(const ir::HostTensor& t) {
  return ir::visit_dtype(t.dtype(), [&](auto zero) -> std::string {
    using T = decltype(zero);
    T x = t.data<T>()[0];
    if constexpr (std::is_same_v<T, bool>)
      return x ? "True" : "False";
    else if constexpr (std::is_floating_point_v<T>)
      return float_scalar(x);
    else
      return fmt::format("{}", x);
  });
}

}  // namespace

std::string format_values(const ir::HostTensor& value) {
  if (value.shape().rank() == 0) return scalar_text(value);
  if (value.num_elements() == 0) return "[]";
  bool summarize = value.num_elements() > kThreshold;
  std::vector<int64_t> shown;
  collect_shown(value.shape(), value.shape().strides(), summarize, 0, 0, shown);
  return ArrayLayout(value.shape(), summarize, element_formatter(value, shown)).format();
}

std::string Tensor::to_string() const {
  if (!defined()) return "kiln.Tensor(<undefined>)";
  // A tensor on a GPU prints a copy of its values and says where it lives, as PyTorch does.
  const Device where = device();
  const Tensor on_host = where.is_cpu() ? *this : to(Device::cpu());
  std::string text = format_values(on_host.host());
  // TensorFlow starts multi-line values on their own line.
  if (text.find('\n') != std::string::npos) text = "\n" + text;
  std::string place = where.is_cpu() ? std::string() : ", device=" + where.to_string();
  return fmt::format("kiln.Tensor({}, shape={}, dtype={}{})", text, shape().to_string(),
                     dtype_long_name(dtype()), place);
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  return os << t.to_string();
}

}  // namespace kiln
