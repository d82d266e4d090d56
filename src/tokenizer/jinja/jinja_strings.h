// Python's str methods on UTF-8 text, as chat templates call them: strip with Python's
// whitespace (str.isspace: also U+00A0, U+2028, U+3000, ...), split, replace, and case
// mapping (ASCII letters only; other letters keep their case).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ll::jinja {

enum class StripSide { Left, Right, Both };
enum class SplitFrom { Left, Right };

// str.strip(chars): `chars` null strips whitespace.
std::string strip(const std::string& text, StripSide side, const std::string* chars);
std::string to_upper(const std::string& text);
std::string to_lower(const std::string& text);
std::string to_title(const std::string& text);    // str.title()
std::string capitalize(const std::string& text);  // str.capitalize()
// str.split() / str.rsplit() with no separator: runs of whitespace, no empty parts.
std::vector<std::string> split_whitespace(const std::string& text, int64_t maxsplit,
                                          SplitFrom from);
// str.split(sep, maxsplit) / rsplit (maxsplit < 0: no limit).
std::vector<std::string> split_on(const std::string& text, const std::string& sep, int64_t maxsplit,
                                  SplitFrom from);
// str.replace(old, new, count) (count < 0: all).
std::string replace_all(const std::string& text, const std::string& from, const std::string& to,
                        int64_t count);
size_t count_occurrences(const std::string& text, const std::string& needle);
bool is_python_space(char32_t c);

}  // namespace ll::jinja
