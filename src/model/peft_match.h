// peft's rules for which modules a LoraConfig adapts and with which rank and alpha (peft 0.21.2,
// tuners/tuners_utils.py check_target_module_exists and utils/other.py get_pattern_key), on the
// module names peft sees in a LlamaForCausalLM: "model.layers.<i>.self_attn.q_proj", ...
//
//   rank_pattern / alpha_pattern   the FIRST key (in the file's order) for which the Python regex
//                                  re.match(rf"(.*\.)?({key})$", name) succeeds gives the value;
//                                  the key is a regex, so "layers.1.self_attn.q_proj" also matches
//                                  "model.layers.1.self_attn.q_proj" and "q_proj" every q_proj
//   layers_to_transform            the layer index is the first number segment after the
//                                  default re.match(r".*?\.[^.]*\.(?P<idx>\d+)\.", name), or
//                                  with layers_pattern,
//                                  re.match(rf"(?:^|.*?\.){p}\.(?P<idx>\d+)\.") for the first p
//                                  that matches; no index: not adapted
//   exclude_modules                a string: re.fullmatch(it, name); a list: name equals an entry
//                                  or ends with "." + entry
//
// The regexes run on PCRE2, whose syntax is Python's for everything peft's keys use (., *, +,
// ?, groups, alternation, classes, \d, (?P<name>...)). A key that does not compile is an error
// naming it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/lora.h"

namespace ll {

// "model.layers.<layer>.<self_attn|mlp>.<target>": the module's name in LlamaForCausalLM.
std::string peft_module_name(int64_t layer, LoraTarget target);

// Python's re.fullmatch(pattern, subject). `origin` names where the pattern came from, for the
// error of one that does not compile.
bool python_regex_fullmatch(std::string_view pattern, std::string_view subject,
                            std::string_view origin);

// get_pattern_key's test: re.match(rf"(.*\.)?({key})$", module) (`$` and fullmatch agree on
// module names, which hold no newline).
bool peft_pattern_key_matches(std::string_view key, std::string_view module);

// The index of the first key of `keys` that matches `module`, or nothing.
std::optional<size_t> peft_pattern_key_index(const std::vector<std::string>& keys,
                                             std::string_view module);

// The layer index peft reads from `module` for layers_to_transform, or nothing.
std::optional<int64_t> peft_layer_index(std::string_view module,
                                        const std::vector<std::string>& layers_pattern);

}  // namespace ll
