// Where a tensor lives: kiln::Device (the CPU, or a CUDA GPU by index), kiln::DeviceScope (the
// device new tensors are made on, like `with tf.device(...)`), and kiln::cuda (whether a GPU can
// be used at all). Tensor::to(device) copies between them (tensor.h).
#pragma once

#include <iosfwd>
#include <source_location>
#include <string>
#include <string_view>

namespace kiln {

// The kinds of device a tensor can live on.
enum class DeviceKind { cpu, cuda };

// A device: the CPU, or CUDA GPU number `index`. A cheap value; naming a GPU does not check that
// it exists (using it does: Tensor::to, DeviceScope).
class Device {
 public:
  // The CPU.
  constexpr Device() = default;
  // The CPU (host memory).
  static constexpr Device cpu() { return Device(); }
  // CUDA GPU number `index` (0 is the first); a negative index is a ValueError.
  static Device cuda(int index = 0, std::source_location loc = std::source_location::current());
  // Reads "cpu", "cuda" (GPU 0) or "cuda:N"; anything else is a ValueError.
  static Device parse(std::string_view text,
                      std::source_location loc = std::source_location::current());

  DeviceKind kind() const { return kind_; }
  // The GPU number; 0 for the CPU.
  int index() const { return index_; }
  bool is_cpu() const { return kind_ == DeviceKind::cpu; }
  bool is_cuda() const { return kind_ == DeviceKind::cuda; }
  // "cpu" or "cuda:N"; parse() reads it back.
  std::string to_string() const;

  friend bool operator==(const Device&, const Device&) = default;

 private:
  constexpr Device(DeviceKind kind, int index) : kind_(kind), index_(index) {}

  DeviceKind kind_ = DeviceKind::cpu;
  int index_ = 0;
};

std::ostream& operator<<(std::ostream& os, const Device& device);

// RAII guard that makes `device` the place where creation ops (zeros, fill, constant, range,
// random_*) put new tensors on this thread while it lives: they are made on the host and copied
// there. Ops with operands run where their operands live. Scopes nest; the innermost wins. A GPU
// that cannot be used is a DeviceError at construction, naming the reason and the line.
class DeviceScope {
 public:
  [[nodiscard]] explicit DeviceScope(Device device,
                                     std::source_location loc = std::source_location::current());
  ~DeviceScope();
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;
};

// The device of the innermost DeviceScope on this thread; the CPU outside any.
Device current_device();

namespace cuda {
// Whether a CUDA driver is loaded and sees at least one GPU. False, never an exception, with no
// driver, the toolkit's stub driver, a driver too old, or no device.
bool is_available();
// The number of CUDA GPUs; 0 when is_available() is false.
int device_count();
// Why CUDA is unavailable ("no CUDA driver: cannot load libcuda.so.1 (...)"); empty when it is.
std::string unavailable_reason();
// Whether f32 GEMMs on a GPU (matmuls and the GEMMs of convolutions, eager and compiled) may use
// TF32 tensor cores, rounding their operands to 10-bit mantissas: several times faster, and
// results that differ from the CPU's in the third or fourth digit (PyTorch's allow_tf32). Off by
// default: FP32 throughout. Applies to the eager ops run and the functions traced from then on
// (a function already traced keeps the setting it was compiled with). For the whole process.
void set_tf32_enabled(bool enabled);
bool tf32_enabled();
}  // namespace cuda

}  // namespace kiln
