// A LaunchPlan as bytes: how an ahead-of-time library for NVIDIA GPUs carries its launch plan
// (kiln aot --device cuda) to the runtime linked into it, which parses and validates it when a
// model is created. Little-endian, versioned, every field of every launch and GEMM step; the
// parser never trusts the bytes (a count, an enum or a length out of range is an error, as are
// bytes left over). What the steps refer to (buffers, grids, symbols) is checked by
// DeviceExecutable's constructor.
#pragma once

#include <cstddef>
#include <string>

#include "kiln/runtime/cuda/launch_plan.h"

namespace kiln::runtime::cuda {

// The bytes of `plan`.
std::string serialize_launch_plan(const LaunchPlan& plan);

// The plan held by `bytes` bytes at `data`, as serialize_launch_plan wrote it. Throws
// std::invalid_argument saying what is wrong with malformed bytes.
LaunchPlan parse_launch_plan(const void* data, std::size_t bytes);

}  // namespace kiln::runtime::cuda
