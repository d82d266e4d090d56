// Chat templates: turn a conversation into the exact text that transformers'
// `tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=...)` renders
// from the Jinja `chat_template` in a model's tokenizer_config.json, and say which bytes of that
// text are assistant replies (for the assistant-only loss mask).
//
// We do not interpret Jinja. We recognise the templates we know (Llama-3-Instruct, both the
// original one that always appends the assistant header and the fixed one that does so only
// when asked; ChatML, with or without a default system message) after normalising their
// syntax (whitespace inside tags, quoting and escapes, `{%- -%}` and transformers'
// trim_blocks/lstrip_blocks), and render them natively. A template that is none of these but
// carries the Llama-3 or ChatML markers is accepted only when every tag in it is one of the
// tags of the known templates of that family (so there is nothing in it we cannot render);
// anything else, e.g. Llama-3.1's template with tools and "Cutting Knowledge Date", is an error.
//
// Assistant ranges: for each assistant message, the bytes of its content as rendered
// (Llama-3 trims it, Python `str.strip()` semantics) followed by the end-of-turn token that
// closes it: `<|eot_id|>` for Llama-3, `<|im_end|>` for ChatML. ChatML's newline after
// `<|im_end|>` is NOT included: it belongs to the template's separator, like Llama-3's next
// header, and generation stops at the end-of-turn token anyway.
#pragma once

#include <cstddef>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ll {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", ...
  std::string content;
};

enum class GenerationPrompt { Omit, Add };  // Add: end with the assistant header
enum class ChatTemplateKind { Llama3, ChatML };

struct TextRange {
  size_t begin = 0;  // byte offsets into RenderedChat::text, [begin, end)
  size_t end = 0;
};

struct RenderedChat {
  std::string text;
  // One per assistant message, in message order: its rendered content plus its
  // end-of-turn token (see the top of this file).
  std::vector<TextRange> assistant_ranges;
};

class ChatTemplate {
 public:
  // `config` is a parsed tokenizer_config.json; `origin` names it in errors
  // ("[chat_template] ORIGIN: ..."). Reads chat_template, bos_token and eos_token.
  static ChatTemplate from_tokenizer_config(const nlohmann::json& config,
                                            const std::string& origin);
  // `path` is a tokenizer_config.json file or a folder holding one.
  static ChatTemplate load(const std::filesystem::path& path);

  ChatTemplateKind kind() const { return kind_; }
  // Which known template matched, e.g. "llama3-original" (see chat_template.cpp).
  const std::string& variant() const { return variant_; }
  const std::string& bos_token() const { return bos_token_; }  // "" when the config has none
  const std::string& eos_token() const { return eos_token_; }  // "" when the config has none
  std::string_view end_of_turn() const;                        // "<|eot_id|>" or "<|im_end|>"

  RenderedChat render(std::span<const ChatMessage> messages, GenerationPrompt prompt) const;

  // When the template appends the assistant header: Llama-3's original template does it
  // always, even with add_generation_prompt=False; the fixed one only when asked.
  enum class PromptRule { Never, OnRequest, Always };
  PromptRule prompt_rule() const { return prompt_rule_; }

 private:
  ChatTemplateKind kind_ = ChatTemplateKind::Llama3;
  std::string variant_;
  std::string bos_token_;
  std::string eos_token_;
  PromptRule prompt_rule_ = PromptRule::OnRequest;
  bool trim_content_ = false;   // Llama-3: `message['content'] | trim`
  bool bos_first_ = false;      // Llama-3: bos_token before the first message
  std::string default_system_;  // ChatML: system message added when the first is not one
  bool has_default_system_ = false;
};

// The exact Jinja source of our reference templates. Llama3: the Llama-3-Instruct template
// as Meta ships it today (the assistant header only with add_generation_prompt, which is what
// the seed's tokenizer renders); ChatML: the common ChatML template. `init` writes these into
// the tokenizer_config.json of the models it creates.
std::string_view chat_template_source(ChatTemplateKind kind);

// Meta's first Llama-3-Instruct template (the one in
// ../shared/data/llama3-tokenizer/tokenizer_config.json): it appends the assistant header
// even when no generation prompt is asked for.
std::string_view llama3_original_chat_template_source();

}  // namespace ll
