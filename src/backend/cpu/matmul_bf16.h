// bf16 matrix products on the CPU through oneDNN (Debian's libdnnl-dev), for `--bf16 True`:
// the operands are rounded to bf16 (round-to-nearest-even, as torch's .to(torch.bfloat16)),
// multiplied with fp32 accumulation, and the result is written (or added) in fp32. This is
// what torch's CPU autocast does for linear and matmul, except that autocast then rounds the
// product to bf16 and we keep it fp32 (one rounding fewer; DESIGN.md "bf16 compute").
//
// oneDNN picks the instructions itself (AVX512_BF16, or AMX on Intel Xeons) and runs on the
// process's OpenMP pool, the one our own kernels use. A matmul primitive is created once per
// shape and cached. Operands are rounded into per-thread scratch that grows and is kept, so a
// step allocates nothing after the first.
//
// Built without oneDNN (matmul_bf16_stub.cpp), or on a CPU without native bf16 dot products,
// bf16_matmul_available() is false and the callers keep the fp32 path (gemm.h); the functions
// below then throw ll::Error.
#pragma once

#include <cstdint>
#include <string>

#include "backend/cpu/weights.h"

namespace ll::cpu {

using ll::Accumulate;
using ll::Transpose;

// True when this build links oneDNN and the CPU has native bf16 dot products.
bool bf16_matmul_available();
// What runs them, for logs and metrics: "oneDNN 2.6.3 brg:avx512_core_bf16", or why not
// ("built without oneDNN", "CPU lacks AVX512_BF16 and AMX").
std::string bf16_matmul_description();

// C[m, n] = alpha · op(A) · op(B) + beta · C, the layout of gemm.h's gemm, with A and B
// rounded to bf16. beta = 0 writes C without reading it.
void bf16_gemm(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k, float alpha,
               const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
               int64_t ldc);

// y[tokens, out] (+)= bf16(x[tokens, in]) · W[out, in]ᵀ. A bf16 W is read in place; an f32 or
// f16 W is rounded to bf16 on each call (small test models; checkpoints are bf16).
void bf16_linear_forward(float* y, const float* x, WeightView w, int64_t tokens, int64_t in,
                         int64_t out, Accumulate accumulate);

// dx[tokens, in] (+)= bf16(dy[tokens, out]) · W[out, in].
void bf16_linear_backward_input(float* dx, const float* dy, WeightView w, int64_t tokens,
                                int64_t in, int64_t out, Accumulate accumulate);

}  // namespace ll::cpu
