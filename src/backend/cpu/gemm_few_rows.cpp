// The few-rows path of the CPU GEMM (gemm.h: kGemmFewRowsDefault): B read in place.
//
// With a few rows in op(A) (decode: one per sequence), packing a B panel costs more than the
// multiply-adds it serves (perf: 77% of decode was in packing). These kernels read B (a
// weight, converted in registers: bf16 by a 16-bit shift, f16 by vcvtph2ps) where it lies and
// use each converted vector for up to kGroupRows rows of A, so each weight byte comes from
// memory once per call (later groups of rows find it in L1). Two shapes:
//
// dot   C[i, j] = Σ_p A[i, p]·B[j, p]   (op(B) = Bᵀ: B = W[out, in], one dot product per row of
//       W). Summation order: V lanes (16 AVX-512, 8 AVX2 and portable), lane l summing the
//       products with p ≡ l (mod V) in increasing p (k % V tail zero-padded into one more
//       vector), then the lanes added by halving (l += l + V/2, then V/4, ... 1).
// axpy  C[i, j] = Σ_p op(A)[i, p]·B[p, j]   (op(B) = B: dx = dy·W): a task owns up to 512
//       columns of C, accumulated for all rows in a tile (L1) while B streams through in
//       panels of 16 rows read along the row; within a panel a chunk of 32 (AVX-512) or 16
//       columns stays in registers. Summation order: p from 0 to k-1, one multiply-add per p
//       (fused on AVX2/AVX-512; the packed path's order within one k panel).
//
// Neither order depends on the group a row falls in, the block a column falls in or the
// thread count. OpenMP splits the columns of C statically: the blocks are uniform work.
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "backend/cpu/gemm_internal.h"

namespace ll::cpu::gemm_detail {
namespace {

// kGroupRows (rows of A per kernel call) and kAxpyPanelRows (rows of B per axpy call) are in
// gemm_internal.h: the x86 kernels use them too.
constexpr int64_t kDotBlockRows = 8;       // rows of B per OpenMP iteration: a multiple of every R
constexpr int64_t kAxpyMaxTaskCols = 512;  // columns of C per axpy task (a multiple of 32)
constexpr int kPortableLanes = 8;

// dst[0 : N] = src[0 : N] converted to T, in a form the compiler vectorises (bf16: widen the
// bits as integers, then reinterpret, rather than one memcpy per element).
template <typename T, typename Format, int N>
void load_full(T* dst, const typename Format::Stored* src) {
  if constexpr (std::is_same_v<Format, Bf16Format>) {
    uint32_t bits[N];
    for (int i = 0; i < N; ++i) bits[i] = static_cast<uint32_t>(src[i]) << 16;
    float values[N];
    std::memcpy(values, bits, sizeof values);
    for (int i = 0; i < N; ++i) dst[i] = static_cast<T>(values[i]);
  } else {
    for (int i = 0; i < N; ++i) dst[i] = static_cast<T>(Format::scalar(src[i]));
  }
}

// Lane sums by halving: l += l + L/2, then L/4, ..., 1 (what the vector kernels' reductions do).
template <typename T, int L>
T sum_lanes(T (&lanes)[L]) {
  for (int half = L / 2; half >= 1; half /= 2) {
    for (int l = 0; l < half; ++l) lanes[l] += lanes[l + half];
  }
  return lanes[0];
}

// Plain C++ (and the double path). The lane loops have constant trip counts, so the compiler
// vectorises them for whatever the build targets.
template <typename T, typename Format, int R, int MB>
void dot_portable(int64_t k, const T* a, int64_t lda, const typename Format::Stored* b, int64_t ldb,
                  int64_t first, int64_t last, T* out) {
  constexpr int L = kPortableLanes;
  const typename Format::Stored* rows[R];
  for (int r = 0; r < R; ++r) rows[r] = b + std::min(first + r, last) * ldb;
  T acc[MB][R][L] = {};
  T w[R][L];
  T x[L];
  const auto accumulate = [&](int64_t p, const T* const* rows_of_a) {
    for (int i = 0; i < MB; ++i) {
      for (int l = 0; l < L; ++l) x[l] = rows_of_a[i][p + l];
      for (int r = 0; r < R; ++r) {
        for (int l = 0; l < L; ++l) acc[i][r][l] += x[l] * w[r][l];
      }
    }
  };
  const T* a_rows[MB];
  for (int i = 0; i < MB; ++i) a_rows[i] = a + i * lda;
  const int64_t k_full = k - k % L;
  for (int64_t p = 0; p < k_full; p += L) {
    for (int r = 0; r < R; ++r) {
      load_full<T, Format, L>(w[r], rows[r] + p);
    }
    accumulate(p, a_rows);
  }
  if (k_full < k) {
    T a_tail[MB][L];
    const T* tail_rows[MB];
    for (int r = 0; r < R; ++r) load_padded<T, Format>(w[r], rows[r] + k_full, k - k_full, L);
    for (int i = 0; i < MB; ++i) {
      load_padded<T, PlainFormat<T>>(a_tail[i], a_rows[i] + k_full, k - k_full, L);
      tail_rows[i] = a_tail[i];
    }
    accumulate(0, tail_rows);
  }
  for (int i = 0; i < MB; ++i) {
    for (int r = 0; r < R; ++r) out[i * R + r] = sum_lanes(acc[i][r]);
  }
}

template <typename T, typename Format, int MB>
void axpy_portable(int64_t kp, const T* a, int64_t a_row, int64_t a_step,
                   const typename Format::Stored* b, int64_t ldb, int64_t cols, T* tile,
                   int64_t ldt) {
  constexpr int NB = 8;  // 16 SSE registers: MB·NB/4 accumulators must fit
  for (int64_t j = 0; j < cols; j += NB) {
    T acc[MB][NB];
    for (int i = 0; i < MB; ++i) {
      for (int jj = 0; jj < NB; ++jj) acc[i][jj] = tile[i * ldt + j + jj];
    }
    T w[NB];
    const bool full = cols - j >= NB;
    for (int64_t p = 0; p < kp; ++p) {
      const typename Format::Stored* row = b + p * ldb + j;
      if (full) {
        load_full<T, Format, NB>(w, row);
      } else {
        load_padded<T, Format>(w, row, cols - j, NB);
      }
      for (int i = 0; i < MB; ++i) {
        const T x = a[i * a_row + p * a_step];
        for (int jj = 0; jj < NB; ++jj) acc[i][jj] += x * w[jj];
      }
    }
    for (int i = 0; i < MB; ++i) {
      for (int jj = 0; jj < NB; ++jj) tile[i * ldt + j + jj] = acc[i][jj];
    }
  }
}

// The kernels of the selected ISA (double: portable only, as for the packed path).
template <typename T, typename Format>
FewRowsKernels<T, Format> few_rows_kernels() {
  if constexpr (std::is_same_v<T, float>) {
    switch (selected_kernel().load(std::memory_order_relaxed)) {
#ifdef LL_GEMM_X86
      case GemmKernel::Avx512:
        return few_rows_kernels_avx512<Format>();
      case GemmKernel::Avx2:
        return few_rows_kernels_avx2<Format>();
#endif
      default:
        break;
    }
  }
  return {{4, 4, 2, 2},
          {dot_portable<T, Format, 4, 1>, dot_portable<T, Format, 4, 2>,
           dot_portable<T, Format, 2, 3>, dot_portable<T, Format, 2, 4>},
          {axpy_portable<T, Format, 1>, axpy_portable<T, Format, 2>, axpy_portable<T, Format, 3>,
           axpy_portable<T, Format, 4>}};
}

// A parallel region whose threads sleep between regions (OMP_WAIT_POLICY=PASSIVE, as on a shared
// machine) costs tens of microseconds to wake them: measured on 2 shared Zen 5 cores, decoding
// smol-135m ran 160 tokens/s with the packed path's kParallelMinMacs (2^18), 225 with 2^22 and
// 215 all serial. One core streams a few-rows GEMM at ~25-35 GB/s, so below 2^22 MACs (a
// 576 x 1536 weight for up to 4 rows) the second thread does not pay for its wake-up.
constexpr int64_t kFewRowsParallelMinMacs = int64_t{1} << 22;

bool few_rows_parallel(int64_t m, int64_t n, int64_t k, int64_t blocks) {
  return blocks > 1 && m * n * k >= kFewRowsParallelMinMacs && !omp_in_parallel();
}

}  // namespace

// C[m, n] = alpha · A[m, k] · Bᵀ + beta · C with B stored [n, k] (ldb >= k); m <= threshold.
template <typename T, typename Format>
void gemm_few_rows_dot(int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
                       const typename Format::Stored* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  const FewRowsKernels<T, Format> kernels = few_rows_kernels<T, Format>();
  const int64_t blocks = ceil_div(n, kDotBlockRows);
#pragma omp parallel for schedule(static) if (few_rows_parallel(m, n, k, blocks))
  for (int64_t block = 0; block < blocks; ++block) {
    const int64_t j_begin = block * kDotBlockRows;
    const int64_t j_end = std::min(n, j_begin + kDotBlockRows);
    alignas(64) T tile[kGroupRows * kDotBlockRows];  // [group, R] T
    // Rows of A outermost: the block's rows of B (8 × k elements) stay in L1 for the next group.
    for (int64_t i0 = 0; i0 < m; i0 += kGroupRows) {
      const int64_t group = std::min(kGroupRows, m - i0);
      const int r = kernels.dot_rows[group - 1];
      for (int64_t j0 = j_begin; j0 < j_end; j0 += r) {
        // Rows past j_end read row j_end - 1 again (the kernel clamps) and are not merged.
        kernels.dot[group - 1](k, a + i0 * lda, lda, b, ldb, j0, j_end - 1, tile);
        merge_tile(c + i0 * ldc + j0, ldc, tile, r, group, std::min<int64_t>(r, j_end - j0), alpha,
                   beta);
      }
    }
  }
}

// C[m, n] = alpha · op(A)[m, k] · B + beta · C with B stored [k, n] (ldb >= n); m <= threshold.
template <typename T, typename Format>
void gemm_few_rows_axpy(Transpose trans_a, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
                        int64_t lda, const typename Format::Stored* b, int64_t ldb, T beta, T* c,
                        int64_t ldc) {
  const FewRowsKernels<T, Format> kernels = few_rows_kernels<T, Format>();
  const bool parallel = few_rows_parallel(m, n, k, ceil_div(n, 32));
  const int threads = parallel ? omp_get_max_threads() : 1;
  // Whole rounds of tasks of at most kAxpyMaxTaskCols columns, a multiple of 32 each (the
  // result does not depend on the split: every element sums over p in order).
  const int64_t rounds = ceil_div(n, threads * kAxpyMaxTaskCols);
  const int64_t task_cols = round_up(ceil_div(n, threads * rounds), 32);
  const int64_t tasks = ceil_div(n, task_cols);
  // op(A)[i, p] = a[i·a_row + p·a_step]
  const int64_t a_row = trans_a == Transpose::No ? lda : 1;
  const int64_t a_step = trans_a == Transpose::No ? 1 : lda;
#pragma omp parallel for schedule(static) num_threads(threads) if (parallel)
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t j0 = task * task_cols;
    const int64_t cols = std::min(task_cols, n - j0);
    thread_local PackBuffer<T> tile_buffer;
    T* tile = tile_buffer.reserve(m * task_cols);  // [m, task_cols] T: the sums so far
    std::fill_n(tile, m * task_cols, T(0));
    // Panels of B outermost: one panel (16 rows of the task's columns) serves every row group
    // from L1.
    for (int64_t p0 = 0; p0 < k; p0 += kAxpyPanelRows) {
      const int64_t kp = std::min(kAxpyPanelRows, k - p0);
      for (int64_t i0 = 0; i0 < m; i0 += kGroupRows) {
        const int64_t group = std::min(kGroupRows, m - i0);
        kernels.axpy[group - 1](kp, a + i0 * a_row + p0 * a_step, a_row, a_step, b + p0 * ldb + j0,
                                ldb, cols, tile + i0 * task_cols, task_cols);
      }
    }
    merge_tile(c + j0, ldc, tile, static_cast<int>(task_cols), m, cols, alpha, beta);
  }
}

// The pairs gemm.cpp calls: T with its own format (gemm), and with f32, bf16 and f16 weights.
#define LL_INSTANTIATE(T, Format)                                                                \
  template void gemm_few_rows_dot<T, Format>(int64_t, int64_t, int64_t, T, const T*, int64_t,    \
                                             const Format::Stored*, int64_t, T, T*, int64_t);    \
  template void gemm_few_rows_axpy<T, Format>(Transpose, int64_t, int64_t, int64_t, T, const T*, \
                                              int64_t, const Format::Stored*, int64_t, T, T*,    \
                                              int64_t);
LL_INSTANTIATE(float, F32Format)
LL_INSTANTIATE(float, Bf16Format)
LL_INSTANTIATE(float, F16Format)
LL_INSTANTIATE(double, F64Format)
LL_INSTANTIATE(double, F32Format)
LL_INSTANTIATE(double, Bf16Format)
LL_INSTANTIATE(double, F16Format)
#undef LL_INSTANTIATE

}  // namespace ll::cpu::gemm_detail
