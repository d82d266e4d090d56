// Thin matrix products: one of m, n, k is at most kThinMax (a LoRA rank) and the other two are
// large (tokens, features). These are the LoRA branch's six products per projection:
//
//   u   = x · Aᵀ        [tokens, r]      n small   ("dot": r dot products per row)
//   y  += s · u · Bᵀ    [tokens, out]    k small   ("expand": r multiply-adds per element)
//   dB += s · dyᵀ · u   [out, r]         n small, k = tokens   ("outer": a sum of outer products)
//   du  = s · dy · B    [tokens, r]      n small   (dot)
//   dA += duᵀ · x       [r, in]          m small, k = tokens   (outer)
//   dx  = du · A        [tokens, in]     k small   (expand)
//
// A general GEMM packs panels for a large k and a large n; here one of them is ~8, so packing,
// its bf16 rounding pass over the large operand (the oneDNN path) and the tile overheads cost
// more than the arithmetic. These kernels stream the large operand once, straight from where
// it lies, with the small one (rounded, transposed, padded to 8 columns) in a scratch copy
// that stays in L1: AVX-512, OpenMP over rows (dot, expand) or over output columns (outer).
// Each output element is summed by one thread in a fixed order: results do not depend on the
// thread count.
//
// OperandRounding::Bf16 is `--bf16 True`'s product (matmul_bf16.h): both operands rounded to
// bf16 (round-to-nearest-even, in registers for the large one), each product exact in fp32,
// sums in fp32. It agrees with oneDNN's within fp32 summation-order rounding, not bit for bit.
#pragma once

#include <cstdint>

#include "backend/cpu/gemm.h"

namespace ll::cpu {

inline constexpr int64_t kThinMax = 16;   // the small dimension: at most this
inline constexpr int64_t kThinMin = 128;  // the two others: at least this

enum class OperandRounding { None, Bf16 };

// Whether gemm_thin takes this product: the sizes above, a layout it streams (the large
// operand's rows contiguous), and the AVX-512 GEMM kernel active (gemm_kernel_active).
bool gemm_thin_applies(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k);

// C[m, n] = alpha · op(A) · op(B) + beta · C, gemm.h's layout and contract (beta = 0 does not
// read C). Throws ll::Error when gemm_thin_applies is false.
void gemm_thin(OperandRounding rounding, Transpose trans_a, Transpose trans_b, int64_t m, int64_t n,
               int64_t k, float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
               float beta, float* c, int64_t ldc);

// The LoRA down-projection with its input dropout folded in (dropout.h's mask, window and
// 1/(1-p); no dropped copy of the input is written):
//   lora_down_forward:  u[tokens, r] = dropout(x)[tokens, in] · A[r, in]ᵀ
//   lora_down_backward: grad_a[r, in] += duᵀ · dropout(x) ; dx[tokens, in] += dropout'(du · A)
// The same values as dropout_forward / dropout_backward around gemm_thin's products, bit for
// bit (the same roundings in the same order). p in (0, 1); the window's columns, if any, are
// `in`. Throws ll::Error where lora_down_fused_applies is false.
bool lora_down_fused_applies(int64_t tokens, int64_t in, int64_t r);
void lora_down_forward(OperandRounding rounding, float* u, const float* x, const float* a,
                       int64_t tokens, int64_t in, int64_t r, const LoraDropout& dropout);
void lora_down_backward(OperandRounding rounding, float* grad_a, float* dx, const float* du,
                        const float* x, const float* a, int64_t tokens, int64_t in, int64_t r,
                        const LoraDropout& dropout);

}  // namespace ll::cpu
