// Byte-level BPE tokenizer read from a Hugging Face `tokenizer.json`, encoding exactly as the
// `tokenizers` library does for Llama-3 / GPT-2 style models: added (special) tokens matched
// first, then the Split pre-tokenizer regex, ByteLevel byte<->unicode mapping, BPE merges by
// rank (with `ignore_merges`), and the TemplateProcessing post-processor (BOS for Llama-3).
#pragma once

#include <nlohmann/json.hpp>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ll {

enum class AddSpecialTokens { No, Yes };  // Yes: apply the post-processor (e.g. prepend BOS)
enum class DecodeSpecial { Keep, Skip };  // Skip: drop special tokens when decoding

struct Encoding {
  std::vector<int32_t> ids;
  // Byte range [begin, end) of the input text each token came from (empty range for tokens
  // the post-processor added).
  std::vector<std::pair<uint32_t, uint32_t>> offsets;
};

// Const methods are safe to call from several threads at once (the word cache is shared).
class Tokenizer {
 public:
  // `path` is a tokenizer.json file or a folder holding one.
  static Tokenizer load(const std::filesystem::path& path);
  static Tokenizer from_json(const nlohmann::json& json, const std::string& origin);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  std::vector<int32_t> encode(std::string_view text, AddSpecialTokens add) const;
  Encoding encode_with_offsets(std::string_view text, AddSpecialTokens add) const;
  std::string decode(std::span<const int32_t> ids, DecodeSpecial special) const;
  // The bytes the tokens stand for, without decode()'s U+FFFD repair: a token can end inside
  // a character, so streaming output concatenates these and repairs (or waits) at the end.
  std::string decode_bytes(std::span<const int32_t> ids, DecodeSpecial special) const;

  int32_t vocab_size() const;  // largest id + 1, added tokens included
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::string id_to_token(int32_t id) const;  // the vocab string (byte-level form)
  bool is_special(int32_t id) const;
  std::optional<int32_t> bos_id() const;  // what the post-processor prepends, if anything

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ll
