#include "kiln/frontend/formats/npy.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <vector>

#include "kiln/frontend/formats/atomic_file.h"

namespace kiln {

namespace {

constexpr std::string_view kMagic = "\x93NUMPY";
constexpr size_t kPrefixV1 = 10;  // magic, version (2 bytes), uint16 header length
constexpr size_t kPrefixV2 = 12;  // magic, version (2 bytes), uint32 header length
constexpr size_t kHeaderAlignment = 64;

[[noreturn]] void fail(std::string_view source, std::string_view what) {
  throw IOError(fmt::format("cannot read .npy file '{}': {}", source, what));
}

struct Header {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
};

// Parses the header: a Python dict literal with the keys 'descr' (a string), 'fortran_order'
// (True or False) and 'shape' (a tuple of non-negative ints), followed by spaces and a newline.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, std::string_view source) : text_(text), source_(source) {}

  Header parse() {
    Header header;
    bool seen_descr = false, seen_order = false, seen_shape = false;
    expect('{', "the header is not a Python dict");
    while (!consume('}')) {
      std::string key = parse_string("a dict key");
      expect(':', "expected ':' after a key");
      if (key == "descr") {
        if (seen_descr) error("duplicate key 'descr'");
        header.descr = parse_descr_value();
        seen_descr = true;
      } else if (key == "fortran_order") {
        if (seen_order) error("duplicate key 'fortran_order'");
        header.fortran_order = parse_bool();
        seen_order = true;
      } else if (key == "shape") {
        if (seen_shape) error("duplicate key 'shape'");
        header.shape = parse_shape();
        seen_shape = true;
      } else {
        error(fmt::format("unknown key '{}'", printable(key)));
      }
      if (!consume(',')) {
        expect('}', "expected ',' or '}' after a value");
        break;
      }
    }
    skip_space();
    if (pos_ != text_.size()) error("unexpected text after the header dict");
    if (!seen_descr) error("missing key 'descr'");
    if (!seen_order) error("missing key 'fortran_order'");
    if (!seen_shape) error("missing key 'shape'");
    return header;
  }

 private:
  [[noreturn]] void error(std::string_view what) {
    fail(source_, fmt::format("bad header ({}, at header offset {})", what, pos_));
  }

  // Keeps messages readable when a hostile header holds control bytes or very long text.
  static std::string printable(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 40))
      out += (c >= 32 && c < 127) ? c : '?';
    if (s.size() > 40) out += "...";
    return out;
  }

  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  bool consume(char c) {
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  void expect(char c, std::string_view what) {
    if (!consume(c)) error(what);
  }

  bool starts_with(std::string_view word) {
    skip_space();
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  std::string parse_string(std::string_view what) {
    skip_space();
    if (pos_ >= text_.size() || (text_[pos_] != '\'' && text_[pos_] != '"')) {
      error(fmt::format("expected a quoted string for {}", what));
    }
    char quote = text_[pos_++];
    size_t end = text_.find(quote, pos_);
    if (end == std::string_view::npos) error("unterminated string");
    std::string_view body = text_.substr(pos_, end - pos_);
    if (body.find('\\') != std::string_view::npos) error("escapes in strings are not supported");
    pos_ = end + 1;
    return std::string(body);
  }

  std::string parse_descr_value() {
    skip_space();
    if (pos_ < text_.size() && (text_[pos_] == '[' || text_[pos_] == '{')) {
      error("structured dtypes are not supported");
    }
    return parse_string("'descr'");
  }

  bool parse_bool() {
    if (starts_with("True")) return true;
    if (starts_with("False")) return false;
    error("'fortran_order' must be True or False");
  }

  std::vector<int64_t> parse_shape() {
    expect('(', "'shape' must be a tuple");
    std::vector<int64_t> dims;
    while (!consume(')')) {
      dims.push_back(parse_dim());
      if (!consume(',')) {
        expect(')', "expected ',' or ')' in 'shape'");
        break;
      }
    }
    return dims;
  }

  int64_t parse_dim() {
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == '-') error("negative dimension in 'shape'");
    if (pos_ >= text_.size() || text_[pos_] < '0' || text_[pos_] > '9') {
      error("'shape' must hold integers");
    }
    int64_t value = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      int digit = text_[pos_++] - '0';
      if (value > (std::numeric_limits<int64_t>::max() - digit) / 10) {
        error("dimension too large in 'shape'");
      }
      value = value * 10 + digit;
    }
    if (pos_ < text_.size() && text_[pos_] == 'L') ++pos_;  // Python 2 long literal: (3L, 4L)
    return value;
  }

  std::string_view text_;
  std::string_view source_;
  size_t pos_ = 0;
};

struct ElementFormat {
  DType dtype;
  bool swap_bytes;
};

ElementFormat parse_descr(std::string_view descr, std::string_view source) {
  auto unsupported = [&]() -> ElementFormat {
    fail(source, fmt::format("unsupported dtype '{}' (Kiln reads f4, f8, i4, i8, u1 and b1)",
                             descr.substr(0, 20)));
  };
  if (descr.size() != 3) return unsupported();
  char order = descr[0];
  std::string_view kind = descr.substr(1);
  std::optional<DType> dtype;
  if (kind == "f4") dtype = DType::f32;
  if (kind == "f8") dtype = DType::f64;
  if (kind == "i4") dtype = DType::i32;
  if (kind == "i8") dtype = DType::i64;
  if (kind == "b1") dtype = DType::boolean;
  if (kind == "u1") dtype = DType::u8;
  if (!dtype || (order != '<' && order != '>' && order != '=' && order != '|')) {
    return unsupported();
  }
  bool one_byte = ir::dtype_size(*dtype) == 1;
  if (order == '|' && !one_byte) {
    fail(source, fmt::format("dtype '{}': byte order '|' is only for 1-byte types", descr));
  }
  bool little = std::endian::native == std::endian::little;
  bool swap = !one_byte && ((order == '<' && !little) || (order == '>' && little));
  return {*dtype, swap};
}

// Number of elements, or an error when the shape's byte count (zero dims counted as 1, so a
// hostile shape cannot hide an overflow behind a 0) does not fit in 63 bits.
int64_t checked_element_count(const std::vector<int64_t>& dims, size_t item_size,
                              std::string_view source) {
  int64_t limit = std::numeric_limits<int64_t>::max() / static_cast<int64_t>(item_size);
  int64_t bounded = 1, count = 1;
  for (int64_t d : dims) {
    int64_t nonzero = std::max<int64_t>(d, 1);
    if (bounded > limit / nonzero) {
      fail(source, fmt::format("shape {} is too large", Shape(dims).to_string()));
    }
    bounded *= nonzero;
    count *= d;
  }
  return count;
}

uint32_t read_le(std::string_view bytes, size_t offset, size_t width) {
  uint32_t value = 0;
  for (size_t i = 0; i < width; ++i) {
    value |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[offset + i])) << (8 * i);
  }
  return value;
}

// Copies column-major `src` into the row-major buffer `dst`.
void fortran_to_c(const std::byte* src, std::byte* dst, const std::vector<int64_t>& dims,
                  size_t item_size, int64_t count) {
  size_t rank = dims.size();
  std::vector<int64_t> fstride(rank), index(rank, 0);
  int64_t stride = 1;
  for (size_t k = 0; k < rank; ++k) {
    fstride[k] = stride;
    stride *= dims[k];
  }
  int64_t offset = 0;
  for (int64_t i = 0; i < count; ++i) {
    std::memcpy(dst + i * item_size, src + offset * item_size, item_size);
    for (size_t k = rank; k-- > 0;) {  // odometer, last dimension fastest
      if (++index[k] < dims[k]) {
        offset += fstride[k];
        break;
      }
      offset -= (dims[k] - 1) * fstride[k];
      index[k] = 0;
    }
  }
}

void swap_each(std::byte* data, size_t item_size, int64_t count) {
  for (int64_t i = 0; i < count; ++i)
    std::reverse(data + i * item_size, data + (i + 1) * item_size);
}

// Any non-zero byte is true: a C++ bool holding another value would be undefined behaviour.
void normalize_bools(std::byte* data, int64_t count) {
  for (int64_t i = 0; i < count; ++i)
    data[i] = std::byte{data[i] != std::byte{0}};
}

std::string header_text(const Tensor& t) {
  const char order = std::endian::native == std::endian::little ? '<' : '>';
  std::string descr;
  switch (t.dtype()) {
    case DType::f32:
      descr = fmt::format("{}f4", order);
      break;
    case DType::f64:
      descr = fmt::format("{}f8", order);
      break;
    case DType::i32:
      descr = fmt::format("{}i4", order);
      break;
    case DType::i64:
      descr = fmt::format("{}i8", order);
      break;
    case DType::boolean:
      descr = "|b1";
      break;
    case DType::u8:
      descr = "|u1";
      break;
  }
  std::string shape = "(";
  for (size_t i = 0; i < t.shape().dims().size(); ++i) {
    shape += fmt::format("{}{}", i ? ", " : "", t.shape().dims()[i]);
  }
  shape += t.rank() == 1 ? ",)" : ")";
  return fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", descr, shape);
}

std::string read_file(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) {
    throw IOError(fmt::format("cannot read .npy file '{}': {}", path, std::strerror(errno)));
  }
  std::string bytes;
  char buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, file.get())) > 0)
    bytes.append(buffer, n);
  if (std::ferror(file.get())) {
    throw IOError(fmt::format("cannot read .npy file '{}': read error", path));
  }
  return bytes;
}

}  // namespace

std::string encode_npy(const Tensor& t) {
  const ir::HostTensor& host = t.host();
  std::string dict = header_text(t);
  bool v1 = kPrefixV1 + dict.size() + 1 <= 0xffff;
  size_t prefix = v1 ? kPrefixV1 : kPrefixV2;
  size_t unpadded = prefix + dict.size() + 1;  // + the closing newline
  size_t total = (unpadded + kHeaderAlignment - 1) / kHeaderAlignment * kHeaderAlignment;
  dict.append(total - unpadded, ' ');
  dict += '\n';

  std::string out(kMagic);
  out += static_cast<char>(v1 ? 1 : 2);
  out += '\0';
  uint32_t length = static_cast<uint32_t>(dict.size());
  for (size_t i = 0; i < prefix - kPrefixV1 + 2; ++i)
    out += static_cast<char>(length >> (8 * i));
  out += dict;
  out.append(reinterpret_cast<const char*>(host.raw()), host.nbytes());
  return out;
}

Tensor decode_npy(std::string_view bytes, std::string_view source) {
  if (bytes.size() < kPrefixV1) {
    fail(source, fmt::format("the file is too short for a .npy header ({} bytes)", bytes.size()));
  }
  if (bytes.substr(0, kMagic.size()) != kMagic) fail(source, "bad magic string (not a .npy file)");
  int major = static_cast<unsigned char>(bytes[6]), minor = static_cast<unsigned char>(bytes[7]);
  if ((major != 1 && major != 2 && major != 3) || minor != 0) {
    fail(source, fmt::format("unsupported format version {}.{}", major, minor));
  }
  size_t prefix = major == 1 ? kPrefixV1 : kPrefixV2;
  if (bytes.size() < prefix) fail(source, "the file ends inside the header length");
  size_t header_len = read_le(bytes, 8, prefix - 8);
  if (header_len > bytes.size() - prefix) {
    fail(source, fmt::format("header length {} runs past the end of the file ({} bytes)",
                             header_len, bytes.size()));
  }
  Header header = HeaderParser(bytes.substr(prefix, header_len), source).parse();
  ElementFormat format = parse_descr(header.descr, source);
  size_t item_size = ir::dtype_size(format.dtype);
  int64_t count = checked_element_count(header.shape, item_size, source);
  std::string_view data = bytes.substr(prefix + header_len);
  size_t nbytes = static_cast<size_t>(count) * item_size;
  if (data.size() < nbytes) {
    fail(source, fmt::format("the data is shorter than shape {} needs: {} bytes, found {}",
                             Shape(header.shape).to_string(), nbytes, data.size()));
  }

  ir::HostTensor host(format.dtype, Shape(header.shape));
  const auto* src = reinterpret_cast<const std::byte*>(data.data());
  if (header.fortran_order && header.shape.size() > 1) {
    fortran_to_c(src, host.raw(), header.shape, item_size, count);
  } else if (nbytes > 0) {
    std::memcpy(host.raw(), src, nbytes);
  }
  if (format.swap_bytes) swap_each(host.raw(), item_size, count);
  if (format.dtype == DType::boolean) normalize_bools(host.raw(), count);
  return Tensor(std::move(host));
}

void save_npy(const std::string& path, const Tensor& t, std::source_location loc) {
  detail::write_file_atomically(path, encode_npy(t), "save_npy", loc);
}

Tensor load_npy(const std::string& path) {
  return decode_npy(read_file(path), path);
}

}  // namespace kiln
