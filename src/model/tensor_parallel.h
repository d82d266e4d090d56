// Tensor parallelism (DESIGN.md "Tensor parallelism"): rank r of n holds
//   column-parallel q, k, v, gate, up   rows [r·out/n, (r+1)·out/n) of W (its heads, its part
//                                       of the MLP) and of the bias (Qwen2's q/k/v); LoRA A
//                                       whole, LoRA B the same rows
//   row-parallel o, down                columns [r·in/n, (r+1)·in/n) of W; LoRA A the same
//                                       columns, LoRA B whole
// and everything else (embeddings, norms) whole. The LM head is split by vocabulary rows when
// the vocabulary divides by n (Megatron's parallel cross-entropy: each rank computes its
// logits, the softmax statistics are combined over the group), else held whole. The rank's share of
// the model is itself a Llama model with num_attention_heads, num_key_value_heads and
// intermediate_size divided by n (head_dim and hidden_size unchanged), so LlamaLoraModel runs it as
// is and only adds the reductions: the outputs of o and down (and their LoRA paths) are summed over
// the tensor-parallel group in the forward, the input gradients of q/k/v and gate/up in the
// backward, and the gradients of whole (replicated) LoRA tensors after the backward.
#pragma once

#include <cstdint>

#include "model/llama_weights.h"
#include "model/lora.h"

namespace ll {

// Errors naming --tensor_parallel_size when heads, kv heads or intermediate_size do not
// divide by `size` (or size < 1).
void check_tensor_parallel_size(const LlamaConfig& config, int64_t size);

// The config of one rank's share: heads, kv heads and intermediate_size divided by `size`.
LlamaConfig tensor_parallel_config(const LlamaConfig& config, int64_t size);

// Rank `rank`'s share of `full`. Row slices (q, k, v, gate, up) point into full's memory;
// column slices (o, down) are copies held by the result. `full` must outlive the result.
LlamaWeights slice_weights_for_tp(const LlamaWeights& full, int64_t rank, int64_t size);

// Rank `rank`'s part of every LoRA tensor of a whole adapter (gradients zero). The split
// dimension of every tensor must divide by `size` (check_tensor_parallel_size ensures it).
LoraAdapter slice_adapter_for_tp(const LoraAdapter& full, int64_t rank, int64_t size);

}  // namespace ll
