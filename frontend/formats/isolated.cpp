// detail::run_isolated: fork, a pipe, poll with a deadline, waitpid. The reply is framed as
// [status byte][8-byte length][bytes]; status 0 is the work's result, 1 a thrown error as
// [class byte][message].
#include "kiln/frontend/formats/isolated.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <thread>

#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/formats/hdf5.h"

namespace kiln::detail {

namespace {

constexpr size_t kHeaderBytes = 9;
// Error messages cross the pipe cut to this size.
constexpr size_t kMaxErrorBytes = 256 * 1024;

std::mutex hook_mutex;
std::function<void()>& child_hook() {
  static std::function<void()> hook;
  return hook;
}

bool in_process() {
  const char* value = std::getenv("KILN_HDF5_IN_PROCESS");
  return value && std::strcmp(value, "1") == 0;
}

char error_class(const Error& e) {
  if (dynamic_cast<const IOError*>(&e)) return 'I';
  if (dynamic_cast<const ValueError*>(&e)) return 'V';
  if (dynamic_cast<const ShapeError*>(&e)) return 'S';
  if (dynamic_cast<const TypeError*>(&e)) return 'T';
  if (dynamic_cast<const ResourceError*>(&e)) return 'R';
  if (dynamic_cast<const InternalError*>(&e)) return 'N';
  return 'E';
}

[[noreturn]] void rethrow(char kind, std::string message) {
  switch (kind) {
    case 'I':
      throw IOError(std::move(message));
    case 'V':
      throw ValueError(std::move(message));
    case 'S':
      throw ShapeError(std::move(message));
    case 'T':
      throw TypeError(std::move(message));
    case 'R':
      throw ResourceError(std::move(message));
    case 'N':
      throw InternalError(std::move(message));
    default:
      throw Error(std::move(message));
  }
}

bool write_all(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

[[noreturn]] void child_main(int fd, const std::function<std::string()>& work,
                             const std::function<void()>& hook) {
  // A parent that gave up closes its end; writing then ends the child quietly. A crash ends the
  // child at once: the program's own crash handlers (a test framework's, a crash reporter's)
  // are for the parent's crashes, not libhdf5's in here.
  for (int sig : {SIGPIPE, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS})
    signal(sig, SIG_DFL);
  char status = 0;
  std::string reply;
  try {
    if (hook) hook();
    reply = work();
  } catch (const Error& e) {
    status = 1;
    reply = error_class(e) + e.message().substr(0, kMaxErrorBytes);
  } catch (const std::bad_alloc&) {
    status = 1;
    reply = "Rout of memory";
  } catch (const std::exception& e) {
    status = 1;
    reply = std::string("N") + std::string(e.what()).substr(0, kMaxErrorBytes);
  } catch (...) {
    status = 1;
    reply = "Nan unknown exception";
  }
  char header[kHeaderBytes];
  header[0] = status;
  uint64_t n = reply.size();
  std::memcpy(header + 1, &n, sizeof n);
  bool ok = write_all(fd, header, sizeof header) && write_all(fd, reply.data(), reply.size());
  ::close(fd);
  // _exit: no atexit handlers or static destructors of the parent's state run in the child.
  _exit(ok ? 0 : 3);
}

// Waits for the child until `deadline`, then kills it. Returns the wait status, or -1 when the
// child cannot be waited for (SIGCHLD ignored by the program).
int reap(pid_t pid, std::chrono::steady_clock::time_point deadline) {
  int status = 0;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return -1;
    if (std::chrono::steady_clock::now() >= deadline) {
      kill(pid, SIGKILL);
      while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
      }
      return r == pid ? status : -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

std::string signal_text(int sig) {
  const char* text = strsignal(sig);
  return fmt::format("{}, signal {}", text ? text : "unknown signal", sig);
}

}  // namespace

void set_isolated_child_hook(std::function<void()> hook) {
  std::lock_guard<std::mutex> guard(hook_mutex);
  child_hook() = std::move(hook);
}

std::string run_isolated(const std::function<std::string()>& work, const IsolationLimits& limits,
                         std::string_view what, std::string_view op,
                         const std::source_location& loc) {
  if (in_process()) return work();
  std::function<void()> hook;
  {
    std::lock_guard<std::mutex> guard(hook_mutex);
    hook = child_hook();
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0)
    raise<IOError>(op, {}, fmt::format("{}: cannot make a pipe: {}", what, std::strerror(errno)),
                   loc);
  pid_t pid;
  {
    // No other thread is inside libhdf5 (through Kiln) while the child is made.
    auto library = hdf5::lock();
    pid = fork();
    if (pid == 0) {
      hdf5::reset_lock_in_child();
      ::close(fds[0]);
      child_main(fds[1], work, hook);
    }
  }
  int fork_errno = errno;
  ::close(fds[1]);
  if (pid < 0) {
    ::close(fds[0]);
    raise<IOError>(
        op, {},
        fmt::format("{}: cannot start a process to read it: {}", what, std::strerror(fork_errno)),
        loc);
  }

  auto start = std::chrono::steady_clock::now();
  auto deadline = start + limits.timeout;
  size_t limit = kHeaderBytes + 1 + std::max(limits.max_reply_bytes, kMaxErrorBytes);
  std::string buf;
  bool eof = false, timed_out = false, too_long = false;
  char chunk[65536];
  while (!eof) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;
    ssize_t n = ::read(fds[0], chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      eof = true;
      break;
    }
    buf.append(chunk, static_cast<size_t>(n));
    if (buf.size() > limit) {
      too_long = true;
      break;
    }
  }
  ::close(fds[0]);
  if (timed_out || too_long) kill(pid, SIGKILL);
  int status =
      reap(pid, timed_out || too_long ? std::chrono::steady_clock::now()
                                      : std::chrono::steady_clock::now() + std::chrono::seconds(5));
  if (timed_out) {
    double seconds = std::chrono::duration<double>(limits.timeout).count();
    raise<IOError>(op, {},
                   fmt::format("{}: gave up after {:g} s and stopped the reading process (a "
                               "malformed file can make libhdf5 loop)",
                               what, seconds),
                   loc);
  }
  if (status != -1 && WIFSIGNALED(status) && !too_long) {
    raise<IOError>(op, {},
                   fmt::format("{}: the reading process crashed ({}); libhdf5 fails this way on "
                               "some malformed files, so the file is damaged or not what it "
                               "seems",
                               what, signal_text(WTERMSIG(status))),
                   loc);
  }
  uint64_t declared = 0;
  if (buf.size() >= kHeaderBytes) std::memcpy(&declared, buf.data() + 1, sizeof declared);
  size_t allowed = buf.empty() || buf[0] == 0 ? limits.max_reply_bytes : kMaxErrorBytes + 1;
  if (too_long || declared > allowed) {
    raise<IOError>(op, {},
                   fmt::format("{}: the reading process replied with more than the {} bytes "
                               "expected",
                               what, allowed),
                   loc);
  }
  if (buf.size() < kHeaderBytes || buf.size() - kHeaderBytes != declared) {
    std::string how = status == -1        ? "no exit status"
                      : WIFEXITED(status) ? fmt::format("exit status {}", WEXITSTATUS(status))
                                          : "an unknown status";
    raise<IOError>(
        op, {}, fmt::format("{}: the reading process ended without a whole reply ({})", what, how),
        loc);
  }
  std::string reply = buf.substr(kHeaderBytes);
  if (buf[0] == 0) return reply;
  if (reply.empty()) rethrow('E', fmt::format("{}: failed", what));
  rethrow(reply[0], reply.substr(1));
}

}  // namespace kiln::detail
