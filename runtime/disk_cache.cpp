#include "kiln/runtime/disk_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <new>

#include "kiln/runtime/atomic_write.h"
#include "kiln/runtime/log_level.h"

namespace kiln::runtime {

namespace {

// Entry layout, integers little-endian:
//   0  magic "KILNCACH"        8  u32 format version   12 u32 reserved (0)
//   16 u64 key length          24 u64 payload length   32 u64 payload checksum
//   40 key bytes, then payload bytes; nothing after.
constexpr char kMagic[8] = {'K', 'I', 'L', 'N', 'C', 'A', 'C', 'H'};
constexpr size_t kHeaderBytes = 40;
constexpr std::string_view kEntrySuffix = ".kce";
constexpr size_t kHashDigits = 32;
// Seeds of the two halves of an entry's name and of the payload checksum: any fixed, distinct
// values (changing them orphans every existing entry).
constexpr uint64_t kNameSeedLow = 0x6b696c6e2d6e616dull;
constexpr uint64_t kNameSeedHigh = 0x2d63616368652d31ull;
constexpr uint64_t kChecksumSeed = 0x636865636b73756dull;
constexpr size_t kMaxWarnings = 64;

constexpr uint64_t kMulA = 0x9E3779B97F4A7C15ull;
constexpr uint64_t kMulB = 0xD6E8FEB86659FD93ull;
constexpr uint64_t kMulC = 0xA0761D6478BD642Full;

uint64_t rotl(uint64_t x, int r) {
  return (x << r) | (x >> (64 - r));
}

// Spreads every input bit over the whole word (a xorshift-multiply finaliser).
uint64_t mix(uint64_t x) {
  x ^= x >> 32;
  x *= kMulB;
  x ^= x >> 29;
  x *= kMulC;
  x ^= x >> 32;
  return x;
}

uint64_t load_le(const unsigned char* p, size_t n) {
  uint64_t w = 0;
  for (size_t i = 0; i < n; ++i)
    w |= uint64_t{p[i]} << (8 * i);
  return w;
}

void store_le(unsigned char* p, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i)
    p[i] = static_cast<unsigned char>(v >> (8 * i));
}

bool is_hex_digit(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

// Whether `name` is an entry's file name (and so may be evicted): nothing else in the folder is
// ever touched, a user's own files and writers' temporaries included.
bool is_entry_name(std::string_view name) {
  return name.size() == kHashDigits + kEntrySuffix.size() &&
         name.substr(kHashDigits) == kEntrySuffix &&
         std::all_of(name.begin(), name.begin() + kHashDigits, is_hex_digit);
}

// Use times: nanoseconds since the epoch, strictly increasing within the process, so that the
// order of a process's puts and hits survives the file system's coarse clock (a jiffy on Linux).
int64_t next_use_time() {
  static std::atomic<int64_t> last{0};
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  int64_t t = int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
  int64_t prev = last.load();
  while (true) {
    const int64_t mine = std::max(t, prev + 1);
    if (last.compare_exchange_weak(prev, mine)) return mine;
  }
}

void set_use_time(int fd) {
  const int64_t t = next_use_time();
  timespec times[2];
  times[0].tv_sec = static_cast<time_t>(t / 1'000'000'000);
  times[0].tv_nsec = static_cast<long>(t % 1'000'000'000);
  times[1] = times[0];
  ::futimens(fd, times);  // best effort: a read-only entry keeps its old use time
}

// Reads exactly n bytes at `offset`; false on an error or a short file.
bool read_at(int fd, void* out, size_t n, uint64_t offset) {
  char* p = static_cast<char*>(out);
  while (n > 0) {
    const ssize_t got =
        ::pread(fd, p, std::min<size_t>(n, size_t{1} << 30), static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    p += got, n -= static_cast<size_t>(got), offset += static_cast<uint64_t>(got);
  }
  return true;
}

// mkdir -p with mode 0700 for the folders it makes (the cache holds code that gets run).
// Returns 0 or the errno of the step that failed.
int make_directories(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
  for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
    const std::string prefix = slash == std::string::npos ? path : path.substr(0, slash);
    if (!prefix.empty() && ::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) return errno;
    if (slash == std::string::npos) break;
  }
  if (::stat(path.c_str(), &st) != 0) return errno;
  return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return std::string(s);
}

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

// KILN_CACHE_MAX_BYTES: a non-negative integer, optionally followed by K, M, G or T (powers of
// 1024, an optional "iB" or "B" after them). Nothing for anything else or an overflow.
std::optional<uint64_t> parse_bytes(std::string_view text) {
  const std::string s = lower(trim(text));
  size_t i = 0;
  uint64_t value = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    const uint64_t digit = static_cast<uint64_t>(s[i] - '0');
    if (value > (UINT64_MAX - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
    ++i;
  }
  if (i == 0) return std::nullopt;
  std::string unit = s.substr(i);
  int shift = 0;
  if (!unit.empty() && unit != "b") {
    const std::string_view units = "kmgt";
    const size_t at = units.find(unit[0]);
    if (at == std::string_view::npos) return std::nullopt;
    shift = 10 * static_cast<int>(at + 1);
    unit.erase(0, 1);
    if (!unit.empty() && unit != "b" && unit != "ib") return std::nullopt;
  }
  if (shift > 0 && value > (UINT64_MAX >> shift)) return std::nullopt;
  return value << shift;
}

}  // namespace

uint64_t DiskCache::hash64(std::string_view data, uint64_t seed) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const size_t n = data.size();
  uint64_t h = mix(seed + kMulA) ^ (static_cast<uint64_t>(n) * kMulC);
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    h = rotl(h ^ (load_le(p + i, 8) * kMulA), 29) * kMulB + kMulC;
  if (i < n) h = rotl(h ^ (load_le(p + i, n - i) * kMulA), 29) * kMulB + kMulC;
  return mix(h ^ (h >> 31));
}

std::string DiskCache::entry_name(std::string_view key) {
  char name[kHashDigits + 1];
  std::snprintf(name, sizeof name, "%016llx%016llx",
                static_cast<unsigned long long>(hash64(key, kNameSeedHigh)),
                static_cast<unsigned long long>(hash64(key, kNameSeedLow)));
  return std::string(name, kHashDigits) + std::string(kEntrySuffix);
}

DiskCache::DiskCache() = default;

DiskCache::DiskCache(std::string directory, uint64_t max_bytes)
    : directory_(std::move(directory)), max_bytes_(max_bytes) {
  while (directory_.size() > 1 && directory_.back() == '/')
    directory_.pop_back();
  if (max_bytes_ == 0) return;
  if (directory_.empty()) {
    disable("no cache directory was named");
    return;
  }
  if (const int error = make_directories(directory_); error != 0) {
    disable("cannot create the cache directory " + directory_ + ": " + std::strerror(error));
    return;
  }
  enabled_ = true;
}

std::unique_ptr<DiskCache> DiskCache::from_environment() {
  std::vector<std::string> notes;
  bool on = true;
  if (const char* text = std::getenv("KILN_CACHE")) {
    const std::string value = lower(trim(text));
    if (value == "off" || value == "0" || value == "false" || value == "no") {
      on = false;
    } else if (!(value.empty() || value == "on" || value == "1" || value == "true" ||
                 value == "yes")) {
      notes.push_back(std::string("ignoring KILN_CACHE=\"") + text + "\" (want on or off)");
    }
  }
  uint64_t max_bytes = kDefaultMaxBytes;
  if (const char* text = std::getenv("KILN_CACHE_MAX_BYTES"); text != nullptr && on) {
    if (std::optional<uint64_t> parsed = parse_bytes(text)) {
      max_bytes = *parsed;
    } else {
      notes.push_back(std::string("ignoring KILN_CACHE_MAX_BYTES=\"") + text +
                      "\" (want a number of bytes, optionally with K, M or G); using 1 GiB");
    }
  }
  std::string directory;
  auto non_empty = [](const char* name) -> const char* {
    const char* v = std::getenv(name);
    return v != nullptr && *v != '\0' ? v : nullptr;
  };
  if (const char* dir = non_empty("KILN_CACHE_DIR")) {
    directory = dir;
  } else if (const char* xdg = non_empty("XDG_CACHE_HOME"); xdg != nullptr && xdg[0] == '/') {
    // The XDG spec ignores a relative XDG_CACHE_HOME.
    directory = std::string(xdg) + "/kiln";
  } else if (const char* home = non_empty("HOME")) {
    directory = std::string(home) + "/.cache/kiln";
  }
  std::unique_ptr<DiskCache> cache;
  if (!on || max_bytes == 0) {
    cache = std::make_unique<DiskCache>();
  } else if (directory.empty()) {
    cache = std::make_unique<DiskCache>();
    notes.push_back(
        "no cache directory: set KILN_CACHE_DIR, XDG_CACHE_HOME or HOME; caching is off");
  } else {
    cache = std::make_unique<DiskCache>(directory, max_bytes);
  }
  for (const std::string& note : notes)
    cache->warn(note);
  return cache;
}

DiskCache& DiskCache::process_default() {
  // Never destroyed: code compiled by other threads during exit may still use it.
  static DiskCache* const cache = from_environment().release();
  return *cache;
}

bool DiskCache::enabled() const {
  std::lock_guard lock(mutex_);
  return enabled_;
}

DiskCache::Stats DiskCache::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

std::vector<std::string> DiskCache::warnings() const {
  std::lock_guard lock(mutex_);
  return warnings_;
}

std::string DiskCache::entry_path(std::string_view key) const {
  return directory_ + "/" + entry_name(key);
}

void DiskCache::warn(const std::string& message) {
  {
    std::lock_guard lock(mutex_);
    if (warnings_.size() == kMaxWarnings) warnings_.erase(warnings_.begin());
    warnings_.push_back(message);
  }
  // Level 2 and up hides warnings (frontend/core/log.h).
  if (min_log_level() < 2) std::fprintf(stderr, "kiln: cache: %s\n", message.c_str());
}

void DiskCache::disable(const std::string& why) {
  {
    std::lock_guard lock(mutex_);
    enabled_ = false;
    // Once: threads whose puts failed together all land here.
    if (said_off_) return;
    said_off_ = true;
  }
  warn(why + "; caching is off");
}

void DiskCache::reject(const std::string& entry, int fd, const std::string& why) {
  bool first = false;
  {
    std::lock_guard lock(mutex_);
    ++stats_.bad_entries;
    first = warned_entries_.insert(entry).second;
  }
  const std::string path = directory_ + "/" + entry;
  // Removes the entry only while it is still the file we read: a writer may have replaced it
  // with a good one since.
  struct stat now;
  if (::lstat(path.c_str(), &now) == 0 && !S_ISDIR(now.st_mode)) {
    struct stat opened;
    const bool same = fd < 0 || (::fstat(fd, &opened) == 0 && opened.st_dev == now.st_dev &&
                                 opened.st_ino == now.st_ino);
    if (same) ::unlink(path.c_str());
  }
  if (first) warn("ignoring and removing " + path + ": " + why + "; it will be recompiled");
}

void DiskCache::discard(std::string_view key, const std::string& why) {
  reject(entry_name(key), -1, why);
}

std::optional<std::string> DiskCache::get(std::string_view key) {
  auto miss = [&]() -> std::optional<std::string> {
    std::lock_guard lock(mutex_);
    ++stats_.misses;
    return std::nullopt;
  };
  if (!enabled()) return miss();
  const std::string name = entry_name(key);
  const std::string path = directory_ + "/" + name;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    const int error = errno;
    if (error == ENOENT) return miss();
    if (error == ELOOP) {
      reject(name, -1, "a symbolic link, not a cache entry");
    } else {
      bool first = false;
      {
        std::lock_guard lock(mutex_);
        first = warned_entries_.insert(name).second;
      }
      if (first) warn("cannot read " + path + ": " + std::strerror(error));
    }
    return miss();
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};

  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    reject(name, fd, "not a regular file");
    return miss();
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  unsigned char header[kHeaderBytes];
  if (size < kHeaderBytes || !read_at(fd, header, kHeaderBytes, 0)) {
    // Too short to say whose it is: a truncated entry or a small foreign file.
    reject(name, fd, "truncated or not a Kiln cache entry (" + std::to_string(size) + " bytes)");
    return miss();
  }
  if (std::memcmp(header, kMagic, sizeof kMagic) != 0) {
    reject(name, fd, "not a Kiln cache entry (bad magic)");
    return miss();
  }
  const uint64_t version = load_le(header + 8, 4);
  if (version != kFormatVersion) {
    reject(name, fd,
           "written in cache format version " + std::to_string(version) + ", this Kiln reads " +
               std::to_string(kFormatVersion));
    return miss();
  }
  const uint64_t key_bytes = load_le(header + 16, 8);
  const uint64_t payload_bytes = load_le(header + 24, 8);
  const uint64_t checksum = load_le(header + 32, 8);
  if (key_bytes != key.size()) {
    reject(name, fd, "holds another key (a hash collision or a corrupt entry)");
    return miss();
  }
  const uint64_t body = size - kHeaderBytes;  // key and payload
  if (body < key_bytes || body - key_bytes != payload_bytes) {
    const bool short_file = body < key_bytes || body - key_bytes < payload_bytes;
    reject(name, fd,
           (short_file ? "truncated (" : "corrupt: trailing bytes (") + std::to_string(size) +
               " bytes for a " + std::to_string(payload_bytes) + "-byte payload)");
    return miss();
  }
  std::string stored_key(key_bytes, '\0');
  if (!read_at(fd, stored_key.data(), key_bytes, kHeaderBytes)) {
    reject(name, fd, "truncated while reading");
    return miss();
  }
  if (stored_key != key) {
    reject(name, fd, "holds another key (a hash collision or a corrupt entry)");
    return miss();
  }
  std::string payload;
  try {
    payload.resize(payload_bytes);
  } catch (const std::bad_alloc&) {
    warn("cannot read " + path + ": no memory for " + std::to_string(payload_bytes) + " bytes");
    return miss();
  }
  if (!read_at(fd, payload.data(), payload_bytes, kHeaderBytes + key_bytes)) {
    reject(name, fd, "truncated while reading");
    return miss();
  }
  if (hash64(payload, kChecksumSeed) != checksum) {
    reject(name, fd, "corrupt (payload checksum mismatch)");
    return miss();
  }
  set_use_time(fd);
  std::lock_guard lock(mutex_);
  ++stats_.hits;
  return payload;
}

void DiskCache::put(std::string_view key, std::string_view payload) {
  if (!enabled()) return;
  const uint64_t total = kHeaderBytes + key.size() + payload.size();
  if (total > max_bytes_) return;  // it would evict everything, itself included
  unsigned char header[kHeaderBytes] = {};
  std::memcpy(header, kMagic, sizeof kMagic);
  store_le(header + 8, kFormatVersion, 4);
  store_le(header + 16, key.size(), 8);
  store_le(header + 24, payload.size(), 8);
  store_le(header + 32, hash64(payload, kChecksumSeed), 8);
  const std::string path = entry_path(key);
  auto write = [&] {
    AtomicWriter writer(path);
    writer.write(header, sizeof header);
    writer.write(key.data(), key.size());
    writer.write(payload.data(), payload.size());
    set_use_time(writer.fd());
    writer.commit();
  };
  try {
    try {
      write();
    } catch (const AtomicWriteError& e) {
      // Someone removed the directory (a user clearing their cache): make it again, once.
      if (e.error() != ENOENT || make_directories(directory_) != 0) throw;
      write();
    }
  } catch (const AtomicWriteError& e) {
    disable("cannot write to the cache directory " + directory_ + " (" + e.what() + ")");
    return;
  }
  const std::string name = entry_name(key);
  {
    std::lock_guard lock(mutex_);
    ++stats_.puts;
    // A good entry replaced the bad one: should it go bad again, that is news worth a warning.
    warned_entries_.erase(name);
  }
  evict_over_bound();
}

// Scans the directory on every put: entries are few (one per compiled function) and a put
// follows a compile, which costs far more than a readdir and a stat per entry. Other processes
// share the directory, so no count kept in memory could be trusted anyway.
void DiskCache::evict_over_bound() {
  DIR* folder = ::opendir(directory_.c_str());
  if (folder == nullptr) return;
  struct Entry {
    int64_t used;
    std::string name;
    uint64_t bytes;
  };
  std::vector<Entry> entries;
  uint64_t total = 0;
  const int dir_fd = ::dirfd(folder);
  while (const dirent* d = ::readdir(folder)) {
    if (!is_entry_name(d->d_name)) continue;
    struct stat st;
    if (::fstatat(dir_fd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
      continue;
    const int64_t used = int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
    entries.push_back({used, d->d_name, static_cast<uint64_t>(st.st_size)});
    total += static_cast<uint64_t>(st.st_size);
  }
  if (total > max_bytes_) {
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
      return a.used != b.used ? a.used < b.used : a.name < b.name;
    });
    uint64_t evicted = 0;
    for (const Entry& e : entries) {
      if (total <= max_bytes_) break;
      // Gone already (another process evicted it) counts as gone.
      if (::unlinkat(dir_fd, e.name.c_str(), 0) == 0 || errno == ENOENT) {
        total -= e.bytes;
        ++evicted;
      }
    }
    std::lock_guard lock(mutex_);
    stats_.evictions += evicted;
  }
  ::closedir(folder);
}

}  // namespace kiln::runtime
