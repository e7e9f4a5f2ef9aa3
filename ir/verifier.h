// Checks that a Function is well formed; run between passes in tests and debug builds.
#pragma once

#include "kiln/ir/error.h"
#include "kiln/ir/function.h"

namespace kiln::ir {

// An ill-formed Function; the message names the function, the node (index and printed form),
// its scope and source location.
class VerifyError : public Error {
  using Error::Error;
};

// Throws VerifyError unless: every operand is a parameter or an earlier node's result; every
// node's result types are what its op's rule infers (and the rule accepts its attributes);
// outputs and updates refer to values of this function; each update targets a parameter, at
// most once, with a value of the parameter's type.
void verify(const Function& function);

}  // namespace kiln::ir
