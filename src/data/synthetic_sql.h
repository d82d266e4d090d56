// A generator of text-to-SQL rows in the style of b-mc2/sql-create-context
// ({"question", "context", "answer"}), so that the default job and tests need no download.
// Rows come from a fixed set of schemas and question/answer templates; the same seed always
// gives the same rows. The task is learnable by a tiny model (the answer follows from the
// question's template and the schema's names), which is what the demo needs to show that
// fine-tuning helps.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/file.h"

namespace ll {

struct SqlRow {
  std::string question;
  std::string context;  // CREATE TABLE statement(s)
  std::string answer;   // the SQL query
};

std::vector<SqlRow> generate_sql_rows(size_t count, uint64_t seed);

// Writes rows as JSON lines (question, context, answer), atomically.
void write_sql_rows_jsonl(const fs::path& path, const std::vector<SqlRow>& rows);

}  // namespace ll
