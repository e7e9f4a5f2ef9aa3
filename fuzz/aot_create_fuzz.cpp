// Fuzzes the AOT library's kiln_aot_create with a weights file (runtime/aot_model.h), as a
// library's NAME_create_from does: any file either gives a model, which then runs, saves its
// weights and is destroyed, or NULL with an error message. The model is a hand-written training
// step (no LLVM needed): y = x·kernel + bias, and the step counter counts
// (its state: aot_fuzz_model.h).
#include <cstring>
#include <string>

#include "aot_fuzz_model.h"
#include "fuzz_util.h"
#include "targets.h"

namespace {

const int64_t kShape2[] = {2};

const kiln_aot_tensor kInputs[] = {{"x", KILN_AOT_F32, 1, kShape2, 8, 0}};
const kiln_aot_tensor kOutputs[] = {{"y", KILN_AOT_F32, 1, kiln::fuzz::kShape3, 12, 0}};
const int32_t kUpdates[] = {2};  // step

// Frame inputs [x, kernel, bias, step, mask, seen]; outputs [y, new step].
void entry(const kiln_frame* f) {
  auto x = static_cast<const float*>(f->inputs[0]);
  auto w = static_cast<const float*>(f->inputs[1]);
  auto b = static_cast<const float*>(f->inputs[2]);
  auto y = static_cast<float*>(f->outputs[0]);
  for (int j = 0; j < 3; ++j)
    y[j] = b[j] + x[0] * w[j] + x[1] * w[3 + j];
  auto mask = static_cast<const unsigned char*>(f->inputs[4]);
  for (int i = 0; i < 4; ++i)  // BOOL state holds 0 or 1 only
    if (mask[i] > 1) __builtin_trap();
  *static_cast<int64_t*>(f->outputs[1]) = *static_cast<const int64_t*>(f->inputs[3]) + 1;
}

kiln_aot_desc desc() {
  kiln_aot_desc d{};
  d.abi_version = KILN_AOT_ABI_VERSION;
  d.name = "fuzz";
  d.entry = entry;
  d.workspace_bytes = 64;
  d.num_inputs = 1, d.inputs = kInputs;
  d.num_outputs = 1, d.outputs = kOutputs;
  d.num_state = kiln::fuzz::kNumCreateState, d.state = kiln::fuzz::kCreateState;
  d.num_updates = 1, d.update_state = kUpdates;
  return d;  // no embedded weights: they come from the file
}

}  // namespace

int kiln::fuzz::aot_create_fuzz(const uint8_t* data, size_t size) {
  static kiln::fuzz::MemoryFile file;
  static const kiln::detail::TempDir scratch = kiln::fuzz::scratch_dir();
  const kiln_aot_desc d = desc();
  kiln_aot_model* model = kiln_aot_create(&d, file.hold(kiln::fuzz::bytes(data, size)).c_str());
  if (model == nullptr) {
    if (std::strlen(kiln_aot_last_error(nullptr)) == 0)
      kiln::fuzz::harness_failure("kiln_aot_create failed without an error message");
    return 0;
  }
  const float x[2] = {1, 2};
  float y[3];
  const void* inputs[] = {x};
  void* outputs[] = {y};
  if (kiln_aot_run(model, inputs, outputs) != 0) kiln::fuzz::harness_failure("kiln_aot_run");
  const std::string saved = scratch.file("saved.safetensors");
  if (kiln_aot_save_weights(model, saved.c_str()) != 0)
    kiln::fuzz::harness_failure("kiln_aot_save_weights");
  kiln_aot_destroy(model);
  // The saved weights load again.
  model = kiln_aot_create(&d, saved.c_str());
  if (model == nullptr) kiln::fuzz::harness_failure("saved weights do not load again");
  kiln_aot_destroy(model);
  return 0;
}
