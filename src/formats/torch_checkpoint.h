// Files written by `torch.save` (torch >= 1.6's zip format), read without running any code:
// the archive (formats/zip_stored.h) holds `<prefix>/data.pkl` (the object, unpickled by the
// restricted reader of formats/torch_pickle.h), `<prefix>/data/<key>` (one stored entry of raw
// little-endian bytes per storage), `<prefix>/byteorder` ("little"; refused otherwise) and
// `<prefix>/version`. A tensor is a strided view of a storage: its bytes are mapped in place
// when the view is contiguous, else copied out row-major. Tensors of torch.float32, float16,
// bfloat16, int64 and int32 are read; other storage types are refused naming the type.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "formats/tensor_file.h"
#include "formats/torch_pickle.h"
#include "formats/zip_stored.h"

namespace ll {

// A tensor's elements, row-major: a view into the archive or an owned copy.
struct TorchTensorData {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::span<const std::byte> bytes;
  bool copied = false;  // a non-contiguous view, copied out
};

class TorchCheckpoint {
 public:
  // Errors read "[torch] PATH: ..." naming what is wrong: not a zip, truncated, compressed
  // entry, bad opcode, refused global, missing storage, view outside its storage.
  static TorchCheckpoint open(const fs::path& path);

  const fs::path& path() const { return zip_->path(); }
  const PickleValue& root() const { return *root_; }
  // The elements of a tensor of root(); `what` names it in errors (e.g. "tensor 'x'").
  TorchTensorData tensor(const PickleTensor& tensor, const std::string& what);
  std::span<const std::byte> file_bytes() const { return zip_->file_bytes(); }

 private:
  std::unique_ptr<StoredZip> zip_;
  std::string prefix_;  // "archive/", from the data.pkl entry
  PickleRef root_;
  std::vector<std::unique_ptr<std::vector<std::byte>>> copies_;  // stable addresses
  uint64_t copied_bytes_ = 0;
};

// A `torch.save`d flat state dict {name: tensor} (pytorch_model.bin, adapter_model.bin,
// a Neuron shard), as a TensorFile. A value that is not a tensor is refused naming its key.
class TorchStateDictFile final : public TensorFile {
 public:
  static std::unique_ptr<TorchStateDictFile> open(const fs::path& path);

  const fs::path& path() const override { return checkpoint_.path(); }
  const std::vector<TensorInfo>& tensors() const override { return tensors_; }  // file order
  const TensorInfo* find(std::string_view name) const override;
  std::span<const std::byte> data(const TensorInfo& info) const override;
  const Metadata& metadata() const override { return metadata_; }

 private:
  explicit TorchStateDictFile(TorchCheckpoint checkpoint) : checkpoint_(std::move(checkpoint)) {}
  TorchCheckpoint checkpoint_;
  std::vector<TensorInfo> tensors_;
  std::vector<std::span<const std::byte>> bytes_;  // by position in tensors_
  std::map<std::string, size_t, std::less<>> by_name_;
  Metadata metadata_;  // always empty: torch.save has no string metadata
};

}  // namespace ll
