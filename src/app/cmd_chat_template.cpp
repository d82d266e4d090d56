// `llama-lora chat-template`: print what a tokenizer's chat template renders for a conversation,
// exactly as transformers' apply_chat_template(messages, tokenize=False, ...) would, to debug a
// template or see what a model is trained on and prompted with.
//   llama-lora chat-template --tokenizer DIR --messages chat.json [--add_generation_prompt]
// chat.json is a JSON list of messages (every field is passed to the template: role, content,
// tool_calls, ...) or an object {"messages": [...], "tools": [...], "documents": [...]}. The
// render is printed byte for byte, with no newline added. --tools/--documents files override
// the object's fields. --show_end_of_turn prints, on stderr, the end-of-turn token found.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>
#include <string>

#include "app/cli.h"
#include "core/error.h"
#include "core/file.h"
#include "tokenizer/chat_template.h"

namespace ll {

namespace {

constexpr const char* kOrigin = "chat-template";

struct ChatTemplateOptions {
  std::string tokenizer;
  std::string messages;
  std::string tools;
  std::string documents;
  bool add_generation_prompt = false;
  bool show_end_of_turn = false;
};

nlohmann::ordered_json read_json_file(const std::string& path, const std::string& flag) {
  check(fs::is_regular_file(path), kOrigin, flag + " " + path + ": no such file");
  try {
    return nlohmann::ordered_json::parse(read_file(path));
  } catch (const nlohmann::json::parse_error& error) {
    fail(kOrigin, path + ": not valid JSON (" + error.what() + ")");
  }
}

// Every message must be an object with a string "role"; the rest is the template's business.
void check_messages(const nlohmann::ordered_json& messages, const std::string& where) {
  check(messages.is_array(), kOrigin,
        where + ": expected a JSON list of messages, or an object with \"messages\"");
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    check(m.is_object() && m.contains("role") && m["role"].is_string(), kOrigin,
          where + ": messages[" + std::to_string(i) +
              "] must be an object with a string \"role\" (and usually \"content\")");
  }
}

void run_chat_template(const ChatTemplateOptions& o) {
  nlohmann::ordered_json file = read_json_file(o.messages, "--messages");
  ChatExtras extras;
  nlohmann::ordered_json messages;
  if (file.is_object()) {
    check(file.contains("messages"), kOrigin,
          o.messages + ": the object has no \"messages\" field");
    messages = file["messages"];
    check_messages(messages, o.messages + ": field \"messages\"");
    if (file.contains("tools")) extras.tools = file["tools"];
    if (file.contains("documents")) extras.documents = file["documents"];
  } else {
    messages = std::move(file);
    check_messages(messages, o.messages);
  }
  if (!o.tools.empty()) extras.tools = read_json_file(o.tools, "--tools");
  if (!o.documents.empty()) extras.documents = read_json_file(o.documents, "--documents");

  const ChatTemplate chat_template = ChatTemplate::load(o.tokenizer);
  const std::string text = chat_template.render(
      messages, o.add_generation_prompt ? GenerationPrompt::Add : GenerationPrompt::Omit, extras);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
  if (o.show_end_of_turn) {
    const std::string shown = chat_template.end_of_turn()
                                  ? nlohmann::json(*chat_template.end_of_turn()).dump()
                                  : "none found";
    std::fprintf(stderr, "end of turn: %s\n", shown.c_str());
  }
}

}  // namespace

void add_chat_template_command(CLI::App& app) {
  auto o = std::make_shared<ChatTemplateOptions>();
  auto* cmd = app.add_subcommand(
      "chat-template",
      "Print a conversation rendered with a tokenizer's chat template, as transformers does");
  cmd->add_option("--tokenizer", o->tokenizer,
                  "Tokenizer or model folder (tokenizer_config.json and/or chat_template.jinja)")
      ->required();
  cmd->add_option("--messages", o->messages,
                  "JSON file: a list of messages, or {\"messages\", \"tools\", \"documents\"}")
      ->required();
  cmd->add_flag("--add_generation_prompt", o->add_generation_prompt,
                "End with the assistant header, as for generation");
  cmd->add_option("--tools", o->tools, "JSON file with the tools list passed to the template");
  cmd->add_option("--documents", o->documents, "JSON file with the documents passed to it");
  cmd->add_flag("--show_end_of_turn", o->show_end_of_turn,
                "Also print (on stderr) the end-of-turn token generation stops at");
  cmd->callback([o] { run_chat_template(*o); });
}

}  // namespace ll
