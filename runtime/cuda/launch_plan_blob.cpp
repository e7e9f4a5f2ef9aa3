#include "kiln/runtime/cuda/launch_plan_blob.h"

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

namespace kiln::runtime::cuda {

namespace {

// A field added to one of these structs must be written and read below (then update the sizes).
static_assert(sizeof(GemmDesc) == 80, "GemmDesc changed: serialise the new field");
static_assert(sizeof(LaunchArg) == 32, "LaunchArg changed: serialise the new field");
static_assert(sizeof(LaunchLoop) == 16, "LaunchLoop changed: serialise the new field");
static_assert(sizeof(GemmCall) == 280, "GemmCall changed: serialise the new field");
static_assert(sizeof(KernelLaunch) == 424, "KernelLaunch changed: serialise the new field");
static_assert(sizeof(LaunchPlan) == 32, "LaunchPlan changed: serialise the new field");

constexpr char kMagic[8] = {'K', 'I', 'L', 'N', 'P', 'L', 'A', 'N'};
// 2: scan loops (LaunchArg::step_bytes, KernelLaunch::loop).
constexpr uint32_t kVersion = 2;
// Far more than any compiled function has; a bound so a corrupt count cannot ask for the moon.
constexpr uint32_t kMaxRank = 64;

class Writer {
 public:
  template <class T>
  void put(T value) {
    static_assert(std::is_integral_v<T>);
    using U = std::make_unsigned_t<T>;
    U u = static_cast<U>(value);
    for (std::size_t i = 0; i < sizeof(T); ++i)
      out_ += static_cast<char>((u >> (8 * i)) & 0xff);
  }
  void str(const std::string& s) {
    put(static_cast<uint32_t>(s.size()));
    out_ += s;
  }
  void i64s(const std::vector<int64_t>& v) {
    put(static_cast<uint32_t>(v.size()));
    for (int64_t x : v)
      put(x);
  }
  void arg(const LaunchArg& a) {
    put(static_cast<uint8_t>(a.kind));
    put(a.index);
    put(a.offset);
    put(a.step_bytes);
  }
  void raw(const char* data, std::size_t n) { out_.append(data, n); }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  Reader(const void* data, std::size_t bytes)
      : p_(static_cast<const unsigned char*>(data)), left_(bytes) {}

  template <class T>
  T get(const char* what) {
    static_assert(std::is_integral_v<T>);
    need(sizeof(T), what);
    using U = std::make_unsigned_t<T>;
    U u = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i)
      u = static_cast<U>(u | (static_cast<U>(p_[i]) << (8 * i)));
    p_ += sizeof(T);
    left_ -= sizeof(T);
    return static_cast<T>(u);
  }
  // A value of an enum whose values are 0 ... last.
  template <class E>
  E enumerated(int last, const char* what) {
    const uint8_t v = get<uint8_t>(what);
    if (v > last) bad(std::string(what) + " " + std::to_string(v) + " is not a known value");
    return static_cast<E>(v);
  }
  bool flag(const char* what) { return enumerated<uint8_t>(1, what) != 0; }
  std::string str(const char* what) {
    const uint32_t n = get<uint32_t>(what);
    need(n, what);
    std::string s(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    left_ -= n;
    return s;
  }
  std::vector<int64_t> i64s(const char* what) {
    const uint32_t n = get<uint32_t>(what);
    if (n > kMaxRank) bad(std::string(what) + ": " + std::to_string(n) + " dimensions");
    std::vector<int64_t> v(n);
    for (int64_t& x : v)
      x = get<int64_t>(what);
    return v;
  }
  LaunchArg arg(const char* what) {
    LaunchArg a;
    a.kind = enumerated<LaunchArg::Kind>(static_cast<int>(LaunchArg::Kind::status), what);
    a.index = get<int64_t>(what);
    a.offset = get<int64_t>(what);
    a.step_bytes = get<int64_t>(what);
    return a;
  }
  void expect_magic() {
    need(sizeof kMagic, "the header");
    if (std::memcmp(p_, kMagic, sizeof kMagic) != 0) bad("it does not start with KILNPLAN");
    p_ += sizeof kMagic;
    left_ -= sizeof kMagic;
  }
  std::size_t left() const { return left_; }
  [[noreturn]] static void bad(const std::string& why) {
    throw std::invalid_argument("malformed launch plan: " + why);
  }

 private:
  void need(std::size_t n, const char* what) const {
    if (n > left_) bad(std::string("it ends inside ") + what);
  }

  const unsigned char* p_;
  std::size_t left_;
};

void write_gemm(Writer& w, const GemmCall& g) {
  const GemmDesc& d = g.desc;
  w.put(static_cast<uint8_t>(d.type));
  w.put(d.m);
  w.put(d.n);
  w.put(d.k);
  w.put(static_cast<uint8_t>(d.transpose_a));
  w.put(static_cast<uint8_t>(d.transpose_b));
  w.put(static_cast<uint8_t>(d.epilogue));
  w.put(static_cast<uint8_t>(d.tf32));
  w.put(d.lda);
  w.put(d.ldb);
  w.put(d.ldc);
  w.put(d.alignment);
  w.arg(g.a);
  w.arg(g.b);
  w.arg(g.d);
  w.arg(g.bias);
  w.i64s(g.batch_shape);
  w.i64s(g.a_batch_strides);
  w.i64s(g.b_batch_strides);
}

GemmCall read_gemm(Reader& r) {
  GemmCall g;
  GemmDesc& d = g.desc;
  d.type = r.enumerated<GemmType>(static_cast<int>(GemmType::f64), "a GEMM's type");
  d.m = r.get<int64_t>("a GEMM's m");
  d.n = r.get<int64_t>("a GEMM's n");
  d.k = r.get<int64_t>("a GEMM's k");
  d.transpose_a = r.flag("a GEMM's transpose_a");
  d.transpose_b = r.flag("a GEMM's transpose_b");
  d.epilogue =
      r.enumerated<GemmEpilogue>(static_cast<int>(GemmEpilogue::bias_relu), "a GEMM's epilogue");
  d.tf32 = r.flag("a GEMM's tf32");
  d.lda = r.get<int64_t>("a GEMM's lda");
  d.ldb = r.get<int64_t>("a GEMM's ldb");
  d.ldc = r.get<int64_t>("a GEMM's ldc");
  d.alignment = r.get<uint32_t>("a GEMM's alignment");
  if (d.m < 0 || d.n < 0 || d.k < 0) Reader::bad("a GEMM of negative size");
  g.a = r.arg("a GEMM's A");
  g.b = r.arg("a GEMM's B");
  g.d = r.arg("a GEMM's D");
  g.bias = r.arg("a GEMM's bias");
  g.batch_shape = r.i64s("a GEMM's batch shape");
  g.a_batch_strides = r.i64s("a GEMM's A batch strides");
  g.b_batch_strides = r.i64s("a GEMM's B batch strides");
  return g;
}

}  // namespace

std::string serialize_launch_plan(const LaunchPlan& plan) {
  Writer w;
  w.raw(kMagic, sizeof kMagic);
  w.put(kVersion);
  w.put(static_cast<uint64_t>(plan.workspace_bytes));
  w.put(static_cast<uint32_t>(plan.launches.size()));
  for (const KernelLaunch& l : plan.launches) {
    w.str(l.symbol);
    w.str(l.label);
    w.put(l.items);
    w.put(l.grid);
    w.put(static_cast<int32_t>(l.block));
    w.put(static_cast<uint32_t>(l.args.size()));
    for (const LaunchArg& a : l.args)
      w.arg(a);
    w.put(static_cast<uint8_t>(l.gemm.has_value()));
    if (l.gemm) write_gemm(w, *l.gemm);
    w.put(static_cast<uint8_t>(l.loop.has_value()));
    if (l.loop) {
      w.put(l.loop->trips);
      w.put(l.loop->count);
    }
  }
  return w.take();
}

LaunchPlan parse_launch_plan(const void* data, std::size_t bytes) {
  if (data == nullptr) Reader::bad("no data");
  Reader r(data, bytes);
  r.expect_magic();
  const uint32_t version = r.get<uint32_t>("the header");
  if (version != kVersion) {
    Reader::bad("version " + std::to_string(version) + ", this runtime reads version " +
                std::to_string(kVersion) + " (rebuild the library with this version of Kiln)");
  }
  LaunchPlan plan;
  const uint64_t workspace = r.get<uint64_t>("the header");
  if (workspace > (uint64_t{1} << 48)) Reader::bad("a workspace of " + std::to_string(workspace));
  plan.workspace_bytes = static_cast<std::size_t>(workspace);
  const uint32_t count = r.get<uint32_t>("the header");
  // Each launch takes at least 34 bytes: a count beyond what is left is corrupt.
  if (count > r.left() / 34) Reader::bad(std::to_string(count) + " launches in too few bytes");
  plan.launches.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    KernelLaunch l;
    l.symbol = r.str("a launch's symbol");
    l.label = r.str("a launch's label");
    l.items = r.get<int64_t>("a launch's items");
    l.grid = r.get<int64_t>("a launch's grid");
    l.block = r.get<int32_t>("a launch's block");
    const uint32_t args = r.get<uint32_t>("a launch's arguments");
    if (args > r.left() / 25) Reader::bad(std::to_string(args) + " arguments in too few bytes");
    for (uint32_t a = 0; a < args; ++a)
      l.args.push_back(r.arg("a launch's argument"));
    if (r.flag("a launch's GEMM flag")) l.gemm = read_gemm(r);
    if (r.flag("a launch's loop flag")) {
      LaunchLoop loop;
      loop.trips = r.get<int64_t>("a launch's loop");
      loop.count = r.get<int64_t>("a launch's loop");
      l.loop = loop;
    }
    plan.launches.push_back(std::move(l));
  }
  if (r.left() != 0) Reader::bad(std::to_string(r.left()) + " bytes after the last launch");
  return plan;
}

}  // namespace kiln::runtime::cuda
