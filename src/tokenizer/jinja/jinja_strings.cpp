// Python's str methods on UTF-8 text: see jinja_strings.h.
#include "tokenizer/jinja/jinja_strings.h"

#include <algorithm>

#include "tokenizer/jinja/jinja_value.h"

namespace ll::jinja {

bool is_python_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
         c == 0x205f || c == 0x3000;
}

std::string strip(const std::string& text, StripSide side, const std::string* chars) {
  const std::u32string cps = decode_utf8(text);
  const std::u32string set = chars ? decode_utf8(*chars) : std::u32string();
  const auto strippable = [&](char32_t c) {
    return chars ? set.find(c) != std::u32string::npos : is_python_space(c);
  };
  size_t begin = 0;
  size_t end = cps.size();
  if (side != StripSide::Right) {
    while (begin < end && strippable(cps[begin])) ++begin;
  }
  if (side != StripSide::Left) {
    while (end > begin && strippable(cps[end - 1])) --end;
  }
  return encode_utf8(cps.substr(begin, end - begin));
}

std::string to_upper(const std::string& text) {
  std::string out = text;
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

std::string to_lower(const std::string& text) {
  std::string out = text;
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

namespace {
bool is_ascii_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
}  // namespace

std::string to_title(const std::string& text) {
  // Python: a cased letter after an uncased character starts a word. Bytes >= 0x80 are
  // treated as uncased here (ASCII case mapping only).
  std::string out = text;
  bool previous_cased = false;
  for (char& c : out) {
    if (is_ascii_alpha(c)) {
      c = previous_cased ? to_lower(std::string(1, c))[0] : to_upper(std::string(1, c))[0];
      previous_cased = true;
    } else {
      previous_cased = false;
    }
  }
  return out;
}

std::string capitalize(const std::string& text) {
  std::string out = to_lower(text);
  if (!out.empty() && out[0] >= 'a' && out[0] <= 'z')
    out[0] = static_cast<char>(out[0] - 'a' + 'A');
  return out;
}

std::vector<std::string> split_whitespace(const std::string& text, int64_t maxsplit,
                                          SplitFrom from) {
  std::u32string cps = decode_utf8(text);
  if (from == SplitFrom::Right) std::reverse(cps.begin(), cps.end());
  std::vector<std::u32string> parts;
  size_t i = 0;
  while (i < cps.size()) {
    while (i < cps.size() && is_python_space(cps[i])) ++i;
    if (i == cps.size()) break;
    if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
      size_t end = cps.size();
      while (end > i && is_python_space(cps[end - 1])) --end;
      parts.push_back(cps.substr(i, end - i));
      break;
    }
    size_t j = i;
    while (j < cps.size() && !is_python_space(cps[j])) ++j;
    parts.push_back(cps.substr(i, j - i));
    i = j;
  }
  std::vector<std::string> out;
  for (auto& p : parts) {
    if (from == SplitFrom::Right) std::reverse(p.begin(), p.end());
    out.push_back(encode_utf8(p));
  }
  if (from == SplitFrom::Right) std::reverse(out.begin(), out.end());
  return out;
}

std::vector<std::string> split_on(const std::string& text, const std::string& sep, int64_t maxsplit,
                                  SplitFrom from) {
  std::vector<std::string> out;
  if (from == SplitFrom::Left) {
    size_t start = 0;
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
      const size_t at = text.find(sep, start);
      if (at == std::string::npos) break;
      out.push_back(text.substr(start, at - start));
      start = at + sep.size();
    }
    out.push_back(text.substr(start));
    return out;
  }
  size_t end = text.size();
  while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
    if (end < sep.size()) break;
    const size_t at = text.rfind(sep, end - sep.size());
    if (at == std::string::npos) break;
    out.push_back(text.substr(at + sep.size(), end - at - sep.size()));
    end = at;
  }
  out.push_back(text.substr(0, end));
  std::reverse(out.begin(), out.end());
  return out;
}

std::string replace_all(const std::string& text, const std::string& from, const std::string& to,
                        int64_t count) {
  std::string out;
  if (from.empty()) {
    // Python inserts `to` before every code point and at the end.
    const std::u32string cps = decode_utf8(text);
    int64_t done = 0;
    for (char32_t c : cps) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      out += encode_utf8(std::u32string(1, c));
    }
    if (count < 0 || done < count) out += to;
    return out;
  }
  size_t start = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    const size_t at = text.find(from, start);
    if (at == std::string::npos) break;
    out.append(text, start, at - start);
    out += to;
    start = at + from.size();
    ++done;
  }
  out.append(text, start, std::string::npos);
  return out;
}

size_t count_occurrences(const std::string& text, const std::string& needle) {
  if (needle.empty()) return decode_utf8(text).size() + 1;
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + needle.size()))
    ++n;
  return n;
}

}  // namespace ll::jinja
