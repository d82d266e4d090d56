// Tests of cpu/rmsnorm: forward against a naive double loop of LlamaRMSNorm's formula
// (f32 and bf16 weights, odd hidden sizes that leave a tail after the 16 lanes, in place);
// backward against finite differences in double, and Accumulate::Yes.
#include "backend/cpu/rmsnorm.h"

#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <vector>

#include "core/dtype.h"
#include "gradcheck.h"

namespace ll::cpu {
namespace {

using test::GuardedBuffer;
using test::random_values;

constexpr double kEps = 1e-5;

struct Naive {
  std::vector<double> y;     // [tokens, hidden]
  std::vector<double> rstd;  // [tokens]
};

Naive naive_rmsnorm(const std::vector<float>& x, const std::vector<float>& w, int64_t tokens,
                    int64_t hidden) {
  Naive out{std::vector<double>(x.size()), std::vector<double>(static_cast<size_t>(tokens))};
  for (int64_t t = 0; t < tokens; ++t) {
    double sum = 0.0;
    for (int64_t c = 0; c < hidden; ++c) sum += double{x[t * hidden + c]} * x[t * hidden + c];
    const double r = 1.0 / std::sqrt(sum / static_cast<double>(hidden) + kEps);
    out.rstd[t] = r;
    for (int64_t c = 0; c < hidden; ++c) out.y[t * hidden + c] = w[c] * (x[t * hidden + c] * r);
  }
  return out;
}

TEST(RmsNorm, ForwardMatchesNaive) {
  uint64_t seed = 1;
  for (const auto& [tokens, hidden] :
       {std::pair<int64_t, int64_t>{1, 1}, {3, 7}, {5, 37}, {64, 576}, {2, 1000}}) {
    SCOPED_TRACE(testing::Message() << "tokens=" << tokens << " hidden=" << hidden);
    const auto x = random_values<float>(static_cast<size_t>(tokens * hidden), ++seed, -3.0, 3.0);
    const auto w_f32 = random_values<float>(static_cast<size_t>(hidden), ++seed, 0.5, 1.5);
    std::vector<uint16_t> w_bf16;
    std::vector<float> w_from_bf16;
    for (float v : w_f32) {
      w_bf16.push_back(f32_to_bf16(v));
      w_from_bf16.push_back(bf16_to_f32(w_bf16.back()));
    }
    // fp32: a few roundings per element plus the sum of squares over `hidden` terms.
    const double rtol = (static_cast<double>(hidden) + 8.0) * FLT_EPSILON;
    for (bool bf16 : {false, true}) {
      const WeightView w = bf16 ? weight_bf16(w_bf16.data()) : weight_f32(w_f32.data());
      const Naive expected = naive_rmsnorm(x, bf16 ? w_from_bf16 : w_f32, tokens, hidden);
      GuardedBuffer<float> y(x.size());
      GuardedBuffer<float> rstd(static_cast<size_t>(tokens));
      rmsnorm_forward(y.data(), rstd.data(), x.data(), w, tokens, hidden, kEps);
      y.expect_guards_intact("y");
      rstd.expect_guards_intact("rstd");
      test::expect_all_near("rstd", rstd.values(), expected.rstd, 0.0, rtol);
      test::expect_all_near("y", y.values(), expected.y, 1e-30, rtol);

      std::vector<float> in_place = x;  // y may be x
      std::vector<float> rstd2(static_cast<size_t>(tokens));
      rmsnorm_forward(in_place.data(), rstd2.data(), in_place.data(), w, tokens, hidden, kEps);
      EXPECT_EQ(in_place, y.values());

      const auto x_d = test::convert<double>(x);
      std::vector<double> y_d(x.size()), rstd_d(static_cast<size_t>(tokens));
      rmsnorm_forward(y_d.data(), rstd_d.data(), x_d.data(), w, tokens, hidden, kEps);
      test::expect_all_near("y double", y_d, expected.y, 1e-300, 1e-13);
    }
  }
}

TEST(RmsNorm, BackwardIsTheGradientOfForward) {
  uint64_t seed = 50;
  for (const auto& [tokens, hidden] : {std::pair<int64_t, int64_t>{1, 1}, {2, 7}, {3, 37}}) {
    SCOPED_TRACE(testing::Message() << "tokens=" << tokens << " hidden=" << hidden);
    const auto w_f32 = random_values<float>(static_cast<size_t>(hidden), ++seed, 0.5, 1.5);
    const WeightView w = weight_f32(w_f32.data());
    const auto x = random_values<double>(static_cast<size_t>(tokens * hidden), ++seed);
    const auto dy = random_values<double>(x.size(), ++seed);
    const auto loss = [&](const std::vector<double>& input) {
      std::vector<double> y(input.size()), rstd(static_cast<size_t>(tokens));
      rmsnorm_forward(y.data(), rstd.data(), input.data(), w, tokens, hidden, kEps);
      return test::dot(dy, y);
    };
    std::vector<double> y(x.size()), rstd(static_cast<size_t>(tokens));
    rmsnorm_forward(y.data(), rstd.data(), x.data(), w, tokens, hidden, kEps);
    GuardedBuffer<double> dx(x.size());
    rmsnorm_backward(dx.data(), dy.data(), x.data(), rstd.data(), w, tokens, hidden,
                     Accumulate::No);
    dx.expect_guards_intact("dx");
    test::expect_gradient_matches("rmsnorm dx", x, loss, dx.values());

    // Accumulate::Yes adds the same gradient to what is there.
    const auto dx0 = random_values<double>(x.size(), ++seed);
    GuardedBuffer<double> dx_acc(dx0);
    rmsnorm_backward(dx_acc.data(), dy.data(), x.data(), rstd.data(), w, tokens, hidden,
                     Accumulate::Yes);
    dx_acc.expect_guards_intact("dx accumulate");
    std::vector<double> expected(dx0);
    for (size_t i = 0; i < expected.size(); ++i) expected[i] += dx[i];
    test::expect_all_near("dx accumulate", dx_acc.values(), expected, 1e-15, 1e-14);
  }
}

TEST(RmsNorm, FloatBackwardMatchesDouble) {
  const int64_t tokens = 17, hidden = 576;
  const auto x = random_values<float>(static_cast<size_t>(tokens * hidden), 70, -2.0, 2.0);
  const auto dy = random_values<float>(x.size(), 71);
  const auto w_f32 = random_values<float>(static_cast<size_t>(hidden), 72, 0.5, 1.5);
  std::vector<uint16_t> w_bf16;
  for (float v : w_f32) w_bf16.push_back(f32_to_bf16(v));
  const WeightView w = weight_bf16(w_bf16.data());

  std::vector<float> y(x.size()), rstd(static_cast<size_t>(tokens));
  rmsnorm_forward(y.data(), rstd.data(), x.data(), w, tokens, hidden, kEps);
  GuardedBuffer<float> dx(x.size());
  rmsnorm_backward(dx.data(), dy.data(), x.data(), rstd.data(), w, tokens, hidden, Accumulate::No);
  dx.expect_guards_intact("dx");

  const auto x_d = test::convert<double>(x), dy_d = test::convert<double>(dy);
  std::vector<double> y_d(x.size()), rstd_d(static_cast<size_t>(tokens)), dx_d(x.size());
  rmsnorm_forward(y_d.data(), rstd_d.data(), x_d.data(), w, tokens, hidden, kEps);
  rmsnorm_backward(dx_d.data(), dy_d.data(), x_d.data(), rstd_d.data(), w, tokens, hidden,
                   Accumulate::No);
  // |dx| is O(rstd·|w|·|dy|) ~ 1; the fp32 sums over 576 terms are good to ~1e-5 of that.
  test::expect_all_near("dx float vs double", dx.values(), dx_d, 2e-5, 1e-5);
}

}  // namespace
}  // namespace ll::cpu
