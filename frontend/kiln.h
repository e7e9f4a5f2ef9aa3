// The one header a Kiln user includes: `namespace k = kiln; #include <kiln/kiln.h>`.
#pragma once

#include "kiln/frontend/apply.h"
#include "kiln/frontend/check_numerics.h"
#include "kiln/frontend/function.h"
#include "kiln/frontend/grad.h"
#include "kiln/frontend/gradient_tape.h"
#include "kiln/frontend/index.h"
#include "kiln/frontend/log.h"
#include "kiln/frontend/losses.h"
#include "kiln/frontend/npy.h"
#include "kiln/frontend/operand.h"
#include "kiln/frontend/optimizers.h"
#include "kiln/frontend/ops.h"
#include "kiln/frontend/tensor.h"
#include "kiln/frontend/variable.h"
#include "kiln/ir/error.h"
