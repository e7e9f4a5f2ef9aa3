// Writes the fuzzers' seed corpora (corpus/<target>/) with Kiln's own writers, so the seeds are
// files Kiln itself makes: .npy, safetensors (both writers), IDX (plain and gzip), IR text
// (random programs, their gradients, saved models), saved-model folders and Keras HDF5 weights.
// Usage: fuzz_corpus_writer OUTPUT_DIR   (scripts/fuzz_corpus.sh)
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "aot_fuzz_model.h"
#include "kiln/ir/parser.h"
#include "kiln/kiln.h"
#include "kiln/passes/autodiff.h"
#include "kiln/passes/canonicalize.h"
#include "random_program.h"

namespace fs = std::filesystem;
namespace k = kiln;

namespace {

fs::path out;

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void put(const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(out / target);
  std::ofstream(out / target / name, std::ios::binary) << bytes;
}

// Small tensors of every dtype, with odd and zero-size shapes.
std::vector<std::pair<std::string, k::Tensor>> samples() {
  return {
      {"f32", k::constant({{1.5f, -2.f, 0.f}, {3.f, 1e-3f, -0.f}})},
      {"f64", k::constant(3.25)},
      {"i32", k::constant({7, -8, 9})},
      {"i64", k::constant({int64_t(1) << 40, int64_t(-3)})},
      {"u8", k::cast(k::constant({{0, 255}, {128, 3}}), k::u8)},
      {"bool", k::constant({true, false, true})},
      {"empty", k::zeros({0, 4})},
      {"scalar", k::constant(1.f)},
  };
}

void npy() {
  for (const auto& [name, t] : samples())
    put("npy_fuzz", name + ".npy", k::encode_npy(t));
  // The reader also takes big-endian and Fortran-ordered arrays, which Kiln does not write:
  // the same header edited.
  std::string big = k::encode_npy(k::constant({1, 2, 3}));
  big.replace(big.find("'<i4'"), 5, "'>i4'");
  put("npy_fuzz", "big_endian.npy", big);
  std::string fortran = k::encode_npy(k::constant({{1.f, 2.f}, {3.f, 4.f}}));
  fortran.replace(fortran.find("False"), 5, "True ");
  put("npy_fuzz", "fortran.npy", fortran);
}

void safetensors(const fs::path& scratch) {
  const fs::path file = scratch / "t.safetensors";
  k::safetensors::save(file, samples(), {{"format", "pt"}, {"note", "fuzz seed"}});
  put("safetensors_fuzz", "all_dtypes.safetensors", read(file));
  k::safetensors::save(file, {{"w", k::ones({2, 2})}});
  put("safetensors_fuzz", "one.safetensors", read(file));
  k::safetensors::save(file, {});
  put("safetensors_fuzz", "none.safetensors", read(file));
}

void write_aot_weights(const fs::path& file,
                       const std::vector<k::runtime::detail::TensorInfo>& state) {
  std::vector<std::vector<unsigned char>> data;
  std::vector<void*> pointers;
  for (const auto& t : state) {
    data.emplace_back(size_t(t.bytes) + 1);
    for (size_t i = 0; i < size_t(t.bytes); ++i)
      data.back()[i] = t.dtype == KILN_AOT_BOOL ? i % 2 : static_cast<unsigned char>(i * 37);
    pointers.push_back(data.back().data());
  }
  k::runtime::detail::write_weights_file("seed", file.c_str(), state, pointers);
}

void aot(const fs::path& scratch) {
  const fs::path file = scratch / "w.safetensors";
  const auto& states = k::fuzz::weight_states();
  for (size_t s = 0; s < states.size(); ++s) {
    write_aot_weights(file, states[s]);
    put("aot_weights_fuzz", fmt::format("state{}.safetensors", s),
        std::string(1, char(s)) + read(file));
  }
  std::vector<k::runtime::detail::TensorInfo> state;
  for (const kiln_aot_tensor& t : k::fuzz::kCreateState) {
    state.push_back(
        {t.name, t.dtype, std::vector<int64_t>(t.shape, t.shape + t.rank), t.bytes, t.offset});
  }
  write_aot_weights(file, state);
  put("aot_create_fuzz", "weights.safetensors", read(file));
  // Kiln's own safetensors writer makes a file the AOT reader takes too.
  k::safetensors::save(file, {{"dense/kernel", k::ones({2, 3})},
                              {"dense/bias", k::zeros({3})},
                              {"step", k::constant(int64_t(5))},
                              {"mask", k::constant({true, false, false, true})},
                              {"seen", k::cast(k::constant({1, 2, 3, 4}), k::u8)}});
  put("aot_create_fuzz", "kiln_writer.safetensors", read(file));
}

void idx(const fs::path& scratch) {
  const fs::path file = scratch / "t.idx";
  std::vector<std::pair<std::string, k::Tensor>> tensors = {
      {"u8", k::cast(k::constant({{0, 255, 7}, {1, 2, 3}}), k::u8)},
      {"i32", k::constant({-70000, 5})},
      {"f32", k::constant({1.5f, -2.f})},
      {"f64", k::constant({{2.5}, {-1.0}})},
  };
  for (const auto& [name, t] : tensors) {
    for (bool gzip : {false, true}) {
      k::idx::write(file, t, gzip);
      put("idx_fuzz", name + (gzip ? ".idx.gz" : ".idx"), read(file));
    }
  }
}

// A saved model's folder as one saved_model_fuzz input: length of model.kiln, model.kiln,
// weights.safetensors.
std::string saved_model_input(const fs::path& dir) {
  std::string model = read(dir / "model.kiln");
  uint32_t n = uint32_t(model.size());
  std::string bytes(4, '\0');
  std::memcpy(bytes.data(), &n, 4);
  return bytes + model + read(dir / "weights.safetensors");
}

void models(const fs::path& scratch) {
  k::Sequential mlp({k::layers::Dense(4, "relu", k::Shape{3}), k::layers::Dense(2, "softmax")});
  k::Sequential convnet({k::layers::Conv2D(2, {3, 3}, {1, 1}, "same", "relu", k::Shape{5, 5, 1}),
                         k::layers::MaxPooling2D({2, 2}), k::layers::Flatten(),
                         k::layers::Dense(2)});
  int i = 0;
  for (k::Sequential* model : {&mlp, &convnet}) {
    const fs::path dir = scratch / fmt::format("model{}", i++);
    model->save(dir, /*batch_size=*/2);
    put("saved_model_fuzz", dir.filename().string(), saved_model_input(dir));
    put("ir_text_fuzz", dir.filename().string() + ".kiln", read(dir / "model.kiln"));
  }
}

// Keras HDF5 weights of keras_h5_fuzz's model in both layouts Kiln writes (Keras 2's .h5 and
// Keras 3's .weights.h5); scripts/fuzz_corpus.sh adds files written with h5py as Keras does.
void keras_h5(const fs::path& scratch) {
  k::Sequential model(
      {k::layers::Conv2D(4, {3, 3}, {1, 1}, "valid", "", k::Shape{5, 5, 2}, true, "glorot_uniform",
                         "zeros", "conv"),
       k::layers::BatchNormalization(-1, 0.99, 1e-3, true, true, "bn"),
       k::layers::Flatten(std::nullopt, "flat"),
       k::layers::Dense(3, "", std::nullopt, true, "glorot_uniform", "zeros", "fc")},
      "net");
  model.build(k::Shape{5, 5, 2});
  for (const char* name : {"kiln.h5", "kiln.weights.h5"}) {
    model.save_weights((scratch / name).string());
    put("keras_h5_fuzz", name, read(scratch / name));
  }
}

void ir_text() {
  // A scan whose body holds another scan (nested function attributes); parsed and printed, so a
  // change of the text form shows here.
  put("ir_text_fuzz", "scan.kiln",
      k::ir::print(k::ir::parse(
          R"(func @scans(%h0: f32[2], %xs: f32[3,2,2], %k: f32[]) -> (f32[2], f32[3,2], f32[3,2]) {
  %0, %1, %2 = scan(%h0, %xs, %k) {carries = 1, length = 3, reverse = true, save_carries = true, xs = 1} : f32[2], f32[3,2], f32[3,2]
    body func @outer(%h: f32[2], %x: f32[2,2], %k: f32[]) -> (f32[2], f32[2]) {
      %0, %1 = scan(%h, %x, %k) {carries = 1, length = 2, reverse = false, save_carries = false, xs = 1} : f32[2], f32[2,2]
        body func @inner(%c: f32[2], %row: f32[2], %k: f32[]) -> (f32[2], f32[2]) {
          %0 = mul(%row, %k) : f32[2]
          %1 = add(%c, %0) : f32[2]
          %2 = tanh(%1) : f32[2]
          return %2, %1
        }
      return %0, %0
    }
  return %0, %1, %2
}
)")));
  for (uint64_t seed = 1; seed <= 24; ++seed) {
    k::testing::RandomProgramOptions options;
    options.max_ops = 8;
    options.max_elements = 64;
    options.updates = seed % 3 == 0;
    k::ir::Function f = k::testing::random_program(seed, options);
    put("ir_text_fuzz", fmt::format("random{}.kiln", seed), k::ir::print(f));
    if (seed % 4 == 0 && !options.updates) {
      // Gradients use more ops (fill, reduce_sum, select, broadcasts ...).
      k::ir::Function g = k::ir::parse(k::ir::print(f));
      g.set_outputs({g.outputs()[0]});
      k::passes::differentiate(g);
      k::passes::canonicalize(g);
      put("ir_text_fuzz", fmt::format("gradient{}.kiln", seed), k::ir::print(g));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_corpus_writer OUTPUT_DIR\n";
    return 2;
  }
  out = argv[1];
  const fs::path scratch = out / ".scratch";
  fs::create_directories(scratch);
  npy();
  safetensors(scratch);
  aot(scratch);
  idx(scratch);
  models(scratch);
  keras_h5(scratch);
  ir_text();
  fs::remove_all(scratch);
  return 0;
}
