// callbacks::TensorBoard and the event files it writes, read back by a reader written here from
// the public format alone (its own bitwise CRC-32C, TFRecord framing, protobuf wire format), so
// the writer's table CRC and hand encoding are checked against something independent.
#include <unistd.h>
#include <catch2/catch.hpp>

#include <kiln/kiln.h>

#include <fmt/format.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "file_test_util.h"
#include "kiln/frontend/formats/event_file.h"
#include "model_test_util.h"

namespace k = kiln;
namespace fs = std::filesystem;
using Catch::Contains;
using k::testing::blobs;
using k::testing::read_bytes;
using k::testing::TempDir;

namespace {

// CRC-32C one bit at a time (reflected polynomial 0x82F63B78), as the definition reads.
uint32_t bitwise_crc32c(std::string_view bytes) {
  uint32_t crc = 0xffffffffu;
  for (char c : bytes) {
    crc ^= static_cast<unsigned char>(c);
    for (int bit = 0; bit < 8; ++bit)
      crc = (crc & 1u) != 0 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
  }
  return ~crc;
}

uint32_t mask(uint32_t crc) {
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

uint64_t little_endian(std::string_view bytes) {
  uint64_t value = 0;
  for (size_t i = bytes.size(); i-- > 0;)
    value = value << 8 | static_cast<unsigned char>(bytes[i]);
  return value;
}

// The records of a TFRecord file; every length and data CRC must check.
std::vector<std::string> read_records(const std::string& bytes) {
  std::vector<std::string> records;
  size_t at = 0;
  while (at < bytes.size()) {
    REQUIRE(bytes.size() - at >= 12);
    const std::string_view length_bytes(bytes.data() + at, 8);
    CHECK(little_endian(std::string_view(bytes.data() + at + 8, 4)) ==
          mask(bitwise_crc32c(length_bytes)));
    const uint64_t length = little_endian(length_bytes);
    at += 12;
    REQUIRE(bytes.size() - at >= length + 4);
    std::string data = bytes.substr(at, length);
    CHECK(little_endian(std::string_view(bytes.data() + at + length, 4)) ==
          mask(bitwise_crc32c(data)));
    at += length + 4;
    records.push_back(std::move(data));
  }
  return records;
}

// A protocol buffer message as (field number, wire type, payload) triples; varints decoded
// into `number`, fixed-size and length-delimited payloads kept as bytes.
struct Field {
  uint32_t number = 0;
  uint32_t wire = 0;
  uint64_t varint = 0;
  std::string bytes;
};

uint64_t read_varint(std::string_view data, size_t& at) {
  uint64_t value = 0;
  for (int shift = 0;; shift += 7) {
    REQUIRE(at < data.size());
    REQUIRE(shift < 64);
    auto byte = static_cast<unsigned char>(data[at++]);
    value |= uint64_t{byte & 0x7fu} << shift;
    if ((byte & 0x80u) == 0) return value;
  }
}

std::vector<Field> read_fields(std::string_view data) {
  std::vector<Field> fields;
  size_t at = 0;
  while (at < data.size()) {
    uint64_t key = read_varint(data, at);
    Field f;
    f.number = static_cast<uint32_t>(key >> 3);
    f.wire = static_cast<uint32_t>(key & 7u);
    size_t size = 0;
    if (f.wire == 0) {
      f.varint = read_varint(data, at);
    } else if (f.wire == 1 || f.wire == 5) {
      size = f.wire == 1 ? 8 : 4;
    } else {
      REQUIRE(f.wire == 2);
      size = read_varint(data, at);
    }
    REQUIRE(data.size() - at >= size);
    f.bytes = std::string(data.substr(at, size));
    at += size;
    fields.push_back(std::move(f));
  }
  return fields;
}

struct Event {
  double wall_time = 0;
  int64_t step = 0;
  std::optional<std::string> file_version;
  std::vector<std::pair<std::string, float>> values;  // the summary's (tag, simple_value)
};

Event decode_event(std::string_view data) {
  Event event;
  for (const Field& f : read_fields(data)) {
    if (f.number == 1) {
      REQUIRE(f.wire == 1);
      uint64_t bits = little_endian(f.bytes);
      std::memcpy(&event.wall_time, &bits, 8);
    } else if (f.number == 2) {
      REQUIRE(f.wire == 0);
      event.step = static_cast<int64_t>(f.varint);
    } else if (f.number == 3) {
      REQUIRE(f.wire == 2);
      event.file_version = f.bytes;
    } else if (f.number == 5) {
      REQUIRE(f.wire == 2);
      for (const Field& v : read_fields(f.bytes)) {
        REQUIRE((v.number == 1 && v.wire == 2));
        std::string tag;
        std::optional<float> value;
        for (const Field& part : read_fields(v.bytes)) {
          if (part.number == 1) tag = part.bytes;
          if (part.number == 2) {
            REQUIRE(part.wire == 5);
            auto bits = static_cast<uint32_t>(little_endian(part.bytes));
            float x;
            std::memcpy(&x, &bits, 4);
            value = x;
          }
        }
        REQUIRE(value.has_value());
        event.values.emplace_back(tag, *value);
      }
    } else {
      FAIL("unexpected Event field " << f.number);
    }
  }
  return event;
}

// The event files in `dir`, by name.
std::vector<std::string> event_files(const fs::path& dir) {
  std::vector<std::string> files;
  if (!fs::is_directory(dir)) return files;
  for (const auto& entry : fs::directory_iterator(dir))
    files.push_back(entry.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

// The events of the one event file in `dir`, after checking its name and first event.
std::vector<Event> read_events(const fs::path& dir) {
  std::vector<std::string> files = event_files(dir);
  REQUIRE(files.size() == 1);
  // events.out.tfevents.<seconds>.<host>.<pid>.<n>.v2
  const std::string name = fs::path(files[0]).filename().string();
  CHECK(name.starts_with("events.out.tfevents."));
  CHECK(name.ends_with(".v2"));
  CHECK_THAT(name, Contains(fmt::format(".{}.", ::getpid())));
  std::vector<Event> events;
  for (const std::string& record : read_records(read_bytes(files[0])))
    events.push_back(decode_event(record));
  REQUIRE(!events.empty());
  CHECK(events[0].file_version == std::optional<std::string>("brain.Event:2"));
  CHECK(events[0].values.empty());
  for (const Event& e : events)
    CHECK(e.wall_time > 1.5e9);  // seconds since 1970: after 2017
  events.erase(events.begin());
  return events;
}

// The (step, value) series of `tag`.
std::vector<std::pair<int64_t, float>> series(const std::vector<Event>& events,
                                              const std::string& tag) {
  std::vector<std::pair<int64_t, float>> out;
  for (const Event& e : events) {
    CHECK_FALSE(e.file_version.has_value());
    for (const auto& [name, value] : e.values)
      if (name == tag) out.emplace_back(e.step, value);
  }
  return out;
}

std::vector<std::pair<int64_t, float>> per_epoch(const std::vector<double>& values) {
  std::vector<std::pair<int64_t, float>> out;
  for (size_t i = 0; i < values.size(); ++i)
    out.emplace_back(static_cast<int64_t>(i), static_cast<float>(values[i]));
  return out;
}

// Records the logs fit passes after each batch.
struct BatchRecorder : k::callbacks::Callback {
  std::shared_ptr<std::vector<k::Logs>> seen = std::make_shared<std::vector<k::Logs>>();
  bool on_epoch_end(int64_t, const k::Logs&, k::Model&) override { return true; }
  void on_train_batch_end(int64_t, const k::Logs& logs, k::Model&) override {
    seen->push_back(logs);
  }
};

k::Sequential small_model() {
  k::Sequential model({k::layers::Dense(3, "softmax", k::Shape{2})});
  model.compile(k::optimizers::SGD(0.1), k::losses::SparseCategoricalCrossentropy(), {"accuracy"});
  return model;
}

}  // namespace

TEST_CASE("crc32c matches the published check values", "[tensorboard]") {
  using k::detail::crc32c;
  CHECK(crc32c("123456789") == 0xE3069283u);
  CHECK(crc32c("") == 0u);
  // RFC 3720 (iSCSI), appendix B.4.
  CHECK(crc32c(std::string(32, '\0')) == 0x8A9136AAu);
  CHECK(crc32c(std::string(32, '\xff')) == 0x62A8AB43u);
  std::string ascending, descending;
  for (int i = 0; i < 32; ++i) {
    ascending += static_cast<char>(i);
    descending += static_cast<char>(31 - i);
  }
  CHECK(crc32c(ascending) == 0x46DD794Eu);
  CHECK(crc32c(descending) == 0x113FDB5Cu);
  // The table version agrees with the bitwise one on random data of every length up to 300.
  std::mt19937 rng(7);
  std::string bytes;
  for (int n = 0; n <= 300; ++n) {
    CHECK(crc32c(bytes) == bitwise_crc32c(bytes));
    CHECK(k::detail::masked_crc32c(bytes) == mask(bitwise_crc32c(bytes)));
    bytes += static_cast<char>(rng() & 0xffu);
  }
}

TEST_CASE("tfrecord frames a record the independent reader accepts", "[tensorboard]") {
  std::string data = k::detail::scalars_event(1.7e9, 300, {{"a", 1.5f}, {"bb", -2.25f}});
  std::string record = k::detail::tfrecord(data);
  CHECK(record.size() == data.size() + 16);
  std::vector<std::string> records = read_records(record + k::detail::tfrecord(""));
  REQUIRE(records.size() == 2);
  CHECK(records[1].empty());
  Event e = decode_event(records[0]);
  CHECK(e.wall_time == 1.7e9);
  CHECK(e.step == 300);  // a two-byte varint
  CHECK(e.values == std::vector<std::pair<std::string, float>>{{"a", 1.5f}, {"bb", -2.25f}});
  Event big = decode_event(k::detail::scalars_event(0, int64_t{1} << 40, {}));
  CHECK(big.step == int64_t{1} << 40);

  // A flipped bit fails the reader's data CRC: the check above is not vacuous.
  std::string corrupt = record;
  corrupt[14] = static_cast<char>(corrupt[14] ^ 0x10);
  CHECK(little_endian(std::string_view(corrupt).substr(12 + data.size(), 4)) !=
        mask(bitwise_crc32c(std::string_view(corrupt).substr(12, data.size()))));
}

TEST_CASE("TensorBoard writes epoch scalars for train and validation that match History",
          "[tensorboard]") {
  TempDir dir;
  auto [x, y] = blobs(40, 3);
  k::Sequential model = small_model();
  const std::string log_dir = dir.file("logs");
  k::callbacks::TensorBoard tensorboard(log_dir);
  k::History h = model.fit(x, y,
                           {.epochs = 4,
                            .batch_size = 16,
                            .validation_split = 0.25,
                            .verbose = 0,
                            .callbacks = {tensorboard}});
  CHECK(tensorboard.log_dir() == log_dir);
  std::vector<Event> train = read_events(fs::path(log_dir) / "train");
  REQUIRE(train.size() == 4);
  for (size_t i = 0; i < train.size(); ++i) {
    CHECK(train[i].step == static_cast<int64_t>(i));
    std::vector<std::string> tags;
    for (const auto& [tag, value] : train[i].values)
      tags.push_back(tag);
    CHECK(tags == std::vector<std::string>{"epoch_accuracy", "epoch_loss"});
  }
  CHECK(series(train, "epoch_loss") == per_epoch(h.history.at("loss")));
  CHECK(series(train, "epoch_accuracy") == per_epoch(h.history.at("accuracy")));

  std::vector<Event> validation = read_events(fs::path(log_dir) / "validation");
  REQUIRE(validation.size() == 4);
  CHECK(series(validation, "epoch_loss") == per_epoch(h.history.at("val_loss")));
  CHECK(series(validation, "epoch_accuracy") == per_epoch(h.history.at("val_accuracy")));
  CHECK(series(validation, "epoch_val_loss").empty());

  // No batch summaries with update_freq "epoch"; a second fit starts a new file next to the first.
  CHECK(series(train, "batch_loss").empty());
  model.fit(x, y, {.epochs = 1, .verbose = 0, .callbacks = {tensorboard}});
  CHECK(event_files(fs::path(log_dir) / "train").size() == 2);
  CHECK(event_files(fs::path(log_dir) / "validation").size() == 1);
}

TEST_CASE("TensorBoard without validation data or metrics writes the loss alone", "[tensorboard]") {
  TempDir dir;
  auto [x, y] = blobs(10, 4);
  k::Sequential model({k::layers::Dense(3, "softmax", k::Shape{2})});
  model.compile(k::optimizers::SGD(0.1), k::losses::SparseCategoricalCrossentropy());
  k::History h = model.fit(
      x, y, {.epochs = 2, .verbose = 0, .callbacks = {k::callbacks::TensorBoard(dir.file("tb"))}});
  std::vector<Event> train = read_events(dir.path / "tb" / "train");
  REQUIRE(train.size() == 2);
  CHECK(train[1].values.size() == 1);
  CHECK(series(train, "epoch_loss") == per_epoch(h.history.at("loss")));
  CHECK_FALSE(fs::exists(dir.path / "tb" / "validation"));
}

TEST_CASE("TensorBoard with update_freq N writes batch scalars every N global steps",
          "[tensorboard]") {
  TempDir dir;
  auto [x, y] = blobs(35, 5);  // 105 samples, batch 16: 7 steps per epoch
  k::Sequential model = small_model();
  BatchRecorder recorder;
  k::History h =
      model.fit(x, y,
                {.epochs = 3,
                 .batch_size = 16,
                 .verbose = 0,
                 .callbacks = {recorder, k::callbacks::TensorBoard(dir.file("every5"), 5),
                               k::callbacks::TensorBoard(dir.file("every7"), 7)}});
  REQUIRE(recorder.seen->size() == 21);

  // Steps 5, 10, 15, 20 counted over the whole fit, the running logs of that batch.
  std::vector<Event> every5 = read_events(dir.path / "every5" / "train");
  std::vector<std::pair<int64_t, float>> expected_loss, expected_accuracy;
  for (int64_t step : {5, 10, 15, 20}) {
    const k::Logs& logs = (*recorder.seen)[static_cast<size_t>(step - 1)];
    expected_loss.emplace_back(step, static_cast<float>(logs.at("loss")));
    expected_accuracy.emplace_back(step, static_cast<float>(logs.at("accuracy")));
  }
  CHECK(series(every5, "batch_loss") == expected_loss);
  CHECK(series(every5, "batch_accuracy") == expected_accuracy);
  CHECK(series(every5, "epoch_loss") == per_epoch(h.history.at("loss")));
  CHECK(every5.size() == 4 + 3);

  // Every 7 steps is each epoch's last batch: its running mean is the epoch's value.
  std::vector<Event> every7 = read_events(dir.path / "every7" / "train");
  std::vector<std::pair<int64_t, float>> at_epoch_ends;
  for (size_t epoch = 0; epoch < 3; ++epoch) {
    at_epoch_ends.emplace_back(static_cast<int64_t>(7 * (epoch + 1)),
                               static_cast<float>(h.history.at("loss")[epoch]));
  }
  CHECK(series(every7, "batch_loss") == at_epoch_ends);

  // "batch": every step.
  model.fit(x, y,
            {.epochs = 1,
             .batch_size = 16,
             .verbose = 0,
             .callbacks = {k::callbacks::TensorBoard(dir.file("batch"), "batch")}});
  std::vector<std::pair<int64_t, float>> steps =
      series(read_events(dir.path / "batch" / "train"), "batch_loss");
  REQUIRE(steps.size() == 7);
  for (size_t i = 0; i < steps.size(); ++i)
    CHECK(steps[i].first == static_cast<int64_t>(i + 1));
}

TEST_CASE("TensorBoard reports a log_dir it cannot use, and a bad update_freq", "[tensorboard]") {
  TempDir dir;
  auto [x, y] = blobs(5, 6);
  k::Sequential model = small_model();
  model(x);  // builds the weights
  std::vector<float> before = model.weights()[0].value().to_vector<float>();
  auto fit_with = [&](const std::string& log_dir) {
    model.fit(x, y, {.epochs = 1, .verbose = 0, .callbacks = {k::callbacks::TensorBoard(log_dir)}});
  };

  // A file where the folder should be.
  k::testing::write_bytes(dir.file("taken"), "not a folder");
  CHECK_THROWS_AS(fit_with(dir.file("taken")), k::IOError);
  CHECK_THROWS_WITH(fit_with(dir.file("taken")), Contains("TensorBoard") &&
                                                     Contains("'" + dir.file("taken") + "'") &&
                                                     Contains("not a folder"));
  // A file among its parents.
  CHECK_THROWS_WITH(fit_with(dir.file("taken") + "/logs"),
                    Contains("cannot make log_dir '" + dir.file("taken") + "/logs'"));
  // A file where train/ goes.
  fs::create_directories(dir.path / "busy");
  k::testing::write_bytes(dir.file("busy/train"), "");
  CHECK_THROWS_AS(fit_with(dir.file("busy")), k::IOError);
  CHECK_THROWS_WITH(fit_with(dir.file("busy")), Contains("'" + dir.file("busy/train") + "'"));
  // Training never started.
  CHECK(model.weights()[0].value().to_vector<float>() == before);
  CHECK(read_bytes(dir.file("taken")) == "not a folder");

  CHECK_THROWS_AS(k::callbacks::TensorBoard("logs", "weekly"), k::ValueError);
  CHECK_THROWS_WITH(k::callbacks::TensorBoard("logs", "weekly"), Contains("\"epoch\", \"batch\""));
  CHECK_THROWS_AS(k::callbacks::TensorBoard("logs", 0), k::ValueError);
  CHECK_THROWS_AS(k::callbacks::TensorBoard("logs", -3), k::ValueError);
  CHECK_THROWS_AS(k::callbacks::TensorBoard(""), k::ValueError);
}
