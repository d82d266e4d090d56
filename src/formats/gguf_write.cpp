// See gguf_write.h.
#include "formats/gguf_write.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <set>

#include "core/error.h"
#include "core/text.h"
#include "formats/input_checks.h"

namespace ll {
namespace {

constexpr std::string_view kOrigin = "gguf";
constexpr uint32_t kMagic = 0x46554747u;  // "GGUF" read as a little-endian u32
constexpr uint32_t kVersion = 3;

enum class ValueType : uint32_t { U32 = 4, I32 = 5, F32 = 6, Bool = 7, String = 8, Array = 9 };

[[noreturn]] void fail_at(const fs::path& path, const std::string& what) {
  fail(kOrigin, path.string() + ": " + what);
}

std::string errno_text() {
  return std::strerror(errno);
}

class ByteSink {
 public:
  template <typename T>
  void put(T value) {  // little-endian hosts only (x86-64, as the rest of formats/)
    const auto* p = reinterpret_cast<const std::byte*>(&value);
    bytes.insert(bytes.end(), p, p + sizeof(T));
  }
  void put_string(std::string_view text) {
    put<uint64_t>(text.size());
    const auto* p = reinterpret_cast<const std::byte*>(text.data());
    bytes.insert(bytes.end(), p, p + text.size());
  }
  void pad_to(uint64_t alignment) {
    while (bytes.size() % alignment != 0) bytes.push_back(std::byte{0});
  }
  std::vector<std::byte> bytes;
};

void put_value(ByteSink& out, const GgufValue& value) {
  std::visit(
      [&out](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, uint32_t>) {
          out.put(ValueType::U32);
          out.put(v);
        } else if constexpr (std::is_same_v<T, int32_t>) {
          out.put(ValueType::I32);
          out.put(v);
        } else if constexpr (std::is_same_v<T, float>) {
          out.put(ValueType::F32);
          out.put(v);
        } else if constexpr (std::is_same_v<T, bool>) {
          out.put(ValueType::Bool);
          out.put(static_cast<uint8_t>(v ? 1 : 0));
        } else if constexpr (std::is_same_v<T, std::string>) {
          out.put(ValueType::String);
          out.put_string(v);
        } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          out.put(ValueType::Array);
          out.put(ValueType::String);
          out.put<uint64_t>(v.size());
          for (const std::string& s : v) out.put_string(s);
        } else {
          out.put(ValueType::Array);
          out.put(ValueType::I32);
          out.put<uint64_t>(v.size());
          for (int32_t x : v) out.put(x);
        }
      },
      value);
}

uint64_t padded(uint64_t n) {
  return (n + kGgufAlignment - 1) / kGgufAlignment * kGgufAlignment;
}

}  // namespace

uint64_t GgufTensorInfo::nbytes() const {
  check(!shape.empty(), kOrigin, "tensor " + quote_name(name) + " has no dims");
  const std::optional<uint64_t> numel = checked_numel(shape);
  check(numel.has_value(), kOrigin,
        "tensor " + quote_name(name) + " has shape " + shape_text(shape) +
            ", which is not a valid shape");
  const int64_t row = shape.back();
  check(ggml_type_fits_row(type, row), kOrigin,
        "tensor " + quote_name(name) + " " + shape_text(shape) + ": rows of " +
            std::to_string(row) + " values cannot be stored as " +
            std::string(ggml_type_name(type)));
  if (row == 0) return 0;
  return *numel / static_cast<uint64_t>(row) * ggml_row_bytes(type, row);
}

std::vector<std::byte> gguf_header_bytes(const GgufMetadata& metadata,
                                         std::span<const GgufTensorInfo> tensors) {
  ByteSink out;
  out.put(kMagic);
  out.put(kVersion);
  out.put<uint64_t>(tensors.size());
  out.put<uint64_t>(metadata.size());
  std::set<std::string> keys;
  for (const auto& [key, value] : metadata) {
    check(!key.empty() && keys.insert(key).second, kOrigin,
          "metadata key " + quote_name(key) + " is empty or given twice");
    out.put_string(key);
    put_value(out, value);
  }
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const GgufTensorInfo& tensor : tensors) {
    check(!tensor.name.empty() && names.insert(tensor.name).second, kOrigin,
          "tensor name " + quote_name(tensor.name) + " is empty or given twice");
    const uint64_t nbytes = tensor.nbytes();
    out.put_string(tensor.name);
    out.put<uint32_t>(static_cast<uint32_t>(tensor.shape.size()));
    for (auto dim = tensor.shape.rbegin(); dim != tensor.shape.rend(); ++dim) {
      out.put<uint64_t>(static_cast<uint64_t>(*dim));
    }
    out.put(tensor.type);
    out.put<uint64_t>(offset);
    offset += padded(nbytes);
  }
  out.pad_to(kGgufAlignment);
  return std::move(out.bytes);
}

GgufWriter::GgufWriter(const fs::path& path, const GgufMetadata& metadata,
                       std::vector<GgufTensorInfo> tensors)
    : path_(path), tensors_(std::move(tensors)) {
  static std::atomic<uint64_t> counter{0};
  temp_ = path.string() + ".tmp-" + std::to_string(::getpid()) + "-" +
          std::to_string(counter.fetch_add(1));
  const std::vector<std::byte> header = gguf_header_bytes(metadata, tensors_);
  fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail_at(path, "cannot create: " + errno_text());
  try {
    write_all(fd_, header, path);
  } catch (...) {
    ::close(fd_);
    ::unlink(temp_.c_str());
    throw;
  }
}

GgufWriter::~GgufWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(temp_.c_str());
  }
}

void GgufWriter::write_next(std::string_view name, std::span<const std::byte> bytes) {
  if (fd_ < 0) fail_at(path_, "write_next after finish()");
  if (next_ >= tensors_.size()) {
    fail_at(path_, "tensor " + quote_name(name) + " written but the file has only " +
                       std::to_string(tensors_.size()) + " tensors");
  }
  const GgufTensorInfo& expected = tensors_[next_];
  if (name != expected.name) {
    fail_at(path_, "tensor " + quote_name(name) + " written where " + quote_name(expected.name) +
                       " comes next");
  }
  const uint64_t nbytes = expected.nbytes();
  if (bytes.size() != nbytes) {
    fail_at(path_, "tensor " + quote_name(name) + " needs " + format_count(nbytes) + " bytes but " +
                       format_count(bytes.size()) + " were given");
  }
  write_all(fd_, bytes, path_);
  static const std::byte zeros[kGgufAlignment] = {};
  write_all(fd_, std::span(zeros, padded(nbytes) - nbytes), path_);
  ++next_;
}

void GgufWriter::finish() {
  if (fd_ < 0) return;
  if (next_ != tensors_.size()) {
    fail_at(path_, "finish() after " + std::to_string(next_) + " of " +
                       std::to_string(tensors_.size()) + " tensors");
  }
  if (::fsync(fd_) != 0) fail_at(path_, "fsync failed: " + errno_text());
  const int closed = ::close(fd_);
  fd_ = -1;
  if (closed != 0) {
    ::unlink(temp_.c_str());
    fail_at(path_, "close failed: " + errno_text());
  }
  if (::rename(temp_.c_str(), path_.c_str()) != 0) {
    const std::string why = errno_text();
    ::unlink(temp_.c_str());
    fail_at(path_, "rename failed: " + why);
  }
  fsync_dir(path_.parent_path());
}

}  // namespace ll
