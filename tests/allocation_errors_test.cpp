// Tensors, workspaces and buffers too large for the machine are ResourceErrors that name the
// size (elements and bytes), the shape and dtype and the user's line, eagerly, in compiled
// functions and in the AOT runtime; never std::bad_alloc, and never the OOM killer.
//
// What each case reaches: the 1 TiB to 16 TiB sizes are above RAM + swap on any machine here and
// within the 47-bit address space, so within_machine_memory (ir/host_tensor.cpp,
// runtime/kiln_rt.cpp) refuses them; under the kernel's default overcommit heuristic
// (vm.overcommit_memory=0) or strict accounting (2) aligned_alloc would refuse them as well, so
// they show the message, not that branch. The case "more than RAM plus swap is refused before
// the kernel is asked" is the one that fails without the branch where the kernel always
// overcommits (1). Sizes whose byte count overflows 64 bits, or that rounding up would wrap
// (SIZE_MAX), or beyond the address space (1 PiB) fail before or regardless of that branch.
#include <catch2/catch.hpp>

#include <fmt/format.h>
#include <kiln/kiln.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#ifdef __linux__
#include <sys/sysinfo.h>
#endif

#include "aot_test_util.h"
#include "error_test_util.h"
#include "file_test_util.h"
#include "kiln/frontend/core/compile.h"
#include "kiln/ir/buffer_pool.h"
#include "kiln/ir/host_tensor.h"
#include "kiln/ir/interpreter.h"
#include "kiln/runtime/kiln_rt.h"

namespace k = kiln;
using k::testing::check_message_at;
using k::testing::error_of;

namespace {
constexpr int64_t kHuge = int64_t{1} << 40;  // 4 TiB of f32, more than any machine here

#ifdef __linux__
// RAM plus swap, as within_machine_memory counts them.
size_t machine_memory() {
  struct sysinfo info;
  REQUIRE(::sysinfo(&info) == 0);
  return (size_t{info.totalram} + info.totalswap) * info.mem_unit;
}

// vm.overcommit_memory: 0 heuristic, 1 always, 2 strict; -1 if unreadable.
int overcommit_mode() {
  std::ifstream in("/proc/sys/vm/overcommit_memory");
  int mode = -1;
  in >> mode;
  return mode;
}
#endif
}  // namespace

TEST_CASE("k::zeros of 2^40 elements is a ResourceError naming the size and the line",
          "[errors][memory]") {
  int line = __LINE__ + 1;
  std::string msg = error_of<k::ResourceError>([] { k::zeros({kHuge}); });
  check_message_at(msg,
                   {"fill: cannot allocate a tensor of shape (1099511627776,) and dtype float32",
                    "1099511627776 elements", "4 TiB (4398046511104 bytes)"},
                   __FILE__, line);

  // Other dtypes and creation ops say the same, with their own op and byte count.
  line = __LINE__ + 1;
  msg = error_of<k::ResourceError>([] { k::ones({kHuge, 2}, k::DType::i64); });
  check_message_at(msg,
                   {"fill:", "shape (1099511627776, 2) and dtype int64", "2199023255552 elements",
                    "16 TiB (17592186044416 bytes)"},
                   __FILE__, line);
  msg = error_of<k::ResourceError>([] { k::random_uniform({kHuge}, 0.0, 1.0, 1); });
  CHECK_THAT(msg, Catch::StartsWith("random_uniform: cannot allocate"));
}

TEST_CASE("an op whose result is too large is a ResourceError naming the op and operands",
          "[errors][memory]") {
  k::Tensor x = k::constant({1.f, 2.f});
  int line = __LINE__ + 1;
  std::string msg = error_of<k::ResourceError>([&] { k::broadcast_to(x, {kHuge, 2}); });
  check_message_at(msg,
                   {"broadcast_to: cannot allocate", "shape (1099511627776, 2)",
                    "2199023255552 elements", "operands: f32[2]"},
                   __FILE__, line);
  // The failure leaves everything usable.
  CHECK(k::zeros({3}).to_vector<float>() == std::vector<float>{0, 0, 0});
}

TEST_CASE("HostTensor throws ResourceError, never std::bad_alloc", "[errors][memory]") {
  using k::ir::HostTensor;
  // 8 TiB: refused for the machine's memory.
  CHECK_THROWS_AS(HostTensor(k::DType::f64, k::Shape{kHuge}), k::ResourceError);
  // 2^76 bytes: refused before any allocation, as its byte count overflows 64 bits.
  CHECK_THROWS_WITH(HostTensor::uninitialized({k::DType::u8, k::Shape{kHuge, kHuge / 16}}),
                    Catch::Contains("shape (1099511627776, 68719476736) and dtype uint8") &&
                        Catch::Contains("its size overflows 64 bits"));
  CHECK(k::ir::describe_bytes(12) == "12 bytes");
  CHECK(k::ir::describe_bytes(1536) == "1.5 KiB (1536 bytes)");
  CHECK(k::ir::describe_bytes(size_t{3} << 30) == "3 GiB (3221225472 bytes)");
}

TEST_CASE("checked_nbytes is the byte size, or nullopt past int64; empty shapes never overflow",
          "[errors][memory]") {
  using k::ir::TensorType;
  constexpr int64_t kMax = INT64_MAX;
  CHECK(TensorType{k::DType::f32, k::Shape{2, 3}}.checked_nbytes() == 24);
  CHECK(TensorType{k::DType::f64, k::Shape{}}.checked_nbytes() == 8);
  CHECK(TensorType{k::DType::u8, k::Shape{kMax}}.checked_nbytes() == kMax);
  CHECK(TensorType{k::DType::f32, k::Shape{kMax / 4}}.checked_nbytes() == kMax / 4 * 4);
  CHECK_FALSE(TensorType{k::DType::f32, k::Shape{kMax / 4 + 1}}.checked_nbytes());
  CHECK_FALSE(TensorType{k::DType::u8, k::Shape{kHuge, kHuge / 16}}.checked_nbytes());
  // A zero dimension anywhere makes the tensor empty, even after dimensions that overflow.
  CHECK(TensorType{k::DType::f64, k::Shape{kMax, kMax, 0}}.checked_nbytes() == 0);
  CHECK(TensorType{k::DType::f64, k::Shape{0, kMax, kMax}}.checked_nbytes() == 0);
  CHECK(k::Shape{kMax, kMax, 0}.num_elements() == 0);
  k::ir::HostTensor empty(TensorType{k::DType::f32, k::Shape{0, kHuge, kHuge}});
  CHECK(empty.nbytes() == 0);
}

#ifdef __linux__
TEST_CASE("more than RAM plus swap is refused before the kernel is asked", "[errors][memory]") {
  // RAM + swap + 1 GiB, well within the address space. Where the kernel always overcommits
  // (vm.overcommit_memory=1) aligned_alloc hands this out, and a zero fill then touches every
  // page until the OOM killer ends the process: only within_machine_memory turns it into an
  // error there. (Under modes 0 and 2 the kernel would refuse it too.) Uninitialized tensors
  // and kiln_rt_alloc touch nothing, so even without the branch this case fails, not crashes.
  const size_t bytes = machine_memory() + (size_t{1} << 30);
  INFO("vm.overcommit_memory = " << overcommit_mode() << ", asking for " << bytes << " bytes");
  std::string msg = error_of<k::ResourceError>([&] {
    k::ir::HostTensor::uninitialized({k::DType::u8, k::Shape{static_cast<int64_t>(bytes)}});
  });
  CHECK_THAT(msg, Catch::Contains(fmt::format("{} elements", bytes)) &&
                      Catch::Contains(fmt::format("({} bytes), more memory than this machine can "
                                                  "give",
                                                  bytes)));
  void* p = kiln_rt_alloc(bytes);
  CHECK(p == nullptr);
  kiln_rt_free(p);
}
#endif

TEST_CASE("the interpreter names the op whose result it cannot allocate", "[errors][memory]") {
  k::ir::Attrs attrs;
  attrs.set_ints("shape", {kHuge}).set_dtype("dtype", k::DType::f32).set_float("value", 0.0);
  std::vector<k::ir::TensorType> types{{k::DType::f32, k::Shape{kHuge}}};
  std::string msg =
      error_of<k::ResourceError>([&] { k::ir::run_op(k::ir::Op::fill, {}, attrs, types); });
  CHECK_THAT(msg, Catch::StartsWith("fill: cannot allocate"));
}

TEST_CASE("a compiled function's result too large to allocate is a ResourceError at its line",
          "[errors][memory]") {
  int line = __LINE__ + 1;
  auto f = k::function([](const k::Tensor& x) { return k::add(x, k::zeros({kHuge})); }, "huge");
  std::string msg = error_of<k::ResourceError>([&] { f(k::constant(1.f)); });
  check_message_at(msg,
                   {"@huge: result 0: cannot allocate a tensor of shape (1099511627776,)",
                    "4 TiB (4398046511104 bytes)"},
                   __FILE__, line);
}

TEST_CASE("a compiled function's workspace too large to allocate is a ResourceError",
          "[errors][memory]") {
  // The random tensor is an intermediate in the workspace (1 TiB); only its sum leaves.
  auto f = k::function(
      [](const k::Tensor& x) {
        return k::reduce_sum(k::random_uniform({int64_t{1} << 38}, 0.0, 1.0, 7)) + x;
      },
      "big_workspace");
  std::string msg = error_of<k::ResourceError>([&] { f(k::constant(1.f)); });
  INFO(msg);
  CHECK_THAT(msg, Catch::Contains("@big_workspace: cannot allocate the 1 TiB (10995116") &&
                      Catch::Contains("bytes) workspace"));
  // A small call of another function still runs.
  auto g = k::function([](const k::Tensor& x) { return x * 2.f; });
  CHECK(g(k::constant(2.f)).item<float>() == 4.f);
}

TEST_CASE("kiln_rt_alloc returns NULL for more than the machine holds", "[errors][memory]") {
  // 1 PiB: beyond RAM + swap and beyond the 47-bit address space, refused either way.
  CHECK(kiln_rt_alloc(size_t{1} << 50) == nullptr);
  // Rounding up to the 64-byte alignment would wrap around: refused before anything else.
  CHECK(kiln_rt_alloc(SIZE_MAX) == nullptr);
  void* p = kiln_rt_alloc(100);
  CHECK(p != nullptr);
  kiln_rt_free(p);
}

TEST_CASE("an AOT library whose workspace cannot be allocated fails create with the size",
          "[errors][memory][aot]") {
  k::testing::TempDir dir;
  auto f = k::function(
      [](const k::Tensor& x) {
        return k::reduce_sum(k::random_uniform({int64_t{1} << 38}, 0.0, 1.0, 7)) + x;
      },
      "huge_ws");
  const k::aot::Library lib = k::aot::compile(f, {k::TensorSpec({}, k::f32)},
                                              {.name = "huge_ws", .out_dir = dir.path.string()});
  k::testing::AotLibrary so(lib.library, "huge_ws");
  void* model = so.fn<void*()>("create")();
  CHECK(model == nullptr);
  CHECK_THAT(so.last_error(nullptr), Catch::StartsWith("huge_ws: cannot allocate 10995116") &&
                                         Catch::EndsWith("bytes for the workspace: out of memory"));
}

TEST_CASE("large tensor buffers are reused, and a reused zeroed buffer is zero", "[memory]") {
  using k::ir::HostTensor;
  const k::TensorType type{k::DType::f32, k::Shape{1024, 256}};  // 1 MiB: kept when freed
  const void* first = nullptr;
  {
    HostTensor t = HostTensor::uninitialized(type);
    first = t.raw();
    std::fill(t.data<float>(), t.data<float>() + t.num_elements(), 7.f);
  }
  HostTensor zeroed(type);
  const float* z = zeroed.data<float>();
  CHECK(std::all_of(z, z + zeroed.num_elements(), [](float v) { return v == 0.f; }));
  // Sanitizer builds (and KILN_BUFFER_POOL_BYTES=0) free every block, to see uses after free.
  if (k::ir::detail::buffer_pool_stats().enabled)
    CHECK(static_cast<const void*>(zeroed.raw()) == first);  // the freed block came back
  // Blocks of another size are not mixed up with it.
  HostTensor other = HostTensor::uninitialized({k::DType::f32, k::Shape{1024, 300}});
  CHECK(static_cast<const void*>(other.raw()) != static_cast<const void*>(zeroed.raw()));
}

namespace {
constexpr size_t kMiB = size_t{1} << 20;
const k::TensorType k4MiB{k::DType::f32, k::Shape{1024, 1024}};

// Empties the pool and gives it `bytes` for one test case, then puts the limit back: cases run
// in one process when the binary runs whole, and earlier ones leave blocks behind.
struct PoolLimit {
  explicit PoolLimit(size_t bytes) {
    previous = k::ir::detail::set_buffer_pool_limit(0);
    k::ir::detail::set_buffer_pool_limit(bytes);
  }
  ~PoolLimit() { k::ir::detail::set_buffer_pool_limit(previous); }
  PoolLimit(const PoolLimit&) = delete;
  PoolLimit& operator=(const PoolLimit&) = delete;
  size_t previous = 0;
};

const void* address(const k::ir::HostTensor& t) {
  return t.raw();
}

k::ir::HostTensor filled(const k::TensorType& type, float value) {
  auto t = k::ir::HostTensor::uninitialized(type);
  std::fill(t.data<float>(), t.data<float>() + t.num_elements(), value);
  return t;
}

bool all_equal(const k::ir::HostTensor& t, float value) {
  const float* p = t.data<float>();
  return std::all_of(p, p + t.num_elements(), [&](float v) { return v == value; });
}
}  // namespace

TEST_CASE("the buffer pool hands a freed block to the next tensor of its size, never to two",
          "[memory]") {
  using k::ir::HostTensor;
  using k::ir::detail::buffer_pool_stats;
  PoolLimit limit(64 * kMiB);
  const k::ir::detail::BufferPoolStats start = buffer_pool_stats();
  if (!start.enabled) {  // ASan and TSan builds: no pool, every block is freed
    CHECK(start.limit_bytes == 0);
    HostTensor a = filled(k4MiB, 1.f), b = filled(k4MiB, 2.f);
    CHECK((all_equal(a, 1.f) && all_equal(b, 2.f)));
    return;
  }
  CHECK(start.limit_bytes == 64 * kMiB);
  CHECK(start.held_bytes == 0);
  const void* first = nullptr;
  {
    HostTensor t = filled(k4MiB, 3.f);
    first = address(t);
  }
  k::ir::detail::BufferPoolStats s = buffer_pool_stats();
  CHECK(s.held_bytes == 4 * kMiB);
  CHECK(s.held_blocks == 1);
  CHECK(s.misses == start.misses + 1);

  // Two live tensors of the same size: the first gets the kept block, the second a new one.
  HostTensor a = filled(k4MiB, 1.f);
  HostTensor b = filled(k4MiB, 2.f);
  CHECK(address(a) == first);
  CHECK(address(b) != address(a));
  CHECK(all_equal(a, 1.f));
  CHECK(all_equal(b, 2.f));
  s = buffer_pool_stats();
  CHECK(s.hits == start.hits + 1);
  CHECK(s.misses == start.misses + 2);
  CHECK(s.held_bytes == 0);

  // Both come back, and go out again to two tensors, the most recently freed first.
  const void* a_block = address(a);
  const void* b_block = address(b);
  a = HostTensor();
  b = HostTensor();
  CHECK(buffer_pool_stats().held_bytes == 8 * kMiB);
  HostTensor c = filled(k4MiB, 5.f);
  HostTensor d(k4MiB);  // zeroed, from a kept block that held 1s
  CHECK(address(c) == b_block);
  CHECK(address(d) == a_block);
  CHECK(all_equal(c, 5.f));
  CHECK(all_equal(d, 0.f));
  s = buffer_pool_stats();
  CHECK(s.hits == start.hits + 3);
  CHECK(s.held_bytes == 0);
  CHECK(s.held_blocks == 0);

  // A block shared by two handles goes back only when the last one dies.
  HostTensor view = c.reshaped(k::Shape{1024 * 1024});
  c = HostTensor();
  CHECK(buffer_pool_stats().held_bytes == 0);
  HostTensor e = filled(k4MiB, 6.f);
  CHECK(address(e) != address(view));
  CHECK(all_equal(view.reshaped(k::Shape{1024, 1024}), 5.f));
}

TEST_CASE("the buffer pool keeps at most its limit, dropping the least recently freed blocks",
          "[memory]") {
  using k::ir::HostTensor;
  using k::ir::detail::buffer_pool_stats;
  PoolLimit limit(10 * kMiB);
  const k::ir::detail::BufferPoolStats start = buffer_pool_stats();
  if (!start.enabled) return;  // ASan and TSan builds: no pool (the case above checks that)
  HostTensor a = filled(k4MiB, 1.f), b = filled(k4MiB, 2.f), c = filled(k4MiB, 3.f);
  const void* b_block = address(b);
  const void* c_block = address(c);
  a = HostTensor();
  b = HostTensor();
  CHECK(buffer_pool_stats().held_bytes == 8 * kMiB);
  c = HostTensor();  // 12 MiB would be over the limit: a's block, the oldest, is freed
  k::ir::detail::BufferPoolStats s = buffer_pool_stats();
  CHECK(s.held_bytes == 8 * kMiB);
  CHECK(s.held_blocks == 2);
  CHECK(s.evictions == start.evictions + 1);

  // A block larger than the limit is freed at once.
  { HostTensor big = filled({k::DType::f32, k::Shape{4 * 1024, 1024}}, 4.f); }  // 16 MiB
  s = buffer_pool_stats();
  CHECK(s.held_bytes == 8 * kMiB);
  CHECK(s.evictions == start.evictions + 2);

  // What is kept is c's block and b's, newest first; a third tensor gets a new block.
  HostTensor x = filled(k4MiB, 7.f), y = filled(k4MiB, 8.f), z = filled(k4MiB, 9.f);
  CHECK(address(x) == c_block);
  CHECK(address(y) == b_block);
  CHECK(address(z) != c_block);
  CHECK(address(z) != b_block);
  CHECK((all_equal(x, 7.f) && all_equal(y, 8.f) && all_equal(z, 9.f)));
  s = buffer_pool_stats();
  CHECK(s.hits == start.hits + 2);
  CHECK(s.held_bytes == 0);

  // Many frees of mixed sizes never hold more than the limit.
  {
    std::vector<HostTensor> live;
    for (int64_t rows : {64, 256, 1024, 512, 1024, 2048, 128, 1024, 768})
      live.push_back(filled({k::DType::f32, k::Shape{rows, 1024}}, 1.f));
    while (!live.empty()) {
      live.pop_back();
      CHECK(buffer_pool_stats().held_bytes <= 10 * kMiB);
    }
  }
  CHECK(buffer_pool_stats().held_bytes > 0);

  // Lowering the limit frees down to it; 0 empties the pool and turns it off.
  x = HostTensor();
  CHECK(k::ir::detail::set_buffer_pool_limit(4 * kMiB) == 10 * kMiB);
  s = buffer_pool_stats();
  CHECK(s.held_bytes <= 4 * kMiB);
  CHECK(s.limit_bytes == 4 * kMiB);
  k::ir::detail::set_buffer_pool_limit(0);
  s = buffer_pool_stats();
  CHECK_FALSE(s.enabled);
  CHECK(s.held_bytes == 0);
  CHECK(s.held_blocks == 0);
  y = HostTensor();
  CHECK(buffer_pool_stats().held_bytes == 0);  // freed, not kept
  HostTensor w = filled(k4MiB, 2.f);
  CHECK(buffer_pool_stats().hits == s.hits);
  CHECK(all_equal(w, 2.f));
}

TEST_CASE("KILN_BUFFER_POOL_BYTES is a number of bytes with an optional K, M or G", "[memory]") {
  using k::ir::detail::parse_buffer_pool_bytes;
  CHECK(parse_buffer_pool_bytes("0") == size_t{0});
  CHECK(parse_buffer_pool_bytes("1048576") == size_t{1} << 20);
  CHECK(parse_buffer_pool_bytes("64M") == size_t{64} << 20);
  CHECK(parse_buffer_pool_bytes(" 1g ") == size_t{1} << 30);
  CHECK(parse_buffer_pool_bytes("512KiB") == size_t{512} << 10);
  CHECK(parse_buffer_pool_bytes("2GB") == size_t{2} << 30);
  CHECK(parse_buffer_pool_bytes("100b") == size_t{100});
  for (const char* bad : {"", " ", "M", "-1", "1.5G", "12X", "64 M", "1iB", "64MBs",
                          "99999999999999999999999", "17179869184G"})
    CHECK_FALSE(parse_buffer_pool_bytes(bad).has_value());
}
