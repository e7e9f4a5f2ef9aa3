// Fuzzes the IDX reader (frontend/formats/idx.h), plain and gzip-compressed (the gzip magic 1f 8b
// selects zlib): any file either reads or throws kiln::Error.
#include "fuzz_util.h"
#include "kiln/frontend/formats/idx.h"
#include "kiln/ir/error.h"
#include "targets.h"

int kiln::fuzz::idx_fuzz(const uint8_t* data, size_t size) {
  static kiln::fuzz::MemoryFile file;
  try {
    (void)kiln::idx::read(file.hold(kiln::fuzz::bytes(data, size)));
  } catch (const kiln::Error&) {
  }
  return 0;
}
