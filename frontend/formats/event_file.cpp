#include "kiln/frontend/formats/event_file.h"
#include "kiln/frontend/core/op_error.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

namespace kiln::detail {

namespace {

namespace fs = std::filesystem;

// CRC-32C, reflected, one table lookup per byte: polynomial 0x1EDC6F41 bit-reversed.
constexpr std::array<uint32_t, 256> kCrcTable = [] {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit)
      crc = (crc >> 1) ^ ((crc & 1u) != 0 ? 0x82F63B78u : 0u);
    table[i] = crc;
  }
  return table;
}();

void put_le(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i)
    out += static_cast<char>((value >> (8 * i)) & 0xffu);
}

void put_varint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out += static_cast<char>((value & 0x7fu) | 0x80u);
    value >>= 7;
  }
  out += static_cast<char>(value);
}

// Protocol buffer wire types.
enum Wire : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

void put_tag(std::string& out, uint32_t field, Wire wire) {
  put_varint(out, field << 3 | wire);
}

void put_bytes(std::string& out, uint32_t field, std::string_view bytes) {
  put_tag(out, field, kLengthDelimited);
  put_varint(out, bytes.size());
  out += bytes;
}

// Event fields 1 and 2 (a zero step is left out, as proto3 does).
std::string event_header(double wall_time, int64_t step) {
  std::string out;
  put_tag(out, 1, kFixed64);
  put_le(out, std::bit_cast<uint64_t>(wall_time), 8);
  if (step != 0) {
    put_tag(out, 2, kVarint);
    put_varint(out, static_cast<uint64_t>(step));
  }
  return out;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  std::array<char, 256> name{};
  if (::gethostname(name.data(), name.size() - 1) != 0 || name[0] == '\0') return "localhost";
  std::string host(name.data());
  for (char& c : host)
    if (c == '/') c = '_';
  return host;
}

}  // namespace

uint32_t crc32c(std::string_view bytes) {
  uint32_t crc = 0xffffffffu;
  for (char c : bytes)
    crc = kCrcTable[(crc ^ static_cast<unsigned char>(c)) & 0xffu] ^ (crc >> 8);
  return crc ^ 0xffffffffu;
}

uint32_t masked_crc32c(std::string_view bytes) {
  uint32_t crc = crc32c(bytes);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string tfrecord(std::string_view data) {
  std::string out;
  out.reserve(data.size() + 16);
  put_le(out, data.size(), 8);
  put_le(out, masked_crc32c(out), 4);
  out += data;
  put_le(out, masked_crc32c(data), 4);
  return out;
}

std::string file_version_event(double wall_time) {
  std::string out = event_header(wall_time, 0);
  put_bytes(out, 3, "brain.Event:2");
  return out;
}

std::string scalars_event(double wall_time, int64_t step,
                          const std::vector<std::pair<std::string, float>>& scalars) {
  std::string summary;
  for (const auto& [tag, value] : scalars) {
    std::string entry;
    put_bytes(entry, 1, tag);
    put_tag(entry, 2, kFixed32);
    put_le(entry, std::bit_cast<uint32_t>(value), 4);
    put_bytes(summary, 1, entry);
  }
  std::string out = event_header(wall_time, step);
  put_bytes(out, 5, summary);
  return out;
}

void make_folder(const std::string& dir, std::string_view what, const std::string& op,
                 const std::source_location& loc) {
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    raise<IOError>(op, {}, fmt::format("{} '{}' is a file, not a folder", what, dir), loc);
  fs::create_directories(dir, ec);
  std::error_code unused;
  if (ec || !fs::is_directory(dir, unused)) {
    raise<IOError>(op, {},
                   fmt::format("cannot make {} '{}': {}", what, dir,
                               ec ? ec.message() : "a part of the path is not a folder"),
                   loc);
  }
}

EventFile::EventFile(const std::string& dir, std::string op, const std::source_location& loc)
    : op_(std::move(op)), loc_(loc) {
  make_folder(dir, "the log folder", op_, loc_);
  const double wall_time = now_seconds();
  const std::string stem =
      fmt::format("events.out.tfevents.{:010d}.{}.{}", static_cast<int64_t>(wall_time), host_name(),
                  static_cast<int64_t>(::getpid()));
  // Two writers started in the same second (train and validation of two fits, or two
  // callbacks) get different names; O_EXCL never reuses a file.
  for (int n = 0; fd_ < 0; ++n) {
    path_ = (fs::path(dir) / fmt::format("{}.{}.v2", stem, n)).string();
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0 && (errno != EEXIST || n >= 1000)) {
      raise<IOError>(op_, {}, fmt::format("cannot create '{}': {}", path_, std::strerror(errno)),
                     loc_);
    }
  }
  try {
    write_record(file_version_event(wall_time));
  } catch (...) {
    ::close(fd_);  // no destructor runs for a constructor that throws
    throw;
  }
}

EventFile::~EventFile() {
  if (fd_ >= 0) ::close(fd_);
}

void EventFile::write_scalars(int64_t step,
                              const std::vector<std::pair<std::string, float>>& scalars) {
  write_record(scalars_event(now_seconds(), step, scalars));
}

void EventFile::write_record(std::string_view event) {
  const std::string record = tfrecord(event);
  const char* p = record.data();
  size_t left = record.size();
  while (left > 0) {
    ssize_t done = ::write(fd_, p, left);
    if (done < 0 && errno == EINTR) continue;
    if (done < 0) {
      raise<IOError>(op_, {}, fmt::format("cannot write '{}': {}", path_, std::strerror(errno)),
                     loc_);
    }
    p += done;
    left -= static_cast<size_t>(done);
  }
}

}  // namespace kiln::detail
