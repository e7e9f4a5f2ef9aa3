#include "kiln/frontend/safetensors.h"

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
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string_view>

#include "kiln/frontend/apply.h"
#include "kiln/frontend/atomic_file.h"

namespace kiln::safetensors {

namespace {

using nlohmann::json;

constexpr uint64_t kMaxHeaderSize = 100'000'000;  // the reference implementation's limit
constexpr int kMaxHeaderDepth = 16;               // real headers nest 3 deep
constexpr std::string_view kMetadataKey = "__metadata__";

struct DTypeName {
  std::string_view name;
  DType dtype;
};
// In the reference implementation's write order: larger alignment first.
constexpr DTypeName kDTypes[] = {{"I64", DType::i64}, {"F64", DType::f64},
                                 {"F32", DType::f32}, {"I32", DType::i32},
                                 {"U8", DType::u8},   {"BOOL", DType::boolean}};

std::optional<DType> parse_dtype(std::string_view name) {
  for (const DTypeName& d : kDTypes) {
    if (d.name == name) return d.dtype;
  }
  return std::nullopt;
}

size_t dtype_rank(DType dtype) {
  for (size_t i = 0; i < std::size(kDTypes); ++i) {
    if (kDTypes[i].dtype == dtype) return i;
  }
  KILN_CHECK(false, "dtype missing from the safetensors table");
}

std::string_view safetensors_name(DType dtype) {
  return kDTypes[dtype_rank(dtype)].name;
}

// A name from a file, made safe to print: control bytes become '?', long names are cut.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 60))
    out += static_cast<unsigned char>(c) >= 32 && c != 127 ? c : '?';
  if (s.size() > 60) out += "...";
  return out;
}

// Swaps each element's bytes on a big-endian host (safetensors data is little-endian).
void to_or_from_little_endian(std::byte* data, size_t item_size, size_t count) {
  if constexpr (std::endian::native == std::endian::big) {
    for (size_t i = 0; i < count; ++i)
      std::reverse(data + i * item_size, data + (i + 1) * item_size);
  } else {
    (void)data, (void)item_size, (void)count;
  }
}

struct Entry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;  // byte offsets into the data part
};

struct Header {
  std::vector<Entry> entries;  // sorted by name
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;
};

class File {
 public:
  File(const std::string& path, std::string_view op, const Loc& loc)
      : path_(path), op_(op), loc_(loc) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) fail(std::strerror(errno));
    struct stat st;
    if (::fstat(fd_, &st) != 0) fail(std::strerror(errno));
    if (S_ISDIR(st.st_mode)) fail("it is a directory");
    size_ = static_cast<uint64_t>(st.st_size);
  }
  ~File() { ::close(fd_); }
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  [[noreturn]] void fail(std::string_view what) const {
    detail::raise<IOError>(op_, {},
                           fmt::format("cannot read safetensors file '{}': {}", path_, what), loc_);
  }

  // Reads exactly n bytes at `offset` (the size was checked, so a short read means the file
  // changed while it was read).
  void read_at(uint64_t offset, void* dst, size_t n) const {
    auto* out = static_cast<char*>(dst);
    while (n > 0) {
      ssize_t got =
          ::pread(fd_, out, std::min<size_t>(n, size_t{1} << 30), static_cast<off_t>(offset));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) fail(std::strerror(errno));
      if (got == 0) fail("the file ended early (was it changed while being read?)");
      out += got, offset += static_cast<uint64_t>(got), n -= static_cast<size_t>(got);
    }
  }

  uint64_t size() const { return size_; }

 private:
  std::string path_;
  std::string_view op_;
  Loc loc_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// How deep brackets nest in `text` (strings skipped), so hostile headers cannot make the JSON
// parser build a huge tree; stops counting past kMaxHeaderDepth.
int nesting_depth(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
      if (deepest > kMaxHeaderDepth) break;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return deepest;
}

// Parses the header text; a key repeated in an object of the top two levels is an error
// (nlohmann::json would keep the last one silently).
json parse_json(std::string_view text, const File& file) {
  if (nesting_depth(text) > kMaxHeaderDepth) {
    file.fail(fmt::format("the header nests deeper than {} levels", kMaxHeaderDepth));
  }
  std::set<std::string> seen[2];
  std::string duplicate;
  auto track_keys = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start && depth < 2) seen[depth].clear();
    if (event == json::parse_event_t::key && depth >= 1 && depth <= 2 && duplicate.empty()) {
      if (!seen[depth - 1].insert(parsed.get<std::string>()).second) {
        duplicate = parsed.get<std::string>();
      }
    }
    return true;
  };
  json header;
  try {
    header = json::parse(text, track_keys);
  } catch (const json::exception& e) {
    file.fail(fmt::format("the header is not valid JSON ({})", e.what()));
  }
  if (!duplicate.empty()) {
    file.fail(fmt::format("the header lists the key '{}' twice", printable(duplicate)));
  }
  return header;
}

// One tensor's header entry, checked on its own (offsets against each other come later).
Entry parse_entry(const std::string& name, const json& info, uint64_t data_size, const File& file) {
  std::string where = fmt::format("tensor '{}'", printable(name));
  auto bad = [&](std::string_view what) { file.fail(fmt::format("{}: {}", where, what)); };
  if (!info.is_object()) bad("its entry is not a JSON object");
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!info.contains(key)) bad(fmt::format("its entry has no \"{}\"", key));
  }
  Entry entry{name, DType::f32, {}, 0, 0};
  const json& dtype = info["dtype"];
  if (!dtype.is_string()) bad("\"dtype\" is not a string");
  std::optional<DType> parsed = parse_dtype(dtype.get<std::string>());
  if (!parsed) {
    bad(fmt::format("unsupported dtype '{}' (Kiln reads F32, F64, I32, I64, U8 and BOOL)",
                    printable(dtype.get<std::string>())));
  }
  entry.dtype = *parsed;

  const json& shape = info["shape"];
  if (!shape.is_array()) bad("\"shape\" is not an array");
  // The byte count must fit in 63 bits; zero dims count as 1 so a 0 cannot hide an overflow.
  int64_t bounded = static_cast<int64_t>(ir::dtype_size(entry.dtype)), count = 1;
  for (const json& d : shape) {
    if (!d.is_number_unsigned() || d.get<uint64_t>() > uint64_t{INT64_MAX}) {
      bad(fmt::format("\"shape\" holds {}, not a non-negative integer", d.dump().substr(0, 40)));
    }
    int64_t dim = d.get<int64_t>();
    if (__builtin_mul_overflow(bounded, std::max<int64_t>(dim, 1), &bounded)) {
      bad(fmt::format("shape {} is too large", shape.dump().substr(0, 80)));
    }
    entry.shape.push_back(dim);
    count *= dim;
  }

  const json& offsets = info["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    bad(fmt::format("\"data_offsets\" must be [begin, end], non-negative integers; found {}",
                    offsets.dump().substr(0, 80)));
  }
  entry.begin = offsets[0].get<uint64_t>();
  entry.end = offsets[1].get<uint64_t>();
  if (entry.begin > entry.end) {
    bad(fmt::format("\"data_offsets\" [{}, {}] end before they begin", entry.begin, entry.end));
  }
  if (entry.end > data_size) {
    bad(
        fmt::format("\"data_offsets\" [{}, {}] run past the end of the data ({} bytes; is the "
                    "file truncated?)",
                    entry.begin, entry.end, data_size));
  }
  uint64_t nbytes = static_cast<uint64_t>(count) * ir::dtype_size(entry.dtype);
  if (entry.end - entry.begin != nbytes) {
    bad(fmt::format("shape {} of {} needs {} bytes, but \"data_offsets\" [{}, {}] span {}",
                    Shape(entry.shape).to_string(), safetensors_name(entry.dtype), nbytes,
                    entry.begin, entry.end, entry.end - entry.begin));
  }
  return entry;
}

// The tensors must tile the data part exactly: no gaps, no overlaps, nothing left over.
void check_coverage(const std::vector<Entry>& entries, uint64_t data_size, const File& file) {
  std::vector<const Entry*> order;
  for (const Entry& e : entries)
    order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
    return std::tie(a->begin, a->end) < std::tie(b->begin, b->end);
  });
  uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry* e : order) {
    if (e->begin < covered) {
      file.fail(fmt::format("tensors '{}' and '{}' overlap (data bytes [{}, {}] and [{}, {}])",
                            printable(previous->name), printable(e->name), previous->begin,
                            previous->end, e->begin, e->end));
    }
    if (e->begin > covered) {
      file.fail(fmt::format("data bytes [{}, {}) belong to no tensor", covered, e->begin));
    }
    covered = e->end;
    previous = e;
  }
  if (covered != data_size) {
    file.fail(
        fmt::format("the tensors cover {} bytes of data, but the file holds {} after the "
                    "header",
                    covered, data_size));
  }
}

Header read_header(const File& file) {
  if (file.size() < 8) {
    file.fail(
        fmt::format("the file is {} bytes, too short for the 8-byte header length", file.size()));
  }
  unsigned char prefix[8];
  file.read_at(0, prefix, 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i)
    n = (n << 8) | prefix[i];
  if (n > file.size() - 8) {
    file.fail(fmt::format("the header length {} runs past the end of the file ({} bytes)", n,
                          file.size()));
  }
  if (n > kMaxHeaderSize) {
    file.fail(fmt::format("the header length {} is over the {} byte limit", n, kMaxHeaderSize));
  }
  std::string text(n, '\0');
  file.read_at(8, text.data(), n);
  if (text.empty() || text[0] != '{') file.fail("the header does not start with '{'");
  json root = parse_json(text, file);
  if (!root.is_object()) file.fail("the header is not a JSON object");

  Header header;
  header.data_start = 8 + n;
  uint64_t data_size = file.size() - header.data_start;
  for (const auto& [key, value] : root.items()) {
    if (key == kMetadataKey) {
      if (!value.is_object()) file.fail("\"__metadata__\" is not a JSON object");
      for (const auto& [mkey, mvalue] : value.items()) {
        if (!mvalue.is_string()) {
          file.fail(
              fmt::format("\"__metadata__\" value for '{}' is not a string", printable(mkey)));
        }
        header.metadata.emplace(mkey, mvalue.get<std::string>());
      }
    } else {
      header.entries.push_back(parse_entry(key, value, data_size, file));
    }
  }
  check_coverage(header.entries, data_size, file);
  return header;
}

}  // namespace

void save(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
          const std::map<std::string, std::string>& metadata, Loc loc) {
  const char* op = "safetensors.save";
  std::set<std::string_view> names;
  for (const auto& [name, t] : tensors) {
    if (name == kMetadataKey) {
      detail::raise<ValueError>(op, {}, "the name \"__metadata__\" is reserved for metadata", loc);
    }
    if (!names.insert(name).second) {
      detail::raise<ValueError>(op, {}, fmt::format("the name '{}' is used twice", printable(name)),
                                loc);
    }
    if (!t.defined()) {
      detail::raise<ValueError>(op, {}, fmt::format("tensor '{}' is undefined", printable(name)),
                                loc);
    }
    if (t.is_symbolic()) {
      detail::raise<ValueError>(
          op, {t}, fmt::format("tensor '{}' is symbolic (traced); save concrete values", name),
          loc);
    }
  }

  // The reference layout: larger alignment first, then by name.
  std::vector<const std::pair<std::string, Tensor>*> order;
  for (const auto& item : tensors)
    order.push_back(&item);
  std::sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
    return std::pair(dtype_rank(a->second.dtype()), std::string_view(a->first)) <
           std::pair(dtype_rank(b->second.dtype()), std::string_view(b->first));
  });
  json header = json::object();
  uint64_t offset = 0;
  for (const auto* item : order) {
    const Tensor& t = item->second;
    uint64_t nbytes = t.host().nbytes();
    header[item->first] = json{{"dtype", safetensors_name(t.dtype())},
                               {"shape", t.shape().dims()},
                               {"data_offsets", json::array({offset, offset + nbytes})}};
    offset += nbytes;
  }
  if (!metadata.empty()) header[std::string(kMetadataKey)] = metadata;
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {
    detail::raise<ValueError>(
        op, {}, fmt::format("a name or metadata string is not valid UTF-8 ({})", e.what()), loc);
  }
  text.append((8 - text.size() % 8) % 8, ' ');

  detail::AtomicFile file(path, op, loc);
  unsigned char prefix[8];
  for (int i = 0; i < 8; ++i)
    prefix[i] = static_cast<unsigned char>(static_cast<uint64_t>(text.size()) >> (8 * i));
  file.write(prefix, 8);
  file.write(text.data(), text.size());
  for (const auto* item : order) {
    const ir::HostTensor& host = item->second.host();
    if constexpr (std::endian::native == std::endian::little) {
      file.write(host.raw(), host.nbytes());
    } else {
      ir::HostTensor copy = host.clone();
      to_or_from_little_endian(copy.raw(), ir::dtype_size(copy.dtype()),
                               static_cast<size_t>(copy.num_elements()));
      file.write(copy.raw(), copy.nbytes());
    }
  }
  file.commit();
}

std::vector<std::pair<std::string, Tensor>> load(const std::string& path, Loc loc) {
  File file(path, "safetensors.load", loc);
  Header header = read_header(file);
  std::vector<std::pair<std::string, Tensor>> out;
  for (const Entry& e : header.entries) {
    ir::HostTensor host = ir::HostTensor::uninitialized(TensorType{e.dtype, Shape(e.shape)});
    file.read_at(header.data_start + e.begin, host.raw(), host.nbytes());
    size_t count = static_cast<size_t>(host.num_elements());
    to_or_from_little_endian(host.raw(), ir::dtype_size(e.dtype), count);
    if (e.dtype == DType::boolean) {  // any non-zero byte is true; other bool values are UB
      for (size_t i = 0; i < count; ++i)
        host.raw()[i] = std::byte{host.raw()[i] != std::byte{0}};
    }
    out.emplace_back(e.name, Tensor(std::move(host)));
  }
  return out;
}

std::map<std::string, std::string> metadata(const std::string& path, Loc loc) {
  File file(path, "safetensors.metadata", loc);
  return read_header(file).metadata;
}

}  // namespace kiln::safetensors
