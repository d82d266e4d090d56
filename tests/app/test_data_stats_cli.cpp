// `llama-lora data-stats` end to end: the seed's numbers on the sql sample (checked against the
// transformers fixture), and the one-line errors for malformed rows and missing fields.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/file.h"
#include "test_util.h"

namespace ll {
namespace {

using test::shell_quote;

const std::filesystem::path kTokenizerDir = test::shared_data() / "llama3-tokenizer";
const std::filesystem::path kSqlSample =
    test::shared_data() / "sql-create-context" / "sample-3500.jsonl";

std::string model_arg() {
  return "--model " + shell_quote(kTokenizerDir.string());
}

std::string sql_line(int i) {
  std::string question = "q";  // (not "q" + to_string: GCC 12's -Wrestrict false positive)
  question += std::to_string(i);
  return nlohmann::json{{"question", question},
                        {"context", "CREATE TABLE t (a INTEGER)"},
                        {"answer", "SELECT a FROM t"}}
      .dump();
}

TEST(DataStatsCli, SqlSampleMatchesTheTransformersPipeline) {
  LL_REQUIRE_SHARED(kTokenizerDir);
  LL_REQUIRE_SHARED(kSqlSample);
  const auto expected =
      nlohmann::json::parse(read_file(test::fixtures() / "chat_sql_rows.json"))["sample_split"];
  const auto result =
      test::run_llama_lora("data-stats " + model_arg() + " --data " +
                           shell_quote(kSqlSample.string()) + " --preset sql --json");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto stats = nlohmann::json::parse(result.out);
  EXPECT_EQ(stats["rows"], expected["rows"]);
  EXPECT_EQ(stats["bad_rows"], 0);
  EXPECT_EQ(stats["concat_token"], 128001);
  for (const char* split : {"train", "eval"}) {
    SCOPED_TRACE(split);
    EXPECT_EQ(stats[split]["rows"], expected[split]["rows"]);
    EXPECT_EQ(stats[split]["tokens"], expected[split]["tokens"]);
    EXPECT_EQ(stats[split]["label_tokens"], expected[split]["tokens"]);
    EXPECT_EQ(stats[split]["sequences"], expected[split]["sequences"]);
    EXPECT_EQ(stats[split]["dropped_tokens"], expected[split]["dropped_tokens"]);
  }

  const auto text =
      test::run_llama_lora("data-stats " + model_arg() + " --data " +
                           shell_quote(kSqlSample.string()) + " --max_seq_length 512");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("rows 3,500 (0 bad"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("347,359"), std::string::npos) << text.out;  // train tokens
  EXPECT_NE(text.out.find("rows longer than 512"), std::string::npos) << text.out;
}

TEST(DataStatsCli, MalformedLineNamesFileAndLine) {
  LL_REQUIRE_SHARED(kTokenizerDir);
  test::TempDir dir;
  const auto data = dir / "bad.jsonl";
  test::write_text(data, sql_line(0) + "\n" + sql_line(1) + "\n{\"question\": \"q\", oops}\n");
  const auto result = test::run_llama_lora("data-stats " + model_arg() + " --data " +
                                           shell_quote(data.string()) + " --eval_rows 1");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("llama-lora: error: [data] " + data.string() + ":3: not valid JSON ("),
            std::string::npos)
      << result.err;
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
}

TEST(DataStatsCli, MissingFieldNamesFileLineAndField) {
  LL_REQUIRE_SHARED(kTokenizerDir);
  test::TempDir dir;
  const auto data = dir / "missing.jsonl";
  test::write_text(
      data, sql_line(0) + "\n\n{\"question\": \"q\", \"context\": \"c\"}\n" + sql_line(2) + "\n");
  const auto result = test::run_llama_lora("data-stats " + model_arg() + " --data " +
                                           shell_quote(data.string()) + " --eval_rows 1");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("[data] " + data.string() + ":3: field 'answer' missing"),
            std::string::npos)
      << result.err;

  // --skip_bad_rows counts it instead; the other rows go on.
  const auto skipped =
      test::run_llama_lora("data-stats " + model_arg() + " --data " + shell_quote(data.string()) +
                           " --eval_rows 1 --skip_bad_rows --max_seq_length 8 --json");
  ASSERT_EQ(skipped.exit_code, 0) << skipped.err;
  const auto stats = nlohmann::json::parse(skipped.out);
  EXPECT_EQ(stats["rows"], 3);
  EXPECT_EQ(stats["bad_rows"], 1);
  EXPECT_EQ(stats["bad_row_problems"][0], data.string() + ":3: field 'answer' missing");
  EXPECT_EQ(stats["train"]["rows"].get<int>() + stats["eval"]["rows"].get<int>(), 2);
}

TEST(DataStatsCli, ModelWithoutChatTemplateIsAClearError) {
  LL_REQUIRE_SHARED(kTokenizerDir);
  test::TempDir dir;
  std::filesystem::create_symlink(kTokenizerDir / "tokenizer.json", dir / "tokenizer.json");
  test::write_text(dir / "tokenizer_config.json", "{\"eos_token\": \"<|end_of_text|>\"}");
  test::write_text(dir / "d.jsonl", sql_line(0) + "\n" + sql_line(1) + "\n");
  const auto result =
      test::run_llama_lora("data-stats --model " + shell_quote(dir.path().string()) + " --data " +
                           shell_quote((dir / "d.jsonl").string()) + " --eval_rows 1");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("[chat_template] " + (dir / "tokenizer_config.json").string() +
                            ": no chat_template"),
            std::string::npos)
      << result.err;
}

}  // namespace
}  // namespace ll
