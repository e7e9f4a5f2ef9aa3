// How kiln::function sees the arguments and results of a call: tensor structures flattened to
// leaves, Variables, and plain values that become part of the signature. The template side of
// function.h; everything that is not a template lives in function.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "kiln/frontend/core/tensor.h"
#include "kiln/frontend/core/variable.h"

namespace kiln::detail {

// One C++ argument of a call, as the signature sees it.
struct ArgSpec {
  enum class Kind : uint8_t { tensors, variable, value };
  Kind kind = Kind::value;
  // tensors: the leaves are CallArgs::tensors[first, first + count), `sizes` the lengths of the
  // vectors inside in order; variable: CallArgs::variables[first].
  size_t first = 0;
  size_t count = 0;
  std::vector<size_t> sizes;
  // value: the C++ type and the printed value, both part of the cache key.
  std::string type;
  std::string value;
};

// A call's arguments, flattened.
struct CallArgs {
  std::vector<ArgSpec> args;
  std::vector<Tensor> tensors;
  std::vector<Variable> variables;
};

// Reads tensor leaves (and vector lengths) back in the order they were flattened.
struct LeafReader {
  std::span<const Tensor> leaves;
  std::span<const size_t> sizes;
  size_t leaf = 0;
  size_t size = 0;
  Tensor next() { return leaves[leaf++]; }
  size_t next_size() { return sizes[size++]; }
};

// Readable C++ type names for signatures and errors.
std::string demangle(const char* mangled);
template <class T>
struct TypeName {
  static std::string get() { return demangle(typeid(T).name()); }
};
template <>
struct TypeName<Tensor> {
  static std::string get() { return "Tensor"; }
};
template <>
struct TypeName<Variable> {
  static std::string get() { return "Variable"; }
};
template <>
struct TypeName<std::string> {
  static std::string get() { return "std::string"; }
};
template <class T>
struct TypeName<std::vector<T>> {
  static std::string get() { return "std::vector<" + TypeName<T>::get() + ">"; }
};
template <class A, class B>
struct TypeName<std::pair<A, B>> {
  static std::string get() {
    return "std::pair<" + TypeName<A>::get() + ", " + TypeName<B>::get() + ">";
  }
};
template <class... Ts>
struct TypeName<std::tuple<Ts...>> {
  static std::string get() {
    std::string text;
    ((text += (text.empty() ? "" : ", ") + TypeName<Ts>::get()), ...);
    return "std::tuple<" + text + ">";
  }
};

// Structures of tensors: Tensor, and std::vector / std::tuple / std::pair of structures.
template <class T>
struct TensorTree {
  static constexpr bool ok = false;
};
template <>
struct TensorTree<Tensor> {
  static constexpr bool ok = true;
  static void flatten(const Tensor& t, std::vector<Tensor>& out, std::vector<size_t>&) {
    out.push_back(t);
  }
  static Tensor rebuild(LeafReader& r) { return r.next(); }
  static Tensor replace(const Tensor&, LeafReader& r) { return r.next(); }
};
template <class T>
requires TensorTree<T>::ok struct TensorTree<std::vector<T>> {
  static constexpr bool ok = true;
  static void flatten(const std::vector<T>& v, std::vector<Tensor>& out,
                      std::vector<size_t>& sizes) {
    sizes.push_back(v.size());
    for (const T& x : v)
      TensorTree<T>::flatten(x, out, sizes);
  }
  static std::vector<T> rebuild(LeafReader& r) {
    std::vector<T> v(r.next_size());
    for (T& x : v)
      x = TensorTree<T>::rebuild(r);
    return v;
  }
  static std::vector<T> replace(const std::vector<T>& v, LeafReader& r) {
    std::vector<T> out;
    out.reserve(v.size());
    for (const T& x : v)
      out.push_back(TensorTree<T>::replace(x, r));
    return out;
  }
};
template <class... Ts>
requires(TensorTree<Ts>::ok&&...) struct TensorTree<std::tuple<Ts...>> {
  static constexpr bool ok = true;
  static void flatten(const std::tuple<Ts...>& t, std::vector<Tensor>& out,
                      std::vector<size_t>& sizes) {
    std::apply([&](const Ts&... x) { (TensorTree<Ts>::flatten(x, out, sizes), ...); }, t);
  }
  // Braced initialization evaluates left to right, so leaves are read in order.
  static std::tuple<Ts...> rebuild(LeafReader& r) {
    return std::tuple<Ts...>{TensorTree<Ts>::rebuild(r)...};
  }
  static std::tuple<Ts...> replace(const std::tuple<Ts...>& t, LeafReader& r) {
    return std::apply(
        [&](const Ts&... x) { return std::tuple<Ts...>{TensorTree<Ts>::replace(x, r)...}; }, t);
  }
};
template <class A, class B>
requires(TensorTree<A>::ok&& TensorTree<B>::ok) struct TensorTree<std::pair<A, B>> {
  static constexpr bool ok = true;
  static void flatten(const std::pair<A, B>& p, std::vector<Tensor>& out,
                      std::vector<size_t>& sizes) {
    TensorTree<A>::flatten(p.first, out, sizes);
    TensorTree<B>::flatten(p.second, out, sizes);
  }
  static std::pair<A, B> rebuild(LeafReader& r) {
    return std::pair<A, B>{TensorTree<A>::rebuild(r), TensorTree<B>::rebuild(r)};
  }
  static std::pair<A, B> replace(const std::pair<A, B>& p, LeafReader& r) {
    return std::pair<A, B>{TensorTree<A>::replace(p.first, r), TensorTree<B>::replace(p.second, r)};
  }
};

// Plain values that may be arguments: they are printed into the cache key.
template <class T>
concept PlainValue = std::is_arithmetic_v<T> || std::is_enum_v<T> || std::is_same_v<T, std::string>;

std::string value_text(bool v);
std::string value_text(float v);
std::string value_text(double v);
std::string value_text(long double v);
std::string value_text(int64_t v);
std::string value_text(uint64_t v);
std::string value_text(std::string_view v);

template <PlainValue T>
std::string plain_value_text(const T& v) {
  if constexpr (std::is_enum_v<T>) {
    using U = std::underlying_type_t<T>;
    return TypeName<T>::get() + "(" + plain_value_text(static_cast<U>(v)) + ")";
  } else if constexpr (std::is_same_v<T, bool> || std::is_floating_point_v<T> ||
                       std::is_same_v<T, std::string>) {
    return value_text(v);
  } else if constexpr (std::is_signed_v<T>) {
    return value_text(static_cast<int64_t>(v));
  } else {
    return value_text(static_cast<uint64_t>(v));
  }
}

// Adds one argument to `call`.
template <class T>
void describe_argument(const T& arg, CallArgs& call) {
  ArgSpec spec;
  if constexpr (TensorTree<T>::ok) {
    spec.kind = ArgSpec::Kind::tensors;
    spec.first = call.tensors.size();
    TensorTree<T>::flatten(arg, call.tensors, spec.sizes);
    spec.count = call.tensors.size() - spec.first;
  } else if constexpr (std::is_same_v<T, Variable>) {
    spec.kind = ArgSpec::Kind::variable;
    spec.first = call.variables.size();
    call.variables.push_back(arg);
  } else {
    static_assert(PlainValue<T>,
                  "kiln::function parameters must be Tensor, Variable, a std::vector / "
                  "std::tuple / std::pair of tensors, or a plain value (arithmetic, enum, "
                  "std::string)");
    spec.kind = ArgSpec::Kind::value;
    spec.type = TypeName<T>::get();
    spec.value = plain_value_text(arg);
  }
  call.args.push_back(std::move(spec));
}

// The argument as the traced body receives it: tensor leaves replaced by the next leaves of
// `reader` (the symbolic parameters), anything else unchanged.
template <class T>
T with_leaves(const T& arg, LeafReader& reader) {
  if constexpr (TensorTree<T>::ok)
    return TensorTree<T>::replace(arg, reader);
  else
    return arg;
}

// True while a kiln::function is being traced on this thread.
bool current_trace_active();

}  // namespace kiln::detail
