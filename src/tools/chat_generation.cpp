// See chat_generation.h.
#include "tools/chat_generation.h"

#include <algorithm>

#include "core/error.h"
#include "model/peft_adapter.h"

namespace ll {

bool is_adapter_folder(const fs::path& dir) {
  return fs::exists(dir / "adapter_config.json");
}

std::unique_ptr<ChatModel> load_chat_model(const fs::path& model_dir, const fs::path& adapter_dir,
                                           const fs::path& tokenizer_dir) {
  if (!fs::is_directory(model_dir)) fail("model", model_dir.string() + ": no such model folder");
  const fs::path tokenizer = tokenizer_dir.empty() ? model_dir : tokenizer_dir;
  auto model = std::unique_ptr<ChatModel>(new ChatModel{
      model_dir.string(), load_llama_weights(model_dir), std::nullopt, Tokenizer::load(tokenizer),
      ChatTemplate::load(tokenizer), GenerationDefaults{}});
  model->defaults = load_generation_defaults(model_dir, model->weights.config);
  if (!adapter_dir.empty()) {
    model->adapter = load_peft_adapter(adapter_dir, model->weights.config);
    model->label += " + " + adapter_dir.string();
  }
  return model;
}

std::vector<int32_t> encode_chat_prompt(const ChatModel& model,
                                        std::span<const ChatMessage> messages) {
  const std::string text = model.chat_template.render(messages, GenerationPrompt::Add);
  // The template writes BOS itself; encoding must not add a second one.
  return model.tokenizer.encode(text, AddSpecialTokens::No);
}

StopCriteria chat_stop_criteria(const ChatModel& model, const StopStrings& stop_strings) {
  return {
      collect_stop_ids(stop_token_sources(model.defaults, model.chat_template), &model.tokenizer),
      stop_strings};
}

std::vector<std::string> generate_answers(ChatModel& model,
                                          std::span<const std::vector<ChatMessage>> prompts,
                                          const AnswerOptions& answer,
                                          const AnswerProgress& progress) {
  if (answer.batch_size < 1) fail("generate", "batch size must be >= 1");
  LlamaGenerator generator(model.weights, model.adapter ? &*model.adapter : nullptr);
  const StopCriteria criteria = chat_stop_criteria(model, answer.stop_strings);
  GenerateOptions options;
  options.max_new_tokens = answer.max_new_tokens;
  options.eos_token_ids = criteria.stop_ids;
  options.sampling = resolve_sampling(model.defaults, SamplingRequest{true, {}, {}, {}});

  std::vector<std::string> answers;
  answers.reserve(prompts.size());
  for (size_t begin = 0; begin < prompts.size(); begin += answer.batch_size) {
    const size_t end = std::min(prompts.size(), begin + answer.batch_size);
    std::vector<std::vector<int32_t>> ids;
    for (size_t i = begin; i < end; ++i) ids.push_back(encode_chat_prompt(model, prompts[i]));
    const TokenCallback watch = watch_stop_strings(model.tokenizer, criteria.stop_strings);
    for (const auto& tokens : generate_tokens(generator, ids, options, watch)) {
      answers.push_back(decode_answer(model.tokenizer, tokens, criteria));
    }
    if (progress) progress(end, prompts.size());
  }
  return answers;
}

}  // namespace ll
