// See tensorboard.h.
#include "train/tensorboard.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

#include "core/error.h"

namespace ll {
namespace {

constexpr const char* kOrigin = "tensorboard";

// crc_table[b]: the CRC of byte b alone, for the byte-at-a-time reflected algorithm.
constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t crc = b;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1) ? 0x82F63B78u : 0);
    table[b] = crc;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = make_crc32c_table();

// Protobuf wire format (protobuf.dev/programming-guides/encoding): a key is
// (field_number << 3) | wire_type; 0 varint, 1 fixed 64-bit, 2 length-delimited, 5 fixed 32.
enum class WireType : uint8_t { Varint = 0, Fixed64 = 1, LengthDelimited = 2, Fixed32 = 5 };

void put_varint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

void put_key(std::string& out, uint32_t field, WireType type) {
  put_varint(out, (static_cast<uint64_t>(field) << 3) | static_cast<uint8_t>(type));
}

void put_little_endian(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

void put_bytes(std::string& out, uint32_t field, std::string_view bytes) {
  put_key(out, field, WireType::LengthDelimited);
  put_varint(out, bytes.size());
  out.append(bytes);
}

void put_double(std::string& out, uint32_t field, double value) {
  uint64_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  put_key(out, field, WireType::Fixed64);
  put_little_endian(out, bits, 8);
}

void put_float(std::string& out, uint32_t field, float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  put_key(out, field, WireType::Fixed32);
  put_little_endian(out, bits, 4);
}

// int64 is a varint of the two's-complement value (negative steps take 10 bytes).
void put_int64(std::string& out, uint32_t field, int64_t value) {
  put_key(out, field, WireType::Varint);
  put_varint(out, static_cast<uint64_t>(value));
}

// Event's head: wall_time = 1 and, when not 0 (proto3 leaves defaults out), step = 2.
std::string event_head(double wall_time, int64_t step) {
  std::string event;
  put_double(event, 1, wall_time);
  if (step != 0) put_int64(event, 2, step);
  return event;
}

double unix_seconds_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost";
  std::string host = name;
  for (char& c : host) {
    if (c == '/') c = '_';  // a file name component
  }
  return host;
}

}  // namespace

uint32_t crc32c(std::string_view bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (const char c : bytes) {
    crc = kCrc32cTable[(crc ^ static_cast<uint8_t>(c)) & 0xFF] ^ (crc >> 8);
  }
  return crc ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(std::string_view bytes) {
  const uint32_t crc = crc32c(bytes);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string tfrecord_frame(std::string_view data) {
  std::string length;
  put_little_endian(length, data.size(), 8);
  std::string record = length;
  put_little_endian(record, masked_crc32c(length), 4);
  record.append(data);
  put_little_endian(record, masked_crc32c(data), 4);
  return record;
}

std::string encode_file_version_event(double wall_time) {
  std::string event = event_head(wall_time, 0);
  put_bytes(event, 3, "brain.Event:2");
  return event;
}

std::string encode_session_start_event(double wall_time, int64_t step) {
  std::string session_log;
  put_key(session_log, 1, WireType::Varint);
  put_varint(session_log, 1);  // SessionLog.START
  std::string event = event_head(wall_time, step);
  put_bytes(event, 7, session_log);  // 6 is the deprecated log_message
  return event;
}

std::string encode_scalars_event(double wall_time, int64_t step,
                                 const std::vector<TensorBoardScalar>& scalars) {
  std::string summary;
  for (const TensorBoardScalar& scalar : scalars) {
    std::string value;
    put_bytes(value, 1, scalar.tag);
    put_float(value, 2, scalar.value);
    put_bytes(summary, 1, value);
  }
  std::string event = event_head(wall_time, step);
  put_bytes(event, 5, summary);
  return event;
}

std::vector<TensorBoardScalar> tensorboard_scalars(const nlohmann::json& metrics_line) {
  std::vector<TensorBoardScalar> scalars;
  if (!metrics_line.is_object()) return scalars;
  for (const auto& [key, value] : metrics_line.items()) {
    if (key == "step" || !value.is_number()) continue;
    const bool eval = key.rfind("eval_", 0) == 0;
    scalars.push_back({eval ? "eval/" + key.substr(5) : "train/" + key, value.get<float>()});
  }
  return scalars;
}

fs::path default_logging_dir(const fs::path& output_dir) {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char stamp[32];
  // %b in the C locale, as Python's default: "Dec03_12-45-00".
  std::strftime(stamp, sizeof stamp, "%b%d_%H-%M-%S", &local);
  return output_dir / "runs" / (std::string(stamp) + "_" + host_name());
}

bool reports_to_tensorboard(const std::string& report_to) {
  bool tensorboard = false;
  size_t start = 0;
  while (start <= report_to.size()) {
    const size_t comma = std::min(report_to.find(',', start), report_to.size());
    const std::string name = report_to.substr(start, comma - start);
    if (name == "tensorboard" || name == "all") {
      tensorboard = true;
    } else if (!name.empty() && name != "none") {
      fail("train", "--report_to " + name +
                        " is not supported: llama-lora writes TensorBoard event files only "
                        "(accepted: tensorboard, all, none)");
    }
    start = comma + 1;
  }
  return tensorboard;
}

TensorBoardWriter::TensorBoardWriter(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  check(!ec && fs::is_directory(dir, ec), kOrigin,
        dir.string() + ": cannot create folder: " + ec.message());
  const double now = unix_seconds_now();
  const std::string base =
      "events.out.tfevents." + std::to_string(static_cast<int64_t>(now)) + "." + host_name();
  path_ = dir / base;
  for (int n = 2; fs::exists(path_, ec); ++n) path_ = dir / (base + "." + std::to_string(n));
  file_ = std::fopen(path_.c_str(), "wb");
  if (!file_) {
    fail(kOrigin, path_.string() + ": cannot open for writing: " + std::strerror(errno));
  }
  write_record(encode_file_version_event(now));
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_) std::fclose(file_);
}

void TensorBoardWriter::write_session_start(int64_t first_step) {
  write_record(encode_session_start_event(unix_seconds_now(), first_step));
}

void TensorBoardWriter::write_metrics(const nlohmann::json& metrics_line) {
  if (!metrics_line.is_object() || !metrics_line.contains("step") ||
      !metrics_line["step"].is_number_integer()) {
    return;
  }
  const std::vector<TensorBoardScalar> scalars = tensorboard_scalars(metrics_line);
  if (scalars.empty()) return;
  write_record(
      encode_scalars_event(unix_seconds_now(), metrics_line["step"].get<int64_t>(), scalars));
}

void TensorBoardWriter::write_record(const std::string& event) {
  const std::string record = tfrecord_frame(event);
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size() ||
      std::fflush(file_) != 0) {
    fail(kOrigin, path_.string() + ": write failed: " + std::strerror(errno));
  }
}

}  // namespace ll
