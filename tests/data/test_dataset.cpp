// The whole pipeline: file -> split -> documents -> packed sequences, and its numbers.
#include <gtest/gtest.h>

#include "core/error.h"
#include "data/dataset.h"
#include "test_util.h"
#include "tokenizer/reference_templates.h"

namespace ll {
namespace {

constexpr int32_t kEndOfText = 128001;
const std::filesystem::path kTokenizerDir = test::shared_data() / "llama3-tokenizer";
const std::filesystem::path kSqlSample =
    test::shared_data() / "sql-create-context" / "sample-3500.jsonl";

struct Llama3 {
  Tokenizer tokenizer = Tokenizer::load(kTokenizerDir);
  ChatTemplate chat = ChatTemplate::load(kTokenizerDir);
};

const Llama3& llama3() {  // loaded once per test binary (about a second)
  static const Llama3 instance;
  return instance;
}

nlohmann::json sql_row(int i) {
  const std::string t = "t" + std::to_string(i);
  return {{"question", "What is a in " + t + "?"},
          {"context", "CREATE TABLE " + t + " (a INTEGER)"},
          {"answer", "SELECT a FROM " + t}};
}

std::string sql_jsonl(int rows, int bad_row = -1) {
  std::string text;
  for (int i = 0; i < rows; ++i) {
    nlohmann::json row = sql_row(i);
    if (i == bad_row) row.erase("answer");
    text += row.dump() + "\n";
  }
  return text;
}

std::vector<int32_t> stream_of(const Llama3& llama, const std::vector<int>& rows) {
  const ExampleEncoder encoder(llama.tokenizer, llama.chat, LossMask::AllTokens, kEndOfText);
  std::vector<int32_t> ids;
  for (int row : rows) {
    Example example;
    record_to_example(Preset::Sql, sql_row(row), example);
    const auto doc = encoder.encode(example);
    ids.insert(ids.end(), doc.ids.begin(), doc.ids.end());
  }
  return ids;
}

TEST(Dataset, SqlSampleWithTheSeedSettings) {
  LL_REQUIRE_SHARED(kTokenizerDir);
  LL_REQUIRE_SHARED(kSqlSample);
  const Llama3& llama = llama3();
  const PreparedData data = prepare_data(kSqlSample, llama.tokenizer, llama.chat, DataOptions{});
  const DataStats& s = data.stats;
  EXPECT_EQ(s.rows, 3500u);
  EXPECT_EQ(s.bad_rows, 0u);
  EXPECT_EQ(s.unused_rows, 0u);
  EXPECT_EQ(s.concat_token, kEndOfText);
  EXPECT_EQ(s.train.rows, 3000u);  // a small file keeps the 500 eval rows
  EXPECT_EQ(s.eval.rows, 500u);
  for (const SplitStats* split : {&s.train, &s.eval}) {
    EXPECT_EQ(split->label_tokens, split->tokens);  // the seed trains on every token
    EXPECT_EQ(split->sequences, split->tokens / 1024);
    EXPECT_EQ(split->dropped_tokens, split->tokens % 1024);
    EXPECT_EQ(split->rows_longer_than_sequence, 0u);
  }
  EXPECT_EQ(data.train.size(), s.train.sequences);
  EXPECT_EQ(data.train.ids.size(), s.train.sequences * 1024);
  // One concat token per document; those in the dropped tail are missing.
  const auto eos = std::count(data.train.ids.begin(), data.train.ids.end(), kEndOfText);
  EXPECT_LE(static_cast<uint64_t>(eos), s.train.rows);
  EXPECT_GE(static_cast<uint64_t>(eos), s.train.rows - 20);
  // The first document is row 2558 (numpy permutation(3500, seed 23)[0]) and starts at 0.
  const RecordFile file = read_records(kSqlSample, BadRows::Fail);
  Example first;
  ASSERT_EQ(record_to_example(Preset::Sql, file.records[2558].value, first), "");
  const ExampleEncoder encoder(llama.tokenizer, llama.chat, LossMask::AllTokens, kEndOfText);
  const auto doc = encoder.encode(first);
  const SequenceView s0 = data.train.sequence(0);
  EXPECT_TRUE(std::equal(doc.ids.begin(), doc.ids.end(), s0.ids.begin()));
  ASSERT_GE(s0.document_starts.size(), 2u);
  EXPECT_EQ(s0.document_starts[0], 0u);
  EXPECT_EQ(s0.document_starts[1], doc.ids.size());
}

TEST(Dataset, BadRowsFailWithFileAndLine) {
  LL_REQUIRE_SHARED(kTokenizerDir);
  const Llama3& llama = llama3();
  DataOptions options;
  options.split = SplitPlan{23, 5, 3};
  const RecordFile records = parse_records(sql_jsonl(10, 5), "mem.jsonl", BadRows::Fail);
  try {
    prepare_records(records, llama.tokenizer, llama.chat, options);
    FAIL() << "a missing field must fail";
  } catch (const Error& error) {
    EXPECT_STREQ(error.what(), "[data] mem.jsonl:6: field 'answer' missing");
  }
}

TEST(Dataset, SkippedRowsAreDroppedAfterTheShuffle) {
  LL_REQUIRE_SHARED(kTokenizerDir);
  const Llama3& llama = llama3();
  DataOptions options;
  options.split = SplitPlan{23, 5, 3};  // permutation(10) = [3, 6, 2, 5, 8 | 7, 9, 0 | 1, 4]
  options.bad_rows = BadRows::Skip;
  options.max_seq_length = 16;
  const RecordFile records = parse_records(sql_jsonl(10, 5), "mem.jsonl", BadRows::Skip);
  const PreparedData data = prepare_records(records, llama.tokenizer, llama.chat, options);
  EXPECT_EQ(data.stats.rows, 10u);
  EXPECT_EQ(data.stats.bad_rows, 1u);
  ASSERT_EQ(data.stats.bad_row_problems.size(), 1u);
  EXPECT_EQ(data.stats.bad_row_problems[0], "mem.jsonl:6: field 'answer' missing");
  EXPECT_EQ(data.stats.unused_rows, 2u);
  EXPECT_EQ(data.stats.train.rows, 4u);  // row 5 leaves a hole; no other row moves
  EXPECT_EQ(data.stats.eval.rows, 3u);

  const std::vector<int32_t> train = stream_of(llama, {3, 6, 2, 8});
  EXPECT_EQ(data.stats.train.tokens, train.size());
  EXPECT_EQ(data.stats.train.sequences, train.size() / 16);
  EXPECT_EQ(data.stats.train.dropped_tokens, train.size() % 16);
  EXPECT_EQ(data.train.ids,
            std::vector<int32_t>(train.begin(), train.begin() + static_cast<std::ptrdiff_t>(
                                                                    train.size() / 16 * 16)));
  const std::vector<int32_t> eval = stream_of(llama, {7, 9, 0});
  EXPECT_EQ(data.eval.ids,
            std::vector<int32_t>(
                eval.begin(), eval.begin() + static_cast<std::ptrdiff_t>(eval.size() / 16 * 16)));
}

TEST(Dataset, CompletionOnlyLossCountsOnlyAnswerTokens) {
  LL_REQUIRE_SHARED(kTokenizerDir);
  const Llama3& llama = llama3();
  DataOptions options;
  options.split = SplitPlan{23, 5, 3};
  options.loss_mask = LossMask::AssistantOnly;
  options.max_seq_length = 32;
  const RecordFile records = parse_records(sql_jsonl(10), "mem.jsonl", BadRows::Fail);
  const PreparedData data = prepare_records(records, llama.tokenizer, llama.chat, options);
  uint64_t expected = 0;  // answer tokens + <|eot_id|> per train row
  for (int row : {3, 6, 2, 5, 8}) {
    expected +=
        llama.tokenizer.encode(sql_row(row)["answer"].get<std::string>(), AddSpecialTokens::No)
            .size() +
        1;
  }
  EXPECT_EQ(data.stats.train.label_tokens, expected);
  EXPECT_EQ(data.stats.train.tokens, stream_of(llama, {3, 6, 2, 5, 8}).size());

  options.preset = Preset::Text;
  EXPECT_THROW(prepare_records(records, llama.tokenizer, llama.chat, options), Error);
}

TEST(Dataset, PaddedLayoutAndConcatTokenChoice) {
  LL_REQUIRE_SHARED(kTokenizerDir);
  const Llama3& llama = llama3();
  DataOptions options;
  options.split = SplitPlan{23, 5, 3};
  options.layout = SequenceLayout::Padded;
  options.max_seq_length = 100;
  const RecordFile records = parse_records(sql_jsonl(10), "mem.jsonl", BadRows::Fail);
  const PreparedData data = prepare_records(records, llama.tokenizer, llama.chat, options);
  ASSERT_EQ(data.train.size(), 5u);
  const SequenceView s0 = data.train.sequence(0);
  const auto doc3 = stream_of(llama, {3});
  EXPECT_EQ(s0.valid_tokens, doc3.size());
  EXPECT_TRUE(std::equal(doc3.begin(), doc3.end(), s0.ids.begin()));
  EXPECT_EQ(s0.ids[99], kEndOfText);  // pad = eos, as the seed sets it
  EXPECT_EQ(s0.labels[99], 0);

  // The sql recipe forces <|end_of_text|>; other presets take the config's eos_token.
  const ChatTemplate eot_config = ChatTemplate::from_tokenizer_config(
      {{"chat_template", reference_template_source(ReferenceTemplate::Llama3)},
       {"eos_token", "<|eot_id|>"}},
      "instruct");
  EXPECT_EQ(default_concat_token(Preset::Sql, llama.tokenizer, eot_config), kEndOfText);
  EXPECT_EQ(default_concat_token(Preset::Messages, llama.tokenizer, eot_config), 128009);
}

TEST(DatasetSelection, UnsetFieldsTakeThePresetsPlanAndSetOnesOverride) {
  // The one derivation train, eval, compare and data-stats share: sql holds out 500 rows
  // after the seed's shuffle (seed 23) and trains on 50,000; other presets train on all but
  // the held-out rows (none by default).
  DatasetSelection sql;
  EXPECT_EQ(sql.split_plan().seed, 23u);
  EXPECT_EQ(sql.split_plan().train_rows, 50000u);
  EXPECT_EQ(sql.split_plan().eval_rows, 500u);
  sql.eval_rows = 40;
  sql.seed = 7;
  sql.bad_rows = BadRows::Skip;
  const DataOptions options = sql.data_options();
  EXPECT_EQ(options.split.eval_rows, 40u);
  EXPECT_EQ(options.split.seed, 7u);
  EXPECT_EQ(options.split.train_rows, 50000u);
  EXPECT_EQ(options.bad_rows, BadRows::Skip);
  EXPECT_EQ(options.preset, Preset::Sql);

  DatasetSelection messages;
  messages.preset = Preset::Messages;
  EXPECT_EQ(messages.split_plan().eval_rows, 0u);
  EXPECT_EQ(messages.split_plan().train_rows, default_split_plan(Preset::Messages).train_rows);
}

}  // namespace
}  // namespace ll
