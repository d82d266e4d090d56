// LoRA adapters: peft's initialisation and scale, adapter folders round-trip, bad settings
// and bad adapter folders give one clear error, and gradient checkpointing / dropout keep the
// gradients exact.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file.h"
#include "model/llama_model.h"
#include "model/peft_adapter.h"
#include "small_model.h"
#include "test_util.h"

namespace ll {
namespace {

LoraConfig all_targets(int64_t r, double alpha, bool rslora) {
  LoraConfig config;
  config.r = r;
  config.alpha = alpha;
  config.use_rslora = rslora;
  config.targets.fill(true);
  return config;
}

std::string error_of(const std::function<void()>& body) {
  try {
    body();
  } catch (const Error& error) {
    return error.what();
  }
  return "(no error)";
}

TEST(Lora, ScaleIsAlphaOverROrOverSqrtR) {
  EXPECT_DOUBLE_EQ(all_targets(8, 64, false).scale(), 8.0);
  EXPECT_DOUBLE_EQ(all_targets(8, 64, true).scale(), 64.0 / std::sqrt(8.0));  // the seed's 22.6
}

TEST(Lora, InitIsKaimingUniformAWithZeroB) {
  const LlamaConfig model = test::small_llama_config();
  const LoraAdapter adapter = lora_init(model, all_targets(4, 8, false), 7);
  const LoraMatrix& down = *adapter.layers()[1][static_cast<size_t>(LoraTarget::Down)];
  EXPECT_EQ(down.in, 24);
  EXPECT_EQ(down.out, 16);
  const double bound = 1.0 / std::sqrt(24.0);  // kaiming_uniform_(a=sqrt(5)) on fan_in 24
  double max_seen = 0;
  for (float a : down.a) max_seen = std::max(max_seen, std::fabs(static_cast<double>(a)));
  EXPECT_LE(max_seen, bound);
  EXPECT_GT(max_seen, 0.8 * bound);  // 96 uniform draws reach near the bound
  for (float b : down.b) EXPECT_EQ(b, 0.0f);
  EXPECT_EQ(adapter.parameter_count(), 2 * (4 * (16 + 16) + 2 * 4 * (16 + 8) + 4 * (16 + 16) +
                                            2 * 4 * (16 + 24) + 4 * (24 + 16)));
}

TEST(Lora, BadSettingsAreOneLineErrors) {
  const LlamaConfig model = test::small_llama_config();
  EXPECT_NE(error_of([&] { lora_init(model, all_targets(0, 8, false), 0); }).find("lora_r"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_lora_targets("q_proj,qkv_proj"); }).find("'qkv_proj'"),
            std::string::npos);
  LoraConfig none = all_targets(4, 8, false);
  none.targets.fill(false);
  EXPECT_NE(error_of([&] { lora_init(model, none, 0); }).find("no target modules"),
            std::string::npos);
  EXPECT_EQ(parse_lora_targets("all-linear"), all_targets(1, 1, false).targets);
}

TEST(PeftAdapter, SaveThenLoadIsExact) {
  test::TempDir dir;
  const LlamaConfig model = test::small_llama_config();
  LoraConfig config = all_targets(4, 16, true);
  config.targets[static_cast<size_t>(LoraTarget::Up)] = false;
  LoraAdapter adapter = lora_init(model, config, 3);
  for (auto& layer : adapter.layers()) {
    for (auto& m : layer) {
      if (m) {
        for (size_t i = 0; i < m->b.size(); ++i) m->b[i] = 0.01f * static_cast<float>(i);
      }
    }
  }
  save_peft_adapter(dir.path(), adapter, "base-model");
  const auto json = nlohmann::json::parse(read_file(dir / "adapter_config.json"));
  EXPECT_EQ(json["peft_type"], "LORA");
  EXPECT_EQ(json["use_rslora"], true);
  EXPECT_EQ(json["target_modules"].size(), 6u);
  const LoraAdapter loaded = load_peft_adapter(dir.path(), model);
  EXPECT_EQ(loaded.config.r, 4);
  EXPECT_DOUBLE_EQ(loaded.config.scale(), config.scale());
  for (size_t l = 0; l < adapter.layers().size(); ++l) {
    for (size_t t = 0; t < kLoraTargetCount; ++t) {
      ASSERT_EQ(adapter.layers()[l][t].has_value(), loaded.layers()[l][t].has_value());
      if (!adapter.layers()[l][t]) continue;
      EXPECT_EQ(test::values_of(adapter.layers()[l][t]->a),
                test::values_of(loaded.layers()[l][t]->a));
      EXPECT_EQ(test::values_of(adapter.layers()[l][t]->b),
                test::values_of(loaded.layers()[l][t]->b));
    }
  }
}

TEST(PeftAdapter, BrokenFoldersNameTheProblem) {
  test::TempDir dir;
  const LlamaConfig model = test::small_llama_config();
  save_peft_adapter(dir.path(), lora_init(model, all_targets(4, 8, false), 1), "");
  // An adapter made for another shape.
  LlamaConfig wider = model;
  wider.hidden_size = 32;
  wider.head_dim = 8;
  EXPECT_NE(error_of([&] { load_peft_adapter(dir.path(), wider); }).find("wrong shape"),
            std::string::npos);
  // A broken adapter_config.json.
  write_file_atomic(dir / "adapter_config.json", std::string_view("{\"peft_type\": \"LORA\", "));
  EXPECT_NE(error_of([&] { load_peft_adapter(dir.path(), model); }).find("not valid JSON"),
            std::string::npos);
  write_file_atomic(dir / "adapter_config.json",
                    std::string_view(R"({"peft_type": "LORA", "lora_alpha": 8,
                                         "target_modules": ["q_proj"]})"));
  EXPECT_NE(error_of([&] { load_peft_adapter(dir.path(), model); }).find("field 'r'"),
            std::string::npos);
  write_file_atomic(dir / "adapter_config.json",
                    std::string_view(R"({"peft_type": "LORA", "r": "4", "lora_alpha": 8,
                                         "target_modules": ["q_proj"]})"));
  EXPECT_NE(error_of([&] {
              load_peft_adapter(dir.path(), model);
            }).find("adapter_config.json: r must be an integer"),
            std::string::npos);
}

}  // namespace
}  // namespace ll
