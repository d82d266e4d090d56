// Training parity with HF Trainer + peft: 20 optimizer steps on the gqa_tied fixture model
// from the same initial adapter, the same data order (2 rows per micro-batch, 2 micro-batches
// per step), linear schedule with 2 warm-up steps, weight decay 0.01, clipping at 1.0, fp32,
// dropout 0 (tests/fixtures/golden/trainer_gqa_tied, written by
// scripts/fixtures/make_golden_fixtures.py with transformers 4.46.3's Trainer).
//
// Bounds: per-step loss and pre-clip gradient norm within 1e-4 relative (the bound;
// fp32 summation-order differences give ~1e-6 per step and grow slowly over 20 steps), the
// learning rate exactly, and the final LoRA weights within 1e-4 of the largest weight.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "formats/safetensors.h"
#include "model/llama_model.h"
#include "model/peft_adapter.h"
#include "test_util.h"
#include "train/lr_schedule.h"
#include "train/optimizer.h"

namespace ll {
namespace {

std::vector<int64_t> read_i64(const SafetensorsModel& file, const std::string& name) {
  const auto bytes = file.data(name);
  std::vector<int64_t> values(bytes.size() / sizeof(int64_t));
  std::memcpy(values.data(), bytes.data(), bytes.size());
  return values;
}

TEST(TrainingParity, TwentyStepsMatchHfTrainer) {
  const fs::path dir = test::fixtures() / "golden" / "trainer_gqa_tied";
  const auto log = nlohmann::json::parse(read_file(dir / "trainer.json"));
  const LlamaWeights base = load_llama_weights(dir / "../gqa_tied/model");
  LoraAdapter adapter = load_peft_adapter(dir / "adapter_step0", base.config);
  const SafetensorsModel data = SafetensorsModel::open(dir, "data.safetensors");
  const auto ids = read_i64(data, "input_ids");
  const auto targets = read_i64(data, "targets");
  const int64_t seq_len = data.info("input_ids").shape[1];

  const auto& args = log["training_arguments"];
  LlamaLoraModel model(base, &adapter, ModelOptions{});
  LoraOptimizer optimizer(
      adapter, OptimizerSettings{args["adam_beta1"], args["adam_beta2"], args["adam_epsilon"],
                                 args["weight_decay"], args["max_grad_norm"]});
  const int64_t total_steps = args["max_steps"];
  for (const auto& step_log : log["steps"]) {
    const int64_t step = step_log["step"];
    std::vector<TokenBatch> micro_batches;
    int64_t label_tokens = 0;
    for (const auto& rows : step_log["micro_batches_rows"]) {
      TokenBatch batch;
      batch.rows = static_cast<int64_t>(rows.size());
      batch.seq_len = seq_len;
      for (const auto& row_json : rows) {
        const int64_t row = row_json;
        for (int64_t t = 0; t < seq_len; ++t) {
          const size_t i = static_cast<size_t>(row * seq_len + t);
          batch.input_ids.push_back(static_cast<int32_t>(ids[i]));
          batch.targets.push_back(static_cast<int32_t>(targets[i]));
          batch.positions.push_back(static_cast<int32_t>(t));
        }
        batch.document_starts.push_back({0});
      }
      label_tokens += batch.target_count();
      micro_batches.push_back(std::move(batch));
    }
    ASSERT_EQ(label_tokens, step_log["label_tokens"].get<int64_t>()) << "step " << step;

    // The loss of a step: the mean over all its label tokens, not a mean of micro-batch means.
    adapter.zero_grad();
    double loss = 0;
    for (const TokenBatch& batch : micro_batches) {
      loss += model.forward_backward(batch, 1.0 / static_cast<double>(label_tokens));
    }
    const double grad_norm = optimizer.clip_gradients();
    const double lr =
        scheduled_lr(parse_lr_schedule(args["lr_scheduler_type"].get<std::string>()),
                     args["learning_rate"], step - 1, args["warmup_steps"], total_steps);
    optimizer.step(lr);

    const double expected_loss = step_log["loss_exact"];
    const double expected_norm = step_log["grad_norm"];
    EXPECT_NEAR(loss, expected_loss, 1e-4 * expected_loss) << "step " << step;
    EXPECT_NEAR(grad_norm, expected_norm, 1e-4 * expected_norm) << "step " << step;
    EXPECT_DOUBLE_EQ(lr, step_log["lr_used"].get<double>()) << "step " << step;
  }

  const SafetensorsModel final_weights =
      SafetensorsModel::open(dir / "adapter_step20", "adapter_model.safetensors");
  double worst = 0;
  for (size_t layer = 0; layer < adapter.layers().size(); ++layer) {
    for (LoraTarget target : kAllLoraTargets) {
      const auto& matrix = adapter.layers()[layer][static_cast<size_t>(target)];
      if (!matrix) continue;
      for (LoraPart which : kLoraParts) {
        const auto reference =
            final_weights.read_f32(lora_tensor_name(static_cast<int64_t>(layer), target, which));
        const auto& ours = which == LoraPart::A ? matrix->a : matrix->b;
        double max_ref = 0, max_diff = 0;
        for (size_t i = 0; i < ours.size(); ++i) {
          max_ref = std::max(max_ref, std::fabs(static_cast<double>(reference[i])));
          max_diff = std::max(max_diff, std::fabs(static_cast<double>(ours[i]) - reference[i]));
        }
        worst = std::max(worst, max_diff / max_ref);
      }
    }
  }
  EXPECT_LE(worst, 1e-4);
  std::printf("  final LoRA weights: worst relative difference %.2e\n", worst);
}

TEST(LrSchedule, MatchesTransformersFormulas) {
  // Linear with 2 warm-up steps over 10: 0, lr/2, then lr·(10-s)/8.
  EXPECT_DOUBLE_EQ(scheduled_lr(LrSchedule::Linear, 1.0, 0, 2, 10), 0.0);
  EXPECT_DOUBLE_EQ(scheduled_lr(LrSchedule::Linear, 1.0, 1, 2, 10), 0.5);
  EXPECT_DOUBLE_EQ(scheduled_lr(LrSchedule::Linear, 1.0, 2, 2, 10), 1.0);
  EXPECT_DOUBLE_EQ(scheduled_lr(LrSchedule::Linear, 1.0, 6, 2, 10), 0.5);
  EXPECT_DOUBLE_EQ(scheduled_lr(LrSchedule::Linear, 1.0, 12, 2, 10), 0.0);
  // Cosine: half-way through the decay the factor is 0.5.
  EXPECT_NEAR(scheduled_lr(LrSchedule::Cosine, 1.0, 6, 2, 10), 0.5, 1e-15);
  EXPECT_DOUBLE_EQ(scheduled_lr(LrSchedule::Constant, 3.0, 7, 0, 10), 3.0);
  EXPECT_EQ(warmup_steps_for(0, 0.1, 250), 25);
  EXPECT_EQ(warmup_steps_for(5, 0.1, 250), 5);
  EXPECT_THROW(parse_lr_schedule("polynomial"), Error);
}

}  // namespace
}  // namespace ll
