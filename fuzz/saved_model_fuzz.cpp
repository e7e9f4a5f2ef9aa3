// Fuzzes k::load_model (frontend/model.h) on saved-model folders. An input is split into the
// folder's two files: a 4-byte little-endian length n, then n bytes of model.kiln (the IR text),
// then weights.safetensors (scripts/fuzz_corpus.sh writes seeds in this layout). Any folder
// either loads or throws kiln::Error; a small model that loads is then called on ones.
//
// Not run: models with an integer division (division by zero in compiled code is issue 12's
// open item, handled elsewhere), and, as in ir_text_fuzz.cpp, models over 64 nodes or 2^20
// elements.
#include <cstring>

#include "fuzz_util.h"
#include "kiln/frontend/model.h"
#include "kiln/frontend/ops.h"
#include "kiln/ir/error.h"
#include "targets.h"

namespace {

constexpr size_t kMaxRunNodes = 64;
constexpr int64_t kMaxElements = int64_t(1) << 20;

bool runnable(const kiln::ir::Function& f) {
  if (f.nodes().size() > kMaxRunNodes) return false;
  int64_t elements = 0;
  auto add = [&](const kiln::ir::TensorType& t) {
    elements += t.shape.num_elements();
    return elements <= kMaxElements;
  };
  for (const auto& p : f.params())
    if (!add(p->type())) return false;
  for (const auto& n : f.nodes()) {
    if (n->op() == kiln::ir::Op::div && !kiln::ir::is_floating(n->output()->type().dtype))
      return false;
    for (size_t i = 0; i < n->num_outputs(); ++i)
      if (!add(n->output(i)->type())) return false;
  }
  return true;
}

}  // namespace

int kiln::fuzz::saved_model_fuzz(const uint8_t* data, size_t size) {
  static kiln::fuzz::ScratchDir dir;
  if (size < 4) return 0;
  uint32_t n = 0;
  std::memcpy(&n, data, 4);  // little-endian hosts only, as Kiln itself
  std::string_view rest = kiln::fuzz::bytes(data + 4, size - 4);
  if (n > rest.size()) n = uint32_t(rest.size());
  kiln::fuzz::write_file(dir.file("model.kiln"), rest.substr(0, n));
  kiln::fuzz::write_file(dir.file("weights.safetensors"), rest.substr(n));
  try {
    kiln::SavedModel model = kiln::load_model(dir.path());
    if (!runnable(model.graph())) return 0;
    (void)model(kiln::ones(model.input_type().shape, model.input_type().dtype));
  } catch (const kiln::Error&) {
  }
  return 0;
}
