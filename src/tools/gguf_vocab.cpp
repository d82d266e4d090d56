// See gguf_vocab.h.
#include "tools/gguf_vocab.h"

#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"
#include "formats/input_checks.h"
#include "tokenizer/bpe.h"
#include "tokenizer/bpe_trainer.h"
#include "tokenizer/tokenizer.h"

namespace ll {
namespace {

using nlohmann::json;

constexpr std::string_view kOrigin = "export-gguf";

json read_json(const fs::path& path) {
  return parse_json_text(read_file(path), kOrigin, path.string());
}

json read_json_if_present(const fs::path& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec) ? read_json(path) : json(nullptr);
}

// What the pre-tokenizer does, in the terms that pick llama.cpp's pre-tokenizer.
struct PreTokenizerShape {
  std::vector<std::string> split_regexes;  // Split steps with a Regex pattern, in order
  bool other_split = false;                // a Split step with a String pattern
  bool byte_level_regex = true;            // ByteLevel's use_regex
  bool add_prefix_space = true;            // ByteLevel's add_prefix_space
};

// Tokenizer::from_json has checked the structure (Split steps, then one ByteLevel).
void read_pre_tokenizer(const json& step, PreTokenizerShape& out) {
  const std::string type = step.value("type", "");
  if (type == "Sequence") {
    for (const json& inner : step.value("pretokenizers", json::array())) {
      read_pre_tokenizer(inner, out);
    }
  } else if (type == "Split") {
    const json& pattern = step.at("pattern");
    if (pattern.contains("Regex")) {
      out.split_regexes.push_back(pattern.at("Regex").get<std::string>());
    } else {
      out.other_split = true;
    }
  } else if (type == "ByteLevel") {
    out.byte_level_regex = step.value("use_regex", true);
    out.add_prefix_space = step.value("add_prefix_space", true);
  }
}

// convert_hf_to_gguf.py's does_token_look_special, for the `<|...|>` spelling.
bool looks_special(std::string_view token) {
  return token.size() >= 4 && token.starts_with("<|") && token.ends_with("|>");
}

struct AddedInfo {
  std::string content;
  bool special = false;
};

// generation_config.json's or config.json's "eos_token_id": an id or a list (first wins).
std::optional<int64_t> first_id(const json& value) {
  if (value.is_number_integer()) return value.get<int64_t>();
  if (value.is_array() && !value.empty() && value[0].is_number_integer()) {
    return value[0].get<int64_t>();
  }
  return std::nullopt;
}

std::optional<std::string> chat_template(const fs::path& model_dir, const json& tokenizer_config) {
  const std::string where = (model_dir / "tokenizer_config.json").string();
  if (tokenizer_config.is_object() && tokenizer_config.contains("chat_template")) {
    const json& value = tokenizer_config["chat_template"];
    if (value.is_string()) return value.get<std::string>();
    if (value.is_array()) {  // [{"name": "default", "template": "..."}, ...]
      for (const json& entry : value) {
        if (entry.is_object() && entry.value("name", "") == "default" &&
            entry.contains("template") && entry["template"].is_string()) {
          return entry["template"].get<std::string>();
        }
      }
      fail(kOrigin, where + ": chat_template is a list without a \"default\" template");
    }
    if (!value.is_null()) {
      fail(kOrigin, where + ": chat_template must be a string or a list of named templates, not " +
                        json_type_name(value));
    }
  }
  std::error_code ec;
  if (fs::is_regular_file(model_dir / "chat_template.jinja", ec)) {
    return read_file(model_dir / "chat_template.jinja");
  }
  return std::nullopt;
}

}  // namespace

std::string gguf_pre_tokenizer_name(const json& tokenizer_json, const std::string& origin) {
  PreTokenizerShape shape;
  if (tokenizer_json.contains("pre_tokenizer") && tokenizer_json["pre_tokenizer"].is_object()) {
    read_pre_tokenizer(tokenizer_json["pre_tokenizer"], shape);
  }
  const bool llama3 = shape.split_regexes.size() == 1 &&
                      shape.split_regexes[0] == kLlama3SplitPattern && !shape.other_split &&
                      !shape.byte_level_regex && !shape.add_prefix_space;
  if (llama3) return "llama-bpe";
  const bool gpt2 = shape.split_regexes.empty() && !shape.other_split && shape.byte_level_regex &&
                    !shape.add_prefix_space;
  if (gpt2) return "gpt-2";
  fail(kOrigin, origin +
                    ": pre_tokenizer matches no llama.cpp pre-tokenizer we map (supported: "
                    "Llama-3's Split regex -> 'llama-bpe', ByteLevel's own regex without a "
                    "prefix space -> 'gpt-2'); llama.cpp would split text differently");
}

GgufMetadata gguf_tokenizer_metadata(const fs::path& model_dir, const LlamaConfig& config) {
  const fs::path tokenizer_path = model_dir / "tokenizer.json";
  std::error_code ec;
  check(fs::is_regular_file(tokenizer_path, ec), kOrigin,
        tokenizer_path.string() +
            ": not found (a GGUF carries the tokenizer; llama.cpp cannot "
            "run a model without one)");
  const json tokenizer_json = read_json(tokenizer_path);
  const std::string origin = tokenizer_path.string();
  // Checks everything the fields below rely on (BPE model, vocab ids, merges, added tokens).
  const Tokenizer tokenizer = Tokenizer::from_json(tokenizer_json, origin);
  const std::string pre = gguf_pre_tokenizer_name(tokenizer_json, origin);

  const int64_t vocab_size = config.vocab_size;
  check(tokenizer.vocab_size() <= vocab_size, kOrigin,
        origin + ": has ids up to " + std::to_string(tokenizer.vocab_size() - 1) +
            " but config.json's vocab_size is " + std::to_string(vocab_size));

  // id -> vocab string, then the added tokens over it.
  std::vector<std::optional<std::string>> strings(static_cast<size_t>(vocab_size));
  for (const auto& [token, id] : tokenizer_json["model"]["vocab"].items()) {
    strings[id.get<size_t>()] = token;
  }
  std::vector<std::optional<AddedInfo>> added(static_cast<size_t>(vocab_size));
  for (const json& token : tokenizer_json.value("added_tokens", json::array())) {
    const auto id = token["id"].get<size_t>();
    added[id] = AddedInfo{token["content"].get<std::string>(), token.value("special", false)};
    strings[id] = added[id]->content;
  }
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  tokens.reserve(strings.size());
  types.reserve(strings.size());
  for (size_t id = 0; id < strings.size(); ++id) {
    GgufTokenType type = GgufTokenType::Normal;
    if (!strings[id]) {
      tokens.push_back("[PAD" + std::to_string(id) + "]");
      type = GgufTokenType::Unused;
    } else {
      tokens.push_back(*strings[id]);
      if (added[id]) {
        type = added[id]->special || looks_special(added[id]->content) ? GgufTokenType::Control
                                                                       : GgufTokenType::UserDefined;
      }
    }
    types.push_back(static_cast<int32_t>(type));
  }
  std::vector<std::string> merges;
  const json& merge_list = tokenizer_json["model"]["merges"];
  merges.reserve(merge_list.size());
  for (const json& merge : merge_list) {
    std::string_view left, right;
    split_bpe_merge(merge, left, right);  // checked by Tokenizer::from_json
    merges.push_back(std::string(left) + " " + std::string(right));
  }

  GgufMetadata out;
  out.emplace_back("tokenizer.ggml.model", std::string("gpt2"));
  out.emplace_back("tokenizer.ggml.pre", pre);
  out.emplace_back("tokenizer.ggml.tokens", std::move(tokens));
  out.emplace_back("tokenizer.ggml.token_type", std::move(types));
  out.emplace_back("tokenizer.ggml.merges", std::move(merges));

  const json generation = read_json_if_present(model_dir / "generation_config.json");
  std::optional<int64_t> bos, eos;
  if (generation.is_object()) {
    bos = first_id(generation.value("bos_token_id", json(nullptr)));
    eos = first_id(generation.value("eos_token_id", json(nullptr)));
  }
  if (!bos) bos = config.bos_token_id;
  if (!bos) {
    if (const std::optional<int32_t> id = tokenizer.bos_id()) bos = *id;
  }
  if (!eos && !config.eos_token_ids.empty()) eos = config.eos_token_ids.front();
  std::optional<int64_t> eot;
  if (const std::optional<int32_t> id = tokenizer.token_to_id("<|eot_id|>")) eot = *id;
  const std::pair<const char*, std::optional<int64_t>> special_ids[] = {
      {"tokenizer.ggml.bos_token_id", bos},
      {"tokenizer.ggml.eos_token_id", eos},
      {"tokenizer.ggml.eot_token_id", eot},
      {"tokenizer.ggml.padding_token_id", config.pad_token_id}};
  for (const auto& [key, id] : special_ids) {
    if (!id) continue;
    check(*id >= 0 && *id < vocab_size, kOrigin,
          model_dir.string() + ": " + key + " would be " + std::to_string(*id) +
              ", outside the vocabulary of " + std::to_string(vocab_size));
    out.emplace_back(key, static_cast<uint32_t>(*id));
  }

  const json tokenizer_config = read_json_if_present(model_dir / "tokenizer_config.json");
  bool add_bos = tokenizer.bos_id().has_value();
  if (tokenizer_config.is_object() && tokenizer_config.contains("add_bos_token") &&
      tokenizer_config["add_bos_token"].is_boolean()) {
    add_bos = tokenizer_config["add_bos_token"].get<bool>();
  }
  out.emplace_back("tokenizer.ggml.add_bos_token", add_bos);
  if (std::optional<std::string> text = chat_template(model_dir, tokenizer_config)) {
    out.emplace_back("tokenizer.chat_template", std::move(*text));
  }
  return out;
}

}  // namespace ll
