// A fixed-length list of trivially copyable values (pointers) that lives on the stack when short:
// the per-call argument and buffer lists of compiled functions, which would otherwise cost a heap
// allocation on every call. Internal to the call path.
#pragma once

#include <array>
#include <cstddef>
#include <span>
#include <type_traits>
#include <vector>

namespace kiln::detail {

template <class T, size_t Inline = 8>
class InlineList {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  // `size` value-initialized elements.
  explicit InlineList(size_t size) : size_(size) {
    if (size > Inline) heap_.resize(size);
  }
  InlineList(const InlineList&) = delete;
  InlineList& operator=(const InlineList&) = delete;

  T* data() { return size_ > Inline ? heap_.data() : inline_.data(); }
  const T* data() const { return size_ > Inline ? heap_.data() : inline_.data(); }
  size_t size() const { return size_; }
  T& operator[](size_t i) { return data()[i]; }
  std::span<const T> span() const { return {data(), size_}; }

 private:
  size_t size_;
  std::array<T, Inline> inline_{};
  std::vector<T> heap_;
};

}  // namespace kiln::detail
