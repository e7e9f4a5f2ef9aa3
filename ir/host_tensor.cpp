#include "kiln/ir/host_tensor.h"

#include <fmt/format.h>

#include <cstdlib>
#include <cstring>
#include <iterator>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#ifdef __linux__
#include <sys/sysinfo.h>
#endif

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

// Freed blocks of at least kSmallestReused bytes are kept, by size, for the next tensor of that
// size: eager loops and compiled functions' calls allocate the same few sizes at every step, and
// a block fresh from the system costs a page fault per page on its first write (a tenth of an
// eager MLP step). At most kReusedBytes are kept; what would go beyond is freed. Off under
// AddressSanitizer, which must see every free to catch a use after it.
constexpr bool kReuseBlocks = !kAddressSanitizer;
constexpr size_t kSmallestReused = size_t{64} << 10;
constexpr size_t kReusedBytes = size_t{256} << 20;

class BlockCache {
 public:
  void* take(size_t bytes) {
    std::lock_guard lock(mutex_);
    auto it = blocks_.find(bytes);
    if (it == blocks_.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    held_ -= bytes;
    return p;
  }
  void give(void* p, size_t bytes) {
    {
      std::lock_guard lock(mutex_);
      if (held_ + bytes <= kReusedBytes) {
        blocks_[bytes].push_back(p);
        held_ += bytes;
        return;
      }
    }
    std::free(p);
  }
  // Frees every kept block (when the system refuses memory).
  bool release_all() {
    std::lock_guard lock(mutex_);
    const bool any = held_ > 0;
    for (auto& [bytes, list] : blocks_)
      for (void* p : list)
        std::free(p);
    blocks_.clear();
    held_ = 0;
    return any;
  }

 private:
  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> blocks_;
  size_t held_ = 0;
};

BlockCache& block_cache() {
  static BlockCache* cache = new BlockCache();  // never destroyed: tensors may die after it
  return *cache;
}

// Null when the memory cannot be had (too large for the address space or for the machine).
// `nbytes` fits in int64 (TensorType::checked_nbytes), so rounding it up cannot wrap around.
std::shared_ptr<std::byte> allocate(size_t nbytes, bool zeroed) {
  if (!within_machine_memory(nbytes)) return nullptr;
  size_t rounded = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
  if (rounded == 0) rounded = kAlignment;
  const bool reuse = kReuseBlocks && rounded >= kSmallestReused;
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
