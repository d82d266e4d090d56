// Chat templates rendered by the Jinja interpreter, assistant ranges and the end-of-turn token
// from renders: see chat_template.h.
#include "tokenizer/chat_template.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "core/error.h"
#include "core/file.h"

namespace ll {

namespace {

constexpr std::string_view kOrigin = "chat_template";

// The special tokens transformers passes to a template by name (SpecialTokensMixin's
// SPECIAL_TOKENS_ATTRIBUTES, less additional_special_tokens).
constexpr const char* kNamedTokens[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                        "pad_token", "cls_token", "mask_token"};

// The probe reply of find_end_of_turn: text no template writes itself.
constexpr std::string_view kProbeReply = "llama-lora probe reply 7d1e";

// tokenizer_config.json stores special tokens as a string or as {"content": ..., ...}.
std::optional<std::string> special_token(const nlohmann::json& config, const char* key) {
  const auto it = config.find(key);
  if (it == config.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    const auto content = it->find("content");
    if (content != it->end() && content->is_string()) return content->get<std::string>();
  }
  return std::nullopt;
}

// The template text of a tokenizer_config.json's chat_template field.
std::string template_from_config(const nlohmann::json& config, const std::string& origin) {
  const auto found = config.find("chat_template");
  check(found != config.end() && !found->is_null(), kOrigin,
        origin +
            ": no chat_template (llama-lora renders conversations with the model's chat "
            "template; add one, e.g. from the instruct model's tokenizer_config.json)");
  if (found->is_string()) return found->get<std::string>();
  check(found->is_array(), kOrigin,
        origin + ": chat_template must be a string or a list of {\"name\", \"template\"}, not " +
            found->type_name());
  for (const auto& entry : *found) {  // named templates: transformers uses "default"
    if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
        entry["template"].is_string()) {
      return entry["template"].get<std::string>();
    }
  }
  fail(kOrigin, origin + ": chat_template has no template named 'default'");
}

ChatTokens tokens_from_config(const nlohmann::json& config) {
  ChatTokens tokens;
  for (const char* name : kNamedTokens) {
    if (std::optional<std::string> value = special_token(config, name)) {
      tokens.named.emplace_back(name, std::move(*value));
    }
  }
  const auto decoder = config.find("added_tokens_decoder");
  if (decoder != config.end() && decoder->is_object()) {
    for (const auto& [id, token] : decoder->items()) {
      if (token.is_object() && token.value("special", false) && token.contains("content") &&
          token["content"].is_string() && !token["content"].get<std::string>().empty()) {
        tokens.special.push_back(token["content"].get<std::string>());
      }
    }
  }
  return tokens;
}

nlohmann::json read_config(const std::filesystem::path& file) {
  try {
    nlohmann::json config = nlohmann::json::parse(read_file(file));
    check(config.is_object(), kOrigin, file.string() + ": not a JSON object");
    return config;
  } catch (const nlohmann::json::exception& error) {
    fail(kOrigin, file.string() + ": not valid JSON (" + error.what() + ")");
  }
}

std::tm local_now() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm out{};
  localtime_r(&now, &out);
  return out;
}

}  // namespace

nlohmann::ordered_json chat_messages_to_json(std::span<const ChatMessage> messages) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const ChatMessage& m : messages) out.push_back({{"role", m.role}, {"content", m.content}});
  return out;
}

ChatTemplate::ChatTemplate(std::string source, std::string origin, ChatTokens tokens)
    : source_(std::move(source)),
      origin_(std::move(origin)),
      named_tokens_(std::move(tokens.named)) {
  template_ = std::make_shared<const jinja::Template>(source_, origin_);  // parse errors here
  for (const auto& [name, value] : named_tokens_) {
    if (name == "bos_token") bos_token_ = value;
    if (name == "eos_token") eos_token_ = value;
  }
  std::vector<std::string> special = std::move(tokens.special);
  for (const auto& [name, value] : named_tokens_) special.push_back(value);
  end_of_turn_ = find_end_of_turn(special);
}

ChatTemplate ChatTemplate::from_tokenizer_config(const nlohmann::json& config,
                                                 const std::string& origin) {
  check(config.is_object(), kOrigin, origin + ": tokenizer_config.json is not a JSON object");
  return ChatTemplate(template_from_config(config, origin), origin, tokens_from_config(config));
}

ChatTemplate ChatTemplate::load(const std::filesystem::path& path) {
  const bool folder = std::filesystem::is_directory(path);
  const std::filesystem::path config_file = folder ? path / "tokenizer_config.json" : path;
  const std::filesystem::path jinja_file = config_file.parent_path() / "chat_template.jinja";
  const bool has_config = std::filesystem::exists(config_file);
  const bool has_jinja = std::filesystem::is_regular_file(jinja_file);
  check(has_config || has_jinja, kOrigin,
        config_file.string() +
            ": not found (a model or tokenizer folder needs a tokenizer_config.json "
            "with the chat template, or a chat_template.jinja)");
  const nlohmann::json config = has_config ? read_config(config_file) : nlohmann::json::object();
  if (has_jinja) {  // transformers 5 reads this file in preference to the config's field
    return ChatTemplate(read_file(jinja_file), jinja_file.string(), tokens_from_config(config));
  }
  return from_tokenizer_config(config, config_file.string());
}

std::optional<ChatTemplate> ChatTemplate::load_if_present(const std::filesystem::path& folder) {
  const std::filesystem::path config_file = folder / "tokenizer_config.json";
  if (std::filesystem::is_regular_file(folder / "chat_template.jinja")) return load(folder);
  if (!std::filesystem::exists(config_file)) return std::nullopt;
  const nlohmann::json config = read_config(config_file);
  const auto found = config.find("chat_template");
  if (found == config.end() || found->is_null()) return std::nullopt;
  return from_tokenizer_config(config, config_file.string());
}

std::optional<std::string> read_eos_token(const std::filesystem::path& folder) {
  const std::filesystem::path config_file = folder / "tokenizer_config.json";
  if (!std::filesystem::exists(config_file)) return std::nullopt;
  return special_token(read_config(config_file), "eos_token");
}

jinja::RenderOptions ChatTemplate::render_options() const {
  jinja::RenderOptions options;
  options.now = now_ ? *now_ : local_now();  // one "now" for all renders of one call
  return options;
}

std::string ChatTemplate::render_at(const nlohmann::ordered_json& messages, GenerationPrompt prompt,
                                    const ChatExtras& extras,
                                    const jinja::RenderOptions& options) const {
  nlohmann::ordered_json variables = nlohmann::ordered_json::object();
  variables["messages"] = messages;
  variables["tools"] = extras.tools;
  variables["documents"] = extras.documents;
  variables["add_generation_prompt"] = prompt == GenerationPrompt::Add;
  for (const auto& [name, value] : named_tokens_) variables[name] = value;
  return template_->render(variables, options);
}

std::string ChatTemplate::render(const nlohmann::ordered_json& messages, GenerationPrompt prompt,
                                 const ChatExtras& extras) const {
  return render_at(messages, prompt, extras, render_options());
}

std::string ChatTemplate::render(std::span<const ChatMessage> messages,
                                 GenerationPrompt prompt) const {
  return render(chat_messages_to_json(messages), prompt);
}

RenderedChat ChatTemplate::render_with_assistant_ranges(
    std::span<const ChatMessage> messages) const {
  const jinja::RenderOptions options = render_options();
  RenderedChat out;
  out.text = render_at(chat_messages_to_json(messages), GenerationPrompt::Omit, {}, options);
  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].role != "assistant") continue;
    const std::string where = origin_ + ": cannot find the reply of message " + std::to_string(i) +
                              " (assistant) for the completion-only loss: ";
    std::string prefix, turn;
    try {
      prefix =
          render_at(chat_messages_to_json(messages.first(i)), GenerationPrompt::Add, {}, options);
      turn = render_at(chat_messages_to_json(messages.first(i + 1)), GenerationPrompt::Omit, {},
                       options);
    } catch (const Error& error) {
      fail(kOrigin, where + "rendering the messages before it raised: " + error.what());
    }
    check(out.text.starts_with(prefix) && turn.starts_with(prefix), kOrigin,
          where +
              "the render of the messages before it, with the generation prompt, is not where "
              "the full render starts (the template renders earlier turns differently once "
              "later ones follow)");
    size_t end = turn.size();
    if (end_of_turn_) {
      const size_t at = turn.rfind(*end_of_turn_);
      if (at != std::string::npos && at >= prefix.size()) end = at + end_of_turn_->size();
    }
    check(out.text.compare(0, end, turn, 0, end) == 0, kOrigin,
          where +
              "the render up to its end of turn is not where the full render starts (the "
              "template renders this reply differently once later messages follow)");
    check(out.assistant_ranges.empty() || out.assistant_ranges.back().end <= prefix.size(), kOrigin,
          where + "it would overlap the previous assistant reply");
    out.assistant_ranges.push_back({prefix.size(), end});
  }
  return out;
}

std::optional<std::string> ChatTemplate::find_end_of_turn(
    const std::vector<std::string>& special) const {
  const std::vector<ChatMessage> probe = {{"user", "Hello"},
                                          {"assistant", std::string(kProbeReply)}};
  const jinja::RenderOptions options = render_options();
  std::string prefix, turn;
  try {
    prefix = render_at(chat_messages_to_json(std::span(probe).first(1)), GenerationPrompt::Add, {},
                       options);
    turn = render_at(chat_messages_to_json(probe), GenerationPrompt::Omit, {}, options);
  } catch (const Error&) {
    return std::nullopt;  // the template refuses the probe conversation: no end of turn known
  }
  if (!turn.starts_with(prefix)) return std::nullopt;
  const size_t reply = turn.find(kProbeReply, prefix.size());
  if (reply == std::string::npos) return std::nullopt;
  const size_t after = reply + kProbeReply.size();
  // The special token that starts first after the reply (the longest, when several start there).
  std::optional<std::string> best;
  size_t best_at = std::string::npos;
  for (const std::string& token : special) {
    if (token.empty()) continue;
    const size_t at = turn.find(token, after);
    if (at == std::string::npos) continue;
    if (at < best_at || (at == best_at && token.size() > best->size())) {
      best = token;
      best_at = at;
    }
  }
  return best;
}

}  // namespace ll
