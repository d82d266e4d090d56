// A byte-level BPE trainer, so that `llama-lora init` can make a working tokenizer without
// downloading one. It learns merges the way Hugging Face `tokenizers`' BpeTrainer does
// (count pre-token frequencies, then repeatedly merge the most frequent adjacent pair, with
// incremental pair-count updates), over pre-tokens split by the Llama-3 regex, and writes
// the result in the structure of Llama-3's tokenizer.json: Split(Regex, Isolated) +
// ByteLevel(use_regex false) pre-tokenizer, BPE with ignore_merges, ByteLevel decoder,
// TemplateProcessing that prepends <|begin_of_text|>, special tokens as added tokens
// after the BPE vocabulary (in Llama-3's order), so ll::Tokenizer and HF tokenizers load it.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ll {

// The Llama-3 pre-tokenizer split pattern (the tiktoken cl100k-style regex).
extern const std::string_view kLlama3SplitPattern;

// A learned BPE model. Token strings are in byte-level form (each byte as the code point
// GPT-2's bytes_to_unicode gives it, UTF-8 encoded, e.g. a space is "Ġ").
struct BpeModel {
  std::vector<std::string> tokens;  // id -> token: the 256 byte tokens first, then merges
  std::vector<std::pair<std::string, std::string>> merges;  // by rank (first = merged first)
};

struct BpeTrainerOptions {
  int32_t bpe_vocab_size = 1024;  // 256 byte tokens + learned tokens, special tokens excluded
  int64_t min_frequency = 2;      // a pair seen fewer times (weighted by words) is not merged
};

// Learns merges from `corpus` (any bytes; invalid UTF-8 is split around, never dropped)
// until the vocabulary has options.bpe_vocab_size tokens or no pair is frequent enough.
// Deterministic: ties between equally frequent pairs go to the pair of smaller ids.
BpeModel train_bpe(std::string_view corpus, const BpeTrainerOptions& options);

// The 256 byte tokens in id order, in byte-level form (see byte_level.h), in GPT-2's and
// Llama-3's order: '!'..'~', '¡'..'¬', '®'..'ÿ', then the other bytes ("Ġ" for a space is 220).
std::vector<std::string> byte_level_alphabet();

// Llama-3's first `count` special tokens in its order (<|begin_of_text|>,
// <|end_of_text|>, <|reserved_special_token_0..3|>, <|start_header_id|>,
// <|end_header_id|>, <|reserved_special_token_4|>, <|eot_id|>, then
// <|reserved_special_token_5|>, ...). `count` >= 10 so that the chat tokens are in.
std::vector<std::string> llama3_special_tokens(int32_t count);

// tokenizer.json (tokenizers' format, Llama-3 structure) for `model`, with
// `special_tokens` added after the BPE vocabulary (ids tokens.size(), ...). The
// post-processor prepends `bos_token`, which must be one of `special_tokens`.
nlohmann::json bpe_tokenizer_json(const BpeModel& model,
                                  std::span<const std::string> special_tokens,
                                  std::string_view bos_token);

// tokenizer_config.json and special_tokens_map.json for a Llama-3-style tokenizer.json
// (bos <|begin_of_text|>, eos <|end_of_text|>, the Llama-3-Instruct chat template,
// PreTrainedTokenizerFast). `tokenizer_json` supplies the added tokens.
nlohmann::json llama3_tokenizer_config(const nlohmann::json& tokenizer_json,
                                       int64_t model_max_length);
nlohmann::json llama3_special_tokens_map();

// A Llama-3-style tokenizer.json: a BPE trained on `corpus` with `vocab_size` tokens in all,
// kBuiltinSpecialTokenCount of them Llama-3's special tokens. `llama-lora init` trains it
// on the built-in corpus (data/sql_corpus.h: train_builtin_tokenizer).
nlohmann::json train_llama3_style_tokenizer(std::string_view corpus, int32_t vocab_size);
inline constexpr int32_t kBuiltinSpecialTokenCount = 16;

}  // namespace ll
