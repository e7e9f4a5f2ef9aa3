// Fuzzes k::load_model (frontend/keras/model.h) on saved-model folders. An input is split into the
// folder's two files: a 4-byte little-endian length n, then n bytes of model.kiln (the IR text),
// then weights.safetensors (scripts/fuzz_corpus.sh writes seeds in this layout). Any folder
// either loads or throws kiln::Error; a small model that loads is then called on ones.
//
// Not run, as in ir_text_fuzz.cpp: models over 64 nodes or 2^20 elements (small_enough).
#include <cstring>

#include "fuzz_util.h"
#include "kiln/frontend/core/ops.h"
#include "kiln/frontend/keras/model.h"
#include "kiln/ir/error.h"
#include "targets.h"

int kiln::fuzz::saved_model_fuzz(const uint8_t* data, size_t size) {
  static const kiln::detail::TempDir dir = kiln::fuzz::scratch_dir();
  if (size < 4) return 0;
  uint32_t n = 0;
  std::memcpy(&n, data, 4);  // little-endian hosts only, as Kiln itself
  std::string_view rest = kiln::fuzz::bytes(data + 4, size - 4);
  if (n > rest.size()) n = uint32_t(rest.size());
  kiln::fuzz::write_file(dir.file("model.kiln"), rest.substr(0, n));
  kiln::fuzz::write_file(dir.file("weights.safetensors"), rest.substr(n));
  try {
    kiln::SavedModel model = kiln::load_model(dir.path());
    if (!kiln::fuzz::small_enough(model.graph())) return 0;
    (void)model(kiln::ones(model.input_type().shape, model.input_type().dtype));
  } catch (const kiln::Error&) {
  }
  return 0;
}
