// Dataset files -> records: JSON Lines (one object a line, blank lines skipped) or one JSON
// array of objects, told apart by the first non-space character ('[' is an array), as
// Hugging Face's `load_dataset("json", ...)` reads both.
//
// A row that is not valid JSON or not an object is an error "[data] PATH:LINE: not valid JSON
// (...)". With BadRows::Skip it is kept as a bad record instead, counted, and left in its place:
// rows keep the positions they have in the file, so that a shuffle over all rows picks the
// same good rows as it would if the bad ones were fixed (see data/dataset.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace ll {

enum class BadRows { Fail, Skip };  // Skip: `--skip_bad_rows`

struct Record {
  uint64_t line = 0;     // 1-based line where the row starts
  nlohmann::json value;  // the row's object; null for a bad row
  std::string problem;   // empty for a good row, else "PATH:LINE: what is wrong"
  bool ok() const { return problem.empty(); }
};

struct RecordFile {
  std::string path;             // as given; names the file in messages
  std::vector<Record> records;  // every row in file order, bad ones included (BadRows::Skip)
  uint64_t bad_rows = 0;
};

// Reads and parses a JSONL or JSON-array file.
RecordFile read_records(const std::filesystem::path& path, BadRows policy);
// The same on text already in memory; `path` only names it in messages.
RecordFile parse_records(std::string_view text, const std::string& path, BadRows policy);

}  // namespace ll
