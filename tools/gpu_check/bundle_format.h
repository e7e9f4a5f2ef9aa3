// The phase-2 bundle of gpu_check: AOT GPU libraries built here by gpu_check_bundle
// (bundle_builder.h) and run on a lent GPU by gpu_check (phase2.h). This header is all that the
// two share: the manifest (a text file, one record per line, tokens separated by spaces), the
// generator of the inputs that are too big to carry (the GEMM sweep's operands, the 64M-element
// chain's input) and the sample of output elements compared for those. Plain C++ and the
// standard library only: gpu_check must link no fmt and no LLVM.
//
//   kiln-gpu-bundle 1
//   library NAME FILE KIND STEPS          KIND: ops | train | gemm | chain
//   gemm M N K                            gemm: the shape, to find cuBLASLt's time in phase 1
//   input DTYPE ELEMENTS SOURCE           SOURCE: file:F (raw bytes) | random:SEED
//   output DTYPE ELEMENTS LABEL ATOL RTOL EXPECT
//                                         EXPECT: file:F (STEPS x ELEMENTS values, step by step)
//                                         | sample:COUNT:F (the values at sample_index(i, ELEMENTS)
//                                         for i < COUNT, after the first step) | none
//   state NAME DTYPE ELEMENTS COUNT ATOL RTOL FILE
//                                         the state tensor NAME (in NAME_save_weights' file) after
//                                         STEPS runs, at sample_index(i, ELEMENTS), i < COUNT
//   end
//
// Every file is in the bundle's folder; values are little-endian, f32 compared as |got - want|
// <= ATOL + RTOL·|want|, integers and bools exactly (ATOL = RTOL = 0).
#pragma once

#include <cstdint>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace kiln::gpu_check {

inline constexpr const char* kManifestFile = "manifest.txt";
inline constexpr const char* kManifestMagic = "kiln-gpu-bundle";
inline constexpr int kManifestVersion = 1;

// Bytes per element of a manifest dtype ("f32", "f64", "i32", "i64", "u8", "bool"), 0 if unknown.
inline int64_t dtype_bytes(const std::string& dtype) {
  if (dtype == "f32" || dtype == "i32") return 4;
  if (dtype == "f64" || dtype == "i64") return 8;
  if (dtype == "u8" || dtype == "bool") return 1;
  return 0;
}

// splitmix64: the inputs generated on both sides from a seed.
inline uint64_t splitmix(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// `count` f32 values uniform in [-1, 1) from `seed` (exactly representable: 24-bit fractions).
inline void fill_uniform(float* out, int64_t count, uint64_t seed) {
  uint64_t state = seed;
  for (int64_t i = 0; i < count; ++i)
    out[i] = static_cast<float>(static_cast<int64_t>(splitmix(state) >> 40) - (1 << 23)) *
             (1.0f / (1 << 23));
}

// The i-th sampled element of a tensor of `elements` (a fixed pseudo-random walk, so samples
// cover rows, columns and both ends).
inline int64_t sample_index(int64_t i, int64_t elements) {
  if (i == 0) return 0;
  if (i == 1) return elements - 1;
  return static_cast<int64_t>((static_cast<uint64_t>(i) * 2654435761ull + 40503ull) %
                              static_cast<uint64_t>(elements));
}

struct InputRecord {
  std::string dtype;
  int64_t elements = 0;
  std::string source;  // "file:F" or "random:SEED"
};

struct OutputRecord {
  std::string dtype;
  int64_t elements = 0;
  std::string label;
  double atol = 0, rtol = 0;
  std::string expect;  // "file:F", "sample:COUNT:F" or "none"
};

struct StateRecord {
  std::string name, dtype;
  int64_t elements = 0, count = 0;
  double atol = 0, rtol = 0;
  std::string file;
};

struct LibraryRecord {
  std::string name, file, kind;
  int steps = 1;
  int64_t m = 0, n = 0, k = 0;  // kind gemm
  std::vector<InputRecord> inputs;
  std::vector<OutputRecord> outputs;
  std::vector<StateRecord> state;
};

// The manifest's text.
inline std::string write_manifest(const std::vector<LibraryRecord>& libraries) {
  std::ostringstream out;
  out.precision(8);
  out << kManifestMagic << ' ' << kManifestVersion << '\n';
  for (const LibraryRecord& l : libraries) {
    out << "library " << l.name << ' ' << l.file << ' ' << l.kind << ' ' << l.steps << '\n';
    if (l.kind == "gemm") out << "gemm " << l.m << ' ' << l.n << ' ' << l.k << '\n';
    for (const InputRecord& i : l.inputs)
      out << "input " << i.dtype << ' ' << i.elements << ' ' << i.source << '\n';
    for (const OutputRecord& o : l.outputs)
      out << "output " << o.dtype << ' ' << o.elements << ' ' << o.label << ' ' << o.atol << ' '
          << o.rtol << ' ' << o.expect << '\n';
    for (const StateRecord& s : l.state)
      out << "state " << s.name << ' ' << s.dtype << ' ' << s.elements << ' ' << s.count << ' '
          << s.atol << ' ' << s.rtol << ' ' << s.file << '\n';
    out << "end\n";
  }
  return out.str();
}

// Parses a manifest's text; throws std::runtime_error naming the line for anything malformed.
inline std::vector<LibraryRecord> parse_manifest(const std::string& text) {
  std::istringstream lines(text);
  std::string line;
  int number = 0;
  const auto bad = [&](const std::string& why) {
    throw std::runtime_error("manifest line " + std::to_string(number) + ": " + why + " ('" + line +
                             "')");
  };
  const auto dtype = [&](const std::string& d) {
    if (dtype_bytes(d) == 0) bad("unknown dtype '" + d + "'");
    return d;
  };
  std::vector<LibraryRecord> libraries;
  bool open = false;
  while (std::getline(lines, line)) {
    ++number;
    std::istringstream in(line);
    std::string word, rest;
    if (!(in >> word)) continue;
    const auto done = [&] {
      if (in.fail()) bad("missing or malformed fields");
      if (in >> rest) bad("unexpected '" + rest + "'");
    };
    if (number == 1) {
      int version = 0;
      in >> version;
      if (word != kManifestMagic) bad("not a gpu_check bundle manifest");
      done();
      if (version != kManifestVersion) bad("version " + std::to_string(version) + " (want 1)");
      continue;
    }
    if (word == "library") {
      if (open) bad("'library' before the previous one's 'end'");
      LibraryRecord l;
      in >> l.name >> l.file >> l.kind >> l.steps;
      done();
      if (l.kind != "ops" && l.kind != "train" && l.kind != "gemm" && l.kind != "chain")
        bad("unknown kind '" + l.kind + "'");
      if (l.steps < 1) bad("steps must be positive");
      if (l.file.find('/') != std::string::npos) bad("the file must be in the bundle's folder");
      libraries.push_back(l);
      open = true;
      continue;
    }
    if (!open) bad("'" + word + "' outside a library");
    LibraryRecord& l = libraries.back();
    if (word == "gemm") {
      in >> l.m >> l.n >> l.k;
      done();
    } else if (word == "input") {
      InputRecord i;
      in >> i.dtype >> i.elements >> i.source;
      done();
      dtype(i.dtype);
      if (i.source.rfind("file:", 0) != 0 && i.source.rfind("random:", 0) != 0)
        bad("an input's source is file:F or random:SEED");
      if (i.source.rfind("random:", 0) == 0 && i.dtype != "f32") bad("random inputs are f32");
      l.inputs.push_back(i);
    } else if (word == "output") {
      OutputRecord o;
      in >> o.dtype >> o.elements >> o.label >> o.atol >> o.rtol >> o.expect;
      done();
      dtype(o.dtype);
      if (o.expect != "none" && o.expect.rfind("file:", 0) != 0 &&
          o.expect.rfind("sample:", 0) != 0)
        bad("an output's expectation is file:F, sample:COUNT:F or none");
      l.outputs.push_back(o);
    } else if (word == "state") {
      StateRecord s;
      in >> s.name >> s.dtype >> s.elements >> s.count >> s.atol >> s.rtol >> s.file;
      done();
      if (dtype(s.dtype) != "f32") bad("state samples are f32");
      l.state.push_back(s);
    } else if (word == "end") {
      done();
      open = false;
    } else {
      bad("unknown record '" + word + "'");
    }
  }
  if (number == 0) throw std::runtime_error("manifest is empty");
  if (open) throw std::runtime_error("manifest ends inside library " + libraries.back().name);
  return libraries;
}

}  // namespace kiln::gpu_check
