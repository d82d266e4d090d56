// A run with --lora_rank_pattern, --lora_alpha_pattern and --layers_to_transform: the flags reach
// LoraConfig, the checkpoint's adapter_config.json keeps them (in their order), a resume reads
// back the same config and per-module ranks, and a tensor-parallel slice keeps each module's r
// and scale.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/file.h"
#include "model/tensor_parallel.h"
#include "small_model.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/lora_args.h"

namespace ll {
namespace {

TrainingArgs patterned_args() {
  TrainingArgs args;
  args.lora_r = 4;
  args.lora_alpha = 8;
  args.target_modules = "q_proj,v_proj,o_proj,down_proj";
  // Overlapping keys for layer 1's q_proj: the first one (r 6) wins, in peft and after reload.
  args.lora_rank_pattern = R"({"layers.1.self_attn.q_proj": 6, "q_proj": 2})";
  args.lora_alpha_pattern = R"({"o_proj": 3, "mlp\\.down_proj": 12})";
  args.layers_to_transform = "1";
  return args;
}

TEST(CheckpointPatterns, FlagsReachTheConfig) {
  const LoraConfig lora = lora_config_from_args(patterned_args());
  ASSERT_EQ(lora.rank_pattern.size(), 2u);
  EXPECT_EQ(lora.rank_pattern[0].first, "layers.1.self_attn.q_proj");  // the order given
  EXPECT_EQ(lora.rank_of(1, LoraTarget::Q), 6);
  EXPECT_EQ(lora.rank_of(0, LoraTarget::Q), 2);
  EXPECT_DOUBLE_EQ(lora.scale_of(1, LoraTarget::Down), 3.0);  // 12 / 4
  EXPECT_EQ(lora.layers_to_transform, std::vector<int64_t>{1});

  TrainingArgs bad = patterned_args();
  bad.lora_rank_pattern = R"({"q_proj": 2.5})";
  EXPECT_NE(test::error_of([&] { lora_config_from_args(bad); }).find("--lora_rank_pattern"),
            std::string::npos);
  bad = patterned_args();
  bad.lora_alpha_pattern = "[1]";
  EXPECT_NE(test::error_of([&] { lora_config_from_args(bad); }).find("--lora_alpha_pattern"),
            std::string::npos);
  bad = patterned_args();
  bad.layers_to_transform = "0,x";
  EXPECT_NE(test::error_of([&] { lora_config_from_args(bad); }).find("--layers_to_transform"),
            std::string::npos);
}

TEST(CheckpointPatterns, ResumeKeepsThePatterns) {
  const LoraConfig lora = lora_config_from_args(patterned_args());
  LoraAdapter adapter = lora_init(test::small_llama_config(), lora, 7);
  ASSERT_EQ(adapter.layers().size(), 2u);
  for (const auto& matrix : adapter.layers()[0]) EXPECT_FALSE(matrix.has_value());
  ASSERT_TRUE(adapter.layers()[1][static_cast<size_t>(LoraTarget::Q)].has_value());
  EXPECT_EQ(adapter.layers()[1][static_cast<size_t>(LoraTarget::Q)]->r, 6);
  for (float& b : adapter.parameters()) b += 0.25f;  // B non-zero too

  LoraOptimizer optimizer(adapter, OptimizerSettings{});
  for (int step = 0; step < 2; ++step) {  // two steps, as the state says
    for (float& g : adapter.gradients()) g = 0.5f;
    optimizer.step(1e-2);
  }
  test::TempDir out;
  TrainerState state;  // a consistent one (test_checkpoint.cpp's sample)
  state.global_step = 2;
  state.total_steps = 10;
  state.steps_per_epoch = 4;
  state.data_index = 16;
  state.train_sequences = 30;
  state.per_device_train_batch_size = 4;
  state.gradient_accumulation_steps = 2;
  state.logging_steps = 1;
  const fs::path dir =
      save_checkpoint(out.path(), adapter, optimizer, state, nlohmann::json::object(), "base");
  const auto written = nlohmann::ordered_json::parse(read_file(dir / "adapter_config.json"));
  EXPECT_EQ(written["rank_pattern"].dump(), R"({"layers.1.self_attn.q_proj":6,"q_proj":2})");
  EXPECT_EQ(written["alpha_pattern"].dump(), R"({"o_proj":3,"mlp\\.down_proj":12})");
  EXPECT_EQ(written["layers_to_transform"].dump(), "[1]");

  const LoadedCheckpoint loaded = load_checkpoint(dir, test::small_llama_config());
  EXPECT_EQ(loaded.adapter.config, lora);
  ASSERT_EQ(loaded.adapter.tensors().size(), adapter.tensors().size());
  for (size_t i = 0; i < adapter.tensors().size(); ++i) {
    EXPECT_EQ(loaded.adapter.tensors()[i].rows, adapter.tensors()[i].rows);
    EXPECT_EQ(loaded.adapter.tensors()[i].cols, adapter.tensors()[i].cols);
  }
  EXPECT_EQ(test::values_of(loaded.adapter.parameters()), test::values_of(adapter.parameters()));
}

TEST(CheckpointPatterns, TensorParallelSliceKeepsEachModulesRankAndScale) {
  const LoraAdapter whole =
      lora_init(test::small_llama_config(), lora_config_from_args(patterned_args()), 7);
  for (int64_t rank = 0; rank < 2; ++rank) {
    const LoraAdapter part = slice_adapter_for_tp(whole, rank, 2);
    for_each_lora_matrix(whole, [&](int64_t layer, LoraTarget target, const LoraMatrix& m) {
      const auto& mine = part.layers()[static_cast<size_t>(layer)][static_cast<size_t>(target)];
      ASSERT_TRUE(mine.has_value());
      EXPECT_EQ(mine->r, m.r);
      EXPECT_EQ(mine->scale, m.scale);
    });
  }
}

}  // namespace
}  // namespace ll
