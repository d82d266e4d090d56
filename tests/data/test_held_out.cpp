// held_out_examples: the evaluation split as prompt + reference, the same rows and order as the
// seed's `shuffle(seed=23).select(...)` (tests/fixtures/chat_sql_rows.json records the first
// eval rows that HF datasets picks from the shared sample), and bad input named.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "core/error.h"
#include "data/held_out.h"
#include "test_util.h"

namespace ll {
namespace {

TEST(HeldOut, SqlSampleGivesTheSeedsEvalRowsAsPromptAndReference) {
  const auto path = test::shared_data() / "sql-create-context" / "sample-3500.jsonl";
  LL_REQUIRE_SHARED(path);
  std::ifstream fixture_file(test::fixtures() / "chat_sql_rows.json");
  const auto fixture = nlohmann::json::parse(fixture_file);
  const auto& first_rows = fixture["sample_split"]["eval"]["first_rows"];

  const RecordFile records = read_records(path, BadRows::Fail);
  const auto examples =
      held_out_examples(records, Preset::Sql, SplitPlan{23, 50000, 500}, BadRows::Fail);
  ASSERT_EQ(examples.size(), 500u);
  for (size_t i = 0; i < first_rows.size(); ++i) {
    const auto row = first_rows[i].get<uint64_t>();
    const HeldOutExample& held = examples[i];
    EXPECT_EQ(held.index, i);
    EXPECT_EQ(held.line, row + 1) << "eval example " << i;  // JSONL: one row per line
    EXPECT_EQ(held.reference, records.records[row].value["answer"].get<std::string>());
    ASSERT_EQ(held.prompt.size(), 2u);
    EXPECT_EQ(held.prompt[0].role, "system");
    EXPECT_EQ(held.prompt[0].content,
              sql_system_message(records.records[row].value["context"].get<std::string>()));
    EXPECT_EQ(held.prompt[1].role, "user");
    EXPECT_EQ(held.prompt[1].content, records.records[row].value["question"].get<std::string>());
  }
}

TEST(HeldOut, TextPresetAndBadRowsAreNamed) {
  const std::string text =
      "{\"question\":\"q\",\"context\":\"CREATE TABLE t (a INTEGER)\",\"answer\":\"SELECT a FROM "
      "t\"}\n"
      "{\"question\":\"q\",\"context\":\"c\"}\n"
      "{\"question\":\"q\",\"context\":\"c\",\"answer\":\"SELECT 1\"}\n";
  const RecordFile records = parse_records(text, "rows.jsonl", BadRows::Skip);
  try {
    held_out_examples(records, Preset::Sql, SplitPlan{23, 1, 2}, BadRows::Fail);
    FAIL() << "a row without an answer must fail";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("rows.jsonl:2"), std::string::npos) << error.what();
  }
  // Skip: the bad row leaves a hole, the other held-out row keeps its split position.
  const auto kept = held_out_examples(records, Preset::Sql, SplitPlan{23, 1, 2}, BadRows::Skip);
  EXPECT_LE(kept.size(), 2u);
  for (const auto& held : kept) EXPECT_NE(held.line, 2u);
  EXPECT_THROW(held_out_examples(records, Preset::Text, SplitPlan{23, 1, 2}, BadRows::Skip), Error);
}

}  // namespace
}  // namespace ll
