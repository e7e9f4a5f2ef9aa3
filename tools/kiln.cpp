// The kiln command: looks at, runs and compiles saved models.
//
//   kiln dump MODEL [--format text|dot|svg|html|ptx] [--after PASS] [--expand]
//             [--gpu-arch sm_80,sm_90] [-o FILE]
//   kiln run  MODEL --input x.npy [--input ...] [--output out.npy ...]
//   kiln aot  MODEL -o build/libNAME.so [--name NAME] [--target-cpu CPU] [--weights embed|external]
//             [--device cpu|cuda] [--gpu-arch sm_80,sm_90] [--batch-sizes 1,32] [--shapes 4x9x1]
//   kiln --help, kiln COMMAND --help, kiln --version
//
// MODEL is a directory written by Model::save (model.kiln + weights.safetensors) or an IR text
// file. Exit status: 0 on success, 1 when the model or an input is bad (the message says which),
// 2 for a bad command line. The command line is parsed by CLI11; other programs (Graphviz) run
// from an argument vector, never through a shell.
#include <kiln/kiln.h>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <source_location>
#include <string>
#include <vector>

#include "graph_html.h"
#include "kiln/codegen/gpu.h"
#include "kiln/frontend/core/compile.h"
#include "kiln/frontend/formats/atomic_file.h"
#include "kiln/frontend/process.h"
#include "kiln/ir/dot.h"
#include "kiln/ir/parser.h"
#include "kiln/ir/printer.h"
#include "kiln/passes/pipeline.h"

namespace k = kiln;

namespace {

constexpr const char* kModelHelp =
    "a directory written by Model::save (model.kiln + weights.safetensors) or an IR text file";

// A command-line mistake found after parsing: the message, then exit status 2.
struct UsageError {
  std::string message;
};

const std::vector<std::string> kStages = {"conv_to_gemm", "canonicalize", "cse", "dce", "fusion"};

// The function of MODEL: a saved directory's model.kiln, or the IR file itself.
std::string model_ir_path(const std::string& model) {
  if (std::filesystem::is_directory(model)) return model + "/model.kiln";
  return model;
}

k::ir::Function load_function(const std::string& model) {
  const std::string path = model_ir_path(model);
  if (!std::filesystem::exists(path)) {
    throw k::IOError(std::filesystem::is_directory(model)
                         ? fmt::format("{} is not a saved model: {} is missing", model, path)
                         : fmt::format("{} does not exist", model));
  }
  return k::ir::parse_file(path);
}

void write_output(const std::optional<std::string>& path, const std::string& text) {
  if (path) {
    k::detail::write_file_atomically(*path, text, "kiln dump", std::source_location::current());
  } else {
    std::cout << text;
  }
}

// Renders DOT to SVG with Graphviz's dot, run without a shell on files in `temp` (a private
// folder next to the output `path`), so no output name can be read as a command.
std::string render_svg(const std::string& dot, const k::detail::TempDir& temp,
                       const std::string& path, const std::string& format) {
  const std::string dot_path = temp.file("graph.dot"), svg_path = temp.file("graph.svg");
  std::ofstream(dot_path, std::ios::binary) << dot;  // scratch, removed with `temp`
  std::string error;
  const int status =
      k::detail::run_program({"dot", "-Tsvg", dot_path}, svg_path, error, temp.file("log"));
  if (status == k::detail::kProgramNotFound) {
    throw k::IOError(
        fmt::format("--format {} needs Graphviz's dot program (Debian package graphviz); "
                    "--format dot writes the graph for rendering elsewhere",
                    format));
  }
  std::string svg;
  if (status == 0) {
    std::ifstream in(svg_path, std::ios::binary);
    svg.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  if (status != 0 || svg.find("<svg") == std::string::npos) {
    throw k::IOError(fmt::format("Graphviz's dot failed rendering {} ({}): {}", path,
                                 status < 0 ? error : fmt::format("status {}", status),
                                 k::detail::tail_of_file(temp.file("log"), 2000)));
  }
  return svg;
}

struct DumpOptions {
  std::string model;
  std::string format = "text";
  std::optional<std::string> after, output;
  bool expand = false;
  std::optional<std::string> gpu_arch;
};

// The model compiled for NVIDIA GPUs: its launch plan as comments, then the PTX of each
// architecture. Needs no GPU and no driver (docs/gpu.md).
std::string ptx_dump(k::ir::Function function, const std::string& model,
                     const std::optional<std::string>& gpu_arch) {
  k::passes::PipelineResult result = k::passes::run_pipeline(
      std::move(function), {.conv_lowering = k::passes::ConvLowering::im2col, .print_after = {}});
  k::codegen::GpuOptions options;
  if (gpu_arch) options.gpu_arch = *gpu_arch;
  const k::codegen::GpuModule gpu =
      k::codegen::compile_gpu(result.function, result.kernels, result.memory, options);
  std::string out = fmt::format("// {} for NVIDIA GPUs: {} launches, {} workspace bytes\n", model,
                                gpu.launches.size(), gpu.workspace_bytes);
  std::string plan = gpu.print_launch_plan();
  size_t begin = 0;
  while (begin < plan.size()) {
    size_t end = plan.find('\n', begin);
    if (end == std::string::npos) end = plan.size();
    out += fmt::format("//   {}\n", std::string_view(plan).substr(begin, end - begin));
    begin = end + 1;
  }
  for (const auto& ptx : gpu.ptx) {
    out += fmt::format("\n// ---- {} ----\n", ptx.arch);
    out += ptx.text;
  }
  return out;
}

int dump(const DumpOptions& o) {
  const std::string& format = o.format;
  const std::optional<std::string>& after = o.after;
  if ((format == "svg" || format == "html") && !o.output) {
    throw UsageError{fmt::format("--format {} needs -o FILE", format)};
  }
  if (format == "ptx" && after) {
    throw UsageError{"--format ptx compiles the whole pipeline; --after does not apply to it"};
  }
  if (format != "ptx" && o.gpu_arch) throw UsageError{"--gpu-arch goes with --format ptx"};

  k::ir::Function function = load_function(o.model);
  if (format == "ptx") {
    write_output(o.output, ptx_dump(std::move(function), o.model, o.gpu_arch));
    return 0;
  }
  // The page draws every node and collapses scopes itself.
  k::ir::DotOptions dot_options{.expand = o.expand || format == "html"};
  // The function at the chosen stage: as saved, or after a pass of the pipeline (with the
  // kernel plan after fusion).
  std::optional<k::passes::PipelineResult> result;
  if (after) {
    const bool fusion = *after == "fusion";
    result = k::passes::run_pipeline(std::move(function),
                                     {.print_after = {}, .stop_after = fusion ? "" : *after});
    dot_options.title = result->function.name() + " after " + *after;
    if (fusion) {
      for (size_t kernel = 0; kernel < result->kernels.kernels.size(); ++kernel)
        for (const k::ir::Node* node : result->kernels.kernels[kernel].nodes)
          dot_options.kernel_of[node] = static_cast<int>(kernel);
    }
  }
  const k::ir::Function& drawn = result ? result->function : function;
  std::string text;
  if (format != "text") {
    text = k::ir::to_dot(drawn, dot_options);
  } else if (after && *after == "fusion") {
    text = k::passes::print_pipeline_result(*result);
  } else {
    text = k::ir::print(drawn);
  }
  if (format != "svg" && format != "html") {
    write_output(o.output, text);
    return 0;
  }
  // One scratch folder for every rendering (the page has several layouts).
  std::filesystem::path parent = std::filesystem::path(*o.output).parent_path();
  const k::detail::TempDir temp(parent.empty() ? "." : parent.string(), "kiln-dump", "kiln dump",
                                std::source_location::current());
  const auto render = [&](const std::string& dot) {
    return render_svg(dot, temp, *o.output, format);
  };
  if (format == "svg") {
    write_output(o.output, render(text));
  } else {
    const std::string title = dot_options.title.empty() ? drawn.name() : dot_options.title;
    write_output(o.output, k::tools::graph_html(drawn, dot_options, render, title));
  }
  return 0;
}

// "f32[1,10]: min 0.001, max 0.93, mean 0.1; first values 0.01 0.02 ..."
std::string summarize(const k::Tensor& t) {
  std::string out = t.type().to_string();
  const k::ir::HostTensor& host = t.host();
  const int64_t n = host.num_elements();
  if (n == 0) return out + ": empty";
  double lo = host.element_as_double(0), hi = lo, sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    double v = host.element_as_double(i);
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    sum += v;
  }
  out +=
      fmt::format(": min {:.6g}, max {:.6g}, mean {:.6g}; first values", lo, hi, sum / double(n));
  for (int64_t i = 0; i < std::min<int64_t>(n, 10); ++i)
    out += fmt::format(" {:.6g}", host.element_as_double(i));
  return out;
}

struct RunOptions {
  std::string model;
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;  // --output, one per result from the first
};

int run(const RunOptions& o) {
  const std::string& model = o.model;
  const std::vector<std::string>& inputs = o.inputs;
  std::vector<k::Tensor> results;
  if (std::filesystem::is_directory(model)) {
    k::SavedModel saved = k::load_model(model);
    if (inputs.size() != saved.num_inputs()) {
      throw UsageError{
          fmt::format("the saved model takes {} --input file{} (one per input, in "
                      "order), got {}",
                      saved.num_inputs(), saved.num_inputs() == 1 ? "" : "s", inputs.size())};
    }
    std::vector<k::Tensor> xs;
    for (const std::string& input : inputs)
      xs.push_back(k::load_npy(input));
    results = saved(xs);
  } else {
    k::ir::Function function = load_function(model);
    if (inputs.size() != function.params().size()) {
      throw k::ValueError(fmt::format("{} takes {} parameters; got {} --input files", model,
                                      function.params().size(), inputs.size()));
    }
    std::vector<k::ir::HostTensor> args_values;
    for (size_t i = 0; i < inputs.size(); ++i) {
      k::Tensor t = k::load_npy(inputs[i]);
      const k::ir::TensorType& want = function.param(i)->type();
      if (t.type() != want) {
        throw k::ShapeError(fmt::format("{}: parameter {} ({}) is {}, but {} holds {}", model, i,
                                        k::ir::print_value(function, function.param(i)),
                                        want.to_string(), inputs[i], t.type().to_string()));
      }
      args_values.push_back(t.host());
    }
    std::unique_ptr<k::CompiledFunction> compiled = k::compile(std::move(function));
    k::ir::EvalResult result = compiled->run(args_values);
    for (k::ir::HostTensor& out : result.outputs)
      results.emplace_back(std::move(out));
  }
  for (size_t i = 0; i < results.size(); ++i)
    std::cout << "result " << i << ": " << summarize(results[i]) << "\n";
  if (o.outputs.size() > results.size()) {
    throw UsageError{fmt::format("{} --output files for {} result{}", o.outputs.size(),
                                 results.size(), results.size() == 1 ? "" : "s")};
  }
  for (size_t i = 0; i < o.outputs.size(); ++i) {
    k::save_npy(o.outputs[i], results[i]);
    std::cout << "wrote " << o.outputs[i] << "\n";
  }
  return 0;
}

// NAME from --name, else from the library's file name (libNAME.so).
std::string library_name(const std::optional<std::string>& name, const std::string& output) {
  if (name) return *name;
  std::string file = std::filesystem::path(output).filename().string();
  if (file.starts_with("lib")) file = file.substr(3);
  if (file.ends_with(".so")) file = file.substr(0, file.size() - 3);
  if (file.empty() || file.find('.') != std::string::npos) {
    throw UsageError{fmt::format("cannot tell NAME from {}; give --name NAME", output)};
  }
  return file;
}

// kiln aot's command line: MODEL, -o, --name and --weights (a word); the other options go to
// `compile` as they are.
struct AotOptions {
  std::string model, output;
  std::optional<std::string> name;
  std::string weights = "embed";
  std::vector<std::string> shapes;  // --shapes, each "4x9x1"
  k::aot::Options compile;
};

// "4x9x1" as a shape; UsageError unless it is sizes (>= 0) joined by x.
k::Shape parse_shape(const std::string& text) {
  std::vector<int64_t> dims;
  size_t begin = 0;
  while (true) {
    const size_t end = std::min(text.find('x', begin), text.size());
    const std::string part = text.substr(begin, end - begin);
    int64_t value = -1;
    size_t used = 0;
    try {
      value = std::stoll(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (part.empty() || used != part.size() || value < 0 || !std::isdigit((unsigned char)part[0]))
      throw UsageError{fmt::format("--shapes: '{}' is not a shape like 4x9x1", text)};
    dims.push_back(value);
    if (end == text.size()) break;
    begin = end + 1;
  }
  return k::Shape(std::move(dims));
}

int aot(const AotOptions& o) {
  k::aot::Options options = o.compile;
  options.name = library_name(o.name, o.output);
  options.out_dir = std::filesystem::path(o.output).parent_path().string();
  options.library_file = std::filesystem::path(o.output).filename().string();
  if (options.out_dir.empty()) options.out_dir = ".";
  options.weights = o.weights == "embed" ? k::aot::Weights::embed : k::aot::Weights::external;
  for (const std::string& shape : o.shapes)
    options.input_shapes.push_back(parse_shape(shape));
  const bool variants = !options.batch_sizes.empty() || !options.input_shapes.empty();
  if (variants && !std::filesystem::is_directory(o.model))
    throw UsageError{"--batch-sizes and --shapes apply to a saved model (a directory)"};

  const auto start = std::chrono::steady_clock::now();
  k::aot::Library lib;
  if (std::filesystem::is_directory(o.model)) {
    lib = k::aot::compile(k::load_model(o.model), options);
  } else {
    k::ir::Function function = load_function(o.model);
    lib = k::aot::compile(function, function.params().size(), {}, options);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << fmt::format("wrote {} ({:.1f} KiB) and {}", lib.library,
                           double(std::filesystem::file_size(lib.library)) / 1024, lib.header);
  if (!lib.weights.empty()) std::cout << fmt::format(" and {}", lib.weights);
  std::cout << fmt::format(" in {:.2f} s\n", seconds);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "kiln: look at, run and compile saved Kiln models.\n"
      "MODEL is a directory written by Model::save (model.kiln + weights.safetensors) or an IR "
      "text file. Exit status: 0 success, 1 a bad model or input, 2 a bad command line.",
      "kiln"};
  app.require_subcommand(0, 1);
  bool show_version = false;
  app.add_flag("--version", show_version, "print Kiln's version and exit");

  DumpOptions dump_options;
  CLI::App* dump_command = app.add_subcommand(
      "dump",
      "print a saved model's graph as IR text or Graphviz DOT, or render it to SVG or an "
      "interactive HTML page");
  dump_command->add_option("MODEL", dump_options.model, kModelHelp)->required();
  dump_command
      ->add_option("--format", dump_options.format,
                   "text (IR, the default), dot (Graphviz), svg, html: one self-contained page "
                   "with pan, zoom, collapsible scopes, search and node details (svg and html "
                   "need Graphviz's dot program), or ptx: the model compiled for NVIDIA GPUs "
                   "(launch plan and PTX; no GPU needed)")
      ->check(CLI::IsMember({"text", "dot", "svg", "html", "ptx"}));
  dump_command->add_option("--gpu-arch", dump_options.gpu_arch,
                           "ptx: the GPU architectures, comma-separated (default sm_80,sm_90; "
                           "LLVM 19 knows up to sm_90a)");
  dump_command
      ->add_option("--after", dump_options.after,
                   "the function after a stage of the compiler pipeline (fusion: kernels grouped; "
                   "text adds the kernel plan)")
      ->check(CLI::IsMember(kStages));
  dump_command->add_flag("--expand", dump_options.expand,
                         "dot/svg: draw every node, name scopes as clusters (default: a box per "
                         "scope)");
  dump_command->add_option("-o,--output", dump_options.output,
                           "write to FILE (atomically) instead of standard output; svg and html "
                           "need it");

  RunOptions run_options;
  CLI::App* run_command = app.add_subcommand(
      "run", "JIT-compile a saved model, run it on .npy inputs and summarize the outputs");
  run_command->add_option("MODEL", run_options.model, kModelHelp)->required();
  run_command
      ->add_option("--input", run_options.inputs,
                   "a .npy file for the next parameter (repeat it: a saved model takes one, an IR "
                   "file one per parameter, in order)")
      ->required()
      ->allow_extra_args(false);
  run_command->add_option("--output", run_options.outputs,
                          "write a result as .npy: the first --output the first result, and so on");

  AotOptions aot_options;
  CLI::App* aot_command = app.add_subcommand(
      "aot",
      "compile a saved model ahead of time into a self-contained shared library (needing only "
      "libc, libm and libpthread) with a C header; docs/aot.md describes its API");
  aot_command->add_option("MODEL", aot_options.model, kModelHelp)->required();
  aot_command
      ->add_option("-o,--output", aot_options.output,
                   "the library to write, DIR/libNAME.so (lib<NAME>.so names it NAME; the header "
                   "NAME.h goes next to it)")
      ->required();
  aot_command->add_option("--name", aot_options.name,
                          "the C prefix of the API (NAME_create, NAME_run, ...) and of the header");
  aot_command->add_option("--target-cpu", aot_options.compile.target_cpu,
                          "native (this machine, the default) or an LLVM CPU name for others: "
                          "x86-64-v3 (AVX2, no AVX-512), x86-64-v4, znver4, ...");
  aot_command
      ->add_option("--weights", aot_options.weights,
                   "embed (in the library, the default) or external (NAME.safetensors next to "
                   "it, loaded by NAME_create_from)")
      ->check(CLI::IsMember({"embed", "external"}));
  aot_command
      ->add_option("--opt-level", aot_options.compile.opt_level,
                   "LLVM optimization level 0-3 (default 2)")
      ->check(CLI::Range(0, 3));
  aot_command
      ->add_option("--device", aot_options.compile.device,
                   "cpu (the default) or cuda: kernels for NVIDIA GPUs, embedded as a fatbin "
                   "(building needs a CUDA toolkit; running, only the driver)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  aot_command
      ->add_option("--batch-sizes", aot_options.compile.batch_sizes,
                   "a saved model: also compile it for these batch sizes, comma-separated (one "
                   "library; NAME_run_dims picks the variant, NAME_run_batch runs any number of "
                   "samples; docs/aot.md)")
      ->delimiter(',');
  aot_command
      ->add_option("--shapes", aot_options.shapes,
                   "a saved model: also compile it for these whole input shapes, comma-separated, "
                   "each as sizes joined by x (4x9x1: batch 4, length 9)")
      ->delimiter(',');
  CLI::Option* gpu_arch_option =
      aot_command->add_option("--gpu-arch", aot_options.compile.gpu_arch,
                              "cuda: the GPU architectures to embed cubins for, comma-separated "
                              "(default sm_80,sm_90; PTX of the newest is embedded too)");

  // "kiln dump" etc. in messages: the subcommand given, even when its options failed to parse.
  auto command = [&] {
    const std::vector<CLI::App*> given = app.get_subcommands();
    return given.empty() ? std::string("kiln") : "kiln " + given.back()->get_name();
  };
  auto usage_error = [&](const std::string& message) {
    std::cerr << command() << ": " << message << "\n(" << command()
              << " --help lists the options)\n";
    return 2;
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    return usage_error(e.what());
  }
  if (show_version) {
    std::cout << "kiln " << k::version() << "\n";
    return 0;
  }
  try {
    if (dump_command->parsed()) return dump(dump_options);
    if (run_command->parsed()) return run(run_options);
    if (aot_command->parsed()) {
      if (gpu_arch_option->count() > 0 && aot_options.compile.device != "cuda")
        throw UsageError{"--gpu-arch needs --device cuda"};
      return aot(aot_options);
    }
    std::cerr << app.help();
    return 2;
  } catch (const UsageError& e) {
    return usage_error(e.message);
  } catch (const std::exception& e) {  // kiln::Error and anything else: the model or an input
    std::cerr << command() << ": error: " << e.what() << "\n";
    return 1;
  }
}
