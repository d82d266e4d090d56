// See sql_corpus.h. Records are drawn from word lists and templates with a SplitMix64
// stream (fully specified arithmetic, so the text is the same on every platform).
#include "data/sql_corpus.h"

#include "core/random.h"
#include "tokenizer/bpe_trainer.h"

#include <array>
#include <span>
#include <string_view>
#include <vector>

namespace ll {
namespace {

class Rng {
 public:
  explicit Rng(uint64_t seed) : stream_(seed) {}
  uint64_t next() { return stream_.next(); }
  size_t below(size_t n) { return static_cast<size_t>(next() % n); }
  int64_t between(int64_t low, int64_t high) {  // inclusive
    return low + static_cast<int64_t>(next() % static_cast<uint64_t>(high - low + 1));
  }
  bool chance(unsigned percent) { return below(100) < percent; }
  template <typename T>
  const T& pick(std::span<const T> items) {
    return items[below(items.size())];
  }

 private:
  SplitMix64 stream_;
};

using Words = std::span<const std::string_view>;

constexpr std::string_view kSystemPrompt =
    "You are a text to SQL query translator. Users will ask you questions in English and you "
    "will generate a SQL query based on the provided SCHEMA.\nSCHEMA:\n";

constexpr std::array<std::string_view, 48> kTables = {
    "head",     "department", "management", "employee", "student",  "course",   "singer",
    "concert",  "stadium",    "city",       "country",  "airport",  "flight",   "aircraft",
    "player",   "team",       "match",      "game",     "album",    "artist",   "song",
    "track",    "customer",   "orders",     "product",  "store",    "book",     "author",
    "movie",    "actor",      "school",     "teacher",  "hospital", "doctor",   "patient",
    "station",  "train",      "club",       "election", "party",    "mountain", "river",
    "festival", "company",    "church",     "ship",     "race",     "building"};

// Column names with the SQL type they usually have (WikiSQL columns are all VARCHAR).
struct Column {
  std::string_view name;
  std::string_view type;
};
constexpr std::array<Column, 64> kColumns = {{
    {"name", "VARCHAR"},
    {"age", "INTEGER"},
    {"id", "INTEGER"},
    {"salary", "INTEGER"},
    {"city", "VARCHAR"},
    {"country", "VARCHAR"},
    {"year", "INTEGER"},
    {"population", "INTEGER"},
    {"budget", "REAL"},
    {"ranking", "INTEGER"},
    {"title", "VARCHAR"},
    {"price", "REAL"},
    {"rating", "REAL"},
    {"capacity", "INTEGER"},
    {"date", "VARCHAR"},
    {"score", "VARCHAR"},
    {"position", "VARCHAR"},
    {"nationality", "VARCHAR"},
    {"college", "VARCHAR"},
    {"points", "INTEGER"},
    {"wins", "INTEGER"},
    {"losses", "INTEGER"},
    {"result", "VARCHAR"},
    {"record", "VARCHAR"},
    {"attendance", "INTEGER"},
    {"opponent", "VARCHAR"},
    {"week", "INTEGER"},
    {"location", "VARCHAR"},
    {"time", "VARCHAR"},
    {"rank", "INTEGER"},
    {"gold", "INTEGER"},
    {"silver", "INTEGER"},
    {"bronze", "INTEGER"},
    {"total", "INTEGER"},
    {"born_state", "VARCHAR"},
    {"creation", "VARCHAR"},
    {"num_employees", "INTEGER"},
    {"department_id", "INTEGER"},
    {"head_id", "INTEGER"},
    {"home_team", "VARCHAR"},
    {"away_team", "VARCHAR"},
    {"venue", "VARCHAR"},
    {"crowd", "INTEGER"},
    {"round", "INTEGER"},
    {"pick", "INTEGER"},
    {"party", "VARCHAR"},
    {"district", "VARCHAR"},
    {"incumbent", "VARCHAR"},
    {"first_elected", "INTEGER"},
    {"status", "VARCHAR"},
    {"gender", "VARCHAR"},
    {"email", "VARCHAR"},
    {"address", "VARCHAR"},
    {"phone_number", "VARCHAR"},
    {"open_year", "INTEGER"},
    {"height", "REAL"},
    {"weight", "REAL"},
    {"launched", "VARCHAR"},
    {"tonnage", "INTEGER"},
    {"director", "VARCHAR"},
    {"genre", "VARCHAR"},
    {"release_date", "VARCHAR"},
    {"duration", "VARCHAR"},
    {"software_platform", "VARCHAR"},
}};

constexpr std::array<std::string_view, 40> kValues = {
    "California", "Alabama",    "Texas",        "New York",   "Melbourne",     "London",
    "Paris",      "Tokyo",      "Sweden",       "Brazil",     "Canada",        "Germany",
    "John Smith", "Mary Jones", "Robert Brown", "Anna Lee",   "Chicago Bulls", "Richmond",
    "Carlton",    "Essendon",   "Democratic",   "Republican", "Re-elected",    "Retired",
    "Male",       "Female",     "Drama",        "Comedy",     "Pop",           "Rock",
    "Linux",      "Windows",    "W 24-17",      "L 10-21",    "Guard",         "Forward",
    "Open",       "Closed",     "Boston",       "Stanford"};

constexpr std::array<std::string_view, 7> kAggregates = {"COUNT", "MAX", "MIN",  "AVG",
                                                         "SUM",   "MAX", "COUNT"};
constexpr std::array<std::string_view, 7> kAggregateWords = {
    "number of", "highest", "lowest", "average", "total", "largest", "count of"};

constexpr std::array<std::string_view, 40> kEnglish = {
    "The quick brown fox jumps over the lazy dog.",
    "What is the name of the city with the largest population?",
    "Please write a query that returns every row of the table.",
    "The database stores information about students, courses and their teachers.",
    "Each department has a head, a budget and a number of employees.",
    "Show me the results for the last ten years, sorted by date.",
    "How many people attended the concert in the stadium last summer?",
    "She was born in 1987 and moved to London when she was twenty.",
    "The team won 12 games and lost 4 during the 2019 season.",
    "This model learns to translate English questions into SQL queries.",
    "A table has columns, and every column has a name and a type.",
    "Numbers such as 3.14, 42, 100 and 2024 appear in many questions.",
    "Which of these players scored the most points in a single match?",
    "The answer should be a single SELECT statement without any explanation.",
    "Find all customers who placed more than three orders in March.",
    "They asked for the average salary of employees in each department.",
    "It is important to read the schema before writing the query.",
    "The river flows through the mountains and ends in the sea.",
    "Our company opened a new store in Boston in 2015.",
    "When was the building completed, and how tall is it?",
    "The first elected member of the party retired after twenty years.",
    "List every flight that leaves the airport before noon.",
    "There are many books written by this author, but only one was a film.",
    "You can group the rows by country and count them.",
    "If the value is missing, the query should return nothing.",
    "Good morning! How are you today? I am fine, thank you.",
    "We will meet at 10:30 on Monday, 5 May, at the main station.",
    "The price of the product increased from $12.50 to $15.00.",
    "Students who are older than 20 may take the advanced course.",
    "In this example, the question is short and the answer is shorter.",
    "Some names contain accents, like Zoë, José and Björn.",
    "The ship was launched in 1912 and had a tonnage of 46,328.",
    "Write the answer on a new line, then stop.",
    "Every record has an id, a name, a date and a status.",
    "The result was a draw, and the crowd of 25,000 went home.",
    "A singer released an album with ten songs in the year 2001.",
    "Return the names of the doctors who treat more than five patients.",
    "The election results show which incumbent was re-elected.",
    "For each genre, count the movies and order them by their rating.",
    "Nothing in this sentence is about databases at all."};

std::string plural(std::string_view table) {
  std::string out(table);
  if (out.ends_with("s")) return out;
  if (out.ends_with("y") && !out.ends_with("ay")) return out.substr(0, out.size() - 1) + "ies";
  if (out.ends_with("ch") || out.ends_with("sh")) return out + "es";
  return out + "s";
}

std::string spaced(std::string_view column) {  // born_state -> born state
  std::string out(column);
  for (char& c : out) {
    if (c == '_') c = ' ';
  }
  return out;
}

struct Schema {
  std::string table;
  std::vector<Column> columns;
};

Schema make_schema(Rng& rng) {
  Schema schema;
  // About a third are WikiSQL-style: table_name_NN with only VARCHAR columns.
  const bool wikisql = rng.chance(35);
  schema.table = wikisql ? "table_name_" + std::to_string(rng.between(1, 99))
                         : std::string(rng.pick(Words(kTables)));
  const size_t count = static_cast<size_t>(rng.between(1, 5));
  while (schema.columns.size() < count) {
    Column column = rng.pick(std::span<const Column>(kColumns));
    bool duplicate = false;
    for (const Column& existing : schema.columns) duplicate |= existing.name == column.name;
    if (duplicate) continue;
    if (wikisql) column.type = "VARCHAR";
    schema.columns.push_back(column);
  }
  return schema;
}

std::string create_table(const Schema& schema) {
  std::string out = "CREATE TABLE " + schema.table + " (";
  for (size_t i = 0; i < schema.columns.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::string(schema.columns[i].name) + " " + std::string(schema.columns[i].type);
  }
  return out + ")";
}

std::string value_literal(Rng& rng, const Column& column, bool double_quotes) {
  if (column.type != "VARCHAR") return std::to_string(rng.between(1, 2024));
  const std::string_view quote = double_quotes ? "\"" : "'";
  std::string value =
      rng.chance(20) ? std::to_string(rng.between(1, 120)) : std::string(rng.pick(Words(kValues)));
  return std::string(quote) + value + std::string(quote);
}

std::string bare(const std::string& literal) {  // 'Texas' -> Texas
  if (literal.size() >= 2 && (literal.front() == '\'' || literal.front() == '"')) {
    return literal.substr(1, literal.size() - 2);
  }
  return literal;
}

// One question and its answer for `schema`.
std::pair<std::string, std::string> make_question(Rng& rng, const Schema& schema) {
  const std::string& t = schema.table;
  const auto col = [&] { return rng.pick(std::span<const Column>(schema.columns)); };
  const Column a = col();
  const Column b = col();
  const Column c = col();
  const std::string an(a.name);
  const std::string bn(b.name);
  const std::string cn(c.name);
  const bool dq = t.starts_with("table_name_");
  const std::string value = value_literal(rng, b, dq);
  const std::string number = std::to_string(rng.between(1, 300));
  const std::string things = t.starts_with("table_name_") ? "entries" : plural(t);
  const size_t agg = rng.below(kAggregates.size());
  switch (rng.below(11)) {
    case 0:
      return {"How many " + things + " are there?", "SELECT COUNT(*) FROM " + t};
    case 1:
      return {"What is the " + std::string(kAggregateWords[agg]) + " " + spaced(an) + " of " +
                  things + "?",
              "SELECT " + std::string(kAggregates[agg]) + "(" + an + ") FROM " + t};
    case 2:
      return {"What is the " + spaced(an) + " when the " + spaced(bn) + " is " + bare(value) + "?",
              "SELECT " + an + " FROM " + t + " WHERE " + bn + " = " + value};
    case 3:
      return {"How many " + spaced(an) + " have a " + spaced(bn) + " greater than " + number + "?",
              "SELECT COUNT(" + an + ") FROM " + t + " WHERE " + bn + " > " + number};
    case 4:
      return {"List the " + spaced(an) + " and " + spaced(bn) + " of " + things + " ordered by " +
                  spaced(cn) + ".",
              "SELECT " + an + ", " + bn + " FROM " + t + " ORDER BY " + cn};
    case 5:
      return {"Which " + spaced(an) + " has the highest " + spaced(bn) + "?",
              "SELECT " + an + " FROM " + t + " ORDER BY " + bn + " DESC LIMIT 1"};
    case 6: {
      const int64_t low = rng.between(1, 50);
      const std::string high = std::to_string(low + rng.between(1, 50));
      return {"What are the distinct " + spaced(an) + " of " + things + " whose " + spaced(bn) +
                  " is between " + std::to_string(low) + " and " + high + "?",
              "SELECT DISTINCT " + an + " FROM " + t + " WHERE " + bn + " BETWEEN " +
                  std::to_string(low) + " AND " + high};
    }
    case 7:
      return {"Show the " + spaced(an) + " and the number of " + things + " for each " +
                  spaced(an) + ".",
              "SELECT " + an + ", COUNT(*) FROM " + t + " GROUP BY " + an};
    case 8: {
      const std::string other(rng.pick(Words(kTables)));
      return {"What are the " + spaced(an) + " of the " + things + " that have a " + other +
                  " with " + spaced(bn) + " " + bare(value) + "?",
              "SELECT T1." + an + " FROM " + t + " AS T1 JOIN " + other + " AS T2 ON T1.id = T2." +
                  t + "_id WHERE T2." + bn + " = " + value};
    }
    case 9:
      return {"What is the lowest " + spaced(an) + " when " + spaced(cn) + " is less than " +
                  number + " and " + spaced(bn) + " is " + bare(value) + "?",
              "SELECT MIN(" + an + ") FROM " + t + " WHERE " + cn + " < " + number + " AND " + bn +
                  " = " + value};
    default:
      return {"Name the " + spaced(an) + " for " + spaced(bn) + " of " + bare(value),
              "SELECT " + an + " FROM " + t + " WHERE " + bn + " = " + value};
  }
}

}  // namespace

std::string make_sql_corpus(size_t target_bytes, uint64_t seed) {
  Rng rng(seed);
  std::string out;
  out.reserve(target_bytes + 1024);
  while (out.size() < target_bytes) {
    // Like a rendered training example: role names, then system prompt + schema, question
    // and answer (the chat template's special tokens are not text, so they are left out).
    const Schema schema = make_schema(rng);
    const auto [question, answer] = make_question(rng, schema);
    if (rng.chance(40)) {
      out += "system\n\n";
      out += kSystemPrompt;
      out += create_table(schema);
      out += "user\n\n" + question + "assistant\n\n" + answer + "\n";
    } else {
      out += create_table(schema) + "\n" + question + "\n" + answer + "\n";
    }
    if (rng.chance(30)) {
      out += rng.pick(Words(kEnglish));
      out += rng.chance(50) ? " " : "\n";
    }
  }
  return out;
}

nlohmann::json train_builtin_tokenizer(int32_t vocab_size) {
  return train_llama3_style_tokenizer(
      make_sql_corpus(kSqlCorpusDefaultBytes, kSqlCorpusDefaultSeed), vocab_size);
}

}  // namespace ll
