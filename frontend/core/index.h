// Index items for Tensor::index, with NumPy/Python semantics:
//   A.index({1})                        A[1]        (drops the dimension)
//   A.index({k::Slice(), 1})            A[:, 1]
//   A.index({k::Slice(1, k::none, 2)})  A[1::2]
//   A.index({k::Slice(k::none, k::none, -1)})  A[::-1]
//   A.index({k::ellipsis, k::newaxis})  A[..., None]
#pragma once

#include <concepts>
#include <cstdint>
#include <optional>
#include <variant>

namespace kiln {

// The default for a Slice field, as Python's None: Slice(k::none, 3) is [:3].
inline constexpr std::nullopt_t none = std::nullopt;

// A Python slice start:stop:step. Missing fields take Python's defaults (which depend on the
// sign of step); negative start/stop count from the back; out-of-range values are clamped.
// Note the argument order: Slice(2) is [2:], not Python's slice(2) == [:2].
struct Slice {
  std::optional<int64_t> start;
  std::optional<int64_t> stop;
  std::optional<int64_t> step;

  Slice() = default;
  Slice(std::optional<int64_t> start, std::optional<int64_t> stop = std::nullopt,
        std::optional<int64_t> step = std::nullopt)
      : start(start), stop(stop), step(step) {}
};

// Inserts a dimension of size 1 (NumPy's np.newaxis / None).
struct NewAxis {};
inline constexpr NewAxis newaxis{};

// Stands for as many full slices as needed to cover the remaining dimensions (Python's ...).
struct Ellipsis {};
inline constexpr Ellipsis ellipsis{};

// One item of an index expression: an integer, a Slice, newaxis or ellipsis.
class IndexItem {
 public:
  using Value = std::variant<int64_t, Slice, NewAxis, Ellipsis>;

  template <std::integral T>
  requires(!std::same_as<T, bool>) IndexItem(T index) : value_(static_cast<int64_t>(index)) {}
  IndexItem(Slice slice) : value_(slice) {}
  IndexItem(NewAxis) : value_(NewAxis{}) {}
  IndexItem(Ellipsis) : value_(Ellipsis{}) {}

  const Value& value() const { return value_; }

 private:
  Value value_;
};

}  // namespace kiln
