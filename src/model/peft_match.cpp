// See peft_match.h.
#include "model/peft_match.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>

#include "core/error.h"

namespace ll {
namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  const int length = pcre2_get_error_message(code, buffer, sizeof buffer);
  return length < 0 ? "error " + std::to_string(code)
                    : std::string(reinterpret_cast<const char*>(buffer));
}

using Code = std::unique_ptr<pcre2_code, decltype(&pcre2_code_free)>;
using MatchData = std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)>;

// A pattern compiled as Python's re compiles a str pattern (UCP: \d and \w follow Unicode
// properties); `what` names it in the error of one that does not compile.
Code compile_python_regex(std::string_view pattern, const std::string& what) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  Code code(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                          PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr),
            &pcre2_code_free);
  if (!code) fail("adapter", what + " is not a valid regex: " + pcre2_message(error_code));
  return code;
}

// re.match (anchored at the start; with Anchor::Both re.fullmatch) of `code` on `subject`.
enum class Anchor { Start, Both };
MatchData run_python_regex(const Code& code, std::string_view subject, Anchor anchor,
                           const std::string& what) {
  MatchData match(pcre2_match_data_create_from_pattern(code.get(), nullptr),
                  &pcre2_match_data_free);
  const uint32_t options = PCRE2_ANCHORED | (anchor == Anchor::Both ? PCRE2_ENDANCHORED : 0);
  const int result = pcre2_match(code.get(), reinterpret_cast<PCRE2_SPTR>(subject.data()),
                                 subject.size(), 0, options, match.get(), nullptr);
  if (result == PCRE2_ERROR_NOMATCH) return MatchData(nullptr, &pcre2_match_data_free);
  if (result < 0) {
    fail("adapter", what + " failed on '" + std::string(subject) + "': " + pcre2_message(result));
  }
  return match;
}

bool python_regex_match(std::string_view pattern, std::string_view subject, Anchor anchor,
                        const std::string& what) {
  return run_python_regex(compile_python_regex(pattern, what), subject, anchor, what) != nullptr;
}

// Group "idx" of re.match(pattern, subject) as a layer index, or nothing.
std::optional<int64_t> match_layer_index(const std::string& pattern, std::string_view subject,
                                         const std::string& what) {
  const MatchData match =
      run_python_regex(compile_python_regex(pattern, what), subject, Anchor::Start, what);
  if (!match) return std::nullopt;
  PCRE2_UCHAR* text = nullptr;
  PCRE2_SIZE length = 0;
  if (pcre2_substring_get_byname(match.get(), reinterpret_cast<PCRE2_SPTR>("idx"), &text,
                                 &length) != 0) {
    return std::nullopt;
  }
  const std::string digits(reinterpret_cast<const char*>(text), length);
  pcre2_substring_free(text);
  // Python's int() of the digits; an index past int64 (or of non-ASCII digits) is no layer of
  // ours.
  if (digits.empty() || digits.size() > 18) return std::nullopt;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  return std::stoll(digits);
}

}  // namespace

std::string peft_module_name(int64_t layer, LoraTarget target) {
  return "model.layers." + std::to_string(layer) + "." + std::string(lora_target_block(target)) +
         "." + std::string(lora_target_name(target));
}

bool python_regex_fullmatch(std::string_view pattern, std::string_view subject,
                            std::string_view origin) {
  return python_regex_match(pattern, subject, Anchor::Both,
                            std::string(origin) + ": '" + std::string(pattern) + "'");
}

bool peft_pattern_key_matches(std::string_view key, std::string_view module) {
  const std::string pattern = "(.*\\.)?(" + std::string(key) + ")";
  return python_regex_match(pattern, module, Anchor::Both,
                            "rank_pattern/alpha_pattern key '" + std::string(key) + "'");
}

std::optional<size_t> peft_pattern_key_index(const std::vector<std::string>& keys,
                                             std::string_view module) {
  for (size_t i = 0; i < keys.size(); ++i) {
    if (peft_pattern_key_matches(keys[i], module)) return i;
  }
  return std::nullopt;
}

std::optional<int64_t> peft_layer_index(std::string_view module,
                                        const std::vector<std::string>& layers_pattern) {
  // Lazy .*? takes the first numbered segment, as peft's comment says.
  if (layers_pattern.empty()) {
    return match_layer_index(R"(.*?\.[^.]*\.(?P<idx>\d+)\.)", module, "peft's layer regex");
  }
  for (const std::string& pattern : layers_pattern) {
    const auto index = match_layer_index(R"((?:^|.*?\.))" + pattern + R"(\.(?P<idx>\d+)\.)", module,
                                         "layers_pattern '" + pattern + "'");
    if (index) return index;
  }
  return std::nullopt;
}

}  // namespace ll
