// Presets: records -> conversations / texts, and the messages for missing or mistyped fields.
#include <gtest/gtest.h>

#include "core/error.h"
#include "data/presets.h"

namespace ll {
namespace {

using nlohmann::json;

std::string problem_of(Preset preset, const json& record) {
  Example example;
  return record_to_example(preset, record, example);
}

TEST(Presets, NamesRoundTrip) {
  for (Preset p : {Preset::Sql, Preset::Messages, Preset::Alpaca, Preset::Text}) {
    EXPECT_EQ(parse_preset(preset_name(p)), p);
  }
  EXPECT_THROW(parse_preset("sharegpt"), Error);
}

TEST(Presets, SqlIsTheSeedConversation) {
  Example example;
  const json record = {{"question", "How many heads?"},
                       {"context", "CREATE TABLE head (age INTEGER)"},
                       {"answer", "SELECT COUNT(*) FROM head"}};
  ASSERT_EQ(record_to_example(Preset::Sql, record, example), "");
  EXPECT_EQ(example.kind, ExampleKind::Conversation);
  ASSERT_EQ(example.messages.size(), 3u);
  EXPECT_EQ(example.messages[0].role, "system");
  // The seed's text, character for character.
  EXPECT_EQ(example.messages[0].content,
            "You are a text to SQL query translator. Users will ask you questions in English and "
            "you will generate a SQL query based on the provided SCHEMA.\nSCHEMA:\n"
            "CREATE TABLE head (age INTEGER)");
  EXPECT_EQ(example.messages[1].role, "user");
  EXPECT_EQ(example.messages[1].content, "How many heads?");
  EXPECT_EQ(example.messages[2].role, "assistant");
  EXPECT_EQ(example.messages[2].content, "SELECT COUNT(*) FROM head");  // no ";" added
}

TEST(Presets, SqlMissingOrMistypedFields) {
  EXPECT_EQ(problem_of(Preset::Sql, {{"question", "q"}, {"context", "c"}}),
            "field 'answer' missing");
  EXPECT_EQ(problem_of(Preset::Sql, {{"question", "q"}, {"context", 3}, {"answer", "a"}}),
            "field 'context' must be a string (found a number)");
  EXPECT_EQ(problem_of(Preset::Sql, {{"question", nullptr}, {"context", "c"}, {"answer", "a"}}),
            "field 'question' must be a string (found null)");
}

TEST(Presets, Messages) {
  Example example;
  const json record = {{"messages",
                        {{{"role", "user"}, {"content", "hi"}},
                         {{"role", "assistant"}, {"content", "hello"}, {"weight", 1}}}}};
  ASSERT_EQ(record_to_example(Preset::Messages, record, example), "");
  ASSERT_EQ(example.messages.size(), 2u);
  EXPECT_EQ(example.messages[1].role, "assistant");
  EXPECT_EQ(example.messages[1].content, "hello");

  EXPECT_EQ(problem_of(Preset::Messages, {{"text", "x"}}), "field 'messages' missing");
  EXPECT_EQ(problem_of(Preset::Messages, {{"messages", "x"}}),
            "field 'messages' must be an array (found a string)");
  EXPECT_EQ(problem_of(Preset::Messages, {{"messages", json::array()}}),
            "field 'messages' is empty");
  EXPECT_EQ(problem_of(Preset::Messages, {{"messages", {{{"role", "user"}}}}}),
            "field 'messages[0].content' missing");
  EXPECT_EQ(problem_of(Preset::Messages, {{"messages", {1}}}),
            "field 'messages[0]' must be an object (found a number)");
}

TEST(Presets, AlpacaJoinsInstructionAndInput) {
  Example example;
  ASSERT_EQ(
      record_to_example(Preset::Alpaca,
                        {{"instruction", "Translate."}, {"input", "bonjour"}, {"output", "hello"}},
                        example),
      "");
  ASSERT_EQ(example.messages.size(), 2u);
  EXPECT_EQ(example.messages[0].role, "user");
  EXPECT_EQ(example.messages[0].content, "Translate.\n\nbonjour");
  EXPECT_EQ(example.messages[1].role, "assistant");
  EXPECT_EQ(example.messages[1].content, "hello");

  for (const json& no_input :
       {json{{"instruction", "Say hi."}, {"input", ""}, {"output", "hi"}},
        json{{"instruction", "Say hi."}, {"output", "hi"}},
        json{{"instruction", "Say hi."}, {"input", nullptr}, {"output", "hi"}}}) {
    ASSERT_EQ(record_to_example(Preset::Alpaca, no_input, example), "");
    EXPECT_EQ(example.messages[0].content, "Say hi.");
  }
  EXPECT_EQ(problem_of(Preset::Alpaca, {{"instruction", "x"}}), "field 'output' missing");
  EXPECT_EQ(problem_of(Preset::Alpaca, {{"instruction", "x"}, {"input", 1}, {"output", "y"}}),
            "field 'input' must be a string (found a number)");
}

TEST(Presets, Text) {
  Example example;
  ASSERT_EQ(record_to_example(Preset::Text, {{"text", "Once upon a time"}}, example), "");
  EXPECT_EQ(example.kind, ExampleKind::Text);
  EXPECT_EQ(example.text, "Once upon a time");
  EXPECT_EQ(problem_of(Preset::Text, {{"content", "x"}}), "field 'text' missing");
  EXPECT_EQ(problem_of(Preset::Text, {{"text", {"a"}}}),
            "field 'text' must be a string (found an array)");
}

}  // namespace
}  // namespace ll
