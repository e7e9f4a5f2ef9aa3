// Finding NaN and Inf at their source, like tf.debugging.check_numerics and
// tf.debugging.enable_check_numerics.
//
//   k::Tensor loss = k::check_numerics(compute_loss(), "loss");  // ValueError if NaN/Inf
//
//   k::enable_check_numerics();   // every op checks its results from now on; the first op that
//                                 // turns finite operands into NaN/Inf raises a ValueError
//                                 // naming the op and the user's line
//
// Both work eagerly and in kiln::function. A traced check_numerics is checked after each call,
// before the call's variable updates are applied. With enable_check_numerics, a compiled call
// whose results hold a NaN/Inf is replayed in the interpreter to find the op that made it (the
// variable updates of that call are not applied).
#pragma once

#include <source_location>
#include <span>
#include <string>

#include "kiln/frontend/core/tensor.h"
#include "kiln/ir/function.h"
#include "kiln/ir/host_tensor.h"

namespace kiln {

// Returns `t`; raises ValueError with `message` when t holds a NaN or an Inf.
Tensor check_numerics(const Tensor& t, std::string message,
                      std::source_location loc = std::source_location::current());

// Turns checking of every op's results on or off for the whole program.
void enable_check_numerics();
void disable_check_numerics();
bool check_numerics_enabled();

namespace detail {
// True when `t` (of any dtype) holds no NaN or Inf.
bool all_finite(const ir::HostTensor& t);
// Raises if an eagerly run op made a NaN/Inf out of finite operands.
void check_op_results(ir::Op op, std::span<const Tensor> inputs, std::span<const Tensor> outputs,
                      const std::source_location& loc);
// Raises for a traced check whose value holds a NaN/Inf.
void check_traced_value(const ir::HostTensor& value, const std::string& message,
                        const std::string& scope, const ir::SourceLoc& loc);
// Runs `graph` on `args` in the interpreter and raises at the first node that makes a NaN/Inf
// out of finite operands; `function` names the kiln::function in the message.
void locate_non_finite(const ir::Function& graph, std::span<const ir::HostTensor* const> args,
                       const std::string& function);
}  // namespace detail

}  // namespace kiln
