#include "kiln/ir/attrs.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>

#include "kiln/ir/error.h"
#include "kiln/ir/printer.h"

namespace kiln::ir {

namespace {

// Shortest text that reads back to the same double, always with a '.' or exponent.
std::string float_text(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

std::string element_text(const HostTensor& t, int64_t i) {
  return visit_dtype(t.dtype(), [&](auto zero) -> std::string {
    using T = decltype(zero);
    T v = t.data<T>()[i];
    if constexpr (std::is_same_v<T, bool>)
      return v ? "true" : "false";
    else if constexpr (std::is_same_v<T, float>) {
      if (std::isnan(v) || std::isinf(v)) return float_text(v);
      std::string s = fmt::format("{}", v);  // shortest float round-trip
      if (s.find_first_of(".e") == std::string::npos) s += ".0";
      return s;
    } else if constexpr (std::is_same_v<T, double>)
      return float_text(v);
    else
      return fmt::format("{}", v);
  });
}

const char* kind_name(const AttrValue& v) {
  static constexpr const char* kNames[] = {"bool",     "int",   "float",  "string",
                                           "int list", "dtype", "tensor", "function"};
  return kNames[v.index()];
}

}  // namespace

FunctionAttr::FunctionAttr(std::shared_ptr<const Function> function)
    : function_(std::move(function)) {
  KILN_CHECK(function_ != nullptr, "FunctionAttr of a null function");
  text_ = print(*function_);
  hash_ = std::hash<std::string>()(text_);
}

std::string attr_to_string(const AttrValue& value) {
  return std::visit(
      [](const auto& v) -> std::string {
        using V = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<V, bool>)
          return v ? "true" : "false";
        else if constexpr (std::is_same_v<V, int64_t>)
          return fmt::format("{}", v);
        else if constexpr (std::is_same_v<V, double>)
          return float_text(v);
        else if constexpr (std::is_same_v<V, std::string>) {
          std::string out = "\"";
          for (char c : v) {
            if (c == '"' || c == '\\') out += '\\';
            out += c;
          }
          return out + "\"";
        } else if constexpr (std::is_same_v<V, std::vector<int64_t>>)
          return fmt::format("[{}]", fmt::join(v, ", "));
        else if constexpr (std::is_same_v<V, DType>)
          return std::string(dtype_name(v));
        else if constexpr (std::is_same_v<V, FunctionAttr>)
          return fmt::format("func @{}", v.function().name());
        else {
          // dense<f32[2,2]: 1.0, 2.0, 3.0, 4.0>  (row-major values)
          std::string out = fmt::format("dense<{}", v.type().to_string());
          for (int64_t i = 0; i < v.num_elements(); ++i) {
            out += i == 0 ? ": " : ", ";
            out += element_text(v, i);
          }
          return out + ">";
        }
      },
      value);
}

bool attr_equal(const AttrValue& a, const AttrValue& b) {
  if (a.index() != b.index()) return false;
  if (const auto* ta = std::get_if<HostTensor>(&a))
    return ta->bitwise_equal(std::get<HostTensor>(b));
  if (const auto* da = std::get_if<double>(&a)) {
    double db = std::get<double>(b);
    return *da == db || (std::isnan(*da) && std::isnan(db));
  }
  return std::visit(
      [&](const auto& va) {
        using V = std::decay_t<decltype(va)>;
        if constexpr (std::is_same_v<V, HostTensor>)
          return false;  // handled above
        else
          return va == std::get<V>(b);
      },
      a);
}

Attrs& Attrs::set(std::string_view name, AttrValue value) {
  auto it = std::lower_bound(items_.begin(), items_.end(), name,
                             [](const auto& item, std::string_view n) { return item.first < n; });
  if (it != items_.end() && it->first == name) {
    it->second = std::move(value);
  } else {
    items_.emplace(it, std::string(name), std::move(value));
  }
  return *this;
}

const AttrValue* Attrs::find(std::string_view name) const {
  auto it = std::lower_bound(items_.begin(), items_.end(), name,
                             [](const auto& item, std::string_view n) { return item.first < n; });
  return it != items_.end() && it->first == name ? &it->second : nullptr;
}

namespace {
template <class T>
const T& get_as(const Attrs& attrs, std::string_view name, const char* want) {
  const AttrValue* v = attrs.find(name);
  if (v == nullptr) throw ValueError(fmt::format("missing attribute '{}' ({})", name, want));
  const T* p = std::get_if<T>(v);
  if (p == nullptr) {
    throw ValueError(fmt::format("attribute '{}' must be a {}, got a {} ({})", name, want,
                                 kind_name(*v), attr_to_string(*v)));
  }
  return *p;
}
}  // namespace

int64_t Attrs::get_int(std::string_view name) const {
  return get_as<int64_t>(*this, name, "int");
}

double Attrs::get_float(std::string_view name) const {
  const AttrValue* v = find(name);
  if (v != nullptr) {
    if (const auto* i = std::get_if<int64_t>(v)) return static_cast<double>(*i);
  }
  return get_as<double>(*this, name, "float");
}

bool Attrs::get_bool(std::string_view name) const {
  return get_as<bool>(*this, name, "bool");
}
const std::string& Attrs::get_string(std::string_view name) const {
  return get_as<std::string>(*this, name, "string");
}
const std::vector<int64_t>& Attrs::get_ints(std::string_view name) const {
  return get_as<std::vector<int64_t>>(*this, name, "int list");
}
DType Attrs::get_dtype(std::string_view name) const {
  return get_as<DType>(*this, name, "dtype");
}
const HostTensor& Attrs::get_tensor(std::string_view name) const {
  return get_as<HostTensor>(*this, name, "tensor");
}
const FunctionAttr& Attrs::get_function(std::string_view name) const {
  return get_as<FunctionAttr>(*this, name, "function");
}

int64_t Attrs::get_int(std::string_view name, int64_t fallback) const {
  return has(name) ? get_int(name) : fallback;
}
double Attrs::get_float(std::string_view name, double fallback) const {
  return has(name) ? get_float(name) : fallback;
}
bool Attrs::get_bool(std::string_view name, bool fallback) const {
  return has(name) ? get_bool(name) : fallback;
}

bool Attrs::operator==(const Attrs& other) const {
  if (items_.size() != other.items_.size()) return false;
  for (size_t i = 0; i < items_.size(); ++i) {
    if (items_[i].first != other.items_[i].first) return false;
    if (!attr_equal(items_[i].second, other.items_[i].second)) return false;
  }
  return true;
}

std::string Attrs::to_string() const {
  std::string out;
  for (const auto& [name, value] : items_) {
    if (std::holds_alternative<FunctionAttr>(value)) continue;
    out += out.empty() ? "{" : ", ";
    out += fmt::format("{} = {}", name, attr_to_string(value));
  }
  return out.empty() ? out : out + "}";
}

}  // namespace kiln::ir
