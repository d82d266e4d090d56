// Tensor parallelism (model/tensor_parallel.h): n ranks, each running its share of the
// weights and adapter with the group's reductions, compute the whole model's loss, logits
// and LoRA gradients. The ranks run as threads over in-process communicators.
//
// Tolerance: the ranks sum the o/down outputs and the q/k/v and gate/up input gradients in
// another order than one GEMM does (fp32), so values agree to rounding: 2e-5 relative to the
// largest magnitude of the compared tensor (measured: below 1e-6 on these fixtures).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <span>
#include <thread>

#include "core/file.h"
#include "formats/random_weights.h"
#include "model/adapter_shards.h"
#include "model/llama_model.h"
#include "model/peft_adapter.h"
#include "model/tensor_parallel.h"
#include "parallel/communicator.h"
#include "small_model.h"
#include "test_util.h"

namespace ll {
namespace {

constexpr double kTolerance = 2e-5;

TokenBatch two_rows(int32_t vocab) {
  TokenBatch batch;
  batch.rows = 2;
  batch.seq_len = 10;
  for (int32_t i = 0; i < 20; ++i) {
    batch.input_ids.push_back((i * 37 + 11) % vocab);
    batch.targets.push_back(i % 10 == 9 || i % 7 == 3 ? -100 : (i * 53 + 5) % vocab);
    batch.positions.push_back(i < 14 ? i % 10 : i - 14);  // row 1 holds two documents
  }
  batch.document_starts = {{0}, {0, 4}};
  return batch;
}

struct Result {
  double loss = 0;
  std::vector<float> logits;
  LoraAdapter adapter;  // with its gradients
};

// Sums the gradients of replicated LoRA tensors over the group (the trainer's job).
void reduce_replicated(LoraAdapter& adapter, Communicator& tp) {
  for (auto& layer : adapter.layers()) {
    for (LoraTarget target : kAllLoraTargets) {
      auto& m = layer[static_cast<size_t>(target)];
      if (!m) continue;
      if (lora_tp_split(target, LoraPart::A) == TpSplit::Replicated) {
        tp.all_reduce(m->grad_a.data(), static_cast<int64_t>(m->grad_a.size()), ReduceOp::Sum);
      }
      if (lora_tp_split(target, LoraPart::B) == TpSplit::Replicated) {
        tp.all_reduce(m->grad_b.data(), static_cast<int64_t>(m->grad_b.size()), ReduceOp::Sum);
      }
    }
  }
}

Result run(const LlamaWeights& weights, LoraAdapter adapter, Communicator* tp,
           Checkpointing checkpointing) {
  Result out;
  ModelOptions options;
  options.checkpointing = checkpointing;
  options.loss_chunk_tokens = 7;
  options.tensor_parallel = tp;
  LlamaLoraModel model(weights, &adapter, options);
  model.set_dropout_seed(99);
  const TokenBatch batch = two_rows(static_cast<int32_t>(weights.config.vocab_size));
  out.logits = model.forward_logits(batch, ForwardMode::Train);  // dropout masks too
  out.loss = model.forward_backward(batch, 1.0 / static_cast<double>(batch.target_count()));
  if (tp) reduce_replicated(adapter, *tp);
  out.adapter = std::move(adapter);
  return out;
}

double max_abs(std::span<const float> v) {
  double m = 0;
  for (float x : v) m = std::max(m, static_cast<double>(std::fabs(x)));
  return m;
}

void expect_close(std::span<const float> got, std::span<const float> want,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  const double bound = kTolerance * std::max(max_abs(want), 1e-12);
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], bound) << what << " element " << i;
  }
}

void check_tp_model(const LlamaWeights& base, LoraAdapter adapter, int size, double dropout,
                    Checkpointing checkpointing) {
  SCOPED_TRACE("tp=" + std::to_string(size) + " dropout=" + std::to_string(dropout));
  adapter.config.dropout = dropout;
  const Result whole = run(base, adapter, nullptr, checkpointing);

  std::vector<std::unique_ptr<Communicator>> comms = thread_communicators(size);
  std::vector<Result> ranks(static_cast<size_t>(size));
  std::vector<std::string> errors(static_cast<size_t>(size));
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) {
    threads.emplace_back([&, r] {
      try {
        const LlamaWeights local = slice_weights_for_tp(base, r, size);
        ranks[static_cast<size_t>(r)] = run(local, slice_adapter_for_tp(adapter, r, size),
                                            comms[static_cast<size_t>(r)].get(), checkpointing);
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(r)] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const std::string& e : errors) ASSERT_EQ(e, "");

  const LoraAdapter want_grads = [&] {
    LoraAdapter g = whole.adapter;  // slice the gradients with the weights' layout
    std::copy(g.gradients().begin(), g.gradients().end(), g.parameters().begin());
    return g;
  }();
  for (int r = 0; r < size; ++r) {
    const Result& got = ranks[static_cast<size_t>(r)];
    EXPECT_NEAR(got.loss, whole.loss, kTolerance * std::fabs(whole.loss)) << "rank " << r;
    expect_close(got.logits, whole.logits, "logits of rank " + std::to_string(r));
    const LoraAdapter want = slice_adapter_for_tp(want_grads, r, size);
    for (size_t layer = 0; layer < want.layers().size(); ++layer) {
      for (LoraTarget target : kAllLoraTargets) {
        const auto& w = want.layers()[layer][static_cast<size_t>(target)];
        const auto& g = got.adapter.layers()[layer][static_cast<size_t>(target)];
        ASSERT_EQ(w.has_value(), g.has_value());
        if (!w) continue;
        const std::string name = "rank " + std::to_string(r) + " " +
                                 lora_tensor_name(static_cast<int64_t>(layer), target, LoraPart::A);
        expect_close(g->grad_a, w->a, name + " grad");
        expect_close(g->grad_b, w->b, name + " (B) grad");
      }
    }
  }
}

// `fixture`: a folder under tests/fixtures/ holding model/ and adapter/ ("golden/gqa_tied").
void check_tp(const std::string& fixture, int size, double dropout, Checkpointing checkpointing) {
  SCOPED_TRACE(fixture);
  const fs::path dir = test::fixtures() / fixture;
  const LlamaWeights base = load_llama_weights(dir / "model");
  check_tp_model(base, load_peft_adapter(dir / "adapter", base.config), size, dropout,
                 checkpointing);
}

TEST(TensorParallel, GqaModelOnTwoRanksEqualsTheWholeModel) {
  check_tp("golden/gqa_tied", 2, 0.0, Checkpointing::Off);
}

TEST(TensorParallel, MhaModelOnTwoAndFourRanks) {
  check_tp("golden/mha_plain", 2, 0.0, Checkpointing::Full);
  check_tp("golden/mha_plain", 2, 0.0, Checkpointing::Selective);
  check_tp("golden/mha_plain", 4, 0.0, Checkpointing::Off);
}

TEST(TensorParallel, Qwen2BiasesAreSlicedWithTheirRows) {
  // q/k/v are column-parallel: each rank adds its rows of the bias (random, non-zero here);
  // a rank adding the whole bias, or another rank's rows, is off by O(0.5) in q/k/v.
  check_tp("arch/qwen2", 2, 0.0, Checkpointing::Off);
  check_tp("arch/qwen2", 2, 0.2, Checkpointing::Selective);
  const LlamaWeights base = load_llama_weights(test::fixtures() / "arch" / "qwen2" / "model");
  const LlamaWeights second = slice_weights_for_tp(base, 1, 2);
  EXPECT_EQ(static_cast<const float*>(second.layers[0].q_bias.data),
            static_cast<const float*>(base.layers[0].q_bias.data) + 16);  // 2 of 4 heads of 8
  EXPECT_EQ(static_cast<const float*>(second.layers[0].k_bias.data),
            static_cast<const float*>(base.layers[0].k_bias.data) + 8);  // 1 of 2 kv heads
}

TEST(TensorParallel, DropoutMasksMatchTheWholeModel) {
  // Row-parallel inputs are column slices: DropoutWindow gives them the whole input's mask.
  check_tp("golden/gqa_tied", 2, 0.3, Checkpointing::Full);
  check_tp("golden/mha_plain", 4, 0.3, Checkpointing::Off);
}

TEST(TensorParallel, SplitLmHeadCombinesTheLossAndGathersTheLogits) {
  // The golden fixtures' vocabularies (97, 61) are prime, so their LM head stays whole; a
  // random model with vocabulary 96 (tied embeddings) splits it by rows on 2 and 4 ranks.
  LlamaConfig config = test::small_llama_config();
  config.vocab_size = 96;
  config.num_key_value_heads = 4;  // so that 4 ranks divide the kv heads
  config.tie_word_embeddings = true;
  config.torch_dtype = "float32";
  test::TempDir dir;
  write_file_atomic(dir / "config.json", llama_config_to_json(config).dump());
  RandomWeightsOptions weights_options;
  weights_options.seed = 5;
  write_random_llama_weights(dir.path(), config, weights_options);
  const LlamaWeights base = load_llama_weights(dir.path());
  const LlamaWeights half = slice_weights_for_tp(base, 1, 2);
  EXPECT_EQ(half.lm_head_first, 48);
  EXPECT_EQ(half.lm_head_rows, 48);

  LoraConfig lora;
  lora.r = 4;
  lora.alpha = 8;
  lora.targets.fill(true);
  LoraAdapter adapter = lora_init(base.config, lora, 3);
  // B starts at zero; give it values so that every LoRA path carries a gradient to A.
  uint32_t state = 1;
  for (auto& layer : adapter.layers()) {
    for (auto& m : layer) {
      for (float& b : m->b) {
        state = state * 1664525u + 1013904223u;
        b = (static_cast<float>(state >> 8) / 16777216.0f - 0.5f) * 0.2f;
      }
    }
  }
  check_tp_model(base, adapter, 2, 0.0, Checkpointing::Off);
  check_tp_model(base, adapter, 4, 0.2, Checkpointing::Full);
}

TEST(TensorParallel, SlicedAdapterShardsJoinBackToTheWhole) {
  // write_adapter_tp_shard of each rank's slice gives the files save_adapter_tp_shard writes
  // from the whole adapter, and AdapterTpShards joins them back bit for bit.
  const fs::path dir = test::fixtures() / "golden" / "mha_plain";
  const LlamaWeights base = load_llama_weights(dir / "model");
  const LoraAdapter adapter = load_peft_adapter(dir / "adapter", base.config);
  test::TempDir from_parts, from_whole;
  for (int r = 0; r < 4; ++r) {
    write_adapter_tp_shard(from_parts.path(), slice_adapter_for_tp(adapter, r, 4), r, 4);
    save_adapter_tp_shard(from_whole.path(), adapter, r, 4);
    EXPECT_EQ(read_file(from_parts.path() / adapter_tp_shard_name(r, 4)),
              read_file(from_whole.path() / adapter_tp_shard_name(r, 4)));
  }
  const AdapterTpShards shards = AdapterTpShards::open(from_parts.path());
  std::vector<std::byte> scratch;
  size_t checked = 0;
  for (size_t i = 0; i < shards.tensors().size(); ++i) {
    const auto parsed = parse_lora_tensor_name(shards.tensors()[i].name);
    ASSERT_TRUE(parsed.has_value());
    const auto& m =
        adapter.layers()[static_cast<size_t>(parsed->layer)][static_cast<size_t>(parsed->target)];
    const std::span<const float> want = parsed->part == LoraPart::A ? m->a : m->b;
    const auto bytes = shards.read(i, scratch);
    ASSERT_EQ(bytes.size(), want.size() * sizeof(float));
    EXPECT_EQ(std::memcmp(bytes.data(), want.data(), bytes.size()), 0) << shards.tensors()[i].name;
    ++checked;
  }
  EXPECT_EQ(checked, 2u * 7u * 2u);  // 2 layers x 7 targets x (A, B)
}

TEST(TensorParallel, SizesThatDoNotDivideAreRefused) {
  const LlamaWeights base =
      load_llama_weights(test::fixtures() / "golden" / "gqa_tied" / "model");  // 4 heads, 2 kv
  EXPECT_NO_THROW(check_tensor_parallel_size(base.config, 2));
  const std::string kv = test::error_of([&] { check_tensor_parallel_size(base.config, 4); });
  EXPECT_NE(kv.find("--tensor_parallel_size 4 does not divide the model's num_key_value_heads (2)"),
            std::string::npos)
      << kv;
  const std::string heads = test::error_of([&] { check_tensor_parallel_size(base.config, 3); });
  EXPECT_NE(heads.find("num_attention_heads (4)"), std::string::npos) << heads;
  EXPECT_NE(test::error_of([&] { check_tensor_parallel_size(base.config, 0); }).find("at least 1"),
            std::string::npos);
}

}  // namespace
}  // namespace ll
