// See adamw.h.
#include "backend/cpu/adamw.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"

namespace ll::cpu {

void adamw_update(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                  const AdamWConfig& config, int64_t step) {
  check(step >= 1, "adamw", "step must count from 1, got " + std::to_string(step));
  check(n >= 0, "adamw", "negative element count " + std::to_string(n));
  // Python-side scalars (double), then the fp32 values the tensor ops see.
  const double bias_correction1 = 1.0 - std::pow(config.beta1, static_cast<double>(step));
  const double bias_correction2 = 1.0 - std::pow(config.beta2, static_cast<double>(step));
  const float decay = static_cast<float>(1.0 - config.lr * config.weight_decay);
  const float lerp_weight = static_cast<float>(1.0 - config.beta1);
  const bool lerp_weight_small = std::abs(lerp_weight) < 0.5f;  // torch's lerp picks a formula
  const float beta2 = static_cast<float>(config.beta2);
  const float one_minus_beta2 = static_cast<float>(1.0 - config.beta2);
  const float neg_step_size = static_cast<float>(-(config.lr / bias_correction1));
  const float bias_correction2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
  const float eps = static_cast<float>(config.eps);
  const bool decays = config.weight_decay != 0.0;  // torch skips the multiply when 0

#pragma omp parallel for schedule(static) if (n >= 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float g = grad[i];
    float p = param[i];
    if (decays) p *= decay;
    const float m = exp_avg[i];
    const float m_new =
        lerp_weight_small ? m + lerp_weight * (g - m) : g - (g - m) * (1.0f - lerp_weight);
    const float v_new = exp_avg_sq[i] * beta2 + one_minus_beta2 * g * g;
    const float denom = std::sqrt(v_new) / bias_correction2_sqrt + eps;
    param[i] = p + neg_step_size * m_new / denom;  // addcdiv: p + value · t1 / t2
    exp_avg[i] = m_new;
    exp_avg_sq[i] = v_new;
  }
}

double grad_sum_of_squares(const float* grad, int64_t n) {
  // Fixed blocks summed in order, so the result does not depend on the thread count.
  constexpr int64_t kBlock = 16384;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(static_cast<size_t>(blocks));
#pragma omp parallel for schedule(static) if (blocks > 1)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t end = std::min(n, (b + 1) * kBlock);
    double sum = 0.0;
    for (int64_t i = b * kBlock; i < end; ++i) sum += static_cast<double>(grad[i]) * grad[i];
    partial[b] = sum;
  }
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

void grad_scale(float* grad, int64_t n, float scale) {
#pragma omp parallel for schedule(static) if (n >= 65536)
  for (int64_t i = 0; i < n; ++i) grad[i] *= scale;
}

double clip_grad_norm(std::span<const GradBuffer> grads, double max_norm) {
  double sum = 0.0;
  for (const GradBuffer& g : grads) sum += grad_sum_of_squares(g.data, g.size);
  const double total_norm = std::sqrt(sum);
  const double coefficient = clip_coefficient(total_norm, max_norm);
  if (coefficient < 1.0) {
    for (const GradBuffer& g : grads) grad_scale(g.data, g.size, static_cast<float>(coefficient));
  }
  return total_norm;
}

}  // namespace ll::cpu
