// kiln::data::Dataset: each transformation is an immutable Node; iterating builds a matching
// chain of ItemIterators (one per node, made afresh for every iteration or repeat epoch).
#include "kiln/frontend/keras/data.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <utility>

#include <fmt/format.h>

#include "kiln/frontend/core/op_error.h"
#include "kiln/ir/philox.h"

namespace kiln::data {
namespace detail {

using kiln::detail::raise;
using NodePtr = std::shared_ptr<const Node>;

// A from_tensor_slices tensor and the type of its rows.
struct Column {
  explicit Column(ir::HostTensor tensor)
      : data(std::move(tensor)),
        row_type{data.dtype(), Shape(std::span(data.shape().dims()).subspan(1))},
        row_bytes(row_type.nbytes()) {}
  const std::byte* row(int64_t i) const { return data.raw() + static_cast<size_t>(i) * row_bytes; }

  ir::HostTensor data;
  TensorType row_type;
  size_t row_bytes;
};

// One component of an element inside the pipeline: a tensor, or a row of a column not copied
// yet. Shuffle and batch move rows around as (column, row) and batch copies each row once,
// straight from the column; a row becomes a Tensor only where user code sees it. The column
// lives in its node, which outlives every iteration over it.
struct Part {
  Tensor tensor;  // when column is null
  const Column* column = nullptr;
  int64_t row = 0;

  static Part of_row(const Column& column, int64_t row) { return {Tensor(), &column, row}; }
  // The tensor, copying the row into its own buffer if needed.
  Tensor materialize() const {
    if (!column) return tensor;
    ir::HostTensor out = ir::HostTensor::uninitialized(column->row_type);
    if (column->row_bytes > 0) std::memcpy(out.raw(), column->row(row), column->row_bytes);
    return Tensor(std::move(out));
  }
};
using Item = std::vector<Part>;

// One iteration's cursor over a node's elements.
class ItemIterator {
 public:
  virtual ~ItemIterator() = default;
  // The next element, or nullopt at the end (and at every call after it).
  virtual std::optional<Item> next() = 0;
};

// A transformation (or source) in the pipeline description.
class Node {
 public:
  virtual ~Node() = default;
  virtual std::unique_ptr<ItemIterator> iterate() const = 0;
  virtual int64_t cardinality() const = 0;
};

namespace {

Element to_element(const Item& item) {
  Element element;
  element.reserve(item.size());
  for (const Part& part : item)
    element.push_back(part.materialize());
  return element;
}

Item to_item(Element element) {
  Item item;
  item.reserve(element.size());
  for (Tensor& t : element)
    item.push_back({std::move(t)});
  return item;
}

class SliceNode final : public Node {
 public:
  explicit SliceNode(std::vector<ir::HostTensor> tensors) : rows_(tensors[0].shape()[0]) {
    columns_.reserve(tensors.size());
    for (ir::HostTensor& t : tensors)
      columns_.emplace_back(std::move(t));
  }
  std::unique_ptr<ItemIterator> iterate() const override;
  int64_t cardinality() const override { return rows_; }

  Item row(int64_t i) const {
    Item item;
    item.reserve(columns_.size());
    for (const Column& column : columns_)
      item.push_back(Part::of_row(column, i));
    return item;
  }

 private:
  std::vector<Column> columns_;  // never resized: Parts point into it
  int64_t rows_;
};

class SliceIterator final : public ItemIterator {
 public:
  explicit SliceIterator(const SliceNode& node) : node_(node) {}
  std::optional<Item> next() override {
    if (next_ >= node_.cardinality()) return std::nullopt;
    return node_.row(next_++);
  }

 private:
  const SliceNode& node_;  // outlives the iteration (see Part)
  int64_t next_ = 0;
};

std::unique_ptr<ItemIterator> SliceNode::iterate() const {
  return std::make_unique<SliceIterator>(*this);
}

class ZipNode final : public Node {
 public:
  explicit ZipNode(std::vector<NodePtr> inputs) : inputs_(std::move(inputs)) {}
  std::unique_ptr<ItemIterator> iterate() const override;
  int64_t cardinality() const override {
    int64_t result = infinite_cardinality;
    for (const NodePtr& input : inputs_) {
      int64_t n = input->cardinality();
      if (n == unknown_cardinality) return unknown_cardinality;
      if (n != infinite_cardinality) result = result < 0 ? n : std::min(result, n);
    }
    return result;
  }

 private:
  std::vector<NodePtr> inputs_;
};

class ZipIterator final : public ItemIterator {
 public:
  explicit ZipIterator(std::vector<std::unique_ptr<ItemIterator>> inputs)
      : inputs_(std::move(inputs)) {}
  std::optional<Item> next() override {
    if (inputs_.empty()) return std::nullopt;
    Item out;
    for (auto& input : inputs_) {
      std::optional<Item> part = input->next();
      if (!part) {
        inputs_.clear();
        return std::nullopt;
      }
      std::move(part->begin(), part->end(), std::back_inserter(out));
    }
    return out;
  }

 private:
  std::vector<std::unique_ptr<ItemIterator>> inputs_;
};

std::unique_ptr<ItemIterator> ZipNode::iterate() const {
  std::vector<std::unique_ptr<ItemIterator>> iterators;
  for (const NodePtr& input : inputs_)
    iterators.push_back(input->iterate());
  return std::make_unique<ZipIterator>(std::move(iterators));
}

using MapFn = std::function<Element(const Element&)>;

class MapIterator final : public ItemIterator {
 public:
  MapIterator(std::unique_ptr<ItemIterator> input, const MapFn& fn)
      : input_(std::move(input)), fn_(fn) {}
  std::optional<Item> next() override {
    std::optional<Item> item = input_->next();
    if (!item) return std::nullopt;
    return to_item(fn_(to_element(*item)));
  }

 private:
  std::unique_ptr<ItemIterator> input_;
  const MapFn& fn_;  // owned by the MapNode
};

class MapNode final : public Node {
 public:
  MapNode(NodePtr input, MapFn fn) : input_(std::move(input)), fn_(std::move(fn)) {}
  std::unique_ptr<ItemIterator> iterate() const override {
    return std::make_unique<MapIterator>(input_->iterate(), fn_);
  }
  int64_t cardinality() const override { return input_->cardinality(); }

 private:
  NodePtr input_;
  MapFn fn_;
};

// Stacks component c of `rows` along a new axis 0, copying each row's bytes once.
Tensor stack_component(const std::vector<Item>& rows, size_t c, int64_t first_index,
                       const Loc& loc) {
  auto type_of = [&](size_t r) -> const TensorType& {
    const Part& part = rows[r][c];
    if (part.column) return part.column->row_type;
    const Tensor& t = part.tensor;
    if (!t.defined() || t.is_symbolic()) {
      raise<ValueError>(
          "Dataset.batch", {t},
          fmt::format(
              "component {} of element {} of the batch (input element {}) is {}", c, r,
              first_index + static_cast<int64_t>(r),
              t.defined() ? "a symbolic tensor (made while tracing)" : "an undefined Tensor"),
          loc);
    }
    return t.type();
  };
  const TensorType& first = type_of(0);
  for (size_t r = 1; r < rows.size(); ++r) {
    const TensorType& type = type_of(r);
    if (type == first) continue;
    bool dtypes = type.dtype != first.dtype;
    std::string what = fmt::format(
        "cannot batch tensors with different {}s in component {}: element 0 of the batch (input "
        "element {}) has {} {} but element {} (input element {}) has {} {}",
        dtypes ? "dtype" : "shape", c, first_index, dtypes ? "dtype" : "shape", first.to_string(),
        r, first_index + static_cast<int64_t>(r), dtypes ? "dtype" : "shape", type.to_string());
    if (dtypes) raise<TypeError>("Dataset.batch", {}, what, loc);
    raise<ShapeError>("Dataset.batch", {}, what, loc);
  }
  std::vector<int64_t> dims{static_cast<int64_t>(rows.size())};
  dims.insert(dims.end(), first.shape.begin(), first.shape.end());
  ir::HostTensor out = ir::HostTensor::uninitialized({first.dtype, Shape(std::move(dims))});
  size_t bytes = first.nbytes();
  if (bytes > 0) {
    for (size_t r = 0; r < rows.size(); ++r) {
      const Part& part = rows[r][c];
      const std::byte* src = part.column ? part.column->row(part.row) : part.tensor.host().raw();
      std::memcpy(out.raw() + r * bytes, src, bytes);
    }
  }
  return Tensor(std::move(out));
}

struct BatchNode final : public Node {
  BatchNode(NodePtr input, int64_t batch_size, bool drop_remainder, Loc loc)
      : input(std::move(input)), batch_size(batch_size), drop_remainder(drop_remainder), loc(loc) {}
  std::unique_ptr<ItemIterator> iterate() const override;
  int64_t cardinality() const override {
    int64_t n = input->cardinality();
    if (n < 0) return n;
    return n / batch_size + (n % batch_size != 0 && !drop_remainder ? 1 : 0);
  }

  NodePtr input;
  int64_t batch_size;
  bool drop_remainder;
  Loc loc;  // the user's batch() call, for errors found while iterating
};

class BatchIterator final : public ItemIterator {
 public:
  explicit BatchIterator(const BatchNode& node) : node_(node), input_(node.input->iterate()) {}
  std::optional<Item> next() override {
    std::vector<Item> rows;
    rows.reserve(static_cast<size_t>(std::min<int64_t>(node_.batch_size, 1 << 16)));
    while (input_ && static_cast<int64_t>(rows.size()) < node_.batch_size) {
      std::optional<Item> item = input_->next();
      if (!item) {
        input_.reset();
        break;
      }
      rows.push_back(std::move(*item));
    }
    int64_t first_index = consumed_;
    consumed_ += static_cast<int64_t>(rows.size());
    if (rows.empty()) return std::nullopt;
    if (node_.drop_remainder && static_cast<int64_t>(rows.size()) < node_.batch_size)
      return std::nullopt;
    for (size_t r = 1; r < rows.size(); ++r) {
      if (rows[r].size() == rows[0].size()) continue;
      raise<ValueError>("Dataset.batch", {},
                        fmt::format("cannot batch elements with different numbers of components: "
                                    "element 0 of the batch (input element {}) has {} but "
                                    "element {} (input element {}) has {}",
                                    first_index, rows[0].size(), r,
                                    first_index + static_cast<int64_t>(r), rows[r].size()),
                        node_.loc);
    }
    Item out;
    out.reserve(rows[0].size());
    for (size_t c = 0; c < rows[0].size(); ++c) {
      out.push_back({stack_component(rows, c, first_index, node_.loc)});
    }
    return out;
  }

 private:
  const BatchNode& node_;
  std::unique_ptr<ItemIterator> input_;
  int64_t consumed_ = 0;  // input elements read so far, for error messages
};

std::unique_ptr<ItemIterator> BatchNode::iterate() const {
  return std::make_unique<BatchIterator>(*this);
}

// A uniform integer in [0, n) (Lemire's multiply-and-reject; the same on every platform, unlike
// std::uniform_int_distribution).
uint64_t uniform_below(std::mt19937_64& rng, uint64_t n) {
  unsigned __int128 m = static_cast<unsigned __int128>(rng()) * n;
  if (static_cast<uint64_t>(m) < n) {
    uint64_t threshold = (0 - n) % n;
    while (static_cast<uint64_t>(m) < threshold)
      m = static_cast<unsigned __int128>(rng()) * n;
  }
  return static_cast<uint64_t>(m >> 64);
}

class ShuffleIterator final : public ItemIterator {
 public:
  ShuffleIterator(std::unique_ptr<ItemIterator> input, int64_t buffer_size, uint64_t seed)
      : input_(std::move(input)), capacity_(static_cast<size_t>(buffer_size)), rng_(seed) {}
  std::optional<Item> next() override {
    if (!filled_) {
      // Reserve only what a small input needs: buffer sizes are often "larger than the data".
      buffer_.reserve(std::min<size_t>(capacity_, 1 << 16));
      while (buffer_.size() < capacity_ && pull()) {
      }
      filled_ = true;
    }
    if (buffer_.empty()) return std::nullopt;
    size_t slot = uniform_below(rng_, buffer_.size());
    Item out = std::move(buffer_[slot]);
    if (std::optional<Item> refill = input_ ? input_->next() : std::nullopt) {
      buffer_[slot] = std::move(*refill);
    } else {
      input_.reset();
      if (slot + 1 != buffer_.size()) buffer_[slot] = std::move(buffer_.back());
      buffer_.pop_back();
    }
    return out;
  }

 private:
  bool pull() {
    std::optional<Item> element = input_->next();
    if (!element) {
      input_.reset();
      return false;
    }
    buffer_.push_back(std::move(*element));
    return true;
  }

  std::unique_ptr<ItemIterator> input_;
  size_t capacity_;
  std::mt19937_64 rng_;
  std::vector<Item> buffer_;
  bool filled_ = false;
};

class ShuffleNode final : public Node {
 public:
  ShuffleNode(NodePtr input, int64_t buffer_size, uint64_t seed, bool reshuffle)
      : input_(std::move(input)), buffer_size_(buffer_size), seed_(seed), reshuffle_(reshuffle) {}
  std::unique_ptr<ItemIterator> iterate() const override {
    // Iteration k of a reshuffling dataset uses a seed derived from (seed, k), so the sequence
    // of epoch orders is the same in every run with this seed.
    uint64_t k = reshuffle_ ? iterations_.fetch_add(1) : 0;
    uint64_t seed = ir::splitmix64(seed_ ^ ir::splitmix64(k));
    return std::make_unique<ShuffleIterator>(input_->iterate(), buffer_size_, seed);
  }
  int64_t cardinality() const override { return input_->cardinality(); }

 private:
  NodePtr input_;
  int64_t buffer_size_;
  uint64_t seed_;
  bool reshuffle_;
  // The one piece of mutable state: how many iterations have begun (tf.data keeps the same
  // count in the shuffle's seed generator).
  mutable std::atomic<uint64_t> iterations_{0};
};

class RepeatIterator final : public ItemIterator {
 public:
  RepeatIterator(NodePtr input, int64_t count) : node_(std::move(input)), count_(count) {}
  std::optional<Item> next() override {
    while (!finished_) {
      if (count_ >= 0 && epochs_ >= count_) break;
      bool fresh = false;
      if (!input_) {
        input_ = node_->iterate();
        fresh = true;
      }
      if (std::optional<Item> element = input_->next()) return element;
      input_.reset();
      ++epochs_;
      // An empty input repeated forever would never yield: end instead, as tf.data does.
      if (fresh && count_ < 0) break;
    }
    finished_ = true;
    input_.reset();
    return std::nullopt;
  }

 private:
  NodePtr node_;
  int64_t count_;
  int64_t epochs_ = 0;
  bool finished_ = false;
  std::unique_ptr<ItemIterator> input_;
};

class RepeatNode final : public Node {
 public:
  RepeatNode(NodePtr input, int64_t count) : input_(std::move(input)), count_(count) {}
  std::unique_ptr<ItemIterator> iterate() const override {
    return std::make_unique<RepeatIterator>(input_, count_);
  }
  int64_t cardinality() const override {
    int64_t n = input_->cardinality();
    if (count_ < 0) return n == 0 ? 0 : infinite_cardinality;
    if (count_ == 0) return 0;
    if (n < 0) return n;
    return n * count_;
  }

 private:
  NodePtr input_;
  int64_t count_;
};

// take (keep the first `count`) and skip (drop the first `count`); a negative count means all.
class TakeSkipIterator final : public ItemIterator {
 public:
  TakeSkipIterator(std::unique_ptr<ItemIterator> input, int64_t count, bool take)
      : input_(std::move(input)), count_(count), take_(take) {}
  std::optional<Item> next() override {
    if (!input_) return std::nullopt;
    if (take_) {
      if (count_ == 0) return end();
      if (count_ > 0) --count_;
    } else {
      while (count_ != 0) {
        if (!input_->next()) return end();
        if (count_ > 0) --count_;
      }
    }
    std::optional<Item> element = input_->next();
    return element ? std::move(element) : end();
  }

 private:
  // Releases the input at once (a prefetch thread upstream stops here).
  std::nullopt_t end() {
    input_.reset();
    return std::nullopt;
  }
  std::unique_ptr<ItemIterator> input_;
  int64_t count_;
  bool take_;
};

class TakeSkipNode final : public Node {
 public:
  TakeSkipNode(NodePtr input, int64_t count, bool take)
      : input_(std::move(input)), count_(count), take_(take) {}
  std::unique_ptr<ItemIterator> iterate() const override {
    return std::make_unique<TakeSkipIterator>(input_->iterate(), count_, take_);
  }
  int64_t cardinality() const override {
    int64_t n = input_->cardinality();
    if (take_) {
      if (count_ < 0) return n;
      if (n == unknown_cardinality) return n;
      return n == infinite_cardinality ? count_ : std::min(n, count_);
    }
    if (n < 0) return n;
    return count_ < 0 ? 0 : std::max<int64_t>(0, n - count_);
  }

 private:
  NodePtr input_;
  int64_t count_;
  bool take_;
};

// Runs the input on a background thread that keeps up to `capacity` results queued. A result is
// an element, the end, or the exception computing an element threw (after which it stops).
class PrefetchIterator final : public ItemIterator {
 public:
  PrefetchIterator(std::unique_ptr<ItemIterator> input, size_t capacity)
      : input_(std::move(input)), capacity_(capacity), thread_([this] { produce(); }) {}
  ~PrefetchIterator() override {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }

  std::optional<Item> next() override {
    if (finished_) return std::nullopt;
    Result result;
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] { return !queue_.empty(); });
      result = std::move(queue_.front());
      queue_.pop_front();
    }
    changed_.notify_all();
    if (!result.element) finished_ = true;
    if (result.error) std::rethrow_exception(result.error);
    return std::move(result.element);
  }

 private:
  struct Result {
    std::optional<Item> element;  // nullopt: the end, or an error
    std::exception_ptr error;
  };

  void produce() {
    for (bool last = false; !last;) {
      Result result;
      try {
        result.element = input_->next();
        // Copy rows here, off the consumer's thread.
        if (result.element) {
          for (Part& part : *result.element)
            part = {part.materialize()};
        }
      } catch (...) {
        result.error = std::current_exception();
      }
      last = !result.element;
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] { return stop_ || queue_.size() < capacity_; });
      if (stop_) return;
      queue_.push_back(std::move(result));
      lock.unlock();
      changed_.notify_all();
    }
  }

  std::unique_ptr<ItemIterator> input_;  // used only by the thread until it is joined
  size_t capacity_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Result> queue_;
  bool stop_ = false;
  bool finished_ = false;  // consumer side
  std::thread thread_;     // last: starts after the members above exist
};

class PrefetchNode final : public Node {
 public:
  PrefetchNode(NodePtr input, size_t capacity) : input_(std::move(input)), capacity_(capacity) {}
  std::unique_ptr<ItemIterator> iterate() const override {
    return std::make_unique<PrefetchIterator>(input_->iterate(), capacity_);
  }
  int64_t cardinality() const override { return input_->cardinality(); }

 private:
  NodePtr input_;
  size_t capacity_;
};

// The buffer prefetch(autotune) uses: a few elements (usually batches) ahead.
constexpr size_t kAutotunePrefetch = 4;

}  // namespace
}  // namespace detail

using kiln::detail::raise;

Dataset Dataset::from_tensor_slices(const Tensor& t, Loc loc) {
  return from_tensor_slices(std::vector<Tensor>{t}, loc);
}

Dataset Dataset::from_tensor_slices(const std::vector<Tensor>& ts, Loc loc) {
  constexpr std::string_view op = "Dataset.from_tensor_slices";
  if (ts.empty()) raise<ValueError>(op, {}, "needs at least one tensor", loc);
  std::vector<ir::HostTensor> columns;
  for (size_t i = 0; i < ts.size(); ++i) {
    const Tensor& t = ts[i];
    if (!t.defined()) raise<ValueError>(op, ts, fmt::format("tensor {} is undefined", i), loc);
    if (t.is_symbolic()) {
      raise<ValueError>(op, ts,
                        fmt::format("tensor {} is symbolic (made inside a kiln::function trace); "
                                    "a dataset needs concrete tensors",
                                    i),
                        loc);
    }
    if (t.rank() == 0) {
      raise<ValueError>(
          op, ts, fmt::format("tensor {} has rank 0 (shape ()); slicing needs rank >= 1", i), loc);
    }
    if (t.shape()[0] != ts[0].shape()[0]) {
      raise<ValueError>(op, ts,
                        fmt::format("all tensors must have the same size in dimension 0, but "
                                    "tensor 0 has {} and tensor {} has {}",
                                    ts[0].shape()[0], i, t.shape()[0]),
                        loc);
    }
    columns.push_back(t.host());
  }
  return Dataset(std::make_shared<detail::SliceNode>(std::move(columns)));
}

Dataset Dataset::zip(const std::vector<Dataset>& ds, Loc loc) {
  if (ds.empty()) raise<ValueError>("Dataset.zip", {}, "needs at least one dataset", loc);
  std::vector<detail::NodePtr> inputs;
  for (const Dataset& d : ds)
    inputs.push_back(d.node_);
  return Dataset(std::make_shared<detail::ZipNode>(std::move(inputs)));
}

Dataset Dataset::map(std::function<Element(const Element&)> fn, Loc loc) const {
  if (!fn) raise<ValueError>("Dataset.map", {}, "the function is empty", loc);
  return Dataset(std::make_shared<detail::MapNode>(node_, std::move(fn)));
}

Dataset Dataset::batch(int64_t batch_size, bool drop_remainder, Loc loc) const {
  if (batch_size <= 0) {
    raise<ValueError>("Dataset.batch", {},
                      fmt::format("batch_size must be greater than zero, got {}", batch_size), loc);
  }
  return Dataset(std::make_shared<detail::BatchNode>(node_, batch_size, drop_remainder, loc));
}

Dataset Dataset::shuffle(int64_t buffer_size, std::optional<uint64_t> seed,
                         bool reshuffle_each_iteration, Loc loc) const {
  if (buffer_size <= 0) {
    raise<ValueError>("Dataset.shuffle", {},
                      fmt::format("buffer_size must be greater than zero, got {}", buffer_size),
                      loc);
  }
  uint64_t s = seed ? *seed : (uint64_t{std::random_device{}()} << 32) ^ std::random_device{}();
  return Dataset(
      std::make_shared<detail::ShuffleNode>(node_, buffer_size, s, reshuffle_each_iteration));
}

Dataset Dataset::repeat(int64_t count, Loc) const {
  return Dataset(std::make_shared<detail::RepeatNode>(node_, count));
}

Dataset Dataset::take(int64_t count, Loc) const {
  return Dataset(std::make_shared<detail::TakeSkipNode>(node_, count, true));
}

Dataset Dataset::skip(int64_t count, Loc) const {
  return Dataset(std::make_shared<detail::TakeSkipNode>(node_, count, false));
}

Dataset Dataset::prefetch(int64_t buffer_size, Loc loc) const {
  if (buffer_size < autotune) {
    raise<ValueError>("Dataset.prefetch", {},
                      fmt::format("buffer_size must be >= 0 or autotune (-1), got {}", buffer_size),
                      loc);
  }
  if (buffer_size == 0) return *this;
  size_t capacity = buffer_size == autotune ? detail::kAutotunePrefetch : buffer_size;
  return Dataset(std::make_shared<detail::PrefetchNode>(node_, capacity));
}

int64_t Dataset::cardinality() const {
  return node_->cardinality();
}

struct Dataset::Iterator::State {
  // Keeps the nodes alive: iterators refer to their node.
  std::shared_ptr<const detail::Node> node;
  std::unique_ptr<detail::ItemIterator> source;
  std::optional<Element> current;
  bool fetched = false;  // `current` holds this position's element (nullopt: the end)

  void fetch() {
    if (fetched) return;
    fetched = true;
    if (!source) return;
    try {
      if (std::optional<detail::Item> item = source->next()) current = detail::to_element(*item);
    } catch (...) {
      source.reset();  // an exception ends the iteration
      throw;
    }
    if (!current) source.reset();
  }
};

Dataset::Iterator Dataset::begin() const {
  Iterator it;
  it.state_ = std::make_shared<Iterator::State>();
  it.state_->node = node_;
  it.state_->source = node_->iterate();
  return it;
}

Dataset::Iterator Dataset::end() const {
  return Iterator();
}

bool Dataset::Iterator::at_end() const {
  if (!state_) return true;
  state_->fetch();
  return !state_->current;
}

const Element& Dataset::Iterator::operator*() const {
  if (at_end()) throw ValueError("Dataset::Iterator: dereferencing the end of the dataset");
  return *state_->current;
}

Dataset::Iterator& Dataset::Iterator::operator++() {
  if (!at_end()) {
    state_->current.reset();
    state_->fetched = false;
  }
  return *this;
}

bool operator==(const Dataset::Iterator& a, const Dataset::Iterator& b) {
  bool a_end = a.at_end();
  bool b_end = b.at_end();
  return a_end || b_end ? a_end == b_end : a.state_ == b.state_;
}

std::optional<Element> Dataset::Iterator::next() {
  if (at_end()) return std::nullopt;
  std::optional<Element> out = std::move(state_->current);
  state_->current.reset();
  state_->fetched = false;
  return out;
}

static_assert(std::input_iterator<Dataset::Iterator>);
static_assert(std::sentinel_for<Dataset::Iterator, Dataset::Iterator>);

}  // namespace kiln::data
