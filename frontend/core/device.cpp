#include "kiln/frontend/core/device.h"

#include <atomic>

#include <fmt/format.h>

#include <charconv>
#include <limits>
#include <new>
#include <ostream>
#include <vector>

#include "kiln/frontend/core/device_ops.h"
#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/core/operand.h"
#include "kiln/frontend/core/tensor.h"
#include "kiln/runtime/cuda/device.h"
#include "kiln/runtime/cuda/driver.h"

namespace kiln {

namespace {
// One stack per thread, like name scopes: scopes opened by concurrent threads never mix.
std::vector<Device>& device_stack() {
  thread_local std::vector<Device> stack;
  return stack;
}

// "1 GPU (cuda:0)", "2 GPUs (cuda:0 to cuda:1)", "no GPU".
std::string count_text(int count) {
  if (count == 0) return "no GPU";
  if (count == 1) return "1 GPU (cuda:0)";
  return fmt::format("{} GPUs (cuda:0 to cuda:{})", count, count - 1);
}
}  // namespace

Device Device::cuda(int index, std::source_location loc) {
  if (index < 0) {
    detail::raise<ValueError>("Device::cuda", {},
                              fmt::format("the GPU index must be 0 or more, got {}", index), loc);
  }
  return Device(DeviceKind::cuda, index);
}

Device Device::parse(std::string_view text, std::source_location loc) {
  if (text == "cpu") return cpu();
  if (text == "cuda") return cuda(0, loc);
  if (text.starts_with("cuda:")) {
    std::string_view digits = text.substr(5);
    int index = 0;
    auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    const bool all_digits =
        !digits.empty() && digits.find_first_not_of("0123456789") == std::string_view::npos;
    if (all_digits && error == std::errc() && end == digits.data() + digits.size())
      return cuda(index, loc);
  }
  detail::raise<ValueError>(
      "Device::parse", {},
      fmt::format("'{}' is not a device; write \"cpu\", \"cuda\" or \"cuda:N\" (N a GPU number)",
                  text),
      loc);
}

std::string Device::to_string() const {
  return is_cpu() ? std::string("cpu") : fmt::format("cuda:{}", index_);
}

std::ostream& operator<<(std::ostream& os, const Device& device) {
  return os << device.to_string();
}

DeviceScope::DeviceScope(Device device, std::source_location loc) {
  detail::check_device_usable(device, "DeviceScope", {}, loc);
  device_stack().push_back(device);
}

DeviceScope::~DeviceScope() {
  device_stack().pop_back();
}

Device current_device() {
  const std::vector<Device>& stack = device_stack();
  return stack.empty() ? Device::cpu() : stack.back();
}

namespace cuda {

bool is_available() {
  try {
    return runtime::cuda::available();
  } catch (const std::bad_alloc&) {
    return false;  // the contract: never throws
  }
}

int device_count() {
  try {
    return runtime::cuda::device_count();
  } catch (const std::bad_alloc&) {
    return 0;
  }
}

std::string unavailable_reason() {
  const runtime::cuda::DriverStatus& status = runtime::cuda::driver_status();
  return status.available() ? std::string() : status.message;
}

namespace {
std::atomic<bool> tf32{false};
}  // namespace

void set_tf32_enabled(bool enabled) {
  tf32.store(enabled);
}

bool tf32_enabled() {
  return tf32.load();
}

}  // namespace cuda

namespace detail {

void check_device_usable(const Device& device, std::string_view op,
                         std::span<const Tensor> operands, const std::source_location& loc) {
  if (device.is_cpu()) return;
  const runtime::cuda::DriverStatus& status = runtime::cuda::driver_status();
  if (!status.available()) {
    raise<DeviceError>(op, operands,
                       fmt::format("{} cannot be used ({}): {}", device.to_string(),
                                   runtime::cuda::reason_name(status.reason), status.message),
                       loc);
  }
  const int count = runtime::cuda::device_count();
  if (device.index() >= count) {
    raise<DeviceError>(op, operands,
                       fmt::format("{} does not exist: the CUDA driver sees {}", device.to_string(),
                                   count_text(count)),
                       loc);
  }
}

}  // namespace detail

Tensor Tensor::to(const Device& device, std::source_location loc) const {
  if (!defined()) detail::raise<ValueError>("to", {}, "the Tensor is undefined", loc);
  const Device from = this->device();
  if (from == device) return *this;
  if (is_symbolic()) {
    detail::raise<DeviceError>(
        "to", {*this},
        fmt::format("cannot move a symbolic tensor to {}: tensors inside kiln::function stay on "
                    "the cpu for now",
                    device.to_string()),
        loc);
  }
  detail::check_device_usable(device, "to", {this, 1}, loc);
  Tensor result;
  if (device.is_cpu()) {
    result = Tensor(detail::copy_to_host(*this, "to", loc));
  } else if (const ir::HostTensor* host = detail::TensorAccess::host_value(*this)) {
    result = detail::copy_to_device(*host, device, "to", {*this}, loc);
  } else {
    // GPU to GPU goes through the host: simple, and rare enough not to need peer copies yet.
    result =
        detail::copy_to_device(detail::copy_to_host(*this, "to", loc), device, "to", {*this}, loc);
  }
  if (const Scalar* weak = weak_scalar()) result.set_weak_scalar(*weak);
  return result;
}

}  // namespace kiln
