// See utf8.h. Well-formedness follows Unicode Table 3-7 (the ranges of the second byte depend
// on the first), which is also what PCRE2's UTF check and Rust's str validation accept.
#include "tokenizer/utf8.h"

#include <cstring>

namespace ll::utf8 {

namespace {

// Checks the sequence at text[pos]. Returns its length when well-formed, else 0 and sets
// `subpart` to the length of the maximal subpart (the longest prefix of a well-formed sequence
// found there, at least 1), which a lossy decoder replaces by one U+FFFD.
size_t check_sequence(std::string_view text, size_t pos, size_t& subpart) {
  const auto at = [&](size_t i) { return static_cast<uint8_t>(text[pos + i]); };
  const size_t left = text.size() - pos;
  const uint8_t b0 = at(0);
  subpart = 1;
  if (b0 < 0x80) return 1;
  size_t width = 0;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    width = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    width = 3;
    if (b0 == 0xE0) lo = 0xA0;  // no overlong forms
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    width = 4;
    if (b0 == 0xF0) lo = 0x90;  // no overlong forms
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  for (size_t i = 1; i < width; ++i) {
    if (i >= left) return 0;  // truncated: the bytes so far are the maximal subpart
    const uint8_t b = at(i);
    const bool ok = i == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) return 0;
    subpart = i + 1;
  }
  return width;
}

}  // namespace

size_t sequence_length(std::string_view text, size_t pos) {
  size_t subpart = 0;
  return check_sequence(text, pos, subpart);
}

size_t last_sequence_length(std::string_view text) {
  // The lead byte is the last byte before the end that is no continuation byte (10xxxxxx), at
  // most 4 back; the sequence it starts must end exactly at the end.
  for (size_t length = 1; length <= 4 && length <= text.size(); ++length) {
    const size_t start = text.size() - length;
    if ((static_cast<uint8_t>(text[start]) & 0xC0) != 0x80) {
      return sequence_length(text, start) == length ? length : 0;
    }
  }
  return 0;
}

size_t valid_prefix_length(std::string_view text) {
  size_t pos = 0;
  const size_t n = text.size();
  while (pos < n) {
    // ASCII fast path: 8 bytes at a time while none has its top bit set.
    while (pos + 8 <= n) {
      uint64_t word;
      std::memcpy(&word, text.data() + pos, 8);
      if (word & 0x8080808080808080ull) break;
      pos += 8;
    }
    if (pos >= n) break;
    const size_t length = sequence_length(text, pos);
    if (length == 0) return pos;
    pos += length;
  }
  return n;
}

size_t invalid_run_length(std::string_view text, size_t pos) {
  size_t end = pos;
  while (end < text.size() && sequence_length(text, end) == 0) ++end;
  return end - pos;
}

char32_t decode_at(std::string_view text, size_t pos, size_t length) {
  const auto at = [&](size_t i) {
    return static_cast<char32_t>(static_cast<uint8_t>(text[pos + i]));
  };
  switch (length) {
    case 1:
      return at(0);
    case 2:
      return ((at(0) & 0x1F) << 6) | (at(1) & 0x3F);
    case 3:
      return ((at(0) & 0x0F) << 12) | ((at(1) & 0x3F) << 6) | (at(2) & 0x3F);
    default:
      return ((at(0) & 0x07) << 18) | ((at(1) & 0x3F) << 12) | ((at(2) & 0x3F) << 6) |
             (at(3) & 0x3F);
  }
}

void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool is_white_space(char32_t cp) {
  // PropList.txt, White_Space (unchanged since Unicode 6.3, when U+180E left it).
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

std::string repair_lossy(std::string_view bytes) {
  const size_t valid = valid_prefix_length(bytes);
  if (valid == bytes.size()) return std::string(bytes);
  std::string out(bytes.substr(0, valid));
  size_t pos = valid;
  while (pos < bytes.size()) {
    size_t subpart = 0;
    const size_t length = check_sequence(bytes, pos, subpart);
    if (length > 0) {
      out.append(bytes.substr(pos, length));
      pos += length;
    } else {
      out.append("\xEF\xBF\xBD");  // U+FFFD
      pos += subpart;
    }
  }
  return out;
}

}  // namespace ll::utf8
