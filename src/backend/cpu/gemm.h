// Matrix products on the CPU: a general GEMM over activations, and the linear layer of a
// frozen weight (forward and input-gradient; frozen weights get no gradient).
//
// This is the portable path: packed, cache-blocked panels (BLIS-style) with an fp32 register
// micro-kernel chosen at run time (AVX-512, AVX2+FMA, or plain C++), OpenMP over output tiles.
// Every output element is computed by one thread in a fixed order, so results do not depend
// on the thread count. With a few rows of activations (decode) a second path reads the weights
// in place instead of packing them (gemm_few_rows_select below). Weights are converted to T while a
// tile is packed (bf16 -> f32 is exact), so a bf16 weight gives bit-for-bit the result of the same
// weight converted to f32. Accumulation is in T: fp32 for float, double for double (the double
// instantiation exists for finite-difference tests). The oneDNN/AMX path slots in behind the same
// functions.
#pragma once

#include <cstdint>

#include "backend/cpu/weights.h"

namespace ll::cpu {

using ll::Accumulate;  // backend/ops.h
using ll::Precision;
using ll::Transpose;

// C[m, n] = alpha · op(A) · op(B) + beta · C, row-major with leading dimensions:
//   op(A) = A [m, k] (lda >= k), or Aᵀ with A stored [k, m] (lda >= m);
//   op(B) = B [k, n] (ldb >= n), or Bᵀ with B stored [n, k] (ldb >= k);
//   C [m, n] (ldc >= n).
// beta = 0 writes C without reading it (as BLAS does: NaN in C does not propagate).
// Sizes may be 0; k = 0 gives C = beta · C. Throws ll::Error on negative sizes or too-small
// leading dimensions.
template <typename T>
void gemm(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k, T alpha,
          const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

// Linear layer, no bias:  y[tokens, out] (+)= x[tokens, in] · W[out, in]ᵀ   (W f32/bf16/f16).
template <typename T>
void linear_forward(T* y, const T* x, WeightView w, int64_t tokens, int64_t in, int64_t out,
                    Accumulate accumulate);

// Its input gradient:  dx[tokens, in] (+)= dy[tokens, out] · W[out, in].
template <typename T>
void linear_backward_input(T* dx, const T* dy, WeightView w, int64_t tokens, int64_t in,
                           int64_t out, Accumulate accumulate);

// The linear layer in `precision` (the backend's): Fp32 is the two functions above, Bf16
// rounds the activations (and a non-bf16 W) to bf16 and runs matmul_bf16.h's products.
void linear_forward(Precision precision, float* y, const float* x, WeightView w, int64_t tokens,
                    int64_t in, int64_t out, Accumulate accumulate);
void linear_backward_input(Precision precision, float* dx, const float* dy, WeightView w,
                           int64_t tokens, int64_t in, int64_t out, Accumulate accumulate);

// GEMMs whose op(A) has at most this many rows (decode: one row per sequence) take the few-rows
// path: B (a weight) is read where it lies and converted in registers instead of being packed,
// and each element of B serves every row of A while it is in a register, so each weight byte is
// read from memory once per call. It applies to linear_forward and linear_backward_input, and to
// gemm with op(A) = A and op(B) = Bᵀ, or with op(B) = B (any op(A)). Its sums run in another
// order than the packed path's (see gemm_few_rows.cpp): the two agree within fp32 rounding, not bit
// for bit. Each output element still has one summation order, whatever the thread count or the
// number of rows. 16 by measurement (bench_gemm --mode decode, smol-135m shapes, bf16 weights
// streamed from DRAM, 2 Zen 5 cores): with 1-16 rows the few-rows path is 1.8-13x faster than
// the packed one, and it stayed ahead up to 256 rows on these narrow layers; the limit keeps the
// rows of A (rows · in · 4 bytes) within L2 for wide ones (in = 14336: 16 rows are 0.9 MiB).
constexpr int64_t kGemmFewRowsDefault = 16;

// Process-wide, like gemm_kernel_select; 0 sends every GEMM through the packed path (tests and
// benchmarks compare the two). Throws ll::Error on a negative count.
void gemm_few_rows_select(int64_t max_rows);
int64_t gemm_few_rows_active();

// The micro-kernel behind the float GEMMs. `Auto` (the default) picks the best one the CPU
// supports; tests and benchmarks select the others to cover and compare them.
enum class GemmKernel : uint8_t { Auto, Portable, Avx2, Avx512 };

bool gemm_kernel_supported(GemmKernel kernel);
// Process-wide; call it before starting work, not while GEMMs run. Throws ll::Error when the
// CPU lacks the kernel's instructions.
void gemm_kernel_select(GemmKernel kernel);
GemmKernel gemm_kernel_active();  // never `Auto`: the kernel that float GEMMs use now
const char* gemm_kernel_name(GemmKernel kernel);

}  // namespace ll::cpu
