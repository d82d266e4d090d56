// Files: whole-file reads, read-only memory maps, and writes that never leave a
// half-written file or folder behind (write to a temporary name, flush, rename).
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

namespace ll {

namespace fs = std::filesystem;

// Reads a whole file; throws "[file] PATH: ..." when it cannot.
std::string read_file(const fs::path& path);

// A read-only memory map of a whole file. Move-only; unmaps on destruction.
class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const fs::path& path);
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  size_t size() const { return size_; }
  const fs::path& path() const { return path_; }

 private:
  void release();
  fs::path path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

// Writes all of `bytes` to the open descriptor `fd`, resuming after short writes and
// EINTR; throws "[file] PATH: write failed: ..." with `path_for_errors` as PATH. The
// building block of the atomic writers here and of formats' streaming writers.
void write_all(int fd, std::span<const std::byte> bytes, const fs::path& path_for_errors);

// fsyncs the folder `dir` ("" means ".") so that a file created or renamed inside it
// survives a crash. Best effort: errors are ignored, as some filesystems cannot fsync a
// folder and the data itself has already been fsynced.
void fsync_dir(const fs::path& dir);

// Writes `bytes` to PATH.tmp-<pid>, fsyncs, then renames over PATH.
void write_file_atomic(const fs::path& path, std::span<const std::byte> bytes);
void write_file_atomic(const fs::path& path, std::string_view text);

// A folder built under a temporary name beside its final one and renamed into place by
// commit(); destroyed without commit() it removes itself. A crash leaves only a folder
// whose name starts with ".tmp-", never one that looks complete.
class StagedDir {
 public:
  enum class Existing { Refuse, Replace };
  StagedDir(fs::path final_path, Existing existing);
  StagedDir(const StagedDir&) = delete;
  StagedDir& operator=(const StagedDir&) = delete;
  ~StagedDir();

  const fs::path& path() const { return staging_; }  // write files here
  const fs::path& final_path() const { return final_; }
  void commit();

 private:
  fs::path final_;
  fs::path staging_;
  Existing existing_;
  bool committed_ = false;
};

}  // namespace ll
