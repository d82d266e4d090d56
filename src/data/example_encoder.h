// Examples -> token ids with a loss mask, one "document" each, as the seed's SFT packing
// (TRL ConstantLengthDataset with dataset_kwargs add_special_tokens=False,
// append_concat_token=True) builds them:
//
//   conversation: render with the chat template (no generation prompt), encode WITHOUT the
//                 tokenizer's special tokens (the template already starts with BOS), then
//                 append the concat token.
//   text:         the bos_token of tokenizer_config.json (when it has one, so that a text
//                 document starts like a rendered conversation does), then the text encoded
//                 without special tokens, then the concat token. We add BOS ourselves rather
//                 than through the tokenizer's post-processor because tokenizer.json files
//                 differ there (Meta's adds BOS, some copies' ByteLevel post-processor does not).
//
// Loss mask (labels[i] = 1: token i is a training target; the trainer shifts, so the first
// token of a sequence is never predicted):
//   LossMask::AllTokens      every token, the concat token too (the seed: labels = input_ids).
//   LossMask::AssistantOnly  tokens whose bytes overlap an assistant range of the rendered chat
//                            (the reply + end-of-turn token, found by rendering prefixes of the
//                            conversation with the model's own template, see
//                            tokenizer/chat_template.h), as TRL's assistant masks mark every
//                            token holding a character of the assistant's reply. The concat
//                            token is not a target. Text examples have no prompt: all their
//                            tokens are targets. A template whose prefix renders are not
//                            prefixes of its full render is an error here.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "data/presets.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace ll {

enum class LossMask { AllTokens, AssistantOnly };

struct TokenizedExample {
  std::vector<int32_t> ids;     // [tokens], the concat token last when there is one
  std::vector<uint8_t> labels;  // [tokens] 1 = training target
};

class ExampleEncoder {
 public:
  // `concat_token`: appended to every example (nullopt: nothing appended). The tokenizer and
  // template must outlive the encoder.
  ExampleEncoder(const Tokenizer& tokenizer, const ChatTemplate& chat_template, LossMask mask,
                 std::optional<int32_t> concat_token);

  TokenizedExample encode(const Example& example) const;
  // The two halves of encode() for a conversation, so that a benchmark can time them apart.
  // render() finds the assistant ranges only for LossMask::AssistantOnly.
  RenderedChat render(const Example& example) const;
  TokenizedExample encode_rendered(const RenderedChat& chat) const;
  TokenizedExample encode_text(const std::string& text) const;

 private:
  void append_concat(TokenizedExample& out, uint8_t label) const;

  const Tokenizer* tokenizer_;
  const ChatTemplate* chat_template_;
  LossMask mask_;
  std::optional<int32_t> concat_token_;
  std::optional<int32_t> bos_token_;  // for text examples
};

}  // namespace ll
