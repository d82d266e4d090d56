// config.json <-> LlamaConfig, and the tensor names and shapes a config implies.
// Field names, defaults and rope_scaling handling follow transformers' LlamaConfig
// (models/llama/configuration_llama.py and modeling_rope_utils.py): num_key_value_heads
// defaults to num_attention_heads, head_dim to hidden_size / num_attention_heads,
// rope_scaling accepts the legacy "type" key beside "rope_type". transformers 5 moves
// rope_theta and the scaling into "rope_parameters"; we read that too. MistralConfig and
// Qwen2Config (models/mistral, models/qwen2) are the same fields with other defaults, plus
// their sliding-window fields.
#include "formats/llama_config.h"

#include <limits>

#include "core/error.h"
#include "formats/input_checks.h"

namespace ll {
namespace {

using nlohmann::json;

constexpr std::string_view kOrigin = "config";

// Reads typed fields out of one JSON object; every error names the file and the field.
// `prefix` qualifies nested fields in messages ("rope_scaling.factor").
class FieldReader {
 public:
  FieldReader(const json& object, const std::string& origin, std::string prefix = "")
      : object_(object), origin_(origin), prefix_(std::move(prefix)) {}

  [[noreturn]] void error(const std::string& what) const { fail(kOrigin, origin_ + ": " + what); }

  // nullptr when absent or null: HF writes null for "not set" (e.g. pad_token_id).
  const json* find(const char* key) const {
    const auto it = object_.find(key);
    return it == object_.end() || it->is_null() ? nullptr : &*it;
  }

  std::string name(const char* key) const { return "'" + prefix_ + key + "'"; }

  int64_t to_int(const json& value, const char* key) const {
    if (value.is_number_unsigned()) {
      if (value.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        error("field " + name(key) + " is out of range");
      }
      return static_cast<int64_t>(value.get<uint64_t>());
    }
    if (!value.is_number_integer()) {
      error("field " + name(key) + " must be an integer, got " + json_type_name(value));
    }
    return value.get<int64_t>();
  }

  int64_t required_int(const char* key) const {
    const auto it = object_.find(key);
    if (it == object_.end()) error("missing required field " + name(key));
    return to_int(*it, key);
  }

  std::optional<int64_t> optional_int(const char* key) const {
    const json* value = find(key);
    return value ? std::optional(to_int(*value, key)) : std::nullopt;
  }

  std::optional<double> optional_number(const char* key) const {
    const json* value = find(key);
    if (!value) return std::nullopt;
    if (!value->is_number()) {
      error("field " + name(key) + " must be a number, got " + json_type_name(*value));
    }
    return value->get<double>();
  }

  double required_number(const char* key) const {
    if (object_.find(key) == object_.end()) error("missing required field " + name(key));
    const std::optional<double> value = optional_number(key);
    if (!value) error("field " + name(key) + " must be a number, got null");
    return *value;
  }

  bool optional_bool(const char* key, bool fallback) const {
    const json* value = find(key);
    if (!value) return fallback;
    if (!value->is_boolean()) {
      error("field " + name(key) + " must be true or false, got " + json_type_name(*value));
    }
    return value->get<bool>();
  }

  std::optional<std::string> optional_string(const char* key) const {
    const json* value = find(key);
    if (!value) return std::nullopt;
    if (!value->is_string()) {
      error("field " + name(key) + " must be a string, got " + json_type_name(*value));
    }
    return value->get<std::string>();
  }

  void require_positive(const char* key, double value) const {
    if (!(value > 0)) error("field " + name(key) + " must be positive, got " + number(value));
  }

 private:
  static std::string number(double value) {
    return value == static_cast<double>(static_cast<int64_t>(value))
               ? std::to_string(static_cast<int64_t>(value))
               : std::to_string(value);
  }

  const json& object_;
  const std::string& origin_;
  std::string prefix_;
};

// rope_scaling (or transformers 5's rope_parameters): nullopt for plain RoPE.
std::optional<RopeScaling> parse_rope_scaling(const json& value, const std::string& origin,
                                              const std::string& field) {
  const FieldReader top(json::object(), origin);
  if (!value.is_object()) {
    top.error("field '" + field + "' must be an object or null, got " + json_type_name(value));
  }
  const FieldReader reader(value, origin, field + ".");
  std::optional<std::string> type = reader.optional_string("rope_type");
  if (!type) type = reader.optional_string("type");  // the pre-4.43 spelling
  if (!type) top.error("field '" + field + "' has no 'rope_type'");
  if (*type == "default") return std::nullopt;
  if (*type != "llama3") {
    top.error("rope_scaling type " + quote_name(*type) +
              " is not supported (llama-lora implements 'llama3' and 'default')");
  }
  // transformers' _validate_llama3_parameters requires all four; the inverse-frequency
  // formula divides by factor and by (high_freq_factor - low_freq_factor).
  RopeScaling scaling;
  scaling.rope_type = "llama3";
  scaling.factor = reader.required_number("factor");
  scaling.low_freq_factor = reader.required_number("low_freq_factor");
  scaling.high_freq_factor = reader.required_number("high_freq_factor");
  scaling.original_max_position_embeddings =
      reader.required_int("original_max_position_embeddings");
  reader.require_positive("factor", scaling.factor);
  reader.require_positive("low_freq_factor", scaling.low_freq_factor);
  reader.require_positive("original_max_position_embeddings",
                          static_cast<double>(scaling.original_max_position_embeddings));
  if (!(scaling.high_freq_factor > scaling.low_freq_factor)) {
    top.error("field '" + field + ".high_freq_factor' must be greater than low_freq_factor");
  }
  return scaling;
}

constexpr Architecture kArchitectures[] = {Architecture::Llama, Architecture::Mistral,
                                           Architecture::Qwen2};

std::string supported_architectures() {
  std::string list;
  for (const Architecture a : kArchitectures) {
    if (!list.empty()) list += ", ";
    list += std::string(architecture_name(a)) + " (model_type '" +
            std::string(architecture_model_type(a)) + "')";
  }
  return "llama-lora runs " + list;
}

// The architecture `architectures` and `model_type` name: the first supported entry of the
// list, which model_type (when given) must agree with; neither given: Llama (older Llama
// checkpoints carry no model_type).
Architecture check_architecture(const FieldReader& reader, const json& config) {
  std::optional<Architecture> from_list;
  const auto it = config.find("architectures");
  if (it != config.end() && !it->is_null()) {
    if (!it->is_array()) {
      reader.error("field 'architectures' must be a list, got " + json_type_name(*it));
    }
    for (const json& name : *it) {
      if (!name.is_string()) {
        reader.error("field 'architectures' must list strings, got " + json_type_name(name));
      }
      for (const Architecture a : kArchitectures) {
        if (!from_list && name.get<std::string>() == architecture_name(a)) from_list = a;
      }
    }
    // An empty list says nothing; model_type still decides.
    if (!from_list && !it->empty()) {
      reader.error("field 'architectures': " + quote_name((*it)[0].get<std::string>()) +
                   " is not supported (" + supported_architectures() + ")");
    }
  }
  const std::optional<std::string> model_type = reader.optional_string("model_type");
  if (!model_type) return from_list.value_or(Architecture::Llama);
  for (const Architecture a : kArchitectures) {
    if (*model_type != architecture_model_type(a)) continue;
    if (from_list && *from_list != a) {
      reader.error("field 'model_type' " + quote_name(*model_type) + " contradicts field " +
                   "'architectures' (" + std::string(architecture_name(*from_list)) + ")");
    }
    return a;
  }
  reader.error("field 'model_type' " + quote_name(*model_type) + " is not supported (" +
               supported_architectures() + ")");
}

// The window of windowed attention, as transformers resolves it: MistralConfig's
// sliding_window (default 4096 when the key is absent, null for none); Qwen2Config's only
// with use_sliding_window, and only where a layer uses it (layer_types, else the layers from
// max_window_layers, default 28, on).
std::optional<int64_t> parse_sliding_window(const FieldReader& reader, const json& config,
                                            Architecture architecture, int64_t layers) {
  if (architecture == Architecture::Llama) return std::nullopt;
  const bool absent = config.find("sliding_window") == config.end();
  std::optional<int64_t> window =
      absent ? std::optional<int64_t>(4096) : reader.optional_int("sliding_window");
  if (window) reader.require_positive("sliding_window", static_cast<double>(*window));
  if (architecture == Architecture::Mistral || !window) return window;
  if (!reader.optional_bool("use_sliding_window", false)) return std::nullopt;
  if (const json* types = reader.find("layer_types")) {
    if (!types->is_array()) {
      reader.error("field 'layer_types' must be a list, got " + json_type_name(*types));
    }
    bool sliding = false;
    for (const json& type : *types) {
      if (!type.is_string()) {
        reader.error("field 'layer_types' must list strings, got " + json_type_name(type));
      }
      sliding = sliding || type.get<std::string>() == "sliding_attention";
    }
    return sliding ? window : std::nullopt;
  }
  const int64_t first_windowed = reader.optional_int("max_window_layers").value_or(28);
  return first_windowed < layers ? window : std::nullopt;
}

// Bounds far beyond any real checkpoint (Llama 3.1 405B: hidden 16,384, 126 layers,
// vocab 128,256), so that the shape arithmetic here and in the model code cannot overflow
// int64 and a hostile config cannot make us allocate per-layer tables without end.
void check_plausible_sizes(const FieldReader& reader, const LlamaConfig& c) {
  constexpr int64_t kMaxDim = int64_t{1} << 31;
  constexpr int64_t kMaxLayers = 10'000;
  const std::pair<const char*, int64_t> dims[] = {{"vocab_size", c.vocab_size},
                                                  {"hidden_size", c.hidden_size},
                                                  {"intermediate_size", c.intermediate_size},
                                                  {"num_attention_heads", c.num_attention_heads},
                                                  {"num_key_value_heads", c.num_key_value_heads},
                                                  {"head_dim", c.head_dim}};
  for (const auto& [key, value] : dims) {
    if (value > kMaxDim) {
      reader.error("field " + reader.name(key) + " is implausibly large (" + std::to_string(value) +
                   ")");
    }
  }
  if (c.num_hidden_layers > kMaxLayers) {
    reader.error("field 'num_hidden_layers' is implausibly large (" +
                 std::to_string(c.num_hidden_layers) + ")");
  }
  // With every dim below 2^31 the per-tensor products fit in int64; bound the total too.
  const auto d = [](int64_t v) { return static_cast<double>(v); };
  const double per_layer =
      d(c.hidden_size) * d(c.head_dim) * d(2 * c.num_attention_heads + 2 * c.num_key_value_heads) +
      3.0 * d(c.hidden_size) * d(c.intermediate_size);
  const double total =
      2.0 * d(c.vocab_size) * d(c.hidden_size) + d(c.num_hidden_layers) * per_layer;
  if (total > 1e15) reader.error("the sizes imply more than 10^15 parameters");
}

}  // namespace

std::string_view architecture_name(Architecture architecture) {
  switch (architecture) {
    case Architecture::Llama:
      return "LlamaForCausalLM";
    case Architecture::Mistral:
      return "MistralForCausalLM";
    case Architecture::Qwen2:
      return "Qwen2ForCausalLM";
  }
  return "?";
}

std::string_view architecture_model_type(Architecture architecture) {
  switch (architecture) {
    case Architecture::Llama:
      return "llama";
    case Architecture::Mistral:
      return "mistral";
    case Architecture::Qwen2:
      return "qwen2";
  }
  return "?";
}

void check_attention_window(const LlamaConfig& config, int64_t tokens, const std::string& use) {
  if (!config.sliding_window || tokens <= *config.sliding_window) return;
  fail(kOrigin, std::string(architecture_name(config.architecture)) + " sliding_window " +
                    std::to_string(*config.sliding_window) + " is shorter than the " +
                    std::to_string(tokens) + " tokens of " + use +
                    ": llama-lora does not implement windowed attention (use sequences of at "
                    "most sliding_window tokens, or a model whose sliding_window is null)");
}

LlamaConfig parse_llama_config(const json& config_json, const std::string& origin) {
  const FieldReader reader(config_json, origin);
  if (!config_json.is_object()) {
    reader.error("must be a JSON object, got " + json_type_name(config_json));
  }
  LlamaConfig config;
  config.architecture = check_architecture(reader, config_json);
  config.raw = config_json;
  config.vocab_size = reader.required_int("vocab_size");
  config.hidden_size = reader.required_int("hidden_size");
  config.intermediate_size = reader.required_int("intermediate_size");
  config.num_hidden_layers = reader.required_int("num_hidden_layers");
  config.num_attention_heads = reader.required_int("num_attention_heads");
  reader.require_positive("vocab_size", static_cast<double>(config.vocab_size));
  reader.require_positive("hidden_size", static_cast<double>(config.hidden_size));
  reader.require_positive("intermediate_size", static_cast<double>(config.intermediate_size));
  reader.require_positive("num_hidden_layers", static_cast<double>(config.num_hidden_layers));
  reader.require_positive("num_attention_heads", static_cast<double>(config.num_attention_heads));

  // Absent num_key_value_heads: LlamaConfig's None (= the heads); MistralConfig's and
  // Qwen2Config's dataclass defaults, 8 and 32.
  const int64_t kv_heads_default = config.architecture == Architecture::Mistral ? 8
                                   : config.architecture == Architecture::Qwen2
                                       ? 32
                                       : config.num_attention_heads;
  config.num_key_value_heads =
      reader.optional_int("num_key_value_heads").value_or(kv_heads_default);
  reader.require_positive("num_key_value_heads", static_cast<double>(config.num_key_value_heads));
  if (config.num_attention_heads % config.num_key_value_heads != 0) {
    reader.error("num_attention_heads (" + std::to_string(config.num_attention_heads) +
                 ") must be a multiple of num_key_value_heads (" +
                 std::to_string(config.num_key_value_heads) + ")");
  }
  if (const std::optional<int64_t> head_dim = reader.optional_int("head_dim")) {
    config.head_dim = *head_dim;  // may differ from hidden_size / heads
  } else {
    if (config.hidden_size % config.num_attention_heads != 0) {
      reader.error("hidden_size (" + std::to_string(config.hidden_size) +
                   ") is not a multiple of num_attention_heads (" +
                   std::to_string(config.num_attention_heads) + ") and there is no head_dim");
    }
    config.head_dim = config.hidden_size / config.num_attention_heads;
  }
  reader.require_positive("head_dim", static_cast<double>(config.head_dim));
  if (config.head_dim % 2 != 0) {
    reader.error("head_dim (" + std::to_string(config.head_dim) +
                 ") must be even: RoPE rotates pairs of dimensions");
  }

  check_plausible_sizes(reader, config);

  // transformers' defaults: Llama 2048, Mistral 4096 * 32, Qwen2 32768.
  const int64_t max_positions_default = config.architecture == Architecture::Mistral ? 4096 * 32
                                        : config.architecture == Architecture::Qwen2
                                            ? 32768
                                            : config.max_position_embeddings;
  config.max_position_embeddings =
      reader.optional_int("max_position_embeddings").value_or(max_positions_default);
  reader.require_positive("max_position_embeddings",
                          static_cast<double>(config.max_position_embeddings));
  config.rms_norm_eps = reader.optional_number("rms_norm_eps").value_or(config.rms_norm_eps);
  reader.require_positive("rms_norm_eps", config.rms_norm_eps);

  // RoPE: rope_theta + rope_scaling (transformers 4), or rope_parameters (transformers 5).
  const json* rope_parameters = reader.find("rope_parameters");
  std::optional<double> rope_theta = reader.optional_number("rope_theta");
  if (!rope_theta && rope_parameters && rope_parameters->is_object()) {
    rope_theta =
        FieldReader(*rope_parameters, origin, "rope_parameters.").optional_number("rope_theta");
  }
  config.rope_theta = rope_theta.value_or(config.rope_theta);
  reader.require_positive("rope_theta", config.rope_theta);
  if (const json* scaling = reader.find("rope_scaling")) {
    config.rope_scaling = parse_rope_scaling(*scaling, origin, "rope_scaling");
  } else if (rope_parameters) {
    config.rope_scaling = parse_rope_scaling(*rope_parameters, origin, "rope_parameters");
  }

  config.tie_word_embeddings = reader.optional_bool("tie_word_embeddings", false);
  // attention_bias / mlp_bias are LlamaConfig's fields; Mistral has no biases and Qwen2 always
  // the q/k/v ones (has_qkv_bias), whatever else the file says.
  if (config.architecture == Architecture::Llama) {
    config.attention_bias = reader.optional_bool("attention_bias", false);
    config.mlp_bias = reader.optional_bool("mlp_bias", false);
  }
  config.sliding_window =
      parse_sliding_window(reader, config_json, config.architecture, config.num_hidden_layers);
  config.hidden_act = reader.optional_string("hidden_act").value_or("silu");
  if (config.hidden_act != "silu") {
    reader.error("hidden_act " + quote_name(config.hidden_act) +
                 " is not supported (Llama, Mistral and Qwen2 models use 'silu')");
  }
  // transformers >= 4.56 writes "dtype"; older versions "torch_dtype".
  if (std::optional<std::string> dtype = reader.optional_string("dtype")) {
    config.torch_dtype = *dtype;
  } else if (std::optional<std::string> torch_dtype = reader.optional_string("torch_dtype")) {
    config.torch_dtype = *torch_dtype;
  }

  config.bos_token_id = reader.optional_int("bos_token_id");
  config.pad_token_id = reader.optional_int("pad_token_id");
  if (const json* eos = reader.find("eos_token_id")) {
    if (eos->is_array()) {
      for (const json& id : *eos) config.eos_token_ids.push_back(reader.to_int(id, "eos_token_id"));
    } else {
      config.eos_token_ids.push_back(reader.to_int(*eos, "eos_token_id"));
    }
  }
  return config;
}

LlamaConfig load_llama_config(const fs::path& model_dir) {
  const fs::path path = model_dir / "config.json";
  std::error_code ec;
  if (!fs::is_directory(model_dir, ec)) fail(kOrigin, model_dir.string() + ": no such folder");
  if (!fs::is_regular_file(path, ec)) {
    fail(kOrigin, model_dir.string() + ": has no config.json (not a Hugging Face model folder?)");
  }
  return parse_llama_config(parse_json_text(read_file(path), kOrigin, path.string()),
                            path.string());
}

json llama_config_to_json(const LlamaConfig& config) {
  // Start from the file as read so fields we do not model (transformers_version,
  // initializer_range, use_cache, ...) survive a read-modify-write.
  json out = config.raw.is_object() ? config.raw : json::object();
  out["architectures"] = json::array({architecture_name(config.architecture)});
  out["model_type"] = architecture_model_type(config.architecture);
  out["vocab_size"] = config.vocab_size;
  out["hidden_size"] = config.hidden_size;
  out["intermediate_size"] = config.intermediate_size;
  out["num_hidden_layers"] = config.num_hidden_layers;
  out["num_attention_heads"] = config.num_attention_heads;
  out["num_key_value_heads"] = config.num_key_value_heads;
  out["head_dim"] = config.head_dim;
  out["max_position_embeddings"] = config.max_position_embeddings;
  out["rms_norm_eps"] = config.rms_norm_eps;
  out["rope_theta"] = config.rope_theta;
  if (config.rope_scaling) {
    const RopeScaling& s = *config.rope_scaling;
    out["rope_scaling"] = {
        {"rope_type", s.rope_type},
        {"factor", s.factor},
        {"low_freq_factor", s.low_freq_factor},
        {"high_freq_factor", s.high_freq_factor},
        {"original_max_position_embeddings", s.original_max_position_embeddings}};
  } else {
    out["rope_scaling"] = nullptr;
  }
  // We write the transformers-4 spelling (rope_theta + rope_scaling), which transformers 5
  // also reads; a stale rope_parameters would contradict it.
  out.erase("rope_parameters");
  out["tie_word_embeddings"] = config.tie_word_embeddings;
  if (config.architecture == Architecture::Llama) {  // LlamaConfig's fields only
    out["attention_bias"] = config.attention_bias;
    out["mlp_bias"] = config.mlp_bias;
  }
  out["hidden_act"] = config.hidden_act;
  out["torch_dtype"] = config.torch_dtype;
  if (out.contains("dtype")) out["dtype"] = config.torch_dtype;
  out["bos_token_id"] = config.bos_token_id ? json(*config.bos_token_id) : json(nullptr);
  out["pad_token_id"] = config.pad_token_id ? json(*config.pad_token_id) : json(nullptr);
  const bool eos_was_list = config.raw.is_object() && config.raw.contains("eos_token_id") &&
                            config.raw["eos_token_id"].is_array();
  if (config.eos_token_ids.empty()) {
    out["eos_token_id"] = nullptr;
  } else if (config.eos_token_ids.size() == 1 && !eos_was_list) {
    out["eos_token_id"] = config.eos_token_ids[0];
  } else {
    out["eos_token_id"] = config.eos_token_ids;
  }
  return out;
}

std::vector<std::pair<std::string, std::vector<int64_t>>> llama_tensor_shapes(
    const LlamaConfig& config) {
  const int64_t hidden = config.hidden_size;
  const int64_t q_dim = config.num_attention_heads * config.head_dim;
  const int64_t kv_dim = config.num_key_value_heads * config.head_dim;
  const int64_t inter = config.intermediate_size;
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes;
  // The order of LlamaForCausalLM.state_dict(), which is what save_pretrained writes.
  shapes.push_back({"model.embed_tokens.weight", {config.vocab_size, hidden}});
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    const std::string prefix = "model.layers." + std::to_string(layer) + ".";
    const auto linear = [&](const std::string& name, int64_t out_features, int64_t in_features,
                            bool bias) {
      shapes.push_back({prefix + name + ".weight", {out_features, in_features}});  // W[out, in]
      if (bias) shapes.push_back({prefix + name + ".bias", {out_features}});
    };
    const bool qkv_bias = config.attention_bias || has_qkv_bias(config);
    linear("self_attn.q_proj", q_dim, hidden, qkv_bias);
    linear("self_attn.k_proj", kv_dim, hidden, qkv_bias);
    linear("self_attn.v_proj", kv_dim, hidden, qkv_bias);
    linear("self_attn.o_proj", hidden, q_dim, config.attention_bias);
    linear("mlp.gate_proj", inter, hidden, config.mlp_bias);
    linear("mlp.up_proj", inter, hidden, config.mlp_bias);
    linear("mlp.down_proj", hidden, inter, config.mlp_bias);
    shapes.push_back({prefix + "input_layernorm.weight", {hidden}});
    shapes.push_back({prefix + "post_attention_layernorm.weight", {hidden}});
  }
  shapes.push_back({"model.norm.weight", {hidden}});
  if (!config.tie_word_embeddings)
    shapes.push_back({"lm_head.weight", {config.vocab_size, hidden}});
  return shapes;
}

int64_t llama_parameter_count(const LlamaConfig& config) {
  int64_t total = 0;
  for (const auto& [name, shape] : llama_tensor_shapes(config)) {
    int64_t count = 1;
    for (const int64_t dim : shape) count *= dim;
    total += count;
  }
  return total;
}

}  // namespace ll
