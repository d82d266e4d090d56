// Helpers shared by the test binaries: where the shared test data and fixtures are,
// temporary folders, and running the llama-lora binary.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace ll::test {

namespace fs = std::filesystem;

// A copy of `values` (a view into an adapter's store, say), for EXPECT_EQ.
inline std::vector<float> values_of(std::span<const float> values) {
  return {values.begin(), values.end()};
}

// Bytes from a hex string ("00ff10" -> {0x00, 0xff, 0x10}), for reference files printed as hex.
std::vector<std::byte> from_hex(std::string_view hex);

// ../shared/data (absolute). Use LL_REQUIRE_SHARED(path) to skip visibly when absent.
fs::path shared_data();
fs::path fixtures();  // tests/fixtures in the source tree

// A fresh empty folder under the system temp dir, removed at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs the llama-lora binary with `args` (a shell-quoted string) and captures its output.
CommandResult run_llama_lora(const std::string& args);

// Checks a failed run: exit 1 and exactly one line "llama-lora: error: ..." containing `part`.
void expect_cli_error(const CommandResult& result, const std::string& part);

// Runs a shell command line (stdin from /dev/null) and captures its output.
CommandResult run_command(const std::string& command);

// Writes `text` to a file (creating parent folders).
void write_text(const fs::path& path, const std::string& text);

std::string shell_quote(const std::string& text);

// Runs `body`, which must throw ll::Error; returns its message after checking it is one line.
template <typename Body>
std::string error_of(Body body) {
  try {
    body();
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    return message;
  }
  ADD_FAILURE() << "no ll::Error thrown";
  return "";
}

}  // namespace ll::test

// Skips the current test with a visible message when a shared-data path is missing.
#define LL_REQUIRE_SHARED(path)                                          \
  do {                                                                   \
    if (!std::filesystem::exists(path)) {                                \
      GTEST_SKIP() << "shared test data not found: " << (path).string()  \
                   << " (tests reading ../shared/data skip without it)"; \
    }                                                                    \
  } while (0)
