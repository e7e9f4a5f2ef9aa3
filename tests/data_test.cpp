// kiln::data::Dataset against tf.data's documented behaviour: element order of every
// transformation, shuffle's buffer semantics and seeding, cardinality, prefetch (same sequence,
// exceptions, early destruction) and the errors for bad arguments and unbatchable elements.
#include "kiln/frontend/keras/data.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <numeric>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "kiln/frontend/core/function.h"
#include "kiln/frontend/core/ops.h"

namespace k = kiln;
using Catch::Contains;
using k::data::Dataset;
using k::data::Element;

namespace {

using Ints = std::vector<int64_t>;

// tf.data.Dataset.range(n): elements 0, 1, ..., n-1 as i64 scalars.
Dataset range(int64_t n) {
  return Dataset::from_tensor_slices(k::range(n, k::i64));
}

// Component 0 of every element, each a 0-d i64 tensor.
Ints scalars(const Dataset& ds) {
  Ints out;
  for (const Element& e : ds) {
    REQUIRE(e.size() == 1);
    REQUIRE(e[0].rank() == 0);
    out.push_back(e[0].item<int64_t>());
  }
  return out;
}

// Component 0 of every element, flattened (for batches of i64).
std::vector<Ints> rows(const Dataset& ds) {
  std::vector<Ints> out;
  for (const Element& e : ds)
    out.push_back(e.at(0).to_vector<int64_t>());
  return out;
}

Ints iota(int64_t n) {
  Ints v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

bool is_permutation_of_range(Ints v, int64_t n) {
  std::sort(v.begin(), v.end());
  return v == iota(n);
}

}  // namespace

TEST_CASE("from_tensor_slices yields the rows in order with the row shape") {
  k::Tensor x = k::constant({{0.f, 1.f, 2.f}, {3.f, 4.f, 5.f}});
  Dataset ds = Dataset::from_tensor_slices(x);
  std::vector<std::vector<float>> got;
  for (const Element& e : ds) {
    REQUIRE(e.size() == 1);
    CHECK(e[0].shape() == k::Shape{3});
    CHECK(e[0].dtype() == k::f32);
    got.push_back(e[0].to_vector<float>());
  }
  CHECK(got == std::vector<std::vector<float>>{{0, 1, 2}, {3, 4, 5}});
  // A Dataset can be iterated again (an epoch loop).
  CHECK(scalars(range(4)) == Ints{0, 1, 2, 3});
  Dataset r = range(3);
  CHECK(scalars(r) == scalars(r));
}

TEST_CASE("from_tensor_slices of several tensors pairs their rows") {
  k::Tensor features = k::constant({{1.0, 2.0}, {3.0, 4.0}, {5.0, 6.0}});  // f64
  k::Tensor labels = k::constant({7, 8, 9});                               // i32
  Dataset ds = Dataset::from_tensor_slices({features, labels});
  std::vector<Element> elements(ds.begin(), ds.end());
  REQUIRE(elements.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    REQUIRE(elements[i].size() == 2);
    CHECK(elements[i][0].shape() == k::Shape{2});
    CHECK(elements[i][0].to_vector<double>() == std::vector<double>{2.0 * i + 1, 2.0 * i + 2});
    CHECK(elements[i][1].shape() == k::Shape{});
    CHECK(elements[i][1].item<int32_t>() == static_cast<int32_t>(7 + i));
  }
}

TEST_CASE("u8 images batch as u8 and scale to f32 in map, as a Fashion-MNIST pipeline does") {
  std::vector<uint8_t> pixels(3 * 2 * 2);
  for (size_t i = 0; i < pixels.size(); ++i)
    pixels[i] = static_cast<uint8_t>(250 + i);  // 250..255, then wrapping to 0..5
  k::Tensor images = k::constant(pixels, k::Shape{3, 2, 2});
  k::Tensor labels = k::constant({4, 0, 9});
  REQUIRE(images.dtype() == k::u8);
  Dataset ds = Dataset::from_tensor_slices({images, labels}).batch(2);
  std::vector<Element> batches(ds.begin(), ds.end());
  REQUIRE(batches.size() == 2);
  CHECK(batches[0][0].dtype() == k::u8);
  CHECK(batches[0][0].shape() == k::Shape{2, 2, 2});
  CHECK(batches[1][0].to_vector<uint8_t>() == std::vector<uint8_t>{2, 3, 4, 5});
  CHECK(batches[1][1].to_vector<int32_t>() == std::vector<int32_t>{9});
  Dataset scaled = ds.map([](const Element& e) -> Element {
    return {k::cast(e[0], k::f32) / 255.f, e[1]};
  });
  std::vector<Element> got(scaled.begin(), scaled.end());
  REQUIRE(got.size() == 2);
  CHECK(got[0][0].dtype() == k::f32);
  CHECK(got[0][0].to_vector<float>()[5] == 1.f);  // the sixth pixel is 255
  CHECK(got[0][0].to_vector<float>()[6] == 0.f);  // and the seventh wrapped to 0
}

TEST_CASE("batch stacks consecutive elements and keeps or drops the remainder") {
  CHECK(rows(range(10).batch(3)) == std::vector<Ints>{{0, 1, 2}, {3, 4, 5}, {6, 7, 8}, {9}});
  CHECK(rows(range(10).batch(3, true)) == std::vector<Ints>{{0, 1, 2}, {3, 4, 5}, {6, 7, 8}});
  CHECK(rows(range(9).batch(3, true)).size() == 3);
  CHECK(rows(range(2).batch(3, true)).empty());
  CHECK(rows(range(2).batch(5)) == std::vector<Ints>{{0, 1}});

  // Several components, each stacked along a new axis 0.
  k::Tensor x = k::reshape(k::range(10, k::i64), k::Shape{5, 2});
  k::Tensor y = k::range(5, k::i64);
  std::vector<Element> batches;
  for (const Element& e : Dataset::from_tensor_slices({x, y}).batch(2))
    batches.push_back(e);
  REQUIRE(batches.size() == 3);
  CHECK(batches[0][0].shape() == k::Shape{2, 2});
  CHECK(batches[0][0].to_vector<int64_t>() == Ints{0, 1, 2, 3});
  CHECK(batches[0][1].shape() == k::Shape{2});
  CHECK(batches[0][1].to_vector<int64_t>() == Ints{0, 1});
  CHECK(batches[2][0].shape() == k::Shape{1, 2});
  CHECK(batches[2][0].to_vector<int64_t>() == Ints{8, 9});
  CHECK(batches[2][1].shape() == k::Shape{1});

  // Other dtypes, and rows with no elements.
  k::Tensor f = k::constant({{1.0, 2.0}, {3.0, 4.0}, {5.0, 6.0}});
  k::Tensor flags = k::constant({true, false, true});
  k::Tensor empty_rows = k::zeros(k::Shape{3, 0}, k::i32);
  std::vector<Element> typed(Dataset::from_tensor_slices({f, flags, empty_rows}).batch(2).begin(),
                             Dataset::Iterator());
  REQUIRE(typed.size() == 2);
  CHECK(typed[0][0].to_vector<double>() == std::vector<double>{1, 2, 3, 4});
  CHECK(typed[0][1].to_vector<bool>() == std::vector<bool>{true, false});
  CHECK(typed[1][1].to_vector<bool>() == std::vector<bool>{true});
  CHECK(typed[0][2].shape() == k::Shape{2, 0});
  CHECK(typed[0][2].dtype() == k::i32);
  // A tensor with no rows is an empty dataset.
  Dataset none = Dataset::from_tensor_slices(k::zeros(k::Shape{0, 4}));
  CHECK(none.cardinality() == 0);
  CHECK(none.begin() == none.end());
  CHECK(rows(none.batch(2)).empty());

  // Batching batches adds another axis.
  auto nested = std::vector<Element>(range(8).batch(2).batch(2).begin(), Dataset::Iterator());
  REQUIRE(nested.size() == 2);
  CHECK(nested[1][0].shape() == k::Shape{2, 2});
  CHECK(nested[1][0].to_vector<int64_t>() == Ints{4, 5, 6, 7});
}

TEST_CASE("repeat re-iterates its input") {
  CHECK(scalars(range(3).repeat(2)) == Ints{0, 1, 2, 0, 1, 2});
  CHECK(scalars(range(3).repeat(1)) == Ints{0, 1, 2});
  CHECK(scalars(range(3).repeat(0)).empty());
  CHECK(scalars(range(3).repeat().take(7)) == Ints{0, 1, 2, 0, 1, 2, 0});
  CHECK(scalars(range(3).repeat(-1).take(4)) == Ints{0, 1, 2, 0});
  // An empty input repeated forever ends instead of spinning (tf.data does the same).
  CHECK(scalars(range(3).take(0).repeat()).empty());
}

TEST_CASE("take and skip") {
  CHECK(scalars(range(5).take(3)) == Ints{0, 1, 2});
  CHECK(scalars(range(5).take(0)).empty());
  CHECK(scalars(range(5).take(10)) == Ints{0, 1, 2, 3, 4});
  CHECK(scalars(range(5).take(-1)) == Ints{0, 1, 2, 3, 4});
  CHECK(scalars(range(5).skip(2)) == Ints{2, 3, 4});
  CHECK(scalars(range(5).skip(0)) == Ints{0, 1, 2, 3, 4});
  CHECK(scalars(range(5).skip(10)).empty());
  CHECK(scalars(range(5).skip(-1)).empty());
  CHECK(scalars(range(5).skip(1).take(2)) == Ints{1, 2});
  CHECK(scalars(range(5).take(2).skip(1)) == Ints{1});
  CHECK(scalars(range(3).repeat().skip(2).take(4)) == Ints{2, 0, 1, 2});
}

TEST_CASE("zip concatenates the tuples and stops at the shortest input") {
  Dataset a = range(5);
  Dataset b = Dataset::from_tensor_slices(k::constant({10.f, 20.f, 30.f}));
  Dataset c = Dataset::from_tensor_slices({k::range(4, k::i64), k::range(4, k::i64) * int64_t{-1}});
  std::vector<Element> got(Dataset::zip({a, b, c}).begin(), Dataset::Iterator());
  REQUIRE(got.size() == 3);
  for (int64_t i = 0; i < 3; ++i) {
    const Element& e = got[static_cast<size_t>(i)];
    REQUIRE(e.size() == 4);
    CHECK(e[0].item<int64_t>() == i);
    CHECK(e[1].item<float>() == 10.f * static_cast<float>(i + 1));
    CHECK(e[2].item<int64_t>() == i);
    CHECK(e[3].item<int64_t>() == -i);
  }
  // Zipping a dataset with itself iterates it twice, independently.
  std::vector<Element> twice(Dataset::zip({a, a}).begin(), Dataset::Iterator());
  REQUIRE(twice.size() == 5);
  CHECK(twice[4][0].item<int64_t>() == 4);
  CHECK(twice[4][1].item<int64_t>() == 4);
}

TEST_CASE("map replaces each element, possibly changing the tuple") {
  Dataset ds = range(4).map([](const Element& e) -> Element { return {e[0] * int64_t{10}, e[0]}; });
  std::vector<Element> got(ds.begin(), ds.end());
  REQUIRE(got.size() == 4);
  for (int64_t i = 0; i < 4; ++i) {
    const Element& e = got[static_cast<size_t>(i)];
    REQUIRE(e.size() == 2);
    CHECK(e[0].item<int64_t>() == 10 * i);
    CHECK(e[1].item<int64_t>() == i);
  }
  // map then batch, and batch then map (the function sees whole batches).
  CHECK(rows(ds.batch(3)) == std::vector<Ints>{{0, 10, 20}, {30}});
  Dataset sums =
      range(6).batch(2).map([](const Element& e) -> Element { return {k::reduce_sum(e[0])}; });
  CHECK(scalars(sums) == Ints{1, 5, 9});
  // The function runs lazily, once per element reached.
  int calls = 0;
  Dataset counted = range(100).map([&](const Element& e) {
    ++calls;
    return e;
  });
  CHECK(calls == 0);
  CHECK(scalars(counted.take(3)) == Ints{0, 1, 2});
  CHECK(calls == 3);
}

TEST_CASE("shuffle with buffer_size 1 is the identity") {
  CHECK(scalars(range(20).shuffle(1, 7)) == iota(20));
  CHECK(scalars(range(20).shuffle(1)) == iota(20));
}

TEST_CASE("shuffle emits every element exactly once") {
  for (int64_t buffer : {2, 5, 50, 100, 1000}) {
    INFO("buffer_size " << buffer);
    Ints got = scalars(range(100).shuffle(buffer, 3));
    CHECK(got.size() == 100);
    CHECK(is_permutation_of_range(got, 100));
    CHECK(got != iota(100));
  }
  // Without a seed it is still a permutation.
  CHECK(is_permutation_of_range(scalars(range(50).shuffle(50)), 50));
}

TEST_CASE("shuffle keeps tf.data's window: output k is one of the first k + buffer_size inputs") {
  for (int64_t buffer : {1, 2, 3, 10, 64}) {
    for (uint64_t seed : {1u, 2u, 3u}) {
      Ints got = scalars(range(500).shuffle(buffer, seed));
      REQUIRE(is_permutation_of_range(got, 500));
      for (size_t pos = 0; pos < got.size(); ++pos) {
        INFO("buffer " << buffer << " seed " << seed << " position " << pos);
        REQUIRE(got[pos] < static_cast<int64_t>(pos) + buffer);
      }
    }
  }
  // The first output can be any of the first buffer_size inputs (and only those).
  std::set<int64_t> firsts;
  for (uint64_t seed = 0; seed < 200; ++seed)
    firsts.insert(scalars(range(20).shuffle(4, seed))[0]);
  CHECK(firsts == std::set<int64_t>{0, 1, 2, 3});
}

TEST_CASE("shuffle with a full buffer picks every permutation about equally often") {
  std::map<Ints, int> counts;
  constexpr int kRuns = 2400;
  for (uint64_t seed = 0; seed < kRuns; ++seed)
    ++counts[scalars(range(4).shuffle(4, seed))];
  CHECK(counts.size() == 24);
  for (const auto& [perm, n] : counts) {
    INFO("a permutation seen " << n << " times; 100 expected");
    CHECK(n > 55);
    CHECK(n < 145);
  }
}

TEST_CASE("shuffle is deterministic for a seed and reshuffles each iteration") {
  Dataset a = range(30).shuffle(10, 42);
  Dataset b = range(30).shuffle(10, 42);
  Ints a1 = scalars(a), a2 = scalars(a), a3 = scalars(a);
  Ints b1 = scalars(b), b2 = scalars(b), b3 = scalars(b);
  // Same seed: the same sequence of epoch orders.
  CHECK(a1 == b1);
  CHECK(a2 == b2);
  CHECK(a3 == b3);
  // reshuffle_each_iteration: each iteration is a new order.
  CHECK(a1 != a2);
  CHECK(a2 != a3);
  CHECK(is_permutation_of_range(a2, 30));
  // Another seed, another order.
  CHECK(scalars(range(30).shuffle(10, 43)) != a1);

  // Without reshuffling, every iteration repeats the first order (seeded or not).
  Dataset fixed = range(30).shuffle(10, 42, false);
  CHECK(scalars(fixed) == scalars(fixed));
  Dataset fixed_unseeded = range(30).shuffle(30, std::nullopt, false);
  Ints once = scalars(fixed_unseeded);
  CHECK(scalars(fixed_unseeded) == once);
  CHECK(scalars(fixed.repeat(2)) == [&] {
    Ints twice = scalars(fixed);
    Ints again = twice;
    twice.insert(twice.end(), again.begin(), again.end());
    return twice;
  }());
}

TEST_CASE("shuffle, batch and repeat combine as in tf.data") {
  // batch before repeat: every epoch ends with its partial batch.
  CHECK(rows(range(5).batch(2).repeat(2)) ==
        std::vector<Ints>{{0, 1}, {2, 3}, {4}, {0, 1}, {2, 3}, {4}});
  // repeat before batch: batches span the epoch boundary.
  CHECK(rows(range(5).repeat(2).batch(2)) ==
        std::vector<Ints>{{0, 1}, {2, 3}, {4, 0}, {1, 2}, {3, 4}});

  // shuffle → batch → repeat: each epoch is a separate permutation, reshuffled per epoch.
  std::vector<Ints> batches = rows(range(6).shuffle(6, 11).batch(3).repeat(3));
  REQUIRE(batches.size() == 6);
  std::vector<Ints> epochs;
  for (size_t e = 0; e < 3; ++e) {
    Ints epoch = batches[2 * e];
    epoch.insert(epoch.end(), batches[2 * e + 1].begin(), batches[2 * e + 1].end());
    CHECK(is_permutation_of_range(epoch, 6));
    epochs.push_back(epoch);
  }
  CHECK((epochs[0] != epochs[1] || epochs[1] != epochs[2]));
  // The repeated epochs follow the same seeded sequence as iterating the shuffle directly.
  Dataset shuffled = range(6).shuffle(6, 11);
  CHECK(scalars(shuffled) == epochs[0]);
  CHECK(scalars(shuffled) == epochs[1]);
  CHECK(scalars(shuffled) == epochs[2]);

  // repeat → shuffle → batch: the buffer mixes elements across epochs; every value appears
  // exactly twice in total.
  std::vector<Ints> mixed = rows(range(6).repeat(2).shuffle(4, 5).batch(5));
  REQUIRE(mixed.size() == 3);
  CHECK(mixed[0].size() == 5);
  CHECK(mixed[2].size() == 2);
  std::map<int64_t, int> seen;
  for (const Ints& batch : mixed)
    for (int64_t v : batch)
      ++seen[v];
  CHECK(seen == std::map<int64_t, int>{{0, 2}, {1, 2}, {2, 2}, {3, 2}, {4, 2}, {5, 2}});
}

TEST_CASE("cardinality follows tf.data") {
  using k::data::infinite_cardinality;
  Dataset r = range(10);
  CHECK(r.cardinality() == 10);
  CHECK(r.batch(3).cardinality() == 4);
  CHECK(r.batch(3, true).cardinality() == 3);
  CHECK(r.batch(5).cardinality() == 2);
  CHECK(r.repeat(2).cardinality() == 20);
  CHECK(r.repeat(0).cardinality() == 0);
  CHECK(r.repeat().cardinality() == infinite_cardinality);
  CHECK(r.take(0).repeat().cardinality() == 0);
  CHECK(r.take(3).cardinality() == 3);
  CHECK(r.take(20).cardinality() == 10);
  CHECK(r.take(-1).cardinality() == 10);
  CHECK(r.skip(3).cardinality() == 7);
  CHECK(r.skip(20).cardinality() == 0);
  CHECK(r.skip(-1).cardinality() == 0);
  CHECK(r.shuffle(4).cardinality() == 10);
  CHECK(r.map([](const Element& e) { return e; }).cardinality() == 10);
  CHECK(r.prefetch(2).cardinality() == 10);
  CHECK(Dataset::zip({r, range(4)}).cardinality() == 4);
  CHECK(Dataset::zip({r, range(4).repeat()}).cardinality() == 10);
  CHECK(Dataset::zip({r.repeat(), range(4).repeat()}).cardinality() == infinite_cardinality);
  CHECK(r.repeat().take(5).cardinality() == 5);
  CHECK(r.repeat().skip(5).cardinality() == infinite_cardinality);
  CHECK(r.repeat().batch(4).cardinality() == infinite_cardinality);
  CHECK(r.repeat(3).batch(4).cardinality() == 8);
  // The counts agree with what iteration yields.
  for (const Dataset& d : {r.batch(3), r.batch(3, true), r.repeat(2).skip(3), r.take(20)}) {
    CHECK(static_cast<int64_t>(std::distance(d.begin(), d.end())) == d.cardinality());
  }
}

TEST_CASE("prefetch gives the same sequence") {
  Dataset plain = range(200).shuffle(17, 9).batch(7);
  Dataset prefetched = range(200).shuffle(17, 9).batch(7).prefetch(3);
  CHECK(rows(prefetched) == rows(plain));
  CHECK(rows(prefetched) == rows(plain));  // both on their second (reshuffled) iteration
  CHECK(scalars(range(50).prefetch(k::data::autotune)) == iota(50));
  CHECK(scalars(range(50).prefetch(0)) == iota(50));
  CHECK(scalars(range(50).prefetch(1).prefetch(1)) == iota(50));
  CHECK(scalars(range(3).prefetch(2).repeat(2)) == Ints{0, 1, 2, 0, 1, 2});
}

TEST_CASE("an exception from map reaches the consumer at its element, with or without prefetch") {
  auto failing = [](const Element& e) -> Element {
    if (e[0].item<int64_t>() == 5) throw k::ValueError("bad element 5");
    return e;
  };
  for (int64_t buffer : {0, 1, 4}) {
    INFO("prefetch " << buffer);
    Dataset ds = range(10).map(failing).prefetch(buffer);
    Dataset::Iterator it = ds.begin();
    Ints got;
    for (int i = 0; i < 5; ++i)
      got.push_back((*it.next())[0].item<int64_t>());
    CHECK(got == Ints{0, 1, 2, 3, 4});
    CHECK_THROWS_AS(it.next(), k::ValueError);
    // The iteration is over after the error.
    CHECK_FALSE(it.next().has_value());
    CHECK(it == ds.end());
    // A range-for sees the exception too.
    CHECK_THROWS_WITH(
        [&] {
          for (const Element& e : ds)
            (void)e;
        }(),
        Contains("bad element 5"));
  }
  // Through batch: the batch holding element 5 fails.
  Dataset batched = range(10).map(failing).batch(4).prefetch(2);
  Dataset::Iterator it = batched.begin();
  CHECK(it.next()->at(0).to_vector<int64_t>() == Ints{0, 1, 2, 3});
  CHECK_THROWS_WITH(it.next(), Contains("bad element 5"));
}

TEST_CASE("destroying a prefetching iterator early stops its thread") {
  std::atomic<int> calls{0};
  Dataset endless = range(10)
                        .map([&](const Element& e) {
                          ++calls;
                          return e;
                        })
                        .repeat()
                        .prefetch(3);
  {
    Dataset::Iterator it = endless.begin();
    CHECK(it.next()->at(0).item<int64_t>() == 0);
    CHECK(it.next()->at(0).item<int64_t>() == 1);
    // The queue is bounded: the thread waits once 3 elements are ready.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK(calls.load() <= 2 + 3 + 1);
  }  // joins the thread; would hang if it kept waiting to push
  { Dataset::Iterator never_read = endless.begin(); }
  // A slow producer that is mid-element when the iterator goes away.
  Dataset slow = range(1000)
                     .map([](const Element& e) {
                       std::this_thread::sleep_for(std::chrono::milliseconds(2));
                       return e;
                     })
                     .prefetch(2);
  {
    Dataset::Iterator it = slow.begin();
    CHECK(it.next()->at(0).item<int64_t>() == 0);
  }
  // take() releases the input (and its thread) when it ends.
  CHECK(scalars(endless.take(12)) == Ints{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1});
}

TEST_CASE("the iterator is an input iterator over the elements") {
  Dataset ds = range(3);
  Dataset::Iterator it = ds.begin();
  Dataset::Iterator copy = it;
  CHECK(it != ds.end());
  CHECK((*it)[0].item<int64_t>() == 0);
  CHECK(it->size() == 1);
  ++it;
  // Copies share the position.
  CHECK((*copy)[0].item<int64_t>() == 1);
  CHECK(it == copy);
  CHECK(it.next()->at(0).item<int64_t>() == 1);
  it++;
  CHECK(it == ds.end());
  CHECK_FALSE(it.next().has_value());
  CHECK_THROWS_AS(*it, k::ValueError);
  CHECK_FALSE(Dataset::Iterator().next().has_value());
  // Two separate iterations are independent.
  Dataset::Iterator a = ds.begin(), b = ds.begin();
  CHECK(a != b);
  CHECK(a.next()->at(0).item<int64_t>() == 0);
  CHECK(b.next()->at(0).item<int64_t>() == 0);
}

TEST_CASE("bad arguments throw the matching kiln::Error") {
  k::Tensor three = k::constant({1.f, 2.f, 3.f});
  k::Tensor four = k::constant({1, 2, 3, 4});
  CHECK_THROWS_AS(Dataset::from_tensor_slices({three, four}), k::ValueError);
  CHECK_THROWS_WITH(Dataset::from_tensor_slices({three, four}),
                    Contains("tensor 0 has 3 and tensor 1 has 4") && Contains("data_test.cpp"));
  CHECK_THROWS_AS(Dataset::from_tensor_slices(k::constant(1.f)), k::ValueError);
  CHECK_THROWS_WITH(Dataset::from_tensor_slices(k::constant(1.f)), Contains("rank 0"));
  CHECK_THROWS_WITH(Dataset::from_tensor_slices({three, k::constant(2)}),
                    Contains("tensor 1 has rank 0"));
  CHECK_THROWS_AS(Dataset::from_tensor_slices(std::vector<k::Tensor>{}), k::ValueError);
  CHECK_THROWS_WITH(Dataset::from_tensor_slices(k::Tensor()), Contains("undefined"));
  CHECK_THROWS_AS(Dataset::zip({}), k::ValueError);

  Dataset r = range(4);
  CHECK_THROWS_AS(r.batch(0), k::ValueError);
  CHECK_THROWS_WITH(r.batch(0), Contains("batch_size must be greater than zero, got 0"));
  CHECK_THROWS_AS(r.batch(-3, true), k::ValueError);
  CHECK_THROWS_AS(r.shuffle(0), k::ValueError);
  CHECK_THROWS_WITH(r.shuffle(-1, 3), Contains("buffer_size must be greater than zero, got -1"));
  CHECK_THROWS_AS(r.prefetch(-2), k::ValueError);
  CHECK_THROWS_WITH(r.prefetch(-5), Contains("got -5"));
  CHECK_THROWS_AS(r.map(nullptr), k::ValueError);
}

TEST_CASE("a symbolic tensor cannot be sliced into a dataset") {
  auto f = k::function([](const k::Tensor& x) {
    Dataset::from_tensor_slices(x);
    return x;
  });
  CHECK_THROWS_AS(f(k::constant({1.f, 2.f})), k::ValueError);
  CHECK_THROWS_WITH(f(k::constant({1.f, 2.f})), Contains("symbolic"));
}

TEST_CASE("batching elements of different shapes or dtypes fails at that batch") {
  auto ragged = range(6).map([](const Element& e) -> Element {
    int64_t i = e[0].item<int64_t>();
    return {k::zeros(k::Shape{i < 4 ? 2 : 3}), e[0]};
  });
  Dataset batched = ragged.batch(3);
  Dataset::Iterator it = batched.begin();
  CHECK(it.next()->at(0).shape() == k::Shape{3, 2});
  // The second batch is inputs 3, 4, 5: input 4 is the first with shape (3,).
  CHECK_THROWS_AS(it.next(), k::ShapeError);
  CHECK_THROWS_WITH(
      [&] {
        for (const Element& e : batched)
          (void)e;
      }(),
      Contains("component 0") && Contains("element 1 (input element 4)") && Contains("f32[2]") &&
          Contains("f32[3]") && Contains("data_test.cpp"));

  auto mixed = range(4).map([](const Element& e) -> Element {
    return {e[0].item<int64_t>() == 2 ? k::constant(1.0) : k::constant(1.f)};
  });
  CHECK_THROWS_AS(rows(mixed.batch(4)), k::TypeError);
  CHECK_THROWS_WITH(rows(mixed.batch(4)), Contains("element 2"));

  auto tuples = range(4).map([](const Element& e) -> Element {
    if (e[0].item<int64_t>() == 1) return {e[0], e[0]};
    return e;
  });
  CHECK_THROWS_AS(rows(tuples.batch(2)), k::ValueError);
  CHECK_THROWS_WITH(rows(tuples.batch(2)), Contains("numbers of components"));
}

// Not a test: times one epoch of the 60000×28×28 f32 shuffle(10000).batch(128) pipeline.
// Run with: data_test "[.timing]" -s
TEST_CASE("timing: one epoch of a 60000x28x28 dataset through shuffle(10000).batch(128)",
          "[.timing]") {
  k::Tensor images = k::random_uniform(k::Shape{60000, 28, 28}, 0.0, 1.0, 1);
  k::Tensor labels = k::cast(k::random_uniform(k::Shape{60000}, 0.0, 10.0, 2), k::i32);
  for (int64_t prefetch : {0, 2}) {
    Dataset ds = Dataset::from_tensor_slices({images, labels})
                     .shuffle(10000, 0)
                     .batch(128)
                     .prefetch(prefetch);
    std::vector<double> times;
    for (int epoch = 0; epoch < 5; ++epoch) {
      auto start = std::chrono::steady_clock::now();
      int64_t batches = 0;
      double checksum = 0;
      for (const Element& e : ds) {
        ++batches;
        checksum += e[0].host().data<float>()[0];
      }
      times.push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      CHECK(batches == 469);
      CHECK(checksum > 0);
    }
    std::sort(times.begin(), times.end());
    WARN("prefetch(" << prefetch << "): median epoch " << times[2] * 1e3 << " ms (min "
                     << times[0] * 1e3 << ", max " << times[4] * 1e3 << ")");
  }
}
