// RoPE (src/backend/cpu/rope.h) against transformers 4.46.3 (tests/fixtures/rope_llama3.json,
// from scripts/fixtures/make_rope_fixture.py): inverse frequencies bit for bit, cos/sin and the
// rotated q/k within torch's 1-ULP transcendental error; the backward against central finite
// differences in double; guard elements after every output buffer.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numbers>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "backend/cpu/rope.h"
#include "core/error.h"
#include "core/file.h"
#include "test_util.h"

namespace ll {
namespace {

constexpr int64_t kGuard = 16;
constexpr float kGuardValue = -12345.5f;

// A buffer of n values followed by kGuard sentinels that no op may write.
template <typename T>
struct Guarded {
  explicit Guarded(int64_t n) : size(n), data(n + kGuard, static_cast<T>(kGuardValue)) {}
  T* ptr() { return data.data(); }
  bool guards_intact() const {
    for (int64_t i = size; i < size + kGuard; ++i) {
      if (data[i] != static_cast<T>(kGuardValue)) return false;
    }
    return true;
  }
  int64_t size;
  std::vector<T> data;
};

std::vector<float> floats(const nlohmann::json& array) {
  std::vector<float> out;
  for (const auto& value : array) out.push_back(value.get<float>());
  return out;
}

std::optional<cpu::RopeLlama3Scaling> scaling_of(const nlohmann::json& json) {
  if (json.is_null()) return std::nullopt;
  cpu::RopeLlama3Scaling scaling;
  scaling.factor = json.at("factor").get<double>();
  scaling.low_freq_factor = json.at("low_freq_factor").get<double>();
  scaling.high_freq_factor = json.at("high_freq_factor").get<double>();
  scaling.original_max_position_embeddings =
      json.at("original_max_position_embeddings").get<int64_t>();
  return scaling;
}

// Distance in units in the last place between two floats of the same sign region.
int64_t ulp_distance(float a, float b) {
  const auto ordered = [](float x) {
    int32_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    return bits < 0 ? int64_t{INT32_MIN} - bits : int64_t{bits};
  };
  return std::llabs(ordered(a) - ordered(b));
}

TEST(RopeTransformers, MatchesFixture) {
  const auto fixture = nlohmann::json::parse(read_file(test::fixtures() / "rope_llama3.json"));
  ASSERT_EQ(fixture.at("cases").size(), 3u);
  for (const auto& c : fixture.at("cases")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const int64_t head_dim = c.at("head_dim");
    const int64_t half = head_dim / 2;
    const int64_t heads = c.at("heads");
    const int64_t kv_heads = c.at("kv_heads");
    const std::vector<int32_t> positions = c.at("positions").get<std::vector<int32_t>>();
    const auto tokens = static_cast<int64_t>(positions.size());
    const auto scaling = scaling_of(c.at("rope_scaling"));
    const double theta = c.at("rope_theta");

    // inv_freq: the same fp32 bits (every llama3 branch is exercised by these cases).
    const std::vector<float> inv_freq_ref = floats(c.at("inv_freq"));
    const std::vector<float> inv_freq = cpu::rope_inv_freq(theta, head_dim, scaling);
    ASSERT_EQ(inv_freq.size(), inv_freq_ref.size());
    for (int64_t i = 0; i < half; ++i) EXPECT_EQ(inv_freq[i], inv_freq_ref[i]) << "i=" << i;

    // cos/sin [T, head_dim] (second half = first half): torch's fp32 cos/sin are SLEEF's
    // 1-ULP approximations, ours are the correctly rounded values of the same fp32 angle.
    const cpu::RopeTable table = cpu::rope_table_build(theta, head_dim, 20001, scaling);
    const std::vector<float> cos_ref = floats(c.at("cos"));
    const std::vector<float> sin_ref = floats(c.at("sin"));
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t j = 0; j < head_dim; ++j) {
        const int64_t at = positions[t] * half + j % half;
        EXPECT_LE(ulp_distance(table.cos[at], cos_ref[t * head_dim + j]), 1)
            << "pos " << positions[t] << " j " << j;
        EXPECT_LE(ulp_distance(table.sin[at], sin_ref[t * head_dim + j]), 1)
            << "pos " << positions[t] << " j " << j;
      }
    }

    // Rotated q [T, heads, head_dim] and k [T, kv_heads, head_dim]: a one-ULP cos/sin
    // difference moves x*cos - y*sin by at most ulp(1) * (|x| + |y|) ~ 1.2e-7 * 8 for these
    // N(0, 1) values, plus the output's own rounding; 2e-6 absolute bounds both.
    for (const auto& [name, rows] : {std::pair{"q", heads}, std::pair{"k", kv_heads}}) {
      SCOPED_TRACE(name);
      const std::vector<float> x = floats(c.at(name));
      const std::vector<float> ref = floats(c.at(std::string(name) + "_rot"));
      ASSERT_EQ(static_cast<int64_t>(x.size()), tokens * rows * head_dim);
      Guarded<float> y(tokens * rows * head_dim);
      cpu::rope_forward(y.ptr(), x.data(), positions.data(), tokens, rows, table);
      EXPECT_TRUE(y.guards_intact());
      double max_error = 0;
      for (size_t i = 0; i < x.size(); ++i) {
        max_error = std::max(max_error, std::fabs(double{y.data[i]} - double{ref[i]}));
      }
      EXPECT_LE(max_error, 2e-6);
      // In place gives the same bits.
      std::vector<float> in_place = x;
      cpu::rope_forward(in_place.data(), in_place.data(), positions.data(), tokens, rows, table);
      for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(in_place[i], y.data[i]);
    }
  }
}

// A few frequencies by hand: theta^(-2i/d) for the default case, and the llama3 branches.
TEST(RopeInvFreq, Llama3Branches) {
  const cpu::RopeLlama3Scaling scaling;  // factor 8, 1, 4, 8192
  const std::vector<float> plain = cpu::rope_inv_freq(500000.0, 128, std::nullopt);
  const std::vector<float> scaled = cpu::rope_inv_freq(500000.0, 128, scaling);
  ASSERT_EQ(plain.size(), 64u);
  EXPECT_EQ(plain[0], 1.0f);
  for (size_t i = 0; i < plain.size(); ++i) {
    const double expected = std::pow(500000.0, -2.0 * static_cast<double>(i) / 128.0);
    EXPECT_NEAR(plain[i], expected, 2e-7 * expected);
    const double wavelen = 2 * std::numbers::pi / plain[i];
    if (wavelen < 2048) {  // high frequency: kept
      EXPECT_EQ(scaled[i], plain[i]) << i;
    } else if (wavelen > 8192) {  // low: divided by factor
      EXPECT_EQ(scaled[i], plain[i] / 8.0f) << i;
    } else {  // medium: in between
      EXPECT_LT(scaled[i], plain[i]) << i;
      EXPECT_GT(scaled[i], plain[i] / 8.0f) << i;
    }
  }
}

TEST(RopeInvFreq, RejectsBadSettings) {
  EXPECT_THROW(cpu::rope_inv_freq(10000.0, 7, std::nullopt), Error);
  EXPECT_THROW(cpu::rope_inv_freq(10000.0, 0, std::nullopt), Error);
  EXPECT_THROW(cpu::rope_inv_freq(-1.0, 8, std::nullopt), Error);
  cpu::RopeLlama3Scaling bad;
  bad.high_freq_factor = bad.low_freq_factor;
  EXPECT_THROW(cpu::rope_inv_freq(10000.0, 8, bad), Error);
  const cpu::RopeTable table = cpu::rope_table_build(10000.0, 8, 4, std::nullopt);
  std::vector<float> x(8, 1.0f);
  const int32_t too_far = 4;
  const int32_t negative = -1;
  EXPECT_THROW(cpu::rope_forward(x.data(), x.data(), &too_far, 1, 1, table), Error);
  EXPECT_THROW(cpu::rope_backward(x.data(), x.data(), &negative, 1, 1, table), Error);
}

// L(x) = sum(w * rope(x)); rope_backward(w) must be dL/dx. RoPE is linear, so the central
// difference has no truncation error: what is left is rounding, ~1e-16 * |L| / h ~ 1e-14 for
// h = 1e-3, against a tolerance of 1e-10 (a wrong sign or a swapped half is O(1)).
TEST(RopeBackward, MatchesFiniteDifferences) {
  const int64_t head_dim = 16;
  const int64_t heads = 3;
  const cpu::RopeLlama3Scaling scaling;
  const cpu::RopeTable table = cpu::rope_table_build(500000.0, head_dim, 9000, scaling);
  const std::vector<int32_t> positions = {0, 1, 2, 0, 8191, 37, 8999};  // restarts at token 3
  const auto tokens = static_cast<int64_t>(positions.size());
  const int64_t n = tokens * heads * head_dim;
  std::mt19937 rng(7);
  std::normal_distribution<double> normal;
  std::vector<double> x(n), w(n);
  for (auto& value : x) value = normal(rng);
  for (auto& value : w) value = normal(rng);

  const auto loss = [&](const std::vector<double>& input) {
    std::vector<double> y(n);
    cpu::rope_forward(y.data(), input.data(), positions.data(), tokens, heads, table);
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += w[i] * y[i];
    return sum;
  };
  Guarded<double> grad(n);
  cpu::rope_backward(grad.ptr(), w.data(), positions.data(), tokens, heads, table);
  EXPECT_TRUE(grad.guards_intact());
  const double h = 1e-3;
  for (int64_t i = 0; i < n; ++i) {
    std::vector<double> plus = x, minus = x;
    plus[i] += h;
    minus[i] -= h;
    const double numeric = (loss(plus) - loss(minus)) / (2 * h);
    ASSERT_NEAR(grad.data[i], numeric, 1e-10) << "element " << i;
  }

  // The float instantiation is the same map: backward(forward(x)) = x (rotation by -angle).
  std::vector<float> xf(n), yf(n), back(n);
  for (int64_t i = 0; i < n; ++i) xf[i] = static_cast<float>(x[i]);
  cpu::rope_forward(yf.data(), xf.data(), positions.data(), tokens, heads, table);
  cpu::rope_backward(back.data(), yf.data(), positions.data(), tokens, heads, table);
  for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(back[i], xf[i], 1e-5f) << i;
}

}  // namespace
}  // namespace ll
