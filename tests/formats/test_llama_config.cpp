// Tests of formats/llama_config: real Hugging Face configs parse to the right fields and
// parameter counts (the counts published for Llama-3-8B, Llama-3.2-1B and SmolLM2-135M),
// transformers' defaults and spellings, and one error test per bad config, each asserting
// that the message names the file and the field.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/llama_config.h"
#include "test_util.h"

namespace ll {
namespace {

using nlohmann::json;

#define EXPECT_CONTAINS(text, part)                          \
  EXPECT_NE(std::string(text).find(part), std::string::npos) \
      << "expected to find: " << (part) << "\n                in: " << (text)

// meta-llama/Llama-3.2-1B config.json (the fields that matter; as published on the Hub).
json llama32_1b() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": 128001, "head_dim": 64, "hidden_act": "silu",
    "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192,
    "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
    "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
    "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
    "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256})");
}

// A small valid config to break one field at a time.
json tiny() {
  return json{{"architectures", {"LlamaForCausalLM"}},
              {"model_type", "llama"},
              {"vocab_size", 32},
              {"hidden_size", 16},
              {"intermediate_size", 32},
              {"num_hidden_layers", 2},
              {"num_attention_heads", 4}};
}

void expect_config_error(const json& config, std::initializer_list<std::string> parts) {
  try {
    parse_llama_config(config, "/models/x/config.json");
    ADD_FAILURE() << "expected an ll::Error";
  } catch (const Error& error) {
    EXPECT_CONTAINS(error.what(), "[config] /models/x/config.json: ");
    for (const std::string& part : parts) EXPECT_CONTAINS(error.what(), part);
  }
}

TEST(LlamaConfig, Llama32With3ScalingAndTiedEmbeddings) {
  const LlamaConfig c = parse_llama_config(llama32_1b(), "config.json");
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_EQ(c.hidden_size, 2048);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  ASSERT_TRUE(c.rope_scaling.has_value());
  EXPECT_EQ(c.rope_scaling->rope_type, "llama3");
  EXPECT_DOUBLE_EQ(c.rope_scaling->factor, 32.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling->low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling->high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling->original_max_position_embeddings, 8192);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001}));
  EXPECT_FALSE(c.pad_token_id.has_value());
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  // The published parameter count of Llama-3.2-1B; tied, so no lm_head tensor.
  EXPECT_EQ(llama_parameter_count(c), 1'235'814'400);
  const auto shapes = llama_tensor_shapes(c);
  EXPECT_EQ(shapes.size(), 1 + 16 * 9 + 1u);
  for (const auto& [name, shape] : shapes) EXPECT_NE(name, "lm_head.weight");
}

TEST(LlamaConfig, Llama3_8BDefaultsAndUntiedHead) {
  json config = llama32_1b();
  config["hidden_size"] = 4096;
  config["intermediate_size"] = 14336;
  config["num_hidden_layers"] = 32;
  config.erase("head_dim");             // Llama-3-8B's config has none: 4096 / 32
  config.erase("tie_word_embeddings");  // transformers' default: false
  config["rope_scaling"] = nullptr;
  config["eos_token_id"] = {128001, 128008, 128009};
  const LlamaConfig c = parse_llama_config(config, "config.json");
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.rope_scaling.has_value());
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_EQ(llama_parameter_count(c), 8'030'261'248);  // published count of Llama-3-8B
  const auto shapes = llama_tensor_shapes(c);
  EXPECT_EQ(shapes.back().first, "lm_head.weight");
  EXPECT_EQ(shapes.back().second, (std::vector<int64_t>{128256, 4096}));
}

TEST(LlamaConfig, SmolLM2HasNineHeadsAndThreeKvHeads) {
  // HuggingFaceTB/SmolLM2-135M: 134,515,008 parameters.
  json config = tiny();
  config.update(json{{"vocab_size", 49152},
                     {"hidden_size", 576},
                     {"intermediate_size", 1536},
                     {"num_hidden_layers", 30},
                     {"num_attention_heads", 9},
                     {"num_key_value_heads", 3},
                     {"tie_word_embeddings", true},
                     {"rope_theta", 100000}});
  const LlamaConfig c = parse_llama_config(config, "config.json");
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_DOUBLE_EQ(c.rope_theta, 100000.0);  // an integer in JSON is a fine number
  EXPECT_EQ(llama_parameter_count(c), 134'515'008);
}

TEST(LlamaConfig, ExplicitHeadDimDiffersFromHiddenOverHeads) {
  json config = tiny();
  config["head_dim"] = 8;  // 4 heads x 8 = 32, while hidden_size is 16
  config["num_key_value_heads"] = 2;
  const LlamaConfig c = parse_llama_config(config, "config.json");
  EXPECT_EQ(c.head_dim, 8);
  std::map<std::string, std::vector<int64_t>> shapes;
  for (auto& [name, shape] : llama_tensor_shapes(c)) shapes[name] = shape;
  EXPECT_EQ(shapes["model.layers.1.self_attn.q_proj.weight"], (std::vector<int64_t>{32, 16}));
  EXPECT_EQ(shapes["model.layers.1.self_attn.k_proj.weight"], (std::vector<int64_t>{16, 16}));
  EXPECT_EQ(shapes["model.layers.1.self_attn.o_proj.weight"], (std::vector<int64_t>{16, 32}));
  EXPECT_EQ(shapes["model.layers.0.mlp.down_proj.weight"], (std::vector<int64_t>{16, 32}));
  EXPECT_EQ(shapes["model.norm.weight"], (std::vector<int64_t>{16}));
}

TEST(LlamaConfig, BiasesAddBiasTensors) {
  json config = tiny();
  config["attention_bias"] = true;
  config["mlp_bias"] = true;
  std::map<std::string, std::vector<int64_t>> shapes;
  for (auto& [name, shape] : llama_tensor_shapes(parse_llama_config(config, "c"))) {
    shapes[name] = shape;
  }
  EXPECT_EQ(shapes["model.layers.0.self_attn.q_proj.bias"], (std::vector<int64_t>{16}));
  EXPECT_EQ(shapes["model.layers.0.self_attn.o_proj.bias"], (std::vector<int64_t>{16}));
  EXPECT_EQ(shapes["model.layers.0.mlp.up_proj.bias"], (std::vector<int64_t>{32}));
  EXPECT_EQ(shapes.size(), 3 + 2 * 16u);
}

TEST(LlamaConfig, RopeScalingSpellings) {
  json config = tiny();
  config["rope_scaling"] = {{"type", "llama3"},
                            {"factor", 8.0},
                            {"low_freq_factor", 1.0},
                            {"high_freq_factor", 4.0},
                            {"original_max_position_embeddings", 8192}};
  EXPECT_EQ(parse_llama_config(config, "c").rope_scaling->factor, 8.0);  // legacy "type"
  config["rope_scaling"] = {{"rope_type", "default"}};
  EXPECT_FALSE(parse_llama_config(config, "c").rope_scaling.has_value());
  // transformers 5 keeps theta and scaling in rope_parameters.
  config.erase("rope_scaling");
  config["rope_parameters"] = {
      {"rope_type", "llama3"},   {"rope_theta", 500000.0},
      {"factor", 32.0},          {"low_freq_factor", 1.0},
      {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  const LlamaConfig c = parse_llama_config(config, "c");
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling->factor, 32.0);
}

TEST(LlamaConfig, UnsupportedRopeScalingIsAnError) {
  json config = tiny();
  config["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  expect_config_error(config, {"rope_scaling type 'linear' is not supported"});
  config["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  expect_config_error(config, {"'yarn' is not supported"});
  config["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
  expect_config_error(config, {"missing required field 'rope_scaling.low_freq_factor'"});
}

TEST(LlamaConfig, MissingRequiredField) {
  json config = tiny();
  config.erase("hidden_size");
  expect_config_error(config, {"missing required field 'hidden_size'"});
}

TEST(LlamaConfig, WrongType) {
  json config = tiny();
  config["hidden_size"] = "2048";
  expect_config_error(config, {"field 'hidden_size' must be an integer, got string"});
  config = tiny();
  config["num_hidden_layers"] = 2.5;
  expect_config_error(config, {"field 'num_hidden_layers' must be an integer, got float"});
  config = tiny();
  config["tie_word_embeddings"] = "yes";
  expect_config_error(config, {"field 'tie_word_embeddings' must be true or false, got string"});
  config = tiny();
  config["rms_norm_eps"] = "1e-5";
  expect_config_error(config, {"field 'rms_norm_eps' must be a number, got string"});
  expect_config_error(json::array(), {"must be a JSON object, got array"});
}

TEST(LlamaConfig, UnsupportedArchitecture) {
  json config = tiny();
  config["architectures"] = {"Phi3ForCausalLM"};
  config.erase("model_type");
  expect_config_error(config, {"field 'architectures': 'Phi3ForCausalLM' is not supported",
                               "LlamaForCausalLM (model_type 'llama'), MistralForCausalLM "
                               "(model_type 'mistral'), Qwen2ForCausalLM (model_type 'qwen2')"});
  config = tiny();
  config["model_type"] = "gemma2";
  expect_config_error(config, {"field 'model_type' 'gemma2' is not supported", "Qwen2ForCausalLM"});
  config = tiny();
  config["model_type"] = "qwen2";  // with architectures LlamaForCausalLM
  expect_config_error(config, {"field 'model_type' 'qwen2' contradicts field 'architectures' "
                               "(LlamaForCausalLM)"});
  config = tiny();
  config["hidden_act"] = "gelu";
  expect_config_error(config, {"hidden_act 'gelu' is not supported"});
}

// Qwen/Qwen2.5-0.5B-Instruct config.json (as published on the Hub).
json qwen25_05b() {
  return json::parse(R"({
    "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
    "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
    "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 21,
    "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24,
    "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
    "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
    "transformers_version": "4.43.1", "use_cache": true, "use_sliding_window": false,
    "vocab_size": 151936})");
}

// mistralai/Mistral-7B-Instruct-v0.1 config.json (as published on the Hub).
json mistral_7b_v01() {
  return json::parse(R"({
    "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
    "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
    "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mistral",
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096,
    "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.34.0.dev0",
    "use_cache": true, "vocab_size": 32000})");
}

TEST(LlamaConfig, Qwen25HasQkvBiasesAndNoWindowWithoutUseSlidingWindow) {
  const LlamaConfig c = parse_llama_config(qwen25_05b(), "config.json");
  EXPECT_EQ(c.architecture, Architecture::Qwen2);
  EXPECT_TRUE(has_qkv_bias(c));
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_FALSE(c.sliding_window.has_value());  // use_sliding_window false
  EXPECT_NO_THROW(check_attention_window(c, 100'000, "--max_seq_length 100000"));
  // The published parameter count of Qwen2.5-0.5B: q/k/v biases included, tied embeddings.
  EXPECT_EQ(llama_parameter_count(c), 494'032'768);
  const auto shapes = llama_tensor_shapes(c);
  EXPECT_EQ(shapes.size(), 1 + 24 * 12 + 1u);
  EXPECT_EQ(shapes[3].first, "model.layers.0.self_attn.k_proj.weight");
  EXPECT_EQ(shapes[4].first, "model.layers.0.self_attn.k_proj.bias");
  EXPECT_EQ(shapes[4].second, std::vector<int64_t>{128});
  // Written back as Qwen2, without Llama's bias fields.
  const json out = llama_config_to_json(c);
  EXPECT_EQ(out["architectures"], json::array({"Qwen2ForCausalLM"}));
  EXPECT_EQ(out["model_type"], "qwen2");
  EXPECT_FALSE(out.contains("attention_bias"));
  EXPECT_EQ(out["use_sliding_window"], false);
  EXPECT_EQ(parse_llama_config(out, "out").architecture, Architecture::Qwen2);
}

TEST(LlamaConfig, Qwen2SlidingWindowAppliesOnlyWhereALayerUsesIt) {
  json config = qwen25_05b();
  config["use_sliding_window"] = true;  // layers 21.. use the window
  LlamaConfig c = parse_llama_config(config, "config.json");
  EXPECT_EQ(c.sliding_window, std::optional<int64_t>(32768));
  config["max_window_layers"] = 24;  // no layer at or past 24
  EXPECT_FALSE(parse_llama_config(config, "config.json").sliding_window.has_value());
  config["layer_types"] = json::array();
  for (int i = 0; i < 24; ++i)
    config["layer_types"].push_back(i == 3 ? "sliding_attention" : "full_attention");
  EXPECT_TRUE(parse_llama_config(config, "config.json").sliding_window.has_value());
  config["sliding_window"] = nullptr;
  EXPECT_FALSE(parse_llama_config(config, "config.json").sliding_window.has_value());
}

TEST(LlamaConfig, MistralSlidingWindowIsRefusedForLongerSequences) {
  const LlamaConfig c = parse_llama_config(mistral_7b_v01(), "config.json");
  EXPECT_EQ(c.architecture, Architecture::Mistral);
  EXPECT_FALSE(has_qkv_bias(c));
  EXPECT_EQ(llama_parameter_count(c), 7'241'732'096);  // as published
  ASSERT_EQ(c.sliding_window, std::optional<int64_t>(4096));
  EXPECT_NO_THROW(check_attention_window(c, 4096, "--max_seq_length 4096"));
  const std::string error =
      test::error_of([&] { check_attention_window(c, 4097, "--max_seq_length 4097"); });
  EXPECT_CONTAINS(error,
                  "MistralForCausalLM sliding_window 4096 is shorter than the 4097 tokens "
                  "of --max_seq_length 4097: llama-lora does not implement windowed attention");
  EXPECT_EQ(error.find('\n'), std::string::npos);  // one line
  json config = mistral_7b_v01();
  config["sliding_window"] = nullptr;  // Mistral-7B-v0.2 and later
  EXPECT_FALSE(parse_llama_config(config, "config.json").sliding_window.has_value());
  config.erase("sliding_window");  // MistralConfig's default, 4096
  EXPECT_EQ(parse_llama_config(config, "config.json").sliding_window, std::optional<int64_t>(4096));
  config["sliding_window"] = 0;
  expect_config_error(config, {"field 'sliding_window' must be positive"});
}

TEST(LlamaConfig, MistralNemoHeadDimAndDefaults) {
  // Mistral-Nemo: head_dim 128 with hidden 5120 / 32 heads = 160.
  json config = mistral_7b_v01();
  config["hidden_size"] = 5120;
  config["head_dim"] = 128;
  config["num_hidden_layers"] = 40;
  config["vocab_size"] = 131072;
  config["sliding_window"] = nullptr;
  LlamaConfig c = parse_llama_config(config, "config.json");
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(llama_parameter_count(c), 12'247'782'400);  // Mistral-Nemo-Base-2407, as published
  // Absent fields take MistralConfig's defaults, not LlamaConfig's.
  config.erase("num_key_value_heads");
  config.erase("max_position_embeddings");
  c = parse_llama_config(config, "config.json");
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_EQ(llama_config_to_json(c)["model_type"], "mistral");
}

TEST(LlamaConfig, InconsistentSizes) {
  json config = tiny();
  config["num_key_value_heads"] = 3;
  expect_config_error(config,
                      {"num_attention_heads (4) must be a multiple of num_key_value_heads (3)"});
  config = tiny();
  config["hidden_size"] = 18;
  expect_config_error(config, {"hidden_size (18) is not a multiple of num_attention_heads (4)"});
  config = tiny();
  config["vocab_size"] = 0;
  expect_config_error(config, {"field 'vocab_size' must be positive, got 0"});
  config = tiny();
  config["vocab_size"] = int64_t{1} << 40;
  expect_config_error(config, {"field 'vocab_size' is implausibly large"});
}

TEST(LlamaConfig, ToJsonRoundTripsAndKeepsUnknownFields) {
  const LlamaConfig c = parse_llama_config(llama32_1b(), "config.json");
  const json out = llama_config_to_json(c);
  EXPECT_EQ(out["architectures"], json::array({"LlamaForCausalLM"}));
  EXPECT_EQ(out["model_type"], "llama");
  EXPECT_EQ(out["transformers_version"], "4.45.0.dev0");  // kept from the file
  EXPECT_EQ(out["initializer_range"], 0.02);
  EXPECT_EQ(out["rope_scaling"]["rope_type"], "llama3");
  EXPECT_EQ(out["eos_token_id"], 128001);
  EXPECT_TRUE(out["pad_token_id"].is_null());
  const LlamaConfig again = parse_llama_config(out, "again");
  EXPECT_EQ(llama_tensor_shapes(again), llama_tensor_shapes(c));
  EXPECT_EQ(again.rope_scaling->factor, c.rope_scaling->factor);
  EXPECT_EQ(again.bos_token_id, c.bos_token_id);

  // A config built in code (no raw) still writes everything transformers needs.
  LlamaConfig built;
  built.vocab_size = 32;
  built.hidden_size = 16;
  built.intermediate_size = 32;
  built.num_hidden_layers = 1;
  built.num_attention_heads = 4;
  built.num_key_value_heads = 4;
  built.head_dim = 4;
  built.eos_token_ids = {2, 3};
  const LlamaConfig reparsed = parse_llama_config(llama_config_to_json(built), "built");
  EXPECT_EQ(reparsed.head_dim, 4);
  EXPECT_EQ(reparsed.eos_token_ids, (std::vector<int64_t>{2, 3}));
}

TEST(LlamaConfig, LoadFromFolderNamesTheFile) {
  test::TempDir dir;
  try {
    load_llama_config(dir.path());
    ADD_FAILURE() << "expected an ll::Error";
  } catch (const Error& error) {
    EXPECT_CONTAINS(error.what(), dir.path().string() + ": has no config.json");
  }
  test::write_text(dir / "config.json", "{\"vocab_size\": 32,");
  try {
    load_llama_config(dir.path());
    ADD_FAILURE() << "expected an ll::Error";
  } catch (const Error& error) {
    EXPECT_CONTAINS(error.what(), (dir / "config.json").string() + ": not valid JSON");
  }
  json config = tiny();
  config.erase("vocab_size");
  test::write_text(dir / "config.json", config.dump());
  try {
    load_llama_config(dir.path());
    ADD_FAILURE() << "expected an ll::Error";
  } catch (const Error& error) {
    EXPECT_CONTAINS(error.what(),
                    (dir / "config.json").string() + ": missing required field 'vocab_size'");
  }
  test::write_text(dir / "config.json", tiny().dump());
  EXPECT_EQ(load_llama_config(dir.path()).hidden_size, 16);
}

}  // namespace
}  // namespace ll
