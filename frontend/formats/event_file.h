// TensorBoard's event files, written by Kiln itself: TFRecord framing (each record's length and
// data checked by a masked CRC-32C) around hand-encoded `Event` protocol buffers holding scalar
// summaries. Only the fields TensorBoard needs for scalars are written:
//   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//   Summary { repeated Value value = 1; }
//   Value   { string tag = 1; float simple_value = 2; }
#pragma once

#include <cstdint>
#include <source_location>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kiln::detail {

// The CRC-32C (Castagnoli) of `bytes`: crc32c("123456789") == 0xE3069283.
uint32_t crc32c(std::string_view bytes);
// TFRecord's masked CRC: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
uint32_t masked_crc32c(std::string_view bytes);
// One TFRecord: length (u64 LE), masked CRC of those 8 bytes (u32 LE), data, masked CRC of data.
std::string tfrecord(std::string_view data);

// An Event with only its wall time and file_version "brain.Event:2", the first of every file.
std::string file_version_event(double wall_time);
// An Event at `step` whose Summary holds one simple_value per (tag, value).
std::string scalars_event(double wall_time, int64_t step,
                          const std::vector<std::pair<std::string, float>>& scalars);

// Makes the folder `dir` and its parents if missing. IOError, raised as `op` at `loc` and
// naming the folder as `what` ("log_dir", "the log folder"), when `dir` is a file or cannot be
// made (a file among its parents, no permission).
void make_folder(const std::string& dir, std::string_view what, const std::string& op,
                 const std::source_location& loc);

// One event file, `dir`/events.out.tfevents.<seconds>.<host>.<pid>.<n>.v2, opened for appending
// records. Records go straight to the file (no buffer in the process), so a crash of the
// process loses nothing written before it.
class EventFile {
 public:
  // Makes `dir` (and its parents) if missing and creates a new file there (n counts up past
  // names already taken), starting with the file-version event. IOError naming the path when
  // the folder or file cannot be made; errors are raised as `op` at `loc`.
  EventFile(const std::string& dir, std::string op, const std::source_location& loc);
  ~EventFile();
  EventFile(const EventFile&) = delete;
  EventFile& operator=(const EventFile&) = delete;

  // Appends an Event of scalar summaries at `step`, stamped with the current time.
  void write_scalars(int64_t step, const std::vector<std::pair<std::string, float>>& scalars);
  const std::string& path() const { return path_; }

 private:
  void write_record(std::string_view event);

  std::string path_, op_;
  std::source_location loc_;
  int fd_ = -1;
};

}  // namespace kiln::detail
