// Greedy answers of a model (with or without a LoRA adapter) to held-out conversations: what
// `compare` (the seed's step 3) and `eval` generate. A conversation is rendered with the
// model's chat template and its generation prompt (system + user, then the assistant
// header), tokenised without adding special tokens again, and continued greedily until a stop
// id (generation_config.json's EOS, the tokenizer's EOS, the template's end-of-turn token), a
// stop string or max_new_tokens; the answer holds none of them (tools/stopping.h).
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
#include "tools/stopping.h"

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

struct AnswerOptions {
  int64_t max_new_tokens = 128;
  size_t batch_size = 1;     // conversations generated together
  StopStrings stop_strings;  // --stop
};

// The stop ids and strings of a model's answers: its StopTokenSources and `stop_strings`.
StopCriteria chat_stop_criteria(const ChatModel& model, const StopStrings& stop_strings);

// Greedy answers, decoded with special tokens skipped and cut at what stopped them
// (decode_answer), `batch_size` conversations at a time; each stops on its own.
std::vector<std::string> generate_answers(ChatModel& model,
                                          std::span<const std::vector<ChatMessage>> prompts,
                                          const AnswerOptions& options,
                                          const AnswerProgress& progress = {});

}  // namespace ll
