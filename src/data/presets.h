// Presets: how a dataset record becomes a training example, a conversation (rendered later
// with the model's chat template) or a plain text.
//
//   sql       {"question", "context", "answer"} (b-mc2/sql-create-context), exactly the seed's
//             create_conversation: system = kSqlSystemPrompt with {context} filled in,
//             user = question, assistant = answer.
//   messages  OpenAI chat format {"messages": [{"role": ..., "content": ...}, ...]}.
//   alpaca    {"instruction", "input" (optional), "output"}: user = instruction, plus
//             "\n\n" + input when input is not empty; assistant = output; no system message.
//   text      {"text": ...}: plain language modelling.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/chat_template.h"

namespace ll {

enum class Preset { Sql, Messages, Alpaca, Text };

// "sql", "messages", "alpaca", "text"; anything else is an error naming the choices.
Preset parse_preset(std::string_view name);
std::string_view preset_name(Preset preset);

// The seed's system message; "{context}" stands for the record's `context` field.
inline constexpr std::string_view kSqlSystemPrompt =
    "You are a text to SQL query translator. Users will ask you questions in English and you "
    "will generate a SQL query based on the provided SCHEMA.\nSCHEMA:\n{context}";

std::string sql_system_message(std::string_view context);

enum class ExampleKind { Conversation, Text };

struct Example {
  ExampleKind kind = ExampleKind::Conversation;
  std::vector<ChatMessage> messages;  // kind == Conversation
  std::string text;                   // kind == Text
};

// Converts one record. Returns what is wrong ("field 'answer' missing", "field 'answer' must be
// a string (found a number)"), or an empty string when `out` holds the example.
std::string record_to_example(Preset preset, const nlohmann::json& record, Example& out);

}  // namespace ll
