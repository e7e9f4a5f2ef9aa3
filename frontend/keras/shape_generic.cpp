#include "kiln/frontend/keras/shape_generic.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <optional>
#include <set>
#include <sstream>

#include "kiln/ir/error.h"

namespace kiln::detail {

namespace {

// At most this many free dimensions: the fit traces 2^dims + dims times.
constexpr size_t kMaxFreeDims = 4;

// Stand-in sizes: three per dimension (two to fit, one to check), primes so that a floor or a
// ceiling of a division is never exact, and unlike any size a model declares. Tracing computes
// nothing, so their size costs nothing.
constexpr int64_t kStandIns[kMaxFreeDims][3] = {
    {1031, 1033, 1039}, {1049, 1051, 1061}, {1063, 1069, 1087}, {1091, 1093, 1097}};

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// The text with its digit runs cut out, and the runs.
struct Split {
  std::vector<std::string_view> between;  // tokens.size() + 1 pieces
  std::vector<std::string_view> digits;
  std::vector<NumberToken> tokens;
};

Split split(std::string_view text) {
  Split s;
  s.tokens = number_tokens(text);
  size_t at = 0;
  for (const NumberToken& t : s.tokens) {
    s.between.push_back(text.substr(at, t.begin - at));
    s.digits.push_back(text.substr(t.begin, t.end - t.begin));
    at = t.end;
  }
  s.between.push_back(text.substr(at));
  return s;
}

bool same_structure(const Split& a, const Split& b) {
  return a.between == b.between;
}

std::optional<int64_t> to_int(std::string_view digits) {
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc() || ptr != digits.data() + digits.size()) return std::nullopt;
  return v;
}

// Whether the digit run `t` of `text` is an integer literal of its own (a size, an axis, an
// attribute), which may be recomputed: not part of a name, a float or a negative number, and
// written without leading zeros.
bool is_plain_integer(std::string_view text, const NumberToken& t) {
  if (t.begin > 0) {
    char before = text[t.begin - 1];
    if (std::isalnum(static_cast<unsigned char>(before)) || before == '_' || before == '.' ||
        before == '+' || before == '-' || before == '%' || before == '@' || before == '"')
      return false;
  }
  if (t.end < text.size()) {
    char after = text[t.end];
    if (std::isalnum(static_cast<unsigned char>(after)) || after == '_' || after == '.')
      return false;
  }
  return text[t.begin] != '0' || t.end - t.begin == 1;
}

// The line of `text` around `at`, trimmed, for messages.
std::string line_at(std::string_view text, size_t at) {
  size_t begin = text.rfind('\n', at);
  begin = begin == std::string_view::npos ? 0 : begin + 1;
  size_t end = std::min(text.find('\n', at), text.size());
  std::string_view line = text.substr(begin, end - begin);
  while (!line.empty() && line.front() == ' ')
    line.remove_prefix(1);
  return std::string(line);
}

// The first place two texts of different structure part, as the line of `a` there.
std::string first_difference(std::string_view a, std::string_view b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i])
    ++i;
  return line_at(a, std::min(i, a.empty() ? 0 : a.size() - 1));
}

// The formula at `sizes`, or INT64_MIN when it overflows (never a valid literal; a sidecar's
// coefficients are not trusted).
int64_t evaluate(const std::vector<int64_t>& coefficients, std::span<const int64_t> sizes) {
  int64_t total = 0;
  for (size_t mask = 0; mask < coefficients.size(); ++mask) {
    int64_t term = coefficients[mask];
    for (size_t d = 0; d < sizes.size(); ++d)
      if ((mask & (size_t(1) << d)) && __builtin_mul_overflow(term, sizes[d], &term))
        return INT64_MIN;
    if (__builtin_add_overflow(total, term, &total) || total == INT64_MIN) return INT64_MIN;
  }
  return total;
}

}  // namespace

std::vector<NumberToken> number_tokens(std::string_view text) {
  std::vector<NumberToken> out;
  for (size_t i = 0; i < text.size();) {
    if (!is_digit(text[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < text.size() && is_digit(text[j]))
      ++j;
    out.push_back({i, j});
    i = j;
  }
  return out;
}

Generalised generalise(const std::function<std::string(std::span<const int64_t>)>& trace,
                       const std::vector<FreeDim>& dims, const std::vector<std::string>& names,
                       const std::string& default_text) {
  Generalised result;
  const size_t n = dims.size();
  if (n == 0) return result;
  if (n > kMaxFreeDims) {
    throw ValueError(
        fmt::format("a saved model can have at most {} dimensions of any size (the "
                    "batch included); this one has {}",
                    kMaxFreeDims, n));
  }
  std::set<size_t> bad;
  std::vector<std::string> reasons(n);
  auto fail = [&](size_t d, std::string reason) {
    if (bad.insert(d).second) reasons[d] = std::move(reason);
  };
  // The corners of the grid (bit d set: dimension d at its second stand-in), then one check per
  // dimension at its third stand-in, the others at their first.
  const size_t corners = size_t(1) << n;
  std::vector<std::vector<int64_t>> points;
  for (size_t mask = 0; mask < corners; ++mask) {
    std::vector<int64_t> sizes(n);
    for (size_t d = 0; d < n; ++d)
      sizes[d] = kStandIns[d][(mask >> d) & 1];
    points.push_back(std::move(sizes));
  }
  for (size_t d = 0; d < n; ++d) {
    std::vector<int64_t> sizes(n);
    for (size_t e = 0; e < n; ++e)
      sizes[e] = kStandIns[e][e == d ? 2 : 0];
    points.push_back(std::move(sizes));
  }
  // Which dimensions a point moves away from corner 0.
  auto moved = [&](size_t p) {
    std::vector<size_t> out;
    for (size_t d = 0; d < n; ++d)
      if (points[p][d] != kStandIns[d][0]) out.push_back(d);
    return out;
  };
  std::vector<std::string> texts(points.size());
  std::vector<bool> traced(points.size(), false);
  for (size_t p = 0; p < points.size(); ++p) {
    try {
      texts[p] = trace(points[p]);
      traced[p] = true;
    } catch (const Error& e) {
      const std::string what = e.what();
      if (p == 0) {
        for (size_t d = 0; d < n; ++d)
          fail(d, fmt::format("tracing at stand-in sizes fails: {}", what));
      }
      for (size_t d : moved(p))
        fail(d, fmt::format("tracing at {} {} fails: {}", names[d], points[p][d], what));
    }
  }
  if (!traced[0]) {
    for (size_t d : bad)
      result.not_free.emplace_back(d, reasons[d]);
    return result;
  }
  std::vector<Split> splits;
  for (const std::string& t : texts)
    splits.push_back(split(t));
  for (size_t p = 1; p < points.size(); ++p) {
    if (!traced[p] || same_structure(splits[0], splits[p])) continue;
    for (size_t d : moved(p)) {
      fail(d, fmt::format("the graph changes with {} beyond its sizes, at: {}", names[d],
                          first_difference(texts[0], texts[p])));
    }
  }
  // Fit each literal that changes; a corner not traced leaves its dimensions out (already bad).
  const std::string_view base = texts[0];
  for (size_t i = 0; i < splits[0].tokens.size(); ++i) {
    bool varies = false;
    for (size_t p = 1; p < points.size(); ++p)
      if (traced[p] && same_structure(splits[0], splits[p]) &&
          splits[p].digits[i] != splits[0].digits[i])
        varies = true;
    if (!varies) continue;
    const NumberToken& token = splits[0].tokens[i];
    const std::string where = line_at(base, token.begin);
    std::vector<size_t> varying_dims;
    for (size_t d = 0; d < n; ++d) {
      size_t one = size_t(1) << d, check = corners + d;
      bool moves = false;
      for (size_t p : {one, check})
        if (traced[p] && same_structure(splits[0], splits[p]) &&
            splits[p].digits[i] != splits[0].digits[i])
          moves = true;
      if (moves) varying_dims.push_back(d);
    }
    if (!is_plain_integer(base, token)) {
      for (size_t d : varying_dims)
        fail(d, fmt::format("a value that is not a size changes with {}: {}", names[d], where));
      continue;
    }
    // Values at the corners, then the one-dimensional fit along each dimension in turn: the
    // values become coefficients (see VaryingToken).
    std::vector<int64_t> c(corners);
    bool usable = true;
    for (size_t mask = 0; mask < corners && usable; ++mask) {
      std::optional<int64_t> v;
      if (traced[mask] && same_structure(splits[0], splits[mask]) &&
          is_plain_integer(texts[mask], splits[mask].tokens[i]))
        v = to_int(splits[mask].digits[i]);
      if (!v)
        usable = false;
      else
        c[mask] = *v;
    }
    if (!usable) {
      // A corner not traced or of another structure has failed its dimensions already; a
      // literal too long for int64 has not.
      for (size_t d : varying_dims)
        fail(d, fmt::format("a value that is not a size changes with {}: {}", names[d], where));
      if (varying_dims.empty()) fail(0, fmt::format("a value changes with the sizes: {}", where));
      continue;
    }
    bool fitted = true;
    for (size_t d = 0; d < n && fitted; ++d) {
      const size_t bit = size_t(1) << d;
      const int64_t a = kStandIns[d][0], step = kStandIns[d][1] - a;
      for (size_t mask = 0; mask < corners; ++mask) {
        if (mask & bit) continue;
        const int64_t lo = c[mask], hi = c[mask | bit];
        if ((hi - lo) % step != 0) {
          fail(d, fmt::format("a size is not a whole-number linear function of {} (as it is "
                              "after pooling or a strided window, for one): {}",
                              names[d], where));
          fitted = false;
          break;
        }
        const int64_t slope = (hi - lo) / step;
        c[mask] = lo - slope * a;
        c[mask | bit] = slope;
      }
    }
    if (!fitted) continue;
    // The checks at the third stand-ins.
    for (size_t d = 0; d < n; ++d) {
      size_t p = corners + d;
      if (!traced[p] || !same_structure(splits[0], splits[p])) continue;
      std::optional<int64_t> v;
      if (is_plain_integer(texts[p], splits[p].tokens[i])) v = to_int(splits[p].digits[i]);
      if (!v || *v != evaluate(c, points[p])) {
        fail(d, fmt::format("a size is not a whole-number linear function of {}: {}", names[d],
                            where));
      }
    }
    result.formula.tokens.push_back({i, std::move(c)});
  }
  // The default specialisation must be the same function at its sizes.
  std::vector<int64_t> defaults;
  for (const FreeDim& d : dims)
    defaults.push_back(d.size);
  if (bad.empty()) {
    Split def = split(default_text);
    std::string mismatch;
    if (!same_structure(splits[0], def)) {
      mismatch = first_difference(default_text, base);
    } else {
      for (const VaryingToken& t : result.formula.tokens) {
        if (to_int(def.digits[t.position]) != evaluate(t.coefficients, defaults) ||
            !is_plain_integer(default_text, def.tokens[t.position])) {
          mismatch = line_at(default_text, def.tokens[t.position].begin);
          break;
        }
      }
    }
    if (!mismatch.empty()) {
      for (size_t d = 0; d < n; ++d) {
        fail(d, fmt::format("the graph at the saved sizes differs from the one at other sizes, "
                            "at: {}",
                            mismatch));
      }
    }
  }
  for (size_t d : bad)
    result.not_free.emplace_back(d, reasons[d]);
  if (bad.empty())
    result.formula.dims = dims;
  else
    result.formula.tokens.clear();
  return result;
}

std::string specialise(std::string_view text, const ShapeFormula& formula,
                       std::span<const int64_t> sizes) {
  std::vector<NumberToken> tokens = number_tokens(text);
  std::string out;
  out.reserve(text.size() + 64);
  size_t at = 0;
  for (const VaryingToken& t : formula.tokens) {
    const NumberToken& token = tokens.at(t.position);
    int64_t value = evaluate(t.coefficients, sizes);
    if (value < 0) {
      throw ShapeError(
          fmt::format("a size of the function becomes {} at these sizes, at: {}",
                      value == INT64_MIN ? std::string("too large") : std::to_string(value),
                      line_at(text, token.begin)));
    }
    out.append(text.substr(at, token.begin - at));
    out += std::to_string(value);
    at = token.end;
  }
  out.append(text.substr(at));
  return out;
}

std::string write_shapes(const ShapeFormula& formula) {
  std::string out = "kiln-shapes 1\n";
  for (const FreeDim& d : formula.dims)
    out += d.input == 0 ? fmt::format("free {} {}\n", d.axis, d.size)
                        : fmt::format("free {} {} {}\n", d.axis, d.size, d.input);
  if (!formula.note.empty()) {
    std::string note = formula.note;
    std::replace(note.begin(), note.end(), '\n', ' ');
    out += fmt::format("note {}\n", note);
  }
  for (const VaryingToken& t : formula.tokens)
    out += fmt::format("token {} {}\n", t.position, fmt::join(t.coefficients, " "));
  return out;
}

ShapeFormula read_shapes(std::string_view sidecar, const std::string& path, std::string_view text,
                         std::span<const ir::TensorType> inputs) {
  auto bad = [&](size_t line, const std::string& why) {
    return ValueError(
        fmt::format("{}:{}: {} (the sizes model.kiln may be specialised at; "
                    "delete the file to use the model at its saved shape only)",
                    path, line, why));
  };
  ShapeFormula formula;
  std::istringstream lines{std::string(sidecar)};
  std::string line;
  size_t number = 0;
  const std::vector<NumberToken> tokens = number_tokens(text);
  std::set<size_t> positions;
  bool header = false;
  while (std::getline(lines, line)) {
    ++number;
    if (line.empty()) continue;
    std::istringstream words(line);
    std::string kind;
    words >> kind;
    if (!header) {
      int version = 0;
      if (kind != "kiln-shapes" || !(words >> version) || version != 1)
        throw bad(number, "not a Kiln shapes file of version 1");
      header = true;
      continue;
    }
    if (kind == "note") {
      formula.note = line.size() > 5 ? line.substr(5) : "";
      continue;
    }
    std::vector<int64_t> values;
    for (std::string word; words >> word;) {
      std::optional<int64_t> v;
      int64_t parsed = 0;
      auto [ptr, ec] = std::from_chars(word.data(), word.data() + word.size(), parsed);
      if (ec == std::errc() && ptr == word.data() + word.size()) v = parsed;
      if (!v) throw bad(number, fmt::format("'{}' is not an integer", word));
      values.push_back(*v);
    }
    if (kind == "free") {
      if (!formula.tokens.empty()) throw bad(number, "a 'free' line after the tokens");
      if (values.size() != 2 && values.size() != 3)
        throw bad(number, "'free' takes an axis, a size and optionally an input");
      const int64_t axis = values[0];
      const int64_t input = values.size() == 3 ? values[2] : 0;
      if (input < 0 || size_t(input) >= inputs.size())
        throw bad(number,
                  fmt::format("the model has no input {} (it has {})", input, inputs.size()));
      const ir::TensorType& type = inputs[size_t(input)];
      if (axis < 0 || axis >= type.shape.rank())
        throw bad(number, fmt::format("axis {} is not an axis of input {} ({})", axis, input,
                                      type.to_string()));
      if (axis == 0 && input != 0)
        throw bad(number, "the batch (axis 0) is every input's: list it for input 0");
      if (values[1] != type.shape[axis])
        throw bad(number, fmt::format("axis {} of input {} has size {} in model.kiln, not {}", axis,
                                      input, type.shape[axis], values[1]));
      if (axis == 0) {
        for (const ir::TensorType& other : inputs)
          if (other.shape.rank() == 0 || other.shape[0] != values[1])
            throw bad(number, fmt::format("a free batch needs every input batched at {}; one "
                                          "is {}",
                                          values[1], other.to_string()));
      }
      for (const FreeDim& d : formula.dims)
        if (std::pair(d.input, d.axis) >= std::pair(size_t(input), axis))
          throw bad(number, "the free axes must be in increasing order (by input, then axis)");
      if (formula.dims.size() == kMaxFreeDims)
        throw bad(number, fmt::format("more than {} free axes", kMaxFreeDims));
      formula.dims.push_back({axis, values[1], size_t(input)});
    } else if (kind == "token") {
      const size_t want = size_t(1) << formula.dims.size();
      if (values.size() != want + 1)
        throw bad(number, fmt::format("a token takes a position and {} coefficients", want));
      if (values[0] < 0 || size_t(values[0]) >= tokens.size())
        throw bad(number, fmt::format("model.kiln has no number {}", values[0]));
      const size_t position = size_t(values[0]);
      if (!formula.tokens.empty() && formula.tokens.back().position >= position)
        throw bad(number, "the tokens must be in increasing order");
      VaryingToken t{position, std::vector<int64_t>(values.begin() + 1, values.end())};
      std::vector<int64_t> defaults;
      for (const FreeDim& d : formula.dims)
        defaults.push_back(d.size);
      const NumberToken& at = tokens[position];
      if (!is_plain_integer(text, at) ||
          to_int(text.substr(at.begin, at.end - at.begin)) != evaluate(t.coefficients, defaults))
        throw bad(number, fmt::format("its formula does not give model.kiln's number {} ('{}')",
                                      position, text.substr(at.begin, at.end - at.begin)));
      formula.tokens.push_back(std::move(t));
    } else {
      throw bad(number, fmt::format("unknown line '{}'", kind));
    }
  }
  if (!header) throw bad(1, "the file is empty");
  return formula;
}

}  // namespace kiln::detail
