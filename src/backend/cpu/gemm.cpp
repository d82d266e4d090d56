// See gemm.h. The structure is BLIS's: the output is cut into tiles, one OpenMP task each; a
// task walks k in panels of depth kKc, packs its slice of op(B) (converting weights to T) and,
// kMc rows at a time, its slice of op(A) into contiguous micro-panels, and a register-blocked
// micro-kernel multiplies an [MR, kc] by a [kc, NR] micro-panel into an MR×NR tile that is
// then merged into C (alpha, beta, ragged edges). Packing pads the edges with zeros, so the
// micro-kernel only ever sees full tiles. GEMMs with a few rows of A (decode) skip packing:
// see "few rows" below.
#include "backend/cpu/gemm.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <new>
#include <string>
#include <type_traits>

#include "core/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LL_GEMM_X86 1
#endif

namespace ll::cpu {
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

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}
int64_t round_up(int64_t a, int64_t b) {
  return ceil_div(a, b) * b;
}

// ---- micro-kernels: tile[MR, NR] = Σ_p a[p, 0:MR] ⊗ b[p, 0:NR] over packed panels --------

template <typename T>
using KernelFn = void (*)(int64_t kc, const T* a, const T* b, T* tile);

template <typename T>
struct Kernel {
  int mr;
  int nr;
  KernelFn<T> fn;
};

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

#ifdef LL_GEMM_X86

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

#endif  // LL_GEMM_X86

GemmKernel best_supported_kernel() {
  if (gemm_kernel_supported(GemmKernel::Avx512)) return GemmKernel::Avx512;
  if (gemm_kernel_supported(GemmKernel::Avx2)) return GemmKernel::Avx2;
  return GemmKernel::Portable;
}

std::atomic<GemmKernel>& selected_kernel() {
  static std::atomic<GemmKernel> selected{best_supported_kernel()};
  return selected;
}

template <typename T>
Kernel<T> active_kernel();

template <>
Kernel<float> active_kernel<float>() {
  switch (selected_kernel().load(std::memory_order_relaxed)) {
#ifdef LL_GEMM_X86
    case GemmKernel::Avx512:
      return {8, 32, kernel_avx512_f32};
    case GemmKernel::Avx2:
      return {6, 16, kernel_avx2_f32};
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

// ---- packing -----------------------------------------------------------------------------

// Per-thread packing buffer, 64-byte aligned, grown as needed and kept between calls (OpenMP
// reuses its threads), so a GEMM does not allocate.
template <typename T>
class PackBuffer {
 public:
  PackBuffer() = default;
  PackBuffer(const PackBuffer&) = delete;
  PackBuffer& operator=(const PackBuffer&) = delete;
  ~PackBuffer() { release(); }
  T* reserve(int64_t count) {
    if (count > capacity_) {
      release();
      data_ = static_cast<T*>(
          ::operator new (static_cast<size_t>(count) * sizeof(T), std::align_val_t{64}));
      capacity_ = count;
    }
    return data_;
  }

 private:
  void release() {
    if (data_ != nullptr) ::operator delete (data_, std::align_val_t{64});
    data_ = nullptr;
    capacity_ = 0;
  }
  T* data_ = nullptr;
  int64_t capacity_ = 0;
};

// Reads element `index` of a B operand, converting to T.
template <typename T, typename Stored>
struct LoadPlain {
  const Stored* base;
  T operator()(int64_t index) const { return static_cast<T>(base[index]); }
};
template <typename T>
struct LoadBf16 {
  const uint16_t* base;
  T operator()(int64_t index) const { return static_cast<T>(bf16_to_f32(base[index])); }
};
template <typename T>
struct LoadF16 {
  const uint16_t* base;
  T operator()(int64_t index) const { return static_cast<T>(f16_to_f32(base[index])); }
};

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

// C[0:rows, 0:cols] = alpha · tile + beta · C   (beta = 0: C is not read).
template <typename T>
void merge_tile(T* c, int64_t ldc, const T* tile, int nr, int64_t rows, int64_t cols, T alpha,
                T beta) {
  for (int64_t i = 0; i < rows; ++i) {
    T* row = c + i * ldc;
    const T* acc = tile + i * nr;
    if (beta == T(0)) {
      for (int64_t j = 0; j < cols; ++j) row[j] = alpha * acc[j];
    } else {
      for (int64_t j = 0; j < cols; ++j) row[j] = alpha * acc[j] + beta * row[j];
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

// ---- few rows: B read in place ------------------------------------------------------------
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

constexpr int64_t kGroupRows = 4;          // rows of A per kernel call (registers)
constexpr int64_t kDotBlockRows = 8;       // rows of B per OpenMP iteration: a multiple of every R
constexpr int64_t kAxpyPanelRows = 16;     // rows of B per axpy call
constexpr int64_t kAxpyMaxTaskCols = 512;  // columns of C per axpy task (a multiple of 32)
constexpr int kPortableLanes = 8;
// The dot kernels prefetch the row this many rows ahead of the one they read (a later call's:
// the hardware prefetcher alone does not keep up with rows of 1-3 KiB). Measured on decode of
// smol-135m (2 Zen 5 cores): 145 tokens/s without, 210-225 with 8, 16 or 32 rows ahead.
constexpr int64_t kPrefetchRows = 16;

std::atomic<int64_t>& few_rows_threshold() {
  static std::atomic<int64_t> threshold{kGemmFewRowsDefault};
  return threshold;
}

// How a B operand's elements are stored, and their value as a float (or double).
struct F32Format {
  using Stored = float;
  static float scalar(float v) { return v; }
};
struct F64Format {
  using Stored = double;
  static double scalar(double v) { return v; }
};
struct Bf16Format {
  using Stored = uint16_t;
  static float scalar(uint16_t v) { return bf16_to_f32(v); }
};
struct F16Format {
  using Stored = uint16_t;
  static float scalar(uint16_t v) { return f16_to_f32(v); }
};
template <typename T>
using PlainFormat = std::conditional_t<std::is_same_v<T, float>, F32Format, F64Format>;

// dst[0 : count] = src[0 : count] converted to T, dst[count : width] = 0: a ragged edge made
// into one full vector.
template <typename T, typename Format>
void load_padded(T* dst, const typename Format::Stored* src, int64_t count, int width) {
  for (int64_t i = 0; i < count; ++i) dst[i] = static_cast<T>(Format::scalar(src[i]));
  for (int64_t i = count; i < width; ++i) dst[i] = T(0);
}

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

// out[i·R + r] = Σ_p a[i·lda + p] · B[min(first + r, last), p] for i < MB, r < R.
template <typename T, typename Format>
using DotFn = void (*)(int64_t k, const T* a, int64_t lda, const typename Format::Stored* b,
                       int64_t ldb, int64_t first, int64_t last, T* out);
// tile[i·ldt + j] += a[i·a_row + p·a_step] · B[p, j] for p = 0, 1, ..., kp - 1 in order, for
// i < MB and j < cols rounded up to 32 (B's columns from cols on count as zero).
template <typename T, typename Format>
using AxpyFn = void (*)(int64_t kp, const T* a, int64_t a_row, int64_t a_step,
                        const typename Format::Stored* b, int64_t ldb, int64_t cols, T* tile,
                        int64_t ldt);

// One set per ISA and format; index g serves groups of g + 1 rows of A.
template <typename T, typename Format>
struct FewRowsKernels {
  int dot_rows[kGroupRows];  // R, rows of B per dot call
  DotFn<T, Format> dot[kGroupRows];
  AxpyFn<T, Format> axpy[kGroupRows];
};

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

#ifdef LL_GEMM_X86

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

#endif  // LL_GEMM_X86

// The kernels of the selected ISA (double: portable only, as for the packed path).
template <typename T, typename Format>
FewRowsKernels<T, Format> few_rows_kernels() {
  if constexpr (std::is_same_v<T, float>) {
    switch (selected_kernel().load(std::memory_order_relaxed)) {
#ifdef LL_GEMM_X86
      case GemmKernel::Avx512:
        return {{8, 8, 4, 4},
                {dot_avx512<Format, 8, 1>, dot_avx512<Format, 8, 2>, dot_avx512<Format, 4, 3>,
                 dot_avx512<Format, 4, 4>},
                {axpy_avx512<Format, 1>, axpy_avx512<Format, 2>, axpy_avx512<Format, 3>,
                 axpy_avx512<Format, 4>}};
      case GemmKernel::Avx2:
        return {{4, 4, 2, 2},
                {dot_avx2<Format, 4, 1>, dot_avx2<Format, 4, 2>, dot_avx2<Format, 2, 3>,
                 dot_avx2<Format, 2, 4>},
                {axpy_avx2<Format, 1>, axpy_avx2<Format, 2>, axpy_avx2<Format, 3>,
                 axpy_avx2<Format, 4>}};
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

bool few_rows_applies(int64_t m, int64_t n, int64_t k) {
  return m >= 1 && m <= few_rows_threshold().load(std::memory_order_relaxed) && n > 0 && k > 0;
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

// Runs `body(Format{})` with the format of the weight's dtype.
template <typename Body>
void with_weight_format(WeightView w, Body body) {
  switch (w.dtype) {
    case DType::F32:
      return body(F32Format{});
    case DType::BF16:
      return body(Bf16Format{});
    case DType::F16:
      return body(F16Format{});
    case DType::I32:
    case DType::I64:
      break;
  }
  fail("linear", "unknown weight dtype");
}

void check_sizes(const char* what, int64_t m, int64_t n, int64_t k) {
  check(m >= 0 && n >= 0 && k >= 0, "gemm",
        std::string(what) + ": negative size m=" + std::to_string(m) + " n=" + std::to_string(n) +
            " k=" + std::to_string(k));
}

void check_leading(const char* name, int64_t ld, int64_t rows, int64_t cols) {
  check(rows == 0 || cols == 0 || ld >= cols, "gemm",
        std::string("leading dimension ") + name + "=" + std::to_string(ld) +
            " is smaller than the " + std::to_string(cols) + " columns it strides over");
}

// Runs `body(load)` with a loader for the weight's dtype.
template <typename T, typename Body>
void with_weight_loader(WeightView w, Body body) {
  switch (w.dtype) {
    case DType::F32:
      return body(LoadPlain<T, float>{static_cast<const float*>(w.data)});
    case DType::BF16:
      return body(LoadBf16<T>{static_cast<const uint16_t*>(w.data)});
    case DType::F16:
      return body(LoadF16<T>{static_cast<const uint16_t*>(w.data)});
    case DType::I32:
    case DType::I64:
      break;
  }
  fail("linear", "unknown weight dtype");
}

}  // namespace

template <typename T>
void gemm(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k, T alpha,
          const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  check_sizes("gemm", m, n, k);
  check_leading("lda", lda, trans_a == Transpose::No ? m : k, trans_a == Transpose::No ? k : m);
  check_leading("ldb", ldb, trans_b == Transpose::No ? k : n, trans_b == Transpose::No ? n : k);
  check_leading("ldc", ldc, m, n);
  if (few_rows_applies(m, n, k)) {
    if (trans_a == Transpose::No && trans_b == Transpose::Yes) {
      return gemm_few_rows_dot<T, PlainFormat<T>>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
    if (trans_b == Transpose::No) {
      return gemm_few_rows_axpy<T, PlainFormat<T>>(trans_a, m, n, k, alpha, a, lda, b, ldb, beta, c,
                                                   ldc);
    }
  }
  gemm_packed(trans_a, trans_b, m, n, k, alpha, a, lda, LoadPlain<T, T>{b}, ldb, beta, c, ldc);
}

template <typename T>
void linear_forward(T* y, const T* x, WeightView w, int64_t tokens, int64_t in, int64_t out,
                    Accumulate accumulate) {
  check_sizes("linear_forward", tokens, out, in);
  const T beta = accumulate == Accumulate::Yes ? T(1) : T(0);
  if (few_rows_applies(tokens, out, in)) {  // one dot product per row of W
    return with_weight_format(w, [&](auto format) {
      using Format = decltype(format);
      gemm_few_rows_dot<T, Format>(tokens, out, in, T(1), x, in,
                                   static_cast<const typename Format::Stored*>(w.data), in, beta, y,
                                   out);
    });
  }
  // y[tokens, out] = x[tokens, in] · W[out, in]ᵀ: op(B) = Wᵀ, so B = W is read transposed.
  with_weight_loader<T>(w, [&](auto load) {
    gemm_packed(Transpose::No, Transpose::Yes, tokens, out, in, T(1), x, in, load, in, beta, y,
                out);
  });
}

template <typename T>
void linear_backward_input(T* dx, const T* dy, WeightView w, int64_t tokens, int64_t in,
                           int64_t out, Accumulate accumulate) {
  check_sizes("linear_backward_input", tokens, in, out);
  const T beta = accumulate == Accumulate::Yes ? T(1) : T(0);
  if (few_rows_applies(tokens, in, out)) {  // dx rows += dy[t, o] · W[o, :], o = 0, 1, ...
    return with_weight_format(w, [&](auto format) {
      using Format = decltype(format);
      gemm_few_rows_axpy<T, Format>(Transpose::No, tokens, in, out, T(1), dy, out,
                                    static_cast<const typename Format::Stored*>(w.data), in, beta,
                                    dx, in);
    });
  }
  // dx[tokens, in] = dy[tokens, out] · W[out, in]: op(B) = W as stored.
  with_weight_loader<T>(w, [&](auto load) {
    gemm_packed(Transpose::No, Transpose::No, tokens, in, out, T(1), dy, out, load, in, beta, dx,
                in);
  });
}

bool gemm_kernel_supported(GemmKernel kernel) {
  switch (kernel) {
    case GemmKernel::Auto:
    case GemmKernel::Portable:
      return true;
#ifdef LL_GEMM_X86
    case GemmKernel::Avx2:
      // f16c for the few-rows kernels' f16 weights (every AVX2 CPU has it).
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("f16c");
    case GemmKernel::Avx512:
      return __builtin_cpu_supports("avx512f");
#else
    case GemmKernel::Avx2:
    case GemmKernel::Avx512:
      return false;
#endif
  }
  return false;
}

void gemm_kernel_select(GemmKernel kernel) {
  check(gemm_kernel_supported(kernel), "gemm",
        std::string("this CPU lacks the instructions of the ") + gemm_kernel_name(kernel) +
            " kernel");
  selected_kernel().store(kernel == GemmKernel::Auto ? best_supported_kernel() : kernel,
                          std::memory_order_relaxed);
}

void gemm_few_rows_select(int64_t max_rows) {
  check(max_rows >= 0, "gemm",
        "the few-rows threshold must be >= 0 (0: off), got " + std::to_string(max_rows));
  few_rows_threshold().store(max_rows, std::memory_order_relaxed);
}

int64_t gemm_few_rows_active() {
  return few_rows_threshold().load(std::memory_order_relaxed);
}

GemmKernel gemm_kernel_active() {
  return selected_kernel().load(std::memory_order_relaxed);
}

const char* gemm_kernel_name(GemmKernel kernel) {
  switch (kernel) {
    case GemmKernel::Auto:
      return "auto";
    case GemmKernel::Portable:
      return "portable";
    case GemmKernel::Avx2:
      return "avx2";
    case GemmKernel::Avx512:
      return "avx512";
  }
  return "?";
}

#define LL_INSTANTIATE(T)                                                                      \
  template void gemm<T>(Transpose, Transpose, int64_t, int64_t, int64_t, T, const T*, int64_t, \
                        const T*, int64_t, T, T*, int64_t);                                    \
  template void linear_forward<T>(T*, const T*, WeightView, int64_t, int64_t, int64_t,         \
                                  Accumulate);                                                 \
  template void linear_backward_input<T>(T*, const T*, WeightView, int64_t, int64_t, int64_t,  \
                                         Accumulate);
LL_INSTANTIATE(float)
LL_INSTANTIATE(double)
#undef LL_INSTANTIATE

}  // namespace ll::cpu
