// Matrix products on the CPU: a general GEMM over activations, and the linear layer of a
// frozen weight (forward and input-gradient; frozen weights get no gradient).
//
// This is the portable path: packed, cache-blocked panels (BLIS-style) with an fp32 register
// micro-kernel chosen at run time (AVX-512, AVX2+FMA, or plain C++), OpenMP over output tiles.
// Every output element is computed by one thread in a fixed order, so results do not depend
// on the thread count. Weights are converted to T while a tile is packed (bf16 -> f32 is exact),
// so a bf16 weight gives bit-for-bit the result of the same weight converted to f32.
// Accumulation is in T: fp32 for float, double for double (the double instantiation exists
// for finite-difference tests). The oneDNN/AMX path slots in behind the same functions.
#pragma once

#include <cstdint>

#include "backend/cpu/weights.h"

namespace ll::cpu {

enum class Transpose : uint8_t { No, Yes };

// Whether an op writes its output (`No`) or adds to what is there (`Yes`, as a gradient that
// sums contributions from several paths does).
enum class Accumulate : uint8_t { No, Yes };

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
