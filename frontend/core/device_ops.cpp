#include "kiln/frontend/core/device_ops.h"

#include <fmt/format.h>

#include <memory>
#include <stdexcept>

#include "kiln/frontend/core/op_error.h"
#include "kiln/runtime/cuda/device.h"
#include "kiln/runtime/cuda/driver.h"

namespace kiln::detail {

namespace cu = runtime::cuda;

Tensor copy_to_device(const ir::HostTensor& value, const Device& device, std::string_view op,
                      std::span<const Tensor> operands, const std::source_location& loc) {
  KILN_CHECK(device.is_cuda(), "copy_to_device to the cpu");
  try {
    auto buffer =
        std::make_shared<cu::DeviceBuffer>(cu::Context::retain(device.index()), value.nbytes());
    if (value.nbytes() != 0) buffer->copy_from_host(value.raw(), value.nbytes());
    return TensorAccess::on_device(value.type(), device, std::move(buffer));
  } catch (const std::runtime_error&) {
    rethrow_device_failure(device, op, operands, loc);
  }
}

ir::HostTensor copy_to_host(const Tensor& t, std::string_view op, const std::source_location& loc) {
  const std::shared_ptr<cu::DeviceBuffer>& buffer = TensorAccess::device_buffer(t);
  KILN_CHECK(buffer != nullptr, "copy_to_host of a tensor that is not on a GPU");
  // Allocated before the copy, so host memory that cannot be had is the host's ResourceError.
  ir::HostTensor host = ir::HostTensor::uninitialized(t.type());
  try {
    if (host.nbytes() != 0) buffer->copy_to_host(host.raw(), host.nbytes());
  } catch (const std::runtime_error&) {
    rethrow_device_failure(t.device(), op, {&t, 1}, loc);
  }
  return host;
}

Device operands_device(ir::Op op, std::span<const Tensor> operands,
                       const std::source_location& loc) {
  // The first operand on a GPU decides; then every operand must be there too, or be a 0-d cpu
  // tensor, which goes along (a scalar is an argument rather than data to move).
  size_t first = 0;
  while (first < operands.size() && operands[first].device().is_cpu())
    ++first;
  KILN_CHECK(first < operands.size(), "operands_device without an operand on a GPU");
  const Device device = operands[first].device();
  for (size_t i = 0; i < operands.size(); ++i) {
    const Device other = operands[i].device();
    if (other == device || (other.is_cpu() && operands[i].rank() == 0)) continue;
    const size_t a = std::min(i, first), b = std::max(i, first);
    raise<DeviceError>(
        ir::op_name(op), operands,
        fmt::format("operands on {} and {} (operand {} is on {}, operand {} on {}); move them to "
                    "one device with .to(...)",
                    operands[a].device().to_string(), operands[b].device().to_string(), a,
                    operands[a].device().to_string(), b, operands[b].device().to_string()),
        loc);
  }
  return device;
}

std::vector<Tensor> run_on_device(ir::Op op, std::span<const Tensor> operands,
                                  const ir::Attrs& attrs, std::span<const ir::TensorType> out_types,
                                  const Device& device, const std::source_location& loc) {
  (void)attrs;
  (void)out_types;
  raise<DeviceError>(ir::op_name(op), operands,
                     fmt::format("ops on {} do not run yet (issue 14 in progress); copy to the CPU "
                                 "with .to(k::Device::cpu())",
                                 device.to_string()),
                     loc);
}

void place_created(std::vector<Tensor>& results, const std::source_location& loc) {
  const Device device = current_device();
  if (device.is_cpu()) return;
  for (Tensor& t : results)
    t = t.to(device, loc);
}

void rethrow_device_failure(const Device& device, std::string_view op,
                            std::span<const Tensor> operands, const std::source_location& loc) {
  try {
    throw;
  } catch (const cu::UnavailableError& e) {
    raise<DeviceError>(op, operands,
                       fmt::format("{} cannot be used ({}): {}", device.to_string(),
                                   cu::reason_name(e.reason()), e.what()),
                       loc);
  } catch (const cu::CudaError& e) {
    if (e.code() == cu::CUDA_ERROR_OUT_OF_MEMORY) {
      raise<ResourceError>(
          op, operands, fmt::format("out of memory on {}: {}", device.to_string(), e.what()), loc);
    }
    raise<DeviceError>(op, operands, fmt::format("{} failed: {}", device.to_string(), e.what()),
                       loc);
  }
}

}  // namespace kiln::detail
