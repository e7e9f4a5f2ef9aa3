// The kiln command on saved models: dump (text, DOT, after a pass), run (.npy in and out), help,
// and the exit status and message for each kind of bad input.
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "cli_test_util.h"
#include "file_test_util.h"

namespace k = kiln;
using Catch::Contains;
using k::testing::count_of;
using k::testing::kiln_cli;
using k::testing::Outcome;
using k::testing::saved_mlp;

TEST_CASE("kiln dump prints a saved model as IR text and DOT", "[tool]") {
  k::testing::TempDir dir;
  saved_mlp(dir);
  Outcome text = kiln_cli("dump " + dir.file("mlp"));
  CHECK(text.status == 0);
  CHECK_THAT(text.out,
             Contains("func @mlp_inference(%arg0: f32[2,3,4]") && Contains("scope \"mlp/hidden\""));

  Outcome dot = kiln_cli("dump " + dir.file("mlp") + " --format dot");
  CHECK(dot.status == 0);
  CHECK_THAT(dot.out, Contains("digraph") && Contains("mlp/hidden"));

  // After fusion: the kernel plan in text, kernels in DOT; written to a file with -o.
  Outcome fused = kiln_cli("dump " + dir.file("mlp") + " --after fusion");
  CHECK(fused.status == 0);
  CHECK_THAT(fused.out, Contains("kernel 0"));
  // --after shows that stage: cse folds the repeated exp the saved text still has.
  k::testing::write_bytes(dir.file("twice.kiln"), R"(func @twice(%x: f32[3]) -> f32[3] {
  %0 = exp(%x) : f32[3]
  %1 = exp(%x) : f32[3]
  %2 = add(%0, %1) : f32[3]
  return %2
}
)");
  Outcome before = kiln_cli("dump " + dir.file("twice.kiln"));
  Outcome after_cse = kiln_cli("dump " + dir.file("twice.kiln") + " --after cse");
  CHECK(before.status == 0);
  CHECK(after_cse.status == 0);
  CHECK(count_of(before.out, "= exp(") == 2);
  CHECK(count_of(after_cse.out, "= exp(") == 1);
  // --expand draws name scopes as clusters; by default each scope is one box.
  CHECK(dot.out.find("subgraph \"cluster") == std::string::npos);
  Outcome expanded = kiln_cli("dump " + dir.file("mlp") + " --format dot --expand");
  CHECK(expanded.status == 0);
  CHECK_THAT(expanded.out, Contains("subgraph \"cluster") && Contains("matmul\\nf32[2,5]"));
  Outcome to_file = kiln_cli("dump " + dir.file("mlp") +
                             " --format dot --after fusion --expand -o " + dir.file("mlp.dot"));
  CHECK(to_file.status == 0);
  CHECK_THAT(k::testing::read_bytes(dir.file("mlp.dot")), Contains("kernel"));

  CHECK(kiln_cli("dump " + dir.file("mlp") + " --format svg").status == 2);  // needs -o
  if (!k::testing::have("dot")) {
    WARN("Graphviz's dot is not installed (Debian: graphviz); skipping --format svg");
    return;
  }
  Outcome svg = kiln_cli("dump " + dir.file("mlp") + " --format svg -o " + dir.file("mlp.svg"));
  CHECK(svg.status == 0);
  CHECK_THAT(k::testing::read_bytes(dir.file("mlp.svg")),
             Contains("<svg") && Contains("mlp/hidden"));
  CHECK_FALSE(std::filesystem::exists(dir.file("mlp.svg.tmp")));
}

TEST_CASE("kiln dump --format ptx compiles a saved model for NVIDIA GPUs", "[tool][gpu-codegen]") {
  k::testing::TempDir dir;
  saved_mlp(dir);
  // The MLP's layers are small matmuls with relu/softmax: every kernel lowers to PTX.
  Outcome ptx = kiln_cli("dump " + dir.file("mlp") + " --format ptx --gpu-arch sm_90");
  INFO(ptx.out.substr(0, 2000));
  CHECK(ptx.status == 0);
  CHECK_THAT(ptx.out, Contains("launches") && Contains("<<<") && Contains("// ---- sm_90 ----") &&
                          Contains(".target sm_90") && Contains(".entry kiln_k1_"));
  CHECK(ptx.out.find("sm_80") == std::string::npos);
  // Both default architectures, to a file.
  Outcome both = kiln_cli("dump " + dir.file("mlp") + " --format ptx -o " + dir.file("mlp.ptx"));
  CHECK(both.status == 0);
  CHECK_THAT(k::testing::read_bytes(dir.file("mlp.ptx")),
             Contains(".target sm_80") && Contains(".target sm_90"));
  // Bad uses: an architecture LLVM does not know (a model error: status 1, saying what to use),
  // --gpu-arch without ptx, --after with ptx (command-line errors: status 2).
  Outcome bad_arch = kiln_cli("dump " + dir.file("mlp") + " --format ptx --gpu-arch sm_100");
  CHECK(bad_arch.status == 1);
  CHECK_THAT(bad_arch.out, Contains("sm_100") && Contains("sm_90"));
  CHECK(kiln_cli("dump " + dir.file("mlp") + " --gpu-arch sm_90").status == 2);
  CHECK(kiln_cli("dump " + dir.file("mlp") + " --format ptx --after cse").status == 2);
}

TEST_CASE("kiln run runs a saved model on .npy inputs", "[tool]") {
  k::testing::TempDir dir;
  k::Sequential model = saved_mlp(dir);
  k::Tensor x = k::random_uniform({2, 3, 4}, 0.0, 1.0, 3);
  k::save_npy(dir.file("x.npy"), x);
  Outcome o = kiln_cli("run " + dir.file("mlp") + " --input " + dir.file("x.npy") + " --output " +
                       dir.file("y.npy"));
  REQUIRE(o.status == 0);
  CHECK_THAT(o.out, Contains("result 0: f32[2,2]: min"));
  std::vector<float> got = k::load_npy(dir.file("y.npy")).to_vector<float>();
  std::vector<float> want = model(x).to_vector<float>();
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i)
    CHECK(got[i] == Approx(want[i]).margin(1e-6));

  // An IR file takes one input per parameter.
  k::testing::write_bytes(dir.file("poly.kiln"), R"(func @poly(%x: f32[3]) -> f32[3] {
  %0 = mul(%x, %x) : f32[3]
  return %0
}
)");
  k::save_npy(dir.file("v.npy"), k::constant({1.f, 2.f, 3.f}));
  Outcome poly = kiln_cli("run " + dir.file("poly.kiln") + " --input " + dir.file("v.npy"));
  CHECK(poly.status == 0);
  CHECK_THAT(poly.out, Contains("min 1, max 9, mean 4.66667; first values 1 4 9"));
}

TEST_CASE("kiln says what is wrong with bad commands and models", "[tool]") {
  k::testing::TempDir dir;
  saved_mlp(dir);
  // Help for the command and for each subcommand (exit 0), none at all (exit 2).
  Outcome help = kiln_cli("--help");
  CHECK(help.status == 0);
  CHECK_THAT(help.out,
             Contains("dump") && Contains("run") && Contains("aot") && Contains("--version"));
  CHECK_THAT(kiln_cli("dump --help").out, Contains("--after") && Contains("--format"));
  CHECK_THAT(kiln_cli("run --help").out, Contains("--input") && Contains("--output"));
  CHECK_THAT(kiln_cli("aot --help").out, Contains("--target-cpu") && Contains("--weights") &&
                                             Contains("--device") && Contains("--gpu-arch"));
  CHECK(kiln_cli("dump --help").status == 0);
  CHECK(kiln_cli("").status == 2);

  // Every command-line mistake: exit 2 and a message naming the option.
  auto usage_error = [&](const std::string& args, const std::string& message) {
    Outcome o = kiln_cli(args);
    INFO(args << "\n" << o.out);
    CHECK(o.status == 2);
    CHECK_THAT(o.out, Contains(message));
  };
  usage_error("frobnicate", "frobnicate");
  usage_error("aot " + dir.file("mlp"), "--output is required");
  usage_error("aot " + dir.file("mlp") + " -o " + dir.file("libm.so") + " --device tpu",
              "--device: tpu not in");
  usage_error("aot " + dir.file("mlp") + " -o " + dir.file("libm.so") + " --gpu-arch sm_80",
              "--gpu-arch needs --device cuda");
  // A malformed architecture list is the compiler's error (checked before any tool runs).
  Outcome bad_arch = kiln_cli("aot " + dir.file("mlp") + " -o " + dir.file("out/libm.so") +
                              " --device cuda --gpu-arch sm_80,sm8x");
  CHECK(bad_arch.status == 1);
  CHECK_THAT(bad_arch.out, Contains("'sm8x' is not a GPU architecture"));
  CHECK_FALSE(std::filesystem::exists(dir.file("out/libm.so")));
  usage_error("dump " + dir.file("mlp") + " --format png", "--format: png not in");
  usage_error("dump " + dir.file("mlp") + " --format=png", "--format: png not in");
  usage_error("dump " + dir.file("mlp") + " --after inline", "--after: inline not in");
  usage_error("dump " + dir.file("mlp") + " --frobnicate", "--frobnicate");
  usage_error("dump", "MODEL is required");
  usage_error("run " + dir.file("mlp"), "--input is required");
  usage_error("dump " + dir.file("mlp") + " " + dir.file("mlp"), "not expected");

  Outcome missing = kiln_cli("dump " + dir.file("nothing"));
  CHECK(missing.status == 1);
  CHECK_THAT(missing.out, Contains("does not exist"));
  std::filesystem::create_directories(dir.file("empty"));
  CHECK_THAT(kiln_cli("run " + dir.file("empty") + " --input x.npy").out,
             Contains("is not a saved model"));

  // Corrupt IR: the parser's line and column.
  k::testing::write_bytes(dir.file("bad.kiln"),
                          "func @f(%x: f32[2]) -> f32[2] {\n  %0 = bogus(%x)\n");
  Outcome bad = kiln_cli("dump " + dir.file("bad.kiln"));
  CHECK(bad.status == 1);
  CHECK_THAT(bad.out, Contains("2:"));

  // An input of the wrong shape, and a file that is not .npy.
  k::save_npy(dir.file("wrong.npy"), k::zeros({3, 3, 5}));
  Outcome wrong = kiln_cli("run " + dir.file("mlp") + " --input " + dir.file("wrong.npy"));
  CHECK(wrong.status == 1);
  CHECK_THAT(wrong.out, Contains("takes f32[None,3,4] (saved as f32[2,3,4]), got f32[3,3,5]"));
  k::testing::write_bytes(dir.file("junk.npy"), "not a numpy file");
  CHECK(kiln_cli("run " + dir.file("mlp") + " --input " + dir.file("junk.npy")).status == 1);

  // A failed write leaves nothing behind.
  Outcome unwritable = kiln_cli("dump " + dir.file("mlp") + " -o " + dir.file("no/such/dir/g.txt"));
  CHECK(unwritable.status == 1);
  CHECK_FALSE(std::filesystem::exists(dir.file("no")));
}

TEST_CASE("to_dot draws a traced kiln::function's graph, as issue 6's contract writes it",
          "[tool]") {
  auto f = k::function([](const k::Tensor& x) { return 10.f * x * x - 5.f * x + 4.f; }, "poly");
  k::Tensor example_input = k::constant({1.f, 2.f});
  std::string dot = k::ir::to_dot(f.graph(example_input));
  CHECK(dot.rfind("digraph \"poly\"", 0) == 0);
  CHECK(dot.find("mul\\nf32[2]") != std::string::npos);
  CHECK(dot.find("return\\nf32[2]") != std::string::npos);
}

TEST_CASE("kiln --version prints the library's version", "[tool]") {
  Outcome version = kiln_cli("--version");
  CHECK(version.status == 0);
  CHECK(version.out ==
        fmt::format("kiln {}.{}.{}\n", KILN_VERSION_MAJOR, KILN_VERSION_MINOR, KILN_VERSION_PATCH));
  CHECK(std::string(k::version()) ==
        fmt::format("{}.{}.{}", KILN_VERSION_MAJOR, KILN_VERSION_MINOR, KILN_VERSION_PATCH));
}

TEST_CASE("kiln takes --option=value as well as --option value", "[tool]") {
  k::testing::TempDir dir;
  saved_mlp(dir);
  Outcome spaced = kiln_cli("dump " + dir.file("mlp") + " --format dot --after cse");
  Outcome joined = kiln_cli("dump " + dir.file("mlp") + " --format=dot --after=cse");
  CHECK(spaced.status == 0);
  CHECK(joined.status == 0);
  CHECK(spaced.out == joined.out);
  CHECK_THAT(joined.out, Contains("digraph"));
}

// Output names a shell would read as commands: each must name exactly one file, and nothing may
// run (a marker file would appear in the working folder).
TEST_CASE("kiln dump writes to any output name and runs no shell", "[tool][security]") {
  k::testing::TempDir dir;
  saved_mlp(dir);
  // A shell would run `touch PWNED` in this process's folder.
  const std::string marker = (std::filesystem::current_path() / "PWNED").string();
  std::filesystem::remove(marker);
  const std::vector<std::string> names = {
      "a'; touch PWNED; echo '.svg",
      "with space.svg",
      "$(touch PWNED).svg",
      "`touch PWNED`.svg",
      "semi;colon.svg",
      "new\nline.svg",
      "quote\"d.svg",
  };
  std::vector<std::string> formats = {"text", "dot"};
  if (k::testing::have("dot")) {
    formats.push_back("svg");
    formats.push_back("html");
  } else {
    WARN("Graphviz's dot is not installed; checking text and dot output only");
  }
  for (const std::string& format : formats) {
    for (const std::string& name : names) {
      const std::string out_dir = dir.file("out");
      std::filesystem::create_directories(out_dir);
      const std::string path = out_dir + "/" + name;
      Outcome o = kiln_cli(
          std::vector<std::string>{"dump", dir.file("mlp"), "--format", format, "-o", path});
      INFO(format << " " << name << "\n" << o.out);
      CHECK(o.status == 0);
      std::vector<std::string> written;
      for (const auto& entry : std::filesystem::directory_iterator(out_dir))
        written.push_back(entry.path().filename().string());
      REQUIRE(written.size() == 1);
      CHECK(written[0] == name);
      CHECK(std::filesystem::file_size(path) > 100);
      CHECK_FALSE(std::filesystem::exists(marker));
      std::filesystem::remove_all(out_dir);
    }
  }
  // Nothing but the saved model is left next to the output folder: no temporaries, no marker.
  std::vector<std::string> left;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path))
    left.push_back(entry.path().filename().string());
  CHECK(left == std::vector<std::string>{"mlp"});
}

TEST_CASE("kiln run compiles a saved model whose function is a 100000-node chain", "[tool]") {
  // Deep chains used to exhaust the stack (a recursive expression emitter); now fusion bounds
  // each kernel's depth (tests/deep_chain_test.cpp has the other walks).
  k::testing::TempDir dir;
  const int n = 100'000;
  std::string text = "func @chain(%x: f32[4]) -> f32[4] {\n  %0 = add(%x, %x) : f32[4]\n";
  for (int i = 1; i < n; ++i)
    text += fmt::format("  %{} = {}(%{}, %x) : f32[4]\n", i, i % 2 ? "mul" : "add", i - 1);
  text += fmt::format("  return %{}\n}}\n", n - 1);
  std::filesystem::create_directories(dir.file("chain"));
  k::testing::write_bytes(dir.file("chain/model.kiln"), text);
  k::safetensors::save(dir.file("chain/weights.safetensors"), {});
  const k::Tensor x = k::constant({1.f, 0.5f, 0.25f, 0.9f});
  k::save_npy(dir.file("x.npy"), x);

  Outcome o = kiln_cli(std::vector<std::string>{"run", dir.file("chain"), "--input",
                                                dir.file("x.npy"), "--output", dir.file("y.npy")});
  INFO(o.out);
  REQUIRE(o.status == 0);
  const std::vector<float> got = k::load_npy(dir.file("y.npy")).to_vector<float>();
  const std::vector<float> xs = x.to_vector<float>();
  REQUIRE(got.size() == 4);
  for (size_t e = 0; e < got.size(); ++e) {
    float want = xs[e] + xs[e];
    for (int i = 1; i < n; ++i)
      want = i % 2 ? want * xs[e] : want + xs[e];
    CHECK(got[e] == Approx(want).epsilon(1e-5));
  }
}
