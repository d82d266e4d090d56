// `llama-lora generate`: continue prompts with a model (and optionally a LoRA adapter) using the
// KV-cache generator of model/llama_generate.h. Several prompts run as one batch.
//   llama-lora generate --model DIR --prompt "Hello"                     -> the new text
//   llama-lora generate --model DIR --adapter RUN --messages '[{"role":"user","content":"Hi"}]'
//   llama-lora generate --model DIR --prompt_ids "1 2 3" --prompt_ids "4 5" --print_ids
// Prompts: --prompt is tokenised as the tokenizer does by default (its post-processor, e.g.
// Llama-3's BOS); --messages is rendered with the model's chat template and the assistant
// header (add_generation_prompt), then tokenised without the post-processor, as transformers'
// apply_chat_template does; --prompt_ids needs no tokenizer. Decoding follows
// generation_config.json (do_sample, temperature, top_k, top_p; greedy without one) unless
// flags say otherwise. Each prompt stops on its own at a stop id (generation_config.json's EOS,
// else config.json's; the tokenizer's EOS; the chat template's end-of-turn token; any
// --eos_token_id), once its text holds a --stop string, or at --max_new_tokens
// (tools/stopping.h).
// Output: per prompt, the new text with special tokens removed and cut before what stopped it
// (a "--- prompt N ---" line before each when there are several), or with --print_ids one line
// of the new token ids (the stop id included, as transformers' generate returns it).
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "app/cli.h"
#include "app/stop_flags.h"
#include "core/error.h"
#include "core/file.h"
#include "model/llama_generate.h"
#include "model/peft_adapter.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "tools/stopping.h"

namespace ll {

namespace {

constexpr const char* kOrigin = "generate";

struct GenerateCliOptions {
  std::string model;
  std::string adapter;
  std::vector<std::string> prompts;
  std::vector<std::string> messages;
  std::vector<std::string> prompt_ids;
  int64_t max_new_tokens = 128;
  bool greedy = false;
  std::optional<double> temperature;
  std::optional<int64_t> top_k;
  std::optional<double> top_p;
  uint64_t seed = 0;
  std::vector<int32_t> extra_eos;
  std::vector<std::string> stop;
  bool print_ids = false;
};

// "1 2 3" -> {1, 2, 3}; anything but whitespace-separated non-negative integers is an error.
std::vector<int32_t> parse_prompt_ids(const std::string& text) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == ' ' || text[i] == '\t' || text[i] == ',') {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < text.size() && text[end] >= '0' && text[end] <= '9') ++end;
    const bool at_separator =
        end == text.size() || text[end] == ' ' || text[end] == '\t' || text[end] == ',';
    if (end == i || !at_separator || end - i > 9) {
      size_t word_end = text.find_first_of(" \t,", i);
      if (word_end == std::string::npos) word_end = text.size();
      fail(kOrigin, "--prompt_ids '" + text + "': '" + text.substr(i, word_end - i) +
                        "' is not a token id (expected ids separated by spaces, e.g. \"1 2 3\")");
    }
    ids.push_back(std::stoi(text.substr(i, end - i)));
    i = end;
  }
  check(!ids.empty(), kOrigin, "--prompt_ids '" + text + "' holds no token ids");
  return ids;
}

// A JSON list of {"role": ..., "content": ...} objects.
std::vector<ChatMessage> parse_messages(const std::string& text) {
  const std::string expected =
      "--messages: expected a JSON list of {\"role\": ..., \"content\": ...} objects";
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error&) {
    fail(kOrigin, expected + ", got text that is not JSON");
  }
  check(json.is_array() && !json.empty(), kOrigin, expected);
  std::vector<ChatMessage> messages;
  for (size_t i = 0; i < json.size(); ++i) {
    const nlohmann::json& m = json[i];
    check(m.is_object() && m.contains("role") && m["role"].is_string() && m.contains("content") &&
              m["content"].is_string(),
          kOrigin, expected + " (message " + std::to_string(i) + " is not)");
    messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  return messages;
}

void print_line(const std::string& line) {
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
}

void run_generate(const GenerateCliOptions& o) {
  const int sources =
      (o.prompts.empty() ? 0 : 1) + (o.messages.empty() ? 0 : 1) + (o.prompt_ids.empty() ? 0 : 1);
  check(sources == 1, kOrigin,
        "give prompts in exactly one way: --prompt, --messages or --prompt_ids");
  check(o.max_new_tokens >= 1, kOrigin,
        "--max_new_tokens must be >= 1 (got " + std::to_string(o.max_new_tokens) + ")");
  const fs::path model_dir = o.model;
  check(fs::is_directory(model_dir), kOrigin, "--model " + o.model + ": no such folder");

  // Prompts first: bad input fails before the weights load.
  const StopStrings stop_strings(o.stop);
  std::vector<std::vector<int32_t>> prompts;
  std::optional<Tokenizer> tokenizer;
  std::optional<ChatTemplate> chat_template;
  // Stop strings are matched in the decoded text; a folder with a tokenizer.json also stops at
  // the tokenizer's EOS and the template's end of turn, --print_ids or not.
  const bool has_tokenizer = fs::exists(model_dir / "tokenizer.json");
  const bool needs_tokenizer = o.prompt_ids.empty() || !o.print_ids || !stop_strings.empty();
  if (needs_tokenizer) {
    check(o.prompt_ids.empty() || has_tokenizer, kOrigin,
          "--model " + o.model + " has no tokenizer.json to decode the output; " +
              (stop_strings.empty() ? "add --print_ids" : "--stop needs one"));
  }
  if (needs_tokenizer) {
    tokenizer.emplace(Tokenizer::load(model_dir));
    chat_template = o.messages.empty() ? ChatTemplate::load_if_present(model_dir)
                                       : ChatTemplate::load(model_dir);
  } else if (has_tokenizer) {
    // Ids in, ids out: the tokenizer only adds stop ids, so one we cannot read (or a
    // template we cannot render) leaves generation_config's ids, with a notice.
    try {
      tokenizer.emplace(Tokenizer::load(model_dir));
      chat_template = ChatTemplate::load_if_present(model_dir);
    } catch (const Error& error) {
      tokenizer.reset();
      chat_template.reset();
      std::cerr << "generate: stopping at generation_config's EOS ids only: " << error.what()
                << "\n";
    }
  }
  for (const std::string& text : o.prompt_ids) prompts.push_back(parse_prompt_ids(text));
  for (const std::string& text : o.prompts) {
    prompts.push_back(tokenizer->encode(text, AddSpecialTokens::Yes));
  }
  if (!o.messages.empty()) {
    std::vector<std::vector<ChatMessage>> conversations;
    for (const std::string& text : o.messages) conversations.push_back(parse_messages(text));
    for (const auto& conversation : conversations) {
      const std::string text = chat_template->render(conversation, GenerationPrompt::Add);
      prompts.push_back(tokenizer->encode(text, AddSpecialTokens::No));
    }
  }
  for (size_t s = 0; s < prompts.size(); ++s) {
    check(!prompts[s].empty(), kOrigin,
          "prompt " + std::to_string(s + 1) + " has no tokens (an empty text without BOS)");
  }

  const LlamaWeights weights = load_llama_weights(model_dir);
  std::optional<LoraAdapter> adapter;
  if (!o.adapter.empty()) adapter = load_peft_adapter(o.adapter, weights.config);
  const GenerationDefaults defaults = load_generation_defaults(model_dir, weights.config);

  StopTokenSources stop_sources;
  if (chat_template) {
    stop_sources = stop_token_sources(defaults, *chat_template);
  } else {
    stop_sources.eos_token_ids = defaults.eos_token_ids;
    if (tokenizer) stop_sources.tokenizer_eos = read_eos_token(model_dir);
  }
  stop_sources.extra_ids = o.extra_eos;
  const StopCriteria criteria{collect_stop_ids(stop_sources, tokenizer ? &*tokenizer : nullptr),
                              stop_strings};

  GenerateOptions options;
  options.max_new_tokens = o.max_new_tokens;
  options.eos_token_ids = criteria.stop_ids;
  options.sampling = resolve_sampling(defaults, {o.greedy, o.temperature, o.top_k, o.top_p});
  options.seed = o.seed;

  LlamaGenerator generator(weights, adapter ? &*adapter : nullptr);
  const TokenCallback watch =
      tokenizer ? watch_stop_strings(*tokenizer, stop_strings) : TokenCallback{};
  const auto generated = generate_tokens(generator, prompts, options, watch);

  for (size_t s = 0; s < generated.size(); ++s) {
    if (o.print_ids) {
      std::string line;
      for (size_t i = 0; i < generated[s].size(); ++i) {
        if (i > 0) line += ' ';
        line += std::to_string(generated[s][i]);
      }
      print_line(line);
      continue;
    }
    if (generated.size() > 1) print_line("--- prompt " + std::to_string(s + 1) + " ---");
    print_line(decode_answer(*tokenizer, generated[s], criteria));
  }
  std::fflush(stdout);
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto o = std::make_shared<GenerateCliOptions>();
  auto* cmd = app.add_subcommand(
      "generate", "Continue prompts with a model (and LoRA adapter), greedy or sampled");
  cmd->add_option("--model", o->model, "Model folder (config.json, *.safetensors, tokenizer)")
      ->required();
  cmd->add_option("--adapter", o->adapter, "PEFT adapter folder (adapter_config.json + weights)");
  cmd->add_option("--prompt", o->prompts,
                  "Prompt text, tokenised with the tokenizer's post-processor (e.g. BOS); "
                  "repeat for a batch")
      ->allow_extra_args(false);  // one value per flag; CLI11 would also split "[a,b]"
  cmd->add_option("--messages", o->messages,
                  "A conversation as a JSON list of {\"role\", \"content\"}, rendered with the "
                  "chat template and its generation prompt; repeat for a batch")
      ->allow_extra_args(false);
  cmd->add_option("--prompt_ids", o->prompt_ids,
                  "Prompt token ids, e.g. \"1 2 3\"; repeat for a batch")
      ->allow_extra_args(false);
  cmd->add_option("--max_new_tokens", o->max_new_tokens, "Most new tokens per prompt")
      ->capture_default_str();
  cmd->add_flag("--greedy", o->greedy, "Greedy decoding whatever generation_config.json says");
  cmd->add_option("--temperature", o->temperature, "Sample with this temperature (> 0)");
  cmd->add_option("--top_k", o->top_k, "Sample from the k most likely tokens (0: all)");
  cmd->add_option("--top_p", o->top_p, "Sample from the smallest set with this probability");
  cmd->add_option("--seed", o->seed, "Seed of the sampling")->capture_default_str();
  cmd->add_option("--eos_token_id", o->extra_eos,
                  "Also stop at this token id (repeatable), besides the model's EOS ids, the "
                  "tokenizer's EOS and the chat template's end-of-turn token")
      ->allow_extra_args(false);
  add_stop_flag(*cmd, o->stop);
  cmd->add_flag("--print_ids", o->print_ids,
                "Print one line per prompt of the new token ids (the stop id included) "
                "instead of text");
  cmd->callback([o] { run_generate(*o); });
}

}  // namespace ll
