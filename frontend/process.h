// Running other programs without a shell, and private temporary folders: what `kiln aot` (the
// linker) and `kiln dump --format svg` (Graphviz) need. Arguments go to the program as they are,
// so no path or name a user gives can be read as a shell command.
#pragma once

#include <source_location>
#include <string>
#include <vector>

namespace kiln::detail {

// `program` as a path to run: itself when it names a folder, else the first executable of that
// name on PATH (on the system's default path when PATH is unset, as under `env -i`); "" when
// there is none. Compiler drivers find their own parts relative to argv[0], so they need it.
std::string find_program(const std::string& program);

// Runs argv[0] (see find_program) with the arguments argv[1...], standard input from /dev/null
// and standard output into the file `log`, standard error too unless `error_log` names another
// file. The child gets the default PATH when there is none. Returns the exit status, or -1 with
// `error` set when it cannot start or is killed by a signal, kProgramNotFound when there is no
// such program.
int run_program(const std::vector<std::string>& argv, const std::string& log, std::string& error,
                const std::string& error_log = "");
constexpr int kProgramNotFound = -2;

// The last `max_bytes` of the file at `path` ("..." before a cut), trailing blanks removed.
std::string tail_of_file(const std::string& path, size_t max_bytes);

// A fresh folder `parent/.NAME.XXXXXX` (mkdtemp), removed with what it holds on destruction.
// Folders of that pattern that a killed process left (untouched for an hour) are removed first.
// A failure to create it is an IOError raised as `op` at `loc`.
class TempDir {
 public:
  TempDir(const std::string& parent, const std::string& name, const std::string& op,
          const std::source_location& loc);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  // The path of `name` inside the folder.
  std::string file(const std::string& name) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace kiln::detail
