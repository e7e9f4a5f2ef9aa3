// safetensors files (safetensors.h), with a strict JSON reader of its own for the headers.
#include "kiln/runtime/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "kiln/runtime/aot_model.h"
#include "kiln/runtime/atomic_write.h"

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; this code copies it as is");

namespace kiln::runtime::safetensors {
namespace {

constexpr size_t kMaxJsonValues = size_t{1} << 20;  // bounds the memory a hostile header takes (~120 B each)

struct DTypeInfo {
  int32_t dtype;
  const char* name;  // in safetensors files
  int64_t size;
};
// In the reference implementation's write order: larger alignment first.
constexpr DTypeInfo kDTypes[] = {{KILN_AOT_I64, "I64", 8}, {KILN_AOT_F64, "F64", 8},
                                 {KILN_AOT_F32, "F32", 4}, {KILN_AOT_I32, "I32", 4},
                                 {KILN_AOT_U8, "U8", 1},   {KILN_AOT_BOOL, "BOOL", 1}};

const DTypeInfo* find_dtype(int32_t dtype) {
  for (const DTypeInfo& d : kDTypes) {
    if (d.dtype == dtype) return &d;
  }
  return nullptr;
}

const DTypeInfo* find_dtype(std::string_view name) {
  for (const DTypeInfo& d : kDTypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

[[noreturn]] void fail(const std::string& what) {
  throw FormatError(what);
}

// Length of the well-formed UTF-8 sequence at s[i] (one code point), or 0.
size_t utf8_sequence(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0; };
  unsigned char c = byte(0);
  if (c < 0x80) return 1;
  size_t n = c >= 0xC2 && c <= 0xDF   ? 2
             : c >= 0xE0 && c <= 0xEF ? 3
             : c >= 0xF0 && c <= 0xF4 ? 4
                                      : 0;
  if (n == 0) return 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range
  if (c == 0xE0) lo = 0xA0;
  if (c == 0xED) hi = 0x9F;  // no surrogates
  if (c == 0xF0) lo = 0x90;
  if (c == 0xF4) hi = 0x8F;  // nothing past U+10FFFF
  if (byte(1) < lo || byte(1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if (byte(k) < 0x80 || byte(k) > 0xBF) return 0;
  }
  return n;
}

// "(3,)", "(2, 3)", "()": shapes as Kiln prints them.
std::string tuple_string(const std::vector<int64_t>& shape) {
  std::string out = "(";
  for (size_t i = 0; i < shape.size(); ++i)
    out += (i > 0 ? ", " : "") + std::to_string(shape[i]);
  return out + (shape.size() == 1 ? ",)" : ")");
}

// JSON's short escapes: the letter after the backslash, and the byte it stands for.
constexpr std::pair<char, char> kShortEscapes[] = {{'"', '"'},  {'\\', '\\'}, {'/', '/'},
                                                   {'b', '\b'}, {'f', '\f'},  {'n', '\n'},
                                                   {'r', '\r'}, {'t', '\t'}};

// ---- JSON, as much as safetensors headers need ---------------------------------------------

struct Json {
  enum class Kind { null, boolean, number, string, array, object };
  Kind kind = Kind::null;
  bool is_count = false;  // a number: a non-negative integer up to INT64_MAX, in `count`
  uint64_t count = 0;
  size_t begin = 0, end = 0;      // where the value is in the header text
  std::string text;               // a string's value
  std::vector<std::string> keys;  // an object's keys, in file order
  std::vector<Json> items;        // an array's elements, or an object's values (as `keys`)

  const Json* member(std::string_view key) const {
    for (size_t i = 0; i < keys.size(); ++i) {
      if (keys[i] == key) return &items[i];
    }
    return nullptr;
  }
};

// Why a header could not be parsed: malformed JSON (`syntax`, at byte `pos`), or JSON that is
// well-formed but breaks a limit (depth, size) or repeats a key.
struct JsonError {
  bool syntax;
  size_t pos;
  std::string what;
};

// A strict RFC 8259 parser: one value, nothing after it but whitespace, valid UTF-8, no
// duplicate keys, at most kMaxHeaderDepth nested brackets. Throws JsonError.
class JsonParser {
 public:
  explicit JsonParser(std::string_view text) : text_(text) {}

  Json parse() {
    Json value = parse_value(0);
    skip_space();
    if (pos_ != text_.size()) error("unexpected text after the JSON value");
    return value;
  }

 private:
  [[noreturn]] void error(const std::string& what) const { throw JsonError{true, pos_, what}; }
  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }
  void skip_space() {
    while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r'))
      ++pos_;
  }
  void expect(char c) {
    skip_space();
    if (at_end()) error(std::string("the text ends where '") + c + "' was expected");
    if (peek() != c)
      error(std::string("expected '") + c + "', found '" + printable({&text_[pos_], 1}) + "'");
    ++pos_;
  }

  // `depth`: the brackets around the value.
  Json parse_value(int depth) {
    skip_space();
    if (at_end()) error("the text ends where a value was expected");
    if (++values_ > kMaxJsonValues) {
      throw JsonError{false, pos_,
                      "the header holds more than " + std::to_string(kMaxJsonValues) + " values"};
    }
    Json value;
    value.begin = pos_;
    char c = peek();
    if ((c == '{' || c == '[') && depth >= kMaxHeaderDepth) {
      throw JsonError{
          false, pos_,
          "the header nests deeper than " + std::to_string(kMaxHeaderDepth) + " levels"};
    }
    if (c == '{') {
      value.kind = Json::Kind::object;
      parse_object(value, depth);
    } else if (c == '[') {
      value.kind = Json::Kind::array;
      parse_list(']', "an array", [&] { value.items.push_back(parse_value(depth + 1)); });
    } else if (c == '"') {
      value.kind = Json::Kind::string;
      value.text = parse_string();
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      value.kind = Json::Kind::number;
      parse_number(value);
    } else if (literal("true") || literal("false")) {
      value.kind = Json::Kind::boolean;
    } else if (literal("null")) {
      value.kind = Json::Kind::null;
    } else {
      error("unexpected character '" + printable({&text_[pos_], 1}) + "'");
    }
    value.end = pos_;
    return value;
  }

  bool literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  // The members of an object or array, from its opening bracket to `close`.
  template <class F>
  void parse_list(char close, const char* what, F parse_member) {
    ++pos_;
    skip_space();
    if (peek() == close) {
      ++pos_;
      return;
    }
    for (;;) {
      parse_member();
      skip_space();
      if (at_end()) error(std::string("the text ends inside ") + what);
      char c = text_[pos_];
      if (c != ',' && c != close) error(std::string("expected ',' or '") + close + "' in " + what);
      ++pos_;
      if (c == close) return;
    }
  }

  void parse_object(Json& value, int depth) {
    parse_list('}', "an object", [&] {
      skip_space();
      if (peek() != '"') error("expected a string key");
      value.keys.push_back(parse_string());
      expect(':');
      value.items.push_back(parse_value(depth + 1));
    });
    std::vector<std::string_view> sorted(value.keys.begin(), value.keys.end());
    std::sort(sorted.begin(), sorted.end());
    auto repeated = std::adjacent_find(sorted.begin(), sorted.end());
    if (repeated != sorted.end()) {
      throw JsonError{false, value.begin,
                      "the header lists the key '" + printable(*repeated) +
                          "' twice (a key that appears twice is ambiguous)"};
    }
  }

  void parse_number(Json& value) {
    bool negative = peek() == '-', fraction = false, exponent = false, overflow = false;
    if (negative) ++pos_;
    auto digit = [&] { return peek() >= '0' && peek() <= '9'; };
    if (!digit()) error("a number needs digits");
    uint64_t n = 0;
    if (peek() == '0') {
      ++pos_;
    } else {
      for (; digit(); ++pos_) {
        uint64_t d = static_cast<uint64_t>(peek() - '0');
        overflow = overflow || n > (UINT64_MAX - d) / 10;
        n = n * 10 + d;
      }
    }
    if (peek() == '.') {
      ++pos_;
      fraction = true;
      if (!digit()) error("a number needs digits after '.'");
      while (digit())
        ++pos_;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      exponent = true;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (!digit()) error("a number needs digits in its exponent");
      while (digit())
        ++pos_;
    }
    value.is_count = !negative && !fraction && !exponent && !overflow && n <= INT64_MAX;
    value.count = value.is_count ? n : 0;
  }

  unsigned hex4() {
    unsigned v = 0;
    for (int i = 0; i < 4; ++i, ++pos_) {
      char c = peek();
      int d = c >= '0' && c <= '9'   ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                     : -1;
      if (d < 0) error("\\u needs four hex digits");
      v = v * 16 + static_cast<unsigned>(d);
    }
    return v;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    auto byte = [&](unsigned v) { out += static_cast<char>(v); };
    if (cp < 0x80) {
      byte(cp);
    } else if (cp < 0x800) {
      byte(0xC0 | (cp >> 6)), byte(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      byte(0xE0 | (cp >> 12)), byte(0x80 | ((cp >> 6) & 0x3F)), byte(0x80 | (cp & 0x3F));
    } else {
      byte(0xF0 | (cp >> 18)), byte(0x80 | ((cp >> 12) & 0x3F));
      byte(0x80 | ((cp >> 6) & 0x3F)), byte(0x80 | (cp & 0x3F));
    }
  }

  std::string parse_string() {
    ++pos_;  // '"'
    std::string out;
    for (;;) {
      if (at_end()) error("the text ends inside a string");
      unsigned char c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) error("a control character inside a string");
      if (c >= 0x80) {
        size_t n = utf8_sequence(text_, pos_);
        if (n == 0) error("a string is not valid UTF-8");
        out.append(text_.substr(pos_, n));
        pos_ += n;
        continue;
      }
      ++pos_;
      if (c != '\\') {
        out += static_cast<char>(c);
        continue;
      }
      char e = peek();
      ++pos_;
      if (e == 'u') {
        append_utf8(out, parse_code_point());
        continue;
      }
      auto escape = std::find_if(std::begin(kShortEscapes), std::end(kShortEscapes),
                                 [&](const auto& pair) { return pair.first == e; });
      if (escape == std::end(kShortEscapes)) {
        --pos_;
        error("an invalid escape in a string");
      }
      out += escape->second;
    }
  }

  // The code point of a \u escape (after its "\u"), or of a surrogate pair.
  unsigned parse_code_point() {
    unsigned cp = hex4();
    if (cp >= 0xDC00 && cp <= 0xDFFF) error("a \\u escape holds a lone low surrogate");
    if (cp < 0xD800 || cp > 0xDBFF) return cp;
    if (!literal("\\u")) error("a \\u escape holds a high surrogate with no low one");
    unsigned low = hex4();
    if (low < 0xDC00 || low > 0xDFFF) error("a high surrogate is not followed by a low one");
    return 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
  }

  std::string_view text_;
  size_t pos_ = 0;
  size_t values_ = 0;
};

// The header text of `value`, made safe to print and cut to `limit` bytes.
std::string source(std::string_view header, const Json& value, size_t limit) {
  std::string text = printable(header.substr(value.begin, value.end - value.begin));
  // printable() cuts at 60 bytes; messages cut shorter.
  if (text.size() > limit) text = text.substr(0, limit) + "...";
  return text;
}

// One tensor's header entry, checked on its own (against each other: Reader::check_layout).
Entry parse_entry(const std::string& name, const Json& info, std::string_view header,
                  uint64_t data_size) {
  std::string where = "tensor '" + printable(name) + "': ";
  auto bad = [&](const std::string& what) { fail(where + what); };
  if (info.kind != Json::Kind::object) bad("its entry is not a JSON object");
  const Json* dtype = info.member("dtype");
  const Json* shape = info.member("shape");
  const Json* offsets = info.member("data_offsets");
  if (dtype == nullptr) bad("its entry has no \"dtype\"");
  if (shape == nullptr) bad("its entry has no \"shape\"");
  if (offsets == nullptr) bad("its entry has no \"data_offsets\"");

  Entry entry;
  entry.name = name;
  if (dtype->kind != Json::Kind::string) bad("\"dtype\" is not a string");
  const DTypeInfo* type = find_dtype(dtype->text);
  if (type == nullptr) {
    bad("unsupported dtype '" + printable(dtype->text) +
        "' (Kiln reads F32, F64, I32, I64, U8 and BOOL)");
  }
  entry.dtype = type->dtype;
  if (shape->kind != Json::Kind::array) bad("\"shape\" is not an array");
  // The byte count must fit in 63 bits; zero sizes count as 1 so a 0 cannot hide an overflow.
  int64_t bound = type->size, bytes = type->size;
  for (const Json& d : shape->items) {
    if (!d.is_count) {
      bad("\"shape\" holds " + source(header, d, 40) + ", not a non-negative integer");
    }
    int64_t dim = static_cast<int64_t>(d.count);
    if (__builtin_mul_overflow(bound, std::max<int64_t>(dim, 1), &bound)) {
      bad("its shape is too large (" + source(header, *shape, 80) + ")");
    }
    entry.shape.push_back(dim);
    bytes *= dim;
  }
  if (offsets->kind != Json::Kind::array || offsets->items.size() != 2 ||
      !offsets->items[0].is_count || !offsets->items[1].is_count) {
    bad("\"data_offsets\" must be [begin, end], non-negative integers; found " +
        source(header, *offsets, 80));
  }
  entry.begin = offsets->items[0].count;
  entry.end = offsets->items[1].count;
  std::string range = "[" + std::to_string(entry.begin) + ", " + std::to_string(entry.end) + "]";
  if (entry.begin > entry.end) bad("\"data_offsets\" " + range + " end before they begin");
  if (entry.end > data_size) {
    bad("\"data_offsets\" " + range + " run past the end of the data (" +
        std::to_string(data_size) + " bytes; is the file truncated?)");
  }
  if (entry.end - entry.begin != static_cast<uint64_t>(bytes)) {
    bad("shape " + tuple_string(entry.shape) + " of " + type->name + " needs " +
        std::to_string(bytes) + " bytes, but \"data_offsets\" " + range + " span " +
        std::to_string(entry.end - entry.begin));
  }
  return entry;
}

// JSON string contents for `s` (valid UTF-8): the short escapes but for '/', \u00XX for other
// control characters, everything else as is.
std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    auto escape = std::find_if(std::begin(kShortEscapes), std::end(kShortEscapes),
                               [&](const auto& pair) { return pair.second == c; });
    if (escape != std::end(kShortEscapes) && c != '/') {
      out += '\\';
      out += escape->first;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char code[8];
      std::snprintf(code, sizeof code, "\\u%04x", static_cast<unsigned>(c));
      out += code;
    } else {
      out += c;
    }
  }
  return out + '"';
}

// Checks what write() is given; throws std::invalid_argument.
void check_for_writing(std::span<const TensorRef> tensors,
                       const std::map<std::string, std::string>& metadata) {
  auto bad = [](const std::string& what) { throw std::invalid_argument(what); };
  std::set<std::string_view> names;
  for (const TensorRef& t : tensors) {
    if (t.name == kMetadataKey) bad("the name \"__metadata__\" is reserved for metadata");
    if (!valid_utf8(t.name)) bad("the name '" + printable(t.name) + "' is not valid UTF-8");
    if (!names.insert(t.name).second) bad("the name '" + printable(t.name) + "' is used twice");
    const DTypeInfo* type = find_dtype(t.dtype);
    if (type == nullptr) {
      bad("tensor '" + printable(t.name) + "' has dtype code " + std::to_string(t.dtype) +
          ", which safetensors files do not hold");
    }
    uint64_t bytes = static_cast<uint64_t>(type->size);
    for (int64_t d : t.shape)
      bytes *= static_cast<uint64_t>(d);
    if (bytes != t.bytes) {
      bad("tensor '" + printable(t.name) + "' has " + std::to_string(t.bytes) +
          " bytes, but its shape " + tuple_string({t.shape.begin(), t.shape.end()}) + " needs " +
          std::to_string(bytes));
    }
  }
  for (const auto& [key, value] : metadata) {
    if (!valid_utf8(key) || !valid_utf8(value)) {
      bad("the metadata entry '" + printable(key) + "' is not valid UTF-8");
    }
  }
}

}  // namespace

const char* dtype_name(int32_t dtype) {
  const DTypeInfo* d = find_dtype(dtype);
  return d != nullptr ? d->name : nullptr;
}

int64_t dtype_size(int32_t dtype) {
  const DTypeInfo* d = find_dtype(dtype);
  return d != nullptr ? d->size : 0;
}

bool valid_utf8(std::string_view text) {
  for (size_t i = 0, n = 0; i < text.size(); i += n) {
    n = utf8_sequence(text, i);
    if (n == 0) return false;
  }
  return true;
}

std::string printable(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, 60))
    out += static_cast<unsigned char>(c) >= 32 && c != 127 ? c : '?';
  if (text.size() > 60) out += "...";
  return out;
}

// ---- Reader ----------------------------------------------------------------------------------

Reader::Reader(const std::string& path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) fail(std::string("cannot open it: ") + std::strerror(errno));
  struct stat st;
  if (::fstat(fd_, &st) != 0) {
    int error = errno;
    ::close(fd_);
    fail(std::string("cannot read it: ") + std::strerror(error));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd_);
    fail("it is a directory");
  }
  size_ = static_cast<uint64_t>(st.st_size);
  try {
    read_header();
  } catch (...) {
    ::close(fd_);
    throw;
  }
}

Reader::~Reader() {
  ::close(fd_);
}

const Entry* Reader::find(std::string_view name) const {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), name,
                             [](const Entry& e, std::string_view n) { return e.name < n; });
  return it != entries_.end() && it->name == name ? &*it : nullptr;
}

// Exactly n bytes at `offset` (the size was checked, so a short read means the file changed
// while it was read).
void Reader::read_at(uint64_t offset, void* dst, size_t n) const {
  auto* out = static_cast<char*>(dst);
  while (n > 0) {
    ssize_t got =
        ::pread(fd_, out, std::min<size_t>(n, size_t{1} << 30), static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) fail(std::string("read failed: ") + std::strerror(errno));
    if (got == 0) fail("the file ended early (was it changed while being read?)");
    out += got, offset += static_cast<uint64_t>(got), n -= static_cast<size_t>(got);
  }
}

void Reader::read_header() {
  if (size_ < 8) {
    fail("the file is " + std::to_string(size_) + " bytes, too short for the 8-byte header length");
  }
  unsigned char prefix[8];
  read_at(0, prefix, 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i)
    n = (n << 8) | prefix[i];
  const std::string file_size = std::to_string(size_) + " bytes";
  if (n > kMaxHeaderBytes) {
    fail("the header length " + std::to_string(n) + " is over the " +
         std::to_string(kMaxHeaderBytes) + " byte limit" +
         (n > size_ - 8 ? " and runs past the end of the file (" + file_size + ")" : "") +
         " (is this a safetensors file?)");
  }
  if (n > size_ - 8) {
    fail("the header length " + std::to_string(n) + " runs past the end of the file (" + file_size +
         "; is it truncated?)");
  }
  std::string text(n, '\0');
  read_at(8, text.data(), n);
  data_start_ = 8 + n;
  // Whitespace may come first (it is JSON); anything else is not a safetensors header.
  const size_t first = text.find_first_not_of(" \t\n\r");
  const bool brace = first != std::string::npos && text[first] == '{';
  Json root;
  try {
    root = JsonParser(text).parse();
  } catch (const JsonError& e) {
    if (!e.syntax) fail(e.what);
    fail(std::string("the header is not valid JSON") +
         (brace ? "" : " and does not start with '{'") + " (at byte " + std::to_string(e.pos) +
         ": " + e.what + ")");
  }
  if (root.kind != Json::Kind::object) {
    fail("the header is not a JSON object (it does not start with '{')");
  }

  const uint64_t data_size = size_ - data_start_;
  for (size_t i = 0; i < root.keys.size(); ++i) {
    const std::string& key = root.keys[i];
    const Json& value = root.items[i];
    if (key != kMetadataKey) {
      entries_.push_back(parse_entry(key, value, text, data_size));
      continue;
    }
    if (value.kind != Json::Kind::object) fail("\"__metadata__\" is not a JSON object");
    for (size_t m = 0; m < value.keys.size(); ++m) {
      if (value.items[m].kind != Json::Kind::string) {
        fail("\"__metadata__\" value for '" + printable(value.keys[m]) + "' is not a string");
      }
      metadata_.emplace(value.keys[m], value.items[m].text);
    }
  }
  std::sort(entries_.begin(), entries_.end(),
            [](const Entry& a, const Entry& b) { return a.name < b.name; });
}

void Reader::check_layout() const {
  std::vector<const Entry*> order;
  for (const Entry& e : entries_)
    order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
    return std::tie(a->begin, a->end) < std::tie(b->begin, b->end);
  });
  auto range = [](uint64_t begin, uint64_t end) {
    return "[" + std::to_string(begin) + ", " + std::to_string(end);
  };
  uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry* e : order) {
    if (e->begin < covered) {
      fail("tensors '" + printable(previous->name) + "' and '" + printable(e->name) +
           "' overlap (data bytes " + range(previous->begin, previous->end) + "] and " +
           range(e->begin, e->end) + "])");
    }
    if (e->begin > covered)
      fail("data bytes " + range(covered, e->begin) + ") belong to no tensor");
    covered = e->end;
    previous = e;
  }
  const uint64_t data_size = size_ - data_start_;
  if (covered != data_size) {
    fail("the tensors cover " + std::to_string(covered) + " bytes of data, but the file holds " +
         std::to_string(data_size) + " after the header");
  }
}

void Reader::read(const Entry& entry, void* dst) const {
  const size_t n = static_cast<size_t>(entry.end - entry.begin);
  read_at(data_start_ + entry.begin, dst, n);
  if (entry.dtype == KILN_AOT_BOOL) {  // any non-zero byte is true; other bool values are UB
    auto* p = static_cast<unsigned char*>(dst);
    for (size_t i = 0; i < n; ++i)
      p[i] = p[i] != 0;
  }
}

// ---- Writer ----------------------------------------------------------------------------------

void write(const std::string& path, std::span<const TensorRef> tensors,
           const std::map<std::string, std::string>& metadata) {
  check_for_writing(tensors, metadata);
  // The data: larger alignment first, then by name.
  auto rank = [&](size_t i) { return find_dtype(tensors[i].dtype) - kDTypes; };
  std::vector<size_t> layout(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i)
    layout[i] = i;
  std::sort(layout.begin(), layout.end(), [&](size_t a, size_t b) {
    return std::pair(rank(a), tensors[a].name) < std::pair(rank(b), tensors[b].name);
  });
  std::vector<uint64_t> begin(tensors.size());
  uint64_t offset = 0;
  for (size_t i : layout) {
    begin[i] = offset;
    offset += tensors[i].bytes;
  }

  // The header: every key sorted, "__metadata__" among the tensors' names.
  std::map<std::string_view, std::string> members;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorRef& t = tensors[i];
    std::string entry = "{\"data_offsets\":[" + std::to_string(begin[i]) + ',' +
                        std::to_string(begin[i] + t.bytes) + "],\"dtype\":\"" +
                        find_dtype(t.dtype)->name + "\",\"shape\":[";
    for (size_t d = 0; d < t.shape.size(); ++d)
      entry += (d > 0 ? "," : "") + std::to_string(t.shape[d]);
    members.emplace(t.name, entry + "]}");
  }
  if (!metadata.empty()) {
    std::string object = "{";
    for (const auto& [key, value] : metadata) {
      if (object.size() > 1) object += ',';
      object += json_string(key) + ':' + json_string(value);
    }
    members.emplace(kMetadataKey, object + '}');
  }
  std::string header = "{";
  for (const auto& [key, value] : members) {
    if (header.size() > 1) header += ',';
    header += json_string(key) + ':' + value;
  }
  header += '}';
  header.append((8 - header.size() % 8) % 8, ' ');

  unsigned char length[8];
  for (int i = 0; i < 8; ++i)
    length[i] = static_cast<unsigned char>(static_cast<uint64_t>(header.size()) >> (8 * i));
  AtomicWriter file(path);
  file.write(length, 8);
  file.write(header.data(), header.size());
  for (size_t i : layout)
    file.write(tensors[i].data, static_cast<size_t>(tensors[i].bytes));
  file.commit();
}

}  // namespace kiln::runtime::safetensors
