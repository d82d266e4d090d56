// The x86 SIMD kernels of the CPU GEMM (gemm.h): the AVX2+FMA and AVX-512 micro-kernels of the
// packed path (gemm_packed.cpp) and the dot/axpy kernels of the few-rows path
// (gemm_few_rows.cpp, which states their summation orders). Each function carries its own
// target attribute and the rest of the build targets the baseline ISA, so the binary runs on
// any x86-64; gemm_kernel_supported decides at run time which kernels are used. Other files
// reach them through the tables at the bottom.
#include "backend/cpu/gemm_internal.h"

#ifdef LL_GEMM_X86

#include <immintrin.h>

#include <algorithm>

namespace ll::cpu::gemm_detail {
namespace {

// ---- packed path: tile[MR, NR] = Σ_p a[p, 0:MR] ⊗ b[p, 0:NR] over packed panels ------------

// 6×16 fp32 with AVX2 FMA: 12 accumulator registers, 2 for B, 1 broadcast (of 16).
__attribute__((target("avx2,fma"))) void kernel_avx2_f32(int64_t kc, const float* a, const float* b,
                                                         float* tile) {
  constexpr int MR = 6;
  __m256 acc[MR][2];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_loadu_ps(b);
    const __m256 b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += MR;
    b += 16;
  }
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    _mm256_storeu_ps(tile + i * 16, acc[i][0]);
    _mm256_storeu_ps(tile + i * 16 + 8, acc[i][1]);
  }
}

// 8×32 fp32 with AVX-512: 16 accumulator registers (of 32), enough independent FMAs to hide
// their latency on two FMA ports.
__attribute__((target("avx512f"))) void kernel_avx512_f32(int64_t kc, const float* a,
                                                          const float* b, float* tile) {
  constexpr int MR = 8;
  __m512 acc[MR][2];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kc; ++p) {
    const __m512 b0 = _mm512_loadu_ps(b);
    const __m512 b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += MR;
    b += 32;
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    _mm512_storeu_ps(tile + i * 32, acc[i][0]);
    _mm512_storeu_ps(tile + i * 32 + 16, acc[i][1]);
  }
}

// ---- few rows: B read in place --------------------------------------------------------------

// The dot kernels prefetch the row this many rows ahead of the one they read (a later call's:
// the hardware prefetcher alone does not keep up with rows of 1-3 KiB). Measured on decode of
// smol-135m (2 Zen 5 cores): 145 tokens/s without, 210-225 with 8, 16 or 32 rows ahead.
constexpr int64_t kPrefetchRows = 16;

// Prefetches the element `rows` rows below *p into L1. The address is computed as an integer:
// it may lie past the weight's end, which a prefetch tolerates but a pointer may not.
template <typename Stored>
inline void prefetch_ahead(const Stored* p, int64_t ld, int64_t rows = kPrefetchRows) {
  const uintptr_t ahead =
      reinterpret_cast<uintptr_t>(p) + static_cast<uintptr_t>(rows * ld) * sizeof(Stored);
  _mm_prefetch(reinterpret_cast<const char*>(ahead), _MM_HINT_T0);
}

// AVX2: 8 lanes; 16 ymm registers hold R·MB accumulators, R weight vectors and one of A.
#define LL_AVX2 __attribute__((target("avx2,fma,f16c")))

LL_AVX2 inline __m256 load8(F32Format, const float* p) {
  return _mm256_loadu_ps(p);
}
LL_AVX2 inline __m256 load8(Bf16Format, const uint16_t* p) {
  const __m128i bits = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16));
}
LL_AVX2 inline __m256 load8(F16Format, const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
LL_AVX2 inline float sum8(__m256 v) {  // halving, as sum_lanes
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <typename Format, int R, int MB>
LL_AVX2 void dot_avx2(int64_t k, const float* a, int64_t lda, const typename Format::Stored* b,
                      int64_t ldb, int64_t first, int64_t last, float* out) {
  const typename Format::Stored* rows[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) rows[r] = b + std::min(first + r, last) * ldb;
  __m256 acc[MB][R];
#pragma GCC unroll 4
  for (int i = 0; i < MB; ++i) {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[i][r] = _mm256_setzero_ps();
  }
  const int64_t k_full = k - k % 8;
  for (int64_t p = 0; p < k_full; p += 8) {
    __m256 w[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      w[r] = load8(Format{}, rows[r] + p);
      prefetch_ahead(rows[r] + p, ldb);
    }
#pragma GCC unroll 4
    for (int i = 0; i < MB; ++i) {
      const __m256 x = _mm256_loadu_ps(a + i * lda + p);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[i][r] = _mm256_fmadd_ps(x, w[r], acc[i][r]);
    }
  }
  if (k_full < k) {
    alignas(32) float padded[8];
    __m256 w[R];
    for (int r = 0; r < R; ++r) {
      load_padded<float, Format>(padded, rows[r] + k_full, k - k_full, 8);
      w[r] = _mm256_load_ps(padded);
    }
    for (int i = 0; i < MB; ++i) {
      load_padded<float, F32Format>(padded, a + i * lda + k_full, k - k_full, 8);
      const __m256 x = _mm256_load_ps(padded);
      for (int r = 0; r < R; ++r) acc[i][r] = _mm256_fmadd_ps(x, w[r], acc[i][r]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < MB; ++i) {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) out[i * R + r] = sum8(acc[i][r]);
  }
}

// Chunks of 16 columns (2 vectors) by MB rows.
template <typename Format, int MB>
LL_AVX2 void axpy_avx2(int64_t kp, const float* a, int64_t a_row, int64_t a_step,
                       const typename Format::Stored* b, int64_t ldb, int64_t cols, float* tile,
                       int64_t ldt) {
  constexpr int NB = 16;
  alignas(32) float padded[NB];
  for (int64_t j = 0; j < cols; j += NB) {
    const bool full = cols - j >= NB;
    __m256 acc[MB][2];
#pragma GCC unroll 4
    for (int i = 0; i < MB; ++i) {
      acc[i][0] = _mm256_loadu_ps(tile + i * ldt + j);
      acc[i][1] = _mm256_loadu_ps(tile + i * ldt + j + 8);
    }
    for (int64_t p = 0; p < kp; ++p) {
      const typename Format::Stored* row = b + p * ldb + j;
      __m256 w[2];
      if (full) {
        w[0] = load8(Format{}, row);
        w[1] = load8(Format{}, row + 8);
        prefetch_ahead(row, ldb, kAxpyPanelRows);
      } else {
        load_padded<float, Format>(padded, row, cols - j, NB);
        w[0] = _mm256_load_ps(padded);
        w[1] = _mm256_load_ps(padded + 8);
      }
      const float* a_p = a + p * a_step;
#pragma GCC unroll 4
      for (int i = 0; i < MB; ++i) {
        const __m256 x = _mm256_broadcast_ss(a_p + i * a_row);
        acc[i][0] = _mm256_fmadd_ps(x, w[0], acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(x, w[1], acc[i][1]);
      }
    }
#pragma GCC unroll 4
    for (int i = 0; i < MB; ++i) {
      _mm256_storeu_ps(tile + i * ldt + j, acc[i][0]);
      _mm256_storeu_ps(tile + i * ldt + j + 8, acc[i][1]);
    }
  }
}

#undef LL_AVX2

// AVX-512: 16 lanes; 32 zmm registers. The conversions use the zero-masked intrinsics with
// every lane selected (the same instructions): GCC 12's unmasked ones start from
// _mm512_undefined_*, which -Wuninitialized reports once inlined.
#define LL_AVX512 __attribute__((target("avx512f")))
constexpr __mmask16 kAllLanes = 0xffff;

LL_AVX512 inline __m512 load16(F32Format, const float* p) {
  return _mm512_loadu_ps(p);
}
LL_AVX512 inline __m512 load16(Bf16Format, const uint16_t* p) {
  const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m512i wide = _mm512_maskz_cvtepu16_epi32(kAllLanes, bits);
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(kAllLanes, wide, 16));
}
LL_AVX512 inline __m512 load16(F16Format, const uint16_t* p) {
  return _mm512_maskz_cvtph_ps(kAllLanes, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
LL_AVX512 inline float sum16(__m512 v) {  // halving, as sum_lanes
  // (GCC 12 implements _mm512_castps512_ps256 with an unmasked extract, hence no cast.)
  const __m512d halves = _mm512_castps_pd(v);
  const __m256 low = _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xf, halves, 0));
  const __m256 high = _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xf, halves, 1));
  const __m256 s8 = _mm256_add_ps(low, high);
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <typename Format, int R, int MB>
LL_AVX512 void dot_avx512(int64_t k, const float* a, int64_t lda, const typename Format::Stored* b,
                          int64_t ldb, int64_t first, int64_t last, float* out) {
  const typename Format::Stored* rows[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) rows[r] = b + std::min(first + r, last) * ldb;
  __m512 acc[MB][R];
#pragma GCC unroll 4
  for (int i = 0; i < MB; ++i) {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[i][r] = _mm512_setzero_ps();
  }
  const int64_t k_full = k - k % 16;
  for (int64_t p = 0; p < k_full; p += 16) {
    __m512 w[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      w[r] = load16(Format{}, rows[r] + p);
      prefetch_ahead(rows[r] + p, ldb);
    }
#pragma GCC unroll 4
    for (int i = 0; i < MB; ++i) {
      const __m512 x = _mm512_loadu_ps(a + i * lda + p);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[i][r] = _mm512_fmadd_ps(x, w[r], acc[i][r]);
    }
  }
  if (k_full < k) {
    alignas(64) float padded[16];
    __m512 w[R];
    for (int r = 0; r < R; ++r) {
      load_padded<float, Format>(padded, rows[r] + k_full, k - k_full, 16);
      w[r] = _mm512_load_ps(padded);
    }
    for (int i = 0; i < MB; ++i) {
      load_padded<float, F32Format>(padded, a + i * lda + k_full, k - k_full, 16);
      const __m512 x = _mm512_load_ps(padded);
      for (int r = 0; r < R; ++r) acc[i][r] = _mm512_fmadd_ps(x, w[r], acc[i][r]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < MB; ++i) {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) out[i * R + r] = sum16(acc[i][r]);
  }
}

// Chunks of 32 columns (2 vectors, one 64-byte line of a bf16 row) by MB rows.
template <typename Format, int MB>
LL_AVX512 void axpy_avx512(int64_t kp, const float* a, int64_t a_row, int64_t a_step,
                           const typename Format::Stored* b, int64_t ldb, int64_t cols, float* tile,
                           int64_t ldt) {
  constexpr int NB = 32;
  alignas(64) float padded[NB];
  for (int64_t j = 0; j < cols; j += NB) {
    const bool full = cols - j >= NB;
    __m512 acc[MB][2];
#pragma GCC unroll 4
    for (int i = 0; i < MB; ++i) {
      acc[i][0] = _mm512_loadu_ps(tile + i * ldt + j);
      acc[i][1] = _mm512_loadu_ps(tile + i * ldt + j + 16);
    }
    for (int64_t p = 0; p < kp; ++p) {
      const typename Format::Stored* row = b + p * ldb + j;
      __m512 w[2];
      if (full) {
        w[0] = load16(Format{}, row);
        w[1] = load16(Format{}, row + 16);
        // The next panel's row: one line of bf16/f16, two of f32.
        prefetch_ahead(row, ldb, kAxpyPanelRows);
        if constexpr (sizeof(typename Format::Stored) == 4) {
          prefetch_ahead(row + 16, ldb, kAxpyPanelRows);
        }
      } else {
        load_padded<float, Format>(padded, row, cols - j, NB);
        w[0] = _mm512_load_ps(padded);
        w[1] = _mm512_load_ps(padded + 16);
      }
      const float* a_p = a + p * a_step;
#pragma GCC unroll 4
      for (int i = 0; i < MB; ++i) {
        const __m512 x = _mm512_set1_ps(a_p[i * a_row]);
        acc[i][0] = _mm512_fmadd_ps(x, w[0], acc[i][0]);
        acc[i][1] = _mm512_fmadd_ps(x, w[1], acc[i][1]);
      }
    }
#pragma GCC unroll 4
    for (int i = 0; i < MB; ++i) {
      _mm512_storeu_ps(tile + i * ldt + j, acc[i][0]);
      _mm512_storeu_ps(tile + i * ldt + j + 16, acc[i][1]);
    }
  }
}

#undef LL_AVX512

}  // namespace

Kernel<float> packed_kernel_avx2() {
  return {6, 16, kernel_avx2_f32};
}
Kernel<float> packed_kernel_avx512() {
  return {8, 32, kernel_avx512_f32};
}

template <typename Format>
FewRowsKernels<float, Format> few_rows_kernels_avx2() {
  return {{4, 4, 2, 2},
          {dot_avx2<Format, 4, 1>, dot_avx2<Format, 4, 2>, dot_avx2<Format, 2, 3>,
           dot_avx2<Format, 2, 4>},
          {axpy_avx2<Format, 1>, axpy_avx2<Format, 2>, axpy_avx2<Format, 3>, axpy_avx2<Format, 4>}};
}

template <typename Format>
FewRowsKernels<float, Format> few_rows_kernels_avx512() {
  return {{8, 8, 4, 4},
          {dot_avx512<Format, 8, 1>, dot_avx512<Format, 8, 2>, dot_avx512<Format, 4, 3>,
           dot_avx512<Format, 4, 4>},
          {axpy_avx512<Format, 1>, axpy_avx512<Format, 2>, axpy_avx512<Format, 3>,
           axpy_avx512<Format, 4>}};
}

#define LL_INSTANTIATE(Format)                                            \
  template FewRowsKernels<float, Format> few_rows_kernels_avx2<Format>(); \
  template FewRowsKernels<float, Format> few_rows_kernels_avx512<Format>();
LL_INSTANTIATE(F32Format)
LL_INSTANTIATE(Bf16Format)
LL_INSTANTIATE(F16Format)
#undef LL_INSTANTIATE

}  // namespace ll::cpu::gemm_detail

#endif  // LL_GEMM_X86
