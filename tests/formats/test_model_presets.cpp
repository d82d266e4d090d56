// Tests of the model presets: the published parameter counts and config fields of the real
// models (Hugging Face config.json of SmolLM2-135M, Llama-3.2-1B, Meta-Llama-3-8B), the vocab
// rule for tokenizers, and a config.json round trip.
#include <gtest/gtest.h>

#include "core/error.h"
#include "formats/llama_config.h"
#include "formats/model_presets.h"

namespace ll {
namespace {

TEST(ModelPresets, PublishedParameterCounts) {
  // The counts the model cards / safetensors metadata of the real models give.
  EXPECT_EQ(llama_parameter_count(find_model_preset("smol-135m").config), 134'515'008);
  EXPECT_EQ(llama_parameter_count(find_model_preset("llama3-1b").config), 1'235'814'400);
  EXPECT_EQ(llama_parameter_count(find_model_preset("llama3-8b").config), 8'030'261'248);
  // 8B: embed + 32 x 9 + norm + lm_head tensors.
  EXPECT_EQ(llama_tensor_shapes(find_model_preset("llama3-8b").config).size(), 291u);
}

TEST(ModelPresets, Llama32OneBMatchesItsConfig) {
  const LlamaConfig& c = find_model_preset("llama3-1b").config;
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_EQ(c.hidden_size, 2048);
  EXPECT_EQ(c.intermediate_size, 8192);
  EXPECT_EQ(c.num_hidden_layers, 16);
  EXPECT_EQ(c.num_attention_heads, 32);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_TRUE(c.tie_word_embeddings);
  ASSERT_TRUE(c.rope_scaling.has_value());
  EXPECT_EQ(c.rope_scaling->rope_type, "llama3");
  EXPECT_DOUBLE_EQ(c.rope_scaling->factor, 32.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling->low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling->high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling->original_max_position_embeddings, 8192);
}

TEST(ModelPresets, Llama3EightBAndSmolMatchTheirConfigs) {
  const LlamaConfig& big = find_model_preset("llama3-8b").config;
  EXPECT_EQ(big.hidden_size, 4096);
  EXPECT_EQ(big.intermediate_size, 14336);
  EXPECT_EQ(big.num_hidden_layers, 32);
  EXPECT_EQ(big.num_key_value_heads, 8);
  EXPECT_EQ(big.head_dim, 128);
  EXPECT_EQ(big.max_position_embeddings, 8192);
  EXPECT_DOUBLE_EQ(big.rope_theta, 500000.0);
  EXPECT_FALSE(big.rope_scaling.has_value());
  EXPECT_FALSE(big.tie_word_embeddings);

  const LlamaConfig& smol = find_model_preset("smol-135m").config;
  EXPECT_EQ(smol.vocab_size, 49152);
  EXPECT_EQ(smol.hidden_size, 576);
  EXPECT_EQ(smol.num_hidden_layers, 30);
  EXPECT_EQ(smol.num_attention_heads, 9);
  EXPECT_EQ(smol.num_key_value_heads, 3);
  EXPECT_EQ(smol.head_dim, 64);
  EXPECT_EQ(smol.intermediate_size, 1536);
  EXPECT_DOUBLE_EQ(smol.rope_theta, 100000.0);
  EXPECT_EQ(smol.max_position_embeddings, 8192);
  EXPECT_TRUE(smol.tie_word_embeddings);
  EXPECT_DOUBLE_EQ(smol.raw["initializer_range"].get<double>(), 1.0 / 24.0);
}

TEST(ModelPresets, TinyIsSmall) {
  const ModelPreset& tiny = find_model_preset("tiny");
  EXPECT_EQ(tiny.vocab, PresetVocab::FromTokenizer);
  const LlamaConfig& c = tiny.config;
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.num_hidden_layers, 2);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_LT(llama_parameter_count(preset_config_for_tokenizer(tiny, 1024)), 300'000);
}

TEST(ModelPresets, VocabFollowsTheTokenizer) {
  // tiny takes the tokenizer's size, smaller or larger.
  EXPECT_EQ(preset_config_for_tokenizer(find_model_preset("tiny"), 128256).vocab_size, 128256);
  EXPECT_EQ(preset_config_for_tokenizer(find_model_preset("tiny"), 512).vocab_size, 512);
  // The real models keep their vocab; a smaller tokenizer fits, a larger one is an error.
  EXPECT_EQ(preset_config_for_tokenizer(find_model_preset("llama3-8b"), 1024).vocab_size, 128256);
  EXPECT_EQ(preset_config_for_tokenizer(find_model_preset("llama3-1b"), 128256).vocab_size, 128256);
  EXPECT_THROW(preset_config_for_tokenizer(find_model_preset("smol-135m"), 128256), Error);
  EXPECT_THROW(preset_config_for_tokenizer(find_model_preset("tiny"), 0), Error);
}

TEST(ModelPresets, UnknownNameListsTheKnownOnes) {
  try {
    find_model_preset("llama2-7b");
    FAIL() << "no error";
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("llama2-7b"), std::string::npos) << message;
    EXPECT_NE(message.find("tiny, smol-135m, llama3-1b, llama3-8b"), std::string::npos) << message;
  }
}

TEST(ModelPresets, ConfigJsonRoundTrips) {
  for (const ModelPreset& preset : model_presets()) {
    const LlamaConfig config = preset_config_for_tokenizer(preset, 1024);
    const nlohmann::json json = llama_config_to_json(config);
    EXPECT_EQ(json["initializer_range"], config.raw["initializer_range"]) << preset.name;
    EXPECT_EQ(json["torch_dtype"], "bfloat16");
    const LlamaConfig back = parse_llama_config(json, preset.name);
    EXPECT_EQ(llama_parameter_count(back), llama_parameter_count(config)) << preset.name;
    EXPECT_EQ(back.head_dim, config.head_dim);
    EXPECT_EQ(back.rope_scaling.has_value(), config.rope_scaling.has_value());
    EXPECT_EQ(back.max_position_embeddings, config.max_position_embeddings);
    EXPECT_EQ(back.tie_word_embeddings, config.tie_word_embeddings);
  }
}

}  // namespace
}  // namespace ll
