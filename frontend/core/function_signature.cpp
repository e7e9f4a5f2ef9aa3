#include "kiln/frontend/core/function_signature.h"

#include <fmt/format.h>

#include <cstdint>

#include "kiln/ir/error.h"

namespace kiln::detail {

namespace {

void check_leaf(const Tensor& t, size_t arg, std::string_view function_name,
                std::string_view expected) {
  if (!t.defined()) {
    throw ValueError(
        fmt::format("argument {} of function '{}' is an undefined Tensor; the "
                    "function's signature is {}",
                    arg, function_name, expected));
  }
  if (t.is_symbolic()) {
    throw ValueError(
        fmt::format("argument {} of function '{}' is a symbolic tensor left over "
                    "from a trace; pass concrete tensors (the function's signature "
                    "is {})",
                    arg, function_name, expected));
  }
}

std::string sizes_text(const std::vector<size_t>& sizes) {
  return fmt::format("[{}]", fmt::join(sizes, ", "));
}

// Appends the bytes of a trivially copyable value.
template <class T>
void put(std::string& key, T value) {
  key.append(reinterpret_cast<const char*>(&value), sizeof value);
}

void put_type(std::string& key, const TensorType& type) {
  const std::vector<int64_t>& dims = type.shape.dims();
  put(key, static_cast<uint8_t>(type.dtype));
  put(key, static_cast<uint32_t>(dims.size()));
  key.append(reinterpret_cast<const char*>(dims.data()), dims.size() * sizeof(int64_t));
}

void put_device(std::string& key, const Device& device) {
  put(key, static_cast<uint8_t>(device.kind()));
  put(key, static_cast<int32_t>(device.index()));
}

// Length-prefixed, so that no value can imitate the fields after it.
void put_text(std::string& key, std::string_view text) {
  put(key, static_cast<uint32_t>(text.size()));
  key.append(text);
}

// Which earlier Variable argument `v` (variables[index]) is, or -1.
int32_t alias_of(const CallArgs& call, size_t index) {
  for (size_t j = 0; j < index; ++j) {
    if (call.variables[j].is(call.variables[index])) return static_cast<int32_t>(j);
  }
  return -1;
}

void compare_devices(const ArgSignature& a, const ArgSignature& b, size_t j,
                     const std::string& where, std::vector<Change>& out) {
  if (j < a.devices.size() && j < b.devices.size() && a.devices[j] != b.devices[j]) {
    out.push_back(
        {where, "device",
         fmt::format("device {} → {}", a.devices[j].to_string(), b.devices[j].to_string())});
  }
}

void compare_types(const TensorType& a, const TensorType& b, const std::string& where,
                   std::vector<Change>& out) {
  if (a.dtype != b.dtype) {
    out.push_back({where, "dtype",
                   fmt::format("dtype {} → {}", ir::dtype_name(a.dtype), ir::dtype_name(b.dtype))});
  }
  if (a.shape != b.shape) {
    out.push_back(
        {where, "shape", fmt::format("shape {} → {}", a.shape.to_string(), b.shape.to_string())});
  }
}

void compare_tensors(const ArgSignature& a, const ArgSignature& b, size_t index,
                     std::vector<Change>& out) {
  std::string where = fmt::format("argument {}", index);
  if (a.types.size() != b.types.size()) {
    out.push_back({where, "structure",
                   fmt::format("{} tensors → {} tensors", a.types.size(), b.types.size())});
    return;
  }
  if (a.sizes != b.sizes) {
    out.push_back({where, "structure",
                   fmt::format("lengths {} → {}", sizes_text(a.sizes), sizes_text(b.sizes))});
    return;
  }
  // A lone tensor is "argument 0"; the leaves of a structure are "argument 0[1]".
  bool single = a.types.size() == 1 && a.sizes.empty();
  for (size_t j = 0; j < a.types.size(); ++j) {
    const std::string at = single ? where : fmt::format("{}[{}]", where, j);
    compare_types(a.types[j], b.types[j], at, out);
    compare_devices(a, b, j, at, out);
  }
}

// " on cuda:0" for a leaf on a GPU; nothing on the cpu.
std::string placed(const ArgSignature& arg, size_t j) {
  return j < arg.devices.size() && arg.devices[j].is_cuda() ? " on " + arg.devices[j].to_string()
                                                            : std::string();
}

std::string alias_text(const std::string& value) {
  return value.empty() ? "a distinct Variable" : value;
}

}  // namespace

Signature make_signature(const CallArgs& call, std::string_view function_name,
                         std::string_view expected) {
  Signature sig;
  std::vector<size_t> variable_arg;  // the argument index of each Variable argument
  for (size_t i = 0; i < call.args.size(); ++i) {
    const ArgSpec& spec = call.args[i];
    ArgSignature arg;
    arg.kind = spec.kind;
    switch (spec.kind) {
      case ArgSpec::Kind::tensors:
        for (size_t j = spec.first; j < spec.first + spec.count; ++j) {
          check_leaf(call.tensors[j], i, function_name, expected);
          arg.types.push_back(call.tensors[j].type());
          arg.devices.push_back(call.tensors[j].device());
        }
        arg.sizes = spec.sizes;
        break;
      case ArgSpec::Kind::variable: {
        const Variable& v = call.variables[spec.first];
        if (!v.defined()) {
          throw ValueError(
              fmt::format("argument {} of function '{}' is an undefined Variable; "
                          "the function's signature is {}",
                          i, function_name, expected));
        }
        arg.types.push_back(v.type());
        arg.devices.push_back(v.device());
        // Passing one variable twice traces differently (one input, one update).
        int32_t alias = alias_of(call, spec.first);
        if (alias >= 0) {
          arg.value = fmt::format("the same Variable as argument {}",
                                  variable_arg[static_cast<size_t>(alias)]);
        }
        variable_arg.push_back(i);
        break;
      }
      case ArgSpec::Kind::value:
        arg.type = spec.type;
        arg.value = spec.value;
        break;
    }
    sig.args.push_back(std::move(arg));
  }
  bool valid = signature_key(call, sig.key);
  KILN_CHECK(valid, "a checked call has no signature key");
  return sig;
}

bool signature_key(const CallArgs& call, std::string& key) {
  key.clear();
  for (const ArgSpec& spec : call.args) {
    put(key, static_cast<uint8_t>(spec.kind));
    switch (spec.kind) {
      case ArgSpec::Kind::tensors:
        put(key, static_cast<uint32_t>(spec.count));
        for (size_t j = spec.first; j < spec.first + spec.count; ++j) {
          const Tensor& t = call.tensors[j];
          if (!t.defined() || t.is_symbolic()) return false;
          put_type(key, t.type());
          put_device(key, t.device());
        }
        put(key, static_cast<uint32_t>(spec.sizes.size()));
        for (size_t size : spec.sizes)
          put(key, static_cast<uint64_t>(size));
        break;
      case ArgSpec::Kind::variable: {
        const Variable& v = call.variables[spec.first];
        if (!v.defined()) return false;
        put_type(key, v.type());
        put_device(key, v.device());
        put(key, alias_of(call, spec.first));
        break;
      }
      case ArgSpec::Kind::value:
        put_text(key, spec.type);
        put_text(key, spec.value);
        break;
    }
  }
  return true;
}

std::string signature_text(std::string_view function_name, const Signature& signature) {
  std::vector<std::string> parts;
  for (const ArgSignature& arg : signature.args) {
    switch (arg.kind) {
      case ArgSpec::Kind::tensors: {
        std::vector<std::string> leaves;
        for (size_t j = 0; j < arg.types.size(); ++j)
          leaves.push_back(arg.types[j].to_string() + placed(arg, j));
        if (arg.types.size() == 1 && arg.sizes.empty())
          parts.push_back(leaves[0]);
        else
          parts.push_back(fmt::format("[{}]", fmt::join(leaves, ", ")));
        break;
      }
      case ArgSpec::Kind::variable:
        parts.push_back(fmt::format("Variable {}{}", arg.types[0].to_string(), placed(arg, 0)));
        break;
      case ArgSpec::Kind::value:
        parts.push_back(arg.value);
        break;
    }
  }
  return fmt::format("{}({})", function_name, fmt::join(parts, ", "));
}

std::vector<Change> compare(const Signature& before, const Signature& after) {
  std::vector<Change> changes;
  KILN_CHECK(before.args.size() == after.args.size(), "signatures of different arity");
  for (size_t i = 0; i < after.args.size(); ++i) {
    const ArgSignature& a = before.args[i];
    const ArgSignature& b = after.args[i];
    std::string where = fmt::format("argument {}", i);
    switch (b.kind) {
      case ArgSpec::Kind::tensors:
        compare_tensors(a, b, i, changes);
        break;
      case ArgSpec::Kind::variable:
        compare_types(a.types[0], b.types[0], where, changes);
        compare_devices(a, b, 0, where, changes);
        if (a.value != b.value) {
          changes.push_back({where, "aliasing",
                             fmt::format("{} → {}", alias_text(a.value), alias_text(b.value))});
        }
        break;
      case ArgSpec::Kind::value:
        if (a.value != b.value) {
          changes.push_back({where, "value", fmt::format("{} → {}", a.value, b.value)});
        }
        break;
    }
  }
  return changes;
}

std::string changes_text(const std::vector<Change>& changes) {
  std::string text;
  for (size_t i = 0; i < changes.size(); ++i) {
    bool same_place = i > 0 && changes[i].where == changes[i - 1].where;
    if (i > 0) text += same_place ? ", " : "; ";
    if (!same_place) text += changes[i].where + ": ";
    text += changes[i].text;
  }
  return text;
}

}  // namespace kiln::detail
