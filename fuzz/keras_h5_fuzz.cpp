// Fuzzes the Keras HDF5 weights loader (frontend/keras/keras_h5.*, over frontend/formats/hdf5.*):
// the input is an .h5 file, loaded into a small model (tests/keras_h5_test.cpp's: conv, bn, flat,
// fc) by order, by name, and by order with skip_mismatch. Any file either loads or throws
// kiln::Error, and a load that throws leaves every weight as it was.
//
// The loader normally reads the file in a forked child (formats/isolated.h), where libFuzzer sees
// neither the coverage nor a sanitizer report (the child's ASan exit is just an IOError to the
// parent), so the target reads in process (detail::keras_h5_load_weights_in_process). libhdf5
// itself is not instrumented; a crash or hang whose stack is all libhdf5 is what the child exists
// for in users' loads (docs/fuzzing.md says how to tell the two apart).
#include <cstdio>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "kiln/frontend/core/log.h"
#include "kiln/frontend/keras/keras_h5.h"
#include "kiln/frontend/keras/layers.h"
#include "kiln/frontend/keras/model.h"
#include "kiln/ir/error.h"
#include "targets.h"

namespace {

// The model of the seeds (fuzz/corpus_writer.cpp, tests/keras_h5_fixtures.py), built.
kiln::Sequential& model() {
  static kiln::Sequential* net = [] {
    namespace L = kiln::layers;
    auto* m = new kiln::Sequential(
        {L::Conv2D(4, {3, 3}, {1, 1}, "valid", "", kiln::Shape{5, 5, 2}, true, "glorot_uniform",
                   "zeros", "conv"),
         L::BatchNormalization(-1, 0.99, 1e-3, true, true, "bn"), L::Flatten(std::nullopt, "flat"),
         L::Dense(3, "", std::nullopt, true, "glorot_uniform", "zeros", "fc")},
        "net");
    m->build(kiln::Shape{5, 5, 2});
    return m;
  }();
  return *net;
}

// The model's weights as bytes (a NaN from a file compares equal to itself).
std::vector<std::string> values(const kiln::Model& m) {
  std::vector<std::string> out;
  for (const kiln::Variable& v : m.weights()) {
    const std::vector<float> x = v.value().to_vector<float>();
    out.emplace_back(reinterpret_cast<const char*>(x.data()), x.size() * sizeof(float));
  }
  return out;
}

}  // namespace

int kiln::fuzz::keras_h5_fuzz(const uint8_t* data, size_t size) {
  // A real file, not a memfd: libhdf5 resolves the path it opens, and a memfd's has none. A new
  // file (a new inode) for each input: libhdf5 shares the state of the files it has open by
  // inode, so one that a failed open left behind could stand in for the next input.
  static const kiln::detail::TempDir dir = kiln::fuzz::scratch_dir();
  const std::string path = dir.file("weights.h5");
  std::remove(path.c_str());
  kiln::fuzz::write_file(path, kiln::fuzz::bytes(data, size));
  // skip_mismatch's warnings would flood the fuzzer's output; the sink is put back after.
  struct Quiet {
    kiln::LogSink old = kiln::set_log_sink([](std::string_view) {});
    ~Quiet() { kiln::set_log_sink(old); }
  } quiet;
  kiln::Sequential& m = model();
  for (kiln::LoadWeightsOptions options :
       {kiln::LoadWeightsOptions{}, kiln::LoadWeightsOptions{.by_name = true},
        kiln::LoadWeightsOptions{.skip_mismatch = true}}) {
    const std::vector<std::string> before = values(m);
    try {
      kiln::detail::keras_h5_load_weights_in_process(path, m.layers(), m.name(), options,
                                                     kiln::Loc::current());
    } catch (const kiln::Error&) {
      if (values(m) != before)
        kiln::fuzz::harness_failure("keras_h5: a load that failed changed the weights");
    }
  }
  return 0;
}
