// Tests of cpu/swiglu: forward against a naive double loop, extreme gates (no NaN, no inf),
// backward against finite differences in double for both inputs, the float backward against
// the double one, and the documented in-place use.
#include "backend/cpu/swiglu.h"

#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <vector>

#include "gradcheck.h"

namespace ll::cpu {
namespace {

using test::GuardedBuffer;
using test::random_values;

double silu(double g) {
  return g / (1.0 + std::exp(-g));
}

TEST(SwiGlu, ForwardMatchesNaive) {
  const int64_t n = 1001;
  const auto gate = random_values<float>(n, 1, -8.0, 8.0);
  const auto up = random_values<float>(n, 2, -2.0, 2.0);
  std::vector<double> expected(n);
  for (int64_t i = 0; i < n; ++i) expected[i] = silu(gate[i]) * up[i];
  GuardedBuffer<float> h(n);
  swiglu_forward(h.data(), gate.data(), up.data(), n);
  h.expect_guards_intact("h");
  // A handful of fp32 roundings, exp good to ~1 ulp.
  test::expect_all_near("h", h.values(), expected, 1e-30, 8 * FLT_EPSILON);

  const auto gate_d = test::convert<double>(gate), up_d = test::convert<double>(up);
  GuardedBuffer<double> h_d(n);
  swiglu_forward(h_d.data(), gate_d.data(), up_d.data(), n);
  h_d.expect_guards_intact("h double");
  test::expect_all_near("h double", h_d.values(), expected, 1e-300, 8 * DBL_EPSILON);
}

TEST(SwiGlu, ExtremeGatesStayFinite) {
  // The 7 gates alone (the scalar loop) and repeated over 48 elements, where the first 32 go
  // through the 16-lane vector kernel (its exp saturates differently from std::exp).
  const std::vector<float> extremes = {-1000.0f, -100.0f, -88.0f, 0.0f, 88.0f, 100.0f, 1000.0f};
  for (const size_t copies : {size_t{1}, size_t{7}}) {
    std::vector<float> gate;
    for (size_t c = 0; c < copies; ++c) gate.insert(gate.end(), extremes.begin(), extremes.end());
    gate.resize(copies == 1 ? 7 : 48, 0.0f);
    const std::vector<float> up(gate.size(), 1.5f);
    const std::vector<float> dh(gate.size(), 1.0f);
    std::vector<float> h(gate.size()), dgate(gate.size()), dup(gate.size());
    const auto n = static_cast<int64_t>(gate.size());
    swiglu_forward(h.data(), gate.data(), up.data(), n);
    swiglu_backward(dgate.data(), dup.data(), dh.data(), gate.data(), up.data(), n);
    for (size_t i = 0; i < gate.size(); ++i) {
      EXPECT_TRUE(std::isfinite(h[i]) && std::isfinite(dgate[i]) && std::isfinite(dup[i]))
          << "gate " << gate[i] << " at " << i;
      const float g = gate[i];
      if (g == -1000.0f || g == -100.0f) {
        EXPECT_EQ(h[i], 0.0f) << i;      // silu(very negative) underflows to -0
        EXPECT_EQ(dgate[i], 0.0f) << i;  // silu'(very negative) = 0
      } else if (g == 1000.0f || g == 100.0f) {
        EXPECT_EQ(h[i], g * 1.5f) << i;  // silu(large) = g
        EXPECT_EQ(dgate[i], 1.5f) << i;  // silu'(large) = 1
      } else if (g == 0.0f) {
        EXPECT_EQ(h[i], 0.0f) << i;
        EXPECT_EQ(dgate[i], 0.5f * 1.5f) << i;  // silu'(0) = 1/2
      }
    }
  }
}

TEST(SwiGlu, VectorKernelMatchesStdExpAcrossTheRange) {
  // 4096 gates over [-90, 90] (every lane of the vector kernel, the saturation edges): within
  // 4 ULP of the double formula (the vector exp is within 1 ULP; a few fp32 roundings).
  const int64_t n = 4096;
  std::vector<float> gate(n), up(n, 1.0f), dh(n, 1.0f), h(n), dgate(n), dup(n);
  for (int64_t i = 0; i < n; ++i) gate[i] = -90.0f + 180.0f * static_cast<float>(i) / (n - 1);
  swiglu_forward(h.data(), gate.data(), up.data(), n);
  swiglu_backward(dgate.data(), dup.data(), dh.data(), gate.data(), up.data(), n);
  std::vector<double> expected_h(n), expected_dgate(n);
  for (int64_t i = 0; i < n; ++i) {
    const double g = gate[i], s = 1.0 / (1.0 + std::exp(-g));
    expected_h[i] = g * s;
    expected_dgate[i] = s * (1.0 + g * (1.0 - s));
  }
  // Absolute floor 1e-35: for g < -80 the values are below 1e-33 (saturation region).
  test::expect_all_near("h", h, expected_h, 1e-35, 4 * FLT_EPSILON);
  test::expect_all_near("dup", dup, expected_h, 1e-35, 4 * FLT_EPSILON);
  // dgate = s·(1 + g·(1 - s)) in fp32 carries g·(1 - s)'s error, |g|·ulp(s) absolute, however
  // exact the exp (the scalar loop's std::exp too): 4 ULP of 1 + |g|.
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_NEAR(dgate[i], expected_dgate[i], 4 * FLT_EPSILON * (1.0 + std::fabs(gate[i])))
        << "gate " << gate[i];
  }
}

TEST(SwiGlu, BackwardIsTheGradientOfForward) {
  const int64_t n = 40;
  const auto gate = random_values<double>(n, 10, -4.0, 4.0);
  const auto up = random_values<double>(n, 11, -2.0, 2.0);
  const auto dh = random_values<double>(n, 12);
  GuardedBuffer<double> dgate(n), dup(n);
  swiglu_backward(dgate.data(), dup.data(), dh.data(), gate.data(), up.data(), n);
  dgate.expect_guards_intact("dgate");
  dup.expect_guards_intact("dup");

  const auto loss_of_gate = [&](const std::vector<double>& g) {
    std::vector<double> h(n);
    swiglu_forward(h.data(), g.data(), up.data(), n);
    return test::dot(dh, h);
  };
  const auto loss_of_up = [&](const std::vector<double>& u) {
    std::vector<double> h(n);
    swiglu_forward(h.data(), gate.data(), u.data(), n);
    return test::dot(dh, h);
  };
  test::expect_gradient_matches("swiglu dgate", gate, loss_of_gate, dgate.values());
  test::expect_gradient_matches("swiglu dup", up, loss_of_up, dup.values());
}

TEST(SwiGlu, FloatBackwardMatchesDoubleAndWorksInPlace) {
  const int64_t n = 3000;
  const auto gate = random_values<float>(n, 20, -6.0, 6.0);
  const auto up = random_values<float>(n, 21, -2.0, 2.0);
  const auto dh = random_values<float>(n, 22);
  GuardedBuffer<float> dgate(n), dup(n);
  swiglu_backward(dgate.data(), dup.data(), dh.data(), gate.data(), up.data(), n);
  dgate.expect_guards_intact("dgate");
  dup.expect_guards_intact("dup");

  std::vector<double> dgate_d(n), dup_d(n);
  const auto gate_d = test::convert<double>(gate), up_d = test::convert<double>(up),
             dh_d = test::convert<double>(dh);
  swiglu_backward(dgate_d.data(), dup_d.data(), dh_d.data(), gate_d.data(), up_d.data(), n);
  test::expect_all_near("dgate", dgate.values(), dgate_d, 1e-6, 16 * FLT_EPSILON);
  test::expect_all_near("dup", dup.values(), dup_d, 1e-6, 16 * FLT_EPSILON);

  // dgate may be gate and dup may be up.
  std::vector<float> gate_in_place = gate, up_in_place = up;
  swiglu_backward(gate_in_place.data(), up_in_place.data(), dh.data(), gate_in_place.data(),
                  up_in_place.data(), n);
  EXPECT_EQ(gate_in_place, dgate.values());
  EXPECT_EQ(up_in_place, dup.values());

  // h may be gate.
  std::vector<float> h(n), h_in_place = gate;
  swiglu_forward(h.data(), gate.data(), up.data(), n);
  swiglu_forward(h_in_place.data(), h_in_place.data(), up.data(), n);
  EXPECT_EQ(h_in_place, h);
}

}  // namespace
}  // namespace ll::cpu
