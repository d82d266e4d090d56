// Tests of cpu/adamw: two steps worked out by hand from torch.optim.AdamW's update, random
// tensors against the same formula in double (both lerp branches, with and without weight
// decay), and gradient clipping with clip_grad_norm_'s semantics.
#include "backend/cpu/adamw.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "gradcheck.h"

namespace ll::cpu {
namespace {

// torch.optim.AdamW (torch 2.x, _single_tensor_adam with decoupled weight decay), per step t:
//   p  = p · (1 - lr·wd)
//   m  = m + (1 - β1)·(g - m)                      (exp_avg.lerp_(grad, 1 - β1))
//   v  = β2·v + (1 - β2)·g²                        (exp_avg_sq.mul_(β2).addcmul_(g, g, 1 - β2))
//   p  = p - lr/(1 - β1^t) · m / (sqrt(v)/sqrt(1 - β2^t) + eps)
//
// With lr = 0.1, β1 = 0.9, β2 = 0.999, eps = 1e-8, wd = 0.1, p = [1, -0.5]:
// step 1, g = [0.5, 0]     (1 - β1 = 0.1, 1 - β2 = 0.001):
//   p[0] = 0.99;  m = 0.05;  v = 0.00025;  p[0] = 0.99 - (0.1/0.1)·0.05/(sqrt(0.25) + 1e-8)
//        = 0.99 - 0.05/0.50000001 = 0.890000002
//   p[1] = -0.495; m = v = 0, so no step (0 / (0 + eps) = 0)
// step 2, g = [-0.25, 2]   (1 - β1² = 0.19, 1 - β2² = 0.001999):
//   p[0] = 0.890000002·0.99 = 0.88110000198;  m = 0.045 - 0.025 = 0.02;
//        v = 0.999·0.00025 + 0.001·0.0625 = 0.00031225
//        p[0] -= (0.1/0.19)·0.02 / (sqrt(0.00031225/0.001999) + 1e-8)  ->  0.854466298688
//   p[1] = -0.49005;  m = 0.2;  v = 0.004
//        p[1] -= (0.1/0.19)·0.2 / (sqrt(0.004/0.001999) + 1e-8)         -> -0.564463681831
// (the digits from exact decimal arithmetic). fp32 keeps ~7 digits: tolerance 1e-6.
TEST(AdamW, TwoStepsWorkedByHand) {
  AdamWConfig config;
  config.lr = 0.1;
  config.beta1 = 0.9;
  config.beta2 = 0.999;
  config.eps = 1e-8;
  config.weight_decay = 0.1;
  std::vector<float> param = {1.0f, -0.5f}, m(2, 0.0f), v(2, 0.0f);
  std::vector<float> grad = {0.5f, 0.0f};
  adamw_update(param.data(), grad.data(), m.data(), v.data(), 2, config, 1);
  EXPECT_NEAR(param[0], 0.890000002, 1e-6);
  EXPECT_NEAR(param[1], -0.495, 1e-6);
  EXPECT_NEAR(m[0], 0.05, 1e-8);
  EXPECT_NEAR(v[0], 0.00025, 1e-10);
  EXPECT_EQ(m[1], 0.0f);
  EXPECT_EQ(v[1], 0.0f);

  grad = {-0.25f, 2.0f};
  adamw_update(param.data(), grad.data(), m.data(), v.data(), 2, config, 2);
  EXPECT_NEAR(param[0], 0.854466298688, 1e-6);
  EXPECT_NEAR(param[1], -0.564463681831, 1e-6);
  EXPECT_NEAR(m[0], 0.02, 1e-8);
  EXPECT_NEAR(m[1], 0.2, 1e-7);
  EXPECT_NEAR(v[0], 0.00031225, 1e-10);
  EXPECT_NEAR(v[1], 0.004, 1e-9);
}

// The same update in double, with torch's lerp formulas.
void reference_step(std::vector<double>& p, const std::vector<double>& g, std::vector<double>& m,
                    std::vector<double>& v, const AdamWConfig& c, int64_t step) {
  const double bc1 = 1.0 - std::pow(c.beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(c.beta2, static_cast<double>(step));
  const double w = 1.0 - c.beta1;
  for (size_t i = 0; i < p.size(); ++i) {
    p[i] *= 1.0 - c.lr * c.weight_decay;
    m[i] = std::abs(w) < 0.5 ? m[i] + w * (g[i] - m[i]) : g[i] - (g[i] - m[i]) * (1.0 - w);
    v[i] = c.beta2 * v[i] + (1.0 - c.beta2) * g[i] * g[i];
    p[i] -= c.lr / bc1 * m[i] / (std::sqrt(v[i]) / std::sqrt(bc2) + c.eps);
  }
}

TEST(AdamW, MatchesDoubleReferenceOverSeveralSteps) {
  AdamWConfig with_decay;  // torch's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, wd 0.01
  AdamWConfig no_decay;
  no_decay.lr = 2e-4;
  no_decay.weight_decay = 0.0;
  AdamWConfig small_beta1;  // 1 - β1 >= 0.5: torch's lerp takes its other formula
  small_beta1.beta1 = 0.3;
  small_beta1.lr = 0.05;
  for (const AdamWConfig& config : {with_decay, no_decay, small_beta1}) {
    SCOPED_TRACE(testing::Message() << "beta1=" << config.beta1 << " wd=" << config.weight_decay);
    const int64_t n = 100003;  // odd, large enough to run in parallel
    std::vector<float> p = test::random_values<float>(n, 1), m(n, 0.0f), v(n, 0.0f);
    std::vector<double> p_ref = test::convert<double>(p), m_ref(n, 0.0), v_ref(n, 0.0);
    for (int64_t step = 1; step <= 4; ++step) {
      const auto g = test::random_values<float>(n, 10 + static_cast<uint64_t>(step), -0.1, 0.1);
      test::GuardedBuffer<float> param(p), exp_avg(m), exp_avg_sq(v);
      adamw_update(param.data(), g.data(), exp_avg.data(), exp_avg_sq.data(), n, config, step);
      param.expect_guards_intact("param");
      exp_avg.expect_guards_intact("exp_avg");
      exp_avg_sq.expect_guards_intact("exp_avg_sq");
      p = param.values();
      m = exp_avg.values();
      v = exp_avg_sq.values();
      reference_step(p_ref, test::convert<double>(g), m_ref, v_ref, config, step);
    }
    // |p| <= ~1 and each step moves it by <= ~lr: fp32 rounding of a few ulp of 1.
    test::expect_all_near("param", p, p_ref, 1e-6, 0.0);
    // m is formed from g (|g| <= 0.1) with cancellation: a few ulp of 0.1 absolute.
    test::expect_all_near("exp_avg", m, m_ref, 5e-8, 1e-6);
    test::expect_all_near("exp_avg_sq", v, v_ref, 1e-12, 1e-6);
  }
}

TEST(AdamW, StepCountsFromOne) {
  float p = 1.0f, g = 1.0f, m = 0.0f, v = 0.0f;
  EXPECT_THROW(adamw_update(&p, &g, &m, &v, 1, AdamWConfig{}, 0), Error);
}

TEST(ClipGradNorm, SumOfSquaresAndCoefficient) {
  const std::vector<float> g = {3.0f, -4.0f};
  EXPECT_EQ(grad_sum_of_squares(g.data(), 2), 25.0);
  // clip_grad_norm_: max_norm / (total_norm + 1e-6), only when below 1.
  EXPECT_DOUBLE_EQ(clip_coefficient(10.0, 1.0), 1.0 / (10.0 + 1e-6));
  EXPECT_EQ(clip_coefficient(0.5, 1.0), 1.0);
  // At total_norm == max_norm the coefficient is 1 / (1 + 1e-6) < 1, so torch scales (barely).
  EXPECT_DOUBLE_EQ(clip_coefficient(1.0, 1.0), 1.0 / (1.0 + 1e-6));

  // A large tensor: the blocked sum matches a plain double sum.
  const auto big = test::random_values<float>(50001, 3);
  double plain = 0.0;
  for (float x : big) plain += double{x} * x;
  EXPECT_NEAR(grad_sum_of_squares(big.data(), 50001), plain, 1e-9 * plain);
}

TEST(ClipGradNorm, ScalesAllBuffersOnlyAboveMaxNorm) {
  std::vector<float> a = {3.0f}, b = {0.0f, 4.0f};
  const std::vector<GradBuffer> grads = {{a.data(), 1}, {b.data(), 2}};
  EXPECT_EQ(clip_grad_norm(grads, 10.0), 5.0);  // below max_norm: untouched
  EXPECT_EQ(a[0], 3.0f);
  EXPECT_EQ(b[1], 4.0f);

  EXPECT_EQ(clip_grad_norm(grads, 1.0), 5.0);  // returns the norm before clipping
  const float scale = static_cast<float>(1.0 / (5.0 + 1e-6));
  EXPECT_EQ(a[0], 3.0f * scale);
  EXPECT_EQ(b[0], 0.0f);
  EXPECT_EQ(b[1], 4.0f * scale);
  EXPECT_NEAR(std::sqrt(grad_sum_of_squares(a.data(), 1) + grad_sum_of_squares(b.data(), 2)), 1.0,
              1e-6);
}

}  // namespace
}  // namespace ll::cpu
