// Fuzzes the .npy reader (frontend/formats/npy.h): any bytes either decode or throw kiln::Error;
// what decodes survives a write and a second read unchanged.
#include <cstring>

#include "fuzz_util.h"
#include "kiln/frontend/formats/npy.h"
#include "kiln/ir/error.h"
#include "targets.h"

int kiln::fuzz::npy_fuzz(const uint8_t* data, size_t size) {
  kiln::Tensor t;
  try {
    t = kiln::decode_npy(kiln::fuzz::bytes(data, size), "fuzz.npy");
  } catch (const kiln::Error&) {
    return 0;
  }
  // What Kiln read, Kiln writes and reads back the same (shape, dtype and bytes).
  kiln::Tensor again = kiln::decode_npy(kiln::encode_npy(t));
  const kiln::ir::HostTensor& a = t.host();
  const kiln::ir::HostTensor& b = again.host();
  if (a.type() != b.type() || (a.nbytes() > 0 && std::memcmp(a.raw(), b.raw(), a.nbytes()) != 0))
    kiln::fuzz::harness_failure("npy: a decoded array did not survive encode and decode");
  return 0;
}
