// See synthetic_sql.h. The schemas are invented here; the phrasing of questions and the SQL
// they map to follow the patterns common in sql-create-context (COUNT, WHERE, ORDER BY,
// aggregates, GROUP BY) so the rows look like the seed's data.
#include "data/synthetic_sql.h"

#include <array>
#include <nlohmann/json.hpp>
#include <random>
#include <string_view>

namespace ll {
namespace {

struct Column {
  std::string_view name;   // SQL column name
  std::string_view words;  // how a question says it
  bool numeric;
};

struct Table {
  std::string_view name;
  std::string_view plural;  // how a question names the rows
  std::vector<Column> columns;
  std::vector<std::string_view> text_values;  // values for equality filters on text columns
};

const std::vector<Table>& tables() {
  static const std::vector<Table> all = {
      {"employee",
       "employees",
       {{"name", "name", false},
        {"age", "age", true},
        {"salary", "salary", true},
        {"department", "department", false},
        {"city", "city", false}},
       {"Sales", "Boston", "Alice", "Research", "Denver"}},
      {"station",
       "stations",
       {{"station_name", "station name", false},
        {"elevation", "elevation", true},
        {"river", "river", false},
        {"opened_year", "opened year", true}},
       {"Glenwood", "Thames", "Riverside", "Kings Cross"}},
      {"album",
       "albums",
       {{"title", "title", false},
        {"artist", "artist", false},
        {"year", "year", true},
        {"sales", "sales", true},
        {"genre", "genre", false}},
       {"Jazz", "Blue Train", "Pop", "Miles Davis"}},
      {"ship",
       "ships",
       {{"ship_name", "ship name", false},
        {"tonnage", "tonnage", true},
        {"flag", "flag", false},
        {"built_year", "built year", true}},
       {"Panama", "Liberia", "Aurora", "Norway"}},
      {"player",
       "players",
       {{"player_name", "player name", false},
        {"team", "team", false},
        {"points", "points", true},
        {"height", "height", true},
        {"position", "position", false}},
       {"Guard", "Lakers", "Center", "Celtics"}},
      {"course",
       "courses",
       {{"course_title", "course title", false},
        {"credits", "credits", true},
        {"instructor", "instructor", false},
        {"room", "room", false}},
       {"Algebra", "Dr. Smith", "B201", "Physics"}},
      {"hospital",
       "hospitals",
       {{"hospital_name", "hospital name", false},
        {"beds", "beds", true},
        {"region", "region", false},
        {"founded", "founded", true}},
       {"North", "St. Mary", "Lakeside", "South"}},
      {"flight",
       "flights",
       {{"flight_number", "flight number", false},
        {"origin", "origin", false},
        {"destination", "destination", false},
        {"distance", "distance", true},
        {"price", "price", true}},
       {"Chicago", "LA-101", "Paris", "Tokyo"}},
  };
  return all;
}

std::string create_table(const Table& table) {
  std::string out = "CREATE TABLE " + std::string(table.name) + " (";
  for (size_t i = 0; i < table.columns.size(); ++i) {
    if (i) out += ", ";
    out +=
        std::string(table.columns[i].name) + (table.columns[i].numeric ? " INTEGER" : " VARCHAR");
  }
  return out + ")";
}

class RowMaker {
 public:
  explicit RowMaker(uint64_t seed) : rng_(seed) {}

  SqlRow make() {
    const auto& all = tables();
    const Table& table = all[pick(all.size())];
    const Column& text = pick_column(table, false);
    const Column& number = pick_column(table, true);
    const Column& other = table.columns[pick(table.columns.size())];
    const std::string t(table.name);
    const std::string value(table.text_values[pick(table.text_values.size())]);
    const std::string n = std::to_string(10 + pick(90));
    SqlRow row;
    row.context = create_table(table);
    switch (pick(9)) {
      case 0:
        row.question = "How many " + std::string(table.plural) + " have " +
                       std::string(number.words) + " greater than " + n + "?";
        row.answer = "SELECT COUNT(*) FROM " + t + " WHERE " + std::string(number.name) + " > " + n;
        break;
      case 1:
        row.question = "What is the " + std::string(other.words) + " of the " +
                       std::string(table.name) + " whose " + std::string(text.words) + " is " +
                       value + "?";
        row.answer = "SELECT " + std::string(other.name) + " FROM " + t + " WHERE " +
                     std::string(text.name) + " = \"" + value + "\"";
        break;
      case 2:
        row.question = "List the " + std::string(text.words) + " of all " +
                       std::string(table.plural) + " ordered by " + std::string(number.words) + ".";
        row.answer = "SELECT " + std::string(text.name) + " FROM " + t + " ORDER BY " +
                     std::string(number.name);
        break;
      case 3:
        row.question = "What is the average " + std::string(number.words) + " of all " +
                       std::string(table.plural) + "?";
        row.answer = "SELECT AVG(" + std::string(number.name) + ") FROM " + t;
        break;
      case 4:
        row.question = "What is the maximum " + std::string(number.words) + " of " +
                       std::string(table.plural) + " with " + std::string(text.words) + " " +
                       value + "?";
        row.answer = "SELECT MAX(" + std::string(number.name) + ") FROM " + t + " WHERE " +
                     std::string(text.name) + " = \"" + value + "\"";
        break;
      case 5:
        row.question = "Show the " + std::string(text.words) + " and " + std::string(number.words) +
                       " of each " + std::string(table.name) + ".";
        row.answer =
            "SELECT " + std::string(text.name) + ", " + std::string(number.name) + " FROM " + t;
        break;
      case 6:
        row.question = "How many different " + std::string(text.words) + " values are there?";
        row.answer = "SELECT COUNT(DISTINCT " + std::string(text.name) + ") FROM " + t;
        break;
      case 7:
        row.question =
            "Which " + std::string(text.words) + " has the most " + std::string(table.plural) + "?";
        row.answer = "SELECT " + std::string(text.name) + " FROM " + t + " GROUP BY " +
                     std::string(text.name) + " ORDER BY COUNT(*) DESC LIMIT 1";
        break;
      default:
        row.question = "What is the smallest " + std::string(number.words) + " among " +
                       std::string(table.plural) + " whose " + std::string(number.words) +
                       " is below " + n + "?";
        row.answer = "SELECT MIN(" + std::string(number.name) + ") FROM " + t + " WHERE " +
                     std::string(number.name) + " < " + n;
        break;
    }
    return row;
  }

 private:
  // Plain modulo: the bias (n / 2^64) is irrelevant here, and unlike
  // std::uniform_int_distribution it gives the same rows with every standard library.
  size_t pick(size_t n) { return static_cast<size_t>(rng_() % n); }

  const Column& pick_column(const Table& table, bool numeric) {
    std::vector<const Column*> matching;
    for (const auto& column : table.columns) {
      if (column.numeric == numeric) matching.push_back(&column);
    }
    return *matching[pick(matching.size())];
  }

  std::mt19937_64 rng_;  // fully specified by the C++ standard: same rows everywhere
};

}  // namespace

std::vector<SqlRow> generate_sql_rows(size_t count, uint64_t seed) {
  RowMaker maker(seed);
  std::vector<SqlRow> rows;
  rows.reserve(count);
  for (size_t i = 0; i < count; ++i) rows.push_back(maker.make());
  return rows;
}

void write_sql_rows_jsonl(const fs::path& path, const std::vector<SqlRow>& rows) {
  std::string out;
  for (const auto& row : rows) {
    nlohmann::ordered_json line;
    line["question"] = row.question;
    line["context"] = row.context;
    line["answer"] = row.answer;
    out += line.dump();
    out += '\n';
  }
  write_file_atomic(path, out);
}

}  // namespace ll
