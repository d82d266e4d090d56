// safetensors: read (memory-mapped, every header field checked before use) and write.
// Format: u64 little-endian header length N, N bytes of JSON header
//   {"__metadata__": {str: str}, "<name>": {"dtype": "BF16", "shape": [..], "data_offsets": [b,
//   e]}}
// then the data section; offsets are relative to the data section's start, tensors must
// cover it without gaps or overlaps (what the reference `safetensors` library enforces).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/file.h"
#include "formats/tensor_file.h"

namespace ll {

// One .safetensors file, validated on open, mapped read-only.
class SafetensorsFile final : public TensorFile {
 public:
  static SafetensorsFile open(const fs::path& path);

  const fs::path& path() const override { return mapped_.path(); }
  const std::vector<TensorInfo>& tensors() const override { return tensors_; }  // offset order
  const TensorInfo* find(std::string_view name) const override;
  std::span<const std::byte> data(const TensorInfo& info) const override;
  const Metadata& metadata() const override { return metadata_; }

 private:
  MappedFile mapped_;
  uint64_t data_start_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> by_name_;
  Metadata metadata_;
};

// The weights of a model folder: `model.safetensors`, or the shards that
// `model.safetensors.index.json` names (file names checked: no "..", no absolute paths).
// Also opens any other single file name given (e.g. "adapter_model.safetensors").
// A folder with neither falls back, as transformers and peft do, to the PyTorch twin of the
// names: `pytorch_model.bin` / `pytorch_model.bin.index.json` for a model,
// `adapter_model.bin` for an adapter (torch.save state dicts, read without running code by
// formats/torch_checkpoint.h); the folder's tensors then read the same as safetensors ones.
class SafetensorsModel {
 public:
  static SafetensorsModel open(const fs::path& dir,
                               std::string_view single_file = "model.safetensors",
                               std::string_view index_file = "model.safetensors.index.json");

  std::vector<std::string> tensor_names() const;  // sorted
  bool contains(std::string_view name) const;
  const TensorInfo& info(std::string_view name) const;  // throws naming the tensor
  std::span<const std::byte> data(std::string_view name) const;
  std::vector<float> read_f32(std::string_view name) const;  // any stored dtype -> f32
  const std::vector<std::unique_ptr<TensorFile>>& files() const { return files_; }
  uint64_t total_bytes() const;  // sum of tensor bytes

 private:
  static SafetensorsModel open_files(const fs::path& dir, std::string_view single_file,
                                     std::string_view index_file);
  fs::path dir_;
  std::vector<std::unique_ptr<TensorFile>> files_;
  std::map<std::string, std::pair<size_t, const TensorInfo*>, std::less<>> index_;
};

// A tensor to be written; `data` must hold numel * dtype_size bytes.
struct TensorToWrite {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::span<const std::byte> data;
};

// Writes one .safetensors file atomically (temporary name, fsync, rename).
void write_safetensors(const fs::path& path, std::span<const TensorToWrite> tensors,
                       const Metadata& metadata = {});

// Streaming writer for large outputs (e.g. merging an 8B model): the header is fixed up
// front from the names, dtypes and shapes (the layout's offset and nbytes are ignored and
// recomputed: tensors are laid out back to back in layout order), then tensor bytes are
// appended one tensor at a time in the same order, so memory stays near one tensor.
// finish() renames into place.
class SafetensorsWriter {
 public:
  SafetensorsWriter(const fs::path& path, std::span<const TensorInfo> layout,
                    const Metadata& metadata = {});
  ~SafetensorsWriter();  // without finish(): removes the temporary file
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;
  void write_next(std::string_view name, std::span<const std::byte> bytes);
  void finish();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// How save_pretrained splits tensors into shard files (huggingface_hub's
// split_torch_state_dict_into_shards): fill shards in layout order; a tensor that would
// tip the current shard over `max_shard_bytes` starts a new one, and a tensor larger than
// the limit gets a shard of its own. One shard is named "model.safetensors", several
// "model-00001-of-00003.safetensors", ... Checks names and shapes like the writers do.
struct SafetensorsShard {
  std::string file_name;
  std::vector<size_t> tensors;  // indices into the layout, in layout order
  uint64_t nbytes = 0;
};
std::vector<SafetensorsShard> plan_safetensors_shards(std::span<const TensorInfo> layout,
                                                      uint64_t max_shard_bytes);

// Writes a model folder (created if missing) the way transformers' save_pretrained does:
// `model.safetensors` when everything fits in one shard of `max_shard_bytes`, else the
// shards of plan_safetensors_shards plus `model.safetensors.index.json`
// ({"metadata": {"total_size": N}, "weight_map": {..}}, sorted keys, indent 2). Every file
// gets metadata "format": "pt" (transformers requires it) besides `metadata`. Weights of
// an earlier save that this one does not overwrite (model*.safetensors, the index) are
// removed, so the folder never mixes two saves.
//
// Streaming form, for data made on demand (random init, merging an 8B model): tensors are
// asked for shard by shard (layout order within a shard; the layout's offset and nbytes
// are ignored), and produce(i) returns the bytes of layout[i], which must stay valid until
// the next call; memory stays near one tensor. on_file_written(name) runs after each file is
// complete. Returns the file names in writing order (the index last when there is one).
using ProduceTensorBytes = std::function<std::span<const std::byte>(size_t index)>;
std::vector<std::string> write_sharded_safetensors_streaming(
    const fs::path& dir, std::span<const TensorInfo> layout, uint64_t max_shard_bytes,
    const Metadata& metadata, const ProduceTensorBytes& produce,
    const std::function<void(const std::string& file_name)>& on_file_written = {});

// The same for tensors already in memory; every tensor's byte count is checked before a
// file is written.
void write_sharded_safetensors(const fs::path& dir, std::span<const TensorToWrite> tensors,
                               uint64_t max_shard_bytes, const Metadata& metadata = {});

// A shard size limit as transformers' convert_file_size_to_int reads it: "5GB" = 5 * 10^9
// bytes, "5GiB" = 5 * 2^30, "500MB", "100KB" or a plain byte count (> 0). `flag` names the
// option in the error.
uint64_t parse_max_shard_size(const std::string& text, const std::string& flag);

}  // namespace ll
