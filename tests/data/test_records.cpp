// Dataset readers: JSON Lines and JSON arrays, bad rows with their line numbers, skip policy.
#include <gtest/gtest.h>

#include "core/error.h"
#include "data/records.h"
#include "test_util.h"

namespace ll {
namespace {

std::string error_of(std::string_view text, BadRows policy = BadRows::Fail) {
  try {
    parse_records(text, "d.jsonl", policy);
  } catch (const Error& error) {
    return error.what();
  }
  return "(no error)";
}

TEST(Records, JsonLinesSkipBlankLinesAndKeepLineNumbers) {
  const RecordFile file =
      parse_records("{\"a\": 1}\n\n  \r\n{\"a\": 2}\r\n{\"a\": 3}", "d.jsonl", BadRows::Fail);
  ASSERT_EQ(file.records.size(), 3u);
  EXPECT_EQ(file.records[0].value["a"], 1);
  EXPECT_EQ(file.records[1].value["a"], 2);
  EXPECT_EQ(file.records[2].value["a"], 3);
  EXPECT_EQ(file.records[0].line, 1u);
  EXPECT_EQ(file.records[1].line, 4u);
  EXPECT_EQ(file.records[2].line, 5u);
  EXPECT_EQ(file.bad_rows, 0u);
  EXPECT_TRUE(parse_records("", "e.jsonl", BadRows::Fail).records.empty());
}

TEST(Records, JsonArrayIsDetectedByItsFirstCharacter) {
  const std::string text =
      "\xEF\xBB\xBF  \n[\n  {\"q\": \"a, b ]\", \"n\": [1, {\"x\": 2}]},\n\n  {\"q\": "
      "\"\\\"}\"}\n]\n";
  const RecordFile file = parse_records(text, "d.json", BadRows::Fail);
  ASSERT_EQ(file.records.size(), 2u);
  EXPECT_EQ(file.records[0].value["q"], "a, b ]");
  EXPECT_EQ(file.records[0].value["n"][1]["x"], 2);
  EXPECT_EQ(file.records[1].value["q"], "\"}");
  EXPECT_EQ(file.records[0].line, 3u);
  EXPECT_EQ(file.records[1].line, 5u);
  EXPECT_TRUE(parse_records(" [ ] ", "d.json", BadRows::Fail).records.empty());
}

TEST(Records, BadLinesNameFileAndLine) {
  const std::string bad_json = error_of("{\"a\": 1}\n\n{\"a\": }\n");
  EXPECT_EQ(bad_json.rfind("[data] d.jsonl:3: not valid JSON (", 0), 0u) << bad_json;
  EXPECT_NE(bad_json.find("syntax error"), std::string::npos) << bad_json;
  EXPECT_EQ(error_of("{\"a\": 1}\n[1, 2]\n"),
            "[data] d.jsonl:2: not valid JSON (expected an object, found an array)");
  EXPECT_EQ(error_of("\"text\"\n"),
            "[data] d.jsonl:1: not valid JSON (expected an object, found a string)");
}

TEST(Records, SkipPolicyCountsBadRowsAndKeepsTheirPlaces) {
  const RecordFile file =
      parse_records("{\"a\": 1}\nnot json\n{\"a\": 3}\n42\n{\"a\": 5}\n", "d.jsonl", BadRows::Skip);
  ASSERT_EQ(file.records.size(), 5u);  // bad rows keep their slot: positions match the file's rows
  EXPECT_EQ(file.bad_rows, 2u);
  EXPECT_TRUE(file.records[0].ok());
  EXPECT_FALSE(file.records[1].ok());
  EXPECT_EQ(file.records[1].problem.rfind("d.jsonl:2: not valid JSON (", 0), 0u);
  EXPECT_EQ(file.records[3].problem,
            "d.jsonl:4: not valid JSON (expected an object, found a number)");
  EXPECT_TRUE(file.records[3].value.is_null());
  EXPECT_EQ(file.records[4].value["a"], 5);
}

TEST(Records, BadArrayElementsAreRowsButABrokenArrayIsFatal) {
  const std::string text = "[\n{\"a\": 1},\n{\"a\": oops},\n7\n]";
  const RecordFile file = parse_records(text, "d.json", BadRows::Skip);
  ASSERT_EQ(file.records.size(), 3u);
  EXPECT_EQ(file.bad_rows, 2u);
  EXPECT_EQ(file.records[1].problem.rfind("d.json:3: not valid JSON (", 0), 0u);
  EXPECT_EQ(file.records[2].problem,
            "d.json:4: not valid JSON (expected an object, found a number)");
  try {
    parse_records("[\n{\"a\": 1},\n{\"a\": 2}\n", "d.json", BadRows::Skip);
    FAIL() << "an unclosed array must fail";
  } catch (const Error& error) {
    EXPECT_STREQ(error.what(), "[data] d.json:1: not valid JSON (the array is not closed)");
  }
  EXPECT_THROW(parse_records("[{\"a\": 1}] x", "d.json", BadRows::Skip), Error);
}

TEST(Records, ReadsFilesAndNamesMissingOnes) {
  test::TempDir dir;
  test::write_text(dir / "rows.jsonl", "{\"text\": \"hi\"}\n{\"text\": \"there\"}\n");
  const RecordFile file = read_records(dir / "rows.jsonl", BadRows::Fail);
  EXPECT_EQ(file.path, (dir / "rows.jsonl").string());
  EXPECT_EQ(file.records.size(), 2u);
  EXPECT_THROW(read_records(dir / "missing.jsonl", BadRows::Fail), Error);
}

}  // namespace
}  // namespace ll
