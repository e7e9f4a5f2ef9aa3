// How frontend errors are decorated: the op's name, its operands' types, the name scope and the
// user's line are added to an error before it is thrown (see name_scope.h for the last two).
#pragma once

#include <initializer_list>
#include <source_location>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "kiln/frontend/core/tensor.h"
#include "kiln/ir/error.h"

namespace kiln::detail {

// Adds the name scope and the user's location of a call at `loc` (node_scope, node_loc).
void add_user_location(Error& error, const std::source_location& loc);

// Adds the op name, the operand types, the name scope and the user's location to an error
// raised by frontend code itself (argument checks made before an op runs).
void decorate(Error& error, std::string_view op, std::span<const Tensor> operands,
              const std::source_location& loc);

inline void decorate(Error& error, std::string_view op, std::initializer_list<Tensor> operands,
                     const std::source_location& loc) {
  decorate(error, op, std::span<const Tensor>(operands.begin(), operands.size()), loc);
}

// Throws E(message) decorated like an op error.
template <class E>
[[noreturn]] void raise(std::string_view op, std::span<const Tensor> operands, std::string message,
                        const std::source_location& loc) {
  E error(std::move(message));
  decorate(error, op, operands, loc);
  throw error;
}
template <class E>
[[noreturn]] void raise(std::string_view op, std::initializer_list<Tensor> operands,
                        std::string message, const std::source_location& loc) {
  raise<E>(op, std::span<const Tensor>(operands.begin(), operands.size()), std::move(message), loc);
}

}  // namespace kiln::detail
