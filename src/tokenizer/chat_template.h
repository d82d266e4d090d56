// Chat templates: a conversation -> the exact text transformers'
// `tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=...)` renders,
// by running the model's own Jinja template in our interpreter (tokenizer/jinja/jinja.h). The
// template comes from `chat_template.jinja` beside tokenizer_config.json when there is one (as
// transformers 5 saves it, and then prefers it), else from tokenizer_config.json's
// `chat_template` (a string, or a list of named templates of which transformers takes
// "default"). The template sees what transformers passes: messages, add_generation_prompt,
// tools and documents (None unless given) and the special-token strings of tokenizer_config
// (bos_token, eos_token, unk_token, pad_token, ...).
//
// Two things are derived from renders, with no knowledge of any template family:
//
// Assistant ranges (the completion-only loss mask). For the assistant message i, render
//   prefix = messages[:i] with the generation prompt     (everything before the reply)
//   turn   = messages[:i+1] without it                   (the reply and what closes it)
// The reply starts at |prefix|; it ends after the last end-of-turn token in the turn (below),
// or at the end of the turn when the template has none. So the range is the reply as rendered
// (trimmed when the template trims) plus its end-of-turn token; a separator after that token
// (ChatML's "\n", Llama-3-original's always-appended header) is not in it. Both renders must
// be prefixes of the full render up to that point: a template that renders earlier turns
// differently once later ones follow (Mistral's system prompt folded into the LAST user turn,
// templates that drop past reasoning) has no such ranges, and asking for them is an error
// naming the message.
//
// End-of-turn token: render a probe conversation (user "…", assistant REPLY) as above; the
// first special token (tokenizer_config's added_tokens_decoder with special: true, and the
// named special tokens) after REPLY in the turn is the token the template closes a reply with:
// <|eot_id|> for Llama-3, <|im_end|> for ChatML, </s> for Mistral/Zephyr, <end_of_turn> for
// Gemma. None when the probe does not render (a template that needs a system message...) or no
// special token follows the reply.
#pragma once

#include <cstddef>
#include <ctime>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "tokenizer/jinja/jinja.h"

namespace ll {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", ...
  std::string content;
};

enum class GenerationPrompt { Omit, Add };  // Add: end with the assistant header

struct TextRange {
  size_t begin = 0;  // byte offsets into RenderedChat::text, [begin, end)
  size_t end = 0;
};

struct RenderedChat {
  std::string text;
  // One per assistant message, in message order: its rendered reply plus its end-of-turn
  // token (see the top of this file).
  std::vector<TextRange> assistant_ranges;
};

// The special-token strings a template sees and may close turns with.
struct ChatTokens {
  // Named tokens as the template variables transformers passes: "bos_token" -> "<s>", ...
  std::vector<std::pair<std::string, std::string>> named;
  // Contents of the added tokens marked special (candidates for the end-of-turn token).
  std::vector<std::string> special;
};

// What a render may add besides messages (transformers' tools= and documents=); null: None.
struct ChatExtras {
  nlohmann::ordered_json tools;
  nlohmann::ordered_json documents;
};

class ChatTemplate {
 public:
  // `origin` names the template's file in errors ("[chat_template] ORIGIN: ...").
  ChatTemplate(std::string source, std::string origin, ChatTokens tokens);

  // `config` is a parsed tokenizer_config.json; reads chat_template, the special tokens and
  // added_tokens_decoder.
  static ChatTemplate from_tokenizer_config(const nlohmann::json& config,
                                            const std::string& origin);
  // `path` is a tokenizer_config.json file or a folder holding one and/or chat_template.jinja.
  static ChatTemplate load(const std::filesystem::path& path);
  // The folder's template, or none when it has neither chat_template.jinja nor a chat_template
  // in tokenizer_config.json (a base model's folder); any other problem throws as load does.
  static std::optional<ChatTemplate> load_if_present(const std::filesystem::path& folder);

  const std::string& source() const { return source_; }
  const std::string& origin() const { return origin_; }
  const std::string& bos_token() const { return bos_token_; }  // "" when the config has none
  const std::string& eos_token() const { return eos_token_; }  // "" when the config has none
  // The token that closes an assistant reply, found by a probe render (see the top).
  const std::optional<std::string>& end_of_turn() const { return end_of_turn_; }

  // Messages as JSON (any fields the template reads: tool_calls, ...).
  std::string render(const nlohmann::ordered_json& messages, GenerationPrompt prompt,
                     const ChatExtras& extras = {}) const;
  std::string render(std::span<const ChatMessage> messages, GenerationPrompt prompt) const;
  // The render without generation prompt, and where each assistant reply is in it. Throws
  // "[chat_template] ORIGIN: cannot find the reply of message I ..." when the template's renders
  // of prefixes are not prefixes of its render (see the top).
  RenderedChat render_with_assistant_ranges(std::span<const ChatMessage> messages) const;

  // What strftime_now() reads as now (tests and fixtures pin it); none: the clock.
  void set_now(std::optional<std::tm> now) { now_ = now; }

 private:
  std::string render_at(const nlohmann::ordered_json& messages, GenerationPrompt prompt,
                        const ChatExtras& extras, const jinja::RenderOptions& options) const;
  jinja::RenderOptions render_options() const;
  std::optional<std::string> find_end_of_turn(const std::vector<std::string>& special) const;

  std::string source_;
  std::string origin_;
  std::shared_ptr<const jinja::Template> template_;  // shared: ChatTemplate stays copyable
  std::vector<std::pair<std::string, std::string>> named_tokens_;
  std::string bos_token_;
  std::string eos_token_;
  std::optional<std::string> end_of_turn_;
  std::optional<std::tm> now_;
};

nlohmann::ordered_json chat_messages_to_json(std::span<const ChatMessage> messages);

// The eos_token of `folder`/tokenizer_config.json (a string or {"content": ...}); none when the
// file or the field is absent. For folders without a chat template (ChatTemplate::eos_token).
std::optional<std::string> read_eos_token(const std::filesystem::path& folder);

}  // namespace ll
