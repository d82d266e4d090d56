// Tests of cpu/cross_entropy (fused LM head + loss): loss and dh against a naive computation
// over the full logits in double, for chunk sizes that do and do not divide the labelled
// tokens, ignored labels (-100), a prime vocabulary, f32 and bf16 heads; dh against finite
// differences in double; the per-token eval losses; logits of selected rows; huge logits; and
// the errors. Outputs carry guards, and dh starts as NaN so rows that must be written are.
#include "backend/cpu/cross_entropy.h"

#include <gtest/gtest.h>

#include <barrier>
#include <cfloat>
#include <cmath>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "gradcheck.h"

namespace ll::cpu {
namespace {

using test::GuardedBuffer;
using test::random_values;

struct Problem {
  int64_t tokens, hidden, vocab;
  std::vector<float> h;          // [tokens, hidden]
  std::vector<uint16_t> w_bf16;  // [vocab, hidden]
  std::vector<float> w;          // [vocab, hidden] the same values as f32
  std::vector<int32_t> labels;   // [tokens], some -100
};

Problem make_problem(int64_t tokens, int64_t hidden, int64_t vocab, uint64_t seed,
                     double h_scale = 1.0) {
  Problem p{tokens, hidden, vocab, {}, {}, {}, {}};
  p.h = random_values<float>(static_cast<size_t>(tokens * hidden), seed, -h_scale, h_scale);
  for (float v : random_values<float>(static_cast<size_t>(vocab * hidden), seed + 1)) {
    p.w_bf16.push_back(f32_to_bf16(v));
    p.w.push_back(bf16_to_f32(p.w_bf16.back()));
  }
  std::mt19937_64 rng(seed + 2);
  for (int64_t t = 0; t < tokens; ++t) {
    // About a third ignored, always the first token (a prompt) and never the last.
    const bool ignore = t == 0 || (t + 1 < tokens && rng() % 3 == 0);
    p.labels.push_back(ignore ? kIgnoreLabel : static_cast<int32_t>(rng() % vocab));
  }
  return p;
}

struct Naive {
  double loss = 0.0;              // scaled sum
  std::vector<double> per_token;  // [tokens] unscaled, 0 where ignored
  std::vector<double> dh;         // [tokens, hidden]
  std::vector<double> logits;     // [tokens, vocab]
};

template <typename H>
Naive naive_cross_entropy(const std::vector<H>& h, const Problem& p, double scale) {
  const int64_t T = p.tokens, C = p.hidden, V = p.vocab;
  Naive out;
  out.per_token.assign(static_cast<size_t>(T), 0.0);
  out.dh.assign(static_cast<size_t>(T * C), 0.0);
  out.logits.assign(static_cast<size_t>(T * V), 0.0);
  for (int64_t t = 0; t < T; ++t) {
    double max_logit = -INFINITY;
    for (int64_t v = 0; v < V; ++v) {
      double sum = 0.0;
      for (int64_t c = 0; c < C; ++c) sum += static_cast<double>(h[t * C + c]) * p.w[v * C + c];
      out.logits[t * V + v] = sum;
      max_logit = std::max(max_logit, sum);
    }
    const int32_t label = p.labels[t];
    if (label == kIgnoreLabel) continue;
    double sum_exp = 0.0;
    for (int64_t v = 0; v < V; ++v) sum_exp += std::exp(out.logits[t * V + v] - max_logit);
    const double lse = max_logit + std::log(sum_exp);
    out.per_token[t] = lse - out.logits[t * V + label];
    out.loss += scale * out.per_token[t];
    for (int64_t v = 0; v < V; ++v) {
      const double g = scale * (std::exp(out.logits[t * V + v] - lse) - (v == label ? 1.0 : 0.0));
      for (int64_t c = 0; c < C; ++c) out.dh[t * C + c] += g * p.w[v * C + c];
    }
  }
  return out;
}

template <typename T>
void check_against_naive(const Problem& p, WeightView w, double scale, int64_t chunk, double rtol,
                         double dh_atol) {
  SCOPED_TRACE(testing::Message() << "chunk=" << chunk << " T=" << sizeof(T) * 8 << "-bit");
  const std::vector<T> h = test::convert<T>(p.h);
  const Naive expected = naive_cross_entropy(h, p, scale);
  GuardedBuffer<T> dh(h.size());  // NaN: every row must be written, ignored ones with zeros
  const double loss = cross_entropy_forward_backward(dh.data(), h.data(), w, p.labels.data(),
                                                     p.tokens, p.hidden, p.vocab, scale, chunk);
  dh.expect_guards_intact("dh");
  EXPECT_NEAR(loss, expected.loss, rtol * std::abs(expected.loss));
  test::expect_all_near("dh", dh.values(), expected.dh, dh_atol, rtol);
  for (int64_t t = 0; t < p.tokens; ++t) {
    if (p.labels[t] != kIgnoreLabel) continue;
    for (int64_t c = 0; c < p.hidden; ++c) {
      ASSERT_EQ(dh[static_cast<size_t>(t * p.hidden + c)], T(0)) << "ignored token " << t;
    }
  }
}

TEST(CrossEntropy, MatchesNaiveForEveryChunkSize) {
  // vocab 97 is prime; 13 tokens with ~4 ignored, so chunks of 3, 5, 8 leave ragged ends.
  const Problem p = make_problem(13, 24, 97, 1);
  const double scale = 1.0 / 17.0;  // as if the optimizer step had 17 label tokens in all
  for (int64_t chunk : {1, 3, 5, 8, 13, 64}) {
    check_against_naive<float>(p, weight_bf16(p.w_bf16.data()), scale, chunk, 2e-5, 1e-6);
    check_against_naive<double>(p, weight_f32(p.w.data()), scale, chunk, 1e-12, 1e-15);
  }
}

TEST(CrossEntropy, LargerShapesAndBf16HeadEqualsF32Head) {
  // hidden > one GEMM k panel, vocab > one column block, several chunks in parallel GEMMs.
  const Problem p = make_problem(70, 300, 1031, 5, 0.2);
  const double scale = 1.0 / 50.0;
  check_against_naive<float>(p, weight_f32(p.w.data()), scale, 16, 2e-5, 1e-6);
  std::vector<float> dh_f32(p.h.size()), dh_bf16(p.h.size());
  const double loss_f32 =
      cross_entropy_forward_backward(dh_f32.data(), p.h.data(), weight_f32(p.w.data()),
                                     p.labels.data(), p.tokens, p.hidden, p.vocab, scale, 64);
  const double loss_bf16 =
      cross_entropy_forward_backward(dh_bf16.data(), p.h.data(), weight_bf16(p.w_bf16.data()),
                                     p.labels.data(), p.tokens, p.hidden, p.vocab, scale, 64);
  EXPECT_EQ(loss_bf16, loss_f32);
  EXPECT_EQ(dh_bf16, dh_f32);
}

TEST(CrossEntropy, HugeLogitsStayFinite) {
  // |logits| up to several hundred: exp without the max subtraction would overflow in fp32.
  const Problem p = make_problem(6, 16, 50, 9, 60.0);
  check_against_naive<float>(p, weight_f32(p.w.data()), 1.0 / 6.0, 4, 1e-5, 1e-5);
}

TEST(CrossEntropy, GradientMatchesFiniteDifferences) {
  Problem p = make_problem(5, 6, 11, 20);
  p.labels = {3, kIgnoreLabel, 0, 10, 7};
  const double scale = 0.3;
  const WeightView w = weight_bf16(p.w_bf16.data());
  const auto h = test::convert<double>(p.h);
  const auto loss = [&](const std::vector<double>& input) {
    std::vector<double> unused(input.size());
    return cross_entropy_forward_backward(unused.data(), input.data(), w, p.labels.data(), p.tokens,
                                          p.hidden, p.vocab, scale, 2);
  };
  std::vector<double> dh(h.size());
  cross_entropy_forward_backward(dh.data(), h.data(), w, p.labels.data(), p.tokens, p.hidden,
                                 p.vocab, scale, 2);
  test::expect_gradient_matches("cross-entropy dh", h, loss, dh);
}

TEST(CrossEntropy, ForwardGivesPerTokenLosses) {
  const Problem p = make_problem(13, 24, 97, 30);
  const Naive expected = naive_cross_entropy(p.h, p, 1.0);
  for (int64_t chunk : {1, 4, 100}) {
    GuardedBuffer<float> loss(static_cast<size_t>(p.tokens));
    cross_entropy_forward(loss.data(), p.h.data(), weight_bf16(p.w_bf16.data()), p.labels.data(),
                          p.tokens, p.hidden, p.vocab, chunk);
    loss.expect_guards_intact("loss");
    test::expect_all_near("per-token loss", loss.values(), expected.per_token, 1e-30, 2e-6);
    for (int64_t t = 0; t < p.tokens; ++t) {
      if (p.labels[t] == kIgnoreLabel) {
        EXPECT_EQ(loss[static_cast<size_t>(t)], 0.0f) << t;
      }
    }
  }
}

TEST(CrossEntropy, LogitsOfSelectedRows) {
  const Problem p = make_problem(13, 24, 97, 40);
  const Naive expected = naive_cross_entropy(p.h, p, 1.0);
  const std::vector<int64_t> rows = {12, 0, 5, 5};
  GuardedBuffer<float> logits(rows.size() * p.vocab);
  lm_head_logits(logits.data(), p.h.data(), weight_bf16(p.w_bf16.data()), rows.data(),
                 static_cast<int64_t>(rows.size()), p.tokens, p.hidden, p.vocab);
  logits.expect_guards_intact("logits");
  std::vector<double> wanted;
  for (int64_t row : rows) {
    wanted.insert(wanted.end(), expected.logits.begin() + row * p.vocab,
                  expected.logits.begin() + (row + 1) * p.vocab);
  }
  // |logit| <= Σ|h||w| <= 24; fp32 dot of 24 terms.
  test::expect_all_near("logits", logits.values(), wanted, 32 * 24 * FLT_EPSILON, 0.0);

  const std::vector<int64_t> bad_rows = {1, 13};
  EXPECT_THROW(lm_head_logits(logits.data(), p.h.data(), weight_f32(p.w.data()), bad_rows.data(), 2,
                              p.tokens, p.hidden, p.vocab),
               Error);
}

TEST(CrossEntropy, AllIgnoredGivesZeroLossAndGradient) {
  Problem p = make_problem(4, 8, 10, 50);
  p.labels.assign(4, kIgnoreLabel);
  GuardedBuffer<float> dh(p.h.size());
  const double loss = cross_entropy_forward_backward(dh.data(), p.h.data(), weight_f32(p.w.data()),
                                                     p.labels.data(), 4, 8, 10, 1.0, 2);
  dh.expect_guards_intact("dh");
  EXPECT_EQ(loss, 0.0);
  for (size_t i = 0; i < dh.size(); ++i) ASSERT_EQ(dh[i], 0.0f);
}

TEST(CrossEntropy, VocabShardsCombineToTheWholeVocabulary) {
  // Three "ranks" (threads) each hold a third of W_lm's rows; their reductions meet at a
  // barrier. Every rank's loss must be the whole vocabulary's, and the ranks' dh shares must
  // sum to the whole dh. In double, so the only differences are summation order (1e-12).
  const Problem p = make_problem(23, 16, 96, 41);
  const std::vector<double> h = test::convert<double>(p.h);
  const Naive expected = naive_cross_entropy(h, p, 0.25);
  constexpr int kRanks = 3;
  const int64_t rows = p.vocab / kRanks;
  std::barrier sync(kRanks);
  std::vector<std::vector<double>> slots(kRanks);
  std::vector<double> losses(kRanks);
  std::vector<std::vector<double>> per_token(kRanks);
  std::vector<std::vector<double>> dh(kRanks, std::vector<double>(h.size()));
  std::vector<std::thread> threads;
  for (int rank = 0; rank < kRanks; ++rank) {
    threads.emplace_back([&, rank] {
      VocabShard<double> shard;
      shard.first = rank * rows;
      shard.full_vocab = p.vocab;
      shard.reduce = [&, rank](double* values, int64_t count, ReduceOp op) {
        slots[static_cast<size_t>(rank)].assign(values, values + count);
        sync.arrive_and_wait();
        for (int64_t i = 0; i < count; ++i) {
          double combined = slots[0][static_cast<size_t>(i)];
          for (int other = 1; other < kRanks; ++other) {
            const double v = slots[static_cast<size_t>(other)][static_cast<size_t>(i)];
            combined = op == ReduceOp::Max ? std::max(combined, v) : combined + v;
          }
          values[i] = combined;
        }
        sync.arrive_and_wait();
      };
      const WeightView w = weight_f32(p.w.data() + shard.first * p.hidden);
      losses[static_cast<size_t>(rank)] = cross_entropy_forward_backward(
          dh[static_cast<size_t>(rank)].data(), h.data(), w, p.labels.data(), p.tokens, p.hidden,
          rows, 0.25, 5, &shard);
      per_token[static_cast<size_t>(rank)].resize(static_cast<size_t>(p.tokens));
      cross_entropy_forward(per_token[static_cast<size_t>(rank)].data(), h.data(), w,
                            p.labels.data(), p.tokens, p.hidden, rows, 4, &shard);
    });
  }
  for (auto& t : threads) t.join();
  for (int rank = 0; rank < kRanks; ++rank) {
    EXPECT_NEAR(losses[static_cast<size_t>(rank)], expected.loss, 1e-12 * std::abs(expected.loss));
    test::expect_all_near("per-token loss", per_token[static_cast<size_t>(rank)],
                          expected.per_token, 1e-12, 1e-12);
  }
  std::vector<double> dh_sum(h.size(), 0.0);
  for (const auto& share : dh) {
    for (size_t i = 0; i < share.size(); ++i) dh_sum[i] += share[i];
  }
  test::expect_all_near("dh", dh_sum, expected.dh, 1e-12, 1e-12);
}

TEST(CrossEntropy, BadLabelsAndChunkSizeThrow) {
  Problem p = make_problem(6, 8, 10, 60);
  for (int32_t bad : {10, -1, -101}) {
    p.labels[4] = bad;
    GuardedBuffer<float> dh(p.h.size(), 0.25f);
    try {
      cross_entropy_forward_backward(dh.data(), p.h.data(), weight_f32(p.w.data()), p.labels.data(),
                                     6, 8, 10, 1.0, 2);
      ADD_FAILURE() << "no error for label " << bad;
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find("label " + std::to_string(bad) + " at token 4"), std::string::npos)
          << message;
      EXPECT_NE(message.find("vocabulary of 10"), std::string::npos) << message;
    }
    for (size_t i = 0; i < dh.size(); ++i) ASSERT_EQ(dh[i], 0.25f) << "written before the check";
  }
  p.labels[4] = 3;
  std::vector<float> dh(p.h.size());
  EXPECT_THROW(cross_entropy_forward_backward(dh.data(), p.h.data(), weight_f32(p.w.data()),
                                              p.labels.data(), 6, 8, 10, 1.0, 0),
               Error);
}

}  // namespace
}  // namespace ll::cpu
