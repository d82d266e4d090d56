// Chat templates against transformers: tests/fixtures/chat_sql_rows.json holds what
// apply_chat_template rendered (and the tokenizer encoded) for the seed's conversations and for
// every template variant we recognise (scripts/fixtures/make_chat_fixtures.py, pinned versions).
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/file.h"
#include "test_util.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace ll {
namespace {

nlohmann::json chat_fixture() {
  return nlohmann::json::parse(read_file(test::fixtures() / "chat_sql_rows.json"));
}

std::vector<ChatMessage> to_messages(const nlohmann::json& json) {
  std::vector<ChatMessage> messages;
  for (const auto& m : json) messages.push_back({m["role"], m["content"]});
  return messages;
}

nlohmann::json config_with(std::string_view source) {
  return {{"chat_template", source},
          {"bos_token", "<|begin_of_text|>"},
          {"eos_token", "<|end_of_text|>"}};
}

std::string error_of(const nlohmann::json& config) {
  try {
    ChatTemplate::from_tokenizer_config(config, "cfg/tokenizer_config.json");
  } catch (const Error& error) {
    return error.what();
  }
  return "(no error)";
}

std::string slice(const RenderedChat& chat, size_t i) {
  const TextRange r = chat.assistant_ranges.at(i);
  return chat.text.substr(r.begin, r.end - r.begin);
}

const std::filesystem::path kTokenizerDir = test::shared_data() / "llama3-tokenizer";

TEST(ChatTemplate, SharedLlama3TemplateIsTheOriginalInstructOne) {
  LL_REQUIRE_SHARED(kTokenizerDir);
  const ChatTemplate chat = ChatTemplate::load(kTokenizerDir);
  EXPECT_EQ(chat.kind(), ChatTemplateKind::Llama3);
  EXPECT_EQ(chat.variant(), "llama3-original");
  EXPECT_EQ(chat.prompt_rule(), ChatTemplate::PromptRule::Always);
  EXPECT_EQ(chat.bos_token(), "<|begin_of_text|>");
  EXPECT_EQ(chat.eos_token(), "<|end_of_text|>");
  EXPECT_EQ(chat.end_of_turn(), "<|eot_id|>");
  // Our copy of Meta's first template must be that file's template, byte for byte.
  const auto config = nlohmann::json::parse(read_file(kTokenizerDir / "tokenizer_config.json"));
  EXPECT_EQ(config["chat_template"].get<std::string>(), llama3_original_chat_template_source());
}

TEST(ChatTemplate, RendersTheSeedConversationsLikeTransformers) {
  LL_REQUIRE_SHARED(kTokenizerDir);
  const ChatTemplate chat = ChatTemplate::load(kTokenizerDir);
  const auto fixture = chat_fixture();
  ASSERT_EQ(fixture["rows"].size(), 3u);
  for (const auto& row : fixture["rows"]) {
    const auto messages = to_messages(row["messages"]);
    const RenderedChat full = chat.render(messages, GenerationPrompt::Omit);
    EXPECT_EQ(full.text, row["text"].get<std::string>());
    ASSERT_EQ(full.assistant_ranges.size(), 1u);
    EXPECT_EQ(slice(full, 0), row["record"]["answer"].get<std::string>() + "<|eot_id|>");

    const RenderedChat prompt = chat.render(std::span(messages).first(2), GenerationPrompt::Add);
    EXPECT_EQ(prompt.text, row["prompt_text"].get<std::string>());
    EXPECT_TRUE(prompt.assistant_ranges.empty());
  }
}

TEST(ChatTemplate, RenderedSeedConversationsEncodeToTransformersIds) {
  LL_REQUIRE_SHARED(kTokenizerDir);
  const ChatTemplate chat = ChatTemplate::load(kTokenizerDir);
  const Tokenizer tokenizer = Tokenizer::load(kTokenizerDir);
  const auto fixture = chat_fixture();  // (not chat_fixture()["rows"]: the temporary would die)
  for (const auto& row : fixture["rows"]) {
    const auto messages = to_messages(row["messages"]);
    const std::string text = chat.render(messages, GenerationPrompt::Omit).text;
    EXPECT_EQ(tokenizer.encode(text, AddSpecialTokens::No), row["ids"].get<std::vector<int32_t>>());
    const std::string prompt =
        chat.render(std::span(messages).first(2), GenerationPrompt::Add).text;
    EXPECT_EQ(tokenizer.encode(prompt, AddSpecialTokens::No),
              row["prompt_ids"].get<std::vector<int32_t>>());
  }
}

TEST(ChatTemplate, EveryKnownVariantRendersLikeJinja) {
  const auto fixture = chat_fixture();
  const std::map<std::string, std::string> expected_variant = {
      {"llama3", "llama3"},
      {"llama3-reformatted", "llama3"},
      {"chatml", "chatml"},
      {"chatml-defaulted", "chatml"},
      {"chatml-default-system", "chatml-default-system"}};
  size_t checked = 0;
  for (const auto& render : fixture["template_renders"]) {
    const std::string name = render["template"];
    SCOPED_TRACE(name + (render["add_generation_prompt"].get<bool>() ? " +prompt" : ""));
    const std::string source = fixture["template_sources"][name];
    const ChatTemplate chat =
        ChatTemplate::from_tokenizer_config(config_with(source), "fixture:" + name);
    EXPECT_EQ(chat.variant(), expected_variant.at(name));
    const auto prompt = render["add_generation_prompt"].get<bool>() ? GenerationPrompt::Add
                                                                    : GenerationPrompt::Omit;
    EXPECT_EQ(chat.render(to_messages(render["messages"]), prompt).text,
              render["text"].get<std::string>());
    ++checked;
  }
  EXPECT_EQ(checked, 5u * 4u);
}

TEST(ChatTemplate, AssistantRangesCoverTheRenderedContentAndEndOfTurn) {
  const std::vector<ChatMessage> messages = {{"system", " s "},
                                             {"user", "q1"},
                                             {"assistant", "\xE3\x80\x80Hello!  "},  // U+3000
                                             {"user", "q2"},
                                             {"assistant", ""}};
  const ChatTemplate llama3 = ChatTemplate::from_tokenizer_config(
      config_with(chat_template_source(ChatTemplateKind::Llama3)), "llama3");
  const RenderedChat l = llama3.render(messages, GenerationPrompt::Omit);
  ASSERT_EQ(l.assistant_ranges.size(), 2u);
  EXPECT_EQ(slice(l, 0), "Hello!<|eot_id|>");  // trimmed like Jinja's `trim`
  EXPECT_EQ(slice(l, 1), "<|eot_id|>");

  const ChatTemplate chatml = ChatTemplate::from_tokenizer_config(
      config_with(chat_template_source(ChatTemplateKind::ChatML)), "chatml");
  EXPECT_EQ(chatml.kind(), ChatTemplateKind::ChatML);
  EXPECT_EQ(chatml.variant(), "chatml");
  const RenderedChat c = chatml.render(messages, GenerationPrompt::Add);
  ASSERT_EQ(c.assistant_ranges.size(), 2u);
  EXPECT_EQ(slice(c, 0), "\xE3\x80\x80Hello!  <|im_end|>");  // no trim; the "\n" after is not in it
  EXPECT_EQ(slice(c, 1), "<|im_end|>");
  EXPECT_EQ(c.text.substr(c.assistant_ranges[1].end), "\n<|im_start|>assistant\n");
}

// Llama-3's `trim` is Python's str.strip(): whitespace is what str.isspace() says, which also
// counts U+001C..U+001F. Bytes that are not UTF-8 are no space (what CPython strips after
// decoding with errors="replace": b" \xc0\xa0Hi\xc2\xa0\xe2\x80  ".decode("utf-8", "replace")
// .strip() == "\ufffd\ufffdHi\xa0\ufffd"), even where a lax decoder would read one: \xC0\xA0
// is an overlong U+0020.
TEST(ChatTemplate, TrimStripsPythonWhitespaceAndStopsAtIllFormedBytes) {
  const ChatTemplate llama3 = ChatTemplate::from_tokenizer_config(
      config_with(chat_template_source(ChatTemplateKind::Llama3)), "llama3");
  const std::vector<ChatMessage> messages = {
      {"assistant", " \x1C\xC2\x85x\x1F\xE2\x80\xA8"},  // U+001C, U+0085, x, U+001F, U+2028
      {"assistant", " \xC0\xA0Hi\xC2\xA0\xE2\x80  "}};
  const RenderedChat l = llama3.render(messages, GenerationPrompt::Omit);
  ASSERT_EQ(l.assistant_ranges.size(), 2u);
  EXPECT_EQ(slice(l, 0), "x<|eot_id|>");
  EXPECT_EQ(slice(l, 1), "\xC0\xA0Hi\xC2\xA0\xE2\x80<|eot_id|>");
}

TEST(ChatTemplate, NamedTemplatesAndAddedTokenObjects) {
  nlohmann::json config = {
      {"chat_template",
       {{{"name", "tool_use"}, {"template", "{{ tools }}"}},
        {{"name", "default"}, {"template", chat_template_source(ChatTemplateKind::ChatML)}}}},
      {"bos_token", {{"content", "<s>"}, {"__type", "AddedToken"}}},
      {"eos_token", nullptr}};
  const ChatTemplate chat = ChatTemplate::from_tokenizer_config(config, "named");
  EXPECT_EQ(chat.variant(), "chatml");
  EXPECT_EQ(chat.bos_token(), "<s>");
  EXPECT_EQ(chat.eos_token(), "");
}

TEST(ChatTemplate, MissingTemplateIsAClearError) {
  const std::string error = error_of({{"bos_token", "<s>"}});
  EXPECT_NE(error.find("[chat_template] cfg/tokenizer_config.json: no chat_template"),
            std::string::npos)
      << error;
}

TEST(ChatTemplate, Llama31TemplateWithToolsIsNotSupported) {
  // The shape of Llama-3.1-Instruct's template: tools, a dated system header.
  const std::string llama31 =
      "{{- bos_token }}\n{%- if custom_tools is defined %}\n    {%- set tools = custom_tools %}\n"
      "{%- endif %}\n{%- if not date_string is defined %}\n    {%- set date_string = \"26 Jul "
      "2024\" %}\n{%- endif %}\n{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n"
      "{{- \"Cutting Knowledge Date: December 2023\\n\" }}\n{{- \"Today Date: \" + date_string + "
      "\"\\n\\n\" }}\n{%- for message in messages %}\n    {{- '<|start_header_id|>' + "
      "message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}\n"
      "{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- "
      "'<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n{%- endif %}\n";
  const std::string error = error_of(config_with(llama31));
  EXPECT_NE(error.find("[chat_template] cfg/tokenizer_config.json: this chat template is not "
                       "supported (it has the Llama-3 markers"),
            std::string::npos)
      << error;
}

TEST(ChatTemplate, OtherFamiliesAreNotSupported) {
  const std::string mistral =
      "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' "
      "+ message['content'] + ' [/INST]' }}{% else %}{{ message['content'] + eos_token }}{% endif "
      "%}{% endfor %}";
  EXPECT_NE(error_of(config_with(mistral)).find("neither a Llama-3 nor a ChatML template"),
            std::string::npos);
  EXPECT_NE(error_of(config_with("{{ messages")).find("cannot read it: unterminated tag"),
            std::string::npos);
}

TEST(ChatTemplate, UnknownTemplateWithOnlyKnownTagsIsRenderedByItsMarkers) {
  // The fixed Llama-3 template without its bos_token line: every tag is a known one.
  const std::string no_bos =
      "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
      "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | "
      "trim + '<|eot_id|>' %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
      "'<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";
  const ChatTemplate chat = ChatTemplate::from_tokenizer_config(config_with(no_bos), "no-bos");
  EXPECT_EQ(chat.variant(), "llama3-like");
  const std::vector<ChatMessage> messages = {{"user", " hi "}};
  EXPECT_EQ(chat.render(messages, GenerationPrompt::Omit).text,
            "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>");
  EXPECT_EQ(chat.render(messages, GenerationPrompt::Add).text,
            "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");

  // Text outside the tags (here a newline that trim_blocks does not remove after `}}`) is
  // output we would not reproduce: rejected.
  const std::string chatml_lines =
      "{% for message in messages %}\n{{'<|im_start|>' + message['role'] + '\\n' + "
      "message['content'] + '<|im_end|>' + '\\n'}}\n{% endfor %}";
  EXPECT_NE(error_of(config_with(chatml_lines)).find("differs from the known ChatML templates"),
            std::string::npos);
}

}  // namespace
}  // namespace ll
