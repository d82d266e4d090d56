// safetensors writing: one file (streamed, atomic) and a sharded model folder in the
// layout transformers' save_pretrained writes. See safetensors.h.
//
// The header is written the way the reference library (Rust `safetensors`, used by
// torch's save_file) writes it: compact JSON, "__metadata__" first, then each tensor as
// {"dtype","shape","data_offsets"} in data order, padded with spaces to a multiple of 8
// bytes so the data section starts 8-byte aligned.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <string_view>

#include "core/error.h"
#include "core/text.h"
#include "formats/input_checks.h"
#include "formats/safetensors.h"

namespace ll {
namespace {

using nlohmann::json;

constexpr std::string_view kOrigin = "safetensors";

[[noreturn]] void fail_at(const fs::path& path, const std::string& what) {
  fail(kOrigin, path.string() + ": " + what);
}

std::string errno_text() {
  return std::strerror(errno);
}

// A JSON string literal; names must be valid UTF-8 (the reference reader requires it).
std::string json_string(const std::string& text, const fs::path& path) {
  try {
    return json(text).dump();
  } catch (const json::exception&) {
    fail_at(path, "name " + quote_name(text) + " is not valid UTF-8");
  }
}

// Checks names, dims and sizes, and fills in offset and nbytes in the given order.
std::vector<TensorInfo> plan_layout(std::span<const TensorInfo> layout, const fs::path& path) {
  std::vector<TensorInfo> planned(layout.begin(), layout.end());
  std::set<std::string_view> seen;
  uint64_t offset = 0;
  for (TensorInfo& info : planned) {
    if (info.name == "__metadata__") fail_at(path, "'__metadata__' cannot be a tensor name");
    if (!seen.insert(info.name).second) fail_at(path, "tensor " + quote_name(info.name) + " twice");
    const std::optional<uint64_t> numel = checked_numel(info.shape);
    uint64_t nbytes = 0;
    if (!numel || __builtin_mul_overflow(*numel, dtype_size(info.dtype), &nbytes) ||
        __builtin_add_overflow(offset, nbytes, &offset)) {
      fail_at(path, "tensor " + quote_name(info.name) + " has an invalid shape " +
                        shape_text(info.shape));
    }
    info.offset = offset - nbytes;
    info.nbytes = nbytes;
  }
  return planned;
}

std::string header_json(const std::vector<TensorInfo>& layout, const Metadata& metadata,
                        const fs::path& path) {
  std::string out = "{";
  if (!metadata.empty()) {
    out += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [key, value] : metadata) {
      if (!first) out += ",";
      first = false;
      out += json_string(key, path) + ":" + json_string(value, path);
    }
    out += "}";
  }
  for (const TensorInfo& info : layout) {
    if (out.size() > 1) out += ",";
    out += json_string(info.name, path) + ":{\"dtype\":\"" + std::string(dtype_name(info.dtype)) +
           "\",\"shape\":[";
    for (size_t i = 0; i < info.shape.size(); ++i) {
      if (i > 0) out += ",";
      out += std::to_string(info.shape[i]);
    }
    out += "],\"data_offsets\":[" + std::to_string(info.offset) + "," +
           std::to_string(info.offset + info.nbytes) + "]}";
  }
  out += "}";
  out.append((8 - out.size() % 8) % 8, ' ');
  return out;
}

std::vector<TensorInfo> layout_of(std::span<const TensorToWrite> tensors, const fs::path& path) {
  std::vector<TensorInfo> layout;
  layout.reserve(tensors.size());
  for (const TensorToWrite& tensor : tensors) {
    TensorInfo info;
    info.name = tensor.name;
    info.dtype = tensor.dtype;
    info.shape = tensor.shape;
    layout.push_back(std::move(info));
  }
  // Check every tensor's byte count before a file is created.
  const std::vector<TensorInfo> planned = plan_layout(layout, path);
  for (size_t i = 0; i < planned.size(); ++i) {
    if (tensors[i].data.size() != planned[i].nbytes) {
      fail_at(path, "tensor " + quote_name(planned[i].name) + " has shape " +
                        shape_text(planned[i].shape) + " " +
                        std::string(dtype_name(planned[i].dtype)) + " (" +
                        format_count(planned[i].nbytes) + " bytes) but " +
                        format_count(tensors[i].data.size()) + " bytes were given");
    }
  }
  return layout;
}

// model.safetensors, model.safetensors.index.json or model-NNNNN-of-NNNNN.safetensors:
// the names save_pretrained gives model weights (matched by hand: std::regex trips GCC
// 12's -Wmaybe-uninitialized at -O1, which the sanitizer build uses).
bool is_weights_file_name(const std::string& name) {
  if (name == "model.safetensors" || name == "model.safetensors.index.json") return true;
  constexpr std::string_view pattern = "model-#####-of-#####.safetensors";
  if (name.size() != pattern.size()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const bool ok = pattern[i] == '#' ? (name[i] >= '0' && name[i] <= '9') : name[i] == pattern[i];
    if (!ok) return false;
  }
  return true;
}

// plan_safetensors_shards, with errors naming `where` (the folder being written).
std::vector<SafetensorsShard> plan_shards(std::span<const TensorInfo> layout,
                                          uint64_t max_shard_bytes, const fs::path& where) {
  if (max_shard_bytes == 0) fail_at(where, "max_shard_bytes must be positive");
  const std::vector<TensorInfo> planned = plan_layout(layout, where);
  std::vector<SafetensorsShard> shards;
  SafetensorsShard current;
  for (size_t i = 0; i < planned.size(); ++i) {
    const uint64_t nbytes = planned[i].nbytes;
    if (nbytes > max_shard_bytes) {  // huggingface_hub: "put it in its own shard"
      shards.push_back({"", {i}, nbytes});
      continue;
    }
    if (current.nbytes + nbytes > max_shard_bytes) {
      shards.push_back(std::move(current));
      current = {};
    }
    current.tensors.push_back(i);
    current.nbytes += nbytes;
  }
  if (!current.tensors.empty() || shards.empty()) shards.push_back(std::move(current));
  for (size_t s = 0; s < shards.size(); ++s) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    shards[s].file_name = shards.size() == 1 ? "model.safetensors" : name;
  }
  return shards;
}

}  // namespace

struct SafetensorsWriter::State {
  fs::path final_path;
  fs::path temp_path;
  int fd = -1;
  std::vector<TensorInfo> layout;  // with offsets filled in
  size_t next = 0;                 // index of the next tensor write_next expects
  bool finished = false;
};

SafetensorsWriter::SafetensorsWriter(const fs::path& path, std::span<const TensorInfo> layout,
                                     const Metadata& metadata)
    : state_(std::make_unique<State>()) {
  // pid + a counter: two writers in one process (or two processes) never share a name.
  static std::atomic<uint64_t> counter{0};
  state_->final_path = path;
  state_->temp_path = path.string() + ".tmp-" + std::to_string(::getpid()) + "-" +
                      std::to_string(counter.fetch_add(1));
  state_->layout = plan_layout(layout, path);
  const std::string header = header_json(state_->layout, metadata, path);

  state_->fd = ::open(state_->temp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (state_->fd < 0) fail_at(path, "cannot create: " + errno_text());
  std::byte length[8];
  uint64_t header_bytes = header.size();
  for (std::byte& b : length) {
    b = static_cast<std::byte>(header_bytes & 0xffu);
    header_bytes >>= 8;
  }
  try {
    write_all(state_->fd, length, path);
    write_all(state_->fd, std::as_bytes(std::span(header)), path);
  } catch (...) {
    // The destructor does not run for a constructor that throws: clean up here.
    ::close(state_->fd);
    ::unlink(state_->temp_path.c_str());
    throw;
  }
}

SafetensorsWriter::~SafetensorsWriter() {
  if (state_ && !state_->finished) {
    if (state_->fd >= 0) ::close(state_->fd);
    ::unlink(state_->temp_path.c_str());
  }
}

void SafetensorsWriter::write_next(std::string_view name, std::span<const std::byte> bytes) {
  State& s = *state_;
  const fs::path& path = s.final_path;
  if (s.finished) fail_at(path, "write_next after finish()");
  if (s.next >= s.layout.size()) {
    fail_at(path, "tensor " + quote_name(name) + " written but the layout has only " +
                      std::to_string(s.layout.size()) + " tensors");
  }
  const TensorInfo& expected = s.layout[s.next];
  if (name != expected.name) {
    fail_at(path, "tensor " + quote_name(name) + " written where the layout expects " +
                      quote_name(expected.name) + " (tensors must come in layout order)");
  }
  if (bytes.size() != expected.nbytes) {
    fail_at(path, "tensor " + quote_name(name) + " needs " + format_count(expected.nbytes) +
                      " bytes but " + format_count(bytes.size()) + " were given");
  }
  write_all(s.fd, bytes, path);
  ++s.next;
}

void SafetensorsWriter::finish() {
  State& s = *state_;
  const fs::path& path = s.final_path;
  if (s.finished) return;
  if (s.next != s.layout.size()) {
    fail_at(path, "finish() after " + std::to_string(s.next) + " of " +
                      std::to_string(s.layout.size()) +
                      " tensors; next missing: " + quote_name(s.layout[s.next].name));
  }
  if (::fsync(s.fd) != 0) fail_at(path, "fsync failed: " + errno_text());
  const int closed = ::close(s.fd);
  s.fd = -1;
  if (closed != 0) fail_at(path, "close failed: " + errno_text());
  if (::rename(s.temp_path.c_str(), path.c_str()) != 0) {
    fail_at(path, "rename failed: " + errno_text());
  }
  s.finished = true;
  fsync_dir(path.parent_path());
}

void write_safetensors(const fs::path& path, std::span<const TensorToWrite> tensors,
                       const Metadata& metadata) {
  const std::vector<TensorInfo> layout = layout_of(tensors, path);
  SafetensorsWriter writer(path, layout, metadata);
  for (const TensorToWrite& tensor : tensors) writer.write_next(tensor.name, tensor.data);
  writer.finish();
}

std::vector<SafetensorsShard> plan_safetensors_shards(std::span<const TensorInfo> layout,
                                                      uint64_t max_shard_bytes) {
  return plan_shards(layout, max_shard_bytes, "shard plan");
}

std::vector<std::string> write_sharded_safetensors_streaming(
    const fs::path& dir, std::span<const TensorInfo> layout, uint64_t max_shard_bytes,
    const Metadata& metadata, const ProduceTensorBytes& produce,
    const std::function<void(const std::string& file_name)>& on_file_written) {
  const std::vector<SafetensorsShard> shards = plan_shards(layout, max_shard_bytes, dir);

  // transformers refuses a safetensors file whose metadata lacks "format".
  Metadata shard_metadata = metadata;
  shard_metadata.emplace("format", "pt");

  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail_at(dir, "cannot create folder: " + ec.message());

  std::vector<std::string> written;
  json weight_map = json::object();
  uint64_t total_bytes = 0;
  std::vector<TensorInfo> shard_layout;
  for (const SafetensorsShard& shard : shards) {
    shard_layout.clear();
    for (const size_t i : shard.tensors) shard_layout.push_back(layout[i]);
    SafetensorsWriter writer(dir / shard.file_name, shard_layout, shard_metadata);
    for (const size_t i : shard.tensors) {
      writer.write_next(layout[i].name, produce(i));  // write_next checks the byte count
      weight_map[layout[i].name] = shard.file_name;
    }
    writer.finish();
    total_bytes += shard.nbytes;
    written.push_back(shard.file_name);
    if (on_file_written) on_file_written(shard.file_name);
  }
  if (shards.size() > 1) {
    // save_pretrained writes json.dumps(index, indent=2, sort_keys=True) + "\n".
    const json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
    write_file_atomic(dir / "model.safetensors.index.json", index.dump(2) + "\n");
    written.push_back("model.safetensors.index.json");
    if (on_file_written) on_file_written(written.back());
  }

  // Like save_pretrained, remove weights of an earlier save that the new one replaces, so
  // the folder never mixes two saves (a stale index would point at stale shards).
  const std::set<std::string> keep(written.begin(), written.end());
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (keep.count(name) == 0 && is_weights_file_name(name)) fs::remove(entry.path(), ec);
  }
  return written;
}

void write_sharded_safetensors(const fs::path& dir, std::span<const TensorToWrite> tensors,
                               uint64_t max_shard_bytes, const Metadata& metadata) {
  const std::vector<TensorInfo> layout = layout_of(tensors, dir);
  write_sharded_safetensors_streaming(dir, layout, max_shard_bytes, metadata,
                                      [&](size_t i) { return tensors[i].data; });
}

uint64_t parse_max_shard_size(const std::string& text, const std::string& flag) {
  // Longest suffixes first, so "GiB" is not read as "B".
  static const std::pair<std::string_view, uint64_t> kUnits[] = {{"GiB", uint64_t{1} << 30},
                                                                 {"MiB", uint64_t{1} << 20},
                                                                 {"KiB", uint64_t{1} << 10},
                                                                 {"GB", 1'000'000'000},
                                                                 {"MB", 1'000'000},
                                                                 {"KB", 1'000},
                                                                 {"B", 1},
                                                                 {"", 1}};
  for (const auto& [unit, multiplier] : kUnits) {
    if (text.size() <= unit.size() || !text.ends_with(unit)) continue;
    const std::string_view number = std::string_view(text).substr(0, text.size() - unit.size());
    const bool digits = std::all_of(number.begin(), number.end(), [](char c) {
      return std::isdigit(static_cast<unsigned char>(c)) != 0;
    });
    if (!digits || number.size() > 18) break;
    const uint64_t value = std::stoull(std::string(number));
    if (value == 0 || value > UINT64_MAX / multiplier) break;
    return value * multiplier;
  }
  fail("safetensors",
       flag + " '" + text + "': expected a size such as 5GB, 500MB, 2GiB or a byte count");
}

}  // namespace ll
