// Causal GQA attention within packed documents, flash-attention style (attention.h).
//
// Work is cut into 64-query × 64-key tiles, and each tile into row tiles of 4-8 queries that
// compute only the key columns their rows see (the causal diagonal and document edges cost
// little). A tile is a few small matrix products (S = Q Kᵀ, O += P V; the backward also
// dP = dO Vᵀ, dV += Pᵀ dO, dK += dSᵀ Q, dQ += dS K) by the register-tiled kernel of
// attention_simd.h, and a vectorised softmax. That code is compiled three times, for 16-byte
// vectors (SSE2, the x86-64 baseline; NEON elsewhere), AVX2+FMA and AVX-512 (x86-64 only), and
// the best the CPU has is picked once per process (attention_set_simd can lower it, for
// tests). Each output element sums its products in order; the FMA of the AVX2/AVX-512 builds
// and the 1-ULP vector expf make the variants agree to fp32 rounding, not bit for bit. The
// double instantiation (finite-difference tests) uses the C library's exp.
#include "backend/cpu/attention.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "backend/cpu/attention_simd.h"
#include "core/error.h"

namespace ll::cpu {

namespace {

using simd::exp_in_place;
using simd::gemm;
using simd::Into;
using simd::lanes_in;
using simd::SimdAvx2;
using simd::SimdAvx512;
using simd::SimdBaseline;
using simd::SimdDouble;

constexpr const char* kOrigin = "attention";
constexpr int64_t kBlock = 64;  // queries and keys per tile
// Below this many q elements (tokens * heads * head_dim) a call runs on one thread: starting
// a parallel region costs more than the work (and much more on a loaded machine).
constexpr int64_t kParallelMinElements = 16384;

// ---- Shapes and documents -----------------------------------------------------------------

void check_shape(const AttentionShape& shape) {
  check(shape.tokens >= 0 && shape.num_attention_heads > 0 && shape.num_key_value_heads > 0 &&
            shape.head_dim > 0,
        kOrigin, "tokens must be >= 0 and heads, head_dim > 0");
  check(shape.num_attention_heads % shape.num_key_value_heads == 0, kOrigin,
        "num_attention_heads (" + std::to_string(shape.num_attention_heads) +
            ") is not a multiple of num_key_value_heads (" +
            std::to_string(shape.num_key_value_heads) + ")");
}

// For every token, the half-open token range [start, end) of its document.
struct DocumentRanges {
  std::vector<int64_t> start;  // [T]
  std::vector<int64_t> end;    // [T]
};

DocumentRanges map_documents(int64_t tokens, std::span<const uint32_t> starts) {
  if (!starts.empty()) {
    check(starts[0] == 0, kOrigin, "the first document must start at 0");
    for (size_t d = 1; d < starts.size(); ++d) {
      check(starts[d] > starts[d - 1], kOrigin, "document starts must be ascending");
    }
    check(static_cast<int64_t>(starts.back()) < std::max<int64_t>(tokens, 1), kOrigin,
          "document start " + std::to_string(starts.back()) + " is not < tokens (" +
              std::to_string(tokens) + ")");
  }
  DocumentRanges ranges;
  ranges.start.resize(tokens);
  ranges.end.resize(tokens);
  const size_t documents = std::max<size_t>(starts.size(), 1);
  for (size_t d = 0; d < documents; ++d) {
    const int64_t begin = starts.empty() ? 0 : starts[d];
    const int64_t end = d + 1 < starts.size() ? static_cast<int64_t>(starts[d + 1]) : tokens;
    for (int64_t t = begin; t < end; ++t) {
      ranges.start[t] = begin;
      ranges.end[t] = end;
    }
  }
  return ranges;
}

// Which keys of one key block each row of one query block sees. Both ends only grow with the
// row (document starts ascend, causality adds one key per row), so the rows that see a given
// column range, and the columns a range of rows sees, are contiguous.
struct TileWindows {
  int64_t lo[kBlock];    // row r sees keys [lo[r], hi[r]) of the block (relative); empty when
  int64_t hi[kBlock];    // lo >= hi (a row of a later document than these keys)
  int64_t c_min, c_max;  // the union over rows; empty when c_min >= c_max
};

inline void map_tile(TileWindows& w, const DocumentRanges& docs, int64_t i0, int64_t rows,
                     int64_t j0, int64_t keys) {
  w.c_min = kBlock;
  w.c_max = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = i0 + r;
    w.lo[r] = std::max(j0, docs.start[i]) - j0;
    w.hi[r] = std::min(j0 + keys, i + 1) - j0;
    if (w.lo[r] < w.hi[r]) {
      w.c_min = std::min(w.c_min, w.lo[r]);
      w.c_max = std::max(w.c_max, w.hi[r]);
    }
  }
}

// Union [lo, hi) of the windows of rows [r0, r1); false when all are empty.
inline bool rows_window(const TileWindows& w, int64_t r0, int64_t r1, int64_t& lo, int64_t& hi) {
  lo = kBlock;
  hi = 0;
  for (int64_t r = r0; r < r1; ++r) {
    if (w.lo[r] < w.hi[r]) {
      lo = std::min(lo, w.lo[r]);
      hi = std::max(hi, w.hi[r]);
    }
  }
  return lo < hi;
}

// Rows [r0, r1) whose windows meet columns [c0, c1); false when none does.
inline bool columns_rows(const TileWindows& w, int64_t rows, int64_t c0, int64_t c1, int64_t& r0,
                         int64_t& r1) {
  r0 = rows;
  r1 = 0;
  for (int64_t r = 0; r < rows; ++r) {
    if (w.lo[r] < w.hi[r] && w.lo[r] < c1 && w.hi[r] > c0) {
      r0 = std::min(r0, r);
      r1 = r + 1;
    }
  }
  return r0 < r1;
}

// dst [head_dim, kBlock] = src rows [keys, head_dim] (row stride `stride`) transposed.
template <typename T>
[[gnu::always_inline]] inline void transpose_block(T* dst, const T* src, int64_t keys,
                                                   int64_t stride, int64_t head_dim) {
  for (int64_t c = 0; c < keys; ++c) {
    for (int64_t e = 0; e < head_dim; ++e) dst[e * kBlock + c] = src[c * stride + e];
  }
}

// Everything a task reads; buffers as in attention.h.
template <typename T>
struct Problem {
  const T* q;      // [T, n_heads*head_dim]
  const T* k;      // [T, n_kv_heads*head_dim]
  const T* v;      // [T, n_kv_heads*head_dim]
  const T* out;    // [T, n_heads*head_dim] (backward)
  const T* d_out;  // [T, n_heads*head_dim] (backward)
  const T* lse;    // [n_heads, T] (backward)
  const DocumentRanges* docs;
  int64_t tokens, head_dim, group, q_stride, kv_stride;
  T scale;
};

// Row tiles: the products run on kRows query rows at a time, each over only the key columns
// its rows see, so diagonal and document-boundary tiles skip most masked work. Elementwise
// steps run on whole vectors covering a row tile's columns (kBlock is a multiple of the
// width); lanes outside a row's own window become 0.
template <typename S>
[[gnu::always_inline]] inline int64_t cover_begin(int64_t lo) {
  return lo / S::kWidth * S::kWidth;
}
template <typename S>
[[gnu::always_inline]] inline int64_t cover_end(int64_t hi) {
  return (hi + S::kWidth - 1) / S::kWidth * S::kWidth;
}

// ---- Forward: one (query head, 64-query block) task ---------------------------------------

template <typename S>
[[gnu::always_inline]] inline void forward_task(const Problem<typename S::Scalar>& p,
                                                typename S::Scalar* out, typename S::Scalar* lse,
                                                int64_t h, int64_t i0,
                                                typename S::Scalar* scratch) {
  using T = typename S::Scalar;
  using V = typename S::Vector;
  constexpr T kInf = std::numeric_limits<T>::infinity();
  const int64_t d = p.head_dim;
  const DocumentRanges& docs = *p.docs;
  T* kt = scratch;                // [head_dim, kBlock] this key block, transposed
  T* s = kt + d * kBlock;         // [kBlock, kBlock] scores, then probabilities
  T* acc = s + kBlock * kBlock;   // [kBlock, head_dim] unnormalised output rows
  T* row_max = acc + kBlock * d;  // [kBlock] running max of the scaled scores
  T* row_sum = row_max + kBlock;  // [kBlock] running sum of exp(score - max)
  TileWindows w;

  const int64_t kv_head = h / p.group;
  const int64_t rows = std::min(kBlock, p.tokens - i0);
  const T* q_block = p.q + i0 * p.q_stride + h * d;  // [rows, head_dim], row stride q_stride
  std::fill(acc, acc + rows * d, T{0});
  std::fill(row_max, row_max + rows, -kInf);
  std::fill(row_sum, row_sum + rows, T{0});

  // Keys from the first row's document start to the last row: blocks before it are outside
  // every row's window and never visited.
  for (int64_t j0 = docs.start[i0]; j0 < i0 + rows; j0 += kBlock) {
    const int64_t keys = std::min(kBlock, i0 + rows - j0);
    map_tile(w, docs, i0, rows, j0, keys);
    if (w.c_min >= w.c_max) continue;
    transpose_block(kt, p.k + j0 * p.kv_stride + kv_head * d, keys, p.kv_stride, d);
    const T* v_block = p.v + j0 * p.kv_stride + kv_head * d;  // [keys, head_dim] strided

    for (int64_t m = 0; m < rows; m += S::kRows) {
      const int64_t tile_rows = std::min(S::kRows, rows - m);
      int64_t lo, hi;
      if (!rows_window(w, m, m + tile_rows, lo, hi)) continue;
      // S[m.., lo:hi] = Q Kᵀ
      gemm<S, Into::Overwrite>(s + m * kBlock + lo, kBlock, q_block + m * p.q_stride, p.q_stride, 1,
                               kt + lo, kBlock, tile_rows, hi - lo, d);
      for (int64_t r = m; r < m + tile_rows; ++r) {
        T* s_row = s + r * kBlock;  // [kBlock], used in [lo, hi)
        if (w.lo[r] >= w.hi[r]) {   // a row of a later document: contributes nothing
          std::fill(s_row + lo, s_row + hi, T{0});
          continue;
        }
        // Online softmax: rescale what came before to the new running max.
        V max_lanes = V{} - kInf;
        for (int64_t c0 = cover_begin<S>(lo); c0 < cover_end<S>(hi); c0 += S::kWidth) {
          V x = *reinterpret_cast<const V*>(s_row + c0) * p.scale;
          typename S::Index seen;
          lanes_in<S>(seen, c0, w.lo[r], w.hi[r]);
          x = seen ? x : V{} - kInf;
          max_lanes = x > max_lanes ? x : max_lanes;  // (one select each: compilers make a max)
        }
        T block_max = max_lanes[0];
        for (int64_t l = 1; l < S::kWidth; ++l) block_max = std::max(block_max, max_lanes[l]);
        const T new_max = std::max(row_max[r], block_max);
        const T rescale = std::exp(row_max[r] - new_max);  // 0 on the first block (-inf)
        V sum_lanes = V{};
        for (int64_t c0 = cover_begin<S>(lo); c0 < cover_end<S>(hi); c0 += S::kWidth) {
          V x = *reinterpret_cast<const V*>(s_row + c0) * p.scale - new_max;
          exp_in_place<S>(x);
          typename S::Index seen;
          lanes_in<S>(seen, c0, w.lo[r], w.hi[r]);
          x = seen ? x : V{};
          *reinterpret_cast<V*>(s_row + c0) = x;
          sum_lanes += x;
        }
        T block_sum = T{0};
        for (int64_t l = 0; l < S::kWidth; ++l) block_sum += sum_lanes[l];
        row_max[r] = new_max;
        row_sum[r] = row_sum[r] * rescale + block_sum;
        if (rescale != T{1}) {
          for (int64_t e = 0; e < d; ++e) acc[r * d + e] *= rescale;
        }
      }
      // O[m..] += P[m.., lo:hi] V[lo:hi]
      gemm<S, Into::Accumulate>(acc + m * d, d, s + m * kBlock + lo, kBlock, 1,
                                v_block + lo * p.kv_stride, p.kv_stride, tile_rows, d, hi - lo);
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    // row_sum >= 1: every row sees at least its own key, and exp(max - max) = 1.
    const T inv_sum = T{1} / row_sum[r];
    T* out_row = out + (i0 + r) * p.q_stride + h * d;  // [head_dim]
    for (int64_t e = 0; e < d; ++e) out_row[e] = acc[r * d + e] * inv_sum;
    lse[h * p.tokens + i0 + r] = row_max[r] + std::log(row_sum[r]);
  }
}

int64_t forward_scratch_size(int64_t head_dim) {
  return head_dim * kBlock + kBlock * kBlock + kBlock * head_dim + 2 * kBlock;
}

// ---- Backward: one query head, all of its key blocks --------------------------------------

// d_q[:, h, :] is this task's own; its dK/dV rows go to dk_dst/dv_dst (row stride dst_stride).
template <typename S>
[[gnu::always_inline]] inline void backward_task(const Problem<typename S::Scalar>& p,
                                                 typename S::Scalar* d_q,
                                                 typename S::Scalar* dk_dst,
                                                 typename S::Scalar* dv_dst, int64_t dst_stride,
                                                 int64_t h, typename S::Scalar* scratch) {
  using T = typename S::Scalar;
  using V = typename S::Vector;
  const int64_t d = p.head_dim;
  const DocumentRanges& docs = *p.docs;
  T* kt = scratch;                          // [head_dim, kBlock] key block, transposed
  T* vt = kt + d * kBlock;                  // [head_dim, kBlock] value block, transposed
  T* prob = vt + d * kBlock;                // [kBlock, kBlock] P of a tile
  T* d_score = prob + kBlock * kBlock;      // [kBlock, kBlock] dP, then dS (times scale)
  T* dk_block = d_score + kBlock * kBlock;  // [kBlock, head_dim]
  T* dv_block = dk_block + kBlock * d;      // [kBlock, head_dim]
  T* delta = dv_block + kBlock * d;         // [T] D_i = dO_i . O_i
  TileWindows w;

  const int64_t kv_head = h / p.group;
  const T* lse_h = p.lse + h * p.tokens;  // [T]
  for (int64_t i = 0; i < p.tokens; ++i) {
    const T* d_out_row = p.d_out + i * p.q_stride + h * d;
    const T* out_row = p.out + i * p.q_stride + h * d;
    T sum = T{0};
    for (int64_t e = 0; e < d; ++e) sum += d_out_row[e] * out_row[e];
    delta[i] = sum;
    std::fill(d_q + i * p.q_stride + h * d, d_q + i * p.q_stride + (h + 1) * d, T{0});
  }

  for (int64_t j0 = 0; j0 < p.tokens; j0 += kBlock) {
    const int64_t keys = std::min(kBlock, p.tokens - j0);
    const T* k_block = p.k + j0 * p.kv_stride + kv_head * d;  // [keys, head_dim] strided
    const T* v_block = p.v + j0 * p.kv_stride + kv_head * d;  // [keys, head_dim] strided
    transpose_block(kt, k_block, keys, p.kv_stride, d);
    transpose_block(vt, v_block, keys, p.kv_stride, d);
    std::fill(dk_block, dk_block + keys * d, T{0});
    std::fill(dv_block, dv_block + keys * d, T{0});

    // Queries that see a key of this block: from its first key to the end of its last
    // key's document; every other query block is skipped.
    const int64_t i_end = docs.end[j0 + keys - 1];
    for (int64_t i0 = j0; i0 < i_end; i0 += kBlock) {
      const int64_t rows = std::min(kBlock, i_end - i0);
      map_tile(w, docs, i0, rows, j0, keys);
      if (w.c_min >= w.c_max) continue;
      const T* q_block = p.q + i0 * p.q_stride + h * d;          // [rows, head_dim] strided
      const T* d_out_block = p.d_out + i0 * p.q_stride + h * d;  // [rows, head_dim] strided
      // dV/dK below read P and dS on any (row, column) of the tile: start from zeros.
      for (int64_t r = 0; r < rows; ++r) {
        std::fill(prob + r * kBlock + w.c_min, prob + r * kBlock + w.c_max, T{0});
        std::fill(d_score + r * kBlock + w.c_min, d_score + r * kBlock + w.c_max, T{0});
      }

      for (int64_t m = 0; m < rows; m += S::kRows) {
        const int64_t tile_rows = std::min(S::kRows, rows - m);
        int64_t lo, hi;
        if (!rows_window(w, m, m + tile_rows, lo, hi)) continue;
        // S = Q Kᵀ and dP = dO Vᵀ on the columns these rows see.
        gemm<S, Into::Overwrite>(prob + m * kBlock + lo, kBlock, q_block + m * p.q_stride,
                                 p.q_stride, 1, kt + lo, kBlock, tile_rows, hi - lo, d);
        gemm<S, Into::Overwrite>(d_score + m * kBlock + lo, kBlock, d_out_block + m * p.q_stride,
                                 p.q_stride, 1, vt + lo, kBlock, tile_rows, hi - lo, d);
        // P = exp(S - lse) recomputed from the saved log-sum-exp; dS = P (dP - D), times the
        // score scale so that dQ = dS K and dK = dSᵀ Q need no further factor.
        for (int64_t r = m; r < m + tile_rows; ++r) {
          const int64_t i = i0 + r;
          T* p_row = prob + r * kBlock;
          T* ds_row = d_score + r * kBlock;
          for (int64_t c0 = cover_begin<S>(lo); c0 < cover_end<S>(hi); c0 += S::kWidth) {
            V x = *reinterpret_cast<const V*>(p_row + c0) * p.scale - lse_h[i];
            exp_in_place<S>(x);
            typename S::Index seen;
            lanes_in<S>(seen, c0, w.lo[r], w.hi[r]);
            x = seen ? x : V{};
            *reinterpret_cast<V*>(p_row + c0) = x;
            const V d_prob = *reinterpret_cast<const V*>(ds_row + c0);
            *reinterpret_cast<V*>(ds_row + c0) = x * (d_prob - delta[i]) * p.scale;
          }
        }
        // dQ[m..] += dS[m.., lo:hi] K[lo:hi]
        gemm<S, Into::Accumulate>(d_q + (i0 + m) * p.q_stride + h * d, p.q_stride,
                                  d_score + m * kBlock + lo, kBlock, 1, k_block + lo * p.kv_stride,
                                  p.kv_stride, tile_rows, d, hi - lo);
      }
      // dV += Pᵀ dO and dK += dSᵀ Q, kRows key columns at a time over the rows that see them.
      for (int64_t c = w.c_min; c < w.c_max; c += S::kRows) {
        const int64_t tile_cols = std::min(S::kRows, w.c_max - c);
        int64_t r0, r1;
        if (!columns_rows(w, rows, c, c + tile_cols, r0, r1)) continue;
        gemm<S, Into::Accumulate>(dv_block + c * d, d, prob + r0 * kBlock + c, 1, kBlock,
                                  d_out_block + r0 * p.q_stride, p.q_stride, tile_cols, d, r1 - r0);
        gemm<S, Into::Accumulate>(dk_block + c * d, d, d_score + r0 * kBlock + c, 1, kBlock,
                                  q_block + r0 * p.q_stride, p.q_stride, tile_cols, d, r1 - r0);
      }
    }
    for (int64_t c = 0; c < keys; ++c) {
      std::copy(dk_block + c * d, dk_block + (c + 1) * d, dk_dst + (j0 + c) * dst_stride);
      std::copy(dv_block + c * d, dv_block + (c + 1) * d, dv_dst + (j0 + c) * dst_stride);
    }
  }
}

int64_t backward_scratch_size(int64_t head_dim, int64_t tokens) {
  return 4 * head_dim * kBlock + 2 * kBlock * kBlock + tokens;
}

// ---- One compiled copy of each task per instruction set -----------------------------------

#define LL_ATTENTION_TASKS(suffix, S, ...)                                                \
  [[gnu::flatten]] __VA_ARGS__ void forward_task_##suffix(                                \
      const Problem<S::Scalar>& p, S::Scalar* out, S::Scalar* lse, int64_t h, int64_t i0, \
      S::Scalar* scratch) {                                                               \
    forward_task<S>(p, out, lse, h, i0, scratch);                                         \
  }                                                                                       \
  [[gnu::flatten]] __VA_ARGS__ void backward_task_##suffix(                               \
      const Problem<S::Scalar>& p, S::Scalar* d_q, S::Scalar* dk_dst, S::Scalar* dv_dst,  \
      int64_t dst_stride, int64_t h, S::Scalar* scratch) {                                \
    backward_task<S>(p, d_q, dk_dst, dv_dst, dst_stride, h, scratch);                     \
  }

LL_ATTENTION_TASKS(baseline, SimdBaseline)
LL_ATTENTION_TASKS(double, SimdDouble)
#if defined(__x86_64__)
LL_ATTENTION_TASKS(avx2, SimdAvx2, [[gnu::target("avx2,fma")]])
LL_ATTENTION_TASKS(avx512, SimdAvx512, [[gnu::target("avx512f")]])
#endif
#undef LL_ATTENTION_TASKS

template <typename T>
struct Tasks {
  void (*forward)(const Problem<T>&, T*, T*, int64_t, int64_t, T*);
  void (*backward)(const Problem<T>&, T*, T*, T*, int64_t, int64_t, T*);
};

CpuSimd detect_simd() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return CpuSimd::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CpuSimd::Avx2;
#endif
  return CpuSimd::Baseline;
}

std::atomic<CpuSimd>& simd_in_use() {
  static std::atomic<CpuSimd> level{detect_simd()};
  return level;
}

template <typename T>
Tasks<T> tasks_for_cpu();
template <>
Tasks<float> tasks_for_cpu<float>() {
#if defined(__x86_64__)
  switch (simd_in_use().load()) {
    case CpuSimd::Avx512:
      return {forward_task_avx512, backward_task_avx512};
    case CpuSimd::Avx2:
      return {forward_task_avx2, backward_task_avx2};
    case CpuSimd::Baseline:
      break;
  }
#endif
  return {forward_task_baseline, backward_task_baseline};
}
template <>
Tasks<double> tasks_for_cpu<double>() {
  return {forward_task_double, backward_task_double};
}

template <typename T>
Problem<T> make_problem(const AttentionShape& shape, const DocumentRanges& docs, const T* q,
                        const T* k, const T* v) {
  Problem<T> p{};
  p.q = q;
  p.k = k;
  p.v = v;
  p.docs = &docs;
  p.tokens = shape.tokens;
  p.head_dim = shape.head_dim;
  p.group = shape.num_attention_heads / shape.num_key_value_heads;
  p.q_stride = shape.num_attention_heads * shape.head_dim;
  p.kv_stride = shape.num_key_value_heads * shape.head_dim;
  // head_dim ** -0.5 in double (as transformers' Python float), rounded once to T.
  p.scale = static_cast<T>(std::pow(static_cast<double>(shape.head_dim), -0.5));
  return p;
}

}  // namespace

CpuSimd attention_simd_best() {
  return detect_simd();
}

void attention_set_simd(CpuSimd level) {
  check(static_cast<int>(level) <= static_cast<int>(detect_simd()), kOrigin,
        "this CPU lacks the requested vector instructions");
  simd_in_use().store(level);
}

double attention_forward_flops(const AttentionShape& shape,
                               std::span<const uint32_t> document_starts) {
  const DocumentRanges ranges = map_documents(shape.tokens, document_starts);
  double pairs = 0;  // (query, key) pairs inside the window, per head
  for (int64_t i = 0; i < shape.tokens; ++i) pairs += static_cast<double>(i - ranges.start[i] + 1);
  return 4.0 * pairs * static_cast<double>(shape.head_dim * shape.num_attention_heads);
}

template <typename T>
void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v,
                       const AttentionShape& shape, std::span<const uint32_t> document_starts) {
  check_shape(shape);
  const DocumentRanges docs = map_documents(shape.tokens, document_starts);
  const Problem<T> p = make_problem(shape, docs, q, k, v);
  const Tasks<T> tasks = tasks_for_cpu<T>();
  const int64_t n_heads = shape.num_attention_heads;
  const int64_t query_blocks = (shape.tokens + kBlock - 1) / kBlock;
  // Per-thread scratch, allocated before the parallel region so nothing throws inside it.
  const int64_t scratch_size = forward_scratch_size(shape.head_dim);
  std::vector<T> scratch(omp_get_max_threads() * scratch_size);
  const bool parallel = shape.tokens * p.q_stride >= kParallelMinElements;

#pragma omp parallel for collapse(2) schedule(dynamic, 1) if (parallel)
  for (int64_t h = 0; h < n_heads; ++h) {
    for (int64_t qb = 0; qb < query_blocks; ++qb) {
      tasks.forward(p, out, lse, h, qb * kBlock,
                    scratch.data() + omp_get_thread_num() * scratch_size);
    }
  }
}

template <typename T>
void attention_backward(T* d_q, T* d_k, T* d_v, const T* d_out, const T* q, const T* k, const T* v,
                        const T* out, const T* lse, const AttentionShape& shape,
                        std::span<const uint32_t> document_starts) {
  check_shape(shape);
  const DocumentRanges docs = map_documents(shape.tokens, document_starts);
  Problem<T> p = make_problem(shape, docs, q, k, v);
  p.out = out;
  p.d_out = d_out;
  p.lse = lse;
  const Tasks<T> tasks = tasks_for_cpu<T>();
  const int64_t tokens = shape.tokens;
  const int64_t n_heads = shape.num_attention_heads;
  const int64_t n_kv_heads = shape.num_key_value_heads;
  const int64_t d = shape.head_dim;
  const int64_t group = p.group;

  // One task per query head: it owns d_q[:, h, :] and its own dK/dV rows. With group > 1 the
  // heads of a group would race on d_k/d_v, so each head writes its share to
  // dk_heads/dv_heads [T, n_heads, head_dim] and a second pass sums the group.
  std::vector<T> dk_heads;
  std::vector<T> dv_heads;
  if (group > 1) {
    dk_heads.resize(tokens * p.q_stride);
    dv_heads.resize(tokens * p.q_stride);
  }
  const int64_t scratch_size = backward_scratch_size(d, tokens);
  std::vector<T> scratch(omp_get_max_threads() * scratch_size);
  const bool parallel = tokens * p.q_stride >= kParallelMinElements;

#pragma omp parallel for schedule(dynamic, 1) if (parallel)
  for (int64_t h = 0; h < n_heads; ++h) {
    T* dk_dst = group > 1 ? dk_heads.data() + h * d : d_k + (h / group) * d;
    T* dv_dst = group > 1 ? dv_heads.data() + h * d : d_v + (h / group) * d;
    tasks.backward(p, d_q, dk_dst, dv_dst, group > 1 ? p.q_stride : p.kv_stride, h,
                   scratch.data() + omp_get_thread_num() * scratch_size);
  }

  if (group > 1) {
    // d_k[j, g, :] = sum over the group's query heads, in head order.
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t j = 0; j < tokens; ++j) {
      for (int64_t g = 0; g < n_kv_heads; ++g) {
        T* dk_row = d_k + j * p.kv_stride + g * d;
        T* dv_row = d_v + j * p.kv_stride + g * d;
        const T* dk_src = dk_heads.data() + j * p.q_stride + g * group * d;
        const T* dv_src = dv_heads.data() + j * p.q_stride + g * group * d;
        std::copy(dk_src, dk_src + d, dk_row);
        std::copy(dv_src, dv_src + d, dv_row);
        for (int64_t m = 1; m < group; ++m) {
          for (int64_t e = 0; e < d; ++e) {
            dk_row[e] += dk_src[m * d + e];
            dv_row[e] += dv_src[m * d + e];
          }
        }
      }
    }
  }
}

template void attention_forward<float>(float*, float*, const float*, const float*, const float*,
                                       const AttentionShape&, std::span<const uint32_t>);
template void attention_forward<double>(double*, double*, const double*, const double*,
                                        const double*, const AttentionShape&,
                                        std::span<const uint32_t>);
template void attention_backward<float>(float*, float*, float*, const float*, const float*,
                                        const float*, const float*, const float*, const float*,
                                        const AttentionShape&, std::span<const uint32_t>);
template void attention_backward<double>(double*, double*, double*, const double*, const double*,
                                         const double*, const double*, const double*, const double*,
                                         const AttentionShape&, std::span<const uint32_t>);

}  // namespace ll::cpu
