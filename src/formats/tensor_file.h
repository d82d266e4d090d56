// One file of named tensors, whatever its format: what a model folder's loader needs from a
// weight file. SafetensorsFile (formats/safetensors.h) and TorchStateDictFile
// (formats/torch_checkpoint.h, a `torch.save` state dict) implement it, so SafetensorsModel
// opens folders of either kind behind one interface.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/file.h"

namespace ll {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t offset =
      0;  // where the bytes start: safetensors: in the data section; torch: in the file
  uint64_t nbytes = 0;
  int64_t numel() const;
};

using Metadata = std::map<std::string, std::string>;

class TensorFile {
 public:
  virtual ~TensorFile() = default;
  virtual const fs::path& path() const = 0;
  virtual const std::vector<TensorInfo>& tensors() const = 0;
  virtual const TensorInfo* find(std::string_view name) const = 0;  // nullptr if absent
  // The tensor's bytes, row-major and contiguous, `info` being one of tensors().
  virtual std::span<const std::byte> data(const TensorInfo& info) const = 0;
  virtual const Metadata& metadata() const = 0;

 protected:
  TensorFile() = default;
  TensorFile(const TensorFile&) = default;
  TensorFile(TensorFile&&) = default;
  TensorFile& operator=(const TensorFile&) = default;
  TensorFile& operator=(TensorFile&&) = default;
};

}  // namespace ll
