// Causal grouped-query self-attention of one sequence, kept inside each packed document,
// tiled flash-attention style (FlashAttention-2): an online softmax over key blocks, so
// memory stays O(tokens * head_dim) and the [tokens, tokens] score matrix never exists.
//
//   S[h, i, j] = q[i, h, :] . k[j, h / group, :] / sqrt(head_dim)
//   P[h, i, :] = softmax_j(S[h, i, j]) over doc_start(i) <= j <= i
//   out[i, h, :] = sum_j P[h, i, j] v[j, h / group, :]
//
// group = num_attention_heads / num_key_value_heads (query head h reads kv head h / group),
// doc_start(i) = the last document start <= i. The forward saves the per-row log-sum-exp of
// the scaled scores, lse[h, i] = log sum_j exp(S[h, i, j]); the backward recomputes P block by
// block from q, k and lse (FlashAttention-2 backward: D_i = rowsum(dO_i * O_i),
// dS = P * (dP - D), dq = dS k / sqrt(d), dk = dSᵀ q / sqrt(d), dv = Pᵀ dO, dk/dv summed over
// the query heads of a group). Matches transformers' eager/sdpa Llama attention with a causal
// (block-diagonal per document) mask: scale 1/sqrt(head_dim), softmax in fp32 (fp64 for T =
// double, the finite-difference instantiation).
//
// Buffers are one sequence (the model loops over batch rows), row-major, PyTorch order:
// q/out [tokens, num_attention_heads * head_dim], k/v [tokens, num_key_value_heads * head_dim].
// OpenMP: the forward runs (head, 64-query block) tasks, the backward one task per query head
// (each key block of it, then the query blocks that see it). Besides small per-thread tiles,
// the backward with group > 1 holds per-query-head dK/dV, 2 x [T, n_heads*head_dim], summed
// over each group at the end (so heads of a group never write the same rows).
#pragma once

#include <cstdint>
#include <span>

#include "backend/ops.h"

namespace ll::cpu {

using ll::AttentionShape;  // backend/ops.h

// document_starts: where each packed document begins in the sequence, ascending, first 0, all
// < tokens (data/packing.h's SequenceView::document_starts). Empty or {0} = one document (plain
// causal attention). Shapes and starts are checked (ll::Error).
//
// out [T, n_heads*head_dim] T, lse [n_heads, T] T (the softmax accumulator type).
template <typename T>
void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v,
                       const AttentionShape& shape, std::span<const uint32_t> document_starts);

// Gradients of attention_forward given d_out [T, n_heads*head_dim] and the forward's q, k, v,
// out, lse. Writes (does not accumulate into) d_q [T, n_heads*head_dim] and d_k, d_v
// [T, n_kv_heads*head_dim].
template <typename T>
void attention_backward(T* d_q, T* d_k, T* d_v, const T* d_out, const T* q, const T* k, const T* v,
                        const T* out, const T* lse, const AttentionShape& shape,
                        std::span<const uint32_t> document_starts);

// The vector instructions the kernels use: the best this CPU has, found once per process.
// Baseline = 16-byte vectors (SSE2 on x86-64). The AVX2 and AVX-512 kernels use FMA, so the
// levels agree to fp32 rounding, not bit for bit (the double instantiation always runs the
// baseline kernel).
enum class CpuSimd { Baseline, Avx2, Avx512 };
CpuSimd attention_simd_best();
// Lowers (or restores) the level for every later call; tests use it to run each kernel the
// CPU can. Throws ll::Error for a level the CPU lacks.
void attention_set_simd(CpuSimd level);

// Multiply-add FLOPs of the forward (2 per multiply-add over QKᵀ and PV, counting only the
// (query, key) pairs inside the causal/document window); the backward is 2.5x this
// (QKᵀ recomputed, dP = dO Vᵀ, dV, dK, dQ). For benchmarks.
double attention_forward_flops(const AttentionShape& shape,
                               std::span<const uint32_t> document_starts);

}  // namespace ll::cpu
