// Fuzzes the AOT runtime's own safetensors reader (runtime/aot_weights.h), which loads the
// state of a compiled library: any file either fills the state buffers or throws Failure. The
// first input byte picks which state the file must match, so both the "matches" and the
// "does not match" paths are reached (aot_fuzz_model.h).
#include <vector>

#include "aot_fuzz_model.h"
#include "fuzz_util.h"
#include "targets.h"

int kiln::fuzz::aot_weights_fuzz(const uint8_t* data, size_t size) {
  static kiln::fuzz::MemoryFile file;
  if (size == 0) return 0;
  const auto& states = kiln::fuzz::weight_states();
  const std::vector<kiln::runtime::detail::TensorInfo>& state = states[data[0] % states.size()];
  const std::string& path = file.hold(kiln::fuzz::bytes(data + 1, size - 1));
  std::vector<std::vector<unsigned char>> buffers(state.size());
  try {
    kiln::runtime::detail::read_weights_file("fuzz", path.c_str(), state, [&](size_t s) {
      buffers.at(s).resize(size_t(state.at(s).bytes));  // exactly: ASan sees any overrun
      return static_cast<void*>(buffers[s].data());
    });
  } catch (const kiln::runtime::detail::Failure&) {
  }
  return 0;
}
