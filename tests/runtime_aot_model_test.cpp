// kiln_aot_model (runtime/aot_model.h), the instance behind ahead-of-time libraries, driven by
// hand-written descriptors and entry functions: runs with aligned and unaligned buffers, state
// updates, embedded weights, weights files, saving, the thread count, and every error.
#include "kiln/runtime/aot_model.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "kiln/frontend/formats/safetensors.h"
#include "kiln/runtime/kiln_rt.h"

#include "file_test_util.h"

namespace {

using namespace kiln::testing;
namespace fs = std::filesystem;
using Catch::Contains;
using Named = std::vector<std::pair<std::string, kiln::Tensor>>;

// ---- hand-written "compiled functions" ------------------------------------------------------

int g_misaligned = 0;  // frame buffers an entry found not 64-byte aligned

void check_aligned(void* const* buffers, int n) {
  for (int i = 0; i < n; ++i)
    g_misaligned += reinterpret_cast<uintptr_t>(buffers[i]) % 64 != 0;
}

// y = x * w + b, x and y [2, 3], w and b [3]; frame inputs [x, w, b, ...].
void affine(const kiln_frame* f) {
  auto x = static_cast<const float*>(f->inputs[0]);
  auto w = static_cast<const float*>(f->inputs[1]);
  auto b = static_cast<const float*>(f->inputs[2]);
  auto y = static_cast<float*>(f->outputs[0]);
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 3; ++j)
      y[i * 3 + j] = x[i * 3 + j] * w[j] + b[j];
  }
}

void inference_entry(const kiln_frame* f) {
  check_aligned(f->inputs, 3);
  check_aligned(f->outputs, 1);
  affine(f);
}

// affine, then the updates b_new = b + sum(x) and step_new = step + 1.
void training_entry(const kiln_frame* f) {
  check_aligned(f->inputs, 4);
  check_aligned(f->outputs, 3);
  affine(f);
  auto x = static_cast<const float*>(f->inputs[0]);
  auto b = static_cast<const float*>(f->inputs[2]);
  float sum = 0;
  for (int i = 0; i < 6; ++i)
    sum += x[i];
  for (int j = 0; j < 3; ++j)
    static_cast<float*>(f->outputs[1])[j] = b[j] + sum;
  *static_cast<int64_t*>(f->outputs[2]) = *static_cast<const int64_t*>(f->inputs[3]) + 1;
}

// training_entry, but kernel 2 reports index 7 (element 3) out of range for an axis of size 5.
void gather_failure_entry(const kiln_frame* f) {
  training_entry(f);
  if (f->status != nullptr && f->status[0] == 0) {
    f->status[0] = 3, f->status[1] = 7, f->status[2] = 3, f->status[3] = 5;
  }
}

// Frame inputs [x, empty, w, b, none], outputs [y, nothing]: affine, ignoring the empty ones.
void zero_size_entry(const kiln_frame* f) {
  void* const inputs[] = {f->inputs[0], f->inputs[2], f->inputs[3]};
  kiln_frame frame = *f;
  frame.inputs = inputs;
  affine(&frame);
}

void throwing_entry(const kiln_frame*) {
  throw std::runtime_error("entry blew up");
}
void out_of_memory_entry(const kiln_frame*) {
  throw std::bad_alloc();
}

// ---- descriptors -----------------------------------------------------------------------------

const int64_t kShape23[] = {2, 3};
const int64_t kShape3[] = {3};
const int64_t kShape0[] = {0};

const kiln_aot_tensor kInputs[] = {{"x", KILN_AOT_F32, 2, kShape23, 24, 0},
                                   {"empty", KILN_AOT_F32, 1, kShape0, 0, 0}};
const kiln_aot_tensor kOutputs[] = {{"y", KILN_AOT_F32, 2, kShape23, 24, 0},
                                    {"nothing", KILN_AOT_F32, 1, kShape0, 0, 0}};
const kiln_aot_tensor kState[] = {{"dense/kernel", KILN_AOT_F32, 1, kShape3, 12, 0},
                                  {"dense/bias", KILN_AOT_F32, 1, kShape3, 12, 64},
                                  {"step", KILN_AOT_I64, 0, nullptr, 8, 128}};
const int32_t kUpdates[] = {1, 2};  // training updates dense/bias and step

struct alignas(64) Blob {
  float w[16];
  float b[16];
  int64_t step[8];
};
const Blob kBlob = {{1, 2, 3}, {0.5f, -1, 2}, {10}};

const float kW[] = {1, 2, 3};
const float kB[] = {0.5f, -1, 2};
const float kX[] = {1, 2, 3, 4, 5, 6};  // sum 21

// The inference function: inputs x, state kernel and bias, output y.
kiln_aot_desc inference_desc() {
  kiln_aot_desc d{};
  d.abi_version = KILN_AOT_ABI_VERSION;
  d.name = "affine";
  d.entry = inference_entry;
  d.workspace_bytes = 128;
  d.num_inputs = 1, d.inputs = kInputs;
  d.num_outputs = 1, d.outputs = kOutputs;
  d.num_state = 2, d.state = kState;
  d.weights = &kBlob, d.weights_bytes = sizeof kBlob;
  return d;
}

// The training step: also state step, and updates to bias and step.
kiln_aot_desc training_desc() {
  kiln_aot_desc d = inference_desc();
  d.name = "trainer";
  d.entry = training_entry;
  d.num_state = 3;
  d.num_updates = 2, d.update_state = kUpdates;
  return d;
}

using Model = std::unique_ptr<kiln_aot_model, decltype(&kiln_aot_destroy)>;

Model create(const kiln_aot_desc& desc, const char* path = nullptr) {
  Model model(kiln_aot_create(&desc, path), kiln_aot_destroy);
  INFO(kiln_aot_last_error(nullptr));
  REQUIRE(model != nullptr);
  return model;
}

// What kiln_aot_create says about `desc` and `path` (it must fail).
std::string create_error(const kiln_aot_desc* desc, const char* path = nullptr) {
  kiln_aot_model* model = kiln_aot_create(desc, path);
  kiln_aot_destroy(model);
  CHECK(model == nullptr);
  return kiln_aot_last_error(nullptr);
}

template <class T>
std::vector<T> state(const Model& model, int32_t index, size_t n) {
  auto p = static_cast<const T*>(kiln_aot_state(model.get(), index));
  REQUIRE(p != nullptr);
  return std::vector<T>(p, p + n);
}

std::vector<float> expected_y(const float* w, const float* b) {
  std::vector<float> y(6);
  for (int i = 0; i < 6; ++i)
    y[i] = kX[i] * w[i % 3] + b[i % 3];
  return y;
}

// A 64-byte aligned buffer from the runtime.
struct Aligned {
  void* p;
  explicit Aligned(size_t n) : p(kiln_rt_alloc(n)) {}
  ~Aligned() { kiln_rt_free(p); }
  Aligned(const Aligned&) = delete;
  Aligned& operator=(const Aligned&) = delete;
};

// Runs `model` on kX and returns y, with the buffers at `misalign` bytes past 64-byte alignment.
std::vector<float> run(kiln_aot_model* model, size_t misalign) {
  Aligned in(64 + 24), out(64 + 24);
  auto* x = static_cast<char*>(in.p) + misalign;
  auto* y = static_cast<char*>(out.p) + misalign;
  std::memcpy(x, kX, sizeof kX);
  const void* inputs[] = {x};
  void* outputs[] = {y};
  INFO(kiln_aot_last_error(model));
  REQUIRE(kiln_aot_run(model, inputs, outputs) == 0);
  std::vector<float> result(6);
  std::memcpy(result.data(), y, 24);
  return result;
}

// ---- safetensors files -----------------------------------------------------------------------

// One header entry.
std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  uint64_t begin, uint64_t end) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape +
         ",\"data_offsets\":[" + std::to_string(begin) + "," + std::to_string(end) + "]}";
}

const std::string kKernel = entry("dense/kernel", "F32", "[3]", 0, 12);
const std::string kBias = entry("dense/bias", "F32", "[3]", 12, 24);
const std::string kData = raw<float>({4, 5, 6, 7, 8, 9});

Named weights(std::vector<float> w, std::vector<float> b, int64_t step) {
  return {{"dense/kernel", make_tensor<float>({3}, w)},
          {"dense/bias", make_tensor<float>({3}, b)},
          {"step", make_tensor<int64_t>({}, {step})}};
}

size_t files_in(const fs::path& dir) {
  return static_cast<size_t>(std::distance(fs::directory_iterator(dir), {}));
}

}  // namespace

// First, so that no earlier test has started the thread pool when the whole file runs at once.
TEST_CASE("kiln_aot_set_num_threads sizes the pool before its first use", "[aot]") {
  CHECK(kiln_aot_set_num_threads(0) != 0);
  CHECK_THAT(kiln_aot_last_error(nullptr), Contains("at least 1, got 0"));
  CHECK(kiln_aot_set_num_threads(-4) != 0);
  REQUIRE(kiln_aot_set_num_threads(5) == 0);
  REQUIRE(kiln_aot_set_num_threads(3) == 0);  // the last request before the pool starts wins
  CHECK(kiln_rt_num_threads() == 3);
  CHECK(kiln_aot_set_num_threads(3) == 0);  // the current count still succeeds
  CHECK(kiln_aot_set_num_threads(4) != 0);
  CHECK_THAT(kiln_aot_last_error(nullptr), Contains("already runs 3 threads"));
  CHECK(kiln_aot_set_num_threads(0) != 0);
}

TEST_CASE("kiln_aot_run computes with aligned and unaligned buffers", "[aot]") {
  g_misaligned = 0;
  Model model = create(inference_desc());
  std::vector<float> want = expected_y(kW, kB);
  for (size_t misalign : {0, 4, 8, 36}) {
    INFO("misalign " << misalign);
    CHECK(run(model.get(), misalign) == want);
  }
  CHECK(g_misaligned == 0);
  // Read-only state at aligned offsets is used in place.
  CHECK(kiln_aot_state(model.get(), 0) == kBlob.w);
  CHECK(kiln_aot_state(model.get(), 1) == kBlob.b);
  CHECK(kiln_aot_state(model.get(), 2) == nullptr);
  CHECK(kiln_aot_state(model.get(), -1) == nullptr);
  CHECK(kiln_aot_state(nullptr, 0) == nullptr);
  CHECK(std::string(kiln_aot_last_error(model.get())).empty());
}

TEST_CASE("kiln_aot_run applies updates to the state across runs by swapping buffers", "[aot]") {
  g_misaligned = 0;
  Model model = create(training_desc());
  const void* first = kiln_aot_state(model.get(), 1);
  CHECK(first != kBlob.b);  // updated state is an owned copy
  std::vector<float> b(kB, kB + 3);
  std::vector<const void*> seen;
  for (int k = 1; k <= 5; ++k) {
    INFO("run " << k);
    CHECK(run(model.get(), k % 2 == 0 ? 0 : 12) == expected_y(kW, b.data()));  // y uses the old b
    for (float& v : b)
      v += 21;
    CHECK(state<float>(model, 1, 3) == b);
    CHECK(state<int64_t>(model, 2, 1) == std::vector<int64_t>{10 + k});
    CHECK(state<float>(model, 0, 3) == std::vector<float>(kW, kW + 3));
    seen.push_back(kiln_aot_state(model.get(), 1));
  }
  // Two buffers take turns: the update buffer becomes the state, no copy.
  CHECK(seen[0] != first);
  CHECK(seen[1] == first);
  CHECK(seen[2] == seen[0]);
  CHECK(g_misaligned == 0);
  // The library's weights are untouched, and a second instance starts from them.
  CHECK(kBlob.b[0] == 0.5f);
  CHECK(kBlob.step[0] == 10);
  Model fresh = create(training_desc());
  CHECK(state<float>(fresh, 1, 3) == std::vector<float>(kB, kB + 3));
  CHECK(run(fresh.get(), 0) == expected_y(kW, kB));
}

TEST_CASE("zero-byte tensors may be NULL", "[aot]") {
  static const kiln_aot_tensor tensors[] = {
      kState[0], kState[1], {"none", KILN_AOT_F32, 1, kShape0, 0, 192}};
  kiln_aot_desc desc = inference_desc();
  desc.num_inputs = 2, desc.num_outputs = 2;
  desc.num_state = 3, desc.state = tensors;
  desc.entry = zero_size_entry;
  Model model = create(desc);
  float y[6];
  const void* inputs[] = {kX, nullptr};
  void* outputs[] = {y, nullptr};
  REQUIRE(kiln_aot_run(model.get(), inputs, outputs) == 0);
  CHECK(std::vector<float>(y, y + 6) == expected_y(kW, kB));
  CHECK(kiln_aot_state(model.get(), 2) != nullptr);
}

TEST_CASE("embedded weights at an unaligned address are copied", "[aot]") {
  Aligned storage(sizeof(Blob) + 64);
  auto* weights = static_cast<char*>(storage.p) + 4;
  std::memcpy(weights, &kBlob, sizeof kBlob);
  kiln_aot_desc desc = inference_desc();
  desc.weights = weights;
  Model model = create(desc);
  for (int32_t i = 0; i < 2; ++i)
    CHECK(reinterpret_cast<uintptr_t>(kiln_aot_state(model.get(), i)) % 64 == 0);
  CHECK(state<float>(model, 0, 3) == std::vector<float>(kW, kW + 3));
  CHECK(run(model.get(), 0) == expected_y(kW, kB));
}

TEST_CASE("kiln_aot_create reads the state from a weights file", "[aot]") {
  TempDir dir;
  std::string path = dir.file("w.safetensors");
  kiln::safetensors::save(path, weights({2, 0, -1}, {1, 1, 1}, 41));
  for (bool embedded : {true, false}) {
    INFO("embedded " << embedded);
    kiln_aot_desc desc = training_desc();
    if (!embedded) desc.weights = nullptr, desc.weights_bytes = 0;
    Model model = create(desc, path.c_str());
    CHECK(state<float>(model, 0, 3) == std::vector<float>{2, 0, -1});
    CHECK(state<int64_t>(model, 2, 1) == std::vector<int64_t>{41});
    const float w[] = {2, 0, -1}, b[] = {1, 1, 1};
    CHECK(run(model.get(), 4) == expected_y(w, b));
    CHECK(state<float>(model, 1, 3) == std::vector<float>{22, 22, 22});
  }
}

TEST_CASE("kiln_aot_create reads escaped names, metadata and any layout", "[aot]") {
  static const kiln_aot_tensor tensors[] = {
      {"caf\xc3\xa9 \"\xf0\x9f\x98\x80\"", KILN_AOT_F32, 1, kShape3, 12, 0},
      {"a\\b/c\n", KILN_AOT_F32, 1, kShape3, 12, 64}};
  kiln_aot_desc desc = inference_desc();
  desc.state = tensors;
  TempDir dir;
  std::string path = dir.file("w.safetensors");
  // Both tensors share the same bytes (overlap is fine), with whitespace and metadata about.
  std::string header = " {\n \"__metadata__\" : {\"format\": \"pt\"},\n " +
                       entry("caf\\u00e9 \\\"\\ud83d\\ude00\\\"", "F32", "[ 3 ]", 0, 12) + " ,\t" +
                       entry("a\\\\b\\/c\\n", "F32", "[3]", 0, 12) + "}\r\n";
  write_bytes(path, safetensors_bytes(header, kData));
  Model model = create(desc, path.c_str());
  CHECK(state<float>(model, 0, 3) == std::vector<float>{4, 5, 6});
  CHECK(state<float>(model, 1, 3) == std::vector<float>{4, 5, 6});

  // Saved back with the names escaped: Kiln's reader and kiln_aot_create both read it.
  std::string saved = dir.file("saved.safetensors");
  REQUIRE(kiln_aot_save_weights(model.get(), saved.c_str()) == 0);
  Named loaded = kiln::safetensors::load(saved);
  REQUIRE(loaded.size() == 2);
  CHECK(loaded[0].first == tensors[1].name);
  CHECK(loaded[1].first == tensors[0].name);
  Model again = create(desc, saved.c_str());
  CHECK(state<float>(again, 0, 3) == std::vector<float>{4, 5, 6});
}

TEST_CASE("kiln_aot_save_weights writes what Kiln and kiln_aot_create read", "[aot]") {
  TempDir dir;
  std::string path = dir.file("trained.safetensors");
  Model model = create(training_desc());
  for (int k = 0; k < 3; ++k)
    run(model.get(), 0);
  REQUIRE(kiln_aot_save_weights(model.get(), path.c_str()) == 0);
  CHECK(files_in(dir.path) == 1);  // no temporary file left behind

  Named want = weights({1, 2, 3}, {63.5f, 62, 65}, 13);
  std::sort(want.begin(), want.end(), [](auto& a, auto& b) { return a.first < b.first; });
  Named loaded = kiln::safetensors::load(path);
  REQUIRE(loaded.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    CHECK(loaded[i].first == want[i].first);
    CHECK(loaded[i].second.host().bitwise_equal(want[i].second.host()));
  }
  // The same bytes as Kiln's own writer.
  std::string kiln_path = dir.file("kiln.safetensors");
  kiln::safetensors::save(kiln_path, want);
  CHECK(read_bytes(path) == read_bytes(kiln_path));

  Model reloaded = create(training_desc(), path.c_str());
  CHECK(state<float>(reloaded, 1, 3) == std::vector<float>{63.5f, 62, 65});
  CHECK(state<int64_t>(reloaded, 2, 1) == std::vector<int64_t>{13});

  // Saving over an existing file replaces it.
  run(model.get(), 0);
  REQUIRE(kiln_aot_save_weights(model.get(), path.c_str()) == 0);
  CHECK(kiln::safetensors::load(path)[2].second.host().data<int64_t>()[0] == 14);

  // A failed save leaves what is there untouched and no temporary file.
  fs::create_directory(dir.file("taken"));
  std::string taken = dir.file("taken");
  CHECK(kiln_aot_save_weights(model.get(), taken.c_str()) != 0);
  CHECK_THAT(kiln_aot_last_error(model.get()), Contains("trainer: cannot write '" + taken + "'"));
  CHECK(fs::is_directory(taken));
  std::string nowhere = dir.file("missing/w.safetensors");
  CHECK(kiln_aot_save_weights(model.get(), nowhere.c_str()) != 0);
  CHECK_THAT(kiln_aot_last_error(model.get()), Contains("cannot create a temporary file"));
  CHECK(kiln_aot_save_weights(model.get(), nullptr) != 0);
  CHECK_THAT(kiln_aot_last_error(model.get()), Contains("the path is NULL"));
  CHECK(files_in(dir.path) == 3);
  CHECK(kiln_aot_save_weights(nullptr, path.c_str()) != 0);
}

TEST_CASE("kiln_aot_create refuses bad weights files with the file and the problem", "[aot]") {
  TempDir dir;
  struct Case {
    const char* what;
    std::string bytes;
    std::string message;
  };
  std::string good = safetensors_bytes("{" + kKernel + "," + kBias + "}", kData);
  std::vector<Case> cases = {
      {"empty", "", "the file is 0 bytes, too short"},
      {"short", "abc", "the file is 3 bytes, too short"},
      {"huge header", le64(uint64_t{1} << 40) + "{}", "over the 100000000 byte limit"},
      {"header past the end", le64(100) + "{}", "the header length 100 runs past the end"},
      {"cut in the header", good.substr(0, 20), "runs past the end of the file"},
      {"cut in the data", good.substr(0, good.size() - 4), "run past the end of the data"},
      {"garbage", le64(8) + "\x01\x02garbage", "the header is not valid JSON"},
      {"trailing text", safetensors_bytes("{} x", ""), "unexpected text after the JSON value"},
      {"two values", safetensors_bytes("{}{}", ""), "unexpected text after the JSON value"},
      {"not an object", safetensors_bytes("[1, 2]", ""), "the header is not a JSON object"},
      {"unterminated", safetensors_bytes("{\"a", ""), "the text ends inside a string"},
      {"unclosed", safetensors_bytes("{\"a\": [1, 2", ""), "the text ends inside an array"},
      {"missing colon", safetensors_bytes("{\"a\" 1}", ""), "expected ':'"},
      {"trailing comma", safetensors_bytes("{\"a\": 1,}", ""), "expected a string key"},
      {"bad literal", safetensors_bytes("{\"a\": nul}", ""), "unexpected character 'n'"},
      {"leading zero", safetensors_bytes("{\"a\": 01}", ""), "expected ',' or '}'"},
      {"bad escape", safetensors_bytes("{\"a\\q\": 1}", ""), "an invalid escape"},
      {"short \\u", safetensors_bytes("{\"a\\u12\": 1}", ""), "four hex digits"},
      {"lone surrogate", safetensors_bytes("{\"\\udc00\": 1}", ""), "lone low surrogate"},
      {"half a pair", safetensors_bytes("{\"\\ud83d\": 1}", ""), "no low one"},
      {"control byte", safetensors_bytes("{\"a\tb\": 1}", ""), "a control character"},
      {"bad UTF-8", safetensors_bytes("{\"\xff\": 1}", ""), "not valid UTF-8"},
      {"deep", safetensors_bytes(std::string(100, '[') + std::string(100, ']'), ""),
       "nests deeper"},
      {"duplicate", safetensors_bytes("{" + kKernel + "," + kKernel + "}", kData), "appears twice"},
      {"entry not object", safetensors_bytes("{\"dense/kernel\": 3}", ""), "not a JSON object"},
      {"no dtype", safetensors_bytes("{\"k\": {\"shape\": [], \"data_offsets\": [0, 4]}}", ""),
       "tensor 'k': its entry has no \"dtype\""},
      {"BF16", safetensors_bytes("{" + entry("k", "BF16", "[3]", 0, 6) + "}", kData),
       "unsupported dtype 'BF16'"},
      {"negative dim", safetensors_bytes("{" + entry("k", "F32", "[-3]", 0, 12) + "}", kData),
       "non-negative integer"},
      {"fractional dim", safetensors_bytes("{" + entry("k", "F32", "[1.5]", 0, 12) + "}", kData),
       "non-negative integer"},
      {"huge shape",
       safetensors_bytes("{" + entry("k", "F32", "[4294967296, 4294967296]", 0, 12) + "}", kData),
       "its shape is too large"},
      {"backwards offsets", safetensors_bytes("{" + entry("k", "F32", "[0]", 8, 4) + "}", kData),
       "end before they begin"},
      {"offsets outside", safetensors_bytes("{" + entry("k", "F32", "[3]", 20, 32) + "}", kData),
       "[20, 32] run past the end of the data (24 bytes"},
      {"size mismatch", safetensors_bytes("{" + entry("k", "F32", "[3]", 0, 8) + "}", kData),
       "needs 12 bytes, but \"data_offsets\" [0, 8] span 8"},
      {"bad metadata", safetensors_bytes("{\"__metadata__\": {\"a\": 1}}", ""), "is not a string"},
      {"missing tensor", safetensors_bytes("{" + kKernel + "}", kData),
       "it has no tensor 'dense/bias', which the model needs"},
      {"extra tensor",
       safetensors_bytes(
           "{" + kKernel + "," + kBias + "," + entry("extra", "F32", "[1]", 0, 4) + "}", kData),
       "it holds tensor 'extra', which is not part of the model"},
      {"wrong dtype",
       safetensors_bytes("{" + kKernel + "," + entry("dense/bias", "I32", "[3]", 12, 24) + "}",
                         kData),
       "dense/bias has dtype I32 in the file, the model expects F32"},
      {"wrong shape",
       safetensors_bytes("{" + entry("dense/kernel", "F32", "[1, 3]", 0, 12) + "," + kBias + "}",
                         kData),
       "dense/kernel has shape [1, 3] in the file, the model expects [3]"},
  };
  kiln_aot_desc desc = inference_desc();
  for (const Case& c : cases) {
    INFO(c.what);
    std::string path = dir.file("bad.safetensors");
    write_bytes(path, c.bytes);
    std::string error = create_error(&desc, path.c_str());
    CHECK_THAT(error, Contains("affine: weights file '" + path + "': "));
    CHECK_THAT(error, Contains(c.message));
  }
  // The good file loads, so the cases above fail for their own reasons.
  std::string path = dir.file("good.safetensors");
  write_bytes(path, good);
  Model model = create(desc, path.c_str());
  CHECK(state<float>(model, 1, 3) == std::vector<float>{7, 8, 9});

  std::string missing = dir.file("missing.safetensors");
  CHECK_THAT(create_error(&desc, missing.c_str()), Contains("cannot open it: No such file"));
  CHECK_THAT(create_error(&desc, dir.path.c_str()), Contains("it is a directory"));
}

TEST_CASE("kiln_aot_create refuses bad descriptors", "[aot]") {
  CHECK(create_error(nullptr) == "kiln_aot_create: the descriptor is NULL");
  kiln_aot_desc desc = inference_desc();
  desc.abi_version = 7;
  CHECK(create_error(&desc) ==
        "kiln_aot_create: the library was built for AOT ABI version 7, this runtime reads "
        "version " +
            std::to_string(KILN_AOT_ABI_VERSION));

  desc = training_desc();
  desc.weights = nullptr;
  CHECK(create_error(&desc) ==
        "trainer: the weights are not embedded in this library; create it from a weights file");
  desc.num_state = 0, desc.num_updates = 0;  // nothing to load: fine
  CHECK(Model(kiln_aot_create(&desc, nullptr), kiln_aot_destroy) != nullptr);

  desc = inference_desc();
  desc.entry = nullptr;
  CHECK_THAT(create_error(&desc), Contains("affine: invalid descriptor: no entry function"));

  static const int32_t bad_update[] = {3};
  desc = training_desc();
  desc.num_updates = 1, desc.update_state = bad_update;
  CHECK_THAT(create_error(&desc), Contains("update 0 names state 3, but there are 3"));
  static const int32_t twice[] = {1, 1};
  desc.num_updates = 2, desc.update_state = twice;
  CHECK_THAT(create_error(&desc), Contains("state 'dense/bias' is updated twice"));

  static const kiln_aot_tensor wrong_bytes[] = {{"x", KILN_AOT_F32, 2, kShape23, 20, 0}};
  desc = inference_desc();
  desc.inputs = wrong_bytes;
  CHECK_THAT(create_error(&desc), Contains("input 'x' is declared as 20 bytes"));

  static const kiln_aot_tensor bad_offset[] = {kState[0], {"dense/bias", 0, 1, kShape3, 12, 32}};
  desc.inputs = kInputs, desc.state = bad_offset;
  CHECK_THAT(create_error(&desc), Contains("state 'dense/bias' at offset 32"));

  static const kiln_aot_tensor same_name[] = {kState[0], kState[0]};
  desc.state = same_name;
  CHECK_THAT(create_error(&desc), Contains("two state tensors are named 'dense/kernel'"));
}

TEST_CASE("kiln_aot_last_error(NULL) is per thread", "[aot]") {
  create_error(nullptr);
  std::string other;
  std::thread([&] {  // no Catch assertions on another thread
    other = kiln_aot_last_error(nullptr);
    kiln_aot_desc desc = inference_desc();
    desc.abi_version = 0;
    kiln_aot_create(&desc, nullptr);
  })
      .join();
  CHECK(other.empty());
  CHECK(std::string(kiln_aot_last_error(nullptr)) == "kiln_aot_create: the descriptor is NULL");
}

TEST_CASE("kiln_aot_run reports NULL buffers and bad gather indices", "[aot]") {
  Model model = create(training_desc());
  float y[6];
  const void* no_input[] = {nullptr};
  void* outputs[] = {y};
  CHECK(kiln_aot_run(model.get(), no_input, outputs) != 0);
  CHECK(std::string(kiln_aot_last_error(model.get())) == "trainer: input 0 (x) is NULL");
  const void* inputs[] = {kX};
  void* no_output[] = {nullptr};
  CHECK(kiln_aot_run(model.get(), inputs, no_output) != 0);
  CHECK(std::string(kiln_aot_last_error(model.get())) == "trainer: output 0 (y) is NULL");
  CHECK(kiln_aot_run(model.get(), nullptr, outputs) != 0);
  CHECK_THAT(kiln_aot_last_error(model.get()), Contains("the inputs array is NULL"));
  CHECK(kiln_aot_run(model.get(), inputs, nullptr) != 0);
  CHECK_THAT(kiln_aot_last_error(model.get()), Contains("the outputs array is NULL"));
  CHECK(kiln_aot_run(nullptr, inputs, outputs) != 0);
  CHECK(state<int64_t>(model, 2, 1) == std::vector<int64_t>{10});  // nothing ran

  kiln_aot_desc desc = training_desc();
  desc.entry = gather_failure_entry;
  Model failing = create(desc);
  CHECK(kiln_aot_run(failing.get(), inputs, outputs) != 0);
  CHECK(std::string(kiln_aot_last_error(failing.get())) ==
        "trainer: index 7 (element 3 of indices) is out of range for an axis of size 5 "
        "(kernel 2); the state was not updated");
  CHECK(state<float>(failing, 1, 3) == std::vector<float>(kB, kB + 3));
  CHECK(state<int64_t>(failing, 2, 1) == std::vector<int64_t>{10});
  CHECK(std::vector<float>(y, y + 6) == expected_y(kW, kB));  // outputs are still written

  // The model stays usable after errors.
  CHECK(run(model.get(), 0) == expected_y(kW, kB));
  CHECK(state<int64_t>(model, 2, 1) == std::vector<int64_t>{11});
}

TEST_CASE("exceptions from an entry become errors", "[aot]") {
  kiln_aot_desc desc = inference_desc();
  desc.entry = throwing_entry;
  Model model = create(desc);
  float y[6];
  const void* inputs[] = {kX};
  void* outputs[] = {y};
  CHECK(kiln_aot_run(model.get(), inputs, outputs) != 0);
  CHECK(std::string(kiln_aot_last_error(model.get())) == "affine: entry blew up");
  desc.entry = out_of_memory_entry;
  Model oom = create(desc);
  CHECK(kiln_aot_run(oom.get(), inputs, outputs) != 0);
  CHECK(std::string(kiln_aot_last_error(oom.get())) == "affine: out of memory");
  kiln_aot_destroy(nullptr);
}

TEST_CASE("kiln_aot_create survives every truncation and byte flip of a weights file", "[aot]") {
  TempDir dir;
  std::string path = dir.file("w.safetensors");
  std::string good = safetensors_bytes(
      "{\"__metadata__\":{\"k\":\"v\\u00e9\"}," + kKernel + "," + kBias + "}", kData);
  kiln_aot_desc desc = inference_desc();
  int loaded = 0, refused = 0;
  auto attempt = [&](const std::string& bytes) {
    write_bytes(path, bytes);
    kiln_aot_model* model = kiln_aot_create(&desc, path.c_str());
    if (model != nullptr) {
      ++loaded;
      kiln_aot_destroy(model);
    } else {
      ++refused;
      std::string error = kiln_aot_last_error(nullptr);
      if (error.find("affine: weights file '" + path + "': ") != 0) FAIL(error);
    }
  };
  for (size_t n = 0; n < good.size(); ++n)
    attempt(good.substr(0, n));
  for (size_t i = 0; i < good.size(); ++i) {
    for (unsigned char v : {0x00, 0x22, 0x5c, 0x7b, 0x80, 0xff}) {
      std::string bytes = good;
      bytes[i] = static_cast<char>(v);
      attempt(bytes);
    }
  }
  CHECK(refused >= static_cast<int>(good.size()));  // every truncation fails
  CHECK(loaded > 0);                                // flips inside the data load
}
