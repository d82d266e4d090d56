// The Jinja lexer: template text and tags into tokens, with the whitespace rules transformers
// configures (trim_blocks: the first newline after a block or comment tag goes; lstrip_blocks:
// spaces and tabs from the start of a line to a block or comment tag go). Inside a tag, `}}` or
// `%}` ends it only outside brackets and strings, as in Jinja, so `{{ "}}" }}` prints "}}".
#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "tokenizer/jinja/jinja_ast.h"

namespace ll::jinja {

SourceMap::SourceMap(std::string name_, std::string_view source) : name(std::move(name_)) {
  line_starts.push_back(0);
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\n') line_starts.push_back(i + 1);
  }
}

std::string SourceMap::where(size_t offset) const {
  const auto it = std::upper_bound(line_starts.begin(), line_starts.end(), offset);
  const size_t line = static_cast<size_t>(it - line_starts.begin());
  const size_t column = offset - line_starts[line - 1] + 1;
  return name + ":" + std::to_string(line) + ":" + std::to_string(column);
}

void SourceMap::fail_at(size_t offset, const std::string& what) const {
  fail("jinja", where(offset) + ": " + what);
}

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
bool is_name_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_';
}
bool is_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}

enum class Tag { Output, Block, Comment };

class Lexer {
 public:
  Lexer(std::string_view source, const SourceMap& map) : src_(source), map_(map) {}

  std::vector<Token> run() {
    bool line_starting = true;  // the text that follows begins a line (Jinja's lstrip rule)
    while (pos_ < src_.size()) {
      const size_t tag = find_tag(pos_);
      std::string text(src_.substr(pos_, tag - pos_));
      if (tag == src_.size()) {
        push_text(std::move(text), pos_);
        break;
      }
      const Tag kind = src_[tag + 1] == '{'   ? Tag::Output
                       : src_[tag + 1] == '%' ? Tag::Block
                                              : Tag::Comment;
      const char modifier = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
      if (modifier == '-') {
        while (!text.empty() && is_space(text.back())) text.pop_back();
      } else if (modifier != '+' && kind != Tag::Output) {
        // lstrip_blocks: only whitespace between the line's start and the tag.
        const size_t line_start = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
        if (line_start > 0 || line_starting) {
          bool blank = true;
          for (size_t i = line_start; i < text.size(); ++i)
            blank = blank && (text[i] == ' ' || text[i] == '\t');
          if (blank) text.resize(line_start);
        }
      }
      push_text(std::move(text), pos_);
      pos_ = tag + 2 + (modifier == '-' || modifier == '+' ? 1 : 0);
      char close_modifier = '\0';
      if (kind == Tag::Comment) {
        close_modifier = skip_comment(tag);
      } else {
        tokens_.push_back(
            {kind == Tag::Output ? TokenKind::OutputBegin : TokenKind::BlockBegin, "", tag});
        close_modifier = lex_tag(kind, tag);
      }
      const size_t close_end = pos_;
      if (close_modifier == '-') {
        while (pos_ < src_.size() && is_space(src_[pos_])) ++pos_;
      } else if (close_modifier != '+' && kind != Tag::Output && pos_ < src_.size() &&
                 src_[pos_] == '\n') {
        ++pos_;  // trim_blocks
      }
      line_starting = pos_ > close_end ? src_[pos_ - 1] == '\n' : false;
    }
    tokens_.push_back({TokenKind::End, "", src_.size()});
    return std::move(tokens_);
  }

 private:
  size_t find_tag(size_t from) const {
    for (size_t i = from; i + 1 < src_.size(); ++i) {
      if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#'))
        return i;
    }
    return src_.size();
  }

  void push_text(std::string text, size_t offset) {
    if (!text.empty()) tokens_.push_back({TokenKind::Text, std::move(text), offset});
  }

  // Returns the close tag's modifier ('-', '+' or '\0') and leaves pos_ after `#}`.
  char skip_comment(size_t open) {
    const size_t close = src_.find("#}", pos_);
    if (close == std::string_view::npos)
      map_.fail_at(open, "comment is never closed ('#}' missing)");
    pos_ = close + 2;
    const char before = close > 0 ? src_[close - 1] : '\0';
    return before == '-' || before == '+' ? before : '\0';
  }

  // Tokens of one `{{ ... }}` or `{% ... %}`; returns the close modifier, pos_ after the close.
  char lex_tag(Tag kind, size_t open) {
    const char closer = kind == Tag::Output ? '}' : '%';
    int depth = 0;  // open brackets: `}}` inside `{{ {'a': {}} }}` does not close the tag
    while (true) {
      while (pos_ < src_.size() && is_space(src_[pos_])) ++pos_;
      if (pos_ >= src_.size()) map_.fail_at(open, "tag is never closed");
      const char c = src_[pos_];
      if (depth == 0) {
        const char modifier = c == '-' || c == '+' ? c : '\0';
        const size_t at = pos_ + (modifier ? 1 : 0);
        if (src_.substr(at, 2) == std::string{closer, '}'}) {
          tokens_.push_back(
              {kind == Tag::Output ? TokenKind::OutputEnd : TokenKind::BlockEnd, "", pos_});
          pos_ = at + 2;
          return modifier;
        }
      }
      const size_t start = pos_;
      if (is_name_start(c)) {
        while (pos_ < src_.size() && is_name_char(src_[pos_])) ++pos_;
        tokens_.push_back({TokenKind::Name, std::string(src_.substr(start, pos_ - start)), start});
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        lex_number(start);
      } else if (c == '\'' || c == '"') {
        lex_string(start);
      } else {
        static const char* const kOperators[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*",
                                                 "/",  "%",  "~",  "<",  ">",  "=",  "(", ")", "[",
                                                 "]",  "{",  "}",  ",",  ".",  ":",  "|"};
        std::string op;
        for (const char* candidate : kOperators) {
          if (src_.substr(pos_, std::strlen(candidate)) == candidate) {
            op = candidate;
            break;
          }
        }
        if (op.empty()) map_.fail_at(pos_, std::string("unexpected character '") + c + "'");
        if (op == "(" || op == "[" || op == "{") ++depth;
        if ((op == ")" || op == "]" || op == "}") && depth > 0) --depth;
        pos_ += op.size();
        tokens_.push_back({TokenKind::Operator, op, start});
      }
    }
  }

  void lex_number(size_t start) {
    while (pos_ < src_.size() &&
           (std::isdigit(static_cast<unsigned char>(src_[pos_])) || src_[pos_] == '_'))
      ++pos_;
    bool real = false;
    if (pos_ + 1 < src_.size() && src_[pos_] == '.' &&
        std::isdigit(static_cast<unsigned char>(src_[pos_ + 1]))) {
      real = true;
      ++pos_;
      while (pos_ < src_.size() &&
             (std::isdigit(static_cast<unsigned char>(src_[pos_])) || src_[pos_] == '_'))
        ++pos_;
    }
    if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      size_t e = pos_ + 1;
      if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
      if (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) {
        real = true;
        pos_ = e;
        while (pos_ < src_.size() && std::isdigit(static_cast<unsigned char>(src_[pos_]))) ++pos_;
      }
    }
    std::string digits;
    for (char ch : src_.substr(start, pos_ - start)) {
      if (ch != '_') digits += ch;
    }
    tokens_.push_back({real ? TokenKind::Float : TokenKind::Integer, digits, start});
  }

  void lex_string(size_t start) {
    const char quote = src_[pos_++];
    std::string value;
    while (true) {
      if (pos_ >= src_.size()) map_.fail_at(start, "string literal is never closed");
      const char c = src_[pos_++];
      if (c == quote) break;
      if (c != '\\' || pos_ >= src_.size()) {
        value += c;
        continue;
      }
      const char e = src_[pos_++];
      switch (e) {
        case 'n':
          value += '\n';
          break;
        case 't':
          value += '\t';
          break;
        case 'r':
          value += '\r';
          break;
        case '\\':
          value += '\\';
          break;
        case '\'':
          value += '\'';
          break;
        case '"':
          value += '"';
          break;
        case '\n':
          break;  // a backslash-newline continues the literal
        case 'u':
        case 'x': {
          const size_t n = e == 'u' ? 4 : 2;
          if (pos_ + n > src_.size()) map_.fail_at(pos_ - 2, "truncated escape in string literal");
          const std::string hex(src_.substr(pos_, n));
          if (hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
            map_.fail_at(pos_ - 2,
                         "bad escape \\" + std::string(1, e) + hex + " in string literal");
          }
          pos_ += n;
          std::u32string cp(1, static_cast<char32_t>(std::stoul(hex, nullptr, 16)));
          value += encode_utf8(cp);
          break;
        }
        default:  // Python keeps unknown escapes as written
          value += '\\';
          value += e;
      }
    }
    tokens_.push_back({TokenKind::String, std::move(value), start});
  }

  std::string_view src_;
  const SourceMap& map_;
  size_t pos_ = 0;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source, const SourceMap& map) {
  return Lexer(source, map).run();
}

}  // namespace ll::jinja
