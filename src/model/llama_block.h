// One Llama decoder block's forward with LoRA, and the LoRA path itself, shared by training
// (LlamaLoraModel) and KV-cache generation (LlamaGenerator): the block and its LoRA path are
// written once. Per block (x: the residual stream, [N, hidden] fp32):
//   xn1 = rmsnorm(x) ; q,k,v = xn1·Wᵀ (+ b: Qwen2) (+ LoRA) ; q,k = rope(q,k)
//   a = attention(q, k, v)                 (the caller's BlockAttention)
//   x_mid = x + a·W_oᵀ (+ LoRA) ; xn2 = rmsnorm(x_mid)
//   h = silu(xn2·W_gateᵀ (+LoRA)) * (xn2·W_upᵀ (+LoRA)) ; x_out = x_mid + h·W_downᵀ (+ LoRA)
// With a tensor-parallel group the o and down outputs are partial sums: the residual joins on
// rank 0 and the group's all-reduce makes the whole value.
#pragma once

#include <array>
#include <cstdint>
#include <functional>

#include "backend/backend.h"
#include "formats/llama_config.h"
#include "model/llama_weights.h"
#include "model/lora.h"
#include "parallel/communicator.h"

namespace ll {

// What a block forward keeps: the backward of training reads all of it.
struct BlockActivations {
  Buffer xn1;    // [N, hidden] input_layernorm(x)
  Buffer rstd1;  // [N]
  Buffer q;      // [N, heads*head_dim] after RoPE
  Buffer k;      // [N, kv_heads*head_dim] after RoPE
  Buffer v;      // [N, kv_heads*head_dim]
  Buffer attn;   // [N, heads*head_dim] attention output
  Buffer lse;    // [heads, N] softmax log-sum-exp (where the attention keeps it)
  Buffer x_mid;  // [N, hidden] residual after attention
  Buffer xn2;    // [N, hidden] post_attention_layernorm(x_mid)
  Buffer rstd2;  // [N]
  Buffer gate;   // [N, intermediate] before SiLU
  Buffer up;     // [N, intermediate]
  Buffer h;      // [N, intermediate] silu(gate) * up
  // Per LoRA target: u = dropout(x)·Aᵀ [N, r].
  std::array<Buffer, kLoraTargetCount> lora_u;
};

// A LoRA dropout mask: its key and where this rank's input sits in the whole input.
struct DropoutMask {
  uint64_t key = 0;
  DropoutWindow window;
};

// The attention step of a block: training's one variable-length call over the packed
// micro-batch, or generation's store-into-the-cache-and-attend per sequence.
class BlockAttention {
 public:
  virtual ~BlockAttention() = default;
  // out [N, heads*head_dim] from q [N, heads*head_dim] and k, v [N, kv_heads*head_dim]
  // (after RoPE); `lse` is the block's log-sum-exp buffer, for attentions that keep it.
  virtual void attend(int64_t layer, const float* q, const float* k, const float* v, float* out,
                      Buffer& lse) = 0;
};

// What every block of one forward shares.
struct BlockContext {
  Backend& backend;
  const LlamaConfig& config;
  const LoraAdapter* adapter = nullptr;  // null: the base model
  double dropout = 0;                    // LoRA dropout probability of this forward (0: Eval)
  // The mask of (layer, target) for a projection of `in` input features (dropout > 0 only).
  std::function<DropoutMask(int64_t layer, LoraTarget target, int64_t in)> dropout_mask;
  Communicator* tensor_parallel = nullptr;  // null or size 1: the whole model
  int64_t tokens = 0;                       // N
  const int32_t* positions = nullptr;       // host [N] RoPE positions
  const RopeTable* rope = nullptr;
};

// One block: x [N, hidden] -> x_out [N, hidden] (x_out may be x), keeping `a`.
void llama_block_forward(const BlockContext& context, int64_t layer, const LlamaLayerWeights& w,
                         const float* x, float* x_out, BlockActivations& a,
                         BlockAttention& attention);

// The LoRA path of one projection: y[N, out] += m.scale · (dropout(x)·Aᵀ)·Bᵀ (its own r and
// scale: rank_pattern / alpha_pattern), keeping u = dropout(x)·Aᵀ. The dropout is folded into
// the products (Backend::lora_down_forward): no dropped copy of x is kept.
void lora_forward(Backend& be, const LoraMatrix& m, double dropout, const float* x, float* y,
                  int64_t n, Buffer& u, const DropoutMask& mask);

// Its backward, given dy [N, out]: grad_B += scale·dyᵀ·u, grad_A += (scale·dy·B)ᵀ·dropout(x),
// and dx [N, in] += dropout'(scale·dy·B·A) (the dropout mask and 1/(1-p) again, from x and
// the mask's key). `du` is the caller's work memory.
void lora_backward(Backend& be, const LoraMatrix& m, double dropout, const float* x,
                   const float* dy, float* dx, int64_t n, const Buffer& u, Buffer& du,
                   const DropoutMask& mask);

}  // namespace ll
