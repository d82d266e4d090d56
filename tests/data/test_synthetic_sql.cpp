// Tests of the synthetic text-to-SQL generator: deterministic, well-formed, varied.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/file.h"
#include "data/synthetic_sql.h"
#include "test_util.h"

namespace ll {
namespace {

TEST(SyntheticSql, SameSeedSameRows) {
  const auto a = generate_sql_rows(50, 7);
  const auto b = generate_sql_rows(50, 7);
  const auto c = generate_sql_rows(50, 8);
  ASSERT_EQ(a.size(), 50u);
  bool any_difference = false;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].question, b[i].question);
    EXPECT_EQ(a[i].answer, b[i].answer);
    any_difference |= a[i].answer != c[i].answer;
  }
  EXPECT_TRUE(any_difference);
}

TEST(SyntheticSql, RowsReferToTheirSchema) {
  std::set<std::string> distinct_answers;
  for (const auto& row : generate_sql_rows(500, 1)) {
    ASSERT_EQ(row.context.rfind("CREATE TABLE ", 0), 0u) << row.context;
    ASSERT_EQ(row.answer.rfind("SELECT ", 0), 0u) << row.answer;
    // The table the answer reads is the one the context creates.
    const auto table = row.context.substr(13, row.context.find(' ', 13) - 13);
    EXPECT_NE(row.answer.find(" FROM " + table), std::string::npos) << row.answer;
    EXPECT_FALSE(row.question.empty());
    distinct_answers.insert(row.answer);
  }
  EXPECT_GT(distinct_answers.size(), 200u);  // varied enough to need generalisation
}

TEST(SyntheticSql, WritesJsonLines) {
  test::TempDir dir;
  const auto rows = generate_sql_rows(3, 0);
  write_sql_rows_jsonl(dir / "d.jsonl", rows);
  std::istringstream in(read_file(dir / "d.jsonl"));
  std::string line;
  size_t count = 0;
  while (std::getline(in, line)) {
    const auto json = nlohmann::json::parse(line);
    EXPECT_EQ(json.at("answer"), rows[count].answer);
    EXPECT_EQ(json.at("context"), rows[count].context);
    ++count;
  }
  EXPECT_EQ(count, 3u);
}

}  // namespace
}  // namespace ll
