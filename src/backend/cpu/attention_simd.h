// SIMD building blocks of the CPU attention kernels (attention.cpp; swiglu.cpp uses the exp):
// vector types, one register-tiled small matrix product, a vector exp, lane masks. Written with
// GCC/Clang vector extensions so that one source compiles for 16-byte vectors (SSE2), AVX2+FMA and
// AVX-512; attention.cpp instantiates it inside functions carrying those targets. Everything here
// is always_inline and passes vectors by reference only: a vector passed by value between code
// built for different targets would change the calling convention.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

namespace ll::cpu::simd {

// Unaligned vector types (GCC/Clang vector extensions; arithmetic is element-wise).
template <typename T, int Bytes>
struct VectorOf;
template <>
struct VectorOf<float, 16> {
  typedef float type __attribute__((vector_size(16), aligned(4), may_alias));
};
template <>
struct VectorOf<float, 32> {
  typedef float type __attribute__((vector_size(32), aligned(4), may_alias));
};
template <>
struct VectorOf<float, 64> {
  typedef float type __attribute__((vector_size(64), aligned(4), may_alias));
};
template <>
struct VectorOf<double, 16> {
  typedef double type __attribute__((vector_size(16), aligned(8), may_alias));
};

// Integer lanes of the same size, for column indices and masks.
template <typename T, int Bytes>
struct IndexVectorOf;
template <int Bytes>
struct IndexVectorOf<float, Bytes> {
  using scalar = int32_t;
  typedef int32_t type __attribute__((vector_size(Bytes)));
};
template <int Bytes>
struct IndexVectorOf<double, Bytes> {
  using scalar = int64_t;
  typedef int64_t type __attribute__((vector_size(Bytes)));
};

// A register tile of kRows rows × kVectors vectors of C: kRows * kVectors accumulators,
// enough to hide the add/FMA latency, few enough to stay in the 16 (SSE2/AVX2) or 32
// (AVX-512) vector registers. kRows divides attention.cpp's 64-row tiles.
template <typename T, int Bytes, int Rows, int Vectors>
struct Simd {
  using Scalar = T;
  using Vector = typename VectorOf<T, Bytes>::type;
  using Index = typename IndexVectorOf<T, Bytes>::type;
  using IndexScalar = typename IndexVectorOf<T, Bytes>::scalar;
  static constexpr int64_t kRows = Rows;
  static constexpr int64_t kVectors = Vectors;
  static constexpr int64_t kWidth = Bytes / static_cast<int>(sizeof(T));
  static constexpr int64_t kCols = kWidth * Vectors;
};
using SimdBaseline = Simd<float, 16, 4, 2>;  // 8 xmm accumulators, 8 columns
using SimdAvx2 = Simd<float, 32, 4, 2>;      // 8 ymm accumulators, 16 columns
using SimdAvx512 = Simd<float, 64, 8, 1>;    // 8 zmm accumulators, 16 columns
using SimdDouble = Simd<double, 16, 4, 2>;   // the finite-difference instantiation

enum class Into { Overwrite, Accumulate };

// C[kRows, kCols] (=|+=) A · B over K, A(m, k) = a[m*a_m + k*a_k], B row-major (row stride
// ldb), C row-major (row stride ldc).
template <typename S, Into into>
[[gnu::always_inline]] inline void gemm_tile(typename S::Scalar* c, int64_t ldc,
                                             const typename S::Scalar* a, int64_t a_m, int64_t a_k,
                                             const typename S::Scalar* b, int64_t ldb,
                                             int64_t depth) {
  using V = typename S::Vector;
  V acc[S::kRows][S::kVectors];
  for (int64_t m = 0; m < S::kRows; ++m) {
    for (int64_t v = 0; v < S::kVectors; ++v) {
      if constexpr (into == Into::Accumulate) {
        acc[m][v] = *reinterpret_cast<const V*>(c + m * ldc + v * S::kWidth);
      } else {
        acc[m][v] = V{};
      }
    }
  }
  for (int64_t k = 0; k < depth; ++k) {
    V row[S::kVectors];
    for (int64_t v = 0; v < S::kVectors; ++v) {
      row[v] = *reinterpret_cast<const V*>(b + k * ldb + v * S::kWidth);
    }
    for (int64_t m = 0; m < S::kRows; ++m) {
      const typename S::Scalar scalar = a[m * a_m + k * a_k];
      for (int64_t v = 0; v < S::kVectors; ++v) acc[m][v] += scalar * row[v];
    }
  }
  for (int64_t m = 0; m < S::kRows; ++m) {
    for (int64_t v = 0; v < S::kVectors; ++v) {
      *reinterpret_cast<V*>(c + m * ldc + v * S::kWidth) = acc[m][v];
    }
  }
}

// The same product for the edges that do not fill a register tile.
template <typename T, Into into>
[[gnu::always_inline]] inline void gemm_edge(T* c, int64_t ldc, const T* a, int64_t a_m,
                                             int64_t a_k, const T* b, int64_t ldb, int64_t rows,
                                             int64_t cols, int64_t depth) {
  for (int64_t m = 0; m < rows; ++m) {
    T* c_row = c + m * ldc;
    if constexpr (into == Into::Overwrite) std::fill(c_row, c_row + cols, T{0});
    for (int64_t k = 0; k < depth; ++k) {
      const T scalar = a[m * a_m + k * a_k];
      const T* b_row = b + k * ldb;
      for (int64_t n = 0; n < cols; ++n) c_row[n] += scalar * b_row[n];
    }
  }
}

// C[rows, cols] (=|+=) A[rows, depth] · B[depth, cols], layouts as in gemm_tile.
template <typename S, Into into>
[[gnu::always_inline]] inline void gemm(typename S::Scalar* c, int64_t ldc,
                                        const typename S::Scalar* a, int64_t a_m, int64_t a_k,
                                        const typename S::Scalar* b, int64_t ldb, int64_t rows,
                                        int64_t cols, int64_t depth) {
  int64_t m = 0;
  for (; m + S::kRows <= rows; m += S::kRows) {
    int64_t n = 0;
    for (; n + S::kCols <= cols; n += S::kCols) {
      gemm_tile<S, into>(c + m * ldc + n, ldc, a + m * a_m, a_m, a_k, b + n, ldb, depth);
    }
    if (n < cols) {
      gemm_edge<typename S::Scalar, into>(c + m * ldc + n, ldc, a + m * a_m, a_m, a_k, b + n, ldb,
                                          S::kRows, cols - n, depth);
    }
  }
  if (m < rows) {
    gemm_edge<typename S::Scalar, into>(c + m * ldc, ldc, a + m * a_m, a_m, a_k, b, ldb, rows - m,
                                        cols, depth);
  }
}

// x = exp(x) lane by lane. fp32: Cephes' expf (range reduction by ln 2 in two parts, degree-6
// polynomial, 2^n from the exponent bits), within 1 ULP of the correctly rounded value
// (torch's CPU kernels use SLEEF's 1-ULP expf alike); below -87 it returns 0 (the relative
// weight of such a term is < 1e-37). fp64: the C library's exp.
template <typename S>
[[gnu::always_inline]] inline void exp_in_place(typename S::Vector& x) {
  using T = typename S::Scalar;
  using V = typename S::Vector;
  using I = typename S::Index;
  if constexpr (std::is_same_v<T, double>) {
    for (int64_t l = 0; l < S::kWidth; ++l) x[l] = std::exp(x[l]);
  } else {
    const I underflow = x < -87.0f;
    x = x < -87.0f ? V{} - 87.0f : x;
    x = x > 88.0f ? V{} + 88.0f : x;
    const V magic = V{} + 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
    const V shifted = x * 1.44269504088896341f + magic;
    const V n = shifted - magic;  // round(x / ln 2)
    const V r = x - n * 0.693359375f + n * 2.12194440e-4f;
    V y = 1.9875691500e-4f * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * (r * r) + r + 1.0f;
    const I two_to_n = (__builtin_bit_cast(I, shifted) - __builtin_bit_cast(I, magic) + 127) << 23;
    x = underflow ? V{} : y * __builtin_bit_cast(V, two_to_n);
  }
}

// mask = which lanes of the vector at column c0 lie in [lo, hi). (Vectors travel by
// reference: by value they would change the ABI between the instruction-set builds.)
template <typename S>
[[gnu::always_inline]] inline void lanes_in(typename S::Index& mask, int64_t c0, int64_t lo,
                                            int64_t hi) {
  using IS = typename S::IndexScalar;
  typename S::Index column;
  for (int64_t l = 0; l < S::kWidth; ++l) column[l] = static_cast<IS>(c0 + l);
  mask = (column >= static_cast<IS>(lo)) & (column < static_cast<IS>(hi));
}

}  // namespace ll::cpu::simd
