// Tensors on GPUs inside the frontend: copies between host and device memory, the device an op's
// operands put it on, the one place where ops on a GPU run (run_on_device), and the mapping of the
// CUDA driver layer's failures (runtime/cuda) to kiln::Errors.
#pragma once

#include <initializer_list>
#include <source_location>
#include <span>
#include <string_view>
#include <vector>

#include "kiln/frontend/core/device.h"
#include "kiln/frontend/core/tensor.h"
#include "kiln/ir/attrs.h"
#include "kiln/ir/host_tensor.h"
#include "kiln/ir/op.h"

namespace kiln::detail {

// Throws DeviceError (decorated as `op` on `operands` at `loc`) unless `device` can hold tensors:
// the CPU always can; a GPU needs a usable driver and an index below the device count.
void check_device_usable(const Device& device, std::string_view op,
                         std::span<const Tensor> operands, const std::source_location& loc);

// A copy of `value` in new memory on GPU `device` (which must be usable: check_device_usable).
// Driver failures become kiln::Errors decorated as `op` on `operands` at `loc`.
Tensor copy_to_device(const ir::HostTensor& value, const Device& device, std::string_view op,
                      std::span<const Tensor> operands, const std::source_location& loc);
inline Tensor copy_to_device(const ir::HostTensor& value, const Device& device, std::string_view op,
                             std::initializer_list<Tensor> operands,
                             const std::source_location& loc) {
  return copy_to_device(value, device, op,
                        std::span<const Tensor>(operands.begin(), operands.size()), loc);
}
// A copy on the host of `t`, which lives on a GPU; failures are decorated like copy_to_device's.
ir::HostTensor copy_to_host(const Tensor& t, std::string_view op, const std::source_location& loc);

// The device an op on `operands` (concrete, at least one on a GPU) runs on: the GPU they share.
// 0-d tensors on the cpu (scalar operands such as the 1 of `x + 1.f`) go along with any device,
// as in PyTorch. Operands on two devices are a DeviceError naming both, the op and `loc`.
Device operands_device(ir::Op op, std::span<const Tensor> operands,
                       const std::source_location& loc);

// Runs `op` on GPU `device` with operands there (and 0-d cpu ones), giving results of
// `out_types` on it. Ops do not run on GPUs yet (issue 14): this throws a DeviceError saying so.
std::vector<Tensor> run_on_device(ir::Op op, std::span<const Tensor> operands,
                                  const ir::Attrs& attrs, std::span<const ir::TensorType> out_types,
                                  const Device& device, const std::source_location& loc);

// Moves the results of a creation op (one without operands) to the innermost DeviceScope's device
// when that is a GPU.
void place_created(std::vector<Tensor>& results, const std::source_location& loc);

// Rethrows the exception being handled, a failure of the CUDA driver layer on `device`, as a
// kiln::Error decorated as `op` on `operands` at `loc`: no usable driver is a DeviceError saying
// why, out of memory a ResourceError naming the sizes, any other CUDA error a DeviceError with its
// code. Exceptions of other kinds are rethrown unchanged. Call only inside a catch block.
[[noreturn]] void rethrow_device_failure(const Device& device, std::string_view op,
                                         std::span<const Tensor> operands,
                                         const std::source_location& loc);

}  // namespace kiln::detail
