// See gemm.h. The structure is BLIS's: the output is cut into tiles, one OpenMP task each; a
// task walks k in panels of depth kKc, packs its slice of op(B) (converting weights to T) and,
// kMc rows at a time, its slice of op(A) into contiguous micro-panels, and a register-blocked
// micro-kernel multiplies an [MR, kc] by a [kc, NR] micro-panel into an MR×NR tile that is
// then merged into C (alpha, beta, ragged edges). Packing pads the edges with zeros, so the
// micro-kernel only ever sees full tiles. GEMMs with a few rows of A (decode) skip packing:
// see gemm_few_rows.cpp. The AVX2 and AVX-512 micro-kernels are in gemm_x86.cpp.
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "backend/cpu/gemm_internal.h"

namespace ll::cpu::gemm_detail {
namespace {

// Panel sizes. kKc·NR·4 bytes (a B micro-panel, 32 KiB for the AVX-512 kernel) stays in L1
// while the packed A block (kMc·kKc·4 = 96 KiB) comes from L2. kMc is a multiple of every MR
// (4, 6, 8), kNc of every NR (8, 16, 32). A is packed even when its rows could be read in
// place: with a leading dimension of a multiple of 4 KiB (hidden 4096, vocab 49152) the MR
// rows map to the same L1 sets and the kernel runs at half speed (measured).
constexpr int64_t kKc = 256;
constexpr int64_t kMc = 96;
constexpr int64_t kNc = 512;
// Below this many multiply-adds a GEMM runs on the calling thread: a parallel region costs a
// few microseconds, more than the work.
constexpr int64_t kParallelMinMacs = int64_t{1} << 18;

// Plain C++; the compiler vectorises the inner loop for whatever the build targets.
template <typename T, int MR, int NR>
void kernel_portable(int64_t kc, const T* a, const T* b, T* tile) {
  T acc[MR][NR] = {};
  for (int64_t p = 0; p < kc; ++p) {
    for (int i = 0; i < MR; ++i) {
      const T ai = a[p * MR + i];
      for (int j = 0; j < NR; ++j) acc[i][j] += ai * b[p * NR + j];
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NR; ++j) tile[i * NR + j] = acc[i][j];
  }
}

template <typename T>
Kernel<T> active_kernel();

template <>
Kernel<float> active_kernel<float>() {
  switch (selected_kernel().load(std::memory_order_relaxed)) {
#ifdef LL_GEMM_X86
    case GemmKernel::Avx512:
      return packed_kernel_avx512();
    case GemmKernel::Avx2:
      return packed_kernel_avx2();
#endif
    default:
      return {4, 8, kernel_portable<float, 4, 8>};
  }
}

// Double is the finite-difference reference, not a speed path: the portable kernel only.
template <>
Kernel<double> active_kernel<double>() {
  return {4, 8, kernel_portable<double, 4, 8>};
}

// op(A)[i0 : i0+rows, p0 : p0+kc] -> micro-panels of MR rows, each [kc][mr], zero-padded.
template <typename T>
void pack_a(T* dst, const T* a, int64_t lda, Transpose trans, int64_t i0, int64_t rows, int64_t p0,
            int64_t kc, int mr) {
  for (int64_t ir = 0; ir < rows; ir += mr) {
    const int64_t panel_rows = std::min<int64_t>(mr, rows - ir);
    T* panel = dst + ir * kc;      // [kc, mr]
    if (trans == Transpose::No) {  // row i of op(A) is contiguous
      for (int64_t i = 0; i < panel_rows; ++i) {
        const T* src = a + (i0 + ir + i) * lda + p0;
        for (int64_t p = 0; p < kc; ++p) panel[p * mr + i] = src[p];
      }
    } else {  // op(A)[i, p] = A[p, i]: column p of op(A) is contiguous
      for (int64_t p = 0; p < kc; ++p) {
        const T* src = a + (p0 + p) * lda + i0 + ir;
        for (int64_t i = 0; i < panel_rows; ++i) panel[p * mr + i] = src[i];
      }
    }
    for (int64_t p = 0; p < kc && panel_rows < mr; ++p) {
      for (int64_t i = panel_rows; i < mr; ++i) panel[p * mr + i] = T(0);
    }
  }
}

// op(B)[p0 : p0+kc, j0 : j0+cols] -> micro-panels of NR columns, each [kc][nr], zero-padded.
template <typename T, typename Load>
void pack_b(T* dst, Load load, int64_t ldb, Transpose trans, int64_t p0, int64_t kc, int64_t j0,
            int64_t cols, int nr) {
  for (int64_t jr = 0; jr < cols; jr += nr) {
    const int64_t panel_cols = std::min<int64_t>(nr, cols - jr);
    T* panel = dst + jr * kc;      // [kc, nr]
    if (trans == Transpose::No) {  // row p of op(B) is contiguous
      for (int64_t p = 0; p < kc; ++p) {
        const int64_t src = (p0 + p) * ldb + j0 + jr;
        T* out = panel + p * nr;
        for (int64_t j = 0; j < panel_cols; ++j) out[j] = load(src + j);
        for (int64_t j = panel_cols; j < nr; ++j) out[j] = T(0);
      }
    } else {  // op(B)[p, j] = B[j, p] (a weight W[out, in]): column j of op(B) is contiguous
      for (int64_t j = 0; j < panel_cols; ++j) {
        const int64_t src = (j0 + jr + j) * ldb + p0;
        for (int64_t p = 0; p < kc; ++p) panel[p * nr + j] = load(src + p);
      }
      for (int64_t p = 0; p < kc && panel_cols < nr; ++p) {
        for (int64_t j = panel_cols; j < nr; ++j) panel[p * nr + j] = T(0);
      }
    }
  }
}

// C = beta · C, for k = 0.
template <typename T>
void scale_matrix(T* c, int64_t ldc, int64_t m, int64_t n, T beta) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
  }
}

// How the output is cut into tasks of rows_per_task × cols_per_task, one thread each.
// A task packs its rows of op(A) and its columns of op(B) once per k panel, so the packing
// work, relative to the multiply-adds, is col_tasks/n + row_tasks/m; a packed element costs
// roughly kPackCost multiply-adds (measured on Zen 5: ~10 with the weights in cache, ~50 when
// they stream from DRAM). Against that stand load balance (whole rounds of tasks per thread)
// and slack: on a shared machine a thread can lose its core for a scheduler tick, and with
// several tasks per thread dynamic scheduling hands its work to the others.
struct TaskGrid {
  int64_t rows_per_task;
  int64_t cols_per_task;
  int64_t row_tasks;
  int64_t col_tasks;
};

constexpr double kPackCost = 16.0;
// A task's C tile is revisited once per k panel: keep it within L2 (512 × 512 fp32 = 1 MiB).
constexpr int64_t kMaxRowsPerTask = 512;

TaskGrid make_grid(int64_t m, int64_t n, int mr, int nr, int64_t row_tasks, int64_t col_tasks) {
  TaskGrid grid{};
  grid.rows_per_task = round_up(ceil_div(m, row_tasks), mr);
  grid.cols_per_task = round_up(ceil_div(n, col_tasks), nr);
  grid.row_tasks = ceil_div(m, grid.rows_per_task);
  grid.col_tasks = ceil_div(n, grid.cols_per_task);
  return grid;
}

TaskGrid plan_tasks(int64_t m, int64_t n, int mr, int nr, int threads) {
  const int64_t min_row_tasks = ceil_div(m, kMaxRowsPerTask);
  const int64_t min_col_tasks = ceil_div(n, kNc);
  TaskGrid best = make_grid(m, n, mr, nr, min_row_tasks, min_col_tasks);
  if (threads <= 1) return best;
  double best_score = 0.0;
  const auto score = [&](const TaskGrid& g) {
    const double tasks = static_cast<double>(g.row_tasks * g.col_tasks);
    const double rounds = std::ceil(tasks / threads);
    const double packing =
        1.0 + kPackCost * (static_cast<double>(g.col_tasks) / static_cast<double>(n) +
                           static_cast<double>(g.row_tasks) / static_cast<double>(m));
    const double balance = rounds * threads / tasks;
    const double slack = 1.0 + 0.5 / rounds;
    return packing * balance * slack;
  };
  best_score = score(best);
  const int64_t max_row_tasks = std::min(ceil_div(m, mr), min_row_tasks + 15);
  const int64_t max_col_tasks = std::min(ceil_div(n, nr), min_col_tasks + 15);
  for (int64_t r = min_row_tasks; r <= max_row_tasks; ++r) {
    for (int64_t c = min_col_tasks; c <= max_col_tasks; ++c) {
      const TaskGrid grid = make_grid(m, n, mr, nr, r, c);
      const double s = score(grid);
      if (s < best_score) {
        best = grid;
        best_score = s;
      }
    }
  }
  return best;
}

}  // namespace

// The one driver behind gemm and the linear layers. A is T; B is read through `load_b`.
template <typename T, typename LoadB>
void gemm_packed(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k, T alpha,
                 const T* a, int64_t lda, LoadB load_b, int64_t ldb, T beta, T* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    scale_matrix(c, ldc, m, n, beta);
    return;
  }
  const Kernel<T> kernel = active_kernel<T>();
  const bool parallel = m * n * k >= kParallelMinMacs && !omp_in_parallel();
  const int threads = parallel ? omp_get_max_threads() : 1;
  const TaskGrid grid = plan_tasks(m, n, kernel.mr, kernel.nr, threads);
  const int64_t tasks = grid.row_tasks * grid.col_tasks;

#pragma omp parallel num_threads(threads) if (parallel && tasks > 1)
  {
    thread_local PackBuffer<T> a_buffer;
    thread_local PackBuffer<T> b_buffer;
    T* a_pack = a_buffer.reserve(kMc * kKc);                 // [kMc/mr][kKc][mr] T
    T* b_pack = b_buffer.reserve(grid.cols_per_task * kKc);  // [cols/nr][kKc][nr] T
    alignas(64) T tile[8 * 32];                              // [mr, nr] T (mr·nr <= 256)

#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t i_begin = (task / grid.col_tasks) * grid.rows_per_task;
      const int64_t i_end = std::min(m, i_begin + grid.rows_per_task);
      const int64_t j_begin = (task % grid.col_tasks) * grid.cols_per_task;
      const int64_t cols = std::min(n, j_begin + grid.cols_per_task) - j_begin;
      for (int64_t p0 = 0; p0 < k; p0 += kKc) {
        const int64_t kc = std::min(kKc, k - p0);
        // The first panel applies beta; later ones add to what the first wrote.
        const T beta_panel = p0 == 0 ? beta : T(1);
        pack_b(b_pack, load_b, ldb, trans_b, p0, kc, j_begin, cols, kernel.nr);
        for (int64_t i0 = i_begin; i0 < i_end; i0 += kMc) {
          const int64_t rows = std::min(kMc, i_end - i0);
          pack_a(a_pack, a, lda, trans_a, i0, rows, p0, kc, kernel.mr);
          for (int64_t jr = 0; jr < cols; jr += kernel.nr) {
            for (int64_t ir = 0; ir < rows; ir += kernel.mr) {
              kernel.fn(kc, a_pack + ir * kc, b_pack + jr * kc, tile);
              merge_tile(c + (i0 + ir) * ldc + j_begin + jr, ldc, tile, kernel.nr,
                         std::min<int64_t>(kernel.mr, rows - ir),
                         std::min<int64_t>(kernel.nr, cols - jr), alpha, beta_panel);
            }
          }
        }
      }
    }
  }
}

// The loaders gemm.cpp passes: T's own elements (gemm), and f32, bf16 and f16 weights.
#define LL_INSTANTIATE(T, ...)                                                                  \
  template void gemm_packed<T, __VA_ARGS__>(Transpose, Transpose, int64_t, int64_t, int64_t, T, \
                                            const T*, int64_t, __VA_ARGS__, int64_t, T, T*,     \
                                            int64_t);
LL_INSTANTIATE(float, LoadPlain<float, float>)
LL_INSTANTIATE(float, LoadBf16<float>)
LL_INSTANTIATE(float, LoadF16<float>)
LL_INSTANTIATE(double, LoadPlain<double, double>)
LL_INSTANTIATE(double, LoadPlain<double, float>)
LL_INSTANTIATE(double, LoadBf16<double>)
LL_INSTANTIATE(double, LoadF16<double>)
#undef LL_INSTANTIATE

}  // namespace ll::cpu::gemm_detail
