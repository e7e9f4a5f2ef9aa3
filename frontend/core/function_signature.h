// The signature of a kiln::function call (the cache key) and the comparison behind retrace
// messages. Internal to function.cpp.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/frontend/core/device.h"
#include "kiln/frontend/core/function_args.h"
#include "kiln/ir/types.h"

namespace kiln::detail {

// One argument's part of a signature.
struct ArgSignature {
  ArgSpec::Kind kind = ArgSpec::Kind::value;
  std::vector<TensorType> types;  // tensor leaves, or the variable's type
  std::vector<Device> devices;    // where each of `types` lives
  std::vector<size_t> sizes;      // vector lengths inside a tensor structure
  std::string type;               // a plain value's C++ type
  std::string value;              // a plain value; for a Variable, which argument it aliases
};

struct Signature {
  std::vector<ArgSignature> args;
  // Equal keys ⇔ equal signatures (see signature_key).
  std::string key;
};

// Writes the cache key of `call` into `key` (replacing its contents): a binary, length-prefixed
// encoding of dtypes, shapes, devices, vector lengths, Variable aliasing and plain values, equal
// exactly when the signatures are equal. Builds no text, so a cache hit costs no formatting and,
// with a reused `key`, no allocation. Returns false (key unspecified) if an argument is an
// undefined or symbolic tensor or an undefined Variable: make_signature then throws the error.
bool signature_key(const CallArgs& call, std::string& key);

// The signature of `call` for the function `function_name` whose parameters are spelled
// `expected`; ValueError for an undefined or symbolic tensor or an undefined Variable.
Signature make_signature(const CallArgs& call, std::string_view function_name,
                         std::string_view expected);

// "poly(f32[4], 3)", for messages.
std::string signature_text(std::string_view function_name, const Signature& signature);

// One difference between two signatures.
struct Change {
  std::string where;   // "argument 0", "argument 1[2]"
  std::string aspect;  // "dtype", "shape", "device", "value", "structure", "aliasing"
  std::string text;    // "dtype f32 → f64"
};

// What differs from `before` to `after` (signatures of the same function).
std::vector<Change> compare(const Signature& before, const Signature& after);

// "argument 0: dtype f32 → f64, shape (4,) → (2,); argument 1: 3 → 4"
std::string changes_text(const std::vector<Change>& changes);

}  // namespace kiln::detail
