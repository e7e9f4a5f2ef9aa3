// Fuzzes Kiln's safetensors reader (frontend/formats/safetensors.h): any file either loads or
// throws kiln::Error, and what loads saves and loads back unchanged.
#include <cstring>

#include "fuzz_util.h"
#include "kiln/frontend/formats/safetensors.h"
#include "kiln/ir/error.h"
#include "targets.h"

int kiln::fuzz::safetensors_fuzz(const uint8_t* data, size_t size) {
  static kiln::fuzz::MemoryFile file;
  static const kiln::detail::TempDir scratch = kiln::fuzz::scratch_dir();
  const std::string& path = file.hold(kiln::fuzz::bytes(data, size));
  try {
    (void)kiln::safetensors::metadata(path);
  } catch (const kiln::Error&) {
  }
  std::vector<std::pair<std::string, kiln::Tensor>> tensors;
  std::map<std::string, std::string> metadata;
  try {
    tensors = kiln::safetensors::load(path);
    metadata = kiln::safetensors::metadata(path);
  } catch (const kiln::Error&) {
    return 0;
  }
  // Round trip: the writer accepts what the reader gave, and the reader gives it back.
  const std::string copy = scratch.file("copy.safetensors");
  kiln::safetensors::save(copy, tensors, metadata);
  auto again = kiln::safetensors::load(copy);
  if (again.size() != tensors.size() || kiln::safetensors::metadata(copy) != metadata)
    kiln::fuzz::harness_failure("safetensors: the round trip changed the tensor list or metadata");
  for (size_t i = 0; i < tensors.size(); ++i) {
    const kiln::ir::HostTensor& a = tensors[i].second.host();
    const kiln::ir::HostTensor& b = again[i].second.host();
    if (tensors[i].first != again[i].first || a.type() != b.type() ||
        (a.nbytes() > 0 && std::memcmp(a.raw(), b.raw(), a.nbytes()) != 0))
      kiln::fuzz::harness_failure("safetensors: the round trip changed a tensor");
  }
  return 0;
}
