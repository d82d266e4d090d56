// Token documents and loss masks with the real Llama-3 tokenizer, against the transformers
// fixture (tests/fixtures/chat_sql_rows.json): the seed's documents are the fixture's ids plus
// the concat token 128001; the assistant-only mask covers exactly the answer and <|eot_id|>.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "data/example_encoder.h"
#include "test_util.h"

namespace ll {
namespace {

constexpr int32_t kEndOfText = 128001;
constexpr int32_t kBeginOfText = 128000;
const std::filesystem::path kTokenizerDir = test::shared_data() / "llama3-tokenizer";

struct Llama3 {
  Tokenizer tokenizer = Tokenizer::load(kTokenizerDir);
  ChatTemplate chat = ChatTemplate::load(kTokenizerDir);
};

const Llama3& llama3() {  // loaded once per test binary (about a second)
  static const Llama3 instance;
  return instance;
}

std::vector<int32_t> masked_ids(const TokenizedExample& doc) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < doc.ids.size(); ++i) {
    if (doc.labels[i]) ids.push_back(doc.ids[i]);
  }
  return ids;
}

TEST(ExampleEncoder, SeedDocumentsAreTheFixtureIdsPlusTheConcatToken) {
  LL_REQUIRE_SHARED(kTokenizerDir);
  const Llama3& llama = llama3();
  const ExampleEncoder encoder(llama.tokenizer, llama.chat, LossMask::AllTokens, kEndOfText);
  const auto fixture = nlohmann::json::parse(read_file(test::fixtures() / "chat_sql_rows.json"));
  for (const auto& row : fixture["rows"]) {
    Example example;
    ASSERT_EQ(record_to_example(Preset::Sql, row["record"], example), "");
    const TokenizedExample doc = encoder.encode(example);
    std::vector<int32_t> expected = row["ids"].get<std::vector<int32_t>>();
    expected.push_back(kEndOfText);
    EXPECT_EQ(doc.ids, expected);
    EXPECT_EQ(doc.ids.front(), kBeginOfText);  // from the template, not the tokenizer
    EXPECT_EQ(doc.labels, std::vector<uint8_t>(doc.ids.size(), 1));
  }
}

TEST(ExampleEncoder, AssistantOnlyMasksExactlyTheAnswerAndEndOfTurn) {
  LL_REQUIRE_SHARED(kTokenizerDir);
  const Llama3& llama = llama3();
  const ExampleEncoder all(llama.tokenizer, llama.chat, LossMask::AllTokens, kEndOfText);
  const ExampleEncoder assistant(llama.tokenizer, llama.chat, LossMask::AssistantOnly, kEndOfText);
  const auto fixture = nlohmann::json::parse(read_file(test::fixtures() / "chat_sql_rows.json"));
  for (const auto& row : fixture["rows"]) {
    Example example;
    ASSERT_EQ(record_to_example(Preset::Sql, row["record"], example), "");
    const TokenizedExample doc = assistant.encode(example);
    EXPECT_EQ(doc.ids, all.encode(example).ids);  // the mask changes nothing else
    const std::string answer = row["record"]["answer"];
    EXPECT_EQ(llama.tokenizer.decode(masked_ids(doc), DecodeSpecial::Keep), answer + "<|eot_id|>");
    // As many targets as the answer has tokens, plus <|eot_id|>; one contiguous run.
    const size_t targets = llama.tokenizer.encode(answer, AddSpecialTokens::No).size() + 1;
    EXPECT_EQ(masked_ids(doc).size(), targets);
    const auto first = std::find(doc.labels.begin(), doc.labels.end(), 1);
    EXPECT_TRUE(std::all_of(first, first + static_cast<std::ptrdiff_t>(targets),
                            [](uint8_t l) { return l == 1; }));
    EXPECT_EQ(doc.ids.back(), kEndOfText);
    EXPECT_EQ(doc.labels.back(), 0);  // the concat token is not the assistant's
  }
}

TEST(ExampleEncoder, AssistantOnlyCoversEveryAssistantTurn) {
  LL_REQUIRE_SHARED(kTokenizerDir);
  const Llama3& llama = llama3();
  const ExampleEncoder encoder(llama.tokenizer, llama.chat, LossMask::AssistantOnly, std::nullopt);
  Example example;
  example.messages = {
      {"user", "Hi"}, {"assistant", "  Hello there!\n"}, {"user", "And 2+2?"}, {"assistant", "4"}};
  const TokenizedExample doc = encoder.encode(example);
  EXPECT_EQ(llama.tokenizer.decode(masked_ids(doc), DecodeSpecial::Keep),
            "Hello there!<|eot_id|>4<|eot_id|>");  // content trimmed as the template does
}

TEST(ExampleEncoder, TextDocumentsStartWithBosAndAreAllTargets) {
  LL_REQUIRE_SHARED(kTokenizerDir);
  const Llama3& llama = llama3();
  const ExampleEncoder encoder(llama.tokenizer, llama.chat, LossMask::AllTokens, kEndOfText);
  Example example;
  example.kind = ExampleKind::Text;
  example.text = "Once upon a time";
  const TokenizedExample doc = encoder.encode(example);
  std::vector<int32_t> expected = {kBeginOfText};
  for (int32_t id : llama.tokenizer.encode(example.text, AddSpecialTokens::No))
    expected.push_back(id);
  expected.push_back(kEndOfText);
  EXPECT_EQ(doc.ids, expected);
  EXPECT_EQ(doc.labels, std::vector<uint8_t>(expected.size(), 1));
}

}  // namespace
}  // namespace ll
