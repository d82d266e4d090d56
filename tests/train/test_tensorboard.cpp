// TensorBoard event files (train/tensorboard.h): CRC-32C against published check values, the
// protobuf bytes of an Event against the wire format worked by hand, and event files read back
// by the small reader below (TFRecord framing, both CRCs, the Event fields) against what was
// logged: by the writer directly, by a tiny training run (one scalar per metrics.jsonl field
// per line), and by a resumed run (a second file, a SessionLog START, no step written twice).
#include <gtest/gtest.h>

#include <cctype>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <sstream>

#include "core/file.h"
#include "test_util.h"
#include "train/tensorboard.h"
#include "train/tiny_run.h"
#include "train/trainer.h"

namespace ll {
namespace {

using nlohmann::json;
using test::small_args;
using test::tiny;

// --- A reader, written from the format description, independent of the writer's code. ---

struct ReadEvent {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;
  int session_status = 0;                // SessionLog.status; 0 when absent
  std::map<std::string, float> scalars;  // Summary.value: tag -> simple_value
};

uint64_t read_le(const std::string& bytes, size_t at, int count) {
  uint64_t value = 0;
  for (int i = 0; i < count; ++i) {
    value |= static_cast<uint64_t>(static_cast<uint8_t>(bytes.at(at + i))) << (8 * i);
  }
  return value;
}

uint64_t read_varint(const std::string& bytes, size_t& at) {
  uint64_t value = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    const uint8_t byte = static_cast<uint8_t>(bytes.at(at++));
    value |= static_cast<uint64_t>(byte & 0x7F) << shift;
    if (!(byte & 0x80)) return value;
  }
  throw std::runtime_error("varint too long");
}

// Calls field(number, wire_type, at, length) for each field of a message; skips nothing
// unknown silently: an unexpected wire type throws.
template <typename OnField>
void walk_message(const std::string& bytes, OnField on_field) {
  size_t at = 0;
  while (at < bytes.size()) {
    const uint64_t key = read_varint(bytes, at);
    const int number = static_cast<int>(key >> 3), type = static_cast<int>(key & 7);
    size_t length = 0;
    if (type == 0) {
      const size_t start = at;
      read_varint(bytes, at);
      length = at - start;
      at = start;
    } else if (type == 1) {
      length = 8;
    } else if (type == 2) {
      length = read_varint(bytes, at);
    } else if (type == 5) {
      length = 4;
    } else {
      throw std::runtime_error("wire type " + std::to_string(type));
    }
    if (at + length > bytes.size()) throw std::runtime_error("field past the message");
    on_field(number, type, bytes.substr(at, length));
    at += length;
  }
}

ReadEvent decode_event(const std::string& bytes) {
  ReadEvent event;
  walk_message(bytes, [&](int number, int type, const std::string& field) {
    size_t at = 0;
    if (number == 1 && type == 1) {
      const uint64_t bits = read_le(field, 0, 8);
      std::memcpy(&event.wall_time, &bits, 8);
    } else if (number == 2 && type == 0) {
      event.step = static_cast<int64_t>(read_varint(field, at));
    } else if (number == 3 && type == 2) {
      event.file_version = field;
    } else if (number == 5 && type == 2) {
      walk_message(field, [&](int n, int t, const std::string& value) {
        ASSERT_TRUE(n == 1 && t == 2) << "Summary field " << n;
        std::string tag;
        float simple_value = std::nanf("");
        walk_message(value, [&](int vn, int vt, const std::string& v) {
          if (vn == 1 && vt == 2) tag = v;
          if (vn == 2 && vt == 5) {
            const uint32_t bits = static_cast<uint32_t>(read_le(v, 0, 4));
            std::memcpy(&simple_value, &bits, 4);
          }
        });
        EXPECT_EQ(event.scalars.count(tag), 0u) << "tag twice in one event: " << tag;
        event.scalars[tag] = simple_value;
      });
    } else if (number == 7 && type == 2) {  // session_log
      walk_message(field, [&](int n, int t, const std::string& value) {
        size_t p = 0;
        if (n == 1 && t == 0) event.session_status = static_cast<int>(read_varint(value, p));
      });
    } else {
      ADD_FAILURE() << "unexpected Event field " << number << " (wire type " << type << ")";
    }
  });
  return event;
}

// Every record of an event file, both CRCs checked.
std::vector<ReadEvent> read_event_file(const fs::path& path) {
  const std::string bytes = read_file(path);
  std::vector<ReadEvent> events;
  size_t at = 0;
  while (at < bytes.size()) {
    if (at + 12 > bytes.size()) throw std::runtime_error("truncated record header");
    const uint64_t length = read_le(bytes, at, 8);
    EXPECT_EQ(read_le(bytes, at + 8, 4), masked_crc32c(bytes.substr(at, 8))) << "length crc";
    if (at + 12 + length + 4 > bytes.size()) throw std::runtime_error("truncated record");
    const std::string data = bytes.substr(at + 12, length);
    EXPECT_EQ(read_le(bytes, at + 12 + length, 4), masked_crc32c(data)) << "data crc";
    events.push_back(decode_event(data));
    at += 12 + length + 4;
  }
  return events;
}

std::vector<fs::path> event_files(const fs::path& dir) {
  std::vector<fs::path> files;
  if (!fs::exists(dir)) return files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.path().filename().string().find("tfevents") != std::string::npos) {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());  // TensorBoard reads a folder's files in name order
  return files;
}

std::vector<json> read_lines(const fs::path& path) {
  std::vector<json> lines;
  std::istringstream text(read_file(path));
  for (std::string line; std::getline(text, line);) {
    if (!line.empty()) lines.push_back(json::parse(line));
  }
  return lines;
}

// What TensorBoard shows of a folder: its files in name order, the scalar events, with the
// steps at or after a SessionLog START dropped from what came before (EventAccumulator's
// purge_orphaned_data for file_version 2).
std::vector<ReadEvent> merged_scalar_events(const std::vector<fs::path>& files) {
  std::vector<ReadEvent> merged;
  for (const fs::path& file : files) {
    const std::vector<ReadEvent> events = read_event_file(file);
    EXPECT_FALSE(events.empty()) << file;
    if (events.empty()) continue;
    EXPECT_EQ(events[0].file_version, "brain.Event:2") << file;
    for (size_t i = 1; i < events.size(); ++i) {
      if (events[i].session_status == 1) {
        std::erase_if(merged, [&](const ReadEvent& e) { return e.step >= events[i].step; });
      } else {
        merged.push_back(events[i]);
      }
    }
  }
  return merged;
}

// Each metrics.jsonl line is one event at its step, with every numeric field but the step as
// a scalar under HF's tag (eval_X -> eval/X, X -> train/X), nothing else.
void expect_events_match_metrics(const std::vector<ReadEvent>& events,
                                 const std::vector<json>& lines) {
  ASSERT_EQ(events.size(), lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    SCOPED_TRACE("metrics line " + std::to_string(i) + ": " + lines[i].dump());
    EXPECT_EQ(events[i].step, lines[i].at("step").get<int64_t>());
    size_t numeric = 0;
    for (const auto& [key, value] : lines[i].items()) {
      if (key == "step" || !value.is_number()) continue;
      ++numeric;
      const std::string tag = key.rfind("eval_", 0) == 0 ? "eval/" + key.substr(5) : "train/" + key;
      ASSERT_EQ(events[i].scalars.count(tag), 1u) << tag;
      EXPECT_EQ(events[i].scalars.at(tag), value.get<float>()) << tag;
    }
    EXPECT_EQ(events[i].scalars.size(), numeric);
  }
}

// --- The pieces. ---

TEST(Crc32c, PublishedCheckValues) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);  // the CRC catalogue's check value
  EXPECT_EQ(crc32c(""), 0u);
  // RFC 3720 (iSCSI) appendix B.4: 32 bytes of zeros, of 0xFF, and 0x00..0x1F.
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc32c(std::string(32, '\xFF')), 0x62A8AB43u);
  std::string ascending;
  for (int i = 0; i < 32; ++i) ascending.push_back(static_cast<char>(i));
  EXPECT_EQ(crc32c(ascending), 0x46DD794Eu);
}

TEST(Crc32c, MaskIsRotateAndAdd) {
  const uint32_t crc = 0xE3069283u;
  EXPECT_EQ(masked_crc32c("123456789"), ((crc >> 15) | (crc << 17)) + 0xa282ead8u);
}

// The three messages below are byte for byte what tensorboard 2.21.0's event_pb2 gives
// (Event(...).SerializeToString(), the version scripts/check_tensorboard.py pins).
TEST(TensorBoardEvent, BytesFollowTheProtobufWireFormat) {
  // Event{wall_time: 1.5, step: 3, summary{value{tag: "a", simple_value: 2}}}, worked by hand:
  // 0x09 = field 1 fixed64 (1.5 = 0x3FF8000000000000), 0x10 = field 2 varint,
  // 0x2A = field 5 bytes (len 10): Summary 0x0A = field 1 bytes (len 8): Value 0x0A = tag
  // (len 1) 'a', 0x15 = field 2 fixed32 (2.0f = 0x40000000).
  const std::string expected(
      "\x09\x00\x00\x00\x00\x00\x00\xF8\x3F"
      "\x10\x03"
      "\x2A\x0A\x0A\x08\x0A\x01\x61\x15\x00\x00\x00\x40",
      23);
  EXPECT_EQ(encode_scalars_event(1.5, 3, {{"a", 2.0f}}), expected);
  // The first record: wall_time, file_version "brain.Event:2" (field 3), no step (it is 0).
  const std::string version = encode_file_version_event(1.5);
  EXPECT_EQ(version,
            std::string("\x09\x00\x00\x00\x00\x00\x00\xF8\x3F\x1A\x0D", 11) + "brain.Event:2");
  // SessionLog{status: START} as field 7 (6 is the deprecated log_message); a step above 127
  // takes two varint bytes.
  EXPECT_EQ(encode_session_start_event(1.5, 300),
            std::string("\x09\x00\x00\x00\x00\x00\x00\xF8\x3F\x10\xAC\x02\x3A\x02\x08\x01", 16));
}

TEST(TensorBoardEvent, RecordFraming) {
  const std::string record = tfrecord_frame("abc");
  ASSERT_EQ(record.size(), 8u + 4 + 3 + 4);
  EXPECT_EQ(record.substr(0, 8), std::string("\x03\0\0\0\0\0\0\0", 8));
  EXPECT_EQ(read_le(record, 8, 4), masked_crc32c(record.substr(0, 8)));
  EXPECT_EQ(record.substr(12, 3), "abc");
  EXPECT_EQ(read_le(record, 15, 4), masked_crc32c("abc"));
}

TEST(TensorBoardEvent, MetricsLineBecomesHfTags) {
  const json line = {{"step", 10},
                     {"loss", 1.25},
                     {"learning_rate", 1e-5},
                     {"mfu", nullptr},
                     {"eval_loss", 0.5},
                     {"compute_precision", "fp32"},
                     {"peak_rss_bytes", 123456789}};
  std::map<std::string, float> got;
  for (const auto& scalar : tensorboard_scalars(line)) got[scalar.tag] = scalar.value;
  const std::map<std::string, float> expected = {{"train/loss", 1.25f},
                                                 {"train/learning_rate", 1e-5f},
                                                 {"eval/loss", 0.5f},
                                                 {"train/peak_rss_bytes", 123456789.0f}};
  EXPECT_EQ(got, expected);
}

TEST(TensorBoardEvent, ReportToNames) {
  EXPECT_TRUE(reports_to_tensorboard("tensorboard"));
  EXPECT_TRUE(reports_to_tensorboard("all"));
  EXPECT_TRUE(reports_to_tensorboard("none,tensorboard"));
  EXPECT_FALSE(reports_to_tensorboard("none"));
  EXPECT_FALSE(reports_to_tensorboard(""));
  EXPECT_NE(test::error_of([] {
              reports_to_tensorboard("wandb");
            }).find("[train] --report_to wandb is not supported"),
            std::string::npos);
}

TEST(TensorBoardWriter, FileReadsBackAsWritten) {
  test::TempDir dir;
  fs::path path;
  const std::vector<json> lines = {
      {{"step", 1}, {"loss", 2.5}, {"learning_rate", 3e-4}, {"grad_norm", 0.75}, {"mfu", nullptr}},
      {{"step", 2}, {"eval_loss", 2.25}, {"epoch", 0.5}},
      {{"step", 200}, {"loss", -1.0}, {"tokens_per_s", 12345.5}}};
  {
    TensorBoardWriter writer(dir / "logs");
    path = writer.path();
    for (const json& line : lines) writer.write_metrics(line);
    writer.write_metrics({{"note", "no step: nothing written"}});
    // Flushed at every line: the file is complete before the writer closes.
    EXPECT_EQ(read_event_file(path).size(), 1 + lines.size());
  }
  EXPECT_EQ(path.parent_path(), dir / "logs");
  EXPECT_EQ(path.filename().string().rfind("events.out.tfevents.", 0), 0u) << path;
  const std::vector<ReadEvent> events = read_event_file(path);
  ASSERT_EQ(events.size(), 1 + lines.size());
  EXPECT_EQ(events[0].file_version, "brain.Event:2");
  EXPECT_TRUE(events[0].scalars.empty());
  EXPECT_GT(events[0].wall_time, 1.7e9);  // seconds since 1970, not milliseconds
  EXPECT_LT(events[0].wall_time, 1e10);
  expect_events_match_metrics({events.begin() + 1, events.end()}, lines);
  // A second writer in the same second gets its own file.
  TensorBoardWriter second(dir / "logs");
  EXPECT_NE(second.path(), path);
}

// --- Through the trainer. ---

TEST(TensorBoardTraining, OneScalarPerMetricsFieldPerLoggedStep) {
  test::TempDir out;
  TrainingArgs args = small_args(out / "run");
  args.report_to = "tensorboard";
  args.eval_steps = 5;  // eval lines too
  Trainer trainer(args, *tiny().weights, tiny().prepared.train, tiny().prepared.eval, {});
  trainer.train();
  const std::vector<fs::path> files = event_files(out / "run");
  ASSERT_EQ(files.size(), 1u);
  // HF's default: <output_dir>/runs/<Mon><DD>_<HH>-<MM>-<SS>_<host>/.
  EXPECT_EQ(files[0].parent_path().parent_path(), out / "run" / "runs");
  const std::string run_name = files[0].parent_path().filename().string();
  // "Mon" "DD" "_" "HH" "-" "MM" "-" "SS" "_" host: letters, digits and separators by place
  // (no std::regex: GCC 12's ASan build warns inside <regex>).
  const std::string shape = "Aaa00_00-00-00_";
  bool matches = run_name.size() > shape.size();
  for (size_t i = 0; matches && i < shape.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(run_name[i]);
    switch (shape[i]) {
      case 'A':
        matches = std::isupper(c) != 0;
        break;
      case 'a':
        matches = std::islower(c) != 0;
        break;
      case '0':
        matches = std::isdigit(c) != 0;
        break;
      default:
        matches = run_name[i] == shape[i];
    }
  }
  EXPECT_TRUE(matches) << run_name;
  const std::vector<json> lines = read_lines(out / "run" / "metrics.jsonl");
  ASSERT_GT(lines.size(), 10u);  // 10 steps, evals, the summary
  const std::vector<ReadEvent> events = merged_scalar_events(files);
  expect_events_match_metrics(events, lines);
  // HF's names for the curves everyone looks at.
  std::map<std::string, int> tag_count;
  for (const ReadEvent& event : events) {
    for (const auto& [tag, value] : event.scalars) ++tag_count[tag];
  }
  for (const char* tag : {"train/loss", "train/learning_rate", "train/grad_norm", "train/epoch",
                          "eval/loss", "train/tokens_per_s", "train/peak_rss_bytes"}) {
    EXPECT_GT(tag_count[tag], 0) << tag;
  }
  EXPECT_EQ(tag_count["train/loss"], 10);
}

TEST(TensorBoardTraining, OtherIntegrationsAreRefusedBeforeTraining) {
  test::TempDir out;
  TrainingArgs args = small_args(out / "run");
  args.report_to = "wandb";
  EXPECT_NE(test::error_of([&] {
              validate_training_args(args);
            }).find("--report_to wandb is not supported"),
            std::string::npos);
  args.report_to = "none";
  EXPECT_NO_THROW(validate_training_args(args));
}

TEST(TensorBoardTraining, NoEventFileWithoutReportTo) {
  test::TempDir out;
  TrainingArgs args = small_args(out / "run");
  args.max_steps = 2;
  Trainer trainer(args, *tiny().weights, tiny().prepared.train, tiny().prepared.eval, {});
  trainer.train();
  EXPECT_TRUE(event_files(out / "run").empty());
  EXPECT_FALSE(fs::exists(out / "run" / "runs"));
}

TEST(TensorBoardTraining, ExplicitLoggingDir) {
  test::TempDir out;
  TrainingArgs args = small_args(out / "run");
  args.max_steps = 2;
  args.report_to = "all";
  args.logging_dir = (out / "tb").string();
  Trainer trainer(args, *tiny().weights, tiny().prepared.train, tiny().prepared.eval, {});
  trainer.train();
  const std::vector<fs::path> files = event_files(out / "tb");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].parent_path(), out / "tb");
  EXPECT_FALSE(fs::exists(out / "run" / "runs"));
  expect_events_match_metrics(merged_scalar_events(files),
                              read_lines(out / "run" / "metrics.jsonl"));
}

TEST(TensorBoardTraining, ResumeAddsAFileAndNoStepTwice) {
  test::TempDir out;
  TrainingArgs args = small_args(out / "run");
  args.report_to = "tensorboard";
  {
    // 10 steps, as if killed after step 10 but resumed from checkpoint-5: steps 6..10 of the
    // first file are stale.
    Trainer trainer(args, *tiny().weights, tiny().prepared.train, tiny().prepared.eval, {});
    trainer.train();
  }
  const std::vector<fs::path> first = event_files(out / "run");
  ASSERT_EQ(first.size(), 1u);
  TrainingArgs resumed = args;
  resumed.resume_from_checkpoint = (out / "run" / "checkpoint-5").string();
  {
    Trainer trainer(resumed, *tiny().weights, tiny().prepared.train, tiny().prepared.eval, {});
    trainer.train();
  }
  const std::vector<fs::path> files = event_files(out / "run");
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0], first[0]);
  EXPECT_EQ(files[1].parent_path(), first[0].parent_path()) << "the run's folder, kept";
  // The new file: file_version, START at step 6, then only the steps the resume took.
  const std::vector<ReadEvent> second = read_event_file(files[1]);
  ASSERT_GE(second.size(), 2u);
  EXPECT_EQ(second[1].session_status, 1);
  EXPECT_EQ(second[1].step, 6);
  for (size_t i = 2; i < second.size(); ++i) EXPECT_GE(second[i].step, 6);
  // The folder as TensorBoard merges it is metrics.jsonl, line for line.
  expect_events_match_metrics(merged_scalar_events(files),
                              read_lines(out / "run" / "metrics.jsonl"));
}

}  // namespace
}  // namespace ll
