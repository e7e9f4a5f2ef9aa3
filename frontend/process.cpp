#include "kiln/frontend/process.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "kiln/frontend/core/op_error.h"
#include "kiln/runtime/atomic_write.h"

extern char** environ;

namespace kiln::detail {

namespace fs = std::filesystem;

namespace {

// PATH, or the system's default path when it is unset (as under `env -i`).
std::string search_path() {
  if (const char* env = std::getenv("PATH")) return env;
  std::string path(::confstr(_CS_PATH, nullptr, 0), '\0');
  ::confstr(_CS_PATH, path.data(), path.size());
  path.resize(std::strlen(path.c_str()));
  return path;
}

}  // namespace

std::string find_program(const std::string& program) {
  if (program.find('/') != std::string::npos) return program;
  std::istringstream dirs(search_path());
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

int run_program(const std::vector<std::string>& argv, const std::string& log, std::string& error,
                const std::string& error_log) {
  if (argv.empty()) {
    error = "no program to run";
    return -1;
  }
  const std::string program = find_program(argv[0]);
  if (program.empty()) {
    error = argv[0] + " is not on the search path";
    return kProgramNotFound;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0666);
  if (error_log.empty()) {
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  } else {
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, error_log.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0666);
  }
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args = {const_cast<char*>(program.c_str())};
  for (size_t i = 1; i < argv.size(); ++i)
    args.push_back(const_cast<char*>(argv[i].c_str()));
  args.push_back(nullptr);
  // The child gets this environment, plus the default PATH where there is none: compiler
  // drivers look for their assembler and linker on it.
  std::vector<char*> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e)
    env.push_back(*e);
  std::string default_path = "PATH=" + search_path();
  if (std::getenv("PATH") == nullptr) env.push_back(default_path.data());
  env.push_back(nullptr);
  pid_t pid = 0;
  const int spawned =
      posix_spawn(&pid, program.c_str(), &actions, nullptr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    error = std::strerror(spawned);
    return -1;
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      error = std::strerror(errno);
      return -1;
    }
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  error = fmt::format("killed by signal {}", WTERMSIG(status));
  return -1;
}

std::string tail_of_file(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  std::string s = text.str();
  if (s.size() > max_bytes) s = "..." + s.substr(s.size() - max_bytes);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
    s.pop_back();
  return s;
}

namespace {
// Removes the folders `parent/.NAME.XXXXXX` of this user that nothing has touched for
// runtime::kStaleTemporarySeconds: what a process killed while it held a TempDir left behind.
void remove_stale_temp_dirs(const std::string& parent, const std::string& name) {
  const std::string prefix = fmt::format(".{}.", name);
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(parent.empty() ? "." : parent, ec)) {
    const std::string file = entry.path().filename().string();
    if (file.size() != prefix.size() + 6 || file.compare(0, prefix.size(), prefix) != 0) continue;
    struct stat st;
    if (::lstat(entry.path().c_str(), &st) != 0 || !S_ISDIR(st.st_mode) ||
        st.st_uid != ::geteuid() ||
        std::time(nullptr) - st.st_mtime < runtime::kStaleTemporarySeconds) {
      continue;
    }
    std::error_code ignored;
    fs::remove_all(entry.path(), ignored);
  }
}
}  // namespace

TempDir::TempDir(const std::string& parent, const std::string& name, const std::string& op,
                 const std::source_location& loc) {
  remove_stale_temp_dirs(parent, name);
  std::string pattern = (fs::path(parent) / fmt::format(".{}.XXXXXX", name)).string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    raise<IOError>(op, {}, fmt::format("cannot write to {}: {}", parent, std::strerror(errno)),
                   loc);
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string TempDir::file(const std::string& name) const {
  return (fs::path(path_) / name).string();
}

}  // namespace kiln::detail
