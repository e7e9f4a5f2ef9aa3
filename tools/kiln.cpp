// The kiln command: looks at and runs saved models.
//
//   kiln dump MODEL [--format text|dot|svg|html] [--after PASS] [--expand] [-o FILE]
//   kiln run  MODEL --input x.npy [--input ...] [--output out.npy]
//   kiln aot  MODEL -o build/libNAME.so [--name NAME] [--target-cpu CPU] [--weights embed|external]
//   kiln --help, kiln COMMAND --help
//
// MODEL is a directory written by Model::save (model.kiln + weights.safetensors) or an IR text
// file. Exit status: 0 on success, 1 when the model or an input is bad (the message says which),
// 2 for a bad command line.
#include <kiln/kiln.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <source_location>
#include <string>
#include <unordered_map>
#include <vector>

#include "graph_html.h"
#include "kiln/frontend/atomic_file.h"
#include "kiln/frontend/compile.h"
#include "kiln/ir/dot.h"
#include "kiln/ir/parser.h"
#include "kiln/ir/printer.h"
#include "kiln/passes/pipeline.h"

namespace k = kiln;

namespace {

constexpr const char* kUsage = R"(usage: kiln COMMAND [options]

Commands:
  dump MODEL   print a saved model's graph as IR text or Graphviz DOT, or render it to SVG or
               an interactive HTML page
  run  MODEL   JIT-compile a saved model, run it on .npy inputs and summarize the outputs
  aot  MODEL   compile a saved model ahead of time into a self-contained shared library with a
               C header

MODEL is a directory written by Model::save (model.kiln + weights.safetensors) or an IR text
file. `kiln COMMAND --help` describes a command's options.
)";

constexpr const char* kDumpUsage =
    R"(usage: kiln dump MODEL [--format text|dot|svg|html] [--after PASS] [--expand] [-o FILE]

Prints the model's function.
  --format F    text (IR, the default), dot (Graphviz), svg, or html: one self-contained page
                with pan, zoom, collapsible scopes and node details (svg and html need
                Graphviz's dot program; html always draws every node)
  --after PASS  the function after a stage of the compiler pipeline: conv_to_gemm, canonicalize,
                cse, dce or fusion (kernels grouped; text adds the kernel plan)
  --expand      dot/svg: draw every node, name scopes as clusters (default: a box per scope)
  -o FILE       write to FILE (atomically) instead of standard output; svg and html need -o
)";

constexpr const char* kRunUsage =
    R"(usage: kiln run MODEL --input x.npy [--input ...] [--output out.npy]

Compiles the model's function and runs it once. A saved model directory takes one input (its
weights come from weights.safetensors); an IR text file takes one --input per parameter, in
order. Prints each result's type and summary statistics.
  --input FILE   a .npy file for the next parameter
  --output FILE  write the (first) result as .npy
)";

constexpr const char* kAotUsage =
    R"(usage: kiln aot MODEL -o DIR/libNAME.so [--name NAME] [--target-cpu CPU]
                [--weights embed|external] [--opt-level N]

Compiles the model's function into a shared library that needs only libc, libm and libpthread,
and writes its C header (NAME.h) next to it. A saved model directory's input becomes NAME_run's
argument and its weights the model's state; every parameter of an IR text file is an input.
  -o FILE             the library to write (lib<NAME>.so names it NAME)
  --name NAME         the C prefix of the API (NAME_create, NAME_run, ...) and of the header
  --target-cpu CPU    native (this machine, the default) or an LLVM CPU name for others:
                      x86-64-v3 (AVX2, no AVX-512), x86-64-v4, znver4, ...
  --weights W         embed (in the library, the default) or external (NAME.safetensors next to
                      it, loaded by NAME_create_from)
  --opt-level N       LLVM optimization level 0-3 (default 2)
docs/aot.md describes the library's API.
)";

// A command-line mistake: the message, then exit status 2.
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

// Renders DOT to SVG with Graphviz, through temporary files next to `path` (the output).
std::string render_svg(const std::string& dot, const std::string& path, const std::string& format) {
  if (std::system("command -v dot >/dev/null 2>&1") != 0) {
    throw k::IOError(
        fmt::format("--format {} needs Graphviz's dot program (Debian package graphviz); "
                    "--format dot writes the graph for rendering elsewhere",
                    format));
  }
  const std::string dot_path = path + ".dot.tmp", svg_path = path + ".svg.tmp";
  k::detail::write_file_atomically(dot_path, dot, "kiln dump", std::source_location::current());
  const std::string command = fmt::format("dot -Tsvg -o '{}' '{}'", svg_path, dot_path);
  int status = std::system(command.c_str());
  std::error_code ec;
  std::filesystem::remove(dot_path, ec);
  std::string svg;
  if (status == 0) {
    std::ifstream in(svg_path, std::ios::binary);
    svg.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::filesystem::remove(svg_path, ec);
  if (status != 0 || svg.find("<svg") == std::string::npos) {
    throw k::IOError(fmt::format("Graphviz's dot failed (status {}) rendering {}", status, path));
  }
  return svg;
}

// A command's arguments: its MODEL, the values of options that take one (each repeatable, in
// order) and the flags given. Throws UsageError for an unknown option, a missing value, or a
// second MODEL.
struct Args {
  std::optional<std::string> model;
  std::map<std::string, std::vector<std::string>> values;
  std::set<std::string> flags;
  bool help = false;

  std::optional<std::string> last(const std::string& option) const {
    auto it = values.find(option);
    if (it == values.end()) return std::nullopt;
    return it->second.back();
  }
};

Args parse_args(const std::vector<std::string>& args, const std::set<std::string>& with_value,
                const std::set<std::string>& flags) {
  Args parsed;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      parsed.help = true;
    } else if (with_value.contains(a)) {
      if (i + 1 >= args.size()) throw UsageError{fmt::format("{} needs a value", a)};
      parsed.values[a].push_back(args[++i]);
    } else if (flags.contains(a)) {
      parsed.flags.insert(a);
    } else if (!a.empty() && a[0] == '-') {
      throw UsageError{fmt::format("unknown option {}", a)};
    } else if (parsed.model) {
      throw UsageError{fmt::format("one MODEL only (got {} and {})", *parsed.model, a)};
    } else {
      parsed.model = a;
    }
  }
  return parsed;
}

int dump(const std::vector<std::string>& args) {
  Args parsed = parse_args(args, {"--format", "--after", "-o", "--output"}, {"--expand"});
  if (parsed.help) {
    std::cout << kDumpUsage;
    return 0;
  }
  std::optional<std::string> model = parsed.model, after = parsed.last("--after");
  std::optional<std::string> output = parsed.last("-o");
  if (!output) output = parsed.last("--output");
  const std::string format = parsed.last("--format").value_or("text");
  const bool expand = parsed.flags.contains("--expand");
  if (!model) throw UsageError{"missing MODEL"};
  if (format != "text" && format != "dot" && format != "svg" && format != "html") {
    throw UsageError{fmt::format("unknown format '{}'; choose text, dot, svg or html", format)};
  }
  if ((format == "svg" || format == "html") && !output) {
    throw UsageError{fmt::format("--format {} needs -o FILE", format)};
  }
  if (after && std::find(kStages.begin(), kStages.end(), *after) == kStages.end()) {
    throw UsageError{
        fmt::format("unknown pass '{}'; the stages are: {}", *after, fmt::join(kStages, ", "))};
  }

  k::ir::Function function = load_function(*model);
  // The page draws every node and collapses scopes itself.
  k::ir::DotOptions dot_options{.expand = expand || format == "html"};
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
  if (format == "svg") {
    write_output(output, render_svg(text, *output, format));
  } else if (format == "html") {
    const std::string title = dot_options.title.empty() ? drawn.name() : dot_options.title;
    write_output(
        output, k::tools::graph_html(drawn, dot_options, render_svg(text, *output, format), title));
  } else {
    write_output(output, text);
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

int run(const std::vector<std::string>& args) {
  Args parsed = parse_args(args, {"--input", "--output"}, {});
  if (parsed.help) {
    std::cout << kRunUsage;
    return 0;
  }
  std::optional<std::string> model = parsed.model, output = parsed.last("--output");
  const std::vector<std::string> inputs = parsed.values["--input"];
  if (!model) throw UsageError{"missing MODEL"};
  if (inputs.empty()) throw UsageError{"give at least one --input FILE.npy"};

  std::vector<k::Tensor> results;
  if (std::filesystem::is_directory(*model)) {
    if (inputs.size() != 1) {
      throw UsageError{fmt::format("a saved model takes one --input, got {}", inputs.size())};
    }
    k::SavedModel saved = k::load_model(*model);
    results.push_back(saved(k::load_npy(inputs[0])));
  } else {
    k::ir::Function function = load_function(*model);
    if (inputs.size() != function.params().size()) {
      throw k::ValueError(fmt::format("{} takes {} parameters; got {} --input files", *model,
                                      function.params().size(), inputs.size()));
    }
    std::vector<k::ir::HostTensor> args_values;
    for (size_t i = 0; i < inputs.size(); ++i) {
      k::Tensor t = k::load_npy(inputs[i]);
      const k::ir::TensorType& want = function.param(i)->type();
      if (t.type() != want) {
        throw k::ShapeError(fmt::format("{}: parameter {} ({}) is {}, but {} holds {}", *model, i,
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
  if (output) {
    k::save_npy(*output, results.at(0));
    std::cout << "wrote " << *output << "\n";
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

int aot(const std::vector<std::string>& args) {
  Args parsed = parse_args(
      args, {"-o", "--output", "--name", "--target-cpu", "--weights", "--opt-level"}, {});
  if (parsed.help) {
    std::cout << kAotUsage;
    return 0;
  }
  std::optional<std::string> model = parsed.model, output = parsed.last("-o");
  if (!output) output = parsed.last("--output");
  if (!model) throw UsageError{"missing MODEL"};
  if (!output) throw UsageError{"give the library to write: -o DIR/libNAME.so"};
  k::aot::Options options;
  options.name = library_name(parsed.last("--name"), *output);
  options.out_dir = std::filesystem::path(*output).parent_path().string();
  options.library_file = std::filesystem::path(*output).filename().string();
  if (options.out_dir.empty()) options.out_dir = ".";
  options.target_cpu = parsed.last("--target-cpu").value_or("native");
  const std::string weights = parsed.last("--weights").value_or("embed");
  if (weights != "embed" && weights != "external") {
    throw UsageError{fmt::format("unknown --weights '{}'; choose embed or external", weights)};
  }
  options.weights = weights == "embed" ? k::aot::Weights::embed : k::aot::Weights::external;
  if (std::optional<std::string> level = parsed.last("--opt-level")) {
    if (level->size() != 1 || (*level)[0] < '0' || (*level)[0] > '3') {
      throw UsageError{fmt::format("--opt-level takes 0, 1, 2 or 3, got '{}'", *level)};
    }
    options.opt_level = (*level)[0] - '0';
  }

  const auto start = std::chrono::steady_clock::now();
  k::aot::Library lib;
  if (std::filesystem::is_directory(*model)) {
    lib = k::aot::compile(k::load_model(*model), options);
  } else {
    k::ir::Function function = load_function(*model);
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
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << kUsage;
    return args.empty() ? 2 : 0;
  }
  const std::string command = args[0];
  args.erase(args.begin());
  try {
    if (command == "dump") return dump(args);
    if (command == "run") return run(args);
    if (command == "aot") return aot(args);
    throw UsageError{fmt::format("unknown command '{}'", command)};
  } catch (const UsageError& e) {
    std::cerr << "kiln " << command << ": " << e.message << "\n(kiln --help lists the commands)\n";
    return 2;
  } catch (const k::Error& e) {
    std::cerr << "kiln " << command << ": error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "kiln " << command << ": error: " << e.what() << "\n";
    return 1;
  }
}
