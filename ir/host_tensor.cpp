#include "kiln/ir/host_tensor.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <iterator>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#ifdef __linux__
#include <sys/sysinfo.h>
#endif

#include "kiln/ir/buffer_pool.h"
#include "kiln/ir/sanitizers.h"

namespace kiln::ir {

namespace {
constexpr size_t kAlignment = 64;

// Whether `bytes` may be had at all: more than the machine's memory and swap together cannot,
// and asking anyway where the kernel always overcommits ends with the OOM killer (the zero fill
// touches every page), not with an error. runtime/kiln_rt.cpp has a copy for kiln_rt_alloc: the
// layering (ir/ and runtime/ may not include each other) forbids sharing one.
bool within_machine_memory(size_t bytes) {
#ifdef __linux__
  if (bytes < (size_t{1} << 30)) return true;
  struct sysinfo info;
  if (::sysinfo(&info) != 0) return true;
  unsigned __int128 total =
      static_cast<unsigned __int128>(info.totalram + info.totalswap) * info.mem_unit;
  return bytes <= total;
#else
  return true;
#endif
}

// The buffer pool. Freed blocks of at least kSmallestReused bytes are kept, by rounded size, for
// the next tensor of that size: eager loops and compiled functions' calls allocate the same few
// sizes at every step, and a block fresh from the system (glibc mmaps large blocks and unmaps them
// on free) costs a page fault per 4 KiB page on its first write. That was a tenth of an eager MLP
// step, and 8x the kernel for a fused elementwise chain over 64 MB called through kiln::function
// (docs/performance.md, "Fused elementwise chain"). Workspaces need none of this: the Executable
// keeps its idle ones (runtime/executable.cpp), so kiln_rt_alloc has no pool.
//
// Bound: at most kDefaultPoolBytes (256 MiB) are kept, or KILN_BUFFER_POOL_BYTES (bytes, with an
// optional K, M or G; 0 turns the pool off), read once at the first large allocation;
// detail::set_buffer_pool_limit changes it. To keep a newly freed block within the bound, the
// least recently freed blocks are freed first (a program that moves on to other sizes does not
// keep the old ones forever); a block larger than the bound is freed at once. When the system
// refuses memory every kept block is freed and the allocation tried again.
//
// What is not worth keeping goes back to the system too, so that a program does not carry its
// data preparation's buffers through its training loop:
// - a block of more than an eighth of the bound (32 MiB by default) is kept only when tensors of
//   its size have been made at least twice: a dataset's bytes, converted once and dropped, are
//   not kept, while a loop's buffers are from its second step on;
// - a kept block that no tensor has taken for kDefaultMaxIdle (5 s; the time a loop that needs
//   it would have come back for it) is freed at the next large allocation or free. The blocks
//   are in freeing order, so this looks at the oldest few only.
//
// Semantics are unchanged: uninitialized() promised nothing about the contents, and zeroed
// tensors are cleared whether their block is new or kept. A block is in the pool only while no
// tensor holds it, so two live tensors never share one.
//
// Off under AddressSanitizer and ThreadSanitizer, which must see every free to report a use after
// it (or a race with it): the limit is 0 there and the setter changes nothing.
constexpr bool kReuseBlocks = !kAddressSanitizer && !kThreadSanitizer;
constexpr size_t kSmallestReused = size_t{64} << 10;
constexpr size_t kDefaultPoolBytes = size_t{256} << 20;
constexpr std::chrono::milliseconds kDefaultMaxIdle{5000};
// Distinct large sizes whose tensor counts are remembered; past it the counts start over.
constexpr size_t kMaxCountedSizes = 1024;

size_t pool_limit_from_env() {
  const char* text = std::getenv("KILN_BUFFER_POOL_BYTES");
  if (text == nullptr || *text == '\0') return kDefaultPoolBytes;
  if (std::optional<size_t> bytes = detail::parse_buffer_pool_bytes(text)) return *bytes;
  // The allocator has no error to throw (this runs in the first large allocation, whose tensor
  // is fine) and no logger (ir/ is below runtime/): a line on stderr, once.
  std::fprintf(stderr,
               "kiln: ignoring KILN_BUFFER_POOL_BYTES=\"%s\" (want a number of bytes, optionally "
               "with K, M or G; 0 turns the buffer pool off); keeping up to %s\n",
               text, describe_bytes(kDefaultPoolBytes).c_str());
  return kDefaultPoolBytes;
}

class BlockCache {
 public:
  using Clock = std::chrono::steady_clock;

  explicit BlockCache(size_t limit) : limit_(limit) {}

  // A kept block of exactly `bytes` (the most recently freed one), or null.
  void* take(size_t bytes) {
    BlockList expired;  // freed outside the lock
    void* p = nullptr;
    {
      std::lock_guard lock(mutex_);
      if (limit_ == 0) return nullptr;  // off: nothing kept, nothing counted
      expire(Clock::now(), expired);
      count_request(bytes);
      p = take_locked(bytes);
    }
    free_all(expired);
    return p;
  }

  // Keeps `p` (of `bytes`) or frees it; frees the least recently freed blocks to stay within the
  // bound, and those idle too long. Runs in tensors' deleters: never throws.
  void give(void* p, size_t bytes) noexcept {
    BlockList evicted;  // freed outside the lock: unmapping 64 MB takes a while
    bool keep = false;
    {
      std::lock_guard lock(mutex_);
      const Clock::time_point now = Clock::now();
      expire(now, evicted);
      if (bytes <= limit_ && worth_keeping(bytes)) {
        evict_down_to(limit_ - bytes, evicted);
        try {
          const auto block = order_.insert(order_.end(), Block{p, bytes, now});
          try {
            by_size_[bytes].push_back(block);
          } catch (...) {
            order_.erase(block);
            throw;
          }
          held_ += bytes;
          keep = true;
        } catch (...) {  // no memory for the bookkeeping: free the block instead
        }
      }
      if (!keep && limit_ > 0) ++evictions_;
    }
    if (!keep) std::free(p);
    free_all(evicted);
  }

  // Frees every kept block (when the system refuses memory); whether there were any.
  bool release_all() {
    BlockList evicted;
    {
      std::lock_guard lock(mutex_);
      evict_down_to(0, evicted);
    }
    free_all(evicted);
    return !evicted.empty();
  }

  size_t set_limit(size_t bytes) {
    BlockList evicted;
    size_t previous = 0;
    {
      std::lock_guard lock(mutex_);
      previous = limit_;
      limit_ = bytes;
      evict_down_to(bytes, evicted);
      if (bytes == 0) requests_.clear();  // off: forgets what it has seen too
    }
    free_all(evicted);
    return previous;
  }

  std::chrono::milliseconds set_max_idle(std::chrono::milliseconds idle) {
    BlockList expired;
    std::chrono::milliseconds previous{};
    {
      std::lock_guard lock(mutex_);
      previous = max_idle_;
      max_idle_ = idle;
      expire(Clock::now(), expired);
    }
    free_all(expired);
    return previous;
  }

  detail::BufferPoolStats stats() {
    std::lock_guard lock(mutex_);
    return {.enabled = limit_ > 0,
            .limit_bytes = limit_,
            .held_bytes = held_,
            .held_blocks = order_.size(),
            .hits = hits_,
            .misses = misses_,
            .evictions = evictions_,
            .expirations = expirations_,
            .max_idle = max_idle_};
  }

 private:
  struct Block {
    void* p;
    size_t bytes;
    Clock::time_point freed;
  };
  using BlockList = std::list<Block>;

  static void free_all(const BlockList& blocks) {
    for (const Block& b : blocks)
      std::free(b.p);
  }

  // Blocks larger than this are kept only for sizes made at least twice.
  size_t large_block() const { return limit_ / 8; }

  // Counts a tensor of `bytes` made, for worth_keeping (large blocks only; 2 is enough).
  void count_request(size_t bytes) {
    if (bytes <= large_block()) return;
    auto it = requests_.find(bytes);
    if (it != requests_.end()) {
      it->second = 2;
      return;
    }
    if (requests_.size() >= kMaxCountedSizes) requests_.clear();
    try {
      requests_.emplace(bytes, 1);
    } catch (...) {  // no memory to count it: the block is then not kept, which is safe
    }
  }

  bool worth_keeping(size_t bytes) const {
    if (bytes <= large_block()) return true;
    auto it = requests_.find(bytes);
    return it != requests_.end() && it->second >= 2;
  }

  // Moves the blocks freed more than max_idle_ before `now` into `expired`.
  void expire(Clock::time_point now, BlockList& expired) {
    while (!order_.empty() && now - order_.front().freed > max_idle_) {
      evict_oldest(expired);
      ++expirations_;
    }
  }

  void* take_locked(size_t bytes) {
    auto it = by_size_.find(bytes);
    if (it == by_size_.end()) {
      ++misses_;
      return nullptr;
    }
    const auto block = it->second.back();
    it->second.pop_back();
    if (it->second.empty()) by_size_.erase(it);
    void* p = block->p;
    order_.erase(block);
    held_ -= bytes;
    ++hits_;
    return p;
  }

  // Moves the least recently freed block into `evicted`. Called with the lock held; allocates
  // nothing (splice), so give() stays noexcept.
  void evict_oldest(BlockList& evicted) {
    const auto oldest = order_.begin();
    const size_t size = oldest->bytes;
    // The oldest block of its size is the front of that size's list (both are in freeing order).
    auto it = by_size_.find(size);
    it->second.pop_front();
    if (it->second.empty()) by_size_.erase(it);
    held_ -= size;
    ++evictions_;
    evicted.splice(evicted.end(), order_, oldest);
  }

  // Moves the least recently freed blocks into `evicted` until at most `bytes` are held.
  void evict_down_to(size_t bytes, BlockList& evicted) {
    while (held_ > bytes)
      evict_oldest(evicted);
  }

  std::mutex mutex_;
  BlockList order_;  // every kept block, least recently freed first
  std::unordered_map<size_t, std::deque<BlockList::iterator>> by_size_;  // each in freeing order
  // Large sizes (over large_block()) seen by take(): 1 once, 2 for twice or more.
  std::unordered_map<size_t, uint8_t> requests_;
  size_t limit_;
  std::chrono::milliseconds max_idle_ = kDefaultMaxIdle;
  size_t held_ = 0;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
  uint64_t evictions_ = 0;
  uint64_t expirations_ = 0;
};

BlockCache& block_cache() {
  // Never destroyed: tensors may die after it.
  static BlockCache* cache = new BlockCache(kReuseBlocks ? pool_limit_from_env() : 0);
  return *cache;
}

// Null when the memory cannot be had (too large for the address space or for the machine).
// `nbytes` fits in int64 (TensorType::checked_nbytes), so rounding it up cannot wrap around.
std::shared_ptr<std::byte> allocate(size_t nbytes, bool zeroed) {
  if (!within_machine_memory(nbytes)) return nullptr;
  size_t rounded = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
  if (rounded == 0) rounded = kAlignment;
  const bool reuse = kReuseBlocks && rounded >= kSmallestReused;
  // With the pool off (limit 0) take() finds nothing and give() frees at once.
  void* p = reuse ? block_cache().take(rounded) : nullptr;
  if (p == nullptr) p = std::aligned_alloc(kAlignment, rounded);
  if (p == nullptr && kReuseBlocks && block_cache().release_all())
    p = std::aligned_alloc(kAlignment, rounded);
  if (p == nullptr) return nullptr;
  if (zeroed) std::memset(p, 0, rounded);
  if (!reuse) {
    return std::shared_ptr<std::byte>(static_cast<std::byte*>(p),
                                      [](std::byte* q) { std::free(q); });
  }
  return std::shared_ptr<std::byte>(static_cast<std::byte*>(p),
                                    [rounded](std::byte* q) { block_cache().give(q, rounded); });
}

std::string allocation_failure_message(const TensorType& type) {
  return fmt::format(
      "cannot allocate a tensor of shape {} and dtype {}: {} elements, {}, more memory than this "
      "machine can give",
      type.shape.to_string(), dtype_long_name(type.dtype), type.shape.num_elements(),
      describe_bytes(type.nbytes()));
}
}  // namespace

std::string describe_bytes(size_t bytes) {
  const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return fmt::format("{} bytes", bytes);
  double v = static_cast<double>(bytes) / 1024;
  size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(units)) {
    v /= 1024;
    ++u;
  }
  return fmt::format("{:.3g} {} ({} bytes)", v, units[u], bytes);
}

namespace detail {

std::optional<size_t> parse_buffer_pool_bytes(std::string_view text) {
  size_t i = 0;
  while (i < text.size() && (text[i] == ' ' || text[i] == '\t'))
    ++i;
  const size_t digits = i;
  size_t value = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    const auto digit = static_cast<size_t>(text[i] - '0');
    if (value > (SIZE_MAX - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  if (i == digits) return std::nullopt;
  int shift = 0;
  if (i < text.size()) {
    switch (text[i]) {
      case 'k':
      case 'K':
        shift = 10;
        break;
      case 'm':
      case 'M':
        shift = 20;
        break;
      case 'g':
      case 'G':
        shift = 30;
        break;
      default:
        break;
    }
    if (shift > 0) ++i;
  }
  std::string_view rest = text.substr(i);
  while (!rest.empty() && (rest.back() == ' ' || rest.back() == '\t'))
    rest.remove_suffix(1);
  if (!(rest.empty() || rest == "B" || rest == "b" ||
        (shift > 0 && (rest == "iB" || rest == "ib"))))
    return std::nullopt;
  if (value > (SIZE_MAX >> shift)) return std::nullopt;
  return value << shift;
}

BufferPoolStats buffer_pool_stats() {
  if (!kReuseBlocks) return {};
  return block_cache().stats();
}

size_t set_buffer_pool_limit(size_t bytes) {
  if (!kReuseBlocks) return 0;
  return block_cache().set_limit(bytes);
}

std::chrono::milliseconds set_buffer_pool_max_idle(std::chrono::milliseconds idle) {
  if (!kReuseBlocks) return {};
  return block_cache().set_max_idle(std::max(idle, std::chrono::milliseconds{0}));
}

}  // namespace detail

HostTensor::HostTensor(TensorType type, bool zeroed) : type_(std::move(type)) {
  for (int64_t d : type_.shape)
    KILN_CHECK(d >= 0, "negative dimension in HostTensor");
  // A size that overflows int64 cannot be allocated either.
  std::optional<int64_t> bytes = type_.checked_nbytes();
  if (!bytes) {
    throw ResourceError(
        fmt::format("cannot allocate a tensor of shape {} and dtype {}: its size overflows 64 bits",
                    type_.shape.to_string(), dtype_long_name(type_.dtype)));
  }
  storage_ = allocate(static_cast<size_t>(*bytes), zeroed);
  if (storage_ == nullptr) throw ResourceError(allocation_failure_message(type_));
}

HostTensor HostTensor::uninitialized(TensorType type) {
  return HostTensor(std::move(type), false);
}

double HostTensor::element_as_double(int64_t i) const {
  return visit_dtype(dtype(), [&](auto zero) -> double {
    using T = decltype(zero);
    return static_cast<double>(data<T>()[i]);
  });
}

HostTensor HostTensor::clone() const {
  if (!defined()) return {};
  HostTensor copy(type_);
  std::memcpy(copy.raw(), raw(), nbytes());
  return copy;
}

bool HostTensor::bitwise_equal(const HostTensor& other) const {
  if (type_ != other.type_) return false;
  if (!defined() || !other.defined()) return defined() == other.defined();
  return std::memcmp(raw(), other.raw(), nbytes()) == 0;
}

HostTensor HostTensor::reshaped(Shape shape) const {
  KILN_CHECK(shape.num_elements() == num_elements(), "reshaped() with a different element count");
  HostTensor view = *this;
  view.type_.shape = std::move(shape);
  return view;
}

}  // namespace kiln::ir
