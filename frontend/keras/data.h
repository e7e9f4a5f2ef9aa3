// kiln::data::Dataset: a tf.data-style input pipeline (tf.data.Dataset in TensorFlow 2).
//
//   auto ds = k::data::Dataset::from_tensor_slices({images, labels})
//                 .shuffle(10000, /*seed=*/42)
//                 .batch(128)
//                 .prefetch(k::data::autotune);
//   for (int epoch = 0; epoch < 5; ++epoch)
//     for (const k::data::Element& batch : ds) train_step(batch[0], batch[1]);
//
// A Dataset is an immutable, cheaply copied handle to a description of the pipeline; every
// begin() builds a fresh chain of iterators, so a Dataset can be iterated many times (one epoch
// per loop) and each transformation re-iterates its input, as tf.data does. Elements, their
// order and cardinality() follow tf.data; an element is a flat tuple of tensors (zip
// concatenates the tuples instead of nesting them). Elements are concrete (host) tensors.
//
// Shuffling uses tf.data's buffer algorithm with std::mt19937_64, so a seeded shuffle is
// deterministic but its permutation differs from TensorFlow's for the same seed.
//
// Errors: bad arguments throw when the transformation is made; problems found while iterating
// (batching elements of different shapes, an exception from a map function) throw from the
// iterator call that needs the element, and the iteration then ends. A map function of a
// prefetched pipeline runs on the prefetch thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <source_location>
#include <vector>

#include "kiln/frontend/core/tensor.h"

namespace kiln::data {

using Loc = std::source_location;

// One element of a dataset: a tuple of tensors.
using Element = std::vector<Tensor>;

// cardinality() of an endless dataset (tf.data.INFINITE_CARDINALITY).
inline constexpr int64_t infinite_cardinality = -1;
// cardinality() when the number of elements cannot be known without iterating
// (tf.data.UNKNOWN_CARDINALITY).
inline constexpr int64_t unknown_cardinality = -2;
// prefetch(autotune) picks the buffer size (tf.data.AUTOTUNE).
inline constexpr int64_t autotune = -1;

namespace detail {
class Node;
}  // namespace detail

class Dataset {
 public:
  class Iterator;

  // Elements t[0], t[1], ... (one-tensor tuples). ValueError for a rank-0, undefined or symbolic
  // tensor. The dataset keeps `t` (shared, not copied); each element gets a copy of its row.
  static Dataset from_tensor_slices(const Tensor& t, Loc loc = Loc::current());
  // Elements {t0[i], t1[i], ...}; ValueError unless every tensor has rank >= 1 and all share
  // dimension 0 (the message names both sizes).
  static Dataset from_tensor_slices(const std::vector<Tensor>& ts, Loc loc = Loc::current());
  // Elements whose tuples are the inputs' tuples concatenated; ends with the shortest input.
  // ValueError for an empty list.
  static Dataset zip(const std::vector<Dataset>& ds, Loc loc = Loc::current());

  // Each element replaced by fn(element), computed when it is reached.
  Dataset map(std::function<Element(const Element&)> fn, Loc loc = Loc::current()) const;
  // Consecutive elements stacked along a new axis 0, batch_size at a time; the last, smaller
  // batch is kept unless drop_remainder. ValueError for batch_size <= 0; while iterating,
  // ShapeError (TypeError, ValueError) when the elements of a batch differ in a component's
  // shape (dtype, tuple size); the message names the element.
  Dataset batch(int64_t batch_size, bool drop_remainder = false, Loc loc = Loc::current()) const;
  // tf.data's shuffle: fills a buffer with buffer_size elements, then repeatedly emits a
  // uniformly chosen slot and refills it with the next input element; when the input ends the
  // buffer drains in random order. So output k is one of the first k + buffer_size inputs.
  // With a seed the order is deterministic; without one a random seed is drawn here. When
  // reshuffle_each_iteration, every iteration (each begin(), each repeat epoch) uses a new seed
  // derived from the seed and the iteration count; otherwise every iteration has the same order.
  // ValueError for buffer_size <= 0.
  Dataset shuffle(int64_t buffer_size, std::optional<uint64_t> seed = std::nullopt,
                  bool reshuffle_each_iteration = true, Loc loc = Loc::current()) const;
  // The input `count` times over, each time iterated afresh; a negative count (-1) repeats
  // forever (ending at once if the input is empty, as tf.data does).
  Dataset repeat(int64_t count = -1, Loc loc = Loc::current()) const;
  // The first `count` elements; a negative count (-1) takes all of them.
  Dataset take(int64_t count, Loc loc = Loc::current()) const;
  // All but the first `count` elements; a negative count (-1) skips all of them.
  Dataset skip(int64_t count, Loc loc = Loc::current()) const;
  // The same elements, computed ahead by a background thread into a queue of buffer_size
  // elements (0: no prefetching; autotune: a small default). An exception from upstream is
  // rethrown by the iterator at the element where it happened; destroying the iterator stops
  // the thread. ValueError for buffer_size < -1.
  Dataset prefetch(int64_t buffer_size, Loc loc = Loc::current()) const;

  // The number of elements, infinite_cardinality or unknown_cardinality (tf.data's rules).
  int64_t cardinality() const;

  // A fresh iteration over the elements, and the end marker to compare it with.
  Iterator begin() const;
  Iterator end() const;

 private:
  explicit Dataset(std::shared_ptr<const detail::Node> node) : node_(std::move(node)) {}
  std::shared_ptr<const detail::Node> node_;
};

// An input iterator over the elements of one iteration. Elements are computed when first
// needed (by *, ==, ++ or next()); copies share the position.
class Dataset::Iterator {
 public:
  using iterator_concept = std::input_iterator_tag;
  using iterator_category = std::input_iterator_tag;
  using value_type = Element;
  using difference_type = std::ptrdiff_t;
  using pointer = const Element*;
  using reference = const Element&;

  // The end iterator.
  Iterator() = default;

  // The current element (ValueError at the end).
  const Element& operator*() const;
  const Element* operator->() const { return &**this; }
  Iterator& operator++();
  void operator++(int) { ++*this; }
  // Equal when both are at the end, or when they are copies of one iteration.
  friend bool operator==(const Iterator& a, const Iterator& b);

  // Python's next(it): the current element, moving past it; nullopt at the end.
  std::optional<Element> next();

 private:
  friend class Dataset;
  struct State;
  bool at_end() const;
  std::shared_ptr<State> state_;
};

}  // namespace kiln::data
