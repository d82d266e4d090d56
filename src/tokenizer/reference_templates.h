// The exact Jinja source of the chat templates llama-lora writes itself: `init` and the
// built-in tokenizer put one into the tokenizer_config.json of the models they create, and tests
// compare real files with them. Rendering is the interpreter's job (tokenizer/chat_template.h);
// these are only strings.
#pragma once

#include <string_view>

namespace ll {

enum class ReferenceTemplate {
  // The Llama-3-Instruct template as Meta ships it today: the assistant header only with
  // add_generation_prompt (what the seed's tokenizer renders).
  Llama3,
  // Meta's first Llama-3-Instruct template (the one in
  // ../shared/data/llama3-tokenizer/tokenizer_config.json): it appends the assistant header
  // even when no generation prompt is asked for.
  Llama3Original,
  // ChatML as in the transformers chat-templating guide.
  ChatML,
};

std::string_view reference_template_source(ReferenceTemplate which);

}  // namespace ll
