// See llama_block.h.
#include "model/llama_block.h"

namespace ll {

// y[N, out] += scale · (dropout(x)·Aᵀ)·Bᵀ, keeping u = dropout(x)·Aᵀ. `dropout` is the
// probability of this forward's mode (0 in Eval); the backend folds it into the product.
void lora_forward(Backend& be, const LoraMatrix& m, double dropout, const float* x, float* y,
                  int64_t n, Buffer& u, const DropoutMask& mask) {
  const int64_t r = m.r;
  u.resize(be, n * r);
  be.lora_down_forward(u.data(), x, m.a.data(), n, m.in, r,
                       LoraDropout{dropout, mask.key, mask.window});
  be.gemm(Transpose::No, Transpose::Yes, n, m.out, r, static_cast<float>(m.scale), u.data(), r,
          m.b.data(), r, 1.0f, y, m.out);
}

// Given dy [N, out]: grad_B += scale·dyᵀ·u, du = scale·dy·B, then grad_A += duᵀ·dropout(x)
// and dx [N, in] += dropout'(du·A) (the dropout mask and 1/(1-p) again).
void lora_backward(Backend& be, const LoraMatrix& m, double dropout, const float* x,
                   const float* dy, float* dx, int64_t n, const Buffer& u, Buffer& du,
                   const DropoutMask& mask) {
  const int64_t r = m.r;
  const float scale = static_cast<float>(m.scale);
  be.gemm(Transpose::Yes, Transpose::No, m.out, r, n, scale, dy, m.out, u.data(), r, 1.0f,
          m.grad_b.data(), r);
  du.resize(be, n * r);  // [N, r]
  be.gemm(Transpose::No, Transpose::No, n, r, m.out, scale, dy, m.out, m.b.data(), r, 0.0f,
          du.data(), r);
  be.lora_down_backward(m.grad_a.data(), dx, du.data(), x, m.a.data(), n, m.in, r,
                        LoraDropout{dropout, mask.key, mask.window});
}

void llama_block_forward(const BlockContext& context, int64_t layer, const LlamaLayerWeights& w,
                         const float* x, float* x_out, BlockActivations& a,
                         BlockAttention& attention) {
  const LlamaConfig& c = context.config;
  Backend& be = context.backend;
  const int64_t n = context.tokens;
  const int64_t hidden = c.hidden_size;
  const int64_t q_out = c.num_attention_heads * c.head_dim;
  const int64_t kv_out = c.num_key_value_heads * c.head_dim;
  const int64_t inter = c.intermediate_size;
  const auto* lora =
      context.adapter ? &context.adapter->layers()[static_cast<size_t>(layer)] : nullptr;
  Communicator* tp = context.tensor_parallel && context.tensor_parallel->size() > 1
                         ? context.tensor_parallel
                         : nullptr;

  // y = x·Wᵀ (+ bias) (+ LoRA of `target` when it is adapted). The bias belongs to the base
  // layer: peft adds scale·B(A·x) to the base output, bias included.
  const auto project = [&](LoraTarget target, WeightView weight, const float* in,
                           int64_t in_features, float* y, int64_t out_features,
                           Accumulate accumulate, WeightView bias = {}) {
    const BackendRegion region(be, lora_target_name(target).data());  // a string literal
    be.linear_forward(y, in, weight, n, in_features, out_features, accumulate);
    if (bias.data) be.bias_add(y, bias, n, out_features);
    const size_t t = static_cast<size_t>(target);
    if (lora && (*lora)[t]) {
      const LoraMatrix& m = *(*lora)[t];
      const DropoutMask mask =
          context.dropout > 0 ? context.dropout_mask(layer, target, m.in) : DropoutMask{};
      lora_forward(be, m, context.dropout, in, y, n, a.lora_u[t], mask);
    }
  };

  a.xn1.resize(be, n * hidden);
  a.rstd1.resize(be, n);
  be.rmsnorm_forward(a.xn1.data(), a.rstd1.data(), x, w.input_layernorm, n, hidden, c.rms_norm_eps);
  a.q.resize(be, n * q_out);
  a.k.resize(be, n * kv_out);
  a.v.resize(be, n * kv_out);
  project(LoraTarget::Q, w.q_proj, a.xn1.data(), hidden, a.q.data(), q_out, Accumulate::No,
          w.q_bias);
  project(LoraTarget::K, w.k_proj, a.xn1.data(), hidden, a.k.data(), kv_out, Accumulate::No,
          w.k_bias);
  project(LoraTarget::V, w.v_proj, a.xn1.data(), hidden, a.v.data(), kv_out, Accumulate::No,
          w.v_bias);
  be.rope_forward(a.q.data(), a.q.data(), context.positions, n, c.num_attention_heads,
                  *context.rope);
  be.rope_forward(a.k.data(), a.k.data(), context.positions, n, c.num_key_value_heads,
                  *context.rope);

  a.attn.resize(be, n * q_out);
  attention.attend(layer, a.q.data(), a.k.data(), a.v.data(), a.attn.data(), a.lse);

  // A row-parallel projection's output is a partial sum on each tensor-parallel rank: the
  // residual joins on rank 0 only, then the group's sum is the whole x + a·W_oᵀ.
  const bool residual_here = tp == nullptr || tp->rank() == 0;
  const Accumulate onto_residual = residual_here ? Accumulate::Yes : Accumulate::No;
  a.x_mid.resize(be, n * hidden);
  if (residual_here) be.copy(a.x_mid.data(), x, n * hidden);
  project(LoraTarget::O, w.o_proj, a.attn.data(), q_out, a.x_mid.data(), hidden, onto_residual);
  if (tp) tp->all_reduce(a.x_mid.data(), n * hidden, ReduceOp::Sum);

  a.xn2.resize(be, n * hidden);
  a.rstd2.resize(be, n);
  be.rmsnorm_forward(a.xn2.data(), a.rstd2.data(), a.x_mid.data(), w.post_attention_layernorm, n,
                     hidden, c.rms_norm_eps);
  a.gate.resize(be, n * inter);
  a.up.resize(be, n * inter);
  a.h.resize(be, n * inter);
  project(LoraTarget::Gate, w.gate_proj, a.xn2.data(), hidden, a.gate.data(), inter,
          Accumulate::No);
  project(LoraTarget::Up, w.up_proj, a.xn2.data(), hidden, a.up.data(), inter, Accumulate::No);
  be.swiglu_forward(a.h.data(), a.gate.data(), a.up.data(), n * inter);

  if (residual_here) be.copy(x_out, a.x_mid.data(), n * hidden);
  project(LoraTarget::Down, w.down_proj, a.h.data(), inter, x_out, hidden, onto_residual);
  if (tp) tp->all_reduce(x_out, n * hidden, ReduceOp::Sum);
}

}  // namespace ll
