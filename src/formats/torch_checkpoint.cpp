// See torch_checkpoint.h.
#include "formats/torch_checkpoint.h"

#include <cstring>

#include "core/error.h"
#include "core/text.h"
#include "formats/input_checks.h"

namespace ll {
namespace {

constexpr std::string_view kOrigin = "torch";

struct StorageType {
  const char* name;
  std::optional<DType> dtype;
  size_t element_bytes;
};

constexpr StorageType kStorageTypes[] = {
    {"torch.FloatStorage", DType::F32, 4},     {"torch.HalfStorage", DType::F16, 2},
    {"torch.BFloat16Storage", DType::BF16, 2}, {"torch.LongStorage", DType::I64, 8},
    {"torch.IntStorage", DType::I32, 4},       {"torch.DoubleStorage", std::nullopt, 8},
    {"torch.ShortStorage", std::nullopt, 2},   {"torch.CharStorage", std::nullopt, 1},
    {"torch.ByteStorage", std::nullopt, 1},    {"torch.BoolStorage", std::nullopt, 1},
};

const StorageType* storage_type(const std::string& name) {
  for (const StorageType& type : kStorageTypes) {
    if (name == type.name) return &type;
  }
  return nullptr;
}

[[noreturn]] void fail_at(const fs::path& path, const std::string& what) {
  fail(kOrigin, path.string() + ": " + what);
}

}  // namespace

TorchCheckpoint TorchCheckpoint::open(const fs::path& path) {
  TorchCheckpoint checkpoint;
  checkpoint.zip_ = std::make_unique<StoredZip>(StoredZip::open(path, kOrigin));
  const StoredZip& zip = *checkpoint.zip_;
  std::string pickle_entry;
  for (const auto& [name, entry] : zip.entries()) {
    const size_t slash = name.find('/');
    if (slash != std::string::npos && name.substr(slash) == "/data.pkl") {
      if (!pickle_entry.empty()) fail_at(path, "holds two data.pkl entries (not one torch.save)");
      pickle_entry = name;
      checkpoint.prefix_ = name.substr(0, slash + 1);
    }
  }
  if (pickle_entry.empty()) {
    fail_at(path, "is a zip archive without <name>/data.pkl (not written by torch.save)");
  }
  if (zip.find(checkpoint.prefix_ + "byteorder") != nullptr) {
    const auto order = zip.checked_data(checkpoint.prefix_ + "byteorder");
    const std::string_view text(reinterpret_cast<const char*>(order.data()), order.size());
    if (text != "little") {
      fail_at(path, "byteorder is " + quote_name(text) + "; only little-endian files are read");
    }
  }
  checkpoint.root_ =
      read_pickle(zip.checked_data(pickle_entry), kOrigin, path.string() + ": " + pickle_entry);
  return checkpoint;
}

TorchTensorData TorchCheckpoint::tensor(const PickleTensor& tensor, const std::string& what) {
  const PickleStorage& storage = *tensor.storage;
  const StorageType* type = storage_type(storage.type);
  if (type == nullptr || !type->dtype) {
    fail_at(path(), what + " is a " + storage.type +
                        " tensor, which llama-lora does not read (float32, float16, bfloat16, "
                        "int64 and int32 are read)");
  }
  const std::string entry_name = prefix_ + "data/" + storage.key;
  const ZipEntry* entry = zip_->find(entry_name);
  if (entry == nullptr) {
    fail_at(path(), "storage " + quote_name(storage.key) + " of " + what +
                        " is missing (no entry " + quote_name(entry_name) + ")");
  }
  const size_t es = type->element_bytes;
  uint64_t storage_bytes = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(storage.numel), es, &storage_bytes) ||
      storage_bytes != entry->size) {
    fail_at(path(), "storage " + quote_name(storage.key) + " of " + what + " should hold " +
                        format_count(static_cast<uint64_t>(storage.numel)) + " elements but " +
                        quote_name(entry_name) + " has " + format_count(entry->size) + " bytes");
  }
  TorchTensorData out;
  out.dtype = *type->dtype;
  out.shape = tensor.shape;
  const std::optional<uint64_t> numel = checked_numel(tensor.shape);
  uint64_t nbytes = 0;
  if (!numel || __builtin_mul_overflow(*numel, es, &nbytes)) {
    fail_at(path(), what + " has shape " + shape_text(tensor.shape) + ", too large");
  }
  const std::span<const std::byte> all = zip_->data(*entry);
  if (*numel == 0) {
    out.bytes = all.subspan(0, 0);
    return out;
  }
  // The last element the view touches must lie inside the storage.
  uint64_t last = static_cast<uint64_t>(tensor.storage_offset);
  bool contiguous = true;
  uint64_t expected_stride = 1;
  for (size_t d = tensor.shape.size(); d-- > 0;) {
    const auto size = static_cast<uint64_t>(tensor.shape[d]);
    const auto stride = static_cast<uint64_t>(tensor.stride[d]);
    uint64_t reach = 0;
    if (__builtin_mul_overflow(size - 1, stride, &reach) ||
        __builtin_add_overflow(last, reach, &last)) {
      fail_at(path(), "the strides of " + what + " overflow 64 bits");
    }
    if (size > 1 && stride != expected_stride) contiguous = false;
    expected_stride *= size;  // cannot overflow: numel fits
  }
  if (last >= static_cast<uint64_t>(storage.numel)) {
    fail_at(path(), what + " (shape " + shape_text(tensor.shape) + ", offset " +
                        format_count(static_cast<uint64_t>(tensor.storage_offset)) +
                        ") reaches element " + format_count(last) + " of a storage of " +
                        format_count(static_cast<uint64_t>(storage.numel)));
  }
  const uint64_t start = static_cast<uint64_t>(tensor.storage_offset) * es;
  if (contiguous) {
    out.bytes = all.subspan(start, nbytes);
    return out;
  }
  // A strided view (e.g. a transpose saved as is): copy its elements out row-major. A view
  // that repeats elements (stride 0) could ask for far more memory than the file holds, so
  // copies are bounded: each by its storage, all together by four times the file.
  if (*numel > static_cast<uint64_t>(storage.numel) ||
      copied_bytes_ + nbytes > 4 * static_cast<uint64_t>(zip_->file_bytes().size())) {
    fail_at(path(), what + " (shape " + shape_text(tensor.shape) +
                        ") is a strided view that repeats its storage's elements or needs more "
                        "copied memory than four times the file; such views are not read");
  }
  copied_bytes_ += nbytes;
  auto& copy = *copies_.emplace_back(std::make_unique<std::vector<std::byte>>(nbytes));
  const size_t dims = tensor.shape.size();
  std::vector<int64_t> index(dims, 0);
  for (uint64_t i = 0; i < *numel; ++i) {
    uint64_t element = static_cast<uint64_t>(tensor.storage_offset);
    for (size_t d = 0; d < dims; ++d) element += static_cast<uint64_t>(index[d] * tensor.stride[d]);
    std::memcpy(copy.data() + i * es, all.data() + element * es, es);
    for (size_t d = dims; d-- > 0;) {
      if (++index[d] < tensor.shape[d]) break;
      index[d] = 0;
    }
  }
  out.bytes = copy;
  out.copied = true;
  return out;
}

std::unique_ptr<TorchStateDictFile> TorchStateDictFile::open(const fs::path& path) {
  std::unique_ptr<TorchStateDictFile> file(new TorchStateDictFile(TorchCheckpoint::open(path)));
  const PickleValue& root = file->checkpoint_.root();
  if (root.kind != PickleKind::Dict) {
    fail_at(path, "holds a " + std::string(pickle_kind_name(root.kind)) +
                      ", not a state dict {name: tensor}");
  }
  const uint64_t file_start = reinterpret_cast<uintptr_t>(file->checkpoint_.file_bytes().data());
  for (const auto& [key, value] : root.entries) {
    if (key->kind != PickleKind::String) {
      fail_at(path,
              "state dict key is a " + std::string(pickle_kind_name(key->kind)) + ", not a str");
    }
    const std::string what = "tensor " + quote_name(key->text);
    if (value->kind != PickleKind::Tensor) {
      fail_at(path, "state dict entry " + quote_name(key->text) + " is a " +
                        std::string(pickle_kind_name(value->kind)) + ", not a tensor");
    }
    if (!file->by_name_.emplace(key->text, file->tensors_.size()).second) {
      fail_at(path, "state dict key " + quote_name(key->text) + " appears twice");
    }
    const TorchTensorData data = file->checkpoint_.tensor(*value->tensor, what);
    TensorInfo info;
    info.name = key->text;
    info.dtype = data.dtype;
    info.shape = data.shape;
    info.nbytes = data.bytes.size();
    info.offset = data.copied ? 0 : reinterpret_cast<uintptr_t>(data.bytes.data()) - file_start;
    file->tensors_.push_back(std::move(info));
    file->bytes_.push_back(data.bytes);
  }
  return file;
}

const TensorInfo* TorchStateDictFile::find(std::string_view name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

std::span<const std::byte> TorchStateDictFile::data(const TensorInfo& info) const {
  const auto it = by_name_.find(info.name);
  if (it == by_name_.end()) fail_at(path(), "has no tensor " + quote_name(info.name));
  return bytes_[it->second];
}

}  // namespace ll
