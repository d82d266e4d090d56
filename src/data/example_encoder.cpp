// Examples -> token ids and loss masks: see example_encoder.h.
#include "data/example_encoder.h"

namespace ll {

ExampleEncoder::ExampleEncoder(const Tokenizer& tokenizer, const ChatTemplate& chat_template,
                               LossMask mask, std::optional<int32_t> concat_token)
    : tokenizer_(&tokenizer),
      chat_template_(&chat_template),
      mask_(mask),
      concat_token_(concat_token) {
  if (!chat_template.bos_token().empty())
    bos_token_ = tokenizer.token_to_id(chat_template.bos_token());
}

RenderedChat ExampleEncoder::render(const Example& example) const {
  // Assistant ranges cost one pair of prefix renders per reply: only when the mask needs them.
  if (mask_ == LossMask::AssistantOnly) {
    return chat_template_->render_with_assistant_ranges(example.messages);
  }
  return RenderedChat{chat_template_->render(example.messages, GenerationPrompt::Omit), {}};
}

TokenizedExample ExampleEncoder::encode_rendered(const RenderedChat& chat) const {
  TokenizedExample out;
  if (mask_ == LossMask::AllTokens) {
    out.ids = tokenizer_->encode(chat.text, AddSpecialTokens::No);
    out.labels.assign(out.ids.size(), 1);
  } else {
    Encoding encoding = tokenizer_->encode_with_offsets(chat.text, AddSpecialTokens::No);
    out.ids = std::move(encoding.ids);
    out.labels.assign(out.ids.size(), 0);
    // Token offsets and assistant ranges both increase: one pass over each.
    const std::vector<TextRange>& ranges = chat.assistant_ranges;
    size_t r = 0;
    for (size_t t = 0; t < out.ids.size() && r < ranges.size(); ++t) {
      const auto [begin, end] = encoding.offsets[t];
      while (r < ranges.size() && ranges[r].end <= begin) ++r;  // ranges wholly before token
      if (r < ranges.size() && begin < ranges[r].end && end > ranges[r].begin) out.labels[t] = 1;
    }
  }
  // The seed trains on the concat token (labels = input_ids); assistant-only loss leaves it out.
  append_concat(out, mask_ == LossMask::AllTokens ? 1 : 0);
  return out;
}

TokenizedExample ExampleEncoder::encode_text(const std::string& text) const {
  TokenizedExample out;
  if (bos_token_) out.ids.push_back(*bos_token_);
  const std::vector<int32_t> ids = tokenizer_->encode(text, AddSpecialTokens::No);
  out.ids.insert(out.ids.end(), ids.begin(), ids.end());
  out.labels.assign(out.ids.size(), 1);
  append_concat(out, 1);
  return out;
}

TokenizedExample ExampleEncoder::encode(const Example& example) const {
  if (example.kind == ExampleKind::Text) return encode_text(example.text);
  return encode_rendered(render(example));
}

void ExampleEncoder::append_concat(TokenizedExample& out, uint8_t label) const {
  if (!concat_token_) return;
  out.ids.push_back(*concat_token_);
  out.labels.push_back(label);
}

}  // namespace ll
