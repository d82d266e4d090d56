// When generation stops, and how much of it is the answer. A sequence stops after any stop id:
//   - generation_config.json's eos_token_id (an int or a list; else config.json's),
//   - the tokenizer's EOS token (tokenizer_config.json's eos_token),
//   - the chat template's end-of-turn token (found by the probe render of
//     tokenizer/chat_template.h: <|eot_id|>, <|im_end|>, </s>, <end_of_turn>, ...),
//   - ids the caller adds (--eos_token_id);
// or once its decoded text (special tokens skipped) contains a stop string (--stop).
// Why all of them: a base model's generation_config names only its own EOS (Meta-Llama-3-8B:
// 128001, <|end_of_text|>), but a chat model tuned from it closes a reply with the template's
// <|eot_id|> (128009). Stopping at 128001 only lets the answer run on past its turn, which
// ruins exact-match scores. transformers' generate stops at generation_config's ids only.
//
// The answer never holds what stopped it: the ids are cut before the first stop id, and the
// text before the earliest stop string (which may start inside one token's bytes and end in a
// later token). The ids generate_tokens returns keep the stop id, as transformers' do.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/llama_generate.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace ll {

// Where the stop ids come from, in the order collect_stop_ids lists them.
struct StopTokenSources {
  std::vector<int32_t> eos_token_ids;        // generation_config.json's (GenerationDefaults)
  std::optional<std::string> tokenizer_eos;  // tokenizer_config.json's eos_token
  std::optional<std::string> end_of_turn;    // the chat template's end-of-turn token
  std::vector<int32_t> extra_ids;            // the caller's (--eos_token_id)
};

// The sources of a model folder's defaults and its chat template (eos_token, end of turn).
StopTokenSources stop_token_sources(const GenerationDefaults& defaults,
                                    const ChatTemplate& chat_template);

// Every stop id once, in source order. Token strings are looked up in `tokenizer`; a string
// that is not in its vocabulary is an error naming it and its source. `tokenizer` may be null
// only when the sources hold no strings.
std::vector<int32_t> collect_stop_ids(const StopTokenSources& sources, const Tokenizer* tokenizer);

// Stop strings (--stop), none empty (an empty string would stop before the first token).
class StopStrings {
 public:
  StopStrings() = default;
  explicit StopStrings(std::vector<std::string> strings);

  bool empty() const { return strings_.empty(); }
  const std::vector<std::string>& strings() const { return strings_; }
  // Byte offset of the earliest stop string in `text` (std::string_view::npos: none).
  size_t find_in(std::string_view text) const;

 private:
  std::vector<std::string> strings_;
};

struct StopCriteria {
  std::vector<int32_t> stop_ids;  // GenerateOptions::eos_token_ids
  StopStrings stop_strings;
};

// The answer of generated ids: cut before the first stop id, decoded with special tokens
// skipped, then cut before the earliest stop string.
std::string decode_answer(const Tokenizer& tokenizer, std::span<const int32_t> ids,
                          const StopCriteria& criteria);

// The TokenCallback for one generate_tokens call that ends each sequence once its decoded
// text (special tokens skipped, as decode_answer reads it) contains a stop string. Empty (no
// callback, no decoding) when there are no stop strings. `tokenizer` and `strings` must
// outlive the call.
TokenCallback watch_stop_strings(const Tokenizer& tokenizer, const StopStrings& strings);

}  // namespace ll
