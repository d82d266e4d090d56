// See adapter_shards.h.
#include "model/adapter_shards.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <map>
#include <optional>

#include "core/error.h"
#include "formats/input_checks.h"
#include "model/tensor_parallel.h"

namespace ll {
namespace {

constexpr std::string_view kOrigin = "adapter-shards";
constexpr std::string_view kSplitKeyPrefix = "tp_split.";

// A non-negative decimal integer that is the whole of `text` (no sign, no spaces).
std::optional<int64_t> parse_count(std::string_view text) {
  if (text.empty() || text.size() > 18) return std::nullopt;
  int64_t value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

bool consume(std::string_view& text, std::string_view prefix) {
  if (!text.starts_with(prefix)) return false;
  text.remove_prefix(prefix.size());
  return true;
}

// The digits at the front of `text`, removed from it.
std::optional<int64_t> consume_count(std::string_view& text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  const std::optional<int64_t> value = parse_count(text.substr(0, digits));
  text.remove_prefix(digits);
  return value;
}

}  // namespace

std::string_view tp_split_text(TpSplit split) {
  switch (split) {
    case TpSplit::Rows:
      return "0";
    case TpSplit::Columns:
      return "1";
    case TpSplit::Replicated:
      break;
  }
  return "none";
}

std::string adapter_tp_shard_name(int64_t rank, int64_t size) {
  return std::string("adapter-tp") + std::to_string(rank) + "-of-" + std::to_string(size) +
         ".safetensors";
}

std::optional<std::pair<int64_t, int64_t>> parse_adapter_tp_shard_name(std::string_view name) {
  if (!consume(name, "adapter-tp")) return std::nullopt;
  const std::optional<int64_t> rank = consume_count(name);
  if (!rank || !consume(name, "-of-")) return std::nullopt;
  const std::optional<int64_t> size = consume_count(name);
  if (!size || name != ".safetensors") return std::nullopt;
  return std::pair{*rank, *size};
}

std::optional<LoraTensorName> parse_lora_tensor_name(std::string_view name) {
  LoraTensorName out;
  if (!consume(name, "base_model.model.model.layers.")) return std::nullopt;
  const std::optional<int64_t> layer = consume_count(name);
  if (!layer || !consume(name, ".")) return std::nullopt;
  out.layer = *layer;
  const size_t dot = name.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  const std::string_view block = name.substr(0, dot);
  name.remove_prefix(dot + 1);
  const size_t dot2 = name.find('.');
  if (dot2 == std::string_view::npos) return std::nullopt;
  const std::optional<LoraTarget> target = parse_lora_target(name.substr(0, dot2));
  if (!target || lora_target_block(*target) != block) return std::nullopt;
  out.target = *target;
  name.remove_prefix(dot2 + 1);
  if (name == "lora_A.weight") {
    out.part = LoraPart::A;
  } else if (name == "lora_B.weight") {
    out.part = LoraPart::B;
  } else {
    return std::nullopt;
  }
  return out;
}

void save_adapter_tp_shard(const fs::path& dir, const LoraAdapter& adapter, int64_t rank,
                           int64_t size) {
  check(size >= 1, kOrigin,
        std::string("tensor_parallel_size must be at least 1, got ") + std::to_string(size));
  check(rank >= 0 && rank < size, kOrigin,
        std::string("tensor-parallel rank ") + std::to_string(rank) + " is outside 0.." +
            std::to_string(size - 1));
  for (const LoraTensor& tensor : adapter.tensors()) {
    if (tensor.split == TpSplit::Replicated) continue;
    const int64_t dim = tensor.split == TpSplit::Rows ? tensor.rows : tensor.cols;
    check(dim % size == 0, kOrigin,
          std::string("tensor ") + quote_name(tensor.name()) + ": dimension " +
              std::string(tp_split_text(tensor.split)) + " (" + std::to_string(dim) +
              ") does not divide by tensor_parallel_size " + std::to_string(size));
  }
  write_adapter_tp_shard(dir, slice_adapter_for_tp(adapter, rank, size), rank, size);
}

void write_adapter_tp_shard(const fs::path& dir, const LoraAdapter& part, int64_t rank,
                            int64_t size) {
  std::optional<LoraAdapter> copy;
  const LoraAdapter& host = host_view(part, copy);
  std::vector<TensorToWrite> tensors;
  Metadata metadata = {
      {"format", "pt"}, {"tp_rank", std::to_string(rank)}, {"tp_size", std::to_string(size)}};
  for (const LoraTensor& tensor : host.tensors()) {
    TensorToWrite& t = tensors.emplace_back();
    t.name = tensor.name();
    t.shape = {tensor.rows, tensor.cols};
    t.data = std::as_bytes(host.parameter(tensor));
    metadata[std::string(kSplitKeyPrefix) + t.name] = std::string(tp_split_text(tensor.split));
  }
  write_safetensors(dir / adapter_tp_shard_name(rank, size), tensors, metadata);
}

std::vector<std::string> list_adapter_tp_shards(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (parse_adapter_tp_shard_name(name)) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

AdapterTpShards AdapterTpShards::open(const fs::path& dir) {
  const std::string where = dir.string();
  const std::vector<std::string> names = list_adapter_tp_shards(dir);
  check(!names.empty(), kOrigin,
        where + ": no tensor-parallel adapter shards (adapter-tp<r>-of-<n>.safetensors)");
  int64_t size = 0;
  std::map<int64_t, std::string> by_rank;
  for (const std::string& name : names) {
    const auto [rank, n] = *parse_adapter_tp_shard_name(name);
    if (size == 0) size = n;
    check(n == size, kOrigin,
          where + ": shards of different tensor parallel sizes (" + names.front() + " and " + name +
              ")");
    check(rank < n, kOrigin,
          where + "/" + name + ": rank " + std::to_string(rank) + " is outside 0.." +
              std::to_string(n - 1));
    by_rank[rank] = name;
  }
  check(size >= 1, kOrigin, where + "/" + names.front() + ": tensor parallel size 0");
  for (int64_t rank = 0; rank < size; ++rank) {
    check(by_rank.count(rank) == 1, kOrigin,
          where + ": " + adapter_tp_shard_name(rank, size) + " is missing (found " +
              std::to_string(by_rank.size()) + " of " + std::to_string(size) +
              " tensor-parallel shards)");
  }

  AdapterTpShards shards;
  shards.dir_ = dir;
  for (int64_t rank = 0; rank < size; ++rank) {
    auto file = std::make_unique<SafetensorsFile>(SafetensorsFile::open(dir / by_rank[rank]));
    const std::string origin = file->path().string();
    const Metadata& metadata = file->metadata();
    const auto stated = [&](const char* key) -> std::optional<int64_t> {
      const auto it = metadata.find(key);
      return it == metadata.end() ? std::nullopt : parse_count(it->second);
    };
    check(stated("tp_rank") == rank && stated("tp_size") == size, kOrigin,
          origin + ": metadata tp_rank / tp_size do not say rank " + std::to_string(rank) + " of " +
              std::to_string(size) + " as the file name does");
    shards.files_.push_back(std::move(file));
  }

  shards.index_tensors([&](int64_t rank, const std::string& here, const TensorInfo& info,
                           const LoraTensorName& parsed, TpSplit split) {
    const Metadata& metadata = shards.files_[static_cast<size_t>(rank)]->metadata();
    const auto stated = metadata.find(std::string(kSplitKeyPrefix) + info.name);
    check(stated != metadata.end(), kOrigin,
          here + " has no \"" + std::string(kSplitKeyPrefix) + "<name>\" metadata entry");
    check(stated->second == tp_split_text(split), kOrigin,
          here + ": metadata says split \"" + stated->second + "\" but a " +
              std::string(lora_target_name(parsed.target)) + " lora_" +
              lora_part_letter(parsed.part) + " is " +
              (split == TpSplit::Replicated
                   ? std::string("replicated (\"none\")")
                   : std::string("split along dim ") + std::string(tp_split_text(split))));
  });
  return shards;
}

void AdapterTpShards::index_tensors(const CheckStatedSplit& check_stated_split) {
  const TensorFile& first = *files_[0];
  const auto size = static_cast<int64_t>(files_.size());
  for (int64_t rank = 1; rank < size; ++rank) {
    const TensorFile& other = *files_[static_cast<size_t>(rank)];
    for (const TensorInfo& info : first.tensors()) {
      check(other.find(info.name) != nullptr, kOrigin,
            other.path().string() + ": tensor " + quote_name(info.name) +
                " is missing (rank 0 has it)");
    }
    for (const TensorInfo& info : other.tensors()) {
      check(first.find(info.name) != nullptr, kOrigin,
            other.path().string() + ": tensor " + quote_name(info.name) +
                " is not in rank 0's shard");
    }
  }

  for (const TensorInfo& info : first.tensors()) {
    const std::string origin = first.path().string() + ": tensor " + quote_name(info.name);
    const std::optional<LoraTensorName> parsed = parse_lora_tensor_name(info.name);
    check(parsed.has_value(), kOrigin, origin + " is not a peft LoRA tensor name");
    Tensor tensor;
    tensor.name = info.name;
    tensor.dtype = info.dtype;
    tensor.split = lora_tp_split(parsed->target, parsed->part);
    check(dtype_is_float(info.dtype), kOrigin,
          origin + " has dtype " + std::string(dtype_name(info.dtype)) + ", not a float type");
    check(info.shape.size() == 2, kOrigin,
          origin + " has shape " + shape_text(info.shape) + "; LoRA tensors are matrices");
    for (int64_t rank = 0; rank < size; ++rank) {
      const TensorFile& file = *files_[static_cast<size_t>(rank)];
      const TensorInfo& mine = *file.find(info.name);
      const std::string here = file.path().string() + ": tensor " + quote_name(info.name);
      check_stated_split(rank, here, info, *parsed, tensor.split);
      check(mine.dtype == info.dtype && mine.shape == info.shape, kOrigin,
            here + " is " + std::string(dtype_name(mine.dtype)) + " " + shape_text(mine.shape) +
                " but rank 0 holds " + std::string(dtype_name(info.dtype)) + " " +
                shape_text(info.shape));
    }
    tensor.shape = info.shape;
    if (tensor.split != TpSplit::Replicated) {
      tensor.shape[static_cast<size_t>(tensor.split)] *= size;
    }
    tensors_.push_back(std::move(tensor));
  }
}

std::span<const std::byte> AdapterTpShards::read(size_t index,
                                                 std::vector<std::byte>& scratch) const {
  const Tensor& tensor = tensors_.at(index);
  const size_t n = files_.size();
  std::vector<std::span<const std::byte>> parts;
  parts.reserve(n);
  for (const auto& file : files_) parts.push_back(file->data(*file->find(tensor.name)));

  if (tensor.split == TpSplit::Replicated) {
    for (size_t rank = 1; rank < n; ++rank) {
      if (std::memcmp(parts[0].data(), parts[rank].data(), parts[0].size()) == 0) continue;
      size_t byte = 0;
      while (parts[0][byte] == parts[rank][byte]) ++byte;
      fail(kOrigin, dir_.string() + ": tensor " + quote_name(tensor.name) +
                        " is replicated over tensor-parallel ranks but ranks 0 and " +
                        std::to_string(rank) + " hold different values (first at element " +
                        std::to_string(byte / dtype_size(tensor.dtype)) + ")");
    }
    return parts[0];
  }

  const size_t total = parts[0].size() * n;
  scratch.resize(total);
  if (total == 0) return {scratch.data(), 0};
  std::byte* out = scratch.data();
  if (tensor.split == TpSplit::Rows) {
    // Row blocks are contiguous: rank 0's rows, then rank 1's, ...
    for (const auto& part : parts) {
      std::memcpy(out, part.data(), part.size());
      out += part.size();
    }
  } else {
    // Column blocks interleave: each row is rank 0's columns, then rank 1's, ...
    const auto rows = static_cast<size_t>(tensor.shape[0]);
    const size_t row_bytes = parts[0].size() / rows;
    for (size_t row = 0; row < rows; ++row) {
      for (const auto& part : parts) {
        std::memcpy(out, part.data() + row * row_bytes, row_bytes);
        out += row_bytes;
      }
    }
  }
  return {scratch.data(), total};
}

}  // namespace ll
