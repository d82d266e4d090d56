// Gradient checkpointing and LoRA dropout: recomputing a layer from its saved input gives
// exactly the gradients of the stored-activation path (the dropout masks are a pure function
// of seed, layer, target and element), and the dropout backward agrees with finite
// differences of the loss.
#include <gtest/gtest.h>

#include <cmath>

#include "backend/profiling_backend.h"
#include "model/llama_model.h"
#include "model/peft_adapter.h"
#include "test_util.h"

namespace ll {
namespace {

const fs::path kModel = test::fixtures() / "golden" / "gqa_tied";

TokenBatch two_rows() {
  TokenBatch batch;
  batch.rows = 2;
  batch.seq_len = 10;
  for (int32_t i = 0; i < 20; ++i) {
    batch.input_ids.push_back((i * 37 + 11) % 97);
    batch.targets.push_back(i % 10 == 9 || i % 7 == 3 ? -100 : (i * 53 + 5) % 97);
    batch.positions.push_back(i < 14 ? i % 10 : i - 14);  // row 1 holds two documents
  }
  batch.document_starts = {{0}, {0, 4}};
  return batch;
}

std::vector<float> all_grads(const LoraAdapter& adapter) {
  std::vector<float> out;
  for (const auto& layer : adapter.layers()) {
    for (const auto& m : layer) {
      if (!m) continue;
      out.insert(out.end(), m->grad_a.begin(), m->grad_a.end());
      out.insert(out.end(), m->grad_b.begin(), m->grad_b.end());
    }
  }
  return out;
}

std::vector<float> grads_with(const LlamaWeights& base, double dropout, Checkpointing ckpt,
                              double* loss = nullptr) {
  LoraAdapter adapter = load_peft_adapter(kModel / "adapter", base.config);
  adapter.config.dropout = dropout;
  LlamaLoraModel model(base, &adapter, ModelOptions{ckpt, 7});
  model.set_dropout_seed(1234);
  const TokenBatch batch = two_rows();
  const double value =
      model.forward_backward(batch, 1.0 / static_cast<double>(batch.target_count()));
  if (loss) *loss = value;
  return all_grads(adapter);
}

TEST(Checkpointing, RecomputedGradientsAreIdentical) {
  const LlamaWeights base = load_llama_weights(kModel / "model");
  for (double dropout : {0.0, 0.3}) {
    double loss_off = 0, loss_full = 0, loss_selective = 0;
    const auto off = grads_with(base, dropout, Checkpointing::Off, &loss_off);
    const auto full = grads_with(base, dropout, Checkpointing::Full, &loss_full);
    const auto selective = grads_with(base, dropout, Checkpointing::Selective, &loss_selective);
    EXPECT_EQ(loss_off, loss_full) << "dropout " << dropout;
    EXPECT_EQ(off, full) << "dropout " << dropout;  // bit for bit: same ops, same order
    // The kept attention output is the one the recompute would have computed.
    EXPECT_EQ(loss_off, loss_selective) << "dropout " << dropout;
    EXPECT_EQ(off, selective) << "dropout " << dropout;
  }
  // Dropout really changes the computation.
  EXPECT_NE(grads_with(base, 0.0, Checkpointing::Off), grads_with(base, 0.3, Checkpointing::Off));
}

TEST(Checkpointing, SelectiveSkipsTheAttentionForwardInTheRecompute) {
  // Counted by the profiling backend: Full attends twice per layer (forward and recompute),
  // Selective once; Off once.
  const LlamaWeights base = load_llama_weights(kModel / "model");
  const auto attention_calls = [&](Checkpointing ckpt) {
    LoraAdapter adapter = load_peft_adapter(kModel / "adapter", base.config);
    ProfilingBackend profiler(cpu_backend());
    LlamaLoraModel model(base, &adapter, ModelOptions{ckpt, 7, &profiler});
    const TokenBatch batch = two_rows();
    model.forward_backward(batch, 1.0 / static_cast<double>(batch.target_count()));
    int64_t calls = 0;
    for (const auto& [where, time] : profiler.profile()) {
      if (where.second == "attention_forward") calls += time.calls;
    }
    return calls;
  };
  const int64_t layers = base.config.num_hidden_layers;
  EXPECT_EQ(attention_calls(Checkpointing::Off), layers);
  EXPECT_EQ(attention_calls(Checkpointing::Full), 2 * layers);
  EXPECT_EQ(attention_calls(Checkpointing::Selective), layers);
}

TEST(Dropout, BackwardMatchesFiniteDifferences) {
  // Central differences of the fp32 loss with step 1e-2 on single LoRA weights: truncation
  // error O(h²) ~ 1e-4 and fp32 rounding ~ 1e-7 / h ~ 1e-5 relative to the loss, so the
  // analytic gradient must agree to 2e-3 relative (+ 1e-5 absolute).
  const LlamaWeights base = load_llama_weights(kModel / "model");
  LoraAdapter adapter = load_peft_adapter(kModel / "adapter", base.config);
  adapter.config.dropout = 0.25;
  LlamaLoraModel model(base, &adapter, ModelOptions{});
  const TokenBatch batch = two_rows();
  const double scale = 1.0 / static_cast<double>(batch.target_count());
  model.set_dropout_seed(99);
  adapter.zero_grad();
  model.forward_backward(batch, scale);
  const auto loss_at = [&] {
    model.set_dropout_seed(99);
    return model.forward_loss_sum(batch, ForwardMode::Train) * scale;
  };
  int checked = 0;
  for (LoraTarget target : {LoraTarget::Q, LoraTarget::Down, LoraTarget::Gate}) {
    const LoraMatrix& m = *adapter.layers()[1][static_cast<size_t>(target)];
    for (size_t index : {size_t{0}, size_t{5}, m.a.size() - 1}) {
      const float saved = m.a[index];
      const float h = 1e-2f;
      m.a[index] = saved + h;
      const double plus = loss_at();
      m.a[index] = saved - h;
      const double minus = loss_at();
      m.a[index] = saved;
      const double numeric = (plus - minus) / (2.0 * h);
      EXPECT_NEAR(m.grad_a[index], numeric, 2e-3 * std::fabs(numeric) + 1e-5)
          << lora_target_name(target) << " A[" << index << "]";
      ++checked;
    }
  }
  EXPECT_EQ(checked, 9);
}

TEST(Dropout, EvalModeNeverDropsAndLeavesTheConfigAlone) {
  // Eval (evaluation, generation, verify) must give exactly the logits of the same adapter
  // with dropout 0, and Train must differ (else the check could not fail).
  const LlamaWeights base = load_llama_weights(kModel / "model");
  LoraAdapter adapter = load_peft_adapter(kModel / "adapter", base.config);
  LoraAdapter no_dropout = adapter;
  adapter.config.dropout = 0.25;
  no_dropout.config.dropout = 0;
  const TokenBatch batch = two_rows();
  LlamaLoraModel model(base, &adapter, ModelOptions{});
  LlamaLoraModel reference(base, &no_dropout, ModelOptions{});
  model.set_dropout_seed(7);
  const std::vector<float> expected = reference.forward_logits(batch, ForwardMode::Eval);
  EXPECT_EQ(model.forward_logits(batch, ForwardMode::Eval), expected);  // bit for bit
  EXPECT_EQ(model.forward_logits(batch), expected);                     // Eval is the default
  EXPECT_NE(model.forward_logits(batch, ForwardMode::Train), expected);
  EXPECT_EQ(model.forward_loss_sum(batch), reference.forward_loss_sum(batch));
  EXPECT_EQ(adapter.config.dropout, 0.25);
}

}  // namespace
}  // namespace ll
