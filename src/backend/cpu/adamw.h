// The optimizer step for the LoRA weights (fp32 master weights, fp32 moments), exactly the
// update of torch.optim.AdamW (torch 2.x, single-tensor path, amsgrad off, maximize off):
//
//   param       *= 1 - lr · weight_decay                     (decoupled weight decay)
//   exp_avg      = lerp(exp_avg, grad, 1 - beta1)            = m + (1 - beta1) · (g - m)
//   exp_avg_sq   = exp_avg_sq · beta2 + (1 - beta2) · g · g
//   step_size    = lr / (1 - beta1^step)                     (bias corrections in double,
//   denom        = sqrt(exp_avg_sq) / sqrt(1 - beta2^step) + eps      as Python computes them)
//   param       += -step_size · exp_avg / denom
//
// Scalars are formed in double and rounded to fp32, as torch rounds a Python float when it
// meets an fp32 tensor. torch's vectorised kernels fuse some multiply-adds, so the match is
// to within a few ulp, not bit-for-bit.
//
// And gradient clipping with torch.nn.utils.clip_grad_norm_'s semantics (p = 2):
//   total_norm = sqrt(Σ over every gradient element of g²)
//   scale      = max_norm / (total_norm + 1e-6), applied only when < 1.
// Split into pieces so that the squared sums can be all-reduced across ranks in between.
#pragma once

#include <cstdint>
#include <span>

#include "backend/ops.h"

namespace ll::cpu {

using ll::AdamWConfig;  // backend/ops.h

// One AdamW step on one tensor: param, grad, exp_avg, exp_avg_sq [n] fp32. `step` is the
// 1-based number of this update (torch's state["step"] after its increment).
void adamw_update(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                  const AdamWConfig& config, int64_t step);

// Σ grad[i]² in double: one tensor's share of the squared global norm.
double grad_sum_of_squares(const float* grad, int64_t n);

using ll::clip_coefficient;  // backend/ops.h

// grad[i] *= scale.
void grad_scale(float* grad, int64_t n, float scale);

struct GradBuffer {
  float* data;  // [size] fp32
  int64_t size;
};

// clip_grad_norm_ over the gradients of one process: returns the total norm (before
// clipping) and scales every buffer when it exceeds max_norm.
double clip_grad_norm(std::span<const GradBuffer> grads, double max_norm);

}  // namespace ll::cpu
