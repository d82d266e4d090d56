// GGUF v3 writer (the file format of llama.cpp / ggml), streamed tensor by tensor:
//   u32 magic "GGUF", u32 version 3, u64 tensor count, u64 metadata count
//   metadata: string key, u32 value type, value (strings: u64 length + UTF-8 bytes; arrays:
//             u32 element type, u64 count, elements); all little-endian
//   tensor infos: string name, u32 n_dims, u64 dims innermost first (GGUF's ne[0] is
//             PyTorch's last dim), u32 ggml type, u64 offset into the data section
//   zero padding to the alignment (32, what `general.alignment` says), then the data
//   section: each tensor's bytes, zero padded to the alignment.
// The reference is gguf-py's GGUFWriter (tests/formats/test_gguf.cpp holds a file it wrote).
// The file is built under PATH.tmp-<pid> and renamed into place by finish(), so a failed
// export never leaves a file that looks complete.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "core/file.h"
#include "formats/gguf_quant.h"

namespace ll {

inline constexpr uint32_t kGgufAlignment = 32;

// One metadata value; the alternative picks the GGUF value type (u32 = UINT32 (4), i32 =
// INT32 (5), float = FLOAT32 (6), bool = BOOL (7), string = STRING (8), arrays = ARRAY (9)
// of STRING or INT32).
using GgufValue = std::variant<uint32_t, int32_t, float, bool, std::string,
                               std::vector<std::string>, std::vector<int32_t>>;
using GgufMetadata = std::vector<std::pair<std::string, GgufValue>>;  // in writing order

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> shape;  // PyTorch order ([out, in]); written innermost first
  GgmlType type = GgmlType::F32;
  uint64_t nbytes() const;  // throws when the innermost dim does not fit the type
};

// Everything before the data section, padded to the alignment. Checks names (non-empty,
// distinct), shapes and keys (non-empty, distinct).
std::vector<std::byte> gguf_header_bytes(const GgufMetadata& metadata,
                                         std::span<const GgufTensorInfo> tensors);

class GgufWriter {
 public:
  // Writes the header at once; tensors then follow in `tensors` order.
  GgufWriter(const fs::path& path, const GgufMetadata& metadata,
             std::vector<GgufTensorInfo> tensors);
  ~GgufWriter();  // without finish(): removes the temporary file
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  // The bytes of the next tensor (its name checked), exactly nbytes() of them.
  void write_next(std::string_view name, std::span<const std::byte> bytes);
  void finish();  // all tensors written: fsync, rename into place

 private:
  fs::path path_;
  fs::path temp_;
  int fd_ = -1;
  std::vector<GgufTensorInfo> tensors_;
  size_t next_ = 0;
};

}  // namespace ll
