// The fuzz targets (one per reader of user files, docs/fuzzing.md): each takes one input and
// returns 0, or fails (a crash, a sanitizer report, an exception other than kiln::Error, or an
// abort from a broken invariant it checks). fuzz_main.cpp makes each a libFuzzer program;
// tests/fuzz_corpus_test.cpp replays every file of fuzz/corpus/<target>/ through them in the
// ordinary test suite.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace kiln::fuzz {

int npy_fuzz(const uint8_t* data, size_t size);
int safetensors_fuzz(const uint8_t* data, size_t size);
int aot_weights_fuzz(const uint8_t* data, size_t size);
int idx_fuzz(const uint8_t* data, size_t size);
int ir_text_fuzz(const uint8_t* data, size_t size);
int saved_model_fuzz(const uint8_t* data, size_t size);
int aot_create_fuzz(const uint8_t* data, size_t size);
int keras_h5_fuzz(const uint8_t* data, size_t size);

struct Target {
  const char* name;  // also the folder of its corpus, fuzz/corpus/<name>/
  int (*run)(const uint8_t* data, size_t size);
};

// Every target.
inline std::span<const Target> targets() {
  static constexpr Target all[] = {
      {"npy_fuzz", npy_fuzz},
      {"safetensors_fuzz", safetensors_fuzz},
      {"aot_weights_fuzz", aot_weights_fuzz},
      {"idx_fuzz", idx_fuzz},
      {"ir_text_fuzz", ir_text_fuzz},
      {"saved_model_fuzz", saved_model_fuzz},
      {"aot_create_fuzz", aot_create_fuzz},
      {"keras_h5_fuzz", keras_h5_fuzz},
  };
  return all;
}

}  // namespace kiln::fuzz
