#include "kiln/runtime/cuda/launch_plan.h"

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <stdexcept>

#include "kiln/runtime/kiln_rt.h"

namespace kiln::runtime::cuda {

namespace {

std::string where(const KernelLaunch& launch) {
  return "launch of \"" + launch.symbol + "\"" +
         (launch.label.empty() ? std::string() : " (" + launch.label + ")");
}

}  // namespace

int64_t GemmCall::batch() const {
  int64_t n = 1;
  for (int64_t d : batch_shape)
    n *= d;
  return n;
}

bool LaunchPlan::uses_status() const {
  return std::any_of(launches.begin(), launches.end(), [](const KernelLaunch& l) {
    return std::any_of(l.args.begin(), l.args.end(),
                       [](const LaunchArg& a) { return a.kind == LaunchArg::Kind::status; });
  });
}

bool LaunchPlan::uses_gemm() const {
  return std::any_of(launches.begin(), launches.end(),
                     [](const KernelLaunch& l) { return l.is_gemm(); });
}

bool LaunchPlan::uses_kernels() const {
  return std::any_of(launches.begin(), launches.end(),
                     [](const KernelLaunch& l) { return !l.is_gemm(); });
}

// The cuBLASLt plans of the GEMM steps (null for a kernel launch), and the lock that keeps their
// runs apart: a GemmPlan sets its bias pointer in a shared descriptor.
struct DeviceExecutable::Gemms {
  std::vector<std::unique_ptr<GemmPlan>> plans;
  std::mutex mutex;
};

// One run's device memory: the plan's workspace, then cuBLASLt's, then the status words.
struct DeviceExecutable::Workspace {
  DeviceBuffer buffer;
};

// Idle workspaces, reused by later runs.
struct DeviceExecutable::Pool {
  std::mutex mutex;
  std::vector<std::unique_ptr<Workspace>> idle;
  int64_t allocated = 0;
};

namespace {

constexpr std::size_t kWorkspaceAlign = 256;

std::size_t round_up(std::size_t n, std::size_t to) {
  return (n + to - 1) / to * to;
}

// Whether `arg` names a buffer the plan does not have, at trip 0 or at the last of `trips`.
bool bad_arg(const LaunchArg& arg, std::size_t num_inputs, std::size_t num_outputs,
             std::size_t workspace_bytes, int64_t trips = 1) {
  // Offsets of the first and last trips (a loop of 0 trips passes no buffer).
  constexpr int64_t kMaxBytes = int64_t{1} << 48;
  if (std::abs(arg.offset) > kMaxBytes || std::abs(arg.step_bytes) > kMaxBytes) return true;
  const int64_t first = arg.offset;
  const int64_t last = arg.offset + std::max<int64_t>(trips - 1, 0) * arg.step_bytes;
  const bool in_front = first < 0 || last < 0;
  switch (arg.kind) {
    case LaunchArg::Kind::input:
      return in_front || arg.index < 0 || static_cast<std::size_t>(arg.index) >= num_inputs;
    case LaunchArg::Kind::output:
      return in_front || arg.index < 0 || static_cast<std::size_t>(arg.index) >= num_outputs;
    case LaunchArg::Kind::workspace:
      return in_front || static_cast<std::size_t>(std::max(first, last)) > workspace_bytes;
    case LaunchArg::Kind::status:
      return false;
  }
  return true;
}

bool has_bias(GemmEpilogue e) {
  return e == GemmEpilogue::bias || e == GemmEpilogue::bias_relu;
}

std::size_t element_bytes(GemmType type) {
  return type == GemmType::f32 ? 4 : 8;
}

}  // namespace

DeviceExecutable::DeviceExecutable(ContextPtr context, std::shared_ptr<const Module> module,
                                   LaunchPlan plan, std::size_t num_inputs, std::size_t num_outputs)
    : context_(std::move(context)),
      module_(std::move(module)),
      plan_(std::move(plan)),
      num_inputs_(num_inputs),
      num_outputs_(num_outputs),
      pool_(std::make_unique<Pool>()) {
  if (context_ == nullptr) throw std::invalid_argument("DeviceExecutable: no context");
  if (module_ == nullptr && plan_.uses_kernels())
    throw std::invalid_argument("DeviceExecutable: kernel launches without a module");
  constexpr int64_t kMaxGrid = std::numeric_limits<int32_t>::max();
  check_loops();
  // Per launch, the trips of the loop it is in (1 outside loops).
  std::vector<int64_t> trips(plan_.launches.size(), 1);
  for (std::size_t i = 0; i < plan_.launches.size(); ++i) {
    if (const std::optional<LaunchLoop>& loop = plan_.launches[i].loop)
      std::fill_n(trips.begin() + static_cast<std::ptrdiff_t>(i), loop->count, loop->trips);
  }
  // One slot per step, null for kernel launches and for GEMMs with nothing to multiply.
  if (plan_.uses_gemm()) gemms_ = std::make_unique<Gemms>();
  for (std::size_t i = 0; i < plan_.launches.size(); ++i) {
    const KernelLaunch& launch = plan_.launches[i];
    auto bad_buffer = [&](const LaunchArg& arg) {
      return bad_arg(arg, num_inputs_, num_outputs_, plan_.workspace_bytes, trips[i]);
    };
    if (launch.is_gemm()) {
      const GemmCall& g = *launch.gemm;
      bool bad = bad_buffer(g.a) || bad_buffer(g.b) || bad_buffer(g.d) ||
                 (has_bias(g.desc.epilogue) && bad_buffer(g.bias));
      if (bad) throw std::invalid_argument(where(launch) + ": a buffer outside the plan's buffers");
      if (g.a_batch_strides.size() != g.batch_shape.size() ||
          g.b_batch_strides.size() != g.batch_shape.size() ||
          std::any_of(g.batch_shape.begin(), g.batch_shape.end(), [](int64_t d) { return d < 0; }))
        throw std::invalid_argument(where(launch) + ": a malformed batch");
      std::unique_ptr<GemmPlan> gemm;
      if (g.desc.k != 0 && g.batch() != 0) gemm = std::make_unique<GemmPlan>(gemm_handle(), g.desc);
      if (gemm != nullptr) gemm_workspace_ = std::max(gemm_workspace_, gemm->workspace_size());
      gemms_->plans.push_back(std::move(gemm));
      kernels_.emplace_back();
      continue;
    }
    for (const LaunchArg& arg : launch.args) {
      if (bad_buffer(arg))
        throw std::invalid_argument(where(launch) + ": a buffer outside the plan's buffers");
    }
    if (launch.items > 0 &&
        (launch.grid < 1 || launch.grid > kMaxGrid || launch.block < 1 || launch.block > 1024)) {
      throw std::invalid_argument(where(launch) + ": grid " + std::to_string(launch.grid) +
                                  " and block " + std::to_string(launch.block) +
                                  " are out of range");
    }
    kernels_.push_back(module_->function(launch.symbol));
    if (gemms_ != nullptr) gemms_->plans.emplace_back();
  }
}

DeviceExecutable::~DeviceExecutable() = default;

void DeviceExecutable::check_loops() const {
  const auto n = static_cast<int64_t>(plan_.launches.size());
  for (int64_t i = 0; i < n; ++i) {
    const KernelLaunch& launch = plan_.launches[static_cast<std::size_t>(i)];
    if (!launch.loop) continue;
    const LaunchLoop& loop = *launch.loop;
    if (loop.trips < 0 || loop.count < 1 || loop.count > n - i) {
      throw std::invalid_argument(where(launch) + ": a loop of " + std::to_string(loop.trips) +
                                  " trips over " + std::to_string(loop.count) +
                                  " launches, outside the plan's " + std::to_string(n - i));
    }
    for (int64_t j = i + 1; j < i + loop.count; ++j) {
      if (plan_.launches[static_cast<std::size_t>(j)].loop)
        throw std::invalid_argument(where(launch) + ": a loop inside a loop");
    }
  }
}

CublasLtHandlePtr DeviceExecutable::gemm_handle() {
  if (handle_ == nullptr) handle_ = CublasLtHandle::create(context_);
  return handle_;
}

int64_t DeviceExecutable::workspaces_allocated() const {
  std::lock_guard lock(pool_->mutex);
  return pool_->allocated;
}

std::unique_ptr<DeviceExecutable::Workspace> DeviceExecutable::acquire_workspace() const {
  {
    std::lock_guard lock(pool_->mutex);
    if (!pool_->idle.empty()) {
      std::unique_ptr<Workspace> w = std::move(pool_->idle.back());
      pool_->idle.pop_back();
      return w;
    }
  }
  const std::size_t bytes = round_up(plan_.workspace_bytes, kWorkspaceAlign) +
                            round_up(gemm_workspace_, kWorkspaceAlign) +
                            (plan_.uses_status() ? KILN_RT_STATUS_WORDS * sizeof(int64_t) : 0);
  auto w = std::make_unique<Workspace>();
  if (bytes != 0) w->buffer = DeviceBuffer(context_, bytes);
  std::lock_guard lock(pool_->mutex);
  ++pool_->allocated;
  return w;
}

void DeviceExecutable::release_workspace(std::unique_ptr<Workspace> workspace) const {
  std::lock_guard lock(pool_->mutex);
  pool_->idle.push_back(std::move(workspace));
}

RunStatus DeviceExecutable::run(std::span<const CUdeviceptr> inputs,
                                std::span<const CUdeviceptr> outputs, const Stream* stream) const {
  if (inputs.size() != num_inputs_ || outputs.size() != num_outputs_) {
    throw std::invalid_argument("DeviceExecutable::run: " + std::to_string(inputs.size()) +
                                " inputs and " + std::to_string(outputs.size()) +
                                " outputs given, the plan takes " + std::to_string(num_inputs_) +
                                " and " + std::to_string(num_outputs_));
  }
  std::unique_ptr<Workspace> workspace = acquire_workspace();
  const CUdeviceptr base = workspace->buffer.get();
  const CUdeviceptr gemm_space = base + round_up(plan_.workspace_bytes, kWorkspaceAlign);
  const CUdeviceptr status = gemm_space + round_up(gemm_workspace_, kWorkspaceAlign);
  const bool uses_status = plan_.uses_status();
  // Returned to the pool on every way out. Work queued on a caller's stream may still use it, so
  // that stream is synchronised first; on the default stream, later work is ordered after it.
  struct Release {
    const DeviceExecutable* self;
    std::unique_ptr<Workspace>& w;
    const Stream* stream;
    ~Release() {
      if (stream != nullptr) {
        try {
          stream->synchronize();
        } catch (...) {
          return;  // a failed stream: the workspace is dropped rather than reused
        }
      }
      self->release_workspace(std::move(w));
    }
  } release{this, workspace, stream};
  if (uses_status) fill_bytes(*context_, status, KILN_RT_STATUS_WORDS * sizeof(int64_t), 0, stream);
  // A buffer's address at trip `trip` of its loop (unsigned arithmetic wraps a negative step).
  auto address = [&](const LaunchArg& arg, int64_t trip) -> CUdeviceptr {
    const auto at = static_cast<CUdeviceptr>(arg.offset + trip * arg.step_bytes);
    switch (arg.kind) {
      case LaunchArg::Kind::input:
        return inputs[static_cast<std::size_t>(arg.index)] + at;
      case LaunchArg::Kind::output:
        return outputs[static_cast<std::size_t>(arg.index)] + at;
      case LaunchArg::Kind::workspace:
        return base + at;
      case LaunchArg::Kind::status:
        return status;
    }
    return 0;
  };
  std::vector<CUdeviceptr> values;
  std::vector<void*> params;
  auto run_step = [&](std::size_t i, int64_t trip) {
    const KernelLaunch& launch = plan_.launches[i];
    if (launch.is_gemm()) {
      const GemmCall& g = *launch.gemm;
      run_gemm(i, address(g.a, trip), address(g.b, trip), address(g.d, trip), address(g.bias, trip),
               gemm_space, stream);
      return;
    }
    if (launch.items <= 0) return;
    // cuLaunchKernel reads each parameter through its pointer: the buffers' device addresses,
    // then the item count, in the order the kernel declares them.
    values.clear();
    for (const LaunchArg& arg : launch.args)
      values.push_back(address(arg, trip));
    int64_t items = launch.items;
    params.clear();
    for (CUdeviceptr& value : values)
      params.push_back(&value);
    params.push_back(&items);
    cuda::launch(kernels_[i], Dim3{static_cast<unsigned>(launch.grid), 1, 1},
                 Dim3{static_cast<unsigned>(launch.block), 1, 1}, 0, stream, params);
  };
  // A loop's launches are queued trip after trip (checked in the constructor: loops do not
  // nest and end inside the plan).
  for (std::size_t i = 0; i < plan_.launches.size();) {
    const std::optional<LaunchLoop>& loop = plan_.launches[i].loop;
    const std::size_t count = loop ? static_cast<std::size_t>(loop->count) : 1;
    const int64_t trips = loop ? loop->trips : 1;
    for (int64_t trip = 0; trip < trips; ++trip) {
      for (std::size_t j = i; j < i + count; ++j)
        run_step(j, trip);
    }
    i += count;
  }
  RunStatus result;
  if (uses_status) {
    int64_t words[KILN_RT_STATUS_WORDS] = {};
    copy_to_host(*context_, words, status, sizeof words, stream);
    if (stream != nullptr) stream->synchronize();
    result = RunStatus{words[0], words[1], words[2], words[3]};
  }
  return result;
}

void DeviceExecutable::run_gemm(std::size_t step, CUdeviceptr a, CUdeviceptr b, CUdeviceptr d,
                                CUdeviceptr bias, CUdeviceptr workspace,
                                const Stream* stream) const {
  const GemmCall& g = *plan_.launches[step].gemm;
  const std::size_t size = element_bytes(g.desc.type);
  const int64_t batch = g.batch();
  const int64_t d_matrix = g.desc.m * g.desc.n;
  if (batch == 0 || d_matrix == 0) return;
  if (g.desc.k == 0) {
    fill_bytes(*context_, d, static_cast<std::size_t>(batch * d_matrix) * size, 0, stream);
    return;
  }
  GemmPlan& plan = *gemms_->plans[step];
  std::lock_guard lock(gemms_->mutex);
  std::vector<int64_t> index(g.batch_shape.size(), 0);
  for (int64_t n = 0; n < batch; ++n) {
    int64_t a_offset = 0, b_offset = 0;
    for (std::size_t j = 0; j < index.size(); ++j) {
      a_offset += index[j] * g.a_batch_strides[j];
      b_offset += index[j] * g.b_batch_strides[j];
    }
    GemmOperands operands;
    operands.a = a + static_cast<CUdeviceptr>(a_offset) * size;
    operands.b = b + static_cast<CUdeviceptr>(b_offset) * size;
    operands.d = d + static_cast<CUdeviceptr>(n * d_matrix) * size;
    if (has_bias(g.desc.epilogue)) operands.bias = bias;
    plan.run(operands, stream, workspace, round_up(gemm_workspace_, kWorkspaceAlign));
    // The next batch index, the last dimension fastest.
    for (std::size_t j = index.size(); j-- > 0;) {
      if (++index[j] < g.batch_shape[j]) break;
      index[j] = 0;
    }
  }
}

}  // namespace kiln::runtime::cuda
