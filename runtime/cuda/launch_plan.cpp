#include "kiln/runtime/cuda/launch_plan.h"

#include <algorithm>
#include <limits>
#include <stdexcept>

#include "kiln/runtime/kiln_rt.h"

namespace kiln::runtime::cuda {

namespace {

std::string where(const KernelLaunch& launch) {
  return "launch of \"" + launch.symbol + "\"" +
         (launch.label.empty() ? std::string() : " (" + launch.label + ")");
}

}  // namespace

bool LaunchPlan::uses_status() const {
  return std::any_of(launches.begin(), launches.end(), [](const KernelLaunch& l) {
    return std::any_of(l.args.begin(), l.args.end(),
                       [](const LaunchArg& a) { return a.kind == LaunchArg::Kind::status; });
  });
}

DeviceExecutable::DeviceExecutable(std::shared_ptr<const Module> module, LaunchPlan plan,
                                   std::size_t num_inputs, std::size_t num_outputs)
    : module_(std::move(module)),
      plan_(std::move(plan)),
      num_inputs_(num_inputs),
      num_outputs_(num_outputs) {
  if (module_ == nullptr) throw std::invalid_argument("DeviceExecutable: no module");
  constexpr int64_t kMaxGrid = std::numeric_limits<int32_t>::max();
  for (const KernelLaunch& launch : plan_.launches) {
    for (const LaunchArg& arg : launch.args) {
      const bool bad =
          (arg.kind == LaunchArg::Kind::input &&
           (arg.index < 0 || static_cast<std::size_t>(arg.index) >= num_inputs_)) ||
          (arg.kind == LaunchArg::Kind::output &&
           (arg.index < 0 || static_cast<std::size_t>(arg.index) >= num_outputs_)) ||
          (arg.kind == LaunchArg::Kind::workspace &&
           (arg.offset < 0 || static_cast<std::size_t>(arg.offset) > plan_.workspace_bytes));
      if (bad) throw std::invalid_argument(where(launch) + ": a buffer outside the plan's buffers");
    }
    if (launch.items > 0 &&
        (launch.grid < 1 || launch.grid > kMaxGrid || launch.block < 1 || launch.block > 1024)) {
      throw std::invalid_argument(where(launch) + ": grid " + std::to_string(launch.grid) +
                                  " and block " + std::to_string(launch.block) +
                                  " are out of range");
    }
    kernels_.push_back(module_->function(launch.symbol));
  }
}

RunStatus DeviceExecutable::run(std::span<const CUdeviceptr> inputs,
                                std::span<const CUdeviceptr> outputs, const Stream* stream) const {
  if (inputs.size() != num_inputs_ || outputs.size() != num_outputs_) {
    throw std::invalid_argument("DeviceExecutable::run: " + std::to_string(inputs.size()) +
                                " inputs and " + std::to_string(outputs.size()) +
                                " outputs given, the plan takes " + std::to_string(num_inputs_) +
                                " and " + std::to_string(num_outputs_));
  }
  const ContextPtr& context = module_->context();
  // One workspace per run: eager ops and their workspaces are small, and a freed block goes
  // back to the driver's pool, so reuse across runs would save little and cost a lock.
  DeviceBuffer workspace;
  if (plan_.workspace_bytes != 0) workspace = DeviceBuffer(context, plan_.workspace_bytes);
  DeviceBuffer status;
  if (plan_.uses_status()) {
    status = DeviceBuffer(context, KILN_RT_STATUS_WORDS * sizeof(int64_t));
    status.fill(0, stream);
  }
  std::vector<CUdeviceptr> values;
  std::vector<void*> params;
  for (std::size_t i = 0; i < plan_.launches.size(); ++i) {
    const KernelLaunch& launch = plan_.launches[i];
    if (launch.items <= 0) continue;
    // cuLaunchKernel reads each parameter through its pointer: the buffers' device addresses,
    // then the item count, in the order the kernel declares them.
    values.clear();
    for (const LaunchArg& arg : launch.args) {
      switch (arg.kind) {
        case LaunchArg::Kind::input:
          values.push_back(inputs[static_cast<std::size_t>(arg.index)]);
          break;
        case LaunchArg::Kind::output:
          values.push_back(outputs[static_cast<std::size_t>(arg.index)]);
          break;
        case LaunchArg::Kind::workspace:
          values.push_back(workspace.get() + static_cast<CUdeviceptr>(arg.offset));
          break;
        case LaunchArg::Kind::status:
          values.push_back(status.get());
          break;
      }
    }
    int64_t items = launch.items;
    params.clear();
    for (CUdeviceptr& value : values)
      params.push_back(&value);
    params.push_back(&items);
    cuda::launch(kernels_[i], Dim3{static_cast<unsigned>(launch.grid), 1, 1},
                 Dim3{static_cast<unsigned>(launch.block), 1, 1}, 0, stream, params);
  }
  RunStatus result;
  if (status.size() != 0) {
    int64_t words[KILN_RT_STATUS_WORDS] = {};
    status.copy_to_host(words, sizeof words, 0, stream);
    if (stream != nullptr) stream->synchronize();
    result = RunStatus{words[0], words[1], words[2], words[3]};
  }
  // The workspace is freed here. cuMemFree is not stream-ordered: the driver waits for work
  // still using the block. A caller's own stream is synchronised first so that holds for it too.
  if (workspace.size() != 0 && stream != nullptr) stream->synchronize();
  return result;
}

}  // namespace kiln::runtime::cuda
