// The pieces of a loaded tokenizer.json and the encode/decode passes over them (internal to
// tokenizer/; the public face is Tokenizer in tokenizer.h):
//   text -> added tokens split out -> pre-tokenizer pieces -> BPE per piece
//        -> post-processor (ByteLevel offset trimming, TemplateProcessing ids) -> ids, offsets
//   ids  -> per-id bytes (ByteLevel decoder) -> lossy UTF-8 repair -> text
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/added_vocab.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pretokenizer.h"

namespace ll {

struct TokenizerPipeline {
  TokenizerPipeline(std::string origin_, BpeEncoder model_)
      : origin(std::move(origin_)), model(std::move(model_)) {}

  std::string origin;  // the file, for messages
  BpeEncoder model;
  AddedVocabulary added;
  PreTokenizer pre_tokenizer;

  // Post-processor.
  bool trim_offsets = false;        // ByteLevel: offsets leave out leading/trailing spaces
  std::vector<int32_t> prefix_ids;  // TemplateProcessing "single": ids before $A
  std::vector<int32_t> suffix_ids;  // ... and after it

  // Per id, what decoding needs (index: id, size: largest id + 1).
  enum class IdKind : uint8_t { None, Model, Added, Special };
  std::vector<IdKind> kinds;
  std::vector<uint32_t> decoded_offsets;  // bytes of id i: decoded_bytes[off[i], off[i + 1])
  std::string decoded_bytes;

  // Appends the encoding of `text`; `offsets` may be null when the caller needs ids only.
  void encode(std::string_view text, bool add_special, std::vector<int32_t>& ids,
              std::vector<std::pair<uint32_t, uint32_t>>* offsets) const;
  // Raw bytes of the tokens (no UTF-8 repair); unknown ids throw.
  std::string decode_bytes(const int32_t* ids, size_t count, bool skip_special) const;

  // Fills kinds/decoded_* from the model and added tokens (after both are loaded).
  void build_id_tables();
};

TokenizerPipeline parse_tokenizer_json(const nlohmann::json& json, const std::string& origin);

}  // namespace ll
