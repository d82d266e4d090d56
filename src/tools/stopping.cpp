// See stopping.h.
#include "tools/stopping.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "core/error.h"

namespace ll {

namespace {

constexpr const char* kOrigin = "stop";

void add_once(std::vector<int32_t>& ids, int32_t id) {
  if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
}

void add_token(std::vector<int32_t>& ids, const std::optional<std::string>& token,
               const char* source, const Tokenizer* tokenizer) {
  if (!token || token->empty()) return;
  check(tokenizer != nullptr, kOrigin,
        std::string(source) + " '" + *token + "' needs a tokenizer to find its id");
  const std::optional<int32_t> id = tokenizer->token_to_id(*token);
  check(id.has_value(), kOrigin,
        std::string(source) + " '" + *token + "' is not in the tokenizer's vocabulary");
  add_once(ids, *id);
}

}  // namespace

StopTokenSources stop_token_sources(const GenerationDefaults& defaults,
                                    const ChatTemplate& chat_template) {
  StopTokenSources sources;
  sources.eos_token_ids = defaults.eos_token_ids;
  if (!chat_template.eos_token().empty()) sources.tokenizer_eos = chat_template.eos_token();
  sources.end_of_turn = chat_template.end_of_turn();
  return sources;
}

std::vector<int32_t> collect_stop_ids(const StopTokenSources& sources, const Tokenizer* tokenizer) {
  std::vector<int32_t> ids;
  for (int32_t id : sources.eos_token_ids) add_once(ids, id);
  add_token(ids, sources.tokenizer_eos, "tokenizer_config.json's eos_token", tokenizer);
  add_token(ids, sources.end_of_turn, "the chat template's end-of-turn token", tokenizer);
  for (int32_t id : sources.extra_ids) add_once(ids, id);
  return ids;
}

StopStrings::StopStrings(std::vector<std::string> strings) : strings_(std::move(strings)) {
  for (const std::string& s : strings_) {
    check(!s.empty(), kOrigin, "--stop: an empty stop string would stop before the first token");
  }
}

size_t StopStrings::find_in(std::string_view text) const {
  size_t earliest = std::string_view::npos;
  for (const std::string& s : strings_) earliest = std::min(earliest, text.find(s));
  return earliest;
}

std::string decode_answer(const Tokenizer& tokenizer, std::span<const int32_t> ids,
                          const StopCriteria& criteria) {
  const auto stop = std::find_first_of(ids.begin(), ids.end(), criteria.stop_ids.begin(),
                                       criteria.stop_ids.end());
  std::string text =
      tokenizer.decode(ids.first(static_cast<size_t>(stop - ids.begin())), DecodeSpecial::Skip);
  const size_t cut = criteria.stop_strings.find_in(text);
  if (cut != std::string_view::npos) text.resize(cut);
  return text;
}

TokenCallback watch_stop_strings(const Tokenizer& tokenizer, const StopStrings& strings) {
  if (strings.empty()) return {};
  // Per sequence, the tokens so far. The whole text is decoded again at each step (not the
  // new token alone): a token's text can depend on its neighbours (SentencePiece drops the
  // first token's leading space, a character can span byte tokens), and a decode of at most
  // max_new_tokens ids costs little next to a decode step of the model.
  auto generated = std::make_shared<std::vector<std::vector<int32_t>>>();
  return [&tokenizer, &strings, generated](size_t sequence, int32_t token) {
    if (generated->size() <= sequence) generated->resize(sequence + 1);
    std::vector<int32_t>& ids = (*generated)[sequence];
    ids.push_back(token);
    const std::string text = tokenizer.decode(ids, DecodeSpecial::Skip);
    return strings.find_in(text) == std::string_view::npos ? TokenVerdict::Continue
                                                           : TokenVerdict::Stop;
  };
}

}  // namespace ll
