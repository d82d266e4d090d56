// Reading tokenizer.json into a TokenizerPipeline: which components and options we support,
// and a clear error for each we do not ("[tokenizer] tokenizer.json: pre_tokenizer type
// 'Metaspace' is not supported") rather than encoding differently from `tokenizers`.
// Supported: normalizer null; pre_tokenizer ByteLevel, or a Sequence of Split (Regex or
// String pattern, behavior Isolated, invert false) steps ending in ByteLevel; model BPE;
// post_processor null, ByteLevel, TemplateProcessing or a Sequence of those; decoder
// ByteLevel. `truncation` and `padding` are ignored: callers pack and pad token streams
// themselves.
#include <algorithm>

#include "core/error.h"
#include "tokenizer/json_fields.h"
#include "tokenizer/pipeline.h"

namespace ll {

namespace {

constexpr int64_t kMaxAddedId = (int64_t{1} << 24) - 1;

[[noreturn]] void unsupported_type(const JsonField& field, const std::string& type) {
  field.fail("type '" + type + "' is not supported");
}

void check_normalizer(const JsonField& root) {
  const auto normalizer = root.find("normalizer");
  if (!normalizer) return;
  const std::string type = normalizer->type_name();
  // An empty Sequence normalizes nothing, as null does.
  if (type == "Sequence") {
    const JsonField list = normalizer->get("normalizers");
    list.require_array();
    if (list.value().empty()) return;
  }
  unsupported_type(*normalizer, type);
}

void parse_pre_tokenizer_step(const JsonField& field, PreTokenizer& out, bool& seen_byte_level) {
  const std::string type = field.type_name();
  if (type == "Sequence") {
    const JsonField steps = field.get("pretokenizers");
    steps.require_array();
    for (size_t i = 0; i < steps.value().size(); ++i) {
      parse_pre_tokenizer_step(steps.at(i), out, seen_byte_level);
    }
  } else if (type == "Split") {
    if (seen_byte_level) field.fail("comes after ByteLevel, which is not supported");
    const std::string behavior = field.get("behavior").as_string();
    if (behavior != "Isolated") field.fail("behavior '" + behavior + "' is not supported");
    if (field.bool_or("invert", false)) field.fail("invert true is not supported");
    const JsonField pattern = field.get("pattern");
    pattern.require_object();
    if (const auto regex = pattern.find("Regex")) {
      out.splits.emplace_back(regex->as_string(), SplitRegex::Syntax::Regex, field.origin());
    } else if (const auto literal = pattern.find("String")) {
      out.splits.emplace_back(literal->as_string(), SplitRegex::Syntax::Literal, field.origin());
    } else {
      pattern.fail("must hold \"Regex\" or \"String\"");
    }
  } else if (type == "ByteLevel") {
    if (seen_byte_level) field.fail("is a second ByteLevel, which is not supported");
    seen_byte_level = true;
    // Defaults are those of tokenizers' ByteLevel::default().
    out.add_prefix_space = field.bool_or("add_prefix_space", true);
    if (field.bool_or("use_regex", true)) {
      out.byte_level_regex.emplace(std::string(kGpt2Pattern), SplitRegex::Syntax::Regex,
                                   field.origin());
    }
  } else {
    unsupported_type(field, type);
  }
}

void parse_pre_tokenizer(const JsonField& root, PreTokenizer& out) {
  const auto field = root.find("pre_tokenizer");
  if (!field) {
    root.get("pre_tokenizer").fail("null is not supported (byte-level BPE needs ByteLevel)");
  }
  bool seen_byte_level = false;
  parse_pre_tokenizer_step(*field, out, seen_byte_level);
  if (!seen_byte_level) {
    field->fail("has no ByteLevel step; only byte-level BPE tokenizers are supported");
  }
}

void parse_template(const JsonField& field, TokenizerPipeline& out) {
  if (!out.prefix_ids.empty() || !out.suffix_ids.empty()) {
    field.fail("is a second TemplateProcessing, which is not supported");
  }
  const JsonField special_tokens = field.get("special_tokens");
  special_tokens.require_object();
  const JsonField single = field.get("single");
  single.require_array();
  bool seen_sequence = false;
  for (size_t i = 0; i < single.value().size(); ++i) {
    const JsonField item = single.at(i);
    if (const auto special = item.find("SpecialToken")) {
      const std::string name = special->get("id").as_string();
      const auto entry = special_tokens.find(name);
      if (!entry) special->fail("names '" + name + "', which special_tokens does not define");
      const JsonField ids = entry->get("ids");
      ids.require_array();
      std::vector<int32_t>& target = seen_sequence ? out.suffix_ids : out.prefix_ids;
      for (size_t k = 0; k < ids.value().size(); ++k) {
        const int64_t id = ids.at(k).as_int();
        if (id < 0 || id > kMaxAddedId) ids.at(k).fail("is not a valid id");
        target.push_back(static_cast<int32_t>(id));
      }
    } else if (const auto sequence = item.find("Sequence")) {
      const std::string id = sequence->get("id").as_string();
      if (id != "A") sequence->fail("refers to sequence '" + id + "'; single takes only A");
      if (seen_sequence) sequence->fail("repeats sequence A");
      seen_sequence = true;
    } else {
      item.fail("must be {\"SpecialToken\": ...} or {\"Sequence\": ...}");
    }
  }
  if (!seen_sequence) single.fail("has no Sequence A");
}

void parse_post_processor_step(const JsonField& field, TokenizerPipeline& out) {
  const std::string type = field.type_name();
  if (type == "Sequence") {
    const JsonField steps = field.get("processors");
    steps.require_array();
    for (size_t i = 0; i < steps.value().size(); ++i) parse_post_processor_step(steps.at(i), out);
  } else if (type == "ByteLevel") {
    out.trim_offsets = out.trim_offsets || field.bool_or("trim_offsets", true);
  } else if (type == "TemplateProcessing") {
    parse_template(field, out);
  } else {
    unsupported_type(field, type);
  }
}

void check_decoder(const JsonField& root) {
  const auto decoder = root.find("decoder");
  if (!decoder) {
    root.get("decoder").fail("null is not supported (byte-level BPE needs ByteLevel)");
  }
  const std::string type = decoder->type_name();
  if (type != "ByteLevel") unsupported_type(*decoder, type);
}

std::vector<AddedToken> parse_added_tokens(const JsonField& root, const BpeEncoder& model) {
  std::vector<AddedToken> tokens;
  const auto list = root.find("added_tokens");
  if (!list) return tokens;
  list->require_array();
  for (size_t i = 0; i < list->value().size(); ++i) {
    const JsonField item = list->at(i);
    AddedToken token;
    const int64_t id = item.get("id").as_int();
    if (id < 0 || id > kMaxAddedId) item.get("id").fail("is not a valid id");
    token.id = static_cast<int32_t>(id);
    token.content = item.get("content").as_string();
    token.special = item.bool_or("special", false);
    token.single_word = item.bool_or("single_word", false);
    token.lstrip = item.bool_or("lstrip", false);
    token.rstrip = item.bool_or("rstrip", false);
    token.normalized = item.bool_or("normalized", !token.special);
    // The model may hold the same string (GPT-2's <|endoftext|>), but then under this id.
    if (const auto model_id = model.token_to_id(token.content); model_id && *model_id != token.id) {
      item.fail("gives '" + token.content + "' id " + std::to_string(token.id) +
                " but the vocab has it as " + std::to_string(*model_id));
    }
    if (const std::string* model_token = model.id_to_token(token.id);
        model_token && *model_token != token.content) {
      item.fail("gives id " + std::to_string(token.id) + " to '" + token.content +
                "' but the vocab has '" + *model_token + "' there");
    }
    for (const AddedToken& other : tokens) {
      if (other.id == token.id) item.fail("repeats id " + std::to_string(token.id));
    }
    tokens.push_back(std::move(token));
  }
  return tokens;
}

}  // namespace

TokenizerPipeline parse_tokenizer_json(const nlohmann::json& json, const std::string& origin) {
  const JsonField root(json, origin, "");
  if (!json.is_object()) fail("tokenizer", origin + ": the top level must be a JSON object");
  TokenizerPipeline pipeline{origin, BpeEncoder::from_json(root.get("model").value(), origin)};
  check_normalizer(root);
  parse_pre_tokenizer(root, pipeline.pre_tokenizer);
  if (const auto post = root.find("post_processor")) parse_post_processor_step(*post, pipeline);
  check_decoder(root);
  pipeline.added = AddedVocabulary(parse_added_tokens(root, pipeline.model));
  pipeline.build_id_tables();
  for (const std::vector<int32_t>* ids : {&pipeline.prefix_ids, &pipeline.suffix_ids}) {
    for (int32_t id : *ids) {
      if (id >= static_cast<int32_t>(pipeline.kinds.size()) ||
          pipeline.kinds[id] == TokenizerPipeline::IdKind::None) {
        fail("tokenizer", origin + ": post_processor adds id " + std::to_string(id) +
                              ", which is neither in the vocab nor an added token");
      }
    }
  }
  return pipeline;
}

}  // namespace ll
