// The Jinja parser: tokens into statements and expressions, with Jinja's precedence (lowest
// first): `x if c else y`, `or`, `and`, `not`, comparisons and `in`, `+ -`, `~`, `* / // %`,
// `**`, unary `-`, then postfix `.a [i] (args)` and `| filter` / `is test` on the operand.
// Nesting is bounded (kMaxDepth) so a hostile template cannot overflow the stack.
#include "core/error.h"
#include "tokenizer/jinja/jinja_ast.h"

namespace ll::jinja {

namespace {

constexpr int kMaxDepth = 200;  // nested expressions and blocks

class Parser {
 public:
  Parser(const std::vector<Token>& tokens, const SourceMap& map) : tokens_(tokens), map_(map) {}

  Program run() {
    Program program;
    const std::string end = parse_body(program.body, {});
    if (!end.empty()) map_.fail_at(peek().offset, "unexpected '" + end + "'");
    return program;
  }

 private:
  // --- tokens ---
  const Token& peek(size_t ahead = 0) const {
    return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)];
  }
  const Token& next() {
    const Token& t = peek();
    if (pos_ < tokens_.size() - 1) ++pos_;
    return t;
  }
  bool at_op(const char* op) const {
    return peek().kind == TokenKind::Operator && peek().text == op;
  }
  bool at_name(const char* name) const {
    return peek().kind == TokenKind::Name && peek().text == name;
  }
  bool accept_op(const char* op) {
    if (!at_op(op)) return false;
    next();
    return true;
  }
  bool accept_name(const char* name) {
    if (!at_name(name)) return false;
    next();
    return true;
  }
  static std::string describe(const Token& t) {
    switch (t.kind) {
      case TokenKind::End:
        return "end of template";
      case TokenKind::OutputEnd:
        return "'}}'";
      case TokenKind::BlockEnd:
        return "'%}'";
      case TokenKind::Text:
        return "template text";
      case TokenKind::String:
        return "string literal";
      default:
        return "'" + t.text + "'";
    }
  }
  [[noreturn]] void unexpected(const std::string& wanted) const {
    map_.fail_at(peek().offset, "expected " + wanted + ", found " + describe(peek()));
  }
  void expect_op(const char* op) {
    if (!accept_op(op)) unexpected(std::string("'") + op + "'");
  }
  std::string expect_name() {
    if (peek().kind != TokenKind::Name) unexpected("a name");
    return next().text;
  }
  void expect_block_end() {
    if (peek().kind != TokenKind::BlockEnd) unexpected("'%}'");
    next();
  }
  void enter() {
    if (++depth_ > kMaxDepth)
      map_.fail_at(peek().offset,
                   "template nests deeper than " + std::to_string(kMaxDepth) + " levels");
  }

  // --- statements ---
  // Parses statements into `body` until a block tag whose name is in `ends` (returned, with
  // the parser just after the name) or the end of the template (returns "").
  std::string parse_body(Body& body, std::initializer_list<const char*> ends) {
    enter();
    while (true) {
      const Token& t = peek();
      if (t.kind == TokenKind::End) {
        --depth_;
        return "";
      }
      if (t.kind == TokenKind::Text) {
        auto stmt = make(StmtKind::Text, t.offset);
        stmt->text = next().text;
        body.push_back(std::move(stmt));
      } else if (t.kind == TokenKind::OutputBegin) {
        next();
        auto stmt = make(StmtKind::Output, t.offset);
        stmt->expr = parse_tuple_or_expression();
        if (peek().kind != TokenKind::OutputEnd) unexpected("'}}'");
        next();
        body.push_back(std::move(stmt));
      } else if (t.kind == TokenKind::BlockBegin) {
        next();
        if (peek().kind != TokenKind::Name) unexpected("a statement name");
        const std::string& keyword = peek().text;
        for (const char* end : ends) {
          if (keyword == end) {
            next();
            --depth_;
            return keyword;
          }
        }
        body.push_back(parse_statement());
      } else {
        unexpected("template text or a tag");
      }
    }
  }

  std::unique_ptr<Stmt> make(StmtKind kind, size_t offset) {
    auto stmt = std::make_unique<Stmt>();
    stmt->kind = kind;
    stmt->offset = offset;
    return stmt;
  }

  std::unique_ptr<Stmt> parse_statement() {
    const Token& keyword = next();
    const size_t at = keyword.offset;
    const std::string& k = keyword.text;
    if (k == "if") return parse_if(at);
    if (k == "for") return parse_for(at);
    if (k == "set") return parse_set(at);
    if (k == "macro") return parse_macro(at);
    if (k == "call") return parse_call_block(at);
    if (k == "break" || k == "continue") {
      expect_block_end();
      if (loop_depth_ == 0) map_.fail_at(at, "'" + k + "' outside a for loop");
      return make(k == "break" ? StmtKind::Break : StmtKind::Continue, at);
    }
    if (k == "generation") {
      // transformers' {% generation %} marks assistant text; it renders its body unchanged.
      expect_block_end();
      auto stmt = make(StmtKind::If, at);
      auto yes = std::make_unique<Expr>();
      yes->value = Value::from(true);
      stmt->conditions.push_back(std::move(yes));
      stmt->bodies.emplace_back();
      close_body(stmt->bodies.back(), "endgeneration", at);
      return stmt;
    }
    map_.fail_at(at, "unknown statement '" + k + "'");
  }

  void close_body(Body& body, const char* end, size_t open) {
    if (parse_body(body, {end}) != end)
      map_.fail_at(open, std::string("block is never closed ('") + end + "' missing)");
    expect_block_end();
  }

  std::unique_ptr<Stmt> parse_if(size_t at) {
    auto stmt = make(StmtKind::If, at);
    stmt->conditions.push_back(parse_expression());
    expect_block_end();
    while (true) {
      stmt->bodies.emplace_back();
      const std::string end = parse_body(stmt->bodies.back(), {"elif", "else", "endif"});
      if (end.empty()) map_.fail_at(at, "'if' is never closed ('endif' missing)");
      if (end == "elif") {
        stmt->conditions.push_back(parse_expression());
        expect_block_end();
        continue;
      }
      expect_block_end();
      if (end == "else") {
        stmt->bodies.emplace_back();
        close_body(stmt->bodies.back(), "endif", at);
      }
      return stmt;
    }
  }

  std::unique_ptr<Stmt> parse_for(size_t at) {
    auto stmt = make(StmtKind::For, at);
    do {
      stmt->targets.push_back(expect_name());
    } while (accept_op(","));
    if (!accept_name("in")) unexpected("'in'");
    stmt->expr = parse_tuple_or_expression(TernaryPolicy::Forbid);
    if (accept_name("if")) stmt->conditions.push_back(parse_or_ternary(TernaryPolicy::Forbid));
    if (accept_name("recursive")) map_.fail_at(at, "recursive for loops are not supported");
    expect_block_end();
    stmt->bodies.emplace_back();
    ++loop_depth_;
    const std::string end = parse_body(stmt->bodies.back(), {"else", "endfor"});
    --loop_depth_;
    if (end.empty()) map_.fail_at(at, "'for' is never closed ('endfor' missing)");
    expect_block_end();
    if (end == "else") {
      stmt->bodies.emplace_back();
      close_body(stmt->bodies.back(), "endfor", at);
    }
    return stmt;
  }

  std::unique_ptr<Stmt> parse_set(size_t at) {
    auto stmt = make(StmtKind::Set, at);
    stmt->targets.push_back(expect_name());
    if (accept_op(".")) {
      stmt->attribute_target = true;
      stmt->targets.push_back(expect_name());
    } else {
      while (accept_op(",")) stmt->targets.push_back(expect_name());
    }
    if (accept_op("=")) {
      stmt->expr = parse_tuple_or_expression();
      expect_block_end();
      return stmt;
    }
    if (stmt->attribute_target || stmt->targets.size() != 1) unexpected("'='");
    expect_block_end();
    stmt->kind = StmtKind::SetBlock;
    stmt->bodies.emplace_back();
    close_body(stmt->bodies.back(), "endset", at);
    return stmt;
  }

  std::unique_ptr<Stmt> parse_macro(size_t at) {
    auto stmt = make(StmtKind::Macro, at);
    stmt->name = expect_name();
    expect_op("(");
    while (!accept_op(")")) {
      stmt->targets.push_back(expect_name());
      stmt->defaults.push_back(accept_op("=") ? parse_expression() : nullptr);
      if (!at_op(")")) expect_op(",");
    }
    expect_block_end();
    stmt->bodies.emplace_back();
    const int loops = loop_depth_;
    loop_depth_ = 0;  // a macro body is not inside the loop that defines it
    close_body(stmt->bodies.back(), "endmacro", at);
    loop_depth_ = loops;
    return stmt;
  }

  std::unique_ptr<Stmt> parse_call_block(size_t at) {
    auto stmt = make(StmtKind::CallBlock, at);
    stmt->expr = parse_expression();
    if (stmt->expr->kind != ExprKind::Call) map_.fail_at(at, "'call' needs a macro call");
    expect_block_end();
    stmt->bodies.emplace_back();
    close_body(stmt->bodies.back(), "endcall", at);
    return stmt;
  }

  // --- expressions ---
  enum class TernaryPolicy { Allow, Forbid };  // `for x in xs if c`: the `if` filters

  ExprPtr node(ExprKind kind, size_t offset) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->offset = offset;
    return e;
  }

  // `a, b` (a tuple) or one expression: the right side of `set`, `{{ }}` and a `for`'s iterable
  // (there without a ternary: `for x in xs if c` filters).
  ExprPtr parse_tuple_or_expression(TernaryPolicy ternary = TernaryPolicy::Allow) {
    const size_t at = peek().offset;
    ExprPtr first = parse_or_ternary(ternary);
    if (!at_op(",")) return first;
    auto tuple = node(ExprKind::Tuple, at);
    tuple->items.push_back(std::move(first));
    while (accept_op(",")) tuple->items.push_back(parse_or_ternary(ternary));
    return tuple;
  }

  ExprPtr parse_expression() { return parse_or_ternary(TernaryPolicy::Allow); }

  ExprPtr parse_or_ternary(TernaryPolicy ternary) {
    enter();
    ExprPtr e = parse_or();
    while (ternary == TernaryPolicy::Allow && at_name("if")) {
      auto cond = node(ExprKind::Conditional, next().offset);
      ExprPtr test = parse_or();
      ExprPtr otherwise = accept_name("else") ? parse_expression() : nullptr;
      cond->items.push_back(std::move(test));
      cond->items.push_back(std::move(e));
      cond->items.push_back(std::move(otherwise));
      e = std::move(cond);
    }
    --depth_;
    return e;
  }

  ExprPtr binary(ExprKind kind, ExprPtr left, ExprPtr right, size_t at) {
    auto e = node(kind, at);
    e->items.push_back(std::move(left));
    e->items.push_back(std::move(right));
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (at_name("or")) {
      const size_t at = next().offset;
      e = binary(ExprKind::Or, std::move(e), parse_and(), at);
    }
    return e;
  }

  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (at_name("and")) {
      const size_t at = next().offset;
      e = binary(ExprKind::And, std::move(e), parse_not(), at);
    }
    return e;
  }

  ExprPtr parse_not() {
    if (at_name("not")) {
      enter();
      auto e = node(ExprKind::Not, next().offset);
      e->items.push_back(parse_not());
      --depth_;
      return e;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    ExprPtr e = parse_math1();
    while (true) {
      const size_t at = peek().offset;
      BinaryOp op;
      if (accept_op("=="))
        op = BinaryOp::Eq;
      else if (accept_op("!="))
        op = BinaryOp::Ne;
      else if (accept_op("<"))
        op = BinaryOp::Lt;
      else if (accept_op("<="))
        op = BinaryOp::Le;
      else if (accept_op(">"))
        op = BinaryOp::Gt;
      else if (accept_op(">="))
        op = BinaryOp::Ge;
      else if (accept_name("in"))
        op = BinaryOp::In;
      else if (at_name("not") && peek(1).kind == TokenKind::Name && peek(1).text == "in") {
        next();
        next();
        op = BinaryOp::NotIn;
      } else {
        return e;
      }
      // Python chains `a < b < c`; chat templates do not, so comparisons fold left.
      e = binary(ExprKind::Binary, std::move(e), parse_math1(), at);
      e->op = op;
    }
  }

  ExprPtr parse_binary_level(int level) {
    // level 0: + -, 1: ~, 2: * / // %, 3: **
    static const std::vector<std::vector<std::pair<const char*, BinaryOp>>> kLevels = {
        {{"+", BinaryOp::Add}, {"-", BinaryOp::Sub}},
        {{"~", BinaryOp::Concat}},
        {{"*", BinaryOp::Mul},
         {"/", BinaryOp::Div},
         {"//", BinaryOp::FloorDiv},
         {"%", BinaryOp::Mod}},
        {{"**", BinaryOp::Pow}},
    };
    if (level == 4) return parse_unary();
    ExprPtr e = parse_binary_level(level + 1);
    while (true) {
      bool matched = false;
      for (const auto& [text, op] : kLevels[static_cast<size_t>(level)]) {
        if (at_op(text)) {
          const size_t at = next().offset;
          e = binary(ExprKind::Binary, std::move(e), parse_binary_level(level + 1), at);
          e->op = op;
          matched = true;
          break;
        }
      }
      if (!matched) return e;
    }
  }
  ExprPtr parse_math1() { return parse_binary_level(0); }

  ExprPtr parse_unary() {
    enter();
    ExprPtr e;
    if (at_op("-")) {
      e = node(ExprKind::Negate, next().offset);
      e->items.push_back(parse_unary_operand());
    } else if (accept_op("+")) {
      e = parse_unary_operand();
    } else {
      e = parse_postfix(parse_primary());
    }
    e = parse_filters(std::move(e));
    --depth_;
    return e;
  }
  ExprPtr parse_unary_operand() {
    enter();
    ExprPtr e = at_op("-") || at_op("+") ? parse_unary() : parse_postfix(parse_primary());
    --depth_;
    return e;
  }

  ExprPtr parse_primary() {
    const Token& t = peek();
    auto literal = [&](Value v) {
      auto e = node(ExprKind::Literal, t.offset);
      e->value = std::move(v);
      return e;
    };
    switch (t.kind) {
      case TokenKind::Name: {
        next();
        if (t.text == "true" || t.text == "True") return literal(Value::from(true));
        if (t.text == "false" || t.text == "False") return literal(Value::from(false));
        if (t.text == "none" || t.text == "None") return literal(Value::none());
        auto e = node(ExprKind::Name, t.offset);
        e->name = t.text;
        return e;
      }
      case TokenKind::String: {
        std::string text = next().text;
        while (peek().kind == TokenKind::String) text += next().text;  // "a" "b" is "ab"
        return literal(Value::from(std::move(text)));
      }
      case TokenKind::Integer: {
        next();
        try {
          return literal(Value::from(static_cast<int64_t>(std::stoll(t.text))));
        } catch (const std::exception&) {
          map_.fail_at(t.offset, "integer literal " + t.text + " is out of range");
        }
      }
      case TokenKind::Float:
        next();
        return literal(Value::from(std::stod(t.text)));
      case TokenKind::Operator:
        if (t.text == "(") {
          next();
          if (accept_op(")")) return node(ExprKind::Tuple, t.offset);  // () is an empty tuple
          ExprPtr first = parse_expression();
          if (accept_op(")")) return first;
          auto tuple = node(ExprKind::Tuple, t.offset);
          tuple->items.push_back(std::move(first));
          while (accept_op(",")) {
            if (at_op(")")) break;
            tuple->items.push_back(parse_expression());
          }
          expect_op(")");
          return tuple;
        }
        if (t.text == "[") {
          next();
          auto list = node(ExprKind::List, t.offset);
          while (!accept_op("]")) {
            list->items.push_back(parse_expression());
            if (!at_op("]")) expect_op(",");
          }
          return list;
        }
        if (t.text == "{") {
          next();
          auto dict = node(ExprKind::Dict, t.offset);
          while (!accept_op("}")) {
            dict->items.push_back(parse_expression());
            expect_op(":");
            dict->items.push_back(parse_expression());
            if (!at_op("}")) expect_op(",");
          }
          return dict;
        }
        break;
      default:
        break;
    }
    unexpected("an expression");
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      const size_t at = peek().offset;
      if (accept_op(".")) {
        auto attr = node(ExprKind::Attribute, at);
        if (peek().kind == TokenKind::Integer) {
          attr->kind = ExprKind::Item;  // `x.0` is x[0]
          auto index = node(ExprKind::Literal, peek().offset);
          index->value = Value::from(static_cast<int64_t>(std::stoll(next().text)));
          attr->items.push_back(std::move(e));
          attr->items.push_back(std::move(index));
        } else {
          attr->name = expect_name();
          attr->items.push_back(std::move(e));
        }
        e = std::move(attr);
      } else if (accept_op("[")) {
        e = parse_subscript(std::move(e), at);
      } else if (at_op("(")) {
        auto call = node(ExprKind::Call, at);
        call->items.push_back(std::move(e));
        parse_arguments(*call);
        e = std::move(call);
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr target, size_t at) {
    ExprPtr parts[3];
    int colons = 0;
    if (!at_op(":")) parts[0] = parse_expression();
    while (colons < 2 && accept_op(":")) {
      ++colons;
      if (!at_op(":") && !at_op("]")) parts[colons] = parse_expression();
    }
    expect_op("]");
    auto e = node(colons == 0 ? ExprKind::Item : ExprKind::Slice, at);
    e->items.push_back(std::move(target));
    e->items.push_back(std::move(parts[0]));
    if (colons > 0) {
      e->items.push_back(std::move(parts[1]));
      e->items.push_back(std::move(parts[2]));
    }
    return e;
  }

  // `(a, b, key=c)` into e.items (after those already there) and e.keywords.
  void parse_arguments(Expr& e) {
    expect_op("(");
    while (!accept_op(")")) {
      if (peek().kind == TokenKind::Name && peek(1).kind == TokenKind::Operator &&
          peek(1).text == "=") {
        std::string key = next().text;
        next();
        e.keywords.emplace_back(std::move(key), parse_expression());
      } else {
        if (!e.keywords.empty())
          map_.fail_at(peek().offset, "positional argument after a keyword argument");
        e.items.push_back(parse_expression());
      }
      if (!at_op(")")) expect_op(",");
    }
  }

  ExprPtr parse_filters(ExprPtr e) {
    while (true) {
      const size_t at = peek().offset;
      if (accept_op("|")) {
        auto filter = node(ExprKind::Filter, at);
        filter->name = expect_name();
        filter->items.push_back(std::move(e));
        if (at_op("(")) parse_arguments(*filter);
        e = parse_postfix(std::move(filter));
      } else if (accept_name("is")) {
        auto test = node(ExprKind::Test, at);
        test->negated = accept_name("not");
        test->name = expect_name();
        test->items.push_back(std::move(e));
        if (at_op("(")) {
          parse_arguments(*test);
        } else if (at_op("[") || at_op("{") || peek().kind == TokenKind::String ||
                   peek().kind == TokenKind::Integer || peek().kind == TokenKind::Float ||
                   (peek().kind == TokenKind::Name && !at_name("and") && !at_name("or") &&
                    !at_name("else") && !at_name("if") && !at_name("in") && !at_name("not"))) {
          test->items.push_back(parse_postfix(parse_primary()));  // `x is sameas false`
        }
        e = std::move(test);
      } else {
        return e;
      }
    }
  }

  const std::vector<Token>& tokens_;
  const SourceMap& map_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Program parse_tokens(const std::vector<Token>& tokens, const SourceMap& map) {
  return Parser(tokens, map).run();
}

}  // namespace ll::jinja
