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
  const std::vector<float> gate = {-1000.0f, -100.0f, -88.0f, 0.0f, 88.0f, 100.0f, 1000.0f};
  const std::vector<float> up(gate.size(), 1.5f);
  const std::vector<float> dh(gate.size(), 1.0f);
  std::vector<float> h(gate.size()), dgate(gate.size()), dup(gate.size());
  const auto n = static_cast<int64_t>(gate.size());
  swiglu_forward(h.data(), gate.data(), up.data(), n);
  swiglu_backward(dgate.data(), dup.data(), dh.data(), gate.data(), up.data(), n);
  for (size_t i = 0; i < gate.size(); ++i) {
    EXPECT_TRUE(std::isfinite(h[i]) && std::isfinite(dgate[i]) && std::isfinite(dup[i]))
        << "gate " << gate[i];
  }
  EXPECT_EQ(h[0], 0.0f);            // silu(-1000) underflows to -0
  EXPECT_EQ(h[6], 1000.0f * 1.5f);  // silu(1000) = 1000
  EXPECT_EQ(dgate[6], 1.5f);        // silu'(large) = 1
  EXPECT_EQ(dgate[0], 0.0f);        // silu'(very negative) = 0
  EXPECT_EQ(h[3], 0.0f);
  EXPECT_EQ(dgate[3], 0.5f * 1.5f);  // silu'(0) = 1/2
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
