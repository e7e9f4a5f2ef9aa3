// Reading and writing an AOT model's state as a safetensors file (aot_weights.h), with a strict
// JSON reader of its own for the headers.
#include "kiln/runtime/aot_weights.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kiln/runtime/aot_model.h"
#include "kiln/runtime/atomic_write.h"

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; this runtime copies it as is");

namespace kiln::runtime::detail {
namespace {

using kiln::runtime::AtomicWriteError;
using kiln::runtime::AtomicWriter;

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference implementation's limit
constexpr int kMaxJsonDepth = 64;
constexpr size_t kMaxJsonValues = size_t{1} << 22;  // bounds the memory a hostile header takes
constexpr std::string_view kMetadataKey = "__metadata__";

struct DTypeInfo {
  int32_t dtype;
  const char* name;  // in safetensors files
  int64_t size;
};
// In Kiln's safetensors write order (larger alignment first), so saves lay files out alike.
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

bool valid_utf8(std::string_view s) {
  for (size_t i = 0, n = 0; i < s.size(); i += n) {
    n = utf8_sequence(s, i);
    if (n == 0) return false;
  }
  return true;
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

// A strict RFC 8259 parser: one value, nothing after it but whitespace, valid UTF-8, no
// duplicate keys. Errors throw Failure("at byte N: ...").
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
  [[noreturn]] void error(const std::string& what) const {
    fail("at byte " + std::to_string(pos_) + ": " + what);
  }
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

  Json parse_value(int depth) {
    if (depth > kMaxJsonDepth) error("the JSON nests deeper than " + std::to_string(kMaxJsonDepth));
    skip_space();
    if (at_end()) error("the text ends where a value was expected");
    if (++values_ > kMaxJsonValues) {
      error("the JSON holds more than " + std::to_string(kMaxJsonValues) + " values");
    }
    Json value;
    char c = peek();
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
    if (repeated != sorted.end()) error("the key '" + printable(*repeated) + "' appears twice");
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

// ---- safetensors -----------------------------------------------------------------------------

struct FileEntry {
  std::string name;
  const DTypeInfo* dtype = nullptr;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // in the data part
};

// A safetensors file being read; every failure names the model and the file.
class WeightsFile {
 public:
  WeightsFile(const std::string& model, const char* path)
      : prefix_(model + ": weights file '" + path + "': "), file_(std::fopen(path, "rb")) {
    if (file_ == nullptr) error(std::string("cannot open it: ") + std::strerror(errno));
    struct stat st;
    if (::fstat(::fileno(file_.get()), &st) != 0) error(std::strerror(errno));
    if (S_ISDIR(st.st_mode)) error("it is a directory");
    size_ = static_cast<uint64_t>(st.st_size);
  }

  [[noreturn]] void error(const std::string& what) const { fail(prefix_ + what); }

  void read_at(uint64_t offset, void* dst, size_t n) const {
    if (n == 0) return;
    if (::fseeko(file_.get(), static_cast<off_t>(offset), SEEK_SET) != 0) {
      error(std::string("seek failed: ") + std::strerror(errno));
    }
    if (std::fread(dst, 1, n, file_.get()) != n) {
      error(std::feof(file_.get())
                ? std::string("the file ended early (was it changed while being read?)")
                : std::string("read failed: ") + std::strerror(errno));
    }
  }

  // The header's tensors (metadata checked and dropped), each checked against the data size.
  std::vector<FileEntry> read_header() {
    if (size_ < 8) {
      error("the file is " + std::to_string(size_) + " bytes, too short for a safetensors header");
    }
    unsigned char prefix[8];
    read_at(0, prefix, 8);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i)
      n = (n << 8) | prefix[i];
    if (n > kMaxHeaderBytes) {
      error("the header length " + std::to_string(n) + " is over the " +
            std::to_string(kMaxHeaderBytes) + " byte limit (is this a safetensors file?)");
    }
    if (n > size_ - 8) {
      error("the header length " + std::to_string(n) + " runs past the end of the file (" +
            std::to_string(size_) + " bytes; is it truncated?)");
    }
    std::string text(n, '\0');
    read_at(8, text.data(), n);
    data_start_ = 8 + n;
    Json root;
    try {
      root = JsonParser(text).parse();
    } catch (const Failure& e) {
      error(std::string("the header is not valid JSON (") + e.what() + ")");
    }
    if (root.kind != Json::Kind::object) error("the header is not a JSON object");
    std::vector<FileEntry> entries;
    for (size_t i = 0; i < root.keys.size(); ++i) {
      if (root.keys[i] == kMetadataKey) {
        check_metadata(root.items[i]);
      } else {
        entries.push_back(parse_entry(root.keys[i], root.items[i]));
      }
    }
    return entries;
  }

  uint64_t data_start() const { return data_start_; }

 private:
  void check_metadata(const Json& metadata) const {
    if (metadata.kind != Json::Kind::object) error("\"__metadata__\" is not a JSON object");
    for (size_t i = 0; i < metadata.keys.size(); ++i) {
      if (metadata.items[i].kind != Json::Kind::string) {
        error("\"__metadata__\" value for '" + printable(metadata.keys[i]) + "' is not a string");
      }
    }
  }

  FileEntry parse_entry(const std::string& name, const Json& info) const {
    std::string where = "tensor '" + printable(name) + "': ";
    auto bad = [&](const std::string& what) { error(where + what); };
    if (info.kind != Json::Kind::object) bad("its entry is not a JSON object");
    const Json* dtype = info.member("dtype");
    const Json* shape = info.member("shape");
    const Json* offsets = info.member("data_offsets");
    if (dtype == nullptr) bad("its entry has no \"dtype\"");
    if (shape == nullptr) bad("its entry has no \"shape\"");
    if (offsets == nullptr) bad("its entry has no \"data_offsets\"");

    FileEntry entry;
    entry.name = name;
    if (dtype->kind != Json::Kind::string) bad("\"dtype\" is not a string");
    entry.dtype = find_dtype(dtype->text);
    if (entry.dtype == nullptr) {
      bad("unsupported dtype '" + printable(dtype->text) +
          "' (want F32, F64, I32, I64, U8 or BOOL)");
    }
    if (shape->kind != Json::Kind::array) bad("\"shape\" is not an array");
    // The byte count must fit in 63 bits; zero sizes count as 1 so a 0 cannot hide an overflow.
    int64_t bound = entry.dtype->size, bytes = entry.dtype->size;
    for (const Json& d : shape->items) {
      if (!d.is_count) bad("\"shape\" holds something other than a non-negative integer");
      int64_t dim = static_cast<int64_t>(d.count);
      if (__builtin_mul_overflow(bound, std::max<int64_t>(dim, 1), &bound)) {
        bad("its shape is too large");
      }
      entry.shape.push_back(dim);
      bytes *= dim;
    }
    if (offsets->kind != Json::Kind::array || offsets->items.size() != 2 ||
        !offsets->items[0].is_count || !offsets->items[1].is_count) {
      bad("\"data_offsets\" is not [begin, end] with non-negative integers");
    }
    entry.begin = offsets->items[0].count;
    entry.end = offsets->items[1].count;
    std::string range = "[" + std::to_string(entry.begin) + ", " + std::to_string(entry.end) + "]";
    uint64_t data_size = size_ - data_start_;
    if (entry.begin > entry.end) bad("\"data_offsets\" " + range + " end before they begin");
    if (entry.end > data_size) {
      bad("\"data_offsets\" " + range + " run past the end of the data (" +
          std::to_string(data_size) + " bytes; is the file truncated?)");
    }
    if (entry.end - entry.begin != static_cast<uint64_t>(bytes)) {
      bad("shape " + shape_string(entry.shape) + " of " + entry.dtype->name + " needs " +
          std::to_string(bytes) + " bytes, but \"data_offsets\" " + range + " span " +
          std::to_string(entry.end - entry.begin));
    }
    return entry;
  }

  struct Close {
    void operator()(FILE* f) const noexcept { std::fclose(f); }
  };
  std::string prefix_;
  std::unique_ptr<FILE, Close> file_;
  uint64_t size_ = 0;
  uint64_t data_start_ = 0;
};

// JSON string contents for `s` (valid UTF-8), escaped as Kiln's own writer escapes them.
std::string json_escape(std::string_view s) {
  std::string out;
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
  return out;
}

}  // namespace

void fail(const std::string& message) {
  throw Failure(message);
}

int64_t dtype_size(int32_t dtype) {
  const DTypeInfo* d = find_dtype(dtype);
  return d != nullptr ? d->size : 0;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    out += (i > 0 ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 60))
    out += static_cast<unsigned char>(c) >= 32 && c != 127 ? c : '?';
  if (s.size() > 60) out += "...";
  return out;
}

bool valid_tensor_name(std::string_view name) {
  return name != kMetadataKey && valid_utf8(name);
}

void read_weights_file(const std::string& model, const char* path,
                       std::span<const TensorInfo> state,
                       const std::function<void*(size_t)>& buffer) {
  WeightsFile file(model, path);
  std::vector<FileEntry> entries = file.read_header();
  std::sort(entries.begin(), entries.end(),
            [](const FileEntry& a, const FileEntry& b) { return a.name < b.name; });
  auto find = [&](const std::string& key) -> const FileEntry* {
    auto it = std::lower_bound(entries.begin(), entries.end(), key,
                               [](const FileEntry& e, const std::string& k) { return e.name < k; });
    return it != entries.end() && it->name == key ? &*it : nullptr;
  };
  for (const TensorInfo& t : state) {
    if (find(t.name) == nullptr)
      file.error("it has no tensor '" + t.name + "', which the model needs");
  }
  std::vector<std::string_view> names;
  for (const TensorInfo& t : state)
    names.push_back(t.name);
  std::sort(names.begin(), names.end());
  for (const FileEntry& e : entries) {
    if (!std::binary_search(names.begin(), names.end(), std::string_view(e.name))) {
      file.error("it holds tensor '" + printable(e.name) + "', which is not part of the model");
    }
  }
  for (size_t s = 0; s < state.size(); ++s) {
    const TensorInfo& t = state[s];
    const FileEntry& e = *find(t.name);
    if (e.dtype->dtype != t.dtype) {
      file.error(t.name + " has dtype " + e.dtype->name + " in the file, the model expects " +
                 find_dtype(t.dtype)->name);
    }
    if (e.shape != t.shape) {
      file.error(t.name + " has shape " + shape_string(e.shape) +
                 " in the file, the model expects " + shape_string(t.shape));
    }
    void* data = buffer(s);
    file.read_at(file.data_start() + e.begin, data, static_cast<size_t>(t.bytes));
    if (t.dtype == KILN_AOT_BOOL) {  // any non-zero byte is true, as Kiln's reader has it
      auto* p = static_cast<unsigned char*>(data);
      for (int64_t i = 0; i < t.bytes; ++i)
        p[i] = p[i] != 0;
    }
  }
}

// Keys sorted, data ordered by alignment then name (so every tensor is naturally aligned),
// header padded with spaces to a multiple of 8.
void write_weights_file(const std::string& model, const char* path,
                        std::span<const TensorInfo> state, std::span<void* const> data) {
  auto rank = [&](size_t s) { return find_dtype(state[s].dtype) - kDTypes; };
  std::vector<size_t> by_name(state.size()), by_layout(state.size());
  for (size_t s = 0; s < state.size(); ++s)
    by_name[s] = by_layout[s] = s;
  std::sort(by_name.begin(), by_name.end(),
            [&](size_t a, size_t b) { return state[a].name < state[b].name; });
  std::sort(by_layout.begin(), by_layout.end(), [&](size_t a, size_t b) {
    return std::pair(rank(a), std::string_view(state[a].name)) <
           std::pair(rank(b), std::string_view(state[b].name));
  });
  std::vector<int64_t> begin(state.size());
  int64_t offset = 0;
  for (size_t s : by_layout) {
    begin[s] = offset;
    offset += state[s].bytes;
  }
  std::string header = "{";
  for (size_t s : by_name) {
    const TensorInfo& t = state[s];
    if (header.size() > 1) header += ',';
    header += '"';
    header += json_escape(t.name);
    header += "\":{\"data_offsets\":[" + std::to_string(begin[s]) + ',' +
              std::to_string(begin[s] + t.bytes) + "],\"dtype\":\"" + find_dtype(t.dtype)->name +
              "\",\"shape\":[";
    for (size_t d = 0; d < t.shape.size(); ++d) {
      if (d > 0) header += ',';
      header += std::to_string(t.shape[d]);
    }
    header += "]}";
  }
  header += '}';
  header.append((8 - header.size() % 8) % 8, ' ');

  unsigned char length[8];
  for (int i = 0; i < 8; ++i)
    length[i] = static_cast<unsigned char>(static_cast<uint64_t>(header.size()) >> (8 * i));
  try {
    AtomicWriter file(path);
    file.write(length, 8);
    file.write(header.data(), header.size());
    for (size_t s : by_layout)
      file.write(data[s], static_cast<size_t>(state[s].bytes));
    file.commit();
  } catch (const AtomicWriteError& e) {
    fail(model + ": cannot write '" + path + "': " + e.what());
  }
}

}  // namespace kiln::runtime::detail
