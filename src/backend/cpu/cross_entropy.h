// The LM head fused with the cross-entropy loss, over chunks of tokens, so the full
// [tokens, vocab] logits never exist (for Llama-3, 2048 tokens × 128256 × 4 bytes = 1 GiB).
//
//   logits[t, v] = h[t] · W_lm[v]                     h: final-norm output, W_lm: [vocab, hidden]
//   loss_t       = logsumexp(logits[t]) - logits[t, labels[t]]       (labels[t] != -100)
//   loss         = loss_scale · Σ_t loss_t
//   dh[t]        = loss_scale · (softmax(logits[t]) - onehot(labels[t])) · W_lm
//
// loss_scale = 1 / (number of label tokens in the whole optimizer step, over micro-batches and
// data-parallel ranks), so the summed losses are the mean over all label tokens of the step
// (DESIGN.md: not a mean of means). The head is frozen (it may be the tied embedding): no
// W_lm gradient. Labels are already shifted (labels[t] is the target of position t), as the
// data pipeline writes them; -100 marks a token without a loss (prompt, padding), as in torch.
//
// Numerics: the logits are the fp32 GEMM (double for T = double; with Precision::Bf16, T =
// float only, h and W_lm rounded to bf16 with fp32 accumulation, backend/ops.h); log-sum-exp
// subtracts the row maximum and sums exp in T. Only labelled tokens are gathered into the chunks,
// so the prompt tokens of an SFT batch cost nothing. Each call allocates its chunk buffers
// ([chunk_tokens, vocab] and [chunk_tokens, hidden] T).
#pragma once

#include <cstdint>
#include <functional>

#include "backend/cpu/weights.h"

namespace ll::cpu {

using ll::kIgnoreLabel;  // backend/ops.h
using ll::Precision;
// Vocabulary parallelism: backend/ops.h VocabShardOf, for the activation type T.
template <typename T>
using VocabShard = ll::VocabShardOf<T>;

// Training: returns loss_scale · Σ loss_t over the labelled tokens (summed in double) and
// writes dh[tokens, hidden] (rows of ignored tokens are zero). Throws ll::Error, before
// writing anything, on a label outside [0, vocab) that is not -100, or a chunk_tokens < 1.
template <typename T>
double cross_entropy_forward_backward(T* dh, const T* h, WeightView w_lm, const int32_t* labels,
                                      int64_t tokens, int64_t hidden, int64_t vocab,
                                      double loss_scale, int64_t chunk_tokens,
                                      const VocabShard<T>* shard = nullptr,
                                      Precision precision = Precision::Fp32);

// Evaluation: loss[tokens] = loss_t, unscaled (0 where the label is -100, as torch's
// cross_entropy(reduction="none") gives).
template <typename T>
void cross_entropy_forward(T* loss, const T* h, WeightView w_lm, const int32_t* labels,
                           int64_t tokens, int64_t hidden, int64_t vocab, int64_t chunk_tokens,
                           const VocabShard<T>* shard = nullptr,
                           Precision precision = Precision::Fp32);

// The logits of a few rows (generation: the last position of each sequence; tests):
// logits[n_rows, vocab] = h[rows[r]] · W_lmᵀ. Each rows[r] must lie in [0, tokens).
template <typename T>
void lm_head_logits(T* logits, const T* h, WeightView w_lm, const int64_t* rows, int64_t n_rows,
                    int64_t tokens, int64_t hidden, int64_t vocab,
                    Precision precision = Precision::Fp32);

}  // namespace ll::cpu
