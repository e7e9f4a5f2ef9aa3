// Fuzzes the IR text reader (ir/parser.h): any text either parses or throws kiln::Error; what
// parses verifies, prints back to text that parses to the same text, and compiles (the pass
// pipeline and LLVM codegen) or throws kiln::Error.
//
// Caps, so the fuzzer spends its time on the reader and not on huge programs: inputs over 4 KiB
// and functions with more than 64 nodes or over 2^20 elements in all are only parsed, not
// compiled (kiln::fuzz::small_enough). Long elementwise chains have their own tests
// (tests/deep_chain_test.cpp).
#include "fuzz_util.h"
#include "kiln/frontend/core/compile.h"
#include "kiln/ir/error.h"
#include "kiln/ir/parser.h"
#include "kiln/ir/printer.h"
#include "kiln/ir/verifier.h"
#include "targets.h"

namespace {

constexpr size_t kMaxCompiledBytes = 4096;

}  // namespace

int kiln::fuzz::ir_text_fuzz(const uint8_t* data, size_t size) {
  std::string_view text = kiln::fuzz::bytes(data, size);
  kiln::ir::Function f;
  try {
    f = kiln::ir::parse(text);
  } catch (const kiln::Error&) {
    return 0;
  }
  // The parser verified it; the verifier agrees, and the text form round-trips.
  kiln::ir::verify(f);
  const std::string printed = kiln::ir::print(f);
  if (kiln::ir::print(kiln::ir::parse(printed)) != printed)
    kiln::fuzz::harness_failure("ir: print(parse(print(f))) != print(f)");
  if (size > kMaxCompiledBytes || !kiln::fuzz::small_enough(f)) return 0;
  try {
    (void)kiln::compile(std::move(f));
  } catch (const kiln::Error&) {
  }
  return 0;
}
