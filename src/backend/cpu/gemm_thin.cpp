// See gemm_thin.h. Three kernels, each over a register tile of 16 zmm accumulators:
//
//   dot     C[t, j] = Σ_p X[t, p] · W[j, p]      2 rows × 8 j, lanes over p, then a lane sum
//   expand  C[t, o] = Σ_j U[t, j] · V[j, o]      4 rows × 32 o, j broadcast
//   outer   G[j, l] = Σ_t S[t, j] · X[t, l]      8 j × 32 l, lanes over l, t streamed
//
// X is the large operand, read in place (rounded to bf16 in registers when asked); W, U, V and
// S are the small one(s), copied rounded into thread-local scratch, their small dimension
// padded with zeros to a multiple of 8 (the padding's products are 0 and never stored).
#include "backend/cpu/gemm_thin.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cpu/dropout_mask.h"
#include "core/dtype.h"
#include "core/error.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define LL_THIN_X86 1
#endif

namespace ll::cpu {
namespace {

constexpr const char* kOrigin = "gemm_thin";
constexpr int64_t kJ = 8;  // the small dimension's block

int64_t padded(int64_t small) {
  return (small + kJ - 1) / kJ * kJ;
}

// The dropout folded into a product: element (t, p) of the large operand (or of the output)
// is mask element t · row_stride + col_offset + p (dropout.h's DropoutWindow, row by row).
struct ThinMask {
  dropout_mask::MaskTest test;
  int64_t row_stride = 0;
  int64_t col_offset = 0;

  uint64_t index(int64_t t, int64_t p) const {
    return static_cast<uint64_t>(t * row_stride + col_offset + p);
  }
};

float rounded(float x, OperandRounding rounding) {
  return rounding == OperandRounding::Bf16 ? bf16_to_f32(f32_to_bf16(x)) : x;
}

// dst[rows_padded, cols] = rounded(element(r, c)) for r < rows, zeros below. Thread-local
// storage that grows and is kept: a step allocates nothing after the first.
template <typename Element>
const float* small_copy(std::vector<float>& dst, int64_t rows, int64_t cols,
                        OperandRounding rounding, Element element) {
  const int64_t rows_padded = padded(rows);
  dst.assign(static_cast<size_t>(rows_padded * cols), 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c)
      dst[static_cast<size_t>(r * cols + c)] = rounded(element(r, c), rounding);
  }
  return dst.data();
}

thread_local std::vector<float> scratch_small;
thread_local std::vector<float> scratch_second;

#ifdef LL_THIN_X86
// GCC 12 warns inside its own intrinsics (their _mm512_undefined_* operands).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// bf16(x) as fp32, round-to-nearest-even, NaN kept: f32_to_bf16 then bf16_to_f32 per lane.
[[gnu::target("avx512f"), gnu::always_inline]] inline __m512 round_bf16(__m512 x) {
  const __m512i bits = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i up = _mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
  const __m512 r =
      _mm512_castsi512_ps(_mm512_and_si512(up, _mm512_set1_epi32(static_cast<int>(0xffff0000u))));
  return _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

// The lanes of `mask` from p, zeros elsewhere. Masked loads and stores only at a tail: on
// AMD Zen 4 the masked forms of whole vectors ran the kernels 5-10x below memory speed.
[[gnu::target("avx512f"), gnu::always_inline]] inline __m512 load_lanes(const float* p,
                                                                        __mmask16 mask) {
  return mask == 0xffff ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(mask, p);
}

// The large operand's 16 elements at p: dropped out (times 1/(1-p) where kept) when `drop`
// is given, as dropout_forward writes them, then rounded when asked.
[[gnu::target("avx512f"), gnu::always_inline]] inline __m512 load_operand(
    const float* p, __mmask16 mask, bool round, const ThinMask* drop, uint64_t index) {
  __m512 x = load_lanes(p, mask);
  if (drop != nullptr) {
    x = _mm512_maskz_mul_ps(dropout_mask::keeps16(drop->test, index), x,
                            _mm512_set1_ps(drop->test.keep_scale));
  }
  return round ? round_bf16(x) : x;
}

// The first `left` lanes (none when left <= 0: the second half of a 16-column tail).
[[gnu::target("avx512f"), gnu::always_inline]] inline __mmask16 lanes(int64_t left) {
  if (left <= 0) return 0;
  return left >= 16 ? static_cast<__mmask16>(0xffff)
                    : static_cast<__mmask16>((1u << static_cast<unsigned>(left)) - 1u);
}

// c = alpha · v (+ beta · c) on the lanes of `mask`; with `drop`, alpha · v goes through the
// dropout's backward first (masked, times 1/(1-p)), as dropout_backward adds it.
[[gnu::target("avx512f"), gnu::always_inline]] inline void store(float* c, __mmask16 mask, __m512 v,
                                                                 float alpha, float beta,
                                                                 const ThinMask* drop = nullptr,
                                                                 uint64_t index = 0) {
  __m512 out = _mm512_mul_ps(v, _mm512_set1_ps(alpha));
  if (drop != nullptr) {
    out = _mm512_maskz_mul_ps(dropout_mask::keeps16(drop->test, index), out,
                              _mm512_set1_ps(drop->test.keep_scale));
  }
  if (beta != 0.0f) {
    out = _mm512_fmadd_ps(load_lanes(c, mask), _mm512_set1_ps(beta), out);
  }
  if (mask == 0xffff) {
    _mm512_storeu_ps(c, out);
  } else {
    _mm512_mask_storeu_ps(c, mask, out);
  }
}

// dot: C[t, j] = alpha · Σ_p X[t, p] · W[j, p] (+ beta · C), t < rows, j < small, p < depth.
// W is [padded(small), depth].
[[gnu::target("avx512f")]] void dot_avx512(const float* x, int64_t ldx, const float* w,
                                           int64_t small, int64_t rows, int64_t depth, bool round,
                                           float alpha, float beta, float* c, int64_t ldc,
                                           const ThinMask* drop = nullptr) {
  const int64_t pairs = (rows + 1) / 2;
#pragma omp parallel for schedule(static)
  for (int64_t pair = 0; pair < pairs; ++pair) {
    const int64_t t0 = pair * 2;
    const int64_t t1 = std::min(t0 + 1, rows - 1);  // an odd last row is computed twice
    for (int64_t j0 = 0; j0 < small; j0 += kJ) {
      __m512 acc0[kJ], acc1[kJ];
#pragma GCC unroll 8
      for (int64_t j = 0; j < kJ; ++j) acc0[j] = acc1[j] = _mm512_setzero_ps();
      for (int64_t p = 0; p < depth; p += 16) {
        const __mmask16 mask = lanes(depth - p);
        const __m512 x0 =
            load_operand(x + t0 * ldx + p, mask, round, drop, drop ? drop->index(t0, p) : 0);
        const __m512 x1 =
            load_operand(x + t1 * ldx + p, mask, round, drop, drop ? drop->index(t1, p) : 0);
#pragma GCC unroll 8
        for (int64_t j = 0; j < kJ; ++j) {
          const __m512 wv = load_lanes(w + (j0 + j) * depth + p, mask);
          acc0[j] = _mm512_fmadd_ps(x0, wv, acc0[j]);
          acc1[j] = _mm512_fmadd_ps(x1, wv, acc1[j]);
        }
      }
      const auto put = [&](int64_t t, int64_t j, float lane_sum) {
        float& out = c[t * ldc + j];
        out = beta == 0.0f ? alpha * lane_sum : alpha * lane_sum + beta * out;
      };
#pragma GCC unroll 8
      for (int64_t j = 0; j < kJ; ++j) {
        if (j0 + j >= small) continue;
        put(t0, j0 + j, _mm512_reduce_add_ps(acc0[j]));
        if (t1 != t0) put(t1, j0 + j, _mm512_reduce_add_ps(acc1[j]));
      }
    }
  }
}

// expand: C[t, o] = alpha · Σ_j U[t, j] · V[j, o] (+ beta · C), U [rows, padded(small)],
// V [padded(small), cols].
[[gnu::target("avx512f")]] void expand_avx512(const float* u, const float* v, int64_t small,
                                              int64_t rows, int64_t cols, float alpha, float beta,
                                              float* c, int64_t ldc,
                                              const ThinMask* drop = nullptr) {
  const int64_t stride = padded(small);
  const int64_t quads = (rows + 3) / 4;
#pragma omp parallel for schedule(static)
  for (int64_t quad = 0; quad < quads; ++quad) {
    const int64_t t0 = quad * 4;
    const int64_t n_rows = std::min<int64_t>(4, rows - t0);
    for (int64_t o = 0; o < cols; o += 32) {
      const __mmask16 m0 = lanes(cols - o), m1 = lanes(cols - o - 16);
      __m512 acc[4][2];
#pragma GCC unroll 4
      for (int64_t q = 0; q < 4; ++q) acc[q][0] = acc[q][1] = _mm512_setzero_ps();
      for (int64_t j = 0; j < small; ++j) {
        const __m512 v0 = load_lanes(v + j * cols + o, m0);
        const __m512 v1 = load_lanes(v + j * cols + o + 16, m1);
#pragma GCC unroll 4
        for (int64_t q = 0; q < 4; ++q) {
          const int64_t t = t0 + std::min(q, n_rows - 1);
          const __m512 a = _mm512_set1_ps(u[t * stride + j]);
          acc[q][0] = _mm512_fmadd_ps(a, v0, acc[q][0]);
          acc[q][1] = _mm512_fmadd_ps(a, v1, acc[q][1]);
        }
      }
#pragma GCC unroll 4
      for (int64_t q = 0; q < 4; ++q) {
        if (q >= n_rows) continue;
        float* row = c + (t0 + q) * ldc + o;
        const uint64_t index = drop ? drop->index(t0 + q, o) : 0;
        store(row, m0, acc[q][0], alpha, beta, drop, index);
        if (cols - o > 16) store(row + 16, m1, acc[q][1], alpha, beta, drop, index + 16);
      }
    }
  }
}

// outer: G[j, l] = Σ_t S[t, j] · X[t, l] for j < small, l < cols, t < depth; S [depth,
// padded(small)]. Written as C[j, l] (c_transposed false: C row j) or C[l, j] (true), times
// alpha, plus beta · C.
[[gnu::target("avx512f")]] void outer_avx512(const float* s, const float* x, int64_t ldx,
                                             int64_t small, int64_t depth, int64_t cols, bool round,
                                             float alpha, float beta, float* c, int64_t ldc,
                                             bool c_transposed, const ThinMask* drop = nullptr) {
  const int64_t stride = padded(small);
  const int64_t blocks = (cols + 31) / 32;
#pragma omp parallel for schedule(static)
  for (int64_t block = 0; block < blocks; ++block) {
    const int64_t l = block * 32;
    const __mmask16 m0 = lanes(cols - l), m1 = lanes(cols - l - 16);
    for (int64_t j0 = 0; j0 < small; j0 += kJ) {
      __m512 acc[kJ][2];
#pragma GCC unroll 8
      for (int64_t j = 0; j < kJ; ++j) acc[j][0] = acc[j][1] = _mm512_setzero_ps();
      for (int64_t t = 0; t < depth; ++t) {
        const uint64_t index = drop ? drop->index(t, l) : 0;
        const __m512 x0 = load_operand(x + t * ldx + l, m0, round, drop, index);
        const __m512 x1 = load_operand(x + t * ldx + l + 16, m1, round, drop, index + 16);
        const float* s_row = s + t * stride + j0;
#pragma GCC unroll 8
        for (int64_t j = 0; j < kJ; ++j) {
          const __m512 sv = _mm512_set1_ps(s_row[j]);
          acc[j][0] = _mm512_fmadd_ps(sv, x0, acc[j][0]);
          acc[j][1] = _mm512_fmadd_ps(sv, x1, acc[j][1]);
        }
      }
#pragma GCC unroll 8
      for (int64_t j = 0; j < kJ; ++j) {
        if (j0 + j >= small) continue;
        if (!c_transposed) {
          float* row = c + (j0 + j) * ldc + l;
          store(row, m0, acc[j][0], alpha, beta);
          if (cols - l > 16) store(row + 16, m1, acc[j][1], alpha, beta);
          continue;
        }
        alignas(64) float lane_values[32];
        _mm512_store_ps(lane_values, acc[j][0]);
        _mm512_store_ps(lane_values + 16, acc[j][1]);
        for (int64_t i = 0; i < std::min<int64_t>(32, cols - l); ++i) {
          float& out = c[(l + i) * ldc + j0 + j];
          const float sum = alpha * lane_values[i];
          out = beta == 0.0f ? sum : sum + beta * out;
        }
      }
    }
  }
}

#pragma GCC diagnostic pop
#endif

enum class Shape { Dot, Expand, OuterSmallM, OuterSmallN, None };

Shape shape_of(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k) {
  const auto big = [](int64_t size) { return size >= kThinMin; };
  const auto thin = [](int64_t size) { return size >= 1 && size <= kThinMax; };
  // k small: op(A) and op(B) are both small copies, any layout.
  if (thin(k) && big(m) && big(n)) return Shape::Expand;
  // n small: the rows of op(A) are streamed, so A must be stored [m, k].
  if (thin(n) && big(m) && big(k) && trans_a == Transpose::No) return Shape::Dot;
  // k = tokens, m or n small: rows t of the large operand are streamed.
  if (thin(m) && big(n) && big(k) && trans_b == Transpose::No) return Shape::OuterSmallM;
  if (thin(n) && big(m) && big(k) && trans_a == Transpose::Yes) return Shape::OuterSmallN;
  return Shape::None;
}

}  // namespace

bool gemm_thin_applies(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k) {
#ifdef LL_THIN_X86
  return gemm_kernel_active() == GemmKernel::Avx512 &&
         shape_of(trans_a, trans_b, m, n, k) != Shape::None;
#else
  (void)trans_a, (void)trans_b, (void)m, (void)n, (void)k;
  return false;
#endif
}

void gemm_thin(OperandRounding rounding, Transpose trans_a, Transpose trans_b, int64_t m, int64_t n,
               int64_t k, float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
               float beta, float* c, int64_t ldc) {
  check(gemm_thin_applies(trans_a, trans_b, m, n, k), kOrigin,
        "not a thin product this CPU runs: m=" + std::to_string(m) + " n=" + std::to_string(n) +
            " k=" + std::to_string(k));
#ifdef LL_THIN_X86
  const bool ta = trans_a == Transpose::Yes, tb = trans_b == Transpose::Yes;
  // op(A)(i, p) and op(B)(p, j) as stored.
  const auto op_a = [&](int64_t i, int64_t p) { return ta ? a[p * lda + i] : a[i * lda + p]; };
  const auto op_b = [&](int64_t p, int64_t j) { return tb ? b[j * ldb + p] : b[p * ldb + j]; };
  const bool round = rounding == OperandRounding::Bf16;
  switch (shape_of(trans_a, trans_b, m, n, k)) {
    case Shape::Expand: {
      // U[t, j] = op(A)(t, j) with rows padded to padded(k) columns; V[j, o] = op(B)(j, o).
      const int64_t stride = padded(k);
      scratch_small.assign(static_cast<size_t>(m * stride), 0.0f);
      for (int64_t t = 0; t < m; ++t) {
        for (int64_t j = 0; j < k; ++j) {
          scratch_small[static_cast<size_t>(t * stride + j)] = rounded(op_a(t, j), rounding);
        }
      }
      const float* v = small_copy(scratch_second, k, n, rounding, op_b);
      return expand_avx512(scratch_small.data(), v, k, m, n, alpha, beta, c, ldc);
    }
    case Shape::Dot: {
      // W[j, p] = op(B)(p, j).
      const float* w = small_copy(scratch_small, n, k, rounding,
                                  [&](int64_t j, int64_t p) { return op_b(p, j); });
      return dot_avx512(a, lda, w, n, m, k, round, alpha, beta, c, ldc);
    }
    case Shape::OuterSmallM: {
      // S[t, i] = op(A)(i, t); X = B [k, n] streamed; C [m, n] natural.
      const int64_t stride = padded(m);
      scratch_small.assign(static_cast<size_t>(k * stride), 0.0f);
      for (int64_t t = 0; t < k; ++t) {
        for (int64_t i = 0; i < m; ++i) {
          scratch_small[static_cast<size_t>(t * stride + i)] = rounded(op_a(i, t), rounding);
        }
      }
      return outer_avx512(scratch_small.data(), b, ldb, m, k, n, round, alpha, beta, c, ldc, false);
    }
    case Shape::OuterSmallN: {
      // S[t, j] = op(B)(t, j); X = A stored [k, m] streamed; C [m, n] written transposed.
      const int64_t stride = padded(n);
      scratch_small.assign(static_cast<size_t>(k * stride), 0.0f);
      for (int64_t t = 0; t < k; ++t) {
        for (int64_t j = 0; j < n; ++j) {
          scratch_small[static_cast<size_t>(t * stride + j)] = rounded(op_b(t, j), rounding);
        }
      }
      return outer_avx512(scratch_small.data(), a, lda, n, k, m, round, alpha, beta, c, ldc, true);
    }
    case Shape::None:
      break;
  }
#else
  (void)rounding, (void)alpha, (void)a, (void)lda, (void)b, (void)ldb, (void)beta, (void)c,
      (void)ldc;
#endif
  fail(kOrigin, "unreachable: no thin shape");
}

bool lora_down_fused_applies(int64_t tokens, int64_t in, int64_t r) {
  // u = x·Aᵀ (dot), dA += duᵀ·x (outer, small m) and dx += du·A (expand).
  return gemm_thin_applies(Transpose::No, Transpose::Yes, tokens, r, in) &&
         gemm_thin_applies(Transpose::Yes, Transpose::No, r, in, tokens) &&
         gemm_thin_applies(Transpose::No, Transpose::No, tokens, in, r);
}

namespace {

ThinMask thin_mask(const LoraDropout& dropout, int64_t in) {
  check(dropout.p > 0.0 && dropout.p < 1.0, kOrigin,
        "the folded dropout's probability must be in (0, 1), got " + std::to_string(dropout.p));
  const DropoutWindow& w = dropout.window;
  check(w.cols == 0 || w.cols == in, kOrigin,
        "the dropout window's " + std::to_string(w.cols) + " columns are not the input's " +
            std::to_string(in));
  ThinMask mask;
  mask.test = dropout_mask::mask_test(dropout.key, dropout.p);
  mask.row_stride = w.cols == 0 ? in : w.full_cols;
  mask.col_offset = w.cols == 0 ? 0 : w.col_offset;
  return mask;
}

void check_fused(int64_t tokens, int64_t in, int64_t r) {
  check(lora_down_fused_applies(tokens, in, r), kOrigin,
        "not a LoRA product this CPU folds dropout into: tokens=" + std::to_string(tokens) +
            " in=" + std::to_string(in) + " r=" + std::to_string(r));
}

}  // namespace

void lora_down_forward(OperandRounding rounding, float* u, const float* x, const float* a,
                       int64_t tokens, int64_t in, int64_t r, const LoraDropout& dropout) {
  check_fused(tokens, in, r);
#ifdef LL_THIN_X86
  const ThinMask mask = thin_mask(dropout, in);
  // W[j, p] = A[j, p] (A is [r, in], the dot's small operand as stored).
  const float* w = small_copy(scratch_small, r, in, rounding,
                              [&](int64_t j, int64_t p) { return a[j * in + p]; });
  dot_avx512(x, in, w, r, tokens, in, rounding == OperandRounding::Bf16, 1.0f, 0.0f, u, r, &mask);
#else
  (void)rounding, (void)u, (void)x, (void)a, (void)dropout;
#endif
}

void lora_down_backward(OperandRounding rounding, float* grad_a, float* dx, const float* du,
                        const float* x, const float* a, int64_t tokens, int64_t in, int64_t r,
                        const LoraDropout& dropout) {
  check_fused(tokens, in, r);
#ifdef LL_THIN_X86
  const ThinMask mask = thin_mask(dropout, in);
  const bool round = rounding == OperandRounding::Bf16;
  const int64_t stride = padded(r);
  // grad_a[r, in] += duᵀ · dropout(x): S[t, j] = du[t, j], X = x streamed (outer, small m).
  scratch_small.assign(static_cast<size_t>(tokens * stride), 0.0f);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t j = 0; j < r; ++j) {
      scratch_small[static_cast<size_t>(t * stride + j)] = rounded(du[t * r + j], rounding);
    }
  }
  outer_avx512(scratch_small.data(), x, in, r, tokens, in, round, 1.0f, 1.0f, grad_a, in, false,
               &mask);
  // dx[tokens, in] += dropout'(du · A): U = du (already in scratch_small), V = A [r, in].
  const float* v = small_copy(scratch_second, r, in, rounding,
                              [&](int64_t j, int64_t o) { return a[j * in + o]; });
  expand_avx512(scratch_small.data(), v, r, tokens, in, 1.0f, 1.0f, dx, in, &mask);
#else
  (void)rounding, (void)grad_a, (void)dx, (void)du, (void)x, (void)a, (void)dropout;
#endif
}

}  // namespace ll::cpu
