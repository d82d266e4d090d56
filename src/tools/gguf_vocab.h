// The tokenizer.* metadata of a llama.cpp GGUF file, from a Hugging Face model folder, as
// llama.cpp's convert_hf_to_gguf.py writes it for a byte-level BPE tokenizer (its
// get_vocab_base + gguf-py's SpecialVocab):
//   tokenizer.ggml.model        "gpt2" (byte-level BPE; the only kind ll::Tokenizer reads)
//   tokenizer.ggml.pre          which pre-tokenizer llama.cpp applies: "llama-bpe" for
//                               Llama-3's Split regex, "gpt-2" for ByteLevel's own regex;
//                               any other pre-tokenizer is refused (llama.cpp would split
//                               text differently from tokenizers)
//   tokenizer.ggml.tokens       config.json's vocab_size strings, id order, byte-level form
//                               ("Ġthe"); an id no token has is "[PAD<id>]"
//   tokenizer.ggml.token_type   i32 per token: 1 NORMAL, 3 CONTROL (added special tokens and
//                               "<|...|>"), 4 USER_DEFINED (other added tokens), 5 UNUSED (pad)
//   tokenizer.ggml.merges       "a b", by rank
//   tokenizer.ggml.bos_token_id / eos_token_id   generation_config.json first (its first eos
//                               when a list), else config.json, else the post-processor's BOS
//   tokenizer.ggml.eot_token_id <|eot_id|> when the vocab has it (Llama-3's end of turn)
//   tokenizer.ggml.padding_token_id              config.json's pad_token_id, when set
//   tokenizer.ggml.add_bos_token tokenizer_config.json's add_bos_token, else whether the
//                               post-processor prepends a BOS
//   tokenizer.chat_template     tokenizer_config.json's chat_template (the "default" one of a
//                               list), else chat_template.jinja, when there is one
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "core/file.h"
#include "formats/gguf_write.h"
#include "formats/llama_config.h"

namespace ll {

// llama.cpp's token types (gguf-py's TokenType).
enum class GgufTokenType : int32_t { Normal = 1, Control = 3, UserDefined = 4, Unused = 5 };

// The tokenizer metadata for the model folder `model_dir` (tokenizer.json required) whose
// config is `config`. Errors name the file and what llama.cpp could not use.
GgufMetadata gguf_tokenizer_metadata(const fs::path& model_dir, const LlamaConfig& config);

// tokenizer.ggml.pre for a tokenizer.json (see above); `origin` names the file in errors.
std::string gguf_pre_tokenizer_name(const nlohmann::json& tokenizer_json,
                                    const std::string& origin);

}  // namespace ll
