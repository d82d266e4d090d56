// Chat templates: see chat_template.h. Three parts: a Jinja lexer that reduces a template to a
// canonical list of pieces (so that formatting differences do not matter), the table of known
// templates matched against it, and the native renderers.
#include "tokenizer/chat_template.h"

#include <algorithm>
#include <array>
#include <optional>
#include <set>

#include "core/error.h"
#include "core/file.h"
#include "tokenizer/utf8.h"

namespace ll {

namespace {

constexpr std::string_view kOrigin = "chat_template";

// ---------------------------------------------------------------------------------------------
// The known templates.

// Meta-Llama-3-8B-Instruct as first published: appends the assistant header even when
// add_generation_prompt is false (the copy in ../shared/data/llama3-tokenizer has it).
constexpr std::string_view kLlama3Original =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | "
    "trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% "
    "endif %}{{ content }}{% endfor %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}";

// The same after Meta's fix: the header only with add_generation_prompt.
constexpr std::string_view kLlama3 =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | "
    "trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% "
    "endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

// ChatML as in the transformers chat-templating guide.
constexpr std::string_view kChatML =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|im_start|>assistant\n' }}{% endif %}";

// TRL's copy, which first defaults add_generation_prompt to false.
constexpr std::string_view kChatMLDefaulted =
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% "
    "endif %}{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|im_start|>assistant\n' }}{% endif %}";

// Qwen2 / SmolLM2 style: a default system message when the first message is not one.
// \x01 stands for that message, captured from the template.
constexpr char kCapture = '\x01';
constexpr std::string_view kChatMLDefaultSystem =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\n\x01<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + "
    "'\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt "
    "%}{{ '<|im_start|>assistant\n' }}{% endif %}";

using PromptRule = ChatTemplate::PromptRule;

struct KnownTemplate {
  std::string_view name;
  ChatTemplateKind kind;
  std::string_view source;
  PromptRule prompt_rule;
};

constexpr std::array<KnownTemplate, 5> kKnownTemplates = {{
    {"llama3-original", ChatTemplateKind::Llama3, kLlama3Original, PromptRule::Always},
    {"llama3", ChatTemplateKind::Llama3, kLlama3, PromptRule::OnRequest},
    {"chatml", ChatTemplateKind::ChatML, kChatML, PromptRule::OnRequest},
    {"chatml", ChatTemplateKind::ChatML, kChatMLDefaulted, PromptRule::OnRequest},
    {"chatml-default-system", ChatTemplateKind::ChatML, kChatMLDefaultSystem,
     PromptRule::OnRequest},
}};

// ---------------------------------------------------------------------------------------------
// Lexing a template into canonical pieces.

enum class PieceKind { Text, Output, Statement };  // text, {{ ... }}, {% ... %}

struct Piece {
  PieceKind kind;
  std::string value;  // Text: the literal output; tags: canonical tokens joined by spaces
  bool operator==(const Piece&) const = default;
};

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// A string literal written back in one canonical spelling.
std::string quote(std::string_view value) {
  std::string out = "'";
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\'':
        out += "\\'";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        out.push_back(c);
    }
  }
  out += "'";
  return out;
}

std::string unquote_canonical(std::string_view body) {  // inverse of quote() without the quotes
  std::string out;
  for (size_t i = 0; i < body.size(); ++i) {
    if (body[i] == '\\' && i + 1 < body.size()) {
      const char c = body[++i];
      out.push_back(c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c);
    } else {
      out.push_back(body[i]);
    }
  }
  return out;
}

class TemplateLexer {
 public:
  explicit TemplateLexer(std::string_view source) : src_(source) {}

  // Throws a plain message (the caller adds the origin).
  std::vector<Piece> run() {
    size_t pos = 0;
    while (true) {
      const size_t open = find_open(pos);
      std::string text(
          src_.substr(pos, open == std::string_view::npos ? std::string_view::npos : open - pos));
      apply_after(text);
      if (open == std::string_view::npos) {
        add_text(text);
        break;
      }
      const char type = src_[open + 1];  // '{', '%' or '#'
      size_t p = open + 2;
      const char control = p < src_.size() ? src_[p] : '\0';
      if (control == '-') {
        while (!text.empty() && is_space(text.back())) text.pop_back();
        ++p;
      } else if (control == '+') {
        ++p;
      } else if (type != '{') {
        lstrip_block(text, pos);
      }
      add_text(text);
      pos = type == '#' ? skip_comment(p) : lex_tag(type, p);
    }
    return std::move(pieces_);
  }

 private:
  enum class After { Nothing, StripAll, TrimNewline };

  size_t find_open(size_t from) const {
    for (size_t i = from; i + 1 < src_.size(); ++i) {
      if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) {
        return i;
      }
    }
    return std::string_view::npos;
  }

  // `-%}` strips all following whitespace; transformers' trim_blocks drops one newline after
  // a block or comment tag.
  void apply_after(std::string& text) const {
    if (after_ == After::StripAll) {
      size_t i = 0;
      while (i < text.size() && is_space(text[i])) ++i;
      text.erase(0, i);
    } else if (after_ == After::TrimNewline && !text.empty() && text[0] == '\n') {
      text.erase(0, 1);
    }
  }

  // transformers' lstrip_blocks: spaces and tabs between a line start and a block tag go.
  void lstrip_block(std::string& text, size_t text_start) const {
    const size_t newline = text.rfind('\n');
    const size_t line_start = newline == std::string::npos ? 0 : newline + 1;
    if (newline == std::string::npos && text_start != 0) return;  // not at a line start
    for (size_t i = line_start; i < text.size(); ++i) {
      if (text[i] != ' ' && text[i] != '\t') return;
    }
    text.erase(line_start);
  }

  void add_text(const std::string& text) {
    if (text.empty()) return;
    if (!pieces_.empty() && pieces_.back().kind == PieceKind::Text) {
      pieces_.back().value += text;
    } else {
      pieces_.push_back({PieceKind::Text, text});
    }
  }

  size_t skip_comment(size_t p) {
    const size_t close = src_.find("#}", p);
    if (close == std::string_view::npos) throw std::string("unterminated {# comment");
    const bool strip = close > p && src_[close - 1] == '-';
    after_ = strip ? After::StripAll : After::TrimNewline;
    return close + 2;
  }

  size_t lex_tag(char type, size_t p) {
    const std::string_view closing = type == '{' ? "}}" : "%}";
    std::string canonical;
    auto add_token = [&canonical](std::string_view token) {
      if (!canonical.empty()) canonical.push_back(' ');
      canonical.append(token);
    };
    while (true) {
      while (p < src_.size() && is_space(src_[p])) ++p;
      if (p >= src_.size()) throw std::string("unterminated tag");
      if ((src_[p] == '-' || src_[p] == '+') && src_.substr(p + 1, 2) == closing) {
        after_ = src_[p] == '-' ? After::StripAll : After::Nothing;
        p += 3;
        break;
      }
      if (src_.substr(p, 2) == closing) {
        after_ = type == '%' ? After::TrimNewline : After::Nothing;
        p += 2;
        break;
      }
      const char c = src_[p];
      if (c == '\'' || c == '"') {
        std::string value;
        size_t i = p + 1;
        for (; i < src_.size() && src_[i] != c; ++i) {
          if (src_[i] == '\\' && i + 1 < src_.size()) {
            const char e = src_[++i];
            switch (e) {
              case 'n':
                value.push_back('\n');
                break;
              case 't':
                value.push_back('\t');
                break;
              case 'r':
                value.push_back('\r');
                break;
              case '\\':
              case '\'':
              case '"':
                value.push_back(e);
                break;
              default:
                value.push_back('\\');
                value.push_back(e);  // as Python keeps it
            }
          } else {
            value.push_back(src_[i]);
          }
        }
        if (i >= src_.size()) throw std::string("unterminated string literal");
        add_token(quote(value));
        p = i + 1;
      } else if (is_name_start(c) || is_digit(c)) {
        size_t i = p;
        while (i < src_.size() &&
               (is_name_start(src_[i]) || is_digit(src_[i]) || (is_digit(c) && src_[i] == '.'))) {
          ++i;
        }
        add_token(src_.substr(p, i - p));
        p = i;
      } else {
        static constexpr std::array<std::string_view, 6> kTwoChar = {
            "==", "!=", "<=", ">=", "//", "**"};
        const std::string_view two = src_.substr(p, 2);
        if (std::find(kTwoChar.begin(), kTwoChar.end(), two) != kTwoChar.end()) {
          add_token(two);
          p += 2;
        } else if (std::string_view("+-*/%~()[]{}.,:|=<>!").find(c) != std::string_view::npos) {
          add_token(src_.substr(p, 1));
          p += 1;
        } else {
          throw std::string("unexpected character '") + c + "' in a tag";
        }
      }
    }
    pieces_.push_back({type == '{' ? PieceKind::Output : PieceKind::Statement, canonical});
    return p;
  }

  std::string_view src_;
  std::vector<Piece> pieces_;
  After after_ = After::Nothing;
};

std::vector<Piece> lex_template(std::string_view source) {
  return TemplateLexer(source).run();
}

std::string show_piece(const Piece& piece) {
  std::string shown = piece.kind == PieceKind::Output      ? "{{ " + piece.value + " }}"
                      : piece.kind == PieceKind::Statement ? "{% " + piece.value + " %}"
                                                           : quote(piece.value);
  if (shown.size() > 80) shown = shown.substr(0, 77) + "...";
  return shown;
}

// Matches `actual` against a known template; a pattern piece holding kCapture matches any
// single string literal with the same text around it, and that text goes to `captured`.
bool match_pieces(const std::vector<Piece>& pattern, const std::vector<Piece>& actual,
                  std::string& captured) {
  if (pattern.size() != actual.size()) return false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const Piece& want = pattern[i];
    const Piece& got = actual[i];
    const size_t hole = want.value.find(kCapture);
    if (hole == std::string::npos) {
      if (!(want == got)) return false;
      continue;
    }
    const std::string_view prefix = std::string_view(want.value).substr(0, hole);
    const std::string_view suffix = std::string_view(want.value).substr(hole + 1);
    const std::string_view value = got.value;
    if (got.kind != want.kind || value.size() < prefix.size() + suffix.size() ||
        !value.starts_with(prefix) || !value.ends_with(suffix)) {
      return false;
    }
    const std::string_view middle =
        value.substr(prefix.size(), value.size() - prefix.size() - suffix.size());
    for (size_t k = 0; k < middle.size(); ++k) {  // must stay inside the one literal
      if (middle[k] == '\\') {
        ++k;
      } else if (middle[k] == '\'') {
        return false;
      }
    }
    captured = unquote_canonical(middle);
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Python's str.strip(), which Jinja's `trim` filter is: Unicode whitespace at both ends.

// Python's str.isspace(): White_Space (utf8.h) and U+001C..U+001F, the information separators,
// which Python counts as whitespace too (bidirectional class B or S).
bool is_python_space(char32_t cp) {
  return utf8::is_white_space(cp) || (cp >= 0x1C && cp <= 0x1F);
}

// Whether the `length` bytes at text[pos] are one whitespace code point; `length` comes from
// utf8::sequence_length or last_sequence_length, 0 for ill-formed bytes. The text came from a
// JSON parser, so it is valid UTF-8; were it not, ill-formed bytes would be no space, and
// stripping would stop at them.
bool is_python_space_at(std::string_view text, size_t pos, size_t length) {
  return length > 0 && is_python_space(utf8::decode_at(text, pos, length));
}

std::string_view python_strip(std::string_view text) {
  size_t begin = 0;
  while (begin < text.size()) {
    const size_t length = utf8::sequence_length(text, begin);
    if (!is_python_space_at(text, begin, length)) break;
    begin += length;
  }
  size_t end = text.size();
  while (end > begin) {  // code points from the end, never back into the stripped start
    const size_t length = utf8::last_sequence_length(text.substr(begin, end - begin));
    if (!is_python_space_at(text, end - length, length)) break;
    end -= length;
  }
  return text.substr(begin, end - begin);
}

// tokenizer_config.json stores special tokens as a string or as {"content": ..., ...}.
std::string special_token(const nlohmann::json& config, const char* key) {
  const auto it = config.find(key);
  if (it == config.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    const auto content = it->find("content");
    if (content != it->end() && content->is_string()) return content->get<std::string>();
  }
  return "";
}

}  // namespace

// -----------------------------------------------------------------------------------------------

ChatTemplate ChatTemplate::from_tokenizer_config(const nlohmann::json& config,
                                                 const std::string& origin) {
  check(config.is_object(), kOrigin, origin + ": tokenizer_config.json is not a JSON object");
  const auto found = config.find("chat_template");
  check(found != config.end() && !found->is_null(), kOrigin,
        origin +
            ": no chat_template (llama-lora renders conversations with the model's chat "
            "template; add one, e.g. from the instruct model's tokenizer_config.json)");
  std::string source;
  if (found->is_string()) {
    source = found->get<std::string>();
  } else if (found->is_array()) {  // named templates: transformers uses "default"
    for (const auto& entry : *found) {
      if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
          entry["template"].is_string()) {
        source = entry["template"].get<std::string>();
      }
    }
    check(!source.empty(), kOrigin, origin + ": chat_template has no template named 'default'");
  } else {
    fail(kOrigin, origin + ": chat_template must be a string");
  }

  ChatTemplate result;
  result.bos_token_ = special_token(config, "bos_token");
  result.eos_token_ = special_token(config, "eos_token");

  std::vector<Piece> pieces;
  try {
    pieces = lex_template(source);
  } catch (const std::string& problem) {
    fail(kOrigin,
         origin + ": this chat template is not supported (cannot read it: " + problem + ")");
  }

  for (const KnownTemplate& known : kKnownTemplates) {
    std::string captured;
    if (!match_pieces(lex_template(known.source), pieces, captured)) continue;
    result.kind_ = known.kind;
    result.variant_ = std::string(known.name);
    result.prompt_rule_ = known.prompt_rule;
    result.trim_content_ = known.kind == ChatTemplateKind::Llama3;
    result.bos_first_ = known.kind == ChatTemplateKind::Llama3;
    result.has_default_system_ = known.source.find(kCapture) != std::string_view::npos;
    result.default_system_ = captured;
    return result;
  }

  // Not a known template: accept it by its markers only if every tag in it is a tag of a known
  // template of that family, so that nothing in it is beyond what we render.
  const bool llama3 = source.find("<|start_header_id|>") != std::string::npos &&
                      source.find("<|eot_id|>") != std::string::npos;
  const bool chatml = source.find("<|im_start|>") != std::string::npos &&
                      source.find("<|im_end|>") != std::string::npos;
  if (!llama3 && !chatml) {
    fail(kOrigin, origin +
                      ": this chat template is not supported (neither a Llama-3 nor a "
                      "ChatML template; llama-lora renders those two families)");
  }
  const ChatTemplateKind kind = llama3 ? ChatTemplateKind::Llama3 : ChatTemplateKind::ChatML;
  std::set<std::pair<PieceKind, std::string>> known_tags;
  for (const KnownTemplate& known : kKnownTemplates) {
    if (known.kind != kind || known.source.find(kCapture) != std::string_view::npos) continue;
    for (const Piece& piece : lex_template(known.source))
      known_tags.emplace(piece.kind, piece.value);
  }
  const std::string family = llama3 ? "Llama-3" : "ChatML";
  bool mentions_prompt_flag = false, mentions_trim = false, mentions_bos = false;
  bool appends_header = false;
  for (const Piece& piece : pieces) {
    if (piece.kind == PieceKind::Text || !known_tags.contains({piece.kind, piece.value})) {
      fail(kOrigin, origin + ": this chat template is not supported (it has the " + family +
                        " markers but differs from the known " + family + " templates at " +
                        show_piece(piece) + "; llama-lora renders the Llama-3-Instruct and " +
                        "ChatML templates)");
    }
    mentions_prompt_flag |= piece.value.find("add_generation_prompt") != std::string::npos;
    mentions_trim |= piece.value.find("trim") != std::string::npos;
    mentions_bos |= piece.value.find("bos_token") != std::string::npos;
    appends_header |=
        piece.kind == PieceKind::Output && piece.value.find("assistant") != std::string::npos;
  }
  result.kind_ = kind;
  result.variant_ = llama3 ? "llama3-like" : "chatml-like";
  result.prompt_rule_ = !appends_header        ? PromptRule::Never
                        : mentions_prompt_flag ? PromptRule::OnRequest
                                               : PromptRule::Always;
  result.trim_content_ = mentions_trim;
  result.bos_first_ = mentions_bos;
  return result;
}

ChatTemplate ChatTemplate::load(const std::filesystem::path& path) {
  const std::filesystem::path file =
      std::filesystem::is_directory(path) ? path / "tokenizer_config.json" : path;
  check(std::filesystem::exists(file), kOrigin,
        file.string() +
            ": not found (a model or tokenizer folder needs a tokenizer_config.json "
            "with the chat template)");
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(read_file(file));
  } catch (const nlohmann::json::exception& error) {
    fail(kOrigin, file.string() + ": not valid JSON (" + error.what() + ")");
  }
  return from_tokenizer_config(config, file.string());
}

std::string_view ChatTemplate::end_of_turn() const {
  return kind_ == ChatTemplateKind::Llama3 ? "<|eot_id|>" : "<|im_end|>";
}

RenderedChat ChatTemplate::render(std::span<const ChatMessage> messages,
                                  GenerationPrompt prompt) const {
  RenderedChat out;
  std::string& text = out.text;
  const std::string_view eot = end_of_turn();
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& message = messages[i];
    const std::string_view content =
        trim_content_ ? python_strip(message.content) : std::string_view(message.content);
    size_t begin = 0;
    if (kind_ == ChatTemplateKind::Llama3) {
      // bos_token + '<|start_header_id|>' + role + '<|end_header_id|>\n\n' + content|trim + eot
      if (i == 0 && bos_first_) text += bos_token_;
      text += "<|start_header_id|>";
      text += message.role;
      text += "<|end_header_id|>\n\n";
      begin = text.size();
      text += content;
      text += eot;
    } else {
      // '<|im_start|>' + role + '\n' + content + '<|im_end|>' + '\n'
      if (i == 0 && has_default_system_ && message.role != "system") {
        text += "<|im_start|>system\n" + default_system_ + "<|im_end|>\n";
      }
      text += "<|im_start|>";
      text += message.role;
      text += "\n";
      begin = text.size();
      text += content;
      text += eot;
    }
    if (message.role == "assistant") out.assistant_ranges.push_back({begin, text.size()});
    if (kind_ == ChatTemplateKind::ChatML) text += "\n";
  }
  const bool header = prompt_rule_ == PromptRule::Always ||
                      (prompt_rule_ == PromptRule::OnRequest && prompt == GenerationPrompt::Add);
  if (header) {
    text += kind_ == ChatTemplateKind::Llama3 ? "<|start_header_id|>assistant<|end_header_id|>\n\n"
                                              : "<|im_start|>assistant\n";
  }
  return out;
}

std::string_view chat_template_source(ChatTemplateKind kind) {
  return kind == ChatTemplateKind::Llama3 ? kLlama3 : kChatML;
}

std::string_view llama3_original_chat_template_source() { return kLlama3Original; }

}  // namespace ll
