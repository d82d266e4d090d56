// Attention of new tokens against a KV cache (src/backend/cpu/attention_decode.h), checked
// against the training kernel cpu::attention_forward on the same data: run the whole sequence
// of T tokens through attention_forward (one document), then ask attention_decode for the rows
// p0 .. p0+m-1 given the cache of rows 0 .. p0+m-1; the outputs must agree.
//
// Tolerance: max |decode - forward| <= 2e-6 · max(1, max |forward|). Both are fp32 with
// different summation orders (a two-pass softmax here, an online one over 64-key blocks
// there, FMA or not), which moves results by a few ulp (~1e-7 for outputs of size ~1); a
// wrong key window, scale or GQA head mapping moves them by 1e-2 .. 1.
//
// Shapes: m = 1 (a decode step) and m > 1 (a prefill chunk after a prefix, and the whole
// sequence from an empty cache), GQA groups 1, 3 and 4, odd head_dim (5, 13) and odd T
// crossing the 64-key blocks. A guard region after `out` must stay untouched.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/attention.h"
#include "backend/cpu/attention_decode.h"
#include "core/error.h"

namespace ll {
namespace {

struct DecodeCase {
  int64_t tokens;  // T = p0 + m
  int64_t new_tokens;
  int64_t heads;
  int64_t kv_heads;
  int64_t head_dim;
};

std::string describe(const DecodeCase& c) {
  return "T=" + std::to_string(c.tokens) + " m=" + std::to_string(c.new_tokens) +
         " heads=" + std::to_string(c.heads) + " kv=" + std::to_string(c.kv_heads) +
         " d=" + std::to_string(c.head_dim);
}

std::vector<float> random_values(int64_t n, std::mt19937& rng, float stddev) {
  std::normal_distribution<float> normal(0.0f, stddev);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& value : x) value = normal(rng);
  return x;
}

void check_case(const DecodeCase& c) {
  SCOPED_TRACE(describe(c));
  std::mt19937 rng(static_cast<uint32_t>(c.tokens * 131 + c.new_tokens * 7 + c.head_dim));
  const int64_t q_width = c.heads * c.head_dim;
  const int64_t kv_width = c.kv_heads * c.head_dim;
  // Scores of a few units so that the softmax is neither flat nor one-hot.
  const auto q = random_values(c.tokens * q_width, rng, 1.5f);
  const auto k = random_values(c.tokens * kv_width, rng, 1.5f);
  const auto v = random_values(c.tokens * kv_width, rng, 1.0f);

  std::vector<float> full(static_cast<size_t>(c.tokens * q_width));  // [T, heads*head_dim]
  std::vector<float> lse(static_cast<size_t>(c.heads * c.tokens));
  const cpu::AttentionShape shape{c.tokens, c.heads, c.kv_heads, c.head_dim};
  cpu::attention_forward<float>(full.data(), lse.data(), q.data(), k.data(), v.data(), shape, {});

  const int64_t p0 = c.tokens - c.new_tokens;
  constexpr int64_t kGuard = 16;
  constexpr float kGuardValue = -12345.5f;
  std::vector<float> out(static_cast<size_t>(c.new_tokens * q_width + kGuard),
                         std::numeric_limits<float>::quiet_NaN());
  std::fill(out.end() - kGuard, out.end(), kGuardValue);
  cpu::attention_decode(out.data(), q.data() + p0 * q_width, k.data(), v.data(),
                        {c.new_tokens, p0, c.heads, c.kv_heads, c.head_dim});

  double worst = 0, reference_max = 0;
  for (int64_t i = 0; i < c.new_tokens * q_width; ++i) {
    const double reference = full[static_cast<size_t>(p0 * q_width + i)];
    reference_max = std::max(reference_max, std::fabs(reference));
    worst = std::max(worst, std::fabs(out[static_cast<size_t>(i)] - reference));
    ASSERT_FALSE(std::isnan(out[static_cast<size_t>(i)])) << "element " << i << " not written";
  }
  EXPECT_LE(worst, 2e-6 * std::max(1.0, reference_max));
  for (int64_t g = 0; g < kGuard; ++g) {
    EXPECT_EQ(out[static_cast<size_t>(c.new_tokens * q_width + g)], kGuardValue)
        << "guard " << g << " overwritten";
  }
}

TEST(AttentionDecode, OneNewTokenMatchesTheTrainingKernel) {
  for (const DecodeCase& c :
       {DecodeCase{1, 1, 4, 2, 8}, DecodeCase{2, 1, 3, 1, 5}, DecodeCase{17, 1, 4, 4, 16},
        DecodeCase{65, 1, 9, 3, 64}, DecodeCase{130, 1, 8, 2, 13}, DecodeCase{200, 1, 12, 3, 8}}) {
    check_case(c);
  }
}

TEST(AttentionDecode, SeveralNewTokensMatchTheTrainingKernel) {
  for (const DecodeCase& c :
       {DecodeCase{7, 3, 4, 2, 8}, DecodeCase{70, 9, 9, 3, 64}, DecodeCase{129, 64, 6, 2, 5},
        DecodeCase{33, 33, 4, 1, 13},  // the whole sequence from an empty cache (prefill)
        DecodeCase{100, 100, 8, 2, 16}, DecodeCase{5, 2, 2, 2, 7}}) {
    check_case(c);
  }
}

TEST(AttentionDecode, RejectsBadShapes) {
  std::vector<float> buffer(64, 0.0f);
  const auto run = [&](cpu::DecodeAttentionShape s) {
    cpu::attention_decode(buffer.data(), buffer.data(), buffer.data(), buffer.data(), s);
  };
  EXPECT_THROW(run({0, 3, 2, 1, 4}), Error);   // no new tokens
  EXPECT_THROW(run({1, -1, 2, 1, 4}), Error);  // negative past
  EXPECT_THROW(run({1, 0, 3, 2, 4}), Error);   // 3 heads, 2 kv heads
  EXPECT_THROW(run({1, 0, 2, 1, 0}), Error);   // head_dim 0
}

}  // namespace
}  // namespace ll
