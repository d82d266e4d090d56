// The syntax tree of a Jinja template and the tokens it is parsed from. Every node keeps the
// byte offset of its source so that errors can name the template's line and column.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/jinja/jinja_value.h"

namespace ll::jinja {

enum class TokenKind {
  Text,         // template text between tags, whitespace control already applied
  OutputBegin,  // {{
  OutputEnd,    // }}
  BlockBegin,   // {%
  BlockEnd,     // %}
  Name,
  String,  // text: the literal's value, escapes resolved
  Integer,
  Float,
  Operator,  // text: "+", "//", "==", "(", ...
  End,
};

struct Token {
  TokenKind kind = TokenKind::End;
  std::string text;
  size_t offset = 0;  // byte offset in the (newline-normalised) source
};

// Splits `source` into tokens with transformers' settings: trim_blocks and lstrip_blocks on,
// `{%-`/`-%}` strip whitespace, `{%+`/`+%}` keep it, comments dropped. Errors go through
// `map.fail_at`.
struct SourceMap;
std::vector<Token> tokenize(std::string_view source, const SourceMap& map);

// Byte offset -> "line:column" (1-based, column in bytes) of the template named `name`.
struct SourceMap {
  std::string name;
  std::vector<size_t> line_starts;
  explicit SourceMap(std::string name_, std::string_view source);
  std::string where(size_t offset) const;  // "NAME:LINE:COL"
  [[noreturn]] void fail_at(size_t offset, const std::string& what) const;
};

enum class ExprKind {
  Literal,    // value
  Name,       // name
  List,       // items
  Tuple,      // items, as a Python tuple
  Dict,       // items: key, value, key, value, ...
  Attribute,  // items[0].name
  Item,       // items[0][items[1]]
  Slice,      // items[0][items[1]:items[2]:items[3]] (null parts are absent)
  Call,       // items[0](items[1..], keywords)
  Filter,     // items[0] | name(items[1..], keywords)
  Test,       // items[0] is [not] name(items[1..])
  Not,        // not items[0]
  Negate,     // -items[0]
  Binary,     // items[0] op items[1]
  And,
  Or,
  Conditional,  // items[1] if items[0] else items[2] (items[2] may be null)
};

enum class BinaryOp {
  Add,
  Sub,
  Mul,
  Div,
  FloorDiv,
  Mod,
  Pow,
  Concat,
  Eq,
  Ne,
  Lt,
  Le,
  Gt,
  Ge,
  In,
  NotIn,
};

struct Expr {
  ExprKind kind = ExprKind::Literal;
  size_t offset = 0;
  Value value;                               // Literal
  std::string name;                          // Name, Attribute, Filter, Test
  BinaryOp op = BinaryOp::Add;               // Binary
  bool negated = false;                      // Test: `is not`
  std::vector<std::unique_ptr<Expr>> items;  // operands (see ExprKind)
  std::vector<std::pair<std::string, std::unique_ptr<Expr>>> keywords;  // Call, Filter
};
using ExprPtr = std::unique_ptr<Expr>;

enum class StmtKind { Text, Output, If, For, Set, SetBlock, Macro, CallBlock, Break, Continue };

struct Stmt;
using Body = std::vector<std::unique_ptr<Stmt>>;

struct Stmt {
  StmtKind kind = StmtKind::Text;
  size_t offset = 0;
  std::string text;                  // Text
  ExprPtr expr;                      // Output; For's iterable; Set's value; CallBlock's call
  std::vector<std::string> targets;  // For/Set names; Set "ns.attr" as {"ns", "attr"} with
  bool attribute_target = false;     //   attribute_target; Macro: its parameter names
  std::vector<ExprPtr> conditions;   // If: one per branch; For: the `if` filter (or empty)
  std::vector<Body> bodies;          // If: one per branch (+ else); For: body (+ else)
  std::vector<ExprPtr> defaults;     // Macro: default per parameter (null when none)
  std::string name;                  // Macro
};

struct Program {
  Body body;
};

// Parses the tokens of one template; errors name SourceMap::where.
Program parse_tokens(const std::vector<Token>& tokens, const SourceMap& map);

}  // namespace ll::jinja
