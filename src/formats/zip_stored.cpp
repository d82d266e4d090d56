// See zip_stored.h. Layout (PKWARE APPNOTE 6.3): local headers and data, then the central
// directory, then [zip64 end record, zip64 locator], then the end-of-central-directory record
// (22 bytes + a comment of at most 65,535 bytes).
#include "formats/zip_stored.h"

#include <array>

#include "core/error.h"
#include "core/text.h"
#include "formats/input_checks.h"

namespace ll {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kZip64EndSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr size_t kEndBytes = 22;
constexpr size_t kCentralBytes = 46;
constexpr size_t kLocalBytes = 30;
constexpr size_t kZip64EndBytes = 56;
constexpr size_t kLocatorBytes = 20;
constexpr uint16_t kZip64ExtraId = 0x0001;

// Little-endian fields of a record that the caller has checked lies inside the file.
uint64_t le(const std::byte* at, int bytes) {
  uint64_t value = 0;
  for (int i = bytes - 1; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(at[i]);
  return value;
}

class Reader {
 public:
  Reader(std::span<const std::byte> file, const fs::path& path, std::string_view origin)
      : file_(file), path_(path), origin_(origin) {}

  [[noreturn]] void fail_here(const std::string& what) const {
    fail(origin_, path_.string() + ": " + what);
  }

  // The record of `bytes` bytes at `offset`, or an error naming `what` when it does not fit.
  const std::byte* record(uint64_t offset, uint64_t bytes, const std::string& what) const {
    if (offset > file_.size() || bytes > file_.size() - offset) {
      fail_here(what + " at byte " + format_count(offset) + " runs past the end of the file (" +
                format_count(file_.size()) + " bytes; truncated?)");
    }
    return file_.data() + offset;
  }

  std::span<const std::byte> file() const { return file_; }

 private:
  std::span<const std::byte> file_;
  const fs::path& path_;
  std::string_view origin_;
};

struct Directory {
  uint64_t entries = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
};

Directory find_directory(const Reader& reader) {
  const auto file = reader.file();
  if (file.size() < kEndBytes) {
    reader.fail_here("file has " + format_count(file.size()) +
                     " bytes, too short for a zip archive (truncated?)");
  }
  // The end record is the last one whose comment length reaches exactly to the end.
  const size_t lowest = file.size() > kEndBytes + 65535 ? file.size() - kEndBytes - 65535 : 0;
  size_t end = file.size() - kEndBytes + 1;
  bool found = false;
  while (end-- > lowest) {
    const std::byte* at = file.data() + end;
    if (le(at, 4) == kEndSig && end + kEndBytes + le(at + 20, 2) == file.size()) {
      found = true;
      break;
    }
  }
  if (!found) {
    reader.fail_here(
        "no zip end-of-central-directory record (not a zip archive, or truncated; torch.save "
        "files of torch < 1.6 or with _use_new_zipfile_serialization=False are not read)");
  }
  const std::byte* at = file.data() + end;
  if (le(at + 4, 2) != 0 || le(at + 6, 2) != 0)
    reader.fail_here("multi-disk zip archives are not read");
  Directory dir{le(at + 10, 2), le(at + 16, 4), le(at + 12, 4)};
  if (end >= kLocatorBytes && le(file.data() + end - kLocatorBytes, 4) == kZip64LocatorSig) {
    const std::byte* locator = file.data() + end - kLocatorBytes;
    const uint64_t record_at = le(locator + 8, 8);
    const std::byte* z = reader.record(record_at, kZip64EndBytes, "the zip64 end record");
    if (le(z, 4) != kZip64EndSig) {
      reader.fail_here("the zip64 locator points at byte " + format_count(record_at) +
                       ", which holds no zip64 end record");
    }
    dir = Directory{le(z + 32, 8), le(z + 48, 8), le(z + 40, 8)};
  } else if (dir.entries == 0xffff || dir.offset == 0xffffffff || dir.size == 0xffffffff) {
    reader.fail_here("the end record says zip64 but there is no zip64 locator (truncated?)");
  }
  reader.record(dir.offset, dir.size, "the central directory");
  return dir;
}

// The zip64 extended-information field replaces, in this order, each of the 32-bit fields
// that hold 0xffffffff.
void apply_zip64_extra(const Reader& reader, const std::byte* extra, uint64_t extra_bytes,
                       std::array<uint64_t*, 3> fields, const std::string& where) {
  uint64_t pos = 0;
  while (pos + 4 <= extra_bytes) {
    const uint64_t id = le(extra + pos, 2);
    const uint64_t bytes = le(extra + pos + 2, 2);
    if (pos + 4 + bytes > extra_bytes) reader.fail_here(where + ": extra field runs past its end");
    if (id == kZip64ExtraId) {
      uint64_t used = 0;
      for (uint64_t* field : fields) {
        if (*field != 0xffffffff) continue;
        if (used + 8 > bytes) reader.fail_here(where + ": zip64 extra field is too short");
        *field = le(extra + pos + 4 + used, 8);
        used += 8;
      }
      return;
    }
    pos += 4 + bytes;
  }
  for (const uint64_t* field : fields) {
    if (*field == 0xffffffff) reader.fail_here(where + ": needs a zip64 extra field, has none");
  }
}

}  // namespace

uint32_t zip_crc32(std::span<const std::byte> bytes) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t crc = 0xffffffffu;
  for (const std::byte b : bytes) crc = table[(crc ^ static_cast<uint8_t>(b)) & 0xffu] ^ (crc >> 8);
  return crc ^ 0xffffffffu;
}

StoredZip StoredZip::open(const fs::path& path, std::string_view origin) {
  StoredZip zip;
  zip.origin_ = origin;
  zip.mapped_ = map_input_file(path, origin);
  const Reader reader(zip.mapped_.bytes(), path, origin);
  const Directory dir = find_directory(reader);
  uint64_t pos = dir.offset;
  const uint64_t dir_end = dir.offset + dir.size;
  for (uint64_t i = 0; i < dir.entries; ++i) {
    const std::string where = "zip entry " + std::to_string(i);
    if (pos + kCentralBytes > dir_end) {
      reader.fail_here("the central directory ends inside " + where + " (truncated?)");
    }
    const std::byte* c = zip.mapped_.bytes().data() + pos;
    if (le(c, 4) != kCentralSig) reader.fail_here(where + " has no central directory signature");
    const uint64_t flags = le(c + 8, 2);
    const uint64_t method = le(c + 10, 2);
    const auto crc = static_cast<uint32_t>(le(c + 16, 4));
    uint64_t packed = le(c + 20, 4);
    uint64_t size = le(c + 24, 4);
    const uint64_t name_bytes = le(c + 28, 2);
    const uint64_t extra_bytes = le(c + 30, 2);
    const uint64_t comment_bytes = le(c + 32, 2);
    uint64_t local = le(c + 42, 4);
    if (pos + kCentralBytes + name_bytes + extra_bytes + comment_bytes > dir_end) {
      reader.fail_here(where + " runs past the end of the central directory (truncated?)");
    }
    const std::string name(reinterpret_cast<const char*>(c + kCentralBytes), name_bytes);
    const std::string entry_where = "zip entry " + quote_name(name);
    apply_zip64_extra(reader, c + kCentralBytes + name_bytes, extra_bytes, {&size, &packed, &local},
                      entry_where);
    if (flags & 1u) reader.fail_here(entry_where + " is encrypted");
    if (method != 0) {
      reader.fail_here(entry_where + " is compressed (method " + std::to_string(method) +
                       "); only stored entries, as torch.save writes them, are read");
    }
    if (packed != size) {
      reader.fail_here(entry_where + " is stored but its sizes differ (" + format_count(packed) +
                       " vs " + format_count(size) + " bytes)");
    }
    const std::byte* l = reader.record(local, kLocalBytes, "the local header of " + entry_where);
    if (le(l, 4) != kLocalSig) {
      reader.fail_here(entry_where + ": no local header at byte " + format_count(local));
    }
    const uint64_t data_offset = local + kLocalBytes + le(l + 26, 2) + le(l + 28, 2);
    reader.record(data_offset, size,
                  "the data of " + entry_where + " (" + format_count(size) + " bytes)");
    if (!zip.entries_.emplace(name, ZipEntry{data_offset, size, crc}).second) {
      reader.fail_here(entry_where + " appears twice");
    }
    pos += kCentralBytes + name_bytes + extra_bytes + comment_bytes;
  }
  return zip;
}

const ZipEntry* StoredZip::find(std::string_view name) const {
  const auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

std::span<const std::byte> StoredZip::data(const ZipEntry& entry) const {
  return mapped_.bytes().subspan(entry.data_offset, entry.size);  // checked on open
}

std::span<const std::byte> StoredZip::checked_data(std::string_view name) const {
  const ZipEntry* entry = find(name);
  if (entry == nullptr) fail(origin_, path().string() + ": has no zip entry " + quote_name(name));
  const std::span<const std::byte> bytes = data(*entry);
  if (zip_crc32(bytes) != entry->crc32) {
    fail(origin_, path().string() + ": zip entry " + quote_name(name) +
                      " fails its CRC-32 check (corrupt file)");
  }
  return bytes;
}

}  // namespace ll
