// rank_pattern, alpha_pattern and layers_to_transform as peft 0.21.2 applies them, and the
// adapter_config.json fields we refuse. The forward is checked against peft's logits on
// tests/fixtures/peft_patterns/ (scripts/fixtures/make_peft_pattern_fixtures.py, torch 2.15.0,
// transformers 5.25.0, peft 0.21.2): a tiny Llama (3 layers) with an adapter whose modules have
// ranks 2, 3, 4, 6, alphas 5, 8, 12.5, on layers 0 and 2 only, plain and rsLoRA.
//
// Tolerance (fp32): max |ours - peft| / max |peft| <= 1e-5 on the logits, the bound of the
// golden tests (test_golden.cpp): both compute in fp32 with different summation orders, which
// leaves ~1e-6; a module with the wrong rank cannot load and one with the wrong scale (e.g.
// the base alpha/r instead of its pattern's) moves the logits by more than 1e-2 relative.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file.h"
#include "formats/safetensors.h"
#include "model/llama_model.h"
#include "model/peft_adapter.h"
#include "model/peft_config.h"
#include "model/peft_match.h"
#include "peft_patterns_fixture.h"

namespace ll {
namespace {

fs::path fixture() {
  return test::peft_patterns_dir();
}

// The cases peft's get_pattern_key decides (answers printed by peft 0.21.2 itself).
TEST(PeftMatch, PatternKeysFollowPeftsRegexRule) {
  struct Case {
    const char* key;
    const char* module;
    bool matches;
  };
  const Case cases[] = {
      {"q_proj", "model.layers.1.self_attn.q_proj", true},
      {"layers.1.self_attn.q_proj", "model.layers.1.self_attn.q_proj", true},
      {"model.layers.1.mlp.down_proj", "model.layers.1.mlp.down_proj", true},
      {"layers.1.self_attn.q_proj", "model.layers.11.self_attn.q_proj", false},
      {"proj", "model.layers.1.self_attn.q_proj", false},      // a whole segment after a dot
      {"layers.1", "model.layers.1.self_attn.q_proj", false},  // anchored at the end
      {"self_attn\\..*", "model.layers.3.self_attn.o_proj", true},
      {"layers.1.self_attn.q_proj", "model.layers.1xself_attn.q_proj", true},  // '.' is any char
      {"q_proj|v_proj", "model.layers.0.self_attn.v_proj", true},  // the key is one group
      {"1.self_attn.q_proj", "model.layers.11.self_attn.q_proj", false},
      {"mlp.down_proj", "model.layers.1.mlp.down_proj", true},
      {"layers\\.2\\.mlp\\.gate_proj", "model.layers.2.mlp.gate_proj", true},
      {"layers\\.2\\.mlp\\.gate_proj", "model.layers.2xmlp.gate_proj", false},
      {"down_proj", "model.layers.1.mlp.down_projx", false},
      {"model.layers.1.mlp.down_proj", "xmodel.layers.1.mlp.down_proj", false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(peft_pattern_key_matches(c.key, c.module), c.matches) << c.key << " ~ " << c.module;
  }
  // The first key in order wins (get_pattern_key's loop).
  EXPECT_EQ(peft_pattern_key_index({"q_proj", "layers.1.self_attn.q_proj"},
                                   "model.layers.1.self_attn.q_proj"),
            0u);
  EXPECT_EQ(peft_pattern_key_index({"v_proj"}, "model.layers.1.self_attn.q_proj"), std::nullopt);
  EXPECT_EQ(peft_module_name(1, LoraTarget::Down), "model.layers.1.mlp.down_proj");
  EXPECT_NE(test::error_of([] {
              peft_pattern_key_matches("q_(proj", "model.layers.0.self_attn.q_proj");
            }).find("q_(proj"),
            std::string::npos);
}

TEST(PeftMatch, LayerIndexFollowsPeftsLayerRegex) {
  EXPECT_EQ(peft_layer_index("model.layers.7.mlp.up_proj", {}), 7);
  EXPECT_EQ(peft_layer_index("model.layers.7.mlp.up_proj", {"layers"}), 7);
  EXPECT_EQ(peft_layer_index("model.layers.7.mlp.up_proj", {"h"}), std::nullopt);
  EXPECT_EQ(peft_layer_index("model.layers.7.mlp.up_proj", {"blocks", "layers"}), 7);
  EXPECT_EQ(peft_layer_index("model.layers.12.self_attn.q_proj", {"lay.rs"}), 12);
}

TEST(PeftMatch, ConfigGivesEachModuleItsRankAlphaAndScale) {
  LoraConfig lora;
  lora.r = 4;
  lora.alpha = 8;
  lora.targets = parse_lora_targets("q_proj,v_proj,down_proj");
  lora.rank_pattern = {{"q_proj", 2}, {"layers.2.self_attn.v_proj", 6}};
  lora.alpha_pattern = {{"layers\\.0\\..*", 3}};
  lora.layers_to_transform = {0, 2};
  EXPECT_TRUE(lora.adapts(0, LoraTarget::Q));
  EXPECT_FALSE(lora.adapts(1, LoraTarget::Q));
  EXPECT_FALSE(lora.adapts(0, LoraTarget::K));
  EXPECT_EQ(lora.rank_of(2, LoraTarget::Q), 2);
  EXPECT_EQ(lora.rank_of(2, LoraTarget::V), 6);
  EXPECT_EQ(lora.rank_of(0, LoraTarget::V), 4);
  EXPECT_DOUBLE_EQ(lora.alpha_of(0, LoraTarget::Down), 3.0);
  EXPECT_DOUBLE_EQ(lora.scale_of(0, LoraTarget::Q), 1.5);  // 3 / 2
  EXPECT_DOUBLE_EQ(lora.scale_of(2, LoraTarget::V), 8.0 / 6.0);
  lora.use_rslora = true;
  EXPECT_DOUBLE_EQ(lora.scale_of(2, LoraTarget::V), 8.0 / std::sqrt(6.0));
  lora.layers_pattern = {"h"};  // no "h.<i>." in Llama's names: nothing adapted
  EXPECT_FALSE(lora.adapts(0, LoraTarget::Q));
  lora.layers_pattern.clear();
  lora.exclude_names = {"layers.0.self_attn.q_proj"};
  EXPECT_FALSE(lora.adapts(0, LoraTarget::Q));
  EXPECT_TRUE(lora.adapts(2, LoraTarget::Q));
  lora.exclude_names.clear();
  lora.exclude_regex = ".*\\.v_proj";
  EXPECT_FALSE(lora.adapts(2, LoraTarget::V));
  EXPECT_TRUE(lora.adapts(2, LoraTarget::Q));
}

class PeftPatterns : public ::testing::TestWithParam<std::string> {};

TEST_P(PeftPatterns, ForwardEqualsPefts) {
  const LlamaWeights base = load_llama_weights(fixture() / "model");
  LoraAdapter adapter = load_peft_adapter(fixture() / GetParam(), base.config);
  const nlohmann::json meta = nlohmann::json::parse(read_file(fixture() / "meta.json"));
  // Every module peft adapted, with peft's r and scale, and no other.
  const nlohmann::json& modules = meta["adapters"][GetParam()]["modules"];
  size_t seen = 0;
  for_each_lora_matrix(adapter, [&](int64_t layer, LoraTarget target, const LoraMatrix& m) {
    const std::string name = peft_module_name(layer, target);
    ASSERT_TRUE(modules.contains(name)) << name;
    EXPECT_EQ(m.r, modules[name]["r"].get<int64_t>()) << name;
    EXPECT_NEAR(m.scale, modules[name]["scale"].get<double>(), 1e-15) << name;
    ++seen;
  });
  EXPECT_EQ(seen, modules.size());

  const SafetensorsModel expected = SafetensorsModel::open(fixture(), "expected.safetensors");
  LlamaLoraModel model(base, &adapter, ModelOptions{Checkpointing::Off, 5});
  const std::vector<float> logits = model.forward_logits(test::peft_patterns_batch(expected));
  EXPECT_LE(test::max_relative_error(logits, expected.read_f32(GetParam() + ".logits")), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Fixture, PeftPatterns, ::testing::Values("adapter", "adapter_rslora"));

// Our adapter_config.json, read back, gives the same LoraConfig; it has peft 0.21.2's fields.
TEST(PeftConfig, WrittenConfigRoundTripsAndHasPeftsFields) {
  const fs::path dir = fixture() / "adapter";
  const LoraConfig theirs =
      parse_peft_lora_config(read_file(dir / "adapter_config.json"), "adapter_config.json");
  const std::string text = peft_lora_config_text(theirs, "");
  EXPECT_EQ(parse_peft_lora_config(text, "ours"), theirs);
  const auto ours = nlohmann::json::parse(text);
  auto peft = nlohmann::json::parse(read_file(dir / "adapter_config.json"));
  std::vector<std::string> our_keys, peft_keys;
  for (const auto& [key, value] : ours.items()) our_keys.push_back(key);
  for (const auto& [key, value] : peft.items()) peft_keys.push_back(key);
  EXPECT_EQ(our_keys, peft_keys);
  // The same values, but for target_modules' set order (ours is kAllLoraTargets order).
  peft.erase("target_modules");
  nlohmann::json mine = ours;
  mine.erase("target_modules");
  EXPECT_EQ(mine, peft);
}

std::string refusal(const std::string& field, const std::string& value) {
  nlohmann::ordered_json config = nlohmann::ordered_json::parse(
      R"({"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]})");
  config[field] = nlohmann::ordered_json::parse(value);
  try {
    parse_peft_lora_config(config.dump(), "dir/adapter_config.json");
  } catch (const Error& error) {
    return error.what();
  }
  return "(no error)";
}

TEST(PeftConfig, RefusesEveryFieldWhoseEffectWeDoNotImplement) {
  const std::pair<const char*, const char*> refused[] = {
      {"modules_to_save", R"(["lm_head"])"},
      {"fan_in_fan_out", "true"},
      {"use_dora", "true"},
      {"bias", R"("all")"},
      {"bias", R"("lora_only")"},
      {"lora_bias", "true"},
      {"use_qalora", "true"},
      {"layer_replication", "[[0, 2]]"},
      {"megatron_config", R"({"tensor_model_parallel_size": 2})"},
      {"loftq_config", R"({"loftq_bits": 4})"},
      {"target_parameters", R"(["mlp.experts.down_proj"])"},
      {"trainable_token_indices", "[1, 2]"},
      {"alora_invocation_tokens", "[5]"},
      {"eva_config", R"({"rho": 2.0})"},
      {"corda_config", R"({"cache_file": "c.pt"})"},
      {"use_bdlora", R"({"nblocks": 2})"},
      {"init_lora_weights", R"("pissa")"},
      {"target_modules", R"(".*\\.q_proj")"},
      {"layers_pattern", R"("layers")"},  // without layers_to_transform
      {"rank_pattern", R"({"q_proj": 0})"},
      {"alpha_pattern", R"({"q_proj": "x"})"},
      {"some_future_field", "1"},
  };
  for (const auto& [field, value] : refused) {
    const std::string error = refusal(field, value);
    EXPECT_NE(error.find("dir/adapter_config.json: "), std::string::npos) << error;
    EXPECT_NE(error.find(field), std::string::npos) << field << ": " << error;
    EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  }
  EXPECT_NE(refusal("some_future_field", "1").find("unknown field"), std::string::npos);
  // Their "off" values, and fields without effect, are accepted.
  const std::pair<const char*, const char*> accepted[] = {{"modules_to_save", "null"},
                                                          {"modules_to_save", "[]"},
                                                          {"fan_in_fan_out", "false"},
                                                          {"bias", R"("none")"},
                                                          {"loftq_config", "{}"},
                                                          {"inference_mode", "false"},
                                                          {"revision", R"("main")"},
                                                          {"task_type", R"("CAUSAL_LM")"},
                                                          {"init_lora_weights", R"("gaussian")"},
                                                          {"exclude_modules", "null"},
                                                          {"target_parameters", "null"}};
  for (const auto& [field, value] : accepted) {
    EXPECT_EQ(refusal(field, value), "(no error)") << field << " " << value;
  }
}

TEST(PeftConfig, RefusesAnAdapterWithModulesToSave) {
  test::TempDir dir;
  fs::copy(fixture() / "adapter", dir.path(), fs::copy_options::recursive);
  auto config = nlohmann::json::parse(read_file(dir / "adapter_config.json"));
  config["modules_to_save"] = {"lm_head"};
  write_file_atomic(dir / "adapter_config.json", config.dump(2));
  const LlamaConfig model = load_llama_config(fixture() / "model");
  const std::string error = test::error_of([&] { load_peft_adapter(dir.path(), model); });
  EXPECT_NE(error.find("adapter_config.json: modules_to_save"), std::string::npos) << error;
}

TEST(PeftConfig, RefusesTensorsTheConfigDoesNotPlace) {
  test::TempDir dir;
  fs::copy(fixture() / "adapter", dir.path(), fs::copy_options::recursive);
  auto config = nlohmann::json::parse(read_file(dir / "adapter_config.json"));
  config["layers_to_transform"] = {0};  // the file also holds layer 2's tensors
  write_file_atomic(dir / "adapter_config.json", config.dump(2));
  const LlamaConfig model = load_llama_config(fixture() / "model");
  const std::string error = test::error_of([&] { load_peft_adapter(dir.path(), model); });
  EXPECT_NE(error.find("layers.2"), std::string::npos) << error;
  EXPECT_NE(error.find("layers_to_transform"), std::string::npos) << error;
}

}  // namespace
}  // namespace ll
