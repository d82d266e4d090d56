// The zip container `torch.save` writes: a plain zip archive (zip64 past 4 GiB or 65,535
// entries) whose entries are all stored, never compressed, each one's data aligned in the
// file so that it can be mapped and read in place. Read from the central directory (torch
// writes data descriptors, so local headers may carry zero sizes); every offset and length
// is checked against the file before use. Compressed or encrypted entries are refused.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>

#include "core/file.h"

namespace ll {

struct ZipEntry {
  uint64_t data_offset = 0;  // from the start of the file
  uint64_t size = 0;
  uint32_t crc32 = 0;
};

class StoredZip {
 public:
  // Throws "[origin] PATH: ..." naming what is wrong (not a zip, truncated, compressed ...).
  static StoredZip open(const fs::path& path, std::string_view origin);

  const fs::path& path() const { return mapped_.path(); }
  std::span<const std::byte> file_bytes() const { return mapped_.bytes(); }
  const std::map<std::string, ZipEntry, std::less<>>& entries() const { return entries_; }
  const ZipEntry* find(std::string_view name) const;  // nullptr if absent
  std::span<const std::byte> data(const ZipEntry& entry) const;
  // The entry's bytes after checking them against its CRC-32 (for the small records a
  // reader parses; tensor data is mapped without it).
  std::span<const std::byte> checked_data(std::string_view name) const;

 private:
  MappedFile mapped_;
  std::string origin_;
  std::map<std::string, ZipEntry, std::less<>> entries_;
};

// CRC-32 as zip uses it (reflected polynomial 0xEDB88320); crc32("123456789") = 0xCBF43926.
uint32_t zip_crc32(std::span<const std::byte> bytes);

}  // namespace ll
