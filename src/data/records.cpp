// Dataset file readers: see records.h.
#include "data/records.h"

#include "core/error.h"
#include "core/file.h"

namespace ll {

namespace {

constexpr std::string_view kOrigin = "data";

bool is_json_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// nlohmann's message without its "[json.exception.parse_error.101] " prefix.
std::string parse_problem(const nlohmann::json::exception& error, bool one_line) {
  std::string what = error.what();
  if (!what.empty() && what[0] == '[') {
    const size_t close = what.find("] ");
    if (close != std::string::npos) what.erase(0, close + 2);
  }
  constexpr std::string_view kLineOne = "parse error at line 1, ";
  if (one_line && what.starts_with(kLineOne)) what.erase(0, kLineOne.size());
  return what;
}

const char* json_type_name(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::array:
      return "an array";
    case nlohmann::json::value_t::string:
      return "a string";
    case nlohmann::json::value_t::boolean:
      return "a boolean";
    case nlohmann::json::value_t::null:
      return "null";
    case nlohmann::json::value_t::object:
      return "an object";
    default:
      return "a number";
  }
}

class RecordBuilder {
 public:
  RecordBuilder(const std::string& path, BadRows policy) : policy_(policy) { file_.path = path; }

  // Parses one row's text; `one_line` says the text is a whole JSONL line.
  void add(std::string_view text, uint64_t line, bool one_line) {
    Record record;
    record.line = line;
    try {
      record.value = nlohmann::json::parse(text);
      if (!record.value.is_object()) {
        const std::string found = json_type_name(record.value);
        record.value = nullptr;
        bad(record, "not valid JSON (expected an object, found " + found + ")");
      }
    } catch (const nlohmann::json::exception& error) {
      bad(record, "not valid JSON (" + parse_problem(error, one_line) + ")");
    }
    file_.records.push_back(std::move(record));
  }

  // An error that no policy can skip: the file's structure is broken.
  [[noreturn]] void fatal(uint64_t line, const std::string& what) const {
    fail(kOrigin, file_.path + ":" + std::to_string(line) + ": " + what);
  }

  RecordFile finish() { return std::move(file_); }

 private:
  void bad(Record& record, const std::string& what) {
    record.problem = file_.path + ":" + std::to_string(record.line) + ": " + what;
    if (policy_ == BadRows::Fail) fail(kOrigin, record.problem);
    ++file_.bad_rows;
  }

  BadRows policy_;
  RecordFile file_;
};

void parse_jsonl(std::string_view text, size_t pos, uint64_t line, RecordBuilder& builder) {
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view row = text.substr(pos, end - pos);
    if (!row.empty() && row.back() == '\r') row.remove_suffix(1);
    bool blank = true;
    for (char c : row) blank = blank && is_json_space(c);
    if (!blank) builder.add(row, line, /*one_line=*/true);
    pos = end + 1;
    ++line;
  }
}

// Splits the top-level array into its elements (tracking strings and nesting only) and parses
// each on its own, so that one bad element is one bad row with its own line number.
void parse_json_array(std::string_view text, size_t pos, uint64_t line, RecordBuilder& builder) {
  const uint64_t array_line = line;
  ++pos;  // '['
  auto skip_space = [&] {
    while (pos < text.size() && is_json_space(text[pos])) {
      if (text[pos] == '\n') ++line;
      ++pos;
    }
  };
  skip_space();
  if (pos < text.size() && text[pos] == ']') {
    ++pos;
  } else {
    while (true) {
      skip_space();
      const size_t start = pos;
      const uint64_t start_line = line;
      int depth = 0;
      bool in_string = false;
      for (; pos < text.size(); ++pos) {
        const char c = text[pos];
        if (c == '\n') ++line;
        if (in_string) {
          if (c == '\\') {
            ++pos;
          } else if (c == '"') {
            in_string = false;
          }
        } else if (c == '"') {
          in_string = true;
        } else if (c == '{' || c == '[') {
          ++depth;
        } else if (c == '}' || c == ']') {
          if (depth == 0) break;
          --depth;
        } else if (c == ',' && depth == 0) {
          break;
        }
      }
      if (pos >= text.size()) builder.fatal(array_line, "not valid JSON (the array is not closed)");
      size_t end = pos;
      while (end > start && is_json_space(text[end - 1])) --end;
      builder.add(text.substr(start, end - start), start_line, /*one_line=*/false);
      if (text[pos] == ']') {
        ++pos;
        break;
      }
      if (text[pos] != ',') builder.fatal(line, "not valid JSON (unbalanced '}' in the array)");
      ++pos;
    }
  }
  skip_space();
  if (pos < text.size()) builder.fatal(line, "not valid JSON (text after the closing ']')");
}

}  // namespace

RecordFile parse_records(std::string_view text, const std::string& path, BadRows policy) {
  RecordBuilder builder(path, policy);
  size_t pos = 0;
  if (text.starts_with("\xEF\xBB\xBF")) pos = 3;  // UTF-8 byte order mark
  uint64_t line = 1;
  size_t first = pos;
  while (first < text.size() && is_json_space(text[first])) {
    if (text[first] == '\n') ++line;
    ++first;
  }
  if (first < text.size() && text[first] == '[') {
    parse_json_array(text, first, line, builder);
  } else {
    parse_jsonl(text, pos, 1, builder);
  }
  return builder.finish();
}

RecordFile read_records(const std::filesystem::path& path, BadRows policy) {
  check(std::filesystem::is_regular_file(path), kOrigin, path.string() + ": no such data file");
  return parse_records(read_file(path), path.string(), policy);
}

}  // namespace ll
