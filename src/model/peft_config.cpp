// See peft_config.h.
#include "model/peft_config.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace ll {
namespace {

using Json = nlohmann::ordered_json;  // keeps rank_pattern / alpha_pattern in the file's order

constexpr std::string_view kOrigin = "adapter";

// peft's implemented fields (read into LoraConfig).
constexpr std::array<std::string_view, 12> kImplementedFields = {
    "peft_type",           "r",
    "lora_alpha",          "lora_dropout",
    "use_rslora",          "target_modules",
    "rank_pattern",        "alpha_pattern",
    "layers_to_transform", "layers_pattern",
    "exclude_modules",     "init_lora_weights"};

template <size_t N>
bool contains(const std::array<std::string_view, N>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// The "off" value of a refused field: null, false, an empty list/object/string, bias "none".
bool is_unset(std::string_view field, const Json& value) {
  if (field == "bias") return value == "none";
  return value.is_null() || value == false ||
         ((value.is_array() || value.is_object()) && value.empty());
}

struct Reader {
  const Json& config;
  const std::string& origin;

  [[noreturn]] void refuse(std::string_view field, const std::string& why) const {
    fail(kOrigin, origin + ": " + std::string(field) + " " + why);
  }
  const Json& required(const char* field) const {
    if (!config.contains(field)) fail(kOrigin, origin + ": missing required field '" + field + "'");
    return config.at(field);
  }
  int64_t rank(std::string_view field, const Json& value) const {
    if (!value.is_number_integer() || value.get<int64_t>() < 1) {
      refuse(field, "must be an integer of at least 1, not " + value.dump());
    }
    return value.get<int64_t>();
  }
  double alpha(std::string_view field, const Json& value) const {
    if (!value.is_number() || !(value.get<double>() > 0)) {
      refuse(field, "must be a positive number, not " + value.dump());
    }
    return value.get<double>();
  }
  // A string or a list of strings (null: none).
  std::vector<std::string> names(std::string_view field, const Json& value) const {
    std::vector<std::string> out;
    if (value.is_null()) return out;
    if (value.is_string()) return {value.get<std::string>()};
    if (!value.is_array())
      refuse(field, "must be a string or a list of strings, not " + value.dump());
    for (const Json& item : value) {
      if (!item.is_string()) refuse(field, "must list strings, not " + item.dump());
      out.push_back(item.get<std::string>());
    }
    return out;
  }
};

void read_targets(const Reader& in, LoraConfig& lora) {
  const Json& targets = in.required("target_modules");
  if (targets.is_string()) {
    std::string lower = targets.get<std::string>();
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (lower != "all-linear") {
      in.refuse("target_modules",
                targets.dump() +
                    " is a regex (peft re.fullmatch-es it on module names), which is not "
                    "supported: give a list of projections or \"all-linear\"");
    }
    lora.targets.fill(true);
    // peft's LoraConfig refuses these with a string target_modules.
    if (in.config.contains("layers_to_transform") && !in.config["layers_to_transform"].is_null()) {
      in.refuse("layers_to_transform", "cannot be used when target_modules is a string (peft)");
    }
    return;
  }
  for (const std::string& name : in.names("target_modules", targets)) {
    const auto target = parse_lora_target(name);
    if (!target) in.refuse("target_modules", "entry '" + name + "' is not a Llama projection");
    lora.targets[static_cast<size_t>(*target)] = true;
  }
  if (!lora.targets_any()) in.refuse("target_modules", "is empty");
}

void read_module_settings(const Reader& in, LoraConfig& lora) {
  const Json& config = in.config;
  for (const char* field : {"rank_pattern", "alpha_pattern"}) {
    if (!config.contains(field) || config[field].is_null()) continue;
    const Json& pattern = config[field];
    if (!pattern.is_object())
      in.refuse(field, "must be an object of key: value, not " + pattern.dump());
    for (const auto& [key, value] : pattern.items()) {
      const std::string where = std::string(field) + " '" + key + "'";
      if (std::string_view(field) == "rank_pattern") {
        lora.rank_pattern.emplace_back(key, in.rank(where, value));
      } else {
        lora.alpha_pattern.emplace_back(key, in.alpha(where, value));
      }
    }
  }
  if (config.contains("layers_to_transform")) {
    const Json& layers = config["layers_to_transform"];
    const auto layer_of = [&](const Json& value) {
      if (!value.is_number_integer()) {
        in.refuse("layers_to_transform",
                  "must be an integer or a list of integers, not " + value.dump());
      }
      return value.get<int64_t>();
    };
    if (layers.is_array()) {
      for (const Json& layer : layers) lora.layers_to_transform.push_back(layer_of(layer));
    } else if (!layers.is_null()) {
      lora.layers_to_transform.push_back(layer_of(layers));
    }
  }
  if (config.contains("layers_pattern")) {
    for (std::string& name : in.names("layers_pattern", config["layers_pattern"])) {
      if (!name.empty()) lora.layers_pattern.push_back(std::move(name));
    }
    if (!lora.layers_pattern.empty() && lora.layers_to_transform.empty()) {
      in.refuse("layers_pattern", "is set without layers_to_transform (peft refuses it)");
    }
  }
  if (config.contains("exclude_modules")) {
    const Json& exclude = config["exclude_modules"];
    if (exclude.is_string()) {
      if (!exclude.get<std::string>().empty()) lora.exclude_regex = exclude.get<std::string>();
    } else {
      lora.exclude_names = in.names("exclude_modules", exclude);
    }
  }
}

// An integral alpha as peft's int, else the float.
Json number(double value) {
  if (std::floor(value) == value && std::fabs(value) < 1e15) return static_cast<int64_t>(value);
  return value;
}

}  // namespace

LoraConfig parse_peft_lora_config(const std::string& text, const std::string& origin) {
  Json config;
  try {
    config = Json::parse(text);
  } catch (const Json::exception& error) {
    fail(kOrigin, origin + ": not valid JSON (" + std::string(error.what()) + ")");
  }
  if (!config.is_object()) fail(kOrigin, origin + ": not a JSON object");
  const Reader in{config, origin};
  for (const auto& [field, value] : config.items()) {
    if (contains(kImplementedFields, field) || contains(kPeftNoEffectFields, field)) continue;
    if (!contains(kPeftRefusedFields, field)) {
      in.refuse(field, "is not a field of peft 0.21.2's LoraConfig (unknown field)");
    }
    if (!is_unset(field, value)) {
      in.refuse(field, "is " + value.dump() + ": not supported (only " +
                           (field == "bias" ? "\"none\"" : "null/false/empty") +
                           "); llama-lora would compute another model");
    }
  }
  const Json& peft_type = in.required("peft_type");
  if (peft_type != "LORA")
    in.refuse("peft_type", peft_type.dump() + " is not supported (LORA only)");
  LoraConfig lora;
  lora.r = in.rank("r", in.required("r"));
  lora.alpha = in.alpha("lora_alpha", in.required("lora_alpha"));
  if (config.contains("lora_dropout")) {
    const Json& dropout = config["lora_dropout"];
    if (!dropout.is_number() || !(dropout.get<double>() >= 0 && dropout.get<double>() < 1)) {
      in.refuse("lora_dropout", "must be a number in [0, 1), not " + dropout.dump());
    }
    lora.dropout = dropout.get<double>();
  }
  if (config.contains("use_rslora")) {
    if (!config["use_rslora"].is_boolean()) in.refuse("use_rslora", "must be true or false");
    lora.use_rslora = config["use_rslora"].get<bool>();
  }
  if (config.contains("init_lora_weights")) {
    const Json& init = config["init_lora_weights"];
    if (!init.is_boolean() && init != "gaussian") {
      in.refuse("init_lora_weights",
                init.dump() +
                    " is not supported (true, false or \"gaussian\"; the other methods "
                    "change the base weights)");
    }
  }
  read_targets(in, lora);
  read_module_settings(in, lora);
  return lora;
}

std::string peft_lora_config_text(const LoraConfig& lora, const std::string& base_model) {
  Json targets = Json::array();
  for (LoraTarget target : kAllLoraTargets) {
    if (lora.targets[static_cast<size_t>(target)]) targets.push_back(lora_target_name(target));
  }
  Json rank_pattern = Json::object();
  for (const auto& [key, r] : lora.rank_pattern) rank_pattern[key] = r;
  Json alpha_pattern = Json::object();
  for (const auto& [key, alpha] : lora.alpha_pattern) alpha_pattern[key] = number(alpha);
  const auto list_or_null = [](const auto& values) {
    return values.empty() ? Json(nullptr) : Json(values);
  };
  Json exclude = list_or_null(lora.exclude_names);
  if (lora.exclude_regex) exclude = *lora.exclude_regex;
  const Json null = nullptr;
  // save_pretrained's fields of peft 0.21.2, in its (sorted) order.
  const Json config = {{"alora_invocation_tokens", null},
                       {"alpha_pattern", alpha_pattern},
                       {"arrow_config", null},
                       {"auto_mapping", null},
                       {"base_model_name_or_path", base_model.empty() ? null : Json(base_model)},
                       {"bias", "none"},
                       {"corda_config", null},
                       {"ensure_weight_tying", false},
                       {"eva_config", null},
                       {"exclude_modules", exclude},
                       {"fan_in_fan_out", false},
                       {"inference_mode", true},
                       {"init_lora_weights", true},
                       {"kasa_config", null},
                       {"layer_replication", null},
                       {"layers_pattern", list_or_null(lora.layers_pattern)},
                       {"layers_to_transform", list_or_null(lora.layers_to_transform)},
                       {"loftq_config", Json::object()},
                       {"lora_alpha", number(lora.alpha)},
                       {"lora_bias", false},
                       {"lora_dropout", lora.dropout},
                       {"lora_ga_config", null},
                       {"megatron_config", null},
                       {"megatron_core", "megatron.core"},
                       {"modules_to_save", null},
                       {"monteclora_config", null},
                       {"peft_type", "LORA"},
                       {"peft_version", "0.21.2"},
                       {"qalora_group_size", 16},
                       {"r", lora.r},
                       {"rank_pattern", rank_pattern},
                       {"revision", null},
                       {"target_modules", targets},
                       {"target_parameters", null},
                       {"task_type", "CAUSAL_LM"},
                       {"trainable_token_indices", null},
                       {"use_bdlora", null},
                       {"use_dora", false},
                       {"use_qalora", false},
                       {"use_rslora", lora.use_rslora},
                       {"velora_config", null}};
  return config.dump(2) + "\n";
}

}  // namespace ll
