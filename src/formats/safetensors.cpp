// safetensors reading: one file (memory-mapped, header checked field by field before any
// byte of it is trusted) and a model folder (single file or index + shards). The writers
// live in safetensors_write.cpp. See safetensors.h for the format.
//
// The checks follow the reference `safetensors` library (Rust, 0.4 to 0.8): header at most
// 100 MB, every tensor entry complete and typed, nbytes == numel * dtype size, and the
// tensors tile the data section exactly (sorted by offset, each starting where the
// previous one ended, the last ending at the end of the file).
#include "formats/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <set>

#include "core/error.h"
#include "core/text.h"
#include "formats/input_checks.h"
#include "formats/torch_checkpoint.h"

namespace ll {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; a big-endian host would need byte swaps");

namespace {

using nlohmann::json;

constexpr std::string_view kOrigin = "safetensors";
constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference library's MAX_HEADER_SIZE

[[noreturn]] void fail_at(const fs::path& path, const std::string& what) {
  fail(kOrigin, path.string() + ": " + what);
}

uint64_t read_u64_le(const std::byte* bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(bytes[i]);
  return value;
}

// A non-negative JSON integer that fits in int64 (dims) or uint64 (offsets), or nothing.
// nlohmann stores non-negative literals as unsigned and negative ones as signed, and a
// literal too large for 64 bits as a float, which is_number_integer() rejects.
std::optional<uint64_t> non_negative_integer(const json& value) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer() && value.get<int64_t>() >= 0) {
    return static_cast<uint64_t>(value.get<int64_t>());
  }
  return std::nullopt;
}

const json& required_field(const json& entry, const char* key, const fs::path& path,
                           const std::string& where) {
  const auto it = entry.find(key);
  if (it == entry.end()) fail_at(path, where + " has no '" + key + "' field");
  return *it;
}

TensorInfo parse_tensor_entry(const std::string& name, const json& entry, const fs::path& path) {
  const std::string where = "tensor " + quote_name(name);
  if (!entry.is_object()) {
    fail_at(path, where + ": header entry must be an object, got " + json_type_name(entry));
  }
  TensorInfo info;
  info.name = name;

  const json& dtype = required_field(entry, "dtype", path, where);
  if (!dtype.is_string()) {
    fail_at(path, where + ": 'dtype' must be a string, got " + json_type_name(dtype));
  }
  const auto& dtype_text = dtype.get_ref<const std::string&>();
  const std::optional<DType> parsed = parse_dtype(dtype_text);
  if (!parsed) {
    fail_at(path, where + " has dtype " + quote_name(dtype_text) +
                      ", which llama-lora does not read (supported: F32, BF16, F16, I32, I64)");
  }
  info.dtype = *parsed;

  const json& shape = required_field(entry, "shape", path, where);
  if (!shape.is_array()) {
    fail_at(path, where + ": 'shape' must be an array, got " + json_type_name(shape));
  }
  for (const json& dim : shape) {
    if (!dim.is_number_integer()) {
      fail_at(path, where + ": 'shape' entries must be integers, got " + json_type_name(dim));
    }
    const std::optional<uint64_t> size = non_negative_integer(dim);
    if (!size) {
      fail_at(path, where + " has negative dimension " + std::to_string(dim.get<int64_t>()) +
                        " in its shape");
    }
    if (*size > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      fail_at(path, where + " has dimension " + format_count(*size) + ", too large");
    }
    info.shape.push_back(static_cast<int64_t>(*size));
  }
  const std::optional<uint64_t> numel = checked_numel(info.shape);
  uint64_t expected_bytes = 0;
  if (!numel || __builtin_mul_overflow(*numel, dtype_size(info.dtype), &expected_bytes)) {
    fail_at(path, where + " has shape " + shape_text(info.shape) +
                      " whose element count overflows 64 bits");
  }

  const json& offsets = required_field(entry, "data_offsets", path, where);
  if (!offsets.is_array() || offsets.size() != 2) {
    fail_at(path, where + ": 'data_offsets' must be [begin, end], got " +
                      (offsets.is_array() ? "an array of " + std::to_string(offsets.size())
                                          : json_type_name(offsets)));
  }
  const std::optional<uint64_t> begin = non_negative_integer(offsets[0]);
  const std::optional<uint64_t> end = non_negative_integer(offsets[1]);
  if (!begin || !end) {
    fail_at(path,
            where + ": 'data_offsets' must hold two non-negative integers, got " + offsets.dump());
  }
  if (*begin > *end) {
    fail_at(path, where + " has data_offsets [" + format_count(*begin) + ", " + format_count(*end) +
                      "]: begin is after end");
  }
  info.offset = *begin;
  info.nbytes = *end - *begin;
  if (info.nbytes != expected_bytes) {
    fail_at(path, where + " has shape " + shape_text(info.shape) + " and dtype " +
                      std::string(dtype_name(info.dtype)) + " (" + format_count(expected_bytes) +
                      " bytes) but its data_offsets span " + format_count(info.nbytes) + " bytes");
  }
  return info;
}

Metadata parse_metadata(const json& value, const fs::path& path) {
  Metadata metadata;
  if (value.is_null()) return metadata;  // the reference reader accepts null
  if (!value.is_object()) {
    fail_at(path, "'__metadata__' must be an object of strings, got " + json_type_name(value));
  }
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string()) {
      fail_at(path, "'__metadata__' entry " + quote_name(key) + " must be a string, got " +
                        json_type_name(item));
    }
    metadata.emplace(key, item.get<std::string>());
  }
  return metadata;
}

// The tensors must tile [0, data_size) exactly. Reports a tensor past the end first (the
// most common corruption: a truncated download), then gaps and overlaps in offset order.
void check_coverage(const std::vector<TensorInfo>& sorted, uint64_t data_size,
                    const fs::path& path) {
  for (const TensorInfo& info : sorted) {
    const uint64_t end = info.offset + info.nbytes;  // cannot overflow: end came from the file
    if (end > data_size) {
      fail_at(path, "tensor " + quote_name(info.name) + " ends at byte " + format_count(end) +
                        " but the data section has " + format_count(data_size));
    }
  }
  uint64_t covered = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& info : sorted) {
    if (info.offset > covered) {
      fail_at(path, "bytes " + format_count(covered) + ".." + format_count(info.offset) +
                        " of the data section belong to no tensor (gap before tensor " +
                        quote_name(info.name) + ")");
    }
    if (info.offset < covered) {
      fail_at(path, "tensor " + quote_name(info.name) + " (bytes " + format_count(info.offset) +
                        ".." + format_count(info.offset + info.nbytes) + ") overlaps tensor " +
                        quote_name(previous->name) + " (bytes " + format_count(previous->offset) +
                        ".." + format_count(covered) + ")");
    }
    covered = info.offset + info.nbytes;
    previous = &info;
  }
  if (covered != data_size) {
    fail_at(path, "the data section has " + format_count(data_size) +
                      " bytes but the tensors cover only " + format_count(covered));
  }
}

// A shard name from an index file must stay inside the model folder: it is joined to the
// folder path, so "..", "/" or an absolute path would let a downloaded index make us map
// any file on the machine.
void check_shard_name(const std::string& file, const std::string& tensor,
                      const fs::path& index_path) {
  std::string problem;
  if (file.empty()) {
    problem = "is empty";
  } else if (file.front() == '/') {
    problem = "is an absolute path";
  } else if (file == ".." || file.find("../") != std::string::npos ||
             file.find("..\\") != std::string::npos) {
    problem = "escapes the model folder with '..'";
  } else if (file.find('/') != std::string::npos || file.find('\\') != std::string::npos) {
    problem = "is a path, not a file name";
  } else if (file == "." || file.find('\0') != std::string::npos) {
    problem = "is not a file name";
  }
  if (!problem.empty()) {
    fail(kOrigin, index_path.string() + ": weight_map entry " + quote_name(tensor) +
                      " names shard " + quote_name(file) + ", which " + problem +
                      " (shards must be plain file names in the model folder)");
  }
}

}  // namespace

int64_t TensorInfo::numel() const {
  // Shapes are checked on open and on write; an unchecked one reads as -1, never UB.
  const std::optional<uint64_t> count = checked_numel(shape);
  return count ? static_cast<int64_t>(*count) : -1;
}

SafetensorsFile SafetensorsFile::open(const fs::path& path) {
  SafetensorsFile file;
  file.mapped_ = map_input_file(path, kOrigin);
  const std::span<const std::byte> bytes = file.mapped_.bytes();
  if (bytes.size() < 8) {
    fail_at(path, "file has " + format_count(bytes.size()) +
                      " bytes, too short for a safetensors header (8-byte length + JSON)");
  }
  const uint64_t header_bytes = read_u64_le(bytes.data());
  if (header_bytes > kMaxHeaderBytes) {
    fail_at(path, "header length " + format_count(header_bytes) + " bytes exceeds the " +
                      format_count(kMaxHeaderBytes) + "-byte limit (not a safetensors file?)");
  }
  if (header_bytes > bytes.size() - 8) {
    fail_at(path, "header length " + format_count(header_bytes) +
                      " bytes runs past the end of the file (" + format_count(bytes.size()) +
                      " bytes)");
  }
  const std::string_view header_text(reinterpret_cast<const char*>(bytes.data() + 8), header_bytes);
  const json header = parse_json_text(header_text, kOrigin, path.string() + ": header");
  if (!header.is_object()) {
    fail_at(path, "header must be a JSON object, got " + json_type_name(header));
  }
  file.data_start_ = 8 + header_bytes;
  const uint64_t data_size = bytes.size() - file.data_start_;

  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      file.metadata_ = parse_metadata(value, path);
    } else {
      file.tensors_.push_back(parse_tensor_entry(key, value, path));
    }
  }
  std::sort(file.tensors_.begin(), file.tensors_.end(),
            [](const TensorInfo& a, const TensorInfo& b) {
              if (a.offset != b.offset) return a.offset < b.offset;
              if (a.nbytes != b.nbytes) return a.nbytes < b.nbytes;  // zero-sized first
              return a.name < b.name;
            });
  check_coverage(file.tensors_, data_size, path);
  for (size_t i = 0; i < file.tensors_.size(); ++i) {
    file.by_name_.emplace(file.tensors_[i].name, i);
  }
  return file;
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

std::span<const std::byte> SafetensorsFile::data(const TensorInfo& info) const {
  // info came from this file's validated header, so the range is inside the map.
  return mapped_.bytes().subspan(data_start_ + info.offset, info.nbytes);
}

namespace {

// Shards and single files are read by their extension: .safetensors, else torch.save.
std::unique_ptr<TensorFile> open_weight_file(const fs::path& path) {
  if (path.extension() == ".safetensors") {
    return std::make_unique<SafetensorsFile>(SafetensorsFile::open(path));
  }
  return TorchStateDictFile::open(path);
}

// transformers' and peft's fallback names when no safetensors weights exist.
std::string torch_twin(std::string_view safetensors_name) {
  if (safetensors_name == "model.safetensors") return "pytorch_model.bin";
  if (safetensors_name == "adapter_model.safetensors") return "adapter_model.bin";
  return "";
}

}  // namespace

SafetensorsModel SafetensorsModel::open(const fs::path& dir, std::string_view single_file,
                                        std::string_view index_file) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail(kOrigin, dir.string() + ": no such folder");
  // transformers looks for the single file before the index, and safetensors before
  // pytorch_model.bin; so do we.
  if ((!single_file.empty() && fs::exists(dir / single_file, ec)) ||
      (!index_file.empty() && fs::exists(dir / index_file, ec))) {
    return open_files(dir, single_file, index_file);
  }
  const std::string twin = torch_twin(single_file);
  const std::string twin_index = twin.empty() ? "" : twin + ".index.json";
  if (!twin.empty() && (fs::exists(dir / twin, ec) || fs::exists(dir / twin_index, ec))) {
    return open_files(dir, twin, twin_index);
  }
  fail(kOrigin, dir.string() + ": has neither " + std::string(single_file) + " nor " +
                    std::string(index_file) +
                    (twin.empty() ? "" : " (nor " + twin + " / " + twin_index + ")") +
                    " (not a model folder?)");
}

SafetensorsModel SafetensorsModel::open_files(const fs::path& dir, std::string_view single_file,
                                              std::string_view index_file) {
  SafetensorsModel model;
  model.dir_ = dir;
  std::error_code ec;
  const fs::path single = dir / single_file;
  const fs::path index_path = dir / index_file;
  if (!single_file.empty() && fs::exists(single, ec)) {
    model.files_.push_back(open_weight_file(single));
    for (const TensorInfo& info : model.files_[0]->tensors()) {
      model.index_.emplace(info.name, std::make_pair(size_t{0}, &info));
    }
    return model;
  }

  const json index = parse_json_text(read_file(index_path), kOrigin, index_path.string());
  if (!index.is_object()) {
    fail(kOrigin, index_path.string() + ": must be a JSON object, got " + json_type_name(index));
  }
  const auto weight_map = index.find("weight_map");
  if (weight_map == index.end()) fail(kOrigin, index_path.string() + ": has no 'weight_map'");
  if (!weight_map->is_object()) {
    fail(kOrigin, index_path.string() + ": 'weight_map' must be an object, got " +
                      json_type_name(*weight_map));
  }
  if (weight_map->empty()) fail(kOrigin, index_path.string() + ": 'weight_map' lists no tensors");

  // Validate every entry before opening anything, then open each shard once.
  std::set<std::string> shard_names;
  for (const auto& [tensor, file] : weight_map->items()) {
    if (!file.is_string()) {
      fail(kOrigin, index_path.string() + ": weight_map entry " + quote_name(tensor) +
                        " must be a string (a shard file name), got " + json_type_name(file));
    }
    check_shard_name(file.get<std::string>(), tensor, index_path);
    shard_names.insert(file.get<std::string>());
  }
  std::map<std::string, size_t, std::less<>> shard_slot;
  for (const std::string& name : shard_names) {
    const fs::path shard = dir / name;
    if (!fs::is_regular_file(shard, ec)) {
      fail(kOrigin, index_path.string() + ": shard " + quote_name(name) + " is missing from " +
                        dir.string());
    }
    shard_slot.emplace(name, model.files_.size());
    model.files_.push_back(open_weight_file(shard));
  }
  for (const auto& [tensor, file] : weight_map->items()) {
    const size_t slot = shard_slot.find(file.get_ref<const std::string&>())->second;
    const TensorInfo* info = model.files_[slot]->find(tensor);
    if (info == nullptr) {
      fail(kOrigin, index_path.string() + ": weight_map puts tensor " + quote_name(tensor) +
                        " in " + quote_name(file.get<std::string>()) +
                        ", which has no such tensor");
    }
    model.index_.emplace(tensor, std::make_pair(slot, info));
  }
  // A shard may hold tensors the weight_map does not list (transformers loads whole
  // shards); keep them, but one name in two shards is ambiguous.
  for (size_t slot = 0; slot < model.files_.size(); ++slot) {
    for (const TensorInfo& info : model.files_[slot]->tensors()) {
      const auto [it, inserted] = model.index_.emplace(info.name, std::make_pair(slot, &info));
      if (!inserted && it->second.first != slot) {
        fail(kOrigin, index_path.string() + ": tensor " + quote_name(info.name) + " is in both " +
                          model.files_[it->second.first]->path().filename().string() + " and " +
                          model.files_[slot]->path().filename().string());
      }
    }
  }
  return model;
}

std::vector<std::string> SafetensorsModel::tensor_names() const {
  std::vector<std::string> names;
  names.reserve(index_.size());
  for (const auto& entry : index_) names.push_back(entry.first);
  return names;  // std::map keeps them sorted
}

bool SafetensorsModel::contains(std::string_view name) const {
  return index_.find(name) != index_.end();
}

const TensorInfo& SafetensorsModel::info(std::string_view name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) {
    fail(kOrigin, dir_.string() + ": the model has no tensor " + quote_name(name));
  }
  return *it->second.second;
}

std::span<const std::byte> SafetensorsModel::data(std::string_view name) const {
  const TensorInfo& tensor = info(name);
  return files_[index_.find(name)->second.first]->data(tensor);
}

std::vector<float> SafetensorsModel::read_f32(std::string_view name) const {
  const TensorInfo& tensor = info(name);
  const std::span<const std::byte> bytes = data(name);
  std::vector<float> out(static_cast<size_t>(tensor.numel()));
  // memcpy per element: offsets in the data section need not be aligned to the dtype.
  switch (tensor.dtype) {
    case DType::F32:
      if (!out.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
      break;
    case DType::BF16:
    case DType::F16:
      for (size_t i = 0; i < out.size(); ++i) {
        uint16_t bits;
        std::memcpy(&bits, bytes.data() + 2 * i, sizeof bits);
        out[i] = tensor.dtype == DType::BF16 ? bf16_to_f32(bits) : f16_to_f32(bits);
      }
      break;
    case DType::I32:
    case DType::I64:
      fail("safetensors", dir_.string() + ": tensor '" + std::string(name) + "' holds integers (" +
                              std::string(dtype_name(tensor.dtype)) + "), not floats");
  }
  return out;
}

uint64_t SafetensorsModel::total_bytes() const {
  uint64_t total = 0;
  for (const auto& entry : index_) total += entry.second.second->nbytes;
  return total;
}

}  // namespace ll
