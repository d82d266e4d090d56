// See pretokenizer.h.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/pretokenizer.h"

#include <pcre2.h>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace ll {

namespace {

pcre2_code* as_code(void* code) {
  return static_cast<pcre2_code*>(code);
}

std::string pcre2_message(int error_code) {
  PCRE2_UCHAR buffer[256];
  const int length = pcre2_get_error_message(error_code, buffer, sizeof buffer);
  if (length < 0) return "PCRE2 error " + std::to_string(error_code);
  return std::string(reinterpret_cast<const char*>(buffer), static_cast<size_t>(length));
}

// The Unicode White_Space set as a class body. `\s` in Oniguruma (what tokenizers compiles
// patterns with) is exactly this set; PCRE2's UCP `\s` adds U+180E (Mongolian vowel
// separator, no longer White_Space since Unicode 6.3), which would split text around it
// differently.
constexpr std::string_view kWhiteSpaceClass =
    R"(\t-\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

// Rewrites `\s` and `\S` into explicit classes of kWhiteSpaceClass (inside a character
// class `\s` becomes its body; `\S` there has no such rewrite and keeps PCRE2's meaning).
// Escapes, \Q...\E quoting and POSIX [:classes:] are stepped over so that only real
// `\s`/`\S` escapes change.
std::string translate_pattern(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 64);
  bool in_class = false;
  size_t i = 0;
  while (i < pattern.size()) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char next = pattern[i + 1];
      if (next == 'Q') {  // \Q...\E: literal text, copied as is
        const size_t end = pattern.find("\\E", i + 2);
        const size_t stop = end == std::string_view::npos ? pattern.size() : end + 2;
        out.append(pattern.substr(i, stop - i));
        i = stop;
        continue;
      }
      if (next == 's') {
        out += in_class ? std::string(kWhiteSpaceClass) : "[" + std::string(kWhiteSpaceClass) + "]";
      } else if (next == 'S' && !in_class) {
        out += "[^" + std::string(kWhiteSpaceClass) + "]";
      } else {
        out.append(pattern.substr(i, 2));
      }
      i += 2;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      ++i;
      // A ']' right after '[' or '[^' is a literal member, not the end of the class.
      if (i < pattern.size() && pattern[i] == '^') out += pattern[i++];
      if (i < pattern.size() && pattern[i] == ']') out += pattern[i++];
      continue;
    }
    if (in_class && c == '[' && i + 1 < pattern.size() && pattern[i + 1] == ':') {
      const size_t end = pattern.find(":]", i + 2);
      const size_t stop = end == std::string_view::npos ? pattern.size() : end + 2;
      out.append(pattern.substr(i, stop - i));
      i = stop;
      continue;
    }
    if (in_class && c == ']') in_class = false;
    out += c;
    ++i;
  }
  return out;
}

}  // namespace

SplitScratch::SplitScratch() : match_data_(pcre2_match_data_create(1, nullptr)) {
  if (!match_data_) throw std::bad_alloc();
}

SplitScratch::~SplitScratch() {
  pcre2_match_data_free(static_cast<pcre2_match_data*>(match_data_));
}

SplitRegex::SplitRegex(const std::string& pattern, Syntax syntax, const std::string& origin) {
  // UCP: \s, \w, \d and POSIX classes follow Unicode properties, as in Oniguruma.
  uint32_t options = PCRE2_UTF | PCRE2_UCP;
  if (syntax == Syntax::Literal) options = PCRE2_UTF | PCRE2_LITERAL;
  const std::string compiled = syntax == Syntax::Literal ? pattern : translate_pattern(pattern);
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(compiled.data()), compiled.size(),
                                   options, &error_code, &error_offset, nullptr);
  if (!code) {
    fail("tokenizer", origin + ": regex '" + pattern + "' does not compile at offset " +
                          std::to_string(error_offset) + ": " + pcre2_message(error_code));
  }
  code_ = code;
  // JIT is several times faster; a PCRE2 built without it (or a platform it does not
  // support) answers with an error and we keep the interpreter.
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
}

SplitRegex::SplitRegex(SplitRegex&& other) noexcept : code_(other.code_), jit_(other.jit_) {
  other.code_ = nullptr;
}

SplitRegex& SplitRegex::operator=(SplitRegex&& other) noexcept {
  if (this != &other) {
    pcre2_code_free(as_code(code_));
    code_ = other.code_;
    jit_ = other.jit_;
    other.code_ = nullptr;
  }
  return *this;
}

SplitRegex::~SplitRegex() {
  pcre2_code_free(as_code(code_));
}

void SplitRegex::split(std::string_view subject, uint32_t base, SplitScratch& scratch,
                       std::vector<ByteRange>& out) const {
  auto* match_data = static_cast<pcre2_match_data*>(scratch.match_data());
  const auto* data = reinterpret_cast<PCRE2_SPTR>(subject.data());
  const size_t size = subject.size();
  size_t start = 0;
  size_t previous = 0;  // end of the last piece emitted
  while (start <= size) {
    // The subject was validated as UTF-8 before (PCRE2_NO_UTF_CHECK is only safe then).
    int rc = jit_ ? pcre2_jit_match(as_code(code_), data, size, start, 0, match_data, nullptr)
                  : pcre2_match(as_code(code_), data, size, start, PCRE2_NO_UTF_CHECK, match_data,
                                nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      // The JIT's default 32 KiB stack ran out; the interpreter keeps its state on the heap.
      rc = pcre2_match(as_code(code_), data, size, start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                       match_data, nullptr);
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) fail("tokenizer", "pre-tokenizer regex failed: " + pcre2_message(rc));
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match_data);
    const size_t match_begin = ovector[0];
    const size_t match_end = ovector[1];
    if (match_end <= match_begin) {
      // An empty match splits nothing (tokenizers drops empty pieces); step over one
      // character and search again, as Oniguruma's iterator does.
      if (match_begin >= size) break;
      const size_t step = utf8::sequence_length(subject, match_begin);
      start = match_begin + (step ? step : 1);
      continue;
    }
    if (match_begin > previous) {
      out.emplace_back(base + static_cast<uint32_t>(previous),
                       base + static_cast<uint32_t>(match_begin));
    }
    out.emplace_back(base + static_cast<uint32_t>(match_begin),
                     base + static_cast<uint32_t>(match_end));
    previous = match_end;
    start = match_end;
  }
  if (previous < size) {
    out.emplace_back(base + static_cast<uint32_t>(previous), base + static_cast<uint32_t>(size));
  }
}

void PreTokenizer::split(std::string_view text, uint32_t begin, uint32_t end, SplitScratch& scratch,
                         std::vector<Piece>& out) const {
  uint32_t pos = begin;
  while (pos < end) {
    const std::string_view rest = text.substr(pos, end - pos);
    const auto valid = static_cast<uint32_t>(utf8::valid_prefix_length(rest));
    if (valid > 0) split_valid(text, pos, pos + valid, scratch, out);
    pos += valid;
    if (pos < end) {
      const auto invalid =
          static_cast<uint32_t>(utf8::invalid_run_length(text.substr(0, end), pos));
      out.push_back(Piece{pos, pos + invalid, false});
      pos += invalid;
    }
  }
}

void PreTokenizer::split_valid(std::string_view text, uint32_t begin, uint32_t end,
                               SplitScratch& scratch, std::vector<Piece>& out) const {
  std::vector<ByteRange>& current = scratch.ranges_a;
  std::vector<ByteRange>& next = scratch.ranges_b;
  current.clear();
  current.emplace_back(begin, end);
  for (const SplitRegex& regex : splits) {
    next.clear();
    for (const auto& [b, e] : current) regex.split(text.substr(b, e - b), b, scratch, next);
    current.swap(next);
  }
  for (const ByteRange& range : current) byte_level_step(text, range, scratch, out);
}

void PreTokenizer::byte_level_step(std::string_view text, ByteRange range, SplitScratch& scratch,
                                   std::vector<Piece>& out) const {
  const auto [begin, end] = range;
  // tokenizers prepends the space to every piece that reaches ByteLevel, unless it already
  // starts with one.
  const bool prefix = add_prefix_space && text[begin] != ' ';
  if (!byte_level_regex) {
    out.push_back(Piece{begin, end, prefix});
    return;
  }
  std::vector<ByteRange>& sub = scratch.sub;
  sub.clear();
  if (!prefix) {
    byte_level_regex->split(text.substr(begin, end - begin), begin, scratch, sub);
    for (const auto& [b, e] : sub) out.push_back(Piece{b, e, false});
    return;
  }
  // Split " " + piece; offset 0 of that string is the virtual space, offset k > 0 is byte
  // begin + k - 1 of the text.
  scratch.prefixed.assign(1, ' ');
  scratch.prefixed.append(text.substr(begin, end - begin));
  byte_level_regex->split(scratch.prefixed, 0, scratch, sub);
  for (const auto& [b, e] : sub) {
    if (b == 0) {
      out.push_back(Piece{begin, begin + e - 1, true});
    } else {
      out.push_back(Piece{begin + b - 1, begin + e - 1, false});
    }
  }
}

}  // namespace ll
