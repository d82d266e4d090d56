// Tests of cpu/matmul_bf16 (oneDNN's bf16 products behind `--bf16 True`): bf16_gemm against a
// double-precision product of the same operands rounded to bf16, on awkward shapes, every
// transpose, alpha/beta, padded leading dimensions; the linear layer with bf16 weights (read
// in place) and f32 weights (rounded per call), written and accumulated; beta = 0 not reading
// C (NaN in C stays out); the CPU backend of Precision::Bf16 running its products through it.
// Every output has guard elements around it. Skipped (visibly) where bf16 matmuls are
// unavailable (a build without oneDNN, a CPU without AVX512_BF16 or AMX).
//
// Tolerance: the reference rounds the operands exactly as the op must (RNE to bf16), so the
// only difference left is fp32 accumulation: |error| <= k · 2^-24 · Σ_p |a_ip · b_pj| is the
// worst case of a sequential fp32 sum (Higham), and we allow 2x that for the pairwise
// products of the dot-product instructions (vdpbf16ps sums two products before rounding).
// A wrong rounding of the operands (truncation instead of RNE) or an fp32 operand used in place
// of its bf16 rounding would miss by ~2^-9 relative, far outside it.
#include "backend/cpu/matmul_bf16.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "core/dtype.h"
#include "core/error.h"
#include "gradcheck.h"

namespace ll::cpu {
namespace {

using test::GuardedBuffer;
using test::random_values;

#define SKIP_WITHOUT_BF16()                                                    \
  if (!bf16_matmul_available()) {                                              \
    GTEST_SKIP() << "bf16 matmuls unavailable: " << bf16_matmul_description(); \
  }

double round_bf16(double x) {
  return static_cast<double>(bf16_to_f32(f32_to_bf16(static_cast<float>(x))));
}

struct Shape {
  int64_t m, n, k;
};
// m = 1 (decode), n = 1, k = 1, odd sizes, a LoRA rank (n = 8), sizes past oneDNN's blocks.
const Shape kShapes[] = {{1, 1, 1},    {1, 37, 300},   {5, 1, 7},      {7, 33, 1},
                         {13, 8, 257}, {100, 70, 600}, {131, 613, 65}, {64, 576, 192}};

// The reference C = alpha · op(A)·op(B) + beta · C of the bf16-rounded operands, in double,
// and the error bound of each element (file comment).
struct Reference {
  std::vector<double> c;
  std::vector<double> bound;
};

Reference reference_gemm(Transpose ta, Transpose tb, const Shape& s, double alpha,
                         const std::vector<float>& a, int64_t lda, const std::vector<float>& b,
                         int64_t ldb, double beta, const std::vector<float>& c0, int64_t ldc) {
  Reference ref{std::vector<double>(c0.size()), std::vector<double>(c0.size())};
  const double u = std::ldexp(1.0, -24);
  for (int64_t i = 0; i < s.m; ++i) {
    for (int64_t j = 0; j < s.n; ++j) {
      double sum = 0.0, magnitude = 0.0;
      for (int64_t p = 0; p < s.k; ++p) {
        const double av = round_bf16(ta == Transpose::No ? a[i * lda + p] : a[p * lda + i]);
        const double bv = round_bf16(tb == Transpose::No ? b[p * ldb + j] : b[j * ldb + p]);
        sum += av * bv;
        magnitude += std::abs(av * bv);
      }
      const size_t at = static_cast<size_t>(i * ldc + j);
      const double previous = beta == 0.0 ? 0.0 : beta * c0[at];
      ref.c[at] = alpha * sum + previous;
      ref.bound[at] = 2.0 * static_cast<double>(s.k + 2) * u *
                          (std::abs(alpha) * magnitude + std::abs(previous)) +
                      1e-30;
    }
  }
  return ref;
}

TEST(MatmulBf16, GemmMatchesTheBf16RoundedProductOnEveryTransposeAndShape) {
  SKIP_WITHOUT_BF16();
  uint64_t seed = 1;
  for (const Shape& s : kShapes) {
    for (Transpose ta : {Transpose::No, Transpose::Yes}) {
      for (Transpose tb : {Transpose::No, Transpose::Yes}) {
        for (auto [alpha, beta] :
             {std::pair{1.0f, 0.0f}, std::pair{0.5f, 1.0f}, std::pair{-2.0f, 0.25f}}) {
          const std::string what =
              "m=" + std::to_string(s.m) + " n=" + std::to_string(s.n) +
              " k=" + std::to_string(s.k) + (ta == Transpose::Yes ? " Aᵀ" : " A") +
              (tb == Transpose::Yes ? " Bᵀ" : " B") + " alpha=" + std::to_string(alpha) +
              " beta=" + std::to_string(beta);
          // Padded leading dimensions: every stride is 3 past the row it strides over.
          const int64_t a_rows = ta == Transpose::No ? s.m : s.k;
          const int64_t a_cols = ta == Transpose::No ? s.k : s.m;
          const int64_t b_rows = tb == Transpose::No ? s.k : s.n;
          const int64_t b_cols = tb == Transpose::No ? s.n : s.k;
          const int64_t lda = a_cols + 3, ldb = b_cols + 3, ldc = s.n + 3;
          const auto a = random_values<float>(static_cast<size_t>(a_rows * lda), ++seed);
          const auto b = random_values<float>(static_cast<size_t>(b_rows * ldb), ++seed);
          const auto c0 = random_values<float>(static_cast<size_t>(s.m * ldc), ++seed);
          GuardedBuffer<float> c(c0);
          bf16_gemm(ta, tb, s.m, s.n, s.k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(),
                    ldc);
          const Reference ref = reference_gemm(ta, tb, s, alpha, a, lda, b, ldb, beta, c0, ldc);
          for (int64_t i = 0; i < s.m; ++i) {
            for (int64_t j = 0; j < s.n; ++j) {
              const size_t at = static_cast<size_t>(i * ldc + j);
              ASSERT_NEAR(c[at], ref.c[at], ref.bound[at])
                  << what << " at (" << i << ", " << j << ")";
            }
            for (int64_t j = s.n; j < ldc; ++j) {  // the padding between rows stays as it was
              const size_t at = static_cast<size_t>(i * ldc + j);
              ASSERT_EQ(c[at], c0[at]) << what << ": padding written at (" << i << ", " << j << ")";
            }
          }
          c.expect_guards_intact(what);
        }
      }
    }
  }
}

TEST(MatmulBf16, BetaZeroDoesNotReadC) {
  SKIP_WITHOUT_BF16();
  const Shape s{9, 17, 33};
  const auto a = random_values<float>(static_cast<size_t>(s.m * s.k), 5);
  const auto b = random_values<float>(static_cast<size_t>(s.k * s.n), 6);
  GuardedBuffer<float> c(static_cast<size_t>(s.m * s.n));  // NaN-filled
  bf16_gemm(Transpose::No, Transpose::No, s.m, s.n, s.k, 1.0f, a.data(), s.k, b.data(), s.n, 0.0f,
            c.data(), s.n);
  for (size_t i = 0; i < c.size(); ++i) ASSERT_TRUE(std::isfinite(c[i])) << "element " << i;
  c.expect_guards_intact("beta = 0");
}

TEST(MatmulBf16, ZeroKScalesC) {
  SKIP_WITHOUT_BF16();
  std::vector<float> c = {1.0f, -2.0f, 3.0f, 4.0f};
  bf16_gemm(Transpose::No, Transpose::No, 2, 2, 0, 1.0f, nullptr, 1, nullptr, 2, 0.5f, c.data(), 2);
  EXPECT_EQ(c, (std::vector<float>{0.5f, -1.0f, 1.5f, 2.0f}));
}

// The linear layer's two products against the reference, with the weight in bf16 (read in
// place) and in f32 (rounded per call: the same bf16 values, so the same result bit for bit).
TEST(MatmulBf16, LinearForwardAndInputGradientWithBf16AndF32Weights) {
  SKIP_WITHOUT_BF16();
  for (const Shape& s : {Shape{1, 40, 24}, Shape{37, 96, 64}, Shape{128, 200, 576}}) {
    const int64_t tokens = s.m, out = s.n, in = s.k;
    const auto w = random_values<float>(static_cast<size_t>(out * in), 11);  // W[out, in]
    std::vector<uint16_t> w16(w.size());
    for (size_t i = 0; i < w.size(); ++i) w16[i] = f32_to_bf16(w[i]);
    const auto x = random_values<float>(static_cast<size_t>(tokens * in), 12);
    const auto dy = random_values<float>(static_cast<size_t>(tokens * out), 13);
    const auto y0 = random_values<float>(static_cast<size_t>(tokens * out), 14);
    const auto dx0 = random_values<float>(static_cast<size_t>(tokens * in), 15);
    for (Accumulate acc : {Accumulate::No, Accumulate::Yes}) {
      const float beta = acc == Accumulate::Yes ? 1.0f : 0.0f;
      const std::string what = "tokens=" + std::to_string(tokens) + " in=" + std::to_string(in) +
                               " out=" + std::to_string(out) +
                               (acc == Accumulate::Yes ? " accumulate" : " write");
      // y = x · Wᵀ is gemm(No, Yes) with B = W; dx = dy · W is gemm(No, No).
      const Reference fwd = reference_gemm(Transpose::No, Transpose::Yes, {tokens, out, in}, 1.0, x,
                                           in, w, in, beta, y0, out);
      const Reference bwd = reference_gemm(Transpose::No, Transpose::No, {tokens, in, out}, 1.0, dy,
                                           out, w, in, beta, dx0, in);
      GuardedBuffer<float> y16(y0), y32(y0), dx16(dx0), dx32(dx0);
      bf16_linear_forward(y16.data(), x.data(), weight_bf16(w16.data()), tokens, in, out, acc);
      bf16_linear_forward(y32.data(), x.data(), weight_f32(w.data()), tokens, in, out, acc);
      bf16_linear_backward_input(dx16.data(), dy.data(), weight_bf16(w16.data()), tokens, in, out,
                                 acc);
      bf16_linear_backward_input(dx32.data(), dy.data(), weight_f32(w.data()), tokens, in, out,
                                 acc);
      for (size_t i = 0; i < y0.size(); ++i) {
        ASSERT_NEAR(y16[i], fwd.c[i], fwd.bound[i]) << what << " forward at " << i;
        ASSERT_EQ(y16[i], y32[i]) << what << ": an f32 weight must act as its bf16 rounding";
      }
      for (size_t i = 0; i < dx0.size(); ++i) {
        ASSERT_NEAR(dx16[i], bwd.c[i], bwd.bound[i]) << what << " input gradient at " << i;
        ASSERT_EQ(dx16[i], dx32[i]) << what << ": an f32 weight must act as its bf16 rounding";
      }
      y16.expect_guards_intact(what);
      dx16.expect_guards_intact(what);
    }
  }
}

// The rounding is to nearest even, not truncation: 1 + 2^-8 + 2^-10 lies above the midpoint
// between two bf16 neighbours (1 and 1 + 2^-7) and must round up.
TEST(MatmulBf16, OperandsRoundToNearestNotTruncate) {
  SKIP_WITHOUT_BF16();
  const float a = 1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -10);
  const float b = 1.0f;
  float c = 0.0f;
  bf16_gemm(Transpose::No, Transpose::No, 1, 1, 1, 1.0f, &a, 1, &b, 1, 0.0f, &c, 1);
  EXPECT_EQ(c, 1.0f + std::ldexp(1.0f, -7));
}

TEST(MatmulBf16, Bf16BackendRunsItsProductsInBf16AndTheRestAsFp32) {
  SKIP_WITHOUT_BF16();
  Backend& bf16 = cpu_backend(Precision::Bf16);
  Backend& fp32 = cpu_backend(Precision::Fp32);
  EXPECT_EQ(bf16.precision(), Precision::Bf16);
  EXPECT_EQ(fp32.precision(), Precision::Fp32);
  EXPECT_EQ(&fp32, &cpu_backend());
  // A value whose bf16 rounding differs from itself: the bf16 backend's product sees the
  // rounding, the fp32 one does not.
  const float a = 1.0f + std::ldexp(1.0f, -12);
  const float b = 1.0f;
  float c16 = 0.0f, c32 = 0.0f;
  bf16.gemm(Transpose::No, Transpose::No, 1, 1, 1, 1.0f, &a, 1, &b, 1, 0.0f, &c16, 1);
  fp32.gemm(Transpose::No, Transpose::No, 1, 1, 1, 1.0f, &a, 1, &b, 1, 0.0f, &c32, 1);
  EXPECT_EQ(c16, 1.0f);
  EXPECT_EQ(c32, a);
  // The LM head's logits, too.
  const uint16_t w = f32_to_bf16(1.0f);
  const int64_t row = 0;
  bf16.lm_head_logits(&c16, &a, weight_bf16(&w), &row, 1, 1, 1, 1);
  fp32.lm_head_logits(&c32, &a, weight_bf16(&w), &row, 1, 1, 1, 1);
  EXPECT_EQ(c16, 1.0f);
  EXPECT_EQ(c32, a);
  // Everything else is the fp32 op: RMSNorm gives the same bits on both.
  const auto x = random_values<float>(64, 3);
  std::vector<float> y16(64), y32(64), rstd16(1), rstd32(1);
  const float one = 1.0f;
  std::vector<float> ones(64, one);
  bf16.rmsnorm_forward(y16.data(), rstd16.data(), x.data(), weight_f32(ones.data()), 1, 64, 1e-5);
  fp32.rmsnorm_forward(y32.data(), rstd32.data(), x.data(), weight_f32(ones.data()), 1, 64, 1e-5);
  EXPECT_EQ(y16, y32);
}

TEST(MatmulBf16, DescriptionNamesTheLibrary) {
  const std::string description = bf16_matmul_description();
  EXPECT_FALSE(description.empty());
  if (bf16_matmul_available()) {
    EXPECT_NE(description.find("oneDNN"), std::string::npos);
  }
}

}  // namespace
}  // namespace ll::cpu
