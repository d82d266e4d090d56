// The parts of the CPU GEMM (gemm.h) that its files share, and nothing another op needs:
//   gemm.cpp          the public entry points, argument checks, the process-wide settings;
//   gemm_packed.cpp   the packed, cache-blocked path (BLIS-style) and its portable kernel;
//   gemm_few_rows.cpp the few-rows path (B read in place) and its portable kernels;
//   gemm_x86.cpp      the AVX2 and AVX-512 kernels of both paths.
// Everything here is in gemm_detail: callers outside these files use gemm.h.
#pragma once

#include <atomic>
#include <cstdint>
#include <new>
#include <type_traits>

#include "backend/cpu/gemm.h"

#if defined(__x86_64__) || defined(__i386__)
#define LL_GEMM_X86 1
#endif

namespace ll::cpu::gemm_detail {

inline int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}
inline int64_t round_up(int64_t a, int64_t b) {
  return ceil_div(a, b) * b;
}

// The kernel that float GEMMs use now (gemm_kernel_select; never `Auto`). Defined in gemm.cpp.
std::atomic<GemmKernel>& selected_kernel();

// ---- micro-kernels: tile[MR, NR] = Σ_p a[p, 0:MR] ⊗ b[p, 0:NR] over packed panels --------

template <typename T>
using KernelFn = void (*)(int64_t kc, const T* a, const T* b, T* tile);

template <typename T>
struct Kernel {
  int mr;
  int nr;
  KernelFn<T> fn;
};

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

// C[0:rows, 0:cols] = alpha · tile + beta · C   (beta = 0: C is not read). Both paths merge
// their register tiles into C with it.
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

// The driver of the packed path (gemm_packed.cpp), behind gemm and the linear layers. A is T;
// B is read through `load_b` (LoadPlain, LoadBf16 or LoadF16). Arguments as for gemm (gemm.h),
// already checked.
template <typename T, typename LoadB>
void gemm_packed(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k, T alpha,
                 const T* a, int64_t lda, LoadB load_b, int64_t ldb, T beta, T* c, int64_t ldc);

// ---- few rows: B read in place (gemm_few_rows.cpp) ----------------------------------------

constexpr int64_t kGroupRows = 4;       // rows of A per kernel call (registers)
constexpr int64_t kAxpyPanelRows = 16;  // rows of B per axpy call

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

// C[m, n] = alpha · A[m, k] · Bᵀ + beta · C with B stored [n, k] (ldb >= k); m <= threshold.
template <typename T, typename Format>
void gemm_few_rows_dot(int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
                       const typename Format::Stored* b, int64_t ldb, T beta, T* c, int64_t ldc);

// C[m, n] = alpha · op(A)[m, k] · B + beta · C with B stored [k, n] (ldb >= n); m <= threshold.
template <typename T, typename Format>
void gemm_few_rows_axpy(Transpose trans_a, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
                        int64_t lda, const typename Format::Stored* b, int64_t ldb, T beta, T* c,
                        int64_t ldc);

#ifdef LL_GEMM_X86
// ---- x86 SIMD kernels (gemm_x86.cpp) ------------------------------------------------------
//
// Returned as tables of function pointers: the kernels themselves carry target attributes and
// stay inside gemm_x86.cpp, so no other file is compiled for instructions the CPU may lack.
// Call only when gemm_kernel_supported says the CPU has them.

Kernel<float> packed_kernel_avx2();    // 6×16
Kernel<float> packed_kernel_avx512();  // 8×32

// For F32Format, Bf16Format and F16Format.
template <typename Format>
FewRowsKernels<float, Format> few_rows_kernels_avx2();
template <typename Format>
FewRowsKernels<float, Format> few_rows_kernels_avx512();
#endif  // LL_GEMM_X86

}  // namespace ll::cpu::gemm_detail
