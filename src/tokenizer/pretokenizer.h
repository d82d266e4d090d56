// Pre-tokenization: cutting text (between added tokens) into the pieces that BPE encodes one
// by one, as the `Split` (behavior Isolated) and `ByteLevel` pre-tokenizers of Hugging Face
// `tokenizers` do. Regexes run on PCRE2 (UTF + UCP, JIT-compiled when the library can) where
// `tokenizers` uses Oniguruma; the patterns models ship (GPT-2's, Llama-3's) mean the same in
// both.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ll {

// GPT-2's pre-tokenizer pattern, what `ByteLevel` splits with when `use_regex` is true.
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// A piece of the input to encode: bytes [begin, end) of the text, preceded by one space that
// is not in the text when `prefix_space` is set (ByteLevel's add_prefix_space).
struct Piece {
  uint32_t begin = 0;
  uint32_t end = 0;
  bool prefix_space = false;
};

using ByteRange = std::pair<uint32_t, uint32_t>;

// Reusable per-call state (PCRE2 match data, buffers); one per thread at a time.
class SplitScratch {
 public:
  SplitScratch();
  ~SplitScratch();
  SplitScratch(const SplitScratch&) = delete;
  SplitScratch& operator=(const SplitScratch&) = delete;
  void* match_data() const { return match_data_; }
  std::vector<ByteRange> ranges_a, ranges_b, sub;
  std::string prefixed;

 private:
  void* match_data_;  // pcre2_match_data_8*
};

// One compiled pattern that splits text with behavior Isolated: every match is a piece and so
// is every non-empty stretch between matches.
class SplitRegex {
 public:
  enum class Syntax { Regex, Literal };
  // Throws ll::Error("tokenizer", "<origin>: ...") when the pattern does not compile.
  SplitRegex(const std::string& pattern, Syntax syntax, const std::string& origin);
  SplitRegex(SplitRegex&& other) noexcept;
  SplitRegex& operator=(SplitRegex&& other) noexcept;
  SplitRegex(const SplitRegex&) = delete;
  SplitRegex& operator=(const SplitRegex&) = delete;
  ~SplitRegex();

  // Appends the pieces of `subject` (valid UTF-8) as ranges relative to it, shifted by `base`.
  void split(std::string_view subject, uint32_t base, SplitScratch& scratch,
             std::vector<ByteRange>& out) const;
  bool jit() const { return jit_; }

 private:
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

// The pre-tokenizer pipeline: Split steps in order, then ByteLevel (optional prefix space,
// optional GPT-2 regex). Text that is not valid UTF-8 never reaches a regex: each run of
// invalid bytes becomes a piece of its own (its bytes still encode, byte-level BPE covers all
// 256 values).
struct PreTokenizer {
  std::vector<SplitRegex> splits;
  bool add_prefix_space = false;
  std::optional<SplitRegex> byte_level_regex;

  // Appends the pieces of text[begin, end) to `out`.
  void split(std::string_view text, uint32_t begin, uint32_t end, SplitScratch& scratch,
             std::vector<Piece>& out) const;

 private:
  void split_valid(std::string_view text, uint32_t begin, uint32_t end, SplitScratch& scratch,
                   std::vector<Piece>& out) const;
  void byte_level_step(std::string_view text, ByteRange range, SplitScratch& scratch,
                       std::vector<Piece>& out) const;
};

}  // namespace ll
