// See llama_model.h. Buffers are fp32, row-major, [tokens, features] with tokens = rows *
// seq_len; attention runs per row on its slice.
#include "model/llama_model.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "backend/cpu/attention.h"
#include "backend/cpu/cross_entropy.h"
#include "backend/cpu/embedding.h"
#include "backend/cpu/gemm.h"
#include "backend/cpu/rmsnorm.h"
#include "backend/cpu/swiglu.h"
#include "core/error.h"

namespace ll {

using cpu::Accumulate;
using cpu::Transpose;

struct LlamaLoraModel::Activations {
  std::vector<float> xn1;    // [N, hidden] input_layernorm(x)
  std::vector<float> rstd1;  // [N]
  std::vector<float> q;      // [N, heads*head_dim] after RoPE
  std::vector<float> k;      // [N, kv_heads*head_dim] after RoPE
  std::vector<float> v;      // [N, kv_heads*head_dim]
  std::vector<float> attn;   // [N, heads*head_dim] attention output
  std::vector<float> lse;    // [rows, heads, seq_len] softmax log-sum-exp
  std::vector<float> x_mid;  // [N, hidden] residual after attention
  std::vector<float> xn2;    // [N, hidden] post_attention_layernorm(x_mid)
  std::vector<float> rstd2;  // [N]
  std::vector<float> gate;   // [N, intermediate] before SiLU
  std::vector<float> up;     // [N, intermediate]
  std::vector<float> h;      // [N, intermediate] silu(gate) * up
  // Per LoRA target: u = dropout(x)·Aᵀ [N, r], and the dropped input [N, in] (dropout > 0).
  std::array<std::vector<float>, kLoraTargetCount> lora_u;
  std::array<std::vector<float>, kLoraTargetCount> lora_x;
};

namespace {

void resize(std::vector<float>& buffer, int64_t size) {
  buffer.resize(static_cast<size_t>(size));
}

// A counter-based uniform in [0, 1) (splitmix64 of the key): the same mask every time the
// same (seed, layer, target, element) is drawn, so checkpointed recomputation and any thread
// order reproduce the forward exactly.
inline double uniform_from(uint64_t key) {
  key += 0x9e3779b97f4a7c15ull;
  key = (key ^ (key >> 30)) * 0xbf58476d1ce4e5b9ull;
  key = (key ^ (key >> 27)) * 0x94d049bb133111ebull;
  key ^= key >> 31;
  return static_cast<double>(key >> 11) * 0x1.0p-53;
}

// Whether dropout keeps element `index` of the input drawn under `key` (probability 1 - p).
inline bool dropout_keeps(uint64_t key, int64_t index, double p) {
  return uniform_from(key ^ (static_cast<uint64_t>(index) * 0x2545f4914f6cdd1dull)) >= p;
}

}  // namespace

int64_t TokenBatch::target_count() const {
  return std::count_if(targets.begin(), targets.end(), [](int32_t t) { return t >= 0; });
}

void TokenBatch::check(int64_t vocab_size) const {
  const auto n = static_cast<size_t>(tokens());
  check_that(rows > 0 && seq_len > 0, "empty batch");
  check_that(input_ids.size() == n && targets.size() == n && positions.size() == n,
             "input_ids, targets and positions must each hold rows * seq_len entries");
  check_that(document_starts.size() == static_cast<size_t>(rows),
             "document_starts must have one list per row");
  for (size_t i = 0; i < n; ++i) {
    if (input_ids[i] < 0 || input_ids[i] >= vocab_size) {
      fail("batch", "token id " + std::to_string(input_ids[i]) + " at position " +
                        std::to_string(i) + " is outside the vocabulary (" +
                        std::to_string(vocab_size) + ")");
    }
    if (targets[i] != -100 && (targets[i] < 0 || targets[i] >= vocab_size)) {
      fail("batch", "target " + std::to_string(targets[i]) + " at position " + std::to_string(i) +
                        " is outside the vocabulary");
    }
    check_that(positions[i] >= 0, "negative position");
  }
}

void TokenBatch::check_that(bool ok, const char* what) {
  if (!ok) fail("batch", what);
}

LlamaLoraModel::LlamaLoraModel(const LlamaWeights& base, LoraAdapter* adapter, ModelOptions options)
    : base_(base), adapter_(adapter), options_(options) {
  const LlamaConfig& c = base_.config;
  if (adapter_ && adapter_->layers.size() != static_cast<size_t>(c.num_hidden_layers)) {
    fail("model", "adapter has " + std::to_string(adapter_->layers.size()) +
                      " layers but the model has " + std::to_string(c.num_hidden_layers));
  }
  const size_t copies =
      options_.checkpointing == Checkpointing::On ? 1 : static_cast<size_t>(c.num_hidden_layers);
  for (size_t i = 0; i < copies; ++i) layer_acts_.push_back(std::make_unique<Activations>());
  layer_inputs_.resize(static_cast<size_t>(c.num_hidden_layers + 1));
}

LlamaLoraModel::~LlamaLoraModel() = default;

void LlamaLoraModel::ensure_rope(const TokenBatch& batch) {
  const int32_t max_position = *std::max_element(batch.positions.begin(), batch.positions.end());
  if (rope_.max_positions > max_position) return;
  const LlamaConfig& c = base_.config;
  std::optional<cpu::RopeLlama3Scaling> scaling;
  if (c.rope_scaling) {
    scaling = cpu::RopeLlama3Scaling{c.rope_scaling->factor, c.rope_scaling->low_freq_factor,
                                     c.rope_scaling->high_freq_factor,
                                     c.rope_scaling->original_max_position_embeddings};
  }
  // Grow in powers of two so a run rebuilds the table only a few times.
  int64_t size = 256;
  while (size <= max_position) size *= 2;
  rope_ = cpu::rope_table_build(c.rope_theta, c.head_dim, size, scaling);
}

namespace {

// y[N, out] += scale · (dropout(x)·Aᵀ)·Bᵀ, keeping u = dropout(x)·Aᵀ (and the dropped x).
void lora_forward(const LoraMatrix& m, const LoraConfig& config, const float* x, float* y,
                  int64_t n, std::vector<float>& u, std::vector<float>& x_dropped,
                  uint64_t dropout_key) {
  const int64_t r = config.r;
  const float* input = x;
  if (config.dropout > 0) {
    resize(x_dropped, n * m.in);
    const double keep_scale = 1.0 / (1.0 - config.dropout);
    for (int64_t i = 0; i < n * m.in; ++i) {
      x_dropped[static_cast<size_t>(i)] = dropout_keeps(dropout_key, i, config.dropout)
                                              ? static_cast<float>(x[i] * keep_scale)
                                              : 0.0f;
    }
    input = x_dropped.data();
  }
  resize(u, n * r);
  cpu::gemm<float>(Transpose::No, Transpose::Yes, n, r, m.in, 1.0f, input, m.in, m.a.data(), m.in,
                   0.0f, u.data(), r);
  cpu::gemm<float>(Transpose::No, Transpose::Yes, n, m.out, r, static_cast<float>(config.scale()),
                   u.data(), r, m.b.data(), r, 1.0f, y, m.out);
}

// Given dy [N, out]: grad_B += scale·dyᵀ·u, grad_A += (scale·dy·B)ᵀ·dropout(x), and
// dx [N, in] += dropout'(scale·dy·B·A) (the dropout mask and 1/(1-p) again).
void lora_backward(LoraMatrix& m, const LoraConfig& config, const float* x, const float* dy,
                   float* dx, int64_t n, const std::vector<float>& u,
                   const std::vector<float>& x_dropped, std::vector<float>& scratch,
                   uint64_t dropout_key) {
  const int64_t r = config.r;
  const float scale = static_cast<float>(config.scale());
  const float* input = config.dropout > 0 ? x_dropped.data() : x;
  cpu::gemm<float>(Transpose::Yes, Transpose::No, m.out, r, n, scale, dy, m.out, u.data(), r, 1.0f,
                   m.grad_b.data(), r);
  std::vector<float> du(static_cast<size_t>(n * r));  // [N, r]
  cpu::gemm<float>(Transpose::No, Transpose::No, n, r, m.out, scale, dy, m.out, m.b.data(), r, 0.0f,
                   du.data(), r);
  cpu::gemm<float>(Transpose::Yes, Transpose::No, r, m.in, n, 1.0f, du.data(), r, input, m.in, 1.0f,
                   m.grad_a.data(), m.in);
  if (config.dropout > 0) {
    // d dropout(x) / dx: the same mask, times 1 / (1 - p).
    resize(scratch, n * m.in);
    cpu::gemm<float>(Transpose::No, Transpose::No, n, m.in, r, 1.0f, du.data(), r, m.a.data(), m.in,
                     0.0f, scratch.data(), m.in);
    const double keep_scale = 1.0 / (1.0 - config.dropout);
    for (int64_t i = 0; i < n * m.in; ++i) {
      if (dropout_keeps(dropout_key, i, config.dropout)) {
        dx[i] += static_cast<float>(scratch[static_cast<size_t>(i)] * keep_scale);
      }
    }
  } else {
    cpu::gemm<float>(Transpose::No, Transpose::No, n, m.in, r, 1.0f, du.data(), r, m.a.data(), m.in,
                     1.0f, dx, m.in);
  }
}

// The feature sizes every layer's buffers use, derived once from the config.
struct LayerSizes {
  int64_t hidden;  // hidden_size
  int64_t q_out;   // num_attention_heads * head_dim
  int64_t kv_out;  // num_key_value_heads * head_dim
  int64_t inter;   // intermediate_size

  static LayerSizes of(const LlamaConfig& c) {
    return {c.hidden_size, c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim,
            c.intermediate_size};
  }
};

cpu::AttentionShape attention_shape(const LlamaConfig& c, int64_t seq_len) {
  return {seq_len, c.num_attention_heads, c.num_key_value_heads, c.head_dim};
}

}  // namespace

uint64_t LlamaLoraModel::dropout_key(int64_t layer, LoraTarget target) const {
  return dropout_seed_ * 0x100000001b3ull ^ (static_cast<uint64_t>(layer) << 40) ^
         (static_cast<uint64_t>(target) << 32);
}

void LlamaLoraModel::layer_forward(int64_t layer, const TokenBatch& batch, const float* x,
                                   float* x_out, Activations& a) {
  const LlamaConfig& c = base_.config;
  const LlamaLayerWeights& w = base_.layers[static_cast<size_t>(layer)];
  const int64_t n = batch.tokens();
  const auto [hidden, q_out, kv_out, inter] = LayerSizes::of(c);
  const auto* lora = adapter_ ? &adapter_->layers[static_cast<size_t>(layer)] : nullptr;

  // y = x·Wᵀ (+ LoRA of `target` when it is adapted).
  const auto project = [&](LoraTarget target, cpu::WeightView weight, const float* in,
                           int64_t in_features, float* y, int64_t out_features,
                           Accumulate accumulate) {
    cpu::linear_forward<float>(y, in, weight, n, in_features, out_features, accumulate);
    const size_t t = static_cast<size_t>(target);
    if (lora && (*lora)[t]) {
      lora_forward(*(*lora)[t], adapter_->config, in, y, n, a.lora_u[t], a.lora_x[t],
                   dropout_key(layer, target));
    }
  };

  resize(a.xn1, n * hidden);
  resize(a.rstd1, n);
  cpu::rmsnorm_forward<float>(a.xn1.data(), a.rstd1.data(), x, w.input_layernorm, n, hidden,
                              c.rms_norm_eps);
  resize(a.q, n * q_out);
  resize(a.k, n * kv_out);
  resize(a.v, n * kv_out);
  project(LoraTarget::Q, w.q_proj, a.xn1.data(), hidden, a.q.data(), q_out, Accumulate::No);
  project(LoraTarget::K, w.k_proj, a.xn1.data(), hidden, a.k.data(), kv_out, Accumulate::No);
  project(LoraTarget::V, w.v_proj, a.xn1.data(), hidden, a.v.data(), kv_out, Accumulate::No);
  cpu::rope_forward<float>(a.q.data(), a.q.data(), batch.positions.data(), n, c.num_attention_heads,
                           rope_);
  cpu::rope_forward<float>(a.k.data(), a.k.data(), batch.positions.data(), n, c.num_key_value_heads,
                           rope_);

  resize(a.attn, n * q_out);
  resize(a.lse, batch.rows * c.num_attention_heads * batch.seq_len);
  const cpu::AttentionShape shape = attention_shape(c, batch.seq_len);
  for (int64_t row = 0; row < batch.rows; ++row) {
    const int64_t t0 = row * batch.seq_len;
    cpu::attention_forward<float>(
        a.attn.data() + t0 * q_out, a.lse.data() + row * c.num_attention_heads * batch.seq_len,
        a.q.data() + t0 * q_out, a.k.data() + t0 * kv_out, a.v.data() + t0 * kv_out, shape,
        batch.document_starts[static_cast<size_t>(row)]);
  }

  resize(a.x_mid, n * hidden);
  std::copy(x, x + n * hidden, a.x_mid.begin());
  project(LoraTarget::O, w.o_proj, a.attn.data(), q_out, a.x_mid.data(), hidden, Accumulate::Yes);

  resize(a.xn2, n * hidden);
  resize(a.rstd2, n);
  cpu::rmsnorm_forward<float>(a.xn2.data(), a.rstd2.data(), a.x_mid.data(),
                              w.post_attention_layernorm, n, hidden, c.rms_norm_eps);
  resize(a.gate, n * inter);
  resize(a.up, n * inter);
  resize(a.h, n * inter);
  project(LoraTarget::Gate, w.gate_proj, a.xn2.data(), hidden, a.gate.data(), inter,
          Accumulate::No);
  project(LoraTarget::Up, w.up_proj, a.xn2.data(), hidden, a.up.data(), inter, Accumulate::No);
  cpu::swiglu_forward<float>(a.h.data(), a.gate.data(), a.up.data(), n * inter);

  std::copy(a.x_mid.begin(), a.x_mid.end(), x_out);
  project(LoraTarget::Down, w.down_proj, a.h.data(), inter, x_out, hidden, Accumulate::Yes);
}

void LlamaLoraModel::layer_backward(int64_t layer, const TokenBatch& batch, const float* d_out,
                                    float* d_x, Activations& a) {
  const LlamaConfig& c = base_.config;
  const LlamaLayerWeights& w = base_.layers[static_cast<size_t>(layer)];
  const int64_t n = batch.tokens();
  const auto [hidden, q_out, kv_out, inter] = LayerSizes::of(c);
  auto* lora = adapter_ ? &adapter_->layers[static_cast<size_t>(layer)] : nullptr;
  const float* x = layer_inputs_[static_cast<size_t>(layer)].data();
  std::vector<float> scratch;

  // dx_in [N, in] (+)= dy·W (+ the LoRA path, whose weights also get their gradients).
  const auto project_back = [&](LoraTarget target, cpu::WeightView weight, const float* in,
                                int64_t in_features, const float* dy, int64_t out_features,
                                float* dx_in, Accumulate accumulate) {
    cpu::linear_backward_input<float>(dx_in, dy, weight, n, in_features, out_features, accumulate);
    const size_t t = static_cast<size_t>(target);
    if (lora && (*lora)[t]) {
      lora_backward(*(*lora)[t], adapter_->config, in, dy, dx_in, n, a.lora_u[t], a.lora_x[t],
                    scratch, dropout_key(layer, target));
    }
  };

  // MLP: x_out = x_mid + h·W_downᵀ.
  std::vector<float> d_mid(d_out, d_out + n * hidden);    // [N, hidden] the residual passes dy
  std::vector<float> dh(static_cast<size_t>(n * inter));  // [N, intermediate]
  project_back(LoraTarget::Down, w.down_proj, a.h.data(), inter, d_out, hidden, dh.data(),
               Accumulate::No);
  std::vector<float> d_gate(static_cast<size_t>(n * inter));  // [N, intermediate]
  std::vector<float> d_up(static_cast<size_t>(n * inter));    // [N, intermediate]
  cpu::swiglu_backward<float>(d_gate.data(), d_up.data(), dh.data(), a.gate.data(), a.up.data(),
                              n * inter);
  std::vector<float> d_xn(static_cast<size_t>(n * hidden));  // [N, hidden]
  project_back(LoraTarget::Gate, w.gate_proj, a.xn2.data(), hidden, d_gate.data(), inter,
               d_xn.data(), Accumulate::No);
  project_back(LoraTarget::Up, w.up_proj, a.xn2.data(), hidden, d_up.data(), inter, d_xn.data(),
               Accumulate::Yes);
  cpu::rmsnorm_backward<float>(d_mid.data(), d_xn.data(), a.x_mid.data(), a.rstd2.data(),
                               w.post_attention_layernorm, n, hidden, Accumulate::Yes);

  // Attention: x_mid = x + attn·W_oᵀ.
  std::copy(d_mid.begin(), d_mid.end(), d_x);
  std::vector<float> d_attn(static_cast<size_t>(n * q_out));  // [N, heads*head_dim]
  project_back(LoraTarget::O, w.o_proj, a.attn.data(), q_out, d_mid.data(), hidden, d_attn.data(),
               Accumulate::No);
  std::vector<float> dq(static_cast<size_t>(n * q_out));   // [N, heads*head_dim]
  std::vector<float> dk(static_cast<size_t>(n * kv_out));  // [N, kv_heads*head_dim]
  std::vector<float> dv(static_cast<size_t>(n * kv_out));  // [N, kv_heads*head_dim]
  const cpu::AttentionShape shape = attention_shape(c, batch.seq_len);
  for (int64_t row = 0; row < batch.rows; ++row) {
    const int64_t t0 = row * batch.seq_len;
    cpu::attention_backward<float>(dq.data() + t0 * q_out, dk.data() + t0 * kv_out,
                                   dv.data() + t0 * kv_out, d_attn.data() + t0 * q_out,
                                   a.q.data() + t0 * q_out, a.k.data() + t0 * kv_out,
                                   a.v.data() + t0 * kv_out, a.attn.data() + t0 * q_out,
                                   a.lse.data() + row * c.num_attention_heads * batch.seq_len,
                                   shape, batch.document_starts[static_cast<size_t>(row)]);
  }
  cpu::rope_backward<float>(dq.data(), dq.data(), batch.positions.data(), n, c.num_attention_heads,
                            rope_);
  cpu::rope_backward<float>(dk.data(), dk.data(), batch.positions.data(), n, c.num_key_value_heads,
                            rope_);
  project_back(LoraTarget::Q, w.q_proj, a.xn1.data(), hidden, dq.data(), q_out, d_xn.data(),
               Accumulate::No);
  project_back(LoraTarget::K, w.k_proj, a.xn1.data(), hidden, dk.data(), kv_out, d_xn.data(),
               Accumulate::Yes);
  project_back(LoraTarget::V, w.v_proj, a.xn1.data(), hidden, dv.data(), kv_out, d_xn.data(),
               Accumulate::Yes);
  cpu::rmsnorm_backward<float>(d_x, d_xn.data(), x, a.rstd1.data(), w.input_layernorm, n, hidden,
                               Accumulate::Yes);
}

void LlamaLoraModel::forward_layers(const TokenBatch& batch) {
  const LlamaConfig& c = base_.config;
  batch.check(c.vocab_size);
  ensure_rope(batch);
  const int64_t n = batch.tokens();
  for (auto& input : layer_inputs_) resize(input, n * c.hidden_size);
  cpu::embedding_forward<float>(layer_inputs_[0].data(), batch.input_ids.data(), base_.embed_tokens,
                                n, c.vocab_size, c.hidden_size);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    Activations& acts = *layer_acts_[layer_acts_.size() == 1 ? 0 : static_cast<size_t>(i)];
    layer_forward(i, batch, layer_inputs_[static_cast<size_t>(i)].data(),
                  layer_inputs_[static_cast<size_t>(i + 1)].data(), acts);
  }
  final_norm(batch);
}

void LlamaLoraModel::final_norm(const TokenBatch& batch) {
  const LlamaConfig& c = base_.config;
  const int64_t n = batch.tokens();
  resize(final_hidden_, n * c.hidden_size);
  resize(final_rstd_, n);
  cpu::rmsnorm_forward<float>(final_hidden_.data(), final_rstd_.data(), layer_inputs_.back().data(),
                              base_.norm, n, c.hidden_size, c.rms_norm_eps);
}

double LlamaLoraModel::forward_backward(const TokenBatch& batch, double loss_scale) {
  const LlamaConfig& c = base_.config;
  forward_layers(batch);
  const int64_t n = batch.tokens();
  std::vector<float> d_hidden(static_cast<size_t>(n * c.hidden_size));  // [N, hidden]
  const double loss = cpu::cross_entropy_forward_backward<float>(
      d_hidden.data(), final_hidden_.data(), base_.lm_head, batch.targets.data(), n, c.hidden_size,
      c.vocab_size, loss_scale, options_.loss_chunk_tokens);
  std::vector<float> d_x(static_cast<size_t>(n * c.hidden_size));  // grad of the stream
  cpu::rmsnorm_backward<float>(d_x.data(), d_hidden.data(), layer_inputs_.back().data(),
                               final_rstd_.data(), base_.norm, n, c.hidden_size, Accumulate::No);
  std::vector<float> d_prev(d_x.size());
  for (int64_t i = c.num_hidden_layers - 1; i >= 0; --i) {
    Activations& acts = *layer_acts_[layer_acts_.size() == 1 ? 0 : static_cast<size_t>(i)];
    if (options_.checkpointing == Checkpointing::On) {
      // Recompute this layer's activations from its saved input (same dropout masks: they
      // are a pure function of seed, layer and element).
      std::vector<float> discard(d_x.size());
      layer_forward(i, batch, layer_inputs_[static_cast<size_t>(i)].data(), discard.data(), acts);
    }
    layer_backward(i, batch, d_x.data(), d_prev.data(), acts);
    std::swap(d_x, d_prev);
  }
  return loss;
}

double LlamaLoraModel::forward_loss_sum(const TokenBatch& batch) {
  const LlamaConfig& c = base_.config;
  forward_layers(batch);
  const int64_t n = batch.tokens();
  std::vector<float> losses(static_cast<size_t>(n));
  cpu::cross_entropy_forward<float>(losses.data(), final_hidden_.data(), base_.lm_head,
                                    batch.targets.data(), n, c.hidden_size, c.vocab_size,
                                    options_.loss_chunk_tokens);
  double sum = 0;
  for (float value : losses) sum += value;
  return sum;
}

std::vector<float> LlamaLoraModel::forward_logits(const TokenBatch& batch) {
  const LlamaConfig& c = base_.config;
  forward_layers(batch);
  const int64_t n = batch.tokens();
  std::vector<int64_t> rows(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) rows[static_cast<size_t>(i)] = i;
  std::vector<float> logits(static_cast<size_t>(n * c.vocab_size));
  cpu::lm_head_logits<float>(logits.data(), final_hidden_.data(), base_.lm_head, rows.data(), n, n,
                             c.hidden_size, c.vocab_size);
  return logits;
}

}  // namespace ll
