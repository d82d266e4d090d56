// See lora_args.h.
#include "train/lora_args.h"

#include <charconv>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/text.h"

namespace ll {
namespace {

constexpr std::string_view kOrigin = "train";

// A JSON object of key: number, in the order given ("" = none).
template <typename Value>
std::vector<std::pair<std::string, Value>> parse_pattern(const std::string& text,
                                                         std::string_view flag) {
  std::vector<std::pair<std::string, Value>> out;
  if (text.empty()) return out;
  nlohmann::ordered_json pattern;
  try {
    pattern = nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::ordered_json::exception&) {
    fail(kOrigin, "--" + std::string(flag) + ": not a JSON object of key: value ('" + text + "')");
  }
  check(pattern.is_object(), kOrigin,
        "--" + std::string(flag) + ": expected a JSON object of key: value, got " + pattern.dump());
  for (const auto& [key, value] : pattern.items()) {
    const bool integer = std::is_integral_v<Value>;
    check(integer ? value.is_number_integer() : value.is_number(), kOrigin,
          "--" + std::string(flag) + ": '" + key + "' must map to " +
              (integer ? "an integer" : "a number") + ", not " + value.dump());
    out.emplace_back(key, value.template get<Value>());
  }
  return out;
}

// "0,1,5" -> {0, 1, 5}.
std::vector<int64_t> parse_layer_list(const std::string& text) {
  std::vector<int64_t> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    std::string_view item(text.data() + start, end - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    int64_t layer = -1;
    const auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), layer);
    check(ec == std::errc() && ptr == item.data() + item.size() && layer >= 0, kOrigin,
          "--layers_to_transform: '" + std::string(item) +
              "' is not a layer index (a comma list of integers >= 0, e.g. 0,1,5)");
    out.push_back(layer);
    start = end + 1;
  }
  return out;
}

}  // namespace

LoraConfig lora_config_from_args(const TrainingArgs& args) {
  check(args.lora_r >= 1, kOrigin,
        "--lora_r must be at least 1, got " + std::to_string(args.lora_r));
  check(args.lora_alpha > 0, kOrigin,
        "--lora_alpha must be above 0, got " + format_number(args.lora_alpha));
  check(args.lora_dropout >= 0 && args.lora_dropout < 1, kOrigin,
        "--lora_dropout must be in [0, 1), got " + format_number(args.lora_dropout));
  LoraConfig lora;
  lora.r = args.lora_r;
  lora.alpha = args.lora_alpha;
  lora.dropout = args.lora_dropout;
  lora.use_rslora = args.use_rslora;
  try {
    lora.targets = parse_lora_targets(args.target_modules);
  } catch (const Error& error) {
    fail(kOrigin, "--target_modules: " + without_origin(error));
  }
  check(lora.targets_any(), kOrigin,
        "--target_modules names no module: '" + args.target_modules + "'");
  lora.rank_pattern = parse_pattern<int64_t>(args.lora_rank_pattern, "lora_rank_pattern");
  for (const auto& [key, r] : lora.rank_pattern) {
    check(r >= 1, kOrigin, "--lora_rank_pattern: '" + key + "' must map to a rank of at least 1");
  }
  lora.alpha_pattern = parse_pattern<double>(args.lora_alpha_pattern, "lora_alpha_pattern");
  for (const auto& [key, alpha] : lora.alpha_pattern) {
    check(alpha > 0, kOrigin, "--lora_alpha_pattern: '" + key + "' must map to an alpha above 0");
  }
  lora.layers_to_transform = parse_layer_list(args.layers_to_transform);
  return lora;
}

}  // namespace ll
