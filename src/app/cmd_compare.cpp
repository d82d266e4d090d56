// `llama-lora compare`: the seed's step 3. Takes examples of the evaluation split (indices
// into the held-out rows, split exactly as training splits), renders system + user with the
// chat template and its generation prompt, generates greedily with the base model and with
// the fine-tuned one, and prints PROMPT / BASE MODEL OUTPUT / FINETUNED MODEL OUTPUT per
// example (with the reference answer). Each answer stops at its model's stop ids (the
// tokenizer's EOS and the template's end-of-turn token among them) or a --stop string, and
// holds neither (tools/stopping.h). `--tuned` is a merged model folder or an adapter folder
// applied to `--base`. `--interactive` waits for Enter between examples; `--json` prints one
// JSON object.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "app/cli.h"
#include "app/held_out_flags.h"
#include "app/stop_flags.h"
#include "core/error.h"
#include "model/peft_adapter.h"
#include "tools/chat_generation.h"

namespace ll {

namespace {

constexpr const char* kOrigin = "compare";

struct CompareOptions {
  std::string base;
  std::string tuned;
  std::string tokenizer;  // empty: each model's own
  HeldOutFlags held_out;
  std::string examples = "94,99,123";  // the seed's choice
  int64_t max_new_tokens = 50;
  std::vector<std::string> stop;
  bool interactive = false;
  bool json = false;
};

std::vector<uint64_t> parse_examples(const std::string& text) {
  std::vector<uint64_t> out;
  size_t begin = 0;
  while (begin <= text.size()) {
    size_t end = text.find(',', begin);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(begin, end - begin);
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    begin = end + 1;
    check(!item.empty() && item.size() <= 12 &&
              item.find_first_not_of("0123456789") == std::string::npos,
          kOrigin, "--examples: '" + item + "' is not an example index (give e.g. 94,99,123)");
    out.push_back(std::stoull(item));
  }
  check(!out.empty(), kOrigin, "--examples is empty");
  return out;
}

std::string render_prompt_for_reading(const std::vector<ChatMessage>& messages) {
  std::string out;
  for (const ChatMessage& m : messages) {
    if (!out.empty()) out += "\n";
    out += "[" + m.role + "] " + m.content;
  }
  return out;
}

void run_compare(const CompareOptions& o) {
  const std::vector<uint64_t> wanted = parse_examples(o.examples);
  check(o.max_new_tokens >= 1, kOrigin, "--max_new_tokens must be >= 1");
  const std::vector<HeldOutExample> held_out = read_held_out(o.held_out);
  check(!held_out.empty(), kOrigin,
        o.held_out.data + ": the evaluation split is empty (give --eval_rows)");
  std::vector<const HeldOutExample*> chosen;
  for (uint64_t index : wanted) {
    const HeldOutExample* found = nullptr;
    for (const HeldOutExample& held : held_out) {
      if (held.index == index) found = &held;
    }
    check(found != nullptr, kOrigin,
          "--examples: " + std::to_string(index) + " is not in the evaluation split of " +
              o.held_out.data + " (" + std::to_string(held_out.size()) + " rows)");
    chosen.push_back(found);
  }
  std::vector<std::vector<ChatMessage>> prompts;
  for (const HeldOutExample* held : chosen) prompts.push_back(held->prompt);
  const AnswerOptions answer{o.max_new_tokens, prompts.size(), StopStrings(o.stop)};

  // One model at a time keeps memory at one model (an 8B base and its merged twin would not
  // fit together on many machines).
  const fs::path tuned_dir = o.tuned;
  std::vector<std::string> base_answers;
  std::vector<std::string> tuned_answers;
  {
    auto base = load_chat_model(o.base, {}, o.tokenizer);
    base_answers = generate_answers(*base, prompts, answer);
    if (is_adapter_folder(tuned_dir)) {
      // The adapter goes onto the base already in memory.
      base->adapter.emplace(load_peft_adapter(tuned_dir, base->weights.config));
      tuned_answers = generate_answers(*base, prompts, answer);
    }
  }
  if (tuned_answers.empty()) {
    auto tuned = load_chat_model(tuned_dir, {}, o.tokenizer);
    tuned_answers = generate_answers(*tuned, prompts, answer);
  }

  if (o.json) {
    nlohmann::json out = {{"base", o.base}, {"tuned", o.tuned}, {"data", o.held_out.data}};
    out["examples"] = nlohmann::json::array();
    for (size_t i = 0; i < chosen.size(); ++i) {
      nlohmann::json prompt = nlohmann::json::array();
      for (const ChatMessage& m : chosen[i]->prompt) {
        prompt.push_back({{"role", m.role}, {"content", m.content}});
      }
      out["examples"].push_back({{"example", chosen[i]->index},
                                 {"line", chosen[i]->line},
                                 {"prompt", prompt},
                                 {"reference", chosen[i]->reference},
                                 {"base_output", base_answers[i]},
                                 {"tuned_output", tuned_answers[i]}});
    }
    std::printf("%s\n", out.dump().c_str());
    return;
  }
  for (size_t i = 0; i < chosen.size(); ++i) {
    if (i > 0 && o.interactive) {
      std::printf("\n(press Enter for the next example)");
      std::fflush(stdout);
      std::string ignored;
      std::getline(std::cin, ignored);
    }
    std::printf("\n===== example %llu (%s line %llu) =====\n",
                static_cast<unsigned long long>(chosen[i]->index), o.held_out.data.c_str(),
                static_cast<unsigned long long>(chosen[i]->line));
    std::printf("PROMPT:\n%s\n\n", render_prompt_for_reading(chosen[i]->prompt).c_str());
    std::printf("REFERENCE:\n%s\n\n", chosen[i]->reference.c_str());
    std::printf("BASE MODEL OUTPUT:\n%s\n\n", base_answers[i].c_str());
    std::printf("FINETUNED MODEL OUTPUT:\n%s\n", tuned_answers[i].c_str());
  }
  std::fflush(stdout);
}

}  // namespace

void add_compare_command(CLI::App& app) {
  auto o = std::make_shared<CompareOptions>();
  auto* cmd = app.add_subcommand(
      "compare", "Generate answers to held-out examples with the base and the tuned model");
  cmd->add_option("--base", o->base, "Base model folder")->required();
  cmd->add_option("--tuned", o->tuned,
                  "Fine-tuned model folder (merged), or a PEFT adapter folder applied to --base")
      ->required();
  cmd->add_option("--tokenizer", o->tokenizer,
                  "Tokenizer folder (tokenizer.json + chat template) for both models; default: "
                  "each model's own (the seed uses the Instruct model's for its base too)");
  add_held_out_flags(*cmd, o->held_out);
  cmd->add_option("--examples", o->examples, "Indices into the evaluation split, comma-separated")
      ->capture_default_str();
  cmd->add_option("--max_new_tokens", o->max_new_tokens, "Most new tokens per answer")
      ->capture_default_str();
  add_stop_flag(*cmd, o->stop);
  cmd->add_flag("--interactive", o->interactive, "Wait for Enter between examples");
  cmd->add_flag("--json", o->json, "Print one JSON object");
  cmd->callback([o] { run_compare(*o); });
}

}  // namespace ll
