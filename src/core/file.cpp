// See file.h.
#include "core/file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace ll {
namespace {

std::string errno_text() {
  return std::strerror(errno);
}

}  // namespace

void write_all(int fd, std::span<const std::byte> bytes, const fs::path& path_for_errors) {
  const std::byte* data = bytes.data();
  size_t size = bytes.size();
  while (size > 0) {
    const ssize_t written = ::write(fd, data, size);
    if (written < 0) {
      if (errno == EINTR) continue;
      fail("file", path_for_errors.string() + ": write failed: " + errno_text());
    }
    data += written;
    size -= static_cast<size_t>(written);
  }
}

void fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("file", path.string() + ": cannot open for reading: " + errno_text());
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) fail("file", path.string() + ": read failed");
  return std::move(buffer).str();
}

MappedFile::MappedFile(const fs::path& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail("file", path.string() + ": cannot open: " + errno_text());
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    ::close(fd);
    fail("file", path.string() + ": cannot stat: " + errno_text());
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    fail("file", path.string() + ": not a regular file");
  }
  size_ = static_cast<size_t>(info.st_size);
  if (size_ > 0) {
    void* mapped = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (mapped == MAP_FAILED) {
      ::close(fd);
      fail("file", path.string() + ": mmap failed: " + errno_text());
    }
    data_ = static_cast<const std::byte*>(mapped);
  }
  ::close(fd);
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)), data_(other.data_), size_(other.size_) {
  other.data_ = nullptr;
  other.size_ = 0;
}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    data_ = other.data_;
    size_ = other.size_;
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

MappedFile::~MappedFile() {
  release();
}

void MappedFile::release() {
  if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
}

void write_file_atomic(const fs::path& path, std::span<const std::byte> bytes) {
  const fs::path tmp = path.string() + ".tmp-" + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) fail("file", path.string() + ": cannot create: " + errno_text());
  try {
    write_all(fd, bytes, path);
    if (::fsync(fd) != 0) fail("file", path.string() + ": fsync failed: " + errno_text());
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    fail("file", path.string() + ": rename failed: " + errno_text());
  }
  fsync_dir(path.parent_path());
}

void write_file_atomic(const fs::path& path, std::string_view text) {
  write_file_atomic(path, std::as_bytes(std::span(text.data(), text.size())));
}

StagedDir::StagedDir(fs::path final_path, Existing existing)
    : final_(std::move(final_path)), existing_(existing) {
  if (final_.filename().empty()) final_ = final_.parent_path();
  if (existing_ == Existing::Refuse && fs::exists(final_)) {
    fail("output", final_.string() + ": already exists (use --overwrite to replace it)");
  }
  const fs::path parent = final_.has_parent_path() ? final_.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) fail("output", parent.string() + ": cannot create folder: " + ec.message());
  staging_ = parent / (".tmp-" + final_.filename().string() + "-" + std::to_string(::getpid()));
  fs::remove_all(staging_, ec);
  fs::create_directory(staging_, ec);
  if (ec) fail("output", staging_.string() + ": cannot create folder: " + ec.message());
}

StagedDir::~StagedDir() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(staging_, ec);
  }
}

void StagedDir::commit() {
  std::error_code ec;
  fsync_dir(staging_);
  if (fs::exists(final_)) {
    if (existing_ == Existing::Refuse) {
      fail("output", final_.string() + ": appeared while writing; left untouched");
    }
    // Move the old folder aside first so that a crash leaves one complete folder.
    const fs::path old = final_.string() + ".old-" + std::to_string(::getpid());
    fs::rename(final_, old, ec);
    if (ec) fail("output", final_.string() + ": cannot replace: " + ec.message());
    fs::rename(staging_, final_, ec);
    if (ec) fail("output", final_.string() + ": rename failed: " + ec.message());
    fs::remove_all(old, ec);
  } else {
    fs::rename(staging_, final_, ec);
    if (ec) fail("output", final_.string() + ": rename failed: " + ec.message());
  }
  fsync_dir(final_.has_parent_path() ? final_.parent_path() : fs::path("."));
  committed_ = true;
}

}  // namespace ll
