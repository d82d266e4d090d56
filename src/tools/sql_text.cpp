// See sql_text.h.
#include "tools/sql_text.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <unordered_map>

#include "core/error.h"

namespace ll::sql_text {
namespace {

constexpr std::string_view kOrigin = "sql-eval";

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_word_char(char c) {
  const unsigned char u = static_cast<unsigned char>(c);
  return is_digit(c) || static_cast<unsigned>((u | 32) - 'a') < 26u || c == '_' || c == '$' ||
         u >= 0x80;
}
char ascii_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
}
bool is_name(const Token& t) {
  return t.kind == TokenKind::Word || t.kind == TokenKind::DoubleQuoted ||
         t.kind == TokenKind::Identifier;
}

[[noreturn]] void schema_fail(size_t statement, std::string_view what) {
  fail(kOrigin, std::string("context statement ") + std::to_string(statement + 1) + ": " +
                    std::string(what));
}

SchemaTable parse_create_table(const std::vector<Token>& tokens, size_t index) {
  size_t i = 0;
  const auto expect_word = [&](std::string_view word) {
    if (i >= tokens.size() || !is_word(tokens[i], word)) {
      schema_fail(index,
                  std::string("expected '") + std::string(word) + "' in a CREATE TABLE statement");
    }
    ++i;
  };
  expect_word("create");
  if (i < tokens.size() && (is_word(tokens[i], "temp") || is_word(tokens[i], "temporary"))) ++i;
  expect_word("table");
  if (i < tokens.size() && is_word(tokens[i], "if")) {
    ++i;
    expect_word("not");
    expect_word("exists");
  }
  if (i + 1 >= tokens.size() || !(is_name(tokens[i]) || tokens[i].kind == TokenKind::String)) {
    schema_fail(index, "expected a table name");
  }
  SchemaTable table{unquote(tokens[i++]), {}};
  if (!is_punct(tokens[i], "(")) schema_fail(index, "expected '(' and a column list");
  size_t def_start = ++i;
  int depth = 0;  // of parentheses inside the column list, as in VARCHAR(255)
  for (; i < tokens.size(); ++i) {
    if (is_punct(tokens[i], "(")) {
      ++depth;
      continue;
    }
    if (is_punct(tokens[i], ")") && depth > 0) {
      --depth;
      continue;
    }
    const bool close = is_punct(tokens[i], ")");
    if (!close && !(depth == 0 && is_punct(tokens[i], ","))) continue;
    if (def_start == i) schema_fail(index, "empty column definition");
    const Token& first = tokens[def_start];
    static constexpr std::string_view kTableConstraints[] = {"constraint", "primary", "unique",
                                                             "check", "foreign"};
    const bool constraint = std::any_of(std::begin(kTableConstraints), std::end(kTableConstraints),
                                        [&](std::string_view w) { return is_word(first, w); });
    if (!constraint) {
      if (!is_name(first) && first.kind != TokenKind::String) {
        schema_fail(index,
                    std::string("expected a column name, found '") + std::string(first.text) + "'");
      }
      SchemaColumn column{unquote(first), "", "", Affinity::Blob};
      static constexpr std::string_view kTypeEnd[] = {
          "constraint", "primary", "not",        "null",      "unique", "check",
          "default",    "collate", "references", "generated", "as"};
      size_t t = def_start + 1;
      for (; t < i; ++t) {
        const Token& tok = tokens[t];
        if (std::any_of(std::begin(kTypeEnd), std::end(kTypeEnd),
                        [&](std::string_view w) { return is_word(tok, w); })) {
          break;
        }
        const bool allowed = tok.kind == TokenKind::Word || tok.kind == TokenKind::Number ||
                             is_punct(tok, "(") || is_punct(tok, ")") || is_punct(tok, ",") ||
                             is_punct(tok, "+") || is_punct(tok, "-");
        if (!allowed)
          schema_fail(index, std::string("unexpected '") + std::string(tok.text) + "' in a type");
      }
      column.type = join_tokens(&tokens[def_start + 1], tokens.data() + t, FoldCase::No);
      for (; t + 1 < i; ++t) {
        if (is_word(tokens[t], "collate") && is_name(tokens[t + 1])) {
          column.collation = unquote(tokens[t + 1]);
        }
      }
      column.affinity = affinity_of(column.type);
      table.columns.push_back(std::move(column));
    }
    def_start = i + 1;
    if (close) break;
  }
  if (i >= tokens.size()) schema_fail(index, "the column list is not closed");
  for (++i; i < tokens.size(); ++i) {  // only table options (WITHOUT ROWID, STRICT) may follow
    if (tokens[i].kind != TokenKind::Word && !is_punct(tokens[i], ",")) {
      schema_fail(
          index, std::string("unexpected '") + std::string(tokens[i].text) + "' after the columns");
    }
  }
  if (table.columns.empty())
    schema_fail(index, std::string("table '") + table.name + "' has no columns");
  return table;
}

// The column a literal at tokens[i] is compared with: "col OP lit", "col [NOT] LIKE lit",
// "col BETWEEN lit AND lit", "col [NOT] IN (lit, ...)", "lit OP col".
std::string linked_column(const std::vector<Token>& tokens, size_t i, size_t first) {
  static constexpr std::string_view kCompare[] = {"=", "==", "!=", "<>", "<", "<=", ">", ">="};
  const auto is_compare = [](const Token& t) {
    return std::any_of(std::begin(kCompare), std::end(kCompare),
                       [&](std::string_view op) { return is_punct(t, op); }) ||
           is_word(t, "like") || is_word(t, "glob");
  };
  const auto column_before = [&](size_t j) -> std::string {  // the name ending at tokens[j]
    if (j < tokens.size() && is_word(tokens[j], "not")) --j;
    return j < tokens.size() && is_name(tokens[j]) ? lower(unquote(tokens[j])) : "";
  };
  if (first >= 1) {
    size_t j = first - 1;
    if (is_compare(tokens[j]) || is_word(tokens[j], "between")) return column_before(j - 1);
    if (is_word(tokens[j], "and") && j >= 2 && is_word(tokens[j - 2], "between")) {
      return column_before(j - 3);
    }
    while (j > 0 && (is_punct(tokens[j], ",") || is_punct(tokens[j], "-") ||
                     tokens[j].kind == TokenKind::Number || tokens[j].kind == TokenKind::String ||
                     tokens[j].kind == TokenKind::DoubleQuoted)) {
      --j;
    }
    if (is_punct(tokens[j], "(") && j >= 1 && is_word(tokens[j - 1], "in")) {
      return column_before(j - 2);
    }
  }
  if (i + 2 < tokens.size() && is_compare(tokens[i + 1]) && is_name(tokens[i + 2])) {
    size_t j = i + 2;  // "lit OP t1.col": the name after the dot
    if (j + 2 < tokens.size() && is_punct(tokens[j + 1], ".") && is_name(tokens[j + 2])) j += 2;
    const bool function = j + 1 < tokens.size() && is_punct(tokens[j + 1], "(");
    if (!function) return lower(unquote(tokens[j]));
  }
  return "";
}

}  // namespace

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

std::vector<Token> tokenize(std::string_view sql) {
  static constexpr std::string_view kOperators[] = {
      "->>", "<=", ">=", "<>", "!=", "==", "||", "<<", ">>", "->"};
  std::vector<Token> tokens;
  size_t i = 0;
  const size_t n = sql.size();
  while (i < n) {
    const char c = sql[i];
    const size_t start = i;
    if (static_cast<unsigned char>(c) <= ' ') {
      ++i;
    } else if (sql.substr(i, 2) == "--") {
      i = std::min(n, sql.find('\n', i));
    } else if (sql.substr(i, 2) == "/*") {
      const size_t end = sql.find("*/", i + 2);
      i = end == std::string_view::npos ? n : end + 2;
    } else if (c == '\'' || c == '"' || c == '`' || c == '[') {
      const char close = c == '[' ? ']' : c;
      ++i;
      while (i < n) {  // a doubled quote is an escaped quote; an unterminated one runs to the end
        if (sql[i++] != close) continue;
        if (close != ']' && i < n && sql[i] == close) {
          ++i;
          continue;
        }
        break;
      }
      const TokenKind kind = c == '\''  ? TokenKind::String
                             : c == '"' ? TokenKind::DoubleQuoted
                                        : TokenKind::Identifier;
      tokens.push_back({kind, sql.substr(start, i - start)});
    } else if (is_digit(c) || (c == '.' && i + 1 < n && is_digit(sql[i + 1]))) {
      while (i < n && (is_word_char(sql[i]) || sql[i] == '.' ||
                       ((sql[i] == '+' || sql[i] == '-') && (sql[i - 1] | 32) == 'e'))) {
        ++i;
      }
      tokens.push_back({TokenKind::Number, sql.substr(start, i - start)});
    } else if (is_word_char(c)) {
      while (i < n && is_word_char(sql[i])) ++i;
      tokens.push_back({TokenKind::Word, sql.substr(start, i - start)});
    } else {
      size_t length = 1;
      for (std::string_view op : kOperators) {
        if (sql.substr(i, op.size()) == op) {
          length = op.size();
          break;
        }
      }
      i += length;
      tokens.push_back({TokenKind::Punct, sql.substr(start, length)});
    }
  }
  return tokens;
}

bool is_punct(const Token& t, std::string_view text) {
  return t.kind == TokenKind::Punct && t.text == text;
}

bool is_word(const Token& t, std::string_view lower_text) {
  return t.kind == TokenKind::Word && lower(t.text) == lower_text;
}

std::string unquote(const Token& t) {
  if (t.kind != TokenKind::String && t.kind != TokenKind::DoubleQuoted &&
      t.kind != TokenKind::Identifier) {
    return std::string(t.text);
  }
  const char close = t.text[0] == '[' ? ']' : t.text[0];
  std::string_view inner = t.text.substr(1);
  if (!inner.empty() && inner.back() == close) inner.remove_suffix(1);
  std::string out;
  for (size_t i = 0; i < inner.size(); ++i) {
    out.push_back(inner[i]);
    if (close != ']' && inner[i] == close && i + 1 < inner.size() && inner[i + 1] == close) ++i;
  }
  return out;
}

std::string join_tokens(const Token* begin, const Token* end, FoldCase fold_case) {
  std::string out;
  for (const Token* t = begin; t != end; ++t) {
    if (t != begin) {
      const Token& prev = t[-1];
      const bool tight = is_punct(*t, ",") || is_punct(*t, ")") || is_punct(*t, ".") ||
                         is_punct(prev, "(") || is_punct(prev, ".") ||
                         (is_punct(*t, "(") && prev.kind == TokenKind::Word);
      if (!tight) out.push_back(' ');
    }
    const bool literal = t->kind == TokenKind::String || t->kind == TokenKind::DoubleQuoted;
    out += fold_case == FoldCase::Yes && !literal ? lower(t->text) : std::string(t->text);
  }
  return out;
}

// SQLite's rules for a declared type's affinity (sqlite.org/datatype3.html, 3.1), in order.
Affinity affinity_of(std::string_view declared_type) {
  const std::string type = lower(declared_type);
  const auto has = [&](std::string_view part) { return type.find(part) != std::string::npos; };
  if (has("int")) return Affinity::Integer;
  if (has("char") || has("clob") || has("text")) return Affinity::Text;
  if (has("blob") || type.empty()) return Affinity::Blob;
  if (has("real") || has("floa") || has("doub")) return Affinity::Real;
  return Affinity::Numeric;
}

// sql-create-context often defines a table twice (one CREATE TABLE per part of the query,
// e.g. "CREATE TABLE station (name, id); CREATE TABLE station (name, id, city)") and
// sometimes a column twice in different case ("editor_id, Editor_ID"). Both describe one
// table, so they are merged: the union of the columns, each name once (case-insensitively,
// as SQLite compares names), the first definition's type winning.
std::vector<SchemaTable> parse_schema(std::string_view context) {
  const std::vector<Token> tokens = tokenize(context);
  std::vector<SchemaTable> tables;
  std::unordered_map<std::string, size_t> by_name;  // lower-cased name -> index in tables
  size_t statement = 0;
  for (size_t begin = 0; begin < tokens.size(); ++begin) {
    size_t end = begin;
    while (end < tokens.size() && !is_punct(tokens[end], ";")) ++end;
    if (end == begin) continue;
    SchemaTable parsed = parse_create_table(
        std::vector<Token>(tokens.begin() + long(begin), tokens.begin() + long(end)), statement++);
    const auto [it, added] = by_name.emplace(lower(parsed.name), tables.size());
    if (added) tables.push_back({parsed.name, {}});
    SchemaTable& table = tables[it->second];
    for (auto& column : parsed.columns) {
      const bool known =
          std::any_of(table.columns.begin(), table.columns.end(),
                      [&](const auto& c) { return lower(c.name) == lower(column.name); });
      if (!known) table.columns.push_back(std::move(column));
    }
    begin = end;
  }
  if (tables.empty()) fail(kOrigin, "context has no CREATE TABLE statement");
  return tables;
}

std::string quote_name(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    out.push_back(c);
    if (c == '"') out.push_back('"');
  }
  return out + "\"";
}

std::string create_table_sql(const SchemaTable& table) {
  std::string sql = std::string("CREATE TABLE ") + quote_name(table.name) + " (";
  for (size_t i = 0; i < table.columns.size(); ++i) {
    const SchemaColumn& column = table.columns[i];
    if (i) sql += ", ";
    sql += quote_name(column.name);
    if (!column.type.empty()) sql += std::string(" ") + column.type;
    if (!column.collation.empty()) sql += std::string(" COLLATE ") + quote_name(column.collation);
  }
  return sql + ")";
}

std::string Value::as_text() const {
  if (kind == Kind::Integer) return std::to_string(integer);
  if (kind != Kind::Real) return bytes;
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.15g", real);
  return buffer;
}

std::optional<Value> parse_number(std::string_view text, bool negative) {
  int64_t integer = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, integer);
  if (ec == std::errc() && ptr == end) return Value::of_integer(negative ? -integer : integer);
  double real = 0;
  auto [rptr, rec] = std::from_chars(text.data(), end, real);
  if (rec == std::errc() && rptr == end) return Value::of_real(negative ? -real : real);
  return std::nullopt;
}

void add_literals(std::string_view sql, std::vector<Literal>& out) {
  const std::vector<Token> tokens = tokenize(sql);
  for (size_t i = 0; i < tokens.size(); ++i) {
    const Token& t = tokens[i];
    if (i > 0 && (is_word(tokens[i - 1], "limit") || is_word(tokens[i - 1], "offset"))) continue;
    std::optional<Value> value;
    size_t first = i;  // where the literal starts (its minus sign, if any)
    if (t.kind == TokenKind::String || t.kind == TokenKind::DoubleQuoted) {
      value = Value::of_text(unquote(t));
    } else if (t.kind == TokenKind::Number) {
      const bool negative =
          i >= 1 && is_punct(tokens[i - 1], "-") &&
          (i < 2 || (tokens[i - 2].kind == TokenKind::Punct && !is_punct(tokens[i - 2], ")")) ||
           is_word(tokens[i - 2], "and") || is_word(tokens[i - 2], "between"));
      if (negative) first = i - 1;
      value = parse_number(t.text, negative);
    }
    if (value) out.push_back({std::move(*value), linked_column(tokens, i, first)});
  }
}

bool has_top_level_order_by(std::string_view sql) {
  const std::vector<Token> tokens = tokenize(sql);
  int depth = 0;
  for (size_t i = 0; i + 1 < tokens.size(); ++i) {
    depth += is_punct(tokens[i], "(") ? 1 : is_punct(tokens[i], ")") ? -1 : 0;
    if (depth == 0 && is_word(tokens[i], "order") && is_word(tokens[i + 1], "by")) return true;
  }
  return false;
}

}  // namespace ll::sql_text
