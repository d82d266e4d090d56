// `llama-lora chat-template` end to end: renders of real model folders equal transformers'
// renders (tests/fixtures/chat_template_renders.json, transformers 5.25.0), tools passed to the
// template, chat_template.jinja read without a tokenizer_config.json, and one-line errors that
// name the file or field.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/file.h"
#include "test_util.h"

namespace ll {
namespace {

using test::shell_quote;

const fs::path kRealModels = test::shared_data() / "real-models";

nlohmann::json renders_fixture() {
  return nlohmann::json::parse(read_file(test::fixtures() / "chat_template_renders.json"));
}

nlohmann::json conversation(const nlohmann::json& fixture, const std::string& name) {
  for (const auto& c : fixture["conversations"]) {
    if (c["name"] == name) return c["messages"];
  }
  ADD_FAILURE() << name;
  return nullptr;
}

std::string expected_text(const nlohmann::json& fixture, const std::string& template_name,
                          const std::string& conversation_name, bool generation_prompt) {
  for (const auto& c : fixture["cases"]) {
    if (c["template"] == template_name && c["conversation"] == conversation_name &&
        c["add_generation_prompt"].get<bool>() == generation_prompt) {
      return c["text"];
    }
  }
  ADD_FAILURE() << template_name << " / " << conversation_name;
  return "";
}

std::string args(const fs::path& tokenizer, const fs::path& messages,
                 const std::string& rest = "") {
  return "chat-template --tokenizer " + shell_quote(tokenizer.string()) + " --messages " +
         shell_quote(messages.string()) + " " + rest;
}

TEST(ChatTemplateCli, PrintsTransformersRenderOfRealModelFolders) {
  LL_REQUIRE_SHARED(kRealModels);
  const nlohmann::json fixture = renders_fixture();
  test::TempDir temp;
  struct Case {
    std::string folder;
    std::string fixture_template;
  };
  const Case cases[] = {
      {"Qwen-Qwen2.5-0.5B-Instruct-resaved",
       "Qwen-Qwen2.5-0.5B-Instruct-resaved/tokenizer_config.json"},
      // chat_template.jinja beside tokenizer_config.json, as transformers 5 saves it.
      {"TinyLlama-TinyLlama-1.1B-Chat-v1.0-resaved",
       "TinyLlama-TinyLlama-1.1B-Chat-v1.0-resaved/chat_template.jinja"},
  };
  for (const Case& c : cases) {
    for (const char* name : {"several-turns", "braces-and-jinja", "unicode"}) {
      SCOPED_TRACE(c.folder + " / " + name);
      const fs::path file = temp / (std::string(name) + ".json");
      test::write_text(file, conversation(fixture, name).dump());
      for (bool prompt : {false, true}) {
        const auto result = test::run_llama_lora(
            args(kRealModels / c.folder, file, prompt ? "--add_generation_prompt" : ""));
        ASSERT_EQ(result.exit_code, 0) << result.err;
        EXPECT_EQ(result.out, expected_text(fixture, c.fixture_template, name, prompt));
      }
    }
  }
}

TEST(ChatTemplateCli, ObjectFormPassesToolsAndShowsTheEndOfTurn) {
  LL_REQUIRE_SHARED(kRealModels);
  test::TempDir temp;
  // Written by hand: the key order of the file is what the template prints.
  test::write_text(temp / "request.json",
                   R"({"messages": [{"role": "user", "content": "Weather in Paris?"}],
                       "tools": [{"type": "function", "function": {"name": "get_weather",
                                  "description": "Current weather"}}]})");
  const auto result = test::run_llama_lora(args(kRealModels / "Qwen-Qwen2.5-0.5B-Instruct-resaved",
                                                temp / "request.json",
                                                "--add_generation_prompt --show_end_of_turn"));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  // Qwen2.5 lists the tools as JSON (key order kept) inside its system turn.
  EXPECT_NE(result.out.find("<tools>\n{\"type\": \"function\", \"function\": {\"name\": "
                            "\"get_weather\", \"description\": \"Current weather\"}}\n</tools>"),
            std::string::npos)
      << result.out;
  EXPECT_TRUE(
      result.out.ends_with("<|im_start|>user\nWeather in Paris?<|im_end|>\n"
                           "<|im_start|>assistant\n"))
      << result.out;
  EXPECT_EQ(result.err, "end of turn: \"<|im_end|>\"\n");
}

TEST(ChatTemplateCli, ErrorsAreOneLineNamingTheFileOrField) {
  LL_REQUIRE_SHARED(kRealModels);
  test::TempDir temp;
  const fs::path qwen = kRealModels / "Qwen-Qwen2.5-0.5B-Instruct-resaved";
  test::expect_cli_error(
      test::run_llama_lora(args(qwen, temp / "absent.json")),
      "[chat-template] --messages " + (temp / "absent.json").string() + ": no such file");
  test::write_text(temp / "bad.json", "[{\"role\": ");
  test::expect_cli_error(test::run_llama_lora(args(qwen, temp / "bad.json")),
                         (temp / "bad.json").string() + ": not valid JSON");
  test::write_text(temp / "no_role.json", "[{\"content\": \"hi\"}]");
  test::expect_cli_error(
      test::run_llama_lora(args(qwen, temp / "no_role.json")),
      (temp / "no_role.json").string() + ": messages[0] must be an object with a string \"role\"");
  test::write_text(temp / "object.json", "{\"tools\": []}");
  test::expect_cli_error(test::run_llama_lora(args(qwen, temp / "object.json")),
                         "the object has no \"messages\" field");
  // A template that raises: the template file, line and column, and its message. Gemma's
  // folder holds only chat_template.jinja.
  test::write_text(temp / "system.json",
                   "[{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"user\", "
                   "\"content\": \"u\"}]");
  test::expect_cli_error(
      test::run_llama_lora(args(kRealModels / "google-gemma-2-2b-it", temp / "system.json")),
      "chat_template.jinja:1:");
  test::expect_cli_error(
      test::run_llama_lora(args(kRealModels / "google-gemma-2-2b-it", temp / "system.json")),
      "System role not supported");
  test::expect_cli_error(test::run_llama_lora(args(temp.path(), temp / "system.json")),
                         "tokenizer_config.json: not found");
}

}  // namespace
}  // namespace ll
