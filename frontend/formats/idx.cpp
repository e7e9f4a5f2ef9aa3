#include "kiln/frontend/formats/idx.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

#include "kiln/frontend/core/op_error.h"
#include "kiln/frontend/formats/atomic_file.h"

namespace kiln::idx {

namespace {

struct ElementType {
  uint8_t code;
  std::string_view name;
  size_t size;  // bytes per element in the file
  DType dtype;  // what Kiln reads it as
};

constexpr ElementType kTypes[] = {
    {0x08, "ubyte", 1, DType::u8}, {0x09, "byte", 1, DType::i32},  {0x0B, "short", 2, DType::i32},
    {0x0C, "int", 4, DType::i32},  {0x0D, "float", 4, DType::f32}, {0x0E, "double", 8, DType::f64},
};

const ElementType* find_type(uint8_t code) {
  for (const ElementType& t : kTypes) {
    if (t.code == code) return &t;
  }
  return nullptr;
}

const ElementType& type_named(std::string_view name) {
  for (const ElementType& t : kTypes) {
    if (t.name == name) return t;
  }
  KILN_CHECK(false, "unknown IDX type name");
}

// A deflate stream expands at most 1032:1, so a gzip file of n bytes holds less than this.
uint64_t max_inflated_size(uint64_t compressed) {
  return compressed > UINT64_MAX / 1032 - 1024 ? UINT64_MAX : compressed * 1032 + 1024;
}

// Sequential reads from a plain or gzip-compressed file; errors throw IOError naming the path.
class Source {
 public:
  Source(const std::string& path, const Loc& loc) : path_(path), loc_(loc) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) fail(std::strerror(errno));
    struct stat st;
    if (::fstat(fd_, &st) != 0) fail(std::strerror(errno));
    if (S_ISDIR(st.st_mode)) fail("it is a directory");
    file_size_ = static_cast<uint64_t>(st.st_size);
    unsigned char magic[2] = {0, 0};
    gzip_ = ::pread(fd_, magic, 2, 0) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    if (gzip_) {
      gz_ = ::gzdopen(fd_, "rb");
      if (gz_ == nullptr) fail("cannot open the gzip stream");
      fd_ = -1;  // owned by gz_ now
      ::gzbuffer(gz_, 1 << 18);
    }
  }
  ~Source() {
    if (gz_ != nullptr) ::gzclose(gz_);
    if (fd_ >= 0) ::close(fd_);
  }
  Source(const Source&) = delete;
  Source& operator=(const Source&) = delete;

  [[noreturn]] void fail(std::string_view what) const {
    detail::raise<IOError>("idx.read", {},
                           fmt::format("cannot read IDX file '{}': {}", path_, what), loc_);
  }

  // Reads up to n bytes; returns fewer only at the end of the (decompressed) stream.
  size_t read(void* dst, size_t n) {
    auto* out = static_cast<char*>(dst);
    size_t done = 0;
    while (done < n) {
      size_t want = std::min<size_t>(n - done, size_t{1} << 30);
      ssize_t got;
      if (gz_ != nullptr) {
        got = ::gzread(gz_, out + done, static_cast<unsigned>(want));
        if (got < 0) {
          int code = Z_OK;
          const char* message = ::gzerror(gz_, &code);
          fail(fmt::format("gzip error: {}", code == Z_ERRNO ? std::strerror(errno) : message));
        }
      } else {
        got = ::read(fd_, out + done, want);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) fail(std::strerror(errno));
      }
      if (got == 0) break;
      done += static_cast<size_t>(got);
    }
    return done;
  }

  // Reads and drops the rest of the stream, at most `limit` bytes; returns how many there were.
  uint64_t skip_rest(uint64_t limit) {
    char scratch[1 << 16];
    uint64_t total = 0;
    while (total < limit) {
      size_t got = read(scratch, std::min<uint64_t>(sizeof scratch, limit - total));
      if (got == 0) break;
      total += got;
    }
    return total;
  }

  // Why a gzip stream ended before its data did, or "" when it ended cleanly.
  std::string early_end_note() const {
    if (gz_ == nullptr) return "";
    int code = Z_OK;
    const char* message = ::gzerror(gz_, &code);
    return code == Z_BUF_ERROR ? fmt::format(" (gzip: {})", message) : "";
  }

  bool gzip() const { return gzip_; }
  uint64_t file_size() const { return file_size_; }

 private:
  std::string path_;
  Loc loc_;
  int fd_ = -1;
  gzFile gz_ = nullptr;
  bool gzip_ = false;
  uint64_t file_size_ = 0;
};

uint32_t read_be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

template <class Word>
void from_big_endian(std::byte* data, int64_t count) {
  if constexpr (std::endian::native == std::endian::little) {
    auto* words = reinterpret_cast<Word*>(data);
    for (int64_t i = 0; i < count; ++i) {
      if constexpr (sizeof(Word) == 4)
        words[i] = __builtin_bswap32(words[i]);
      else
        words[i] = __builtin_bswap64(words[i]);
    }
  }
}

// Converts `count` file elements of `type` (byte or short) in `src` into the tensor's elements.
void widen(const ElementType& type, const unsigned char* src, int32_t* dst, int64_t count) {
  if (type.code == 0x09) {
    for (int64_t i = 0; i < count; ++i)
      dst[i] = static_cast<int8_t>(src[i]);
  } else {  // short
    for (int64_t i = 0; i < count; ++i)
      dst[i] = static_cast<int16_t>((src[2 * i] << 8) | src[2 * i + 1]);
  }
}

// The bytes of an IDX file holding `t` with element type `type`.
std::string encode(const Tensor& t, const ElementType& type) {
  std::string out;
  const ir::HostTensor& host = t.host();
  out.reserve(4 + 4 * t.shape().dims().size() + host.nbytes());
  out += '\0';
  out += '\0';
  out += static_cast<char>(type.code);
  out += static_cast<char>(t.rank());
  auto put_be = [&out](uint64_t value, size_t width) {
    for (size_t i = width; i-- > 0;)
      out += static_cast<char>(value >> (8 * i));
  };
  for (int64_t d : t.shape())
    put_be(static_cast<uint64_t>(d), 4);
  if (type.code == 0x08 && host.dtype() == DType::u8) {
    const auto* bytes = reinterpret_cast<const char*>(host.raw());
    out.append(bytes, host.nbytes());
  } else if (type.code == 0x08) {
    for (int32_t v : host.values<int32_t>())
      out += static_cast<char>(v);
  } else if (type.code == 0x0C) {
    for (int32_t v : host.values<int32_t>())
      put_be(static_cast<uint32_t>(v), 4);
  } else if (type.code == 0x0D) {
    for (float v : host.values<float>())
      put_be(std::bit_cast<uint32_t>(v), 4);
  } else {
    for (double v : host.values<double>())
      put_be(std::bit_cast<uint64_t>(v), 8);
  }
  return out;
}

// gzip-compresses `bytes` (deflate with a gzip wrapper, zlib's default level).
std::string gzip_compress(std::string_view bytes) {
  z_stream stream{};
  KILN_CHECK(::deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
                            Z_DEFAULT_STRATEGY) == Z_OK,
             "deflateInit2 failed");
  std::string out;
  char buffer[1 << 16];
  int flush = Z_NO_FLUSH;
  while (flush != Z_FINISH) {
    size_t chunk = std::min<size_t>(bytes.size(), size_t{1} << 30);
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
    stream.avail_in = static_cast<uInt>(chunk);
    bytes.remove_prefix(chunk);
    flush = bytes.empty() ? Z_FINISH : Z_NO_FLUSH;
    do {
      stream.next_out = reinterpret_cast<Bytef*>(buffer);
      stream.avail_out = sizeof buffer;
      ::deflate(&stream, flush);
      out.append(buffer, sizeof buffer - stream.avail_out);
    } while (stream.avail_out == 0);
  }
  ::deflateEnd(&stream);
  return out;
}

}  // namespace

Tensor read(const std::string& path, Loc loc) {
  Source src(path, loc);
  unsigned char magic[4];
  size_t got = src.read(magic, 4);
  if (got < 4) {
    src.fail(fmt::format("truncated header: expected at least 4 bytes, read {}{}", got,
                         src.early_end_note()));
  }
  if (magic[0] != 0 || magic[1] != 0) {
    src.fail(
        fmt::format("bad magic {:02x} {:02x} {:02x} {:02x} (an IDX file starts with two "
                    "zero bytes, a type code and the rank)",
                    magic[0], magic[1], magic[2], magic[3]));
  }
  const ElementType* type = find_type(magic[2]);
  if (type == nullptr) {
    src.fail(
        fmt::format("bad magic: unknown element type code 0x{:02x} (IDX types are 0x08 "
                    "ubyte, 0x09 byte, 0x0B short, 0x0C int, 0x0D float, 0x0E double)",
                    magic[2]));
  }
  size_t rank = magic[3];
  size_t header_size = 4 + 4 * rank;
  std::vector<unsigned char> dim_bytes(4 * rank);
  got = src.read(dim_bytes.data(), dim_bytes.size());
  if (got < dim_bytes.size()) {
    src.fail(fmt::format("truncated header: expected {} bytes, read {}{}", header_size, 4 + got,
                         src.early_end_note()));
  }
  std::vector<int64_t> dims(rank);
  for (size_t i = 0; i < rank; ++i)
    dims[i] = read_be32(&dim_bytes[4 * i]);

  // Both the file's and the tensor's byte counts must fit in 63 bits; zero dims count as 1 so
  // that a 0 cannot hide an overflowing product.
  size_t widest = std::max(type->size, ir::dtype_size(type->dtype));
  int64_t bounded = static_cast<int64_t>(widest), count = 1;
  for (int64_t d : dims) {
    if (__builtin_mul_overflow(bounded, std::max<int64_t>(d, 1), &bounded)) {
      src.fail(
          fmt::format("the dimensions {} overflow: {} elements of {} bytes do not fit in 64 "
                      "bits",
                      Shape(dims).to_string(), type->name, widest));
    }
    count *= d;
  }
  uint64_t nbytes = static_cast<uint64_t>(count) * type->size;
  uint64_t available = src.gzip()
                           ? max_inflated_size(src.file_size())
                           : src.file_size() - std::min<uint64_t>(src.file_size(), header_size);
  auto truncated = [&](uint64_t read_bytes) {
    src.fail(fmt::format("truncated data: shape {} of {} needs {} bytes, read {}{}",
                         Shape(dims).to_string(), type->name, nbytes, read_bytes,
                         src.early_end_note()));
  };
  // Never allocate for data the file cannot hold: count what is there and report it.
  if (nbytes > available) truncated(src.skip_rest(nbytes));

  ir::HostTensor host = ir::HostTensor::uninitialized(TensorType{type->dtype, Shape(dims)});
  if (type->size == ir::dtype_size(type->dtype)) {
    got = src.read(host.raw(), nbytes);
    if (got < nbytes) truncated(got);
    if (type->size == 4) from_big_endian<uint32_t>(host.raw(), count);
    if (type->size == 8) from_big_endian<uint64_t>(host.raw(), count);
  } else {
    // Widened a cache-sized chunk at a time, as it is read.
    constexpr int64_t kChunk = 1 << 16;
    std::vector<unsigned char> buffer(static_cast<size_t>(std::min(count, kChunk)) * type->size);
    int32_t* dst = host.data<int32_t>();
    for (int64_t done = 0; done < count;) {
      int64_t n = std::min(count - done, kChunk);
      size_t want = static_cast<size_t>(n) * type->size;
      got = src.read(buffer.data(), want);
      if (got < want) truncated(static_cast<uint64_t>(done) * type->size + got);
      widen(*type, buffer.data(), dst + done, n);
      done += n;
    }
  }
  // The whole stream is read to its end (so a gzip stream's checksum is checked, too).
  if (uint64_t extra = src.skip_rest(UINT64_MAX); extra > 0) {
    src.fail(fmt::format("trailing garbage: {} bytes after the {} bytes of header and data", extra,
                         header_size + nbytes));
  }
  if (std::string note = src.early_end_note(); !note.empty()) {
    src.fail(fmt::format("the gzip stream is cut short after the data{}", note));
  }
  return Tensor(std::move(host));
}

void write(const std::string& path, const Tensor& t, bool gzip, Loc loc) {
  if (!t.defined()) detail::raise<ValueError>("idx.write", {}, "the tensor is undefined", loc);
  if (t.is_symbolic()) {
    detail::raise<ValueError>("idx.write", {t}, "cannot write a symbolic (traced) tensor", loc);
  }
  const ElementType* type = nullptr;
  if (t.dtype() == DType::u8) {
    type = &type_named("ubyte");
  } else if (t.dtype() == DType::i32) {
    auto values = t.host().values<int32_t>();
    bool bytes =
        std::all_of(values.begin(), values.end(), [](int32_t v) { return v >= 0 && v <= 255; });
    type = &type_named(bytes ? "ubyte" : "int");
  } else if (t.dtype() == DType::f32) {
    type = &type_named("float");
  } else if (t.dtype() == DType::f64) {
    type = &type_named("double");
  } else {
    detail::raise<TypeError>("idx.write", {t}, "IDX files hold u8, i32, f32 or f64 tensors", loc);
  }
  if (t.rank() > 255) {
    detail::raise<ValueError>("idx.write", {t}, "IDX files hold at most 255 dimensions", loc);
  }
  for (int64_t d : t.shape()) {
    if (d > int64_t{UINT32_MAX}) {
      detail::raise<ValueError>("idx.write", {t},
                                fmt::format("dimension {} does not fit in IDX's uint32", d), loc);
    }
  }
  std::string bytes = encode(t, *type);
  detail::write_file_atomically(path, gzip ? gzip_compress(bytes) : bytes, "idx.write", loc);
}

}  // namespace kiln::idx
