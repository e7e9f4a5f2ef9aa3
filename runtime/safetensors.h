// safetensors files, the Hugging Face format: an 8-byte little-endian header length n, n bytes
// of JSON ({name: {"dtype", "shape", "data_offsets": [begin, end]}, optional "__metadata__":
// {string: string}}), then the tensors' raw little-endian bytes. Kiln's one reader and writer
// of the format, used by the frontend (kiln::safetensors, which converts to Tensors and
// kiln::Errors) and by the AOT runtime (model state). Plain C++ and POSIX, with a strict JSON
// reader of its own: the AOT runtime links it, so no fmt, no JSON library, no IR.
//
// Dtypes are the AOT ABI's KILN_AOT_* codes; the format's names "F32", "F64", "I32", "I64",
// "U8" and "BOOL" are read and written. The writer lays files out as the reference
// implementation does: the header's keys sorted, padded with spaces to a multiple of 8 bytes,
// the data ordered by dtype (I64, F64, F32, I32, U8, BOOL) then name, so every tensor starts
// naturally aligned. The reader checks everything before it allocates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::runtime::safetensors {

// A file that cannot be read or is malformed. The message says what is wrong without naming
// the file: callers add the path and who asked.
class FormatError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The header key that holds the file's metadata; no tensor may have this name.
inline constexpr std::string_view kMetadataKey = "__metadata__";
// The largest header read (the reference implementation's limit).
inline constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// How deep the header's brackets may nest (real headers nest 3 deep).
inline constexpr int kMaxHeaderDepth = 16;

// The format's name of a KILN_AOT_* dtype ("F32"), or nullptr for one it does not hold.
const char* dtype_name(int32_t dtype);
// Bytes per element of a KILN_AOT_* dtype, or 0 for one the format does not hold.
int64_t dtype_size(int32_t dtype);
// Whether all of `text` is well-formed UTF-8 (no overlong forms, no surrogates).
bool valid_utf8(std::string_view text);
// A name from a file, made safe to print: control bytes become '?', long names are cut.
std::string printable(std::string_view text);

// One tensor of a file's header.
struct Entry {
  std::string name;
  int32_t dtype = 0;  // a KILN_AOT_* code
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // its bytes in the data part (after the header)
};

// An open safetensors file whose header has been read and checked.
class Reader {
 public:
  // Opens `path` and reads its header: every entry checked on its own (dtype, shape, offsets
  // within the data, byte count matching the shape) and the metadata's values strings. Throws
  // FormatError ("cannot open it: ...", "the header is not valid JSON (...)", ...).
  explicit Reader(const std::string& path);
  ~Reader();
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  // The tensors, sorted by name.
  const std::vector<Entry>& entries() const { return entries_; }
  // The entry named `name`, or nullptr.
  const Entry* find(std::string_view name) const;
  // The file's "__metadata__" (empty if it has none).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Checks that the tensors tile the data part exactly: no gaps, no overlaps, nothing left
  // over, as the reference implementation requires (kiln::safetensors does; the AOT runtime
  // reads any layout, tensors sharing bytes included). Throws FormatError.
  void check_layout() const;
  // Reads `entry`'s bytes (entry.end - entry.begin of them) into `dst`; BOOL bytes other than 0
  // read as 1. Throws FormatError.
  void read(const Entry& entry, void* dst) const;

 private:
  void read_at(uint64_t offset, void* dst, size_t n) const;
  void read_header();

  int fd_ = -1;
  uint64_t size_ = 0;
  uint64_t data_start_ = 0;
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

// A tensor to write: `bytes` bytes of little-endian data at `data`.
struct TensorRef {
  std::string_view name;
  int32_t dtype = 0;  // a KILN_AOT_* code
  std::span<const int64_t> shape;
  const void* data = nullptr;
  uint64_t bytes = 0;
};

// Writes `tensors` and `metadata` (none if empty) to `path` atomically (runtime/atomic_write.h):
// the file is replaced whole or left as it was. Throws std::invalid_argument, before touching
// the file, for a duplicate or reserved name, a name or metadata string that is not valid UTF-8,
// a dtype the format does not hold or a byte count that does not match the shape; and
// runtime::AtomicWriteError when the file cannot be written.
void write(const std::string& path, std::span<const TensorRef> tensors,
           const std::map<std::string, std::string>& metadata = {});

}  // namespace kiln::runtime::safetensors
