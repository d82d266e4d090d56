// SQL as text, for the SQL metrics of eval (sql_eval.h), without a database: a small
// tokenizer, the schema a sql-create-context `context` declares, and the literals a query
// compares columns with (the data generator puts them into the tables).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ll::sql_text {

enum class TokenKind { Word, Number, String, DoubleQuoted, Identifier, Punct };
// String: '...'; DoubleQuoted: "..." (an identifier, or a string when no column has that
// name, which is how sql-create-context writes strings); Identifier: `...` or [...].
struct Token {
  TokenKind kind;
  std::string_view text;  // as written, quotes included; points into the tokenized text
};

// Whitespace and comments are dropped; an unterminated quote runs to the end.
std::vector<Token> tokenize(std::string_view sql);

bool is_punct(const Token& t, std::string_view text);
bool is_word(const Token& t, std::string_view lower_text);  // a keyword, case-insensitively
std::string lower(std::string_view text);                   // ASCII, as SQLite folds names
// The text inside a quoted token, escapes undone; other tokens as written.
std::string unquote(const Token& t);
// Joins tokens with single spaces, except none before ',' ')' '.' or after '(' '.', and none
// between a word and '(' (so "COUNT (*)" and "count(*)" read the same). `fold_case`
// lower-cases everything but '...' and "..." tokens.
enum class FoldCase { No, Yes };
std::string join_tokens(const Token* begin, const Token* end, FoldCase fold_case);

// SQLite's type affinity of a declared type (sqlite.org/datatype3.html, 3.1).
enum class Affinity { Integer, Text, Blob, Real, Numeric };
Affinity affinity_of(std::string_view declared_type);

struct SchemaColumn {
  std::string name;
  std::string type;       // declared type, e.g. "VARCHAR(255)"; may be empty
  std::string collation;  // empty: BINARY
  Affinity affinity;
};
struct SchemaTable {
  std::string name;
  std::vector<SchemaColumn> columns;
};

// Reads a context made of "CREATE TABLE [IF NOT EXISTS] name (column type [constraints],
// ...)" statements separated by ';'. Keeps names, declared types and COLLATE; drops
// constraints (keys, NOT NULL, CHECK, DEFAULT): the data is generated to fit, and none of
// them changes what a SELECT returns. A table defined twice is merged (see sql_text.cpp).
// Throws ll::Error "[sql-eval] context statement N: ..." on anything else.
std::vector<SchemaTable> parse_schema(std::string_view context);

std::string quote_name(std::string_view name);  // "name", with '"' doubled
std::string create_table_sql(const SchemaTable& table);

// A SQL value: generated into a table, or read back from a result.
struct Value {
  enum class Kind : uint8_t { Null, Integer, Real, Text, Blob } kind = Kind::Null;
  int64_t integer = 0;
  double real = 0;
  std::string bytes;  // Text, Blob

  static Value of_integer(int64_t v) { return {Kind::Integer, v, 0, {}}; }
  static Value of_real(double v) { return {Kind::Real, 0, v, {}}; }
  static Value of_text(std::string v) { return {Kind::Text, 0, 0, std::move(v)}; }
  bool numeric() const { return kind == Kind::Integer || kind == Kind::Real; }
  double as_double() const { return kind == Kind::Integer ? double(integer) : real; }
  std::string as_text() const;  // numbers as SQLite prints them ("%.15g" for reals)
};

// "42" -> Integer, "4.5e1" -> Real (negated when `negative`); nullopt when not a number.
std::optional<Value> parse_number(std::string_view text, bool negative);

struct Literal {
  Value value;
  std::string column;  // lower-cased column it is compared with; empty when not known
};

// Appends the string and number literals of `sql` (not those after LIMIT or OFFSET), each
// with the column it is compared with where the query says: "col OP lit", "lit OP col",
// "col [NOT] LIKE lit", "col BETWEEN lit AND lit", "col [NOT] IN (lit, ...)".
void add_literals(std::string_view sql, std::vector<Literal>& out);

// True when the query ends in an ORDER BY outside every parenthesis (its rows are ordered).
bool has_top_level_order_by(std::string_view sql);

}  // namespace ll::sql_text
