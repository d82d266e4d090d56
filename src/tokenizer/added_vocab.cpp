// See added_vocab.h. The matching mirrors tokenizers' AddedVocabulary::find_matches: an
// Aho-Corasick search with MatchKind::LeftmostLongest (here a byte trie tried at each
// position, which finds the same matches), then per match the single_word check (a rejected
// match is skipped, the search goes on after it) and the lstrip/rstrip widening.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/added_vocab.h"

#include <pcre2.h>

#include <algorithm>
#include <memory>

#include "tokenizer/utf8.h"

namespace ll {

namespace {

// Rust regex's `\w` (what single_word tests with): Alphabetic, marks, decimal digits,
// connector punctuation and the joiners. PCRE2 has no Alphabetic property; letters plus
// letter numbers plus marks cover it but for a few symbols (e.g. circled letters).
bool is_word_char(char32_t cp) {
  struct Deleter {
    void operator()(pcre2_code* code) const { pcre2_code_free(code); }
  };
  static const std::unique_ptr<pcre2_code, Deleter> code = [] {
    const char* pattern = R"(^[\p{L}\p{Nl}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}]$)";
    int error = 0;
    PCRE2_SIZE offset = 0;
    return std::unique_ptr<pcre2_code, Deleter>(
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED,
                      PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr));
  }();
  if (!code) return false;
  std::string text;
  utf8::append(text, cp);
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  const int rc = pcre2_match(code.get(), reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0,
                             0, data, nullptr);
  pcre2_match_data_free(data);
  return rc >= 0;
}

// The character ending just before text[pos] (nullopt at the start or on invalid UTF-8), and
// the byte where it begins.
std::optional<std::pair<char32_t, size_t>> char_before(std::string_view text, size_t pos) {
  size_t start = pos;
  for (int back = 0; back < 4 && start > 0; ++back) {
    --start;
    if ((static_cast<uint8_t>(text[start]) & 0xC0) != 0x80) break;
  }
  if (start == pos) return std::nullopt;
  const size_t length = utf8::sequence_length(text, start);
  if (length != pos - start) return std::nullopt;
  return std::pair{utf8::decode_at(text, start, length), start};
}

std::optional<std::pair<char32_t, size_t>> char_at(std::string_view text, size_t pos) {
  if (pos >= text.size()) return std::nullopt;
  const size_t length = utf8::sequence_length(text, pos);
  if (length == 0) return std::nullopt;
  return std::pair{utf8::decode_at(text, pos, length), length};
}

}  // namespace

void AddedVocabulary::Matcher::insert(std::string_view content, int32_t token) {
  if (content.empty()) return;  // tokenizers ignores empty added tokens too
  int32_t node = 0;
  for (char c : content) {
    const auto byte = static_cast<uint8_t>(c);
    auto& children = nodes[node].children;
    const auto it = std::find_if(children.begin(), children.end(),
                                 [&](const auto& child) { return child.first == byte; });
    if (it != children.end()) {
      node = it->second;
    } else {
      const auto next = static_cast<int32_t>(nodes.size());
      children.emplace_back(byte, next);
      nodes.emplace_back();  // invalidates `children`; not used after this
      node = next;
    }
  }
  first_byte[static_cast<uint8_t>(content[0])] = true;
  if (nodes[node].token < 0) nodes[node].token = token;  // the first of duplicates wins
}

std::pair<size_t, int32_t> AddedVocabulary::Matcher::longest_at(std::string_view text,
                                                                size_t pos) const {
  std::pair<size_t, int32_t> best{0, -1};
  int32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto byte = static_cast<uint8_t>(text[i]);
    const auto& children = nodes[node].children;
    const auto it = std::find_if(children.begin(), children.end(),
                                 [&](const auto& child) { return child.first == byte; });
    if (it == children.end()) break;
    node = it->second;
    if (nodes[node].token >= 0) best = {i + 1 - pos, nodes[node].token};
  }
  return best;
}

AddedVocabulary::AddedVocabulary(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  for (size_t i = 0; i < tokens_.size(); ++i) {
    Matcher& matcher = tokens_[i].normalized ? normalized_ : raw_;
    matcher.insert(tokens_[i].content, static_cast<int32_t>(i));
  }
}

const AddedToken* AddedVocabulary::find_id(int32_t id) const {
  for (const AddedToken& token : tokens_) {
    if (token.id == id) return &token;
  }
  return nullptr;
}

std::optional<int32_t> AddedVocabulary::find_content(std::string_view content) const {
  for (const AddedToken& token : tokens_) {
    if (token.content == content) return token.id;
  }
  return std::nullopt;
}

void AddedVocabulary::split(std::string_view text, std::vector<Segment>& out) const {
  const auto size = static_cast<uint32_t>(text.size());
  if (raw_.empty() && normalized_.empty()) {
    if (size > 0) out.push_back(Segment{0, size, -1});
    return;
  }
  if (normalized_.empty()) {
    find_matches(text, 0, size, raw_, out);
    return;
  }
  std::vector<Segment> first;
  find_matches(text, 0, size, raw_, first);
  for (const Segment& segment : first) {
    if (segment.added_id >= 0) {
      out.push_back(segment);
    } else {
      find_matches(text, segment.begin, segment.end, normalized_, out);
    }
  }
}

void AddedVocabulary::find_matches(std::string_view text, uint32_t begin, uint32_t end,
                                   const Matcher& matcher, std::vector<Segment>& out) const {
  // Work on the sentence text[begin, end) alone: its edges count as word boundaries and
  // lstrip/rstrip do not reach past them.
  const std::string_view sentence = text.substr(begin, end - begin);
  const auto segment = [&](size_t b, size_t e, int32_t id) {
    out.push_back(Segment{begin + static_cast<uint32_t>(b), begin + static_cast<uint32_t>(e), id});
  };
  size_t start_offset = 0;  // end of the last emitted segment
  size_t pos = 0;           // where the search goes on
  while (pos < sentence.size()) {
    if (!matcher.first_byte[static_cast<uint8_t>(sentence[pos])]) {
      ++pos;
      continue;
    }
    const auto [length, index] = matcher.longest_at(sentence, pos);
    if (index < 0) {
      ++pos;
      continue;
    }
    size_t start = pos;
    size_t stop = pos + length;
    pos = stop;
    const AddedToken& token = tokens_[index];
    if (token.single_word) {
      const auto before = char_before(sentence, start);
      const auto after = char_at(sentence, stop);
      if ((before && is_word_char(before->first)) || (after && is_word_char(after->first))) {
        continue;
      }
    }
    if (token.lstrip) {
      size_t new_start = start;
      while (const auto before = char_before(sentence, new_start)) {
        if (!utf8::is_white_space(before->first)) break;
        new_start = before->second;
      }
      start = std::max(new_start, start_offset);  // spaces a previous match took stay there
    }
    if (token.rstrip) {
      while (const auto after = char_at(sentence, stop)) {
        if (!utf8::is_white_space(after->first)) break;
        stop += after->second;
      }
      pos = std::max(pos, stop);  // the stripped spaces cannot start another match
    }
    if (start_offset < start) segment(start_offset, start, -1);
    segment(start, stop, token.id);
    start_offset = stop;
  }
  if (start_offset < sentence.size()) segment(start_offset, sentence.size(), -1);
}

}  // namespace ll
