// RMSNorm as transformers' LlamaRMSNorm computes it:
//
//   rstd[t] = 1 / sqrt(mean_c(x[t, c]²) + eps)          in fp32 (double for T = double)
//   y[t, c] = w[c] · (x[t, c] · rstd[t])
//
// (LlamaRMSNorm upcasts to fp32, normalises, casts back to the input dtype and then multiplies
// by the weight; with fp32 activations the cast is the identity.) The weight is frozen: the
// backward gives dx only,
//
//   dx[t, c] = rstd · w[c] · dy[t, c] - x[t, c] · rstd³ / C · Σ_c' dy[t, c'] · w[c'] · x[t, c']
//
// with the sums in fp32 (double for T = double), over 16 lanes.
#pragma once

#include <cstdint>

#include "backend/cpu/gemm.h"
#include "backend/cpu/weights.h"

namespace ll::cpu {

// y[tokens, hidden], rstd[tokens] (saved for the backward) from x[tokens, hidden] and
// weight[hidden] (f32/bf16/f16). eps is rms_norm_eps of config.json, rounded to T as torch
// does when it adds the Python float to an fp32 tensor. `y` may be `x`.
template <typename T>
void rmsnorm_forward(T* y, T* rstd, const T* x, WeightView weight, int64_t tokens, int64_t hidden,
                     double eps);

// dx[tokens, hidden] (+)= the gradient of rmsnorm_forward at x, given dy[tokens, hidden] and
// the forward's rstd[tokens]. Accumulate::Yes adds into dx (the residual stream's gradient).
template <typename T>
void rmsnorm_backward(T* dx, const T* dy, const T* x, const T* rstd, WeightView weight,
                      int64_t tokens, int64_t hidden, Accumulate accumulate);

}  // namespace ll::cpu
