// The libFuzzer entry of one target (targets.h), chosen by KILN_FUZZ_TARGET when compiled.
#include "targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return kiln::fuzz::KILN_FUZZ_TARGET(data, size);
}
