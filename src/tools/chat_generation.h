// Greedy answers of a model (with or without a LoRA adapter) to held-out conversations: what
// `compare` (the seed's step 3) and `eval` generate. A conversation is rendered with the
// model's chat template and its generation prompt (system + user, then the assistant
// header), tokenised without adding special tokens again, and continued greedily until an
// EOS id of generation_config.json or max_new_tokens.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/file.h"
#include "model/llama_generate.h"
#include "model/llama_weights.h"
#include "model/lora.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace ll {

struct ChatModel {
  std::string label;  // "MODEL" or "MODEL + ADAPTER", for messages
  LlamaWeights weights;
  std::optional<LoraAdapter> adapter;
  Tokenizer tokenizer;
  ChatTemplate chat_template;
  GenerationDefaults defaults;
};

// A model folder (config, weights, tokenizer files) and an optional PEFT adapter folder
// (empty path: none). The tokenizer and chat template come from `tokenizer_dir`, or from the
// model folder when it is empty (the seed renders prompts with the Instruct model's template
// for the base model too).
std::unique_ptr<ChatModel> load_chat_model(const fs::path& model_dir, const fs::path& adapter_dir,
                                           const fs::path& tokenizer_dir = {});

// Whether `dir` is a PEFT adapter folder (has adapter_config.json) rather than a model.
bool is_adapter_folder(const fs::path& dir);

// The tokens a conversation prompt renders to (generation prompt added).
std::vector<int32_t> encode_chat_prompt(const ChatModel& model,
                                        std::span<const ChatMessage> messages);

// Called after each finished batch with the number of conversations done so far.
using AnswerProgress = std::function<void(size_t done, size_t total)>;

// Greedy answers, decoded with special tokens skipped, `batch_size` conversations at a time.
std::vector<std::string> generate_answers(ChatModel& model,
                                          std::span<const std::vector<ChatMessage>> prompts,
                                          int64_t max_new_tokens, size_t batch_size,
                                          const AnswerProgress& progress = {});

}  // namespace ll
