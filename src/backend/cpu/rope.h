// Rotary position embedding (RoPE) exactly as transformers' Llama applies it: the rotate-half
// layout of HF checkpoints, inverse frequencies from rope_theta with optional `llama3`
// rope_scaling (Llama 3.1+), cos/sin computed in fp32 from fp32 angles.
//
//   inv_freq[i] = 1 / theta^(2i / head_dim)                 i < head_dim/2, fp32
//   angle[p, i] = p * inv_freq[i]                           fp32 product, as transformers
//   x'[j]        = x[j] * cos[p, j] - x[j + half] * sin[p, j]      j < half = head_dim/2
//   x'[j + half] = x[j + half] * cos[p, j] + x[j] * sin[p, j]
//
// which is transformers' x * cos + rotate_half(x) * sin with emb = cat(freqs, freqs), so
// cos/sin need only their first half. The op is a per-(token, head) rotation, hence linear in
// x; its backward is the transposed rotation (rotation by -angle).
//
// Reference: transformers 4.46.3 modeling_rope_utils.py (_compute_default_rope_parameters,
// _compute_llama3_parameters) and LlamaRotaryEmbedding.forward / apply_rotary_pos_emb;
// pinned by tests/fixtures/rope_llama3.json (scripts/fixtures/make_rope_fixture.py).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "backend/ops.h"

namespace ll::cpu {

using ll::RopeLlama3Scaling;  // backend/ops.h
using ll::RopeTable;

// [head_dim/2] fp32: transformers' LlamaRotaryEmbedding.inv_freq, every step rounded to fp32
// as torch does it. Throws ll::Error on a head_dim that is not positive and even, a
// non-positive theta, or scaling factors that do not make sense.
std::vector<float> rope_inv_freq(double rope_theta, int64_t head_dim,
                                 const std::optional<RopeLlama3Scaling>& scaling);

// The cos/sin table (backend/ops.h RopeTable) for positions [0, max_positions).
RopeTable rope_table_build(double rope_theta, int64_t head_dim, int64_t max_positions,
                           const std::optional<RopeLlama3Scaling>& scaling);

// out = RoPE(in) for in/out [tokens, heads, head_dim] (q: heads = num_attention_heads,
// k: heads = num_key_value_heads), token t at position positions[t] ([tokens] int32, each in
// [0, table.max_positions), else ll::Error). `out` may be `in` (in place).
// T is float or double; the cos/sin are the fp32 table's values either way, so the double
// instantiation is the same linear map (for finite-difference tests).
template <typename T>
void rope_forward(T* out, const T* in, const int32_t* positions, int64_t tokens, int64_t heads,
                  const RopeTable& table);

// d_in = RoPEᵀ(d_out): the gradient of rope_forward (rotation by -angle). Same shapes as
// rope_forward; `d_in` may be `d_out`. Writes (does not accumulate into) d_in.
template <typename T>
void rope_backward(T* d_in, const T* d_out, const int32_t* positions, int64_t tokens, int64_t heads,
                   const RopeTable& table);

}  // namespace ll::cpu
