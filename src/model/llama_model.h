// The Llama forward and explicit backward with LoRA (llm.c style: no autograd). Only what
// LoRA training needs is computed: the frozen base weights get no gradient, and the input
// gradient flows back through every layer to reach each layer's adapters.
//
// Per layer the block of model/llama_block.h (shared with generation), its attention causal
// and GQA inside each packed document; then rmsnorm, LM head and cross-entropy over chunks
// of tokens (never the whole logits).
// With gradient checkpointing only each layer's input is kept; backward recomputes the layer
// (Checkpointing::Full), or everything but its attention, whose output and log-sum-exp the
// forward kept (Checkpointing::Selective).
// With tensor parallelism (ModelOptions::tensor_parallel) each rank runs its share of heads
// and MLP columns: the o and down outputs are summed over the group in the forward, the
// q/k/v and gate/up input gradients in the backward (Megatron's two reductions per block
// each way); LoRA gradients of replicated tensors stay partial (the trainer reduces them).
// Every op runs through a Backend (backend/backend.h); activations live in its memory.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "model/llama_weights.h"
#include "model/lora.h"
#include "parallel/communicator.h"

namespace ll {

// What the backward has of each layer: every activation kept (Off); only the layer's input,
// the rest recomputed (Full); the input and the attention's output and log-sum-exp
// ([tokens, heads·head_dim + heads] fp32 per layer), the rest recomputed (Selective: the
// recompute skips the attention forward, Megatron's "selective" granularity).
enum class Checkpointing { Off, Full, Selective };

// Train applies the adapter's LoRA dropout; Eval (evaluation, generation, compare, verify)
// never does, whatever the adapter's config says.
enum class ForwardMode { Train, Eval };

// The LM head's default chunk: as many tokens (64 .. 512, a multiple of 64) as keep one chunk's
// fp32 logits within 128 MiB. Bigger chunks amortise the bf16 GEMM's per-call packing of the
// head's weight (measured on smol-135m's 49152 x 576 head, 2048 tokens, oneDNN bf16: CPU time
// 2.6 s at 64 tokens, 1.25 s at 256, 1.05 s at 512); for Llama-3's 128256 rows it is 256.
int64_t lm_head_chunk_tokens(int64_t vocab_rows);

struct ModelOptions {
  Checkpointing checkpointing = Checkpointing::Off;
  // Tokens per LM-head chunk; 0: lm_head_chunk_tokens(vocabulary rows), the default.
  int64_t loss_chunk_tokens = 0;
  Backend* backend = nullptr;  // where the ops run; null = the CPU backend
  // The tensor-parallel group when the weights and adapter are one rank's share
  // (model/tensor_parallel.h); null or size 1: the whole model.
  Communicator* tensor_parallel = nullptr;
};

// One micro-batch of `rows` sequences of `seq_len` tokens.
struct TokenBatch {
  int64_t rows = 0;
  int64_t seq_len = 0;
  std::vector<int32_t> input_ids;  // [rows * seq_len]
  // The token each position must predict (already shifted), -100 where there is none.
  std::vector<int32_t> targets;                        // [rows * seq_len]
  std::vector<int32_t> positions;                      // [rows * seq_len] RoPE positions
  std::vector<std::vector<uint32_t>> document_starts;  // per row, ascending, first 0

  int64_t tokens() const { return rows * seq_len; }
  int64_t target_count() const;          // positions whose target is not -100
  void check(int64_t vocab_size) const;  // shapes and ids; ll::Error naming the problem

 private:
  static void check_that(bool ok, const char* what);
};

struct DropoutMask;

class LlamaLoraModel {
 public:
  // `adapter` may be null (base model only). Both must outlive the model.
  LlamaLoraModel(const LlamaWeights& base, LoraAdapter* adapter, ModelOptions options);
  ~LlamaLoraModel();
  LlamaLoraModel(const LlamaLoraModel&) = delete;
  LlamaLoraModel& operator=(const LlamaLoraModel&) = delete;

  // Forward and backward. LoRA gradients are ADDED to the adapter's grad buffers (gradient
  // accumulation); the loss gradient is scaled by `loss_scale` (1 / label tokens of the whole
  // optimizer step). Returns loss_scale * sum of the per-token losses.
  double forward_backward(const TokenBatch& batch, double loss_scale);

  // Forward only: sum of per-token losses over the targets (evaluation). Train mode is for
  // tests that check the training forward (dropout on) against finite differences.
  double forward_loss_sum(const TokenBatch& batch, ForwardMode mode = ForwardMode::Eval);

  // Forward only: logits of every position, [tokens, vocab] fp32 (tests and small models).
  std::vector<float> forward_logits(const TokenBatch& batch, ForwardMode mode = ForwardMode::Eval);

  // Seed of the LoRA dropout masks of the next forward (a new one per micro-batch).
  void set_dropout_seed(uint64_t seed) { dropout_seed_ = seed; }

 private:
  struct Activations;
  struct Workspace;
  // Where a layer's attention output comes from: computed; computed and kept (the forward of
  // a training step under Checkpointing::Selective); copied from what that forward kept (its
  // recompute).
  enum class AttentionSource { Compute, ComputeAndKeep, Kept };
  void forward_layers(const TokenBatch& batch, ForwardMode mode,
                      AttentionSource source = AttentionSource::Compute);
  double lora_dropout() const;  // the dropout probability of the current forward's mode
  void layer_forward(int64_t layer, const TokenBatch& batch, const float* x, float* x_out,
                     Activations& acts, AttentionSource source = AttentionSource::Compute);
  void layer_backward(int64_t layer, const TokenBatch& batch, const float* d_out, float* d_x,
                      Activations& acts);
  void final_norm(const TokenBatch& batch);
  void ensure_rope(const TokenBatch& batch);
  DropoutMask dropout_mask(int64_t layer, LoraTarget target, int64_t in) const;
  bool tensor_parallel() const;
  void tp_sum(float* data, int64_t count);
  // The LM head's rows here (the whole vocabulary unless split), and the shard that combines
  // the cross-entropy over the group when it is split (else null).
  int64_t lm_head_rows() const;
  int64_t loss_chunk_tokens() const;  // options_' or lm_head_chunk_tokens(the vocabulary)
  const VocabShard* vocab_shard();

  const LlamaWeights& base_;
  LoraAdapter* adapter_;
  ModelOptions options_;
  Backend& backend_;
  uint64_t dropout_seed_ = 0;
  ForwardMode mode_ = ForwardMode::Eval;  // of the forward (and backward) in progress
  std::vector<int32_t> cu_seqlens_;       // the batch's documents ([documents + 1] offsets)
  RopeTable rope_;
  std::vector<std::unique_ptr<Activations>> layer_acts_;  // one per layer, or one (checkpointing)
  std::unique_ptr<Workspace> work_;
  std::unique_ptr<BoundLlamaWeights> weights_;  // base_ as the backend reads it // the backward's
                                                // and loss's scratch
  std::vector<Buffer> layer_inputs_;            // [layers + 1][tokens, hidden]
  std::vector<Buffer> kept_attention_;          // Selective: [layers][tokens, heads·head_dim]
  std::vector<Buffer> kept_lse_;                // Selective: [layers][heads, tokens]
  Buffer final_hidden_;                         // [tokens, hidden] after the final norm
  Buffer final_rstd_;                           // [tokens]
  VocabShard vocab_shard_;                      // set when the LM head is split
};

}  // namespace ll
