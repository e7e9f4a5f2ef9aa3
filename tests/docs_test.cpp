// Every C++ and C snippet in README.md and docs/*.md compiles, and runs, as a user pasting it
// would see it. The snippets are read from the Markdown itself, so a doc cannot drift from the
// code without failing here.
//
// A fenced ```cpp or ```c block is a snippet. A block holding `int main` is a whole program; any
// other block is a fragment, run inside a function after a prelude (`#include <kiln/kiln.h>`,
// <iostream>, `namespace k = kiln;`). An HTML comment on the lines just before the fence (not
// shown by Markdown viewers) adjusts a snippet:
//
//   <!-- snippet compile-only          options on the first line: compile-only (too slow to run
//   k::Tensor x = k::zeros({2, 3});    here), cc: ARGS (extra words for a C compile and link),
//   -->                                excerpt: FILE (the block is a verbatim excerpt of FILE in
//                                      the source tree, which the build compiles)
//                                      further lines: setup code run before the snippet
//
// Whole C++ programs are compiled and run one by one; all C++ fragments go into one program
// (compiled once), run in a fresh folder in document order (README first, then docs/ by name),
// so later snippets may use files earlier ones wrote, as a reader following the guide would. C
// snippets are compiled after it ran (against the libraries the AOT guide's C++ snippets wrote) and
// run when they are programs.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "file_test_util.h"
#include "process_test_util.h"

namespace {

namespace fs = std::filesystem;

struct Snippet {
  std::string doc;   // README.md, docs/keras.md
  int line = 0;      // of the opening fence
  std::string lang;  // cpp or c
  std::string code, setup;
  std::vector<std::string> options;
  bool program = false;  // holds int main

  std::string where() const { return fmt::format("{}:{}", doc, line); }
  bool has(const std::string& option) const {
    return std::any_of(options.begin(), options.end(),
                       [&](const std::string& o) { return o.starts_with(option); });
  }
  std::string value(const std::string& option) const {
    for (const std::string& o : options)
      if (o.starts_with(option + ":")) return o.substr(option.size() + 1);
    return "";
  }
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  return lines;
}

// The snippets of one Markdown file.
std::vector<Snippet> read_snippets(const fs::path& path, const std::string& doc) {
  const std::vector<std::string> lines = lines_of(kiln::testing::read_bytes(path.string()));
  std::vector<Snippet> snippets;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& fence = lines[i];
    if (!fence.starts_with("```")) continue;
    const std::string lang = fence.substr(3);
    size_t end = i + 1;
    while (end < lines.size() && !lines[end].starts_with("```"))
      ++end;
    if (lang == "cpp" || lang == "c") {
      Snippet s;
      s.doc = doc;
      s.line = static_cast<int>(i + 1);
      s.lang = lang;
      for (size_t k = i + 1; k < end; ++k)
        s.code += lines[k] + "\n";
      s.program = s.code.find("int main(") != std::string::npos;
      // An annotation: "<!-- snippet OPTIONS" ... "-->" ending on the line before the fence.
      if (i > 0 && lines[i - 1].ends_with("-->")) {
        size_t open = i - 1;
        while (open > 0 && lines[open].find("<!--") == std::string::npos)
          --open;
        if (lines[open].starts_with("<!-- snippet")) {
          std::string first = lines[open].substr(12);
          if (first.ends_with("-->")) first.resize(first.size() - 3);
          std::istringstream words(first);
          for (std::string w; words >> w;) {
            // "cc: ARGS" and "excerpt: FILE" take the rest of the line.
            if (w == "cc:" || w == "excerpt:") {
              std::string rest;
              std::getline(words, rest);
              w.pop_back();
              const size_t from = rest.find_first_not_of(' ');
              const size_t to = rest.find_last_not_of(' ');
              s.options.push_back(
                  w + ":" + (from == std::string::npos ? "" : rest.substr(from, to - from + 1)));
              break;
            }
            s.options.push_back(w);
          }
          for (size_t k = open + 1; k < i - 1; ++k)
            s.setup += lines[k] + "\n";
        }
      }
      snippets.push_back(std::move(s));
    }
    i = end;
  }
  return snippets;
}

std::vector<Snippet> all_snippets() {
  const fs::path source = KILN_SOURCE_DIR;
  std::vector<Snippet> all = read_snippets(source / "README.md", "README.md");
  std::vector<fs::path> docs;
  for (const auto& entry : fs::directory_iterator(source / "docs"))
    if (entry.path().extension() == ".md") docs.push_back(entry.path());
  std::sort(docs.begin(), docs.end());
  for (const fs::path& doc : docs) {
    std::vector<Snippet> found = read_snippets(doc, "docs/" + doc.filename().string());
    all.insert(all.end(), found.begin(), found.end());
  }
  return all;
}

bool top_level(const std::string& line) {
  return line.starts_with("#include") || line.starts_with("namespace k = kiln;");
}

// One C++ program holding every C++ fragment; main runs them in order, printing "ok WHERE" after
// each that returns and the exception of one that throws.
std::string fragments_program(const std::vector<Snippet>& snippets) {
  std::string head = "#include <kiln/kiln.h>\n#include <iostream>\n#include <string>\n";
  std::string bodies, calls;
  int n = 0;
  for (const Snippet& s : snippets) {
    if (s.lang != "cpp" || s.has("excerpt") || s.program) continue;
    ++n;
    // Lines that must stand at namespace scope go to the top; blank lines keep their place, so
    // the #line directives give the compiler's messages the doc's line numbers.
    auto split = [&](const std::string& text) {
      std::string body;
      for (const std::string& line : lines_of(text)) {
        if (top_level(line)) head += line + "\n";
        body += (top_level(line) ? std::string() : line) + "\n";
      }
      return body;
    };
    std::string body;
    if (!s.setup.empty())
      body += fmt::format("#line 1 \"{} (setup)\"\n{}", s.where(), split(s.setup));
    body += fmt::format("#line {} \"{}\"\n{}", s.line + 1, s.doc, split(s.code));
    head += "namespace k = kiln;\n";
    const std::string name = fmt::format("snippet_{}", n);
    bodies += fmt::format("void {}() {{\n{}}}\n", name, body);
    if (s.has("compile-only")) continue;
    calls += fmt::format(
        "  try {{ {}(); std::cout << \"ok {}\\n\" << std::flush; }}\n"
        "  catch (const std::exception& e) {{ std::cout << \"FAILED {}: \" << e.what() << "
        "\"\\n\"; return 1; }}\n",
        name, s.where(), s.where());
  }
  return head + bodies + "#line 1 \"snippets (driver)\"\nint main() {\n" + calls +
         "  return 0;\n}\n";
}

}  // namespace

TEST_CASE("excerpts of Kiln's source in the docs are verbatim", "[docs]") {
  int excerpts = 0;
  for (const Snippet& s : all_snippets()) {
    if (!s.has("excerpt")) continue;
    INFO(s.where() << " quotes " << s.value("excerpt"));
    ++excerpts;
    // Verbatim up to indentation: the excerpt's lines, stripped, are consecutive lines of the
    // file, stripped.
    auto stripped = [](const std::string& text) {
      std::vector<std::string> out;
      for (const std::string& line : lines_of(text)) {
        const size_t from = line.find_first_not_of(' ');
        out.push_back(from == std::string::npos ? "" : line.substr(from));
      }
      return out;
    };
    const std::vector<std::string> file = stripped(
        kiln::testing::read_bytes(std::string(KILN_SOURCE_DIR) + "/" + s.value("excerpt")));
    const std::vector<std::string> excerpt = stripped(s.code);
    REQUIRE(!excerpt.empty());
    CHECK(std::search(file.begin(), file.end(), excerpt.begin(), excerpt.end()) != file.end());
  }
  CHECK(excerpts >= 1);
}

TEST_CASE("every C++ and C snippet in the docs compiles and runs", "[docs][programs]") {
  const std::vector<Snippet> snippets = all_snippets();
  REQUIRE(snippets.size() > 20);
  // The prelude would hide a snippet that names kiln before including it.
  for (const Snippet& s : snippets) {
    INFO(s.where());
    const size_t include = s.code.find("#include <kiln/kiln.h>");
    const size_t alias = s.code.find("namespace k = kiln;");
    if (include != std::string::npos && alias != std::string::npos) CHECK(include < alias);
  }
  kiln::testing::TempDir dir;
  const std::string build = KILN_BUILD_DIR, source = KILN_SOURCE_DIR;

  // C++ is compiled against this build's libkiln, and runs in dir/work.
  auto compile_cpp = [&](const std::string& code, const std::string& name) {
    kiln::testing::write_bytes(dir.file(name + ".cpp"), code);
    return kiln::testing::run({"c++", "-std=c++20", "-O0", "-Wall", "-Werror",
                               "-Wno-unused-variable", "-Wno-unused-but-set-variable",
                               "-I" + build + "/include", "-I" + source, dir.file(name + ".cpp"),
                               "-L" + build, "-lkiln", "-Wl,-rpath," + build, "-o",
                               dir.file(name)});
  };
  fs::create_directories(dir.file("work"));
  const fs::path previous = fs::current_path();
  auto run_in_work = [&](const std::vector<std::string>& argv) {
    fs::current_path(dir.file("work"));
    kiln::testing::Outcome o = kiln::testing::run(argv);
    fs::current_path(previous);
    return o;
  };

  // Whole C++ programs, each on its own.
  for (const Snippet& s : snippets) {
    if (s.lang != "cpp" || !s.program || s.has("excerpt")) continue;
    INFO(s.where());
    kiln::testing::Outcome compiled =
        compile_cpp(fmt::format("#line {} \"{}\"\n{}", s.line + 1, s.doc, s.code), "program");
    INFO(compiled.out);
    REQUIRE(compiled.status == 0);
    if (s.has("compile-only")) continue;
    kiln::testing::Outcome ran = run_in_work({dir.file("program")});
    INFO(ran.out);
    CHECK(ran.status == 0);
  }

  // The fragments, as one program.
  kiln::testing::Outcome compiled = compile_cpp(fragments_program(snippets), "fragments");
  INFO(compiled.out);
  REQUIRE(compiled.status == 0);
  kiln::testing::Outcome ran = run_in_work({dir.file("fragments")});
  INFO(ran.out);
  CHECK(ran.status == 0);
  for (const Snippet& s : snippets) {
    if (s.lang != "cpp" || s.program || s.has("excerpt") || s.has("compile-only")) continue;
    INFO(s.where());
    CHECK(ran.out.find("ok " + s.where() + "\n") != std::string::npos);
  }

  // The C snippets: programs are built and run, statements run inside main, and compile-only
  // blocks (header excerpts) are checked by the compiler.
  for (const Snippet& s : snippets) {
    if (s.lang != "c" || s.has("excerpt")) continue;
    INFO(s.where());
    std::string head, body;
    for (const std::string& line : lines_of(s.setup + s.code))
      (line.starts_with("#") && !s.program ? head : body) += line + "\n";
    const std::string file = dir.file(fmt::format("snippet_{}.c", s.line));
    const bool run = !s.has("compile-only");
    kiln::testing::write_bytes(file, s.program ? body
                                               : head + "#include <stdint.h>\nint main(void) {\n" +
                                                     body + "  return 0;\n}\n");
    std::vector<std::string> argv = {
        "cc", "-std=c99", "-Wall", "-Werror", "-Wno-unused-variable", "-I" + dir.file("work/build"),
        file};
    for (const std::string& word : kiln::testing::words(s.value("cc")))
      argv.push_back(word);
    if (run) {
      argv.insert(argv.end(), {"-o", dir.file("work/c_snippet")});
    } else {
      argv.insert(argv.end(), {"-fsyntax-only"});
    }
    kiln::testing::Outcome c = run_in_work(argv);
    kiln::testing::Outcome c_ran;
    if (c.status == 0 && run) c_ran = run_in_work({dir.file("work/c_snippet")});
    INFO(c.out);
    REQUIRE(c.status == 0);
    if (run) {
      INFO(c_ran.out);
      CHECK(c_ran.status == 0);
    }
  }
}
