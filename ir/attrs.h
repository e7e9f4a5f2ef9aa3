// Node attributes: a small sorted map from name to a value of one of a few kinds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "kiln/ir/host_tensor.h"
#include "kiln/ir/types.h"

namespace kiln::ir {

class Function;

// A function-valued attribute (the body of a `scan`): an immutable, shared ir::Function with its
// IR text and a hash of that text computed once. Two are equal when their texts are (so CSE and
// the eager kernel cache treat separately traced but identical bodies as one). A pass that
// changes a body clones it and sets a new attribute.
class FunctionAttr {
 public:
  // Prints and hashes `function` (which must not be null).
  explicit FunctionAttr(std::shared_ptr<const Function> function);
  const Function& function() const { return *function_; }
  const std::shared_ptr<const Function>& shared() const { return function_; }
  // The function's IR text, as ir::print writes it (without locations).
  const std::string& text() const { return text_; }
  size_t hash() const { return hash_; }
  bool operator==(const FunctionAttr& other) const {
    return hash_ == other.hash_ && text_ == other.text_;
  }

 private:
  std::shared_ptr<const Function> function_;
  std::string text_;
  size_t hash_ = 0;
};

// One attribute value. Integers and floats are distinct kinds; in IR text a float always has a
// '.' or an exponent, a tensor is written `dense<...>`; a function follows its node's line as a
// nested `NAME func @f(...) {...}` (see ir/printer.h).
using AttrValue = std::variant<bool, int64_t, double, std::string, std::vector<int64_t>, DType,
                               HostTensor, FunctionAttr>;

// Prints an attribute value as it appears in IR text (a function as `func @name`, for messages).
std::string attr_to_string(const AttrValue& value);
// Structural equality (tensors compare by type and bytes).
bool attr_equal(const AttrValue& a, const AttrValue& b);

class Attrs {
 public:
  Attrs() = default;

  // Sets (or replaces) an attribute.
  Attrs& set(std::string_view name, AttrValue value);
  Attrs& set_int(std::string_view name, int64_t v) { return set(name, AttrValue(v)); }
  Attrs& set_float(std::string_view name, double v) { return set(name, AttrValue(v)); }
  Attrs& set_bool(std::string_view name, bool v) { return set(name, AttrValue(v)); }
  Attrs& set_string(std::string_view name, std::string v) {
    return set(name, AttrValue(std::move(v)));
  }
  Attrs& set_ints(std::string_view name, std::vector<int64_t> v) {
    return set(name, AttrValue(std::move(v)));
  }
  Attrs& set_dtype(std::string_view name, DType v) { return set(name, AttrValue(v)); }
  Attrs& set_tensor(std::string_view name, HostTensor v) {
    return set(name, AttrValue(std::move(v)));
  }
  Attrs& set_function(std::string_view name, std::shared_ptr<const Function> v) {
    return set(name, AttrValue(FunctionAttr(std::move(v))));
  }

  bool has(std::string_view name) const { return find(name) != nullptr; }
  // nullptr if absent.
  const AttrValue* find(std::string_view name) const;
  // Typed getters throw ValueError naming the attribute if it is missing or of another kind.
  // get_float accepts an integer attribute too.
  int64_t get_int(std::string_view name) const;
  double get_float(std::string_view name) const;
  bool get_bool(std::string_view name) const;
  const std::string& get_string(std::string_view name) const;
  const std::vector<int64_t>& get_ints(std::string_view name) const;
  DType get_dtype(std::string_view name) const;
  const HostTensor& get_tensor(std::string_view name) const;
  const FunctionAttr& get_function(std::string_view name) const;
  // Getters with a default for an absent attribute (a present one of another kind still throws).
  int64_t get_int(std::string_view name, int64_t fallback) const;
  double get_float(std::string_view name, double fallback) const;
  bool get_bool(std::string_view name, bool fallback) const;

  // Sorted by name.
  const std::vector<std::pair<std::string, AttrValue>>& items() const { return items_; }
  bool empty() const { return items_.empty(); }
  bool operator==(const Attrs& other) const;
  // "{axis = 1, keepdims = true}", or "" when there is nothing to print; function attributes are
  // left out (the printer writes them after the node's line).
  std::string to_string() const;

 private:
  std::vector<std::pair<std::string, AttrValue>> items_;
};

}  // namespace kiln::ir
