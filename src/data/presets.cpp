// Dataset presets: see presets.h.
#include "data/presets.h"

#include "core/error.h"

namespace ll {

namespace {

const char* type_name(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::array:
      return "an array";
    case nlohmann::json::value_t::object:
      return "an object";
    case nlohmann::json::value_t::boolean:
      return "a boolean";
    case nlohmann::json::value_t::null:
      return "null";
    case nlohmann::json::value_t::string:
      return "a string";
    default:
      return "a number";
  }
}

// Reads a string field; sets `problem` when it is absent or not a string. `optional` fields
// that are absent (or null) read as "".
bool string_field(const nlohmann::json& object, const std::string& key, const std::string& shown,
                  std::string& out, std::string& problem, bool optional = false) {
  const auto it = object.find(key);
  if (it == object.end() || (optional && it->is_null())) {
    if (optional) {
      out.clear();
      return true;
    }
    problem = "field '" + shown + "' missing";
    return false;
  }
  if (!it->is_string()) {
    problem = "field '" + shown + "' must be a string (found " + type_name(*it) + ")";
    return false;
  }
  out = it->get<std::string>();
  return true;
}

std::string sql_example(const nlohmann::json& record, Example& out) {
  std::string problem, question, context, answer;
  if (!string_field(record, "question", "question", question, problem) ||
      !string_field(record, "context", "context", context, problem) ||
      !string_field(record, "answer", "answer", answer, problem)) {
    return problem;
  }
  out.kind = ExampleKind::Conversation;
  out.messages = {{"system", sql_system_message(context)},
                  {"user", std::move(question)},
                  {"assistant", std::move(answer)}};
  return "";
}

std::string messages_example(const nlohmann::json& record, Example& out) {
  const auto it = record.find("messages");
  if (it == record.end()) return "field 'messages' missing";
  if (!it->is_array()) {
    return std::string("field 'messages' must be an array (found ") + type_name(*it) + ")";
  }
  if (it->empty()) return "field 'messages' is empty";
  out.kind = ExampleKind::Conversation;
  out.messages.clear();
  out.messages.reserve(it->size());
  for (size_t i = 0; i < it->size(); ++i) {
    const nlohmann::json& message = (*it)[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!message.is_object()) {
      return "field '" + where + "' must be an object (found " + type_name(message) + ")";
    }
    ChatMessage chat;
    std::string problem;
    if (!string_field(message, "role", where + ".role", chat.role, problem) ||
        !string_field(message, "content", where + ".content", chat.content, problem)) {
      return problem;
    }
    out.messages.push_back(std::move(chat));
  }
  return "";
}

std::string alpaca_example(const nlohmann::json& record, Example& out) {
  std::string problem, instruction, input, output;
  if (!string_field(record, "instruction", "instruction", instruction, problem) ||
      !string_field(record, "input", "input", input, problem, /*optional=*/true) ||
      !string_field(record, "output", "output", output, problem)) {
    return problem;
  }
  if (!input.empty()) instruction += "\n\n" + input;
  out.kind = ExampleKind::Conversation;
  out.messages = {{"user", std::move(instruction)}, {"assistant", std::move(output)}};
  return "";
}

std::string text_example(const nlohmann::json& record, Example& out) {
  std::string problem;
  if (!string_field(record, "text", "text", out.text, problem)) return problem;
  out.kind = ExampleKind::Text;
  out.messages.clear();
  return "";
}

}  // namespace

Preset parse_preset(std::string_view name) {
  if (name == "sql") return Preset::Sql;
  if (name == "messages") return Preset::Messages;
  if (name == "alpaca") return Preset::Alpaca;
  if (name == "text") return Preset::Text;
  fail("data",
       "unknown preset '" + std::string(name) + "' (expected sql, messages, alpaca or text)");
}

std::string_view preset_name(Preset preset) {
  switch (preset) {
    case Preset::Sql:
      return "sql";
    case Preset::Messages:
      return "messages";
    case Preset::Alpaca:
      return "alpaca";
    case Preset::Text:
      return "text";
  }
  return "?";
}

std::string sql_system_message(std::string_view context) {
  constexpr std::string_view kHole = "{context}";
  static_assert(kSqlSystemPrompt.ends_with(kHole));
  std::string message(kSqlSystemPrompt.substr(0, kSqlSystemPrompt.find(kHole)));
  message += context;
  return message;  // the hole ends the prompt
}

std::string record_to_example(Preset preset, const nlohmann::json& record, Example& out) {
  switch (preset) {
    case Preset::Sql:
      return sql_example(record, out);
    case Preset::Messages:
      return messages_example(record, out);
    case Preset::Alpaca:
      return alpaca_example(record, out);
    case Preset::Text:
      return text_example(record, out);
  }
  return "unknown preset";
}

}  // namespace ll
