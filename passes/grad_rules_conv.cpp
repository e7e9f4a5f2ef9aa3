// Gradient rules of conv2d and the 2-D pools.
#include "kiln/passes/grad_rules.h"

namespace kiln::passes::grad {

void add_conv_rules(RuleTable&) {}

}  // namespace kiln::passes::grad
