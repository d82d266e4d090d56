// Attention of the new tokens of ONE sequence against its KV cache (generation). The cache
// already holds the keys (after RoPE) and values of the new tokens too, so m new queries at
// positions p0 .. p0+m-1 attend causally to cached positions 0 .. p0+m-1:
//
//   S[h, i, j]   = q[i, h, :] . k[j, h / group, :] / sqrt(head_dim)      j <= p0 + i
//   out[i, h, :] = sum_j softmax_j(S[h, i, j]) v[j, h / group, :]
//
// group = num_attention_heads / num_key_value_heads (GQA). This is attention_forward
// (attention.h) with one document, for queries that are the last m rows of the sequence, in
// fp32: scale head_dim^-0.5 computed in double and rounded once (as transformers' Python
// float), softmax with the row maximum subtracted, sums in fp32. Per (head, query) it runs two
// passes over the keys (scores into a scratch row, then exp / sum / P·V), which suits m = 1
// decode steps where a tiled kernel has nothing to tile. OpenMP over (head, query) tasks when
// the work is large enough to pay for a parallel region.
//
// Buffers, row-major, PyTorch order:
//   q, out          [m, num_attention_heads * head_dim]
//   k_cache, v_cache [p0 + m (at least), num_key_value_heads * head_dim]
#pragma once

#include <cstdint>

#include "backend/ops.h"

namespace ll::cpu {

using ll::DecodeAttentionShape;  // backend/ops.h

// out [m, n_heads*head_dim] = causal attention of q against rows [0, p0 + m) of the caches.
// Shapes are checked (ll::Error naming the bad size).
void attention_decode(float* out, const float* q, const float* k_cache, const float* v_cache,
                      const DecodeAttentionShape& shape);

}  // namespace ll::cpu
