// TensorBoard event files (`--report_to tensorboard`), written without TensorFlow or a
// protobuf library: the format is small and fixed, so a table CRC and a dozen lines of
// protobuf wire encoding are less to carry than two dependencies.
//
//   file      <logging_dir>/events.out.tfevents.<unix seconds>.<hostname>, as TF names it
//             (".2", ".3", ... appended if that name exists: a resume in the same second).
//   record    TFRecord framing (tensorflow/core/lib/io/record_writer.cc):
//               uint64 length (little-endian) | uint32 masked_crc32c(length bytes)
//               | data | uint32 masked_crc32c(data)
//             with masked_crc32c(x) = ((c >> 15) | (c << 17)) + 0xa282ead8, c = crc32c(x).
//   data      a serialized tensorflow.Event (event.proto, summary.proto):
//               Event   { double wall_time = 1; int64 step = 2; string file_version = 3;
//                         Summary summary = 5; SessionLog session_log = 7; }
//               Summary { repeated Value value = 1; }
//               Value   { string tag = 1; float simple_value = 2; }
//               SessionLog { SessionStatus status = 1; }   START = 1
//   order     first an Event with file_version "brain.Event:2"; on resume an Event with
//             session_log START at the first resumed step, so that TensorBoard drops what a
//             killed run logged after its checkpoint (EventAccumulator purges steps >= it);
//             then one Event per metrics.jsonl line, flushed at once (a live TensorBoard
//             follows the run, a crash keeps every line written).
//   tags      Hugging Face's rewrite_logs: "eval_X" -> "eval/X", every other key "train/X";
//             "step" is the Event's step; null, text and booleans are skipped (mfu may be null).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/file.h"

namespace ll {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78); crc32c("123456789") = 0xE3069283.
uint32_t crc32c(std::string_view bytes);
// TFRecord's masked form: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
uint32_t masked_crc32c(std::string_view bytes);

// `data` framed as one TFRecord.
std::string tfrecord_frame(std::string_view data);

struct TensorBoardScalar {
  std::string tag;
  float value = 0;
};

// Serialized tensorflow.Event messages.
std::string encode_file_version_event(double wall_time);
std::string encode_session_start_event(double wall_time, int64_t step);
std::string encode_scalars_event(double wall_time, int64_t step,
                                 const std::vector<TensorBoardScalar>& scalars);

// The scalars of one metrics.jsonl line under Hugging Face's tags (see "tags" above).
std::vector<TensorBoardScalar> tensorboard_scalars(const nlohmann::json& metrics_line);

// HF TrainingArguments' default logging_dir: <output_dir>/runs/<Mon><DD>_<HH>-<MM>-<SS>_<host>
// (datetime.now().strftime("%b%d_%H-%M-%S"), local time).
fs::path default_logging_dir(const fs::path& output_dir);

// True when --report_to names tensorboard: "tensorboard" or "all" (HF: every integration
// installed; tensorboard is ours), in a comma list; "none" or "" is false. Other names are an
// error "[train] --report_to wandb is not supported (...)".
bool reports_to_tensorboard(const std::string& report_to);

class TensorBoardWriter {
 public:
  // Creates `dir` and a new event file in it, and writes the file_version record.
  // "[tensorboard] DIR: ..." when it cannot.
  explicit TensorBoardWriter(const fs::path& dir);
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;
  ~TensorBoardWriter();

  // A resumed run: its first step is `first_step`; earlier-logged later steps are stale.
  void write_session_start(int64_t first_step);
  // One Event at metrics_line["step"] with its scalars; flushed. Lines without scalars or
  // without a step write nothing.
  void write_metrics(const nlohmann::json& metrics_line);

  const fs::path& path() const { return path_; }

 private:
  void write_record(const std::string& event);
  fs::path path_;
  std::FILE* file_ = nullptr;
};

}  // namespace ll
