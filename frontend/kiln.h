// The one header a Kiln user includes.
#pragma once

#include "kiln/ir/error.h"
#include "kiln/frontend/tensor.h"
