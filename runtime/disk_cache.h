// A persistent cache of compiled code on disk, shared by processes and threads: GPU modules
// (codegen/gpu_cache.h) and, later, CPU code. It maps a key (a string naming everything that
// affects the compiled result) to a payload (the compiled result, serialised by the caller).
//
// Where: KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln, else $HOME/.cache/kiln (created 0700 when
// missing). KILN_CACHE=off disables it; KILN_CACHE_MAX_BYTES bounds its size (default 1 GiB).
//
// Each entry is one file named after a 128-bit hash of its key, "<32 hex digits>.kce", holding a
// magic, the format version, the full key (a hash collision or a foreign file reads as a miss),
// the payload's length and a checksum of the payload. Entries are written atomically (a temporary
// renamed into place, runtime/atomic_write.h), so a reader sees a whole entry or none. A corrupt,
// truncated or foreign entry is a miss with one warning and is removed. A directory that cannot
// be made or written is one warning, and the cache then acts as off. The size bound evicts the
// least recently used entries when a put goes over it; a get that hits refreshes the entry's use
// time (its file's mtime). The cache trusts whoever may write its directory: it catches
// accidents, not an attacker who writes well-formed entries.
//
// Plain C++ and POSIX; no shell is ever run. Warnings go to stderr ("kiln: cache: ...") unless
// KILN_LOG_LEVEL hides warnings (runtime/log_level.h).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::runtime {

class DiskCache {
 public:
  // The size bound when KILN_CACHE_MAX_BYTES is not set.
  static constexpr uint64_t kDefaultMaxBytes = uint64_t{1} << 30;
  // The entry format written by this build; entries of another version are misses.
  static constexpr uint32_t kFormatVersion = 1;

  // What the cache has done since it was made (for tests and diagnostics).
  struct Stats {
    uint64_t hits = 0;
    uint64_t misses = 0;       // every get that returned nothing, bad entries included
    uint64_t bad_entries = 0;  // corrupt, truncated, foreign or of another version
    uint64_t puts = 0;         // entries written
    uint64_t evictions = 0;    // entries removed by the size bound
  };

  // A cache in `directory` (created when missing) bounded to `max_bytes` (0: disabled).
  explicit DiskCache(std::string directory, uint64_t max_bytes = kDefaultMaxBytes);
  // A disabled cache: every get misses, put does nothing.
  DiskCache();
  DiskCache(const DiskCache&) = delete;
  DiskCache& operator=(const DiskCache&) = delete;

  // A cache configured by the environment (see above); disabled when KILN_CACHE=off or when no
  // directory can be named. Bad values of the variables are warned about and ignored.
  static std::unique_ptr<DiskCache> from_environment();
  // The process-wide cache, made from the environment on first use.
  static DiskCache& process_default();

  // The payload stored under `key`, or nothing (a miss).
  std::optional<std::string> get(std::string_view key);
  // Stores `payload` under `key`, replacing any entry, then evicts least recently used entries
  // while the directory's entries exceed the bound. A payload bigger than the bound is not stored.
  void put(std::string_view key, std::string_view payload);
  // For a caller whose payload under `key` failed its own checks (it does not parse): counts a
  // bad entry, warns once per entry ("... <why>; it will be recompiled") and removes the entry.
  void discard(std::string_view key, const std::string& why);

  // Whether gets can hit and puts store (false once the directory proved unusable).
  bool enabled() const;
  const std::string& directory() const { return directory_; }
  uint64_t max_bytes() const { return max_bytes_; }
  Stats stats() const;
  // The warnings this cache has given, oldest first (the most recent 64).
  std::vector<std::string> warnings() const;

  // The file name of `key`'s entry: its 128-bit hash as 32 hex digits, then ".kce".
  static std::string entry_name(std::string_view key);
  // directory() + "/" + entry_name(key).
  std::string entry_path(std::string_view key) const;
  // A 64-bit hash of `data` (Kiln's own; stable across builds and machines), for cache keys.
  static uint64_t hash64(std::string_view data, uint64_t seed = 0);

 private:
  void warn(const std::string& message);
  // Gives a warning once per `entry` name and removes the entry when it is still the file `fd`.
  void reject(const std::string& entry, int fd, const std::string& why);
  void disable(const std::string& why);
  void evict_over_bound();

  std::string directory_;
  uint64_t max_bytes_ = 0;
  mutable std::mutex mutex_;
  bool enabled_ = false;
  bool said_off_ = false;  // disable() has warned
  Stats stats_;
  std::set<std::string> warned_entries_;
  std::vector<std::string> warnings_;
};

}  // namespace kiln::runtime
