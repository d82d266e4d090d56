// Tests of cpu/gemm_thin (the LoRA branch's products): every shape and layout it takes against
// a double-precision sum, in fp32 and with bf16 operands; sizes with ragged tails (not
// multiples of 16 or 32), odd row counts and small dimensions 1..16; beta 0 (C not read) and
// beta != 0; the large operand's bf16 rounding element for element against f32_to_bf16; the
// result independent of the thread count; and the shapes it must refuse.
#include "backend/cpu/gemm_thin.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cfloat>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "gradcheck.h"

namespace ll::cpu {
namespace {

using test::random_values;

bool thin_runs_here() {
  return gemm_kernel_active() == GemmKernel::Avx512;
}

struct Case {
  const char* name;
  Transpose ta, tb;
  int64_t m, n, k;
};

// The six LoRA products at smol-135m-like sizes (tokens 300, features 200/333, rank 8), the
// other layouts each shape takes, and small dimensions 1, 5, 13 and 16.
const Case kCases[] = {
    {"u = x·Aᵀ", Transpose::No, Transpose::Yes, 300, 8, 200},
    {"y += s·u·Bᵀ", Transpose::No, Transpose::Yes, 300, 333, 8},
    {"dB += s·dyᵀ·u", Transpose::Yes, Transpose::No, 333, 8, 300},
    {"du = s·dy·B", Transpose::No, Transpose::No, 300, 8, 333},
    {"dA += duᵀ·x", Transpose::Yes, Transpose::No, 8, 200, 300},
    {"dx = du·A", Transpose::No, Transpose::No, 301, 200, 8},
    {"expand, Aᵀ", Transpose::Yes, Transpose::No, 257, 129, 5},
    {"expand, k 16", Transpose::No, Transpose::No, 130, 161, 16},
    {"dot, r 1", Transpose::No, Transpose::Yes, 129, 1, 150},
    {"dot, r 13", Transpose::No, Transpose::No, 131, 13, 170},
    {"outer small m, Aᵀ stored", Transpose::No, Transpose::No, 16, 140, 200},
    {"outer small m, r 13", Transpose::Yes, Transpose::No, 13, 177, 129},
    {"outer small n, Bᵀ", Transpose::Yes, Transpose::Yes, 150, 5, 140},
};

// op(X)(i, j) of a row-major matrix stored [rows, ld] (transposed: [j, i]).
float at(const std::vector<float>& x, Transpose t, int64_t ld, int64_t i, int64_t j) {
  return t == Transpose::Yes ? x[static_cast<size_t>(j * ld + i)]
                             : x[static_cast<size_t>(i * ld + j)];
}

float as_bf16(float x) {
  return bf16_to_f32(f32_to_bf16(x));
}

void check_case(const Case& c, OperandRounding rounding, float alpha, float beta) {
  SCOPED_TRACE(std::string(c.name) + (rounding == OperandRounding::Bf16 ? " bf16" : " fp32") +
               " beta " + std::to_string(beta));
  ASSERT_TRUE(gemm_thin_applies(c.ta, c.tb, c.m, c.n, c.k));
  // Stored sizes (with a leading dimension 3 wider than needed: strides are honoured).
  const int64_t a_rows = c.ta == Transpose::Yes ? c.k : c.m;
  const int64_t a_cols = c.ta == Transpose::Yes ? c.m : c.k;
  const int64_t b_rows = c.tb == Transpose::Yes ? c.n : c.k;
  const int64_t b_cols = c.tb == Transpose::Yes ? c.k : c.n;
  const int64_t lda = a_cols + 3, ldb = b_cols + 3, ldc = c.n + 3;
  const auto a = random_values<float>(static_cast<size_t>(a_rows * lda), 1);
  const auto b = random_values<float>(static_cast<size_t>(b_rows * ldb), 2);
  std::vector<float> out = random_values<float>(static_cast<size_t>(c.m * ldc), 3);
  const std::vector<float> before = out;
  if (beta == 0.0f) {
    for (float& v : out) v = std::numeric_limits<float>::quiet_NaN();  // must not be read
  }
  gemm_thin(rounding, c.ta, c.tb, c.m, c.n, c.k, alpha, a.data(), lda, b.data(), ldb, beta,
            out.data(), ldc);
  const auto operand = [&](float x) { return rounding == OperandRounding::Bf16 ? as_bf16(x) : x; };
  int64_t bad = 0;
  for (int64_t i = 0; i < c.m; ++i) {
    for (int64_t j = 0; j < c.n; ++j) {
      double sum = 0, magnitude = 0;
      for (int64_t p = 0; p < c.k; ++p) {
        const double term = static_cast<double>(operand(at(a, c.ta, lda, i, p))) *
                            static_cast<double>(operand(at(b, c.tb, ldb, p, j)));
        sum += term;
        magnitude += std::fabs(term);
      }
      const double old = before[static_cast<size_t>(i * ldc + j)];
      const double want = alpha * sum + (beta == 0.0f ? 0.0 : beta * old);
      // fp32 summation of k exact products (bf16 products are exact in fp32; fp32 ones round
      // once), then alpha and beta: the standard bound (k + 3)·eps·Σ|terms| (+ the beta term).
      const double bound = (static_cast<double>(c.k) + 3) * FLT_EPSILON *
                           (std::fabs(alpha) * magnitude + std::fabs(beta * old));
      const double got = out[static_cast<size_t>(i * ldc + j)];
      if (!(std::fabs(got - want) <= bound) && bad++ < 5) {
        ADD_FAILURE() << "C(" << i << ", " << j << ") = " << got << ", want " << want << " ± "
                      << bound;
      }
    }
    // The padding columns of C beyond n stay as they were (not written).
    for (int64_t j = c.n; j < ldc; ++j) {
      const float got = out[static_cast<size_t>(i * ldc + j)];
      if (beta == 0.0f) {
        EXPECT_TRUE(std::isnan(got)) << "padding (" << i << ", " << j << ") was written";
      } else {
        EXPECT_EQ(got, before[static_cast<size_t>(i * ldc + j)]) << "padding written";
      }
    }
  }
  EXPECT_EQ(bad, 0);
}

TEST(GemmThin, EveryShapeAndLayoutMatchesADoubleSum) {
  if (!thin_runs_here()) GTEST_SKIP() << "no AVX-512: gemm_thin never applies here";
  for (const Case& c : kCases) {
    for (const OperandRounding rounding : {OperandRounding::None, OperandRounding::Bf16}) {
      check_case(c, rounding, 1.0f, 0.0f);
      check_case(c, rounding, 0.75f, 1.0f);
      check_case(c, rounding, -2.0f, 0.5f);
    }
  }
}

TEST(GemmThin, RoundsTheStreamedOperandExactlyAsF32ToBf16) {
  if (!thin_runs_here()) GTEST_SKIP() << "no AVX-512: gemm_thin never applies here";
  // Values at rounding ties (odd and even last kept bit), just above and below them, and
  // subnormals, selected one by one (the other operand is an identity): each output must be
  // exactly bf16(x). Rows 5, 6, 7 also hold a NaN, an inf and 3.4e38 (bf16: inf): a NaN
  // rounded to anything finite would show as a finite output where IEEE gives NaN (x · 0
  // with x NaN or inf is NaN), so the outputs that sum over them must be NaN.
  const float ties[] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, 1.0f + 0x1p-8f + 0x1p-20f,
                        1.0f + 0x1p-9f, -3.0f - 0x1p-7f,    1e-40f,
                        -0.0f,          -1.0f - 0x1p-8f};
  const int64_t rows = 160, depth = 160, r = 8;
  std::vector<float> x = random_values<float>(static_cast<size_t>(rows * depth), 5, -4.0, 4.0);
  for (size_t i = 0; i < x.size(); ++i) {
    if (i % 3 == 0) x[i] = ties[(i / 3) % std::size(ties)];
  }
  x[5 * depth + 100] = std::numeric_limits<float>::quiet_NaN();
  x[6 * depth + 101] = std::numeric_limits<float>::infinity();
  x[7 * depth + 102] = 3.4e38f;
  const auto special = [](int64_t t, int64_t l) {
    return (t == 5 && l == 100) || (t == 6 && l == 101) || (t == 7 && l == 102);
  };
  const auto expect = [&](float got, float input, const std::string& where) {
    if (std::isnan(input)) {
      EXPECT_TRUE(std::isnan(got)) << where << ": got " << got;
    } else {
      EXPECT_EQ(got, as_bf16(input)) << where << " input " << input;
    }
  };
  // dot: C[t, j] = Σ_p X[t, p] · W[j, p] with W[j, p] = (p == j + 8·s) selects X[t, j + 8s].
  for (int64_t shift = 0; shift < 3; ++shift) {
    std::vector<float> w(static_cast<size_t>(r * depth), 0.0f);  // stored [r, depth]: Bᵀ
    for (int64_t j = 0; j < r; ++j) w[static_cast<size_t>(j * depth + j + 8 * shift)] = 1.0f;
    std::vector<float> c(static_cast<size_t>(rows * r));
    gemm_thin(OperandRounding::Bf16, Transpose::No, Transpose::Yes, rows, r, depth, 1.0f, x.data(),
              depth, w.data(), depth, 0.0f, c.data(), r);
    for (int64_t t = 0; t < rows; ++t) {
      for (int64_t j = 0; j < r; ++j) {
        const int64_t p = j + 8 * shift;
        const bool selected_special = special(t, p);
        const bool row_special = t == 5 || t == 6 || t == 7;
        const float got = c[static_cast<size_t>(t * r + j)];
        const std::string where = "dot t " + std::to_string(t) + " j " + std::to_string(j);
        if (row_special && !selected_special) {
          EXPECT_TRUE(std::isnan(got)) << where << ": got " << got;
        } else {
          expect(got, x[static_cast<size_t>(t * depth + p)], where);
        }
      }
    }
  }
  // outer: G[j, l] = Σ_t S[t, j] · X[t, l] with S[t, j] = (t == j) selects row j of X.
  std::vector<float> s(static_cast<size_t>(rows * r), 0.0f);  // op(A) = Sᵀ, A stored [rows, r]
  for (int64_t j = 0; j < r; ++j) s[static_cast<size_t>(j * r + j)] = 1.0f;
  std::vector<float> g(static_cast<size_t>(r * depth));
  gemm_thin(OperandRounding::Bf16, Transpose::Yes, Transpose::No, r, depth, rows, 1.0f, s.data(), r,
            x.data(), depth, 0.0f, g.data(), depth);
  for (int64_t j = 0; j < r; ++j) {
    for (int64_t l = 0; l < depth; ++l) {
      const bool column_special = l >= 100 && l <= 102;
      const float got = g[static_cast<size_t>(j * depth + l)];
      const std::string where = "outer j " + std::to_string(j) + " l " + std::to_string(l);
      if (column_special && !special(j, l)) {
        EXPECT_TRUE(std::isnan(got)) << where << ": got " << got;
      } else {
        expect(got, x[static_cast<size_t>(j * depth + l)], where);
      }
    }
  }
}

TEST(GemmThin, ResultDoesNotDependOnThreadCount) {
  if (!thin_runs_here()) GTEST_SKIP() << "no AVX-512: gemm_thin never applies here";
  const int saved = omp_get_max_threads();
  for (const Case& c : kCases) {
    const int64_t a_size = c.m * c.k, b_size = c.k * c.n;
    const auto a = random_values<float>(static_cast<size_t>(a_size), 7);
    const auto b = random_values<float>(static_cast<size_t>(b_size), 8);
    const int64_t lda = c.ta == Transpose::Yes ? c.m : c.k;
    const int64_t ldb = c.tb == Transpose::Yes ? c.k : c.n;
    std::vector<float> reference;
    for (const int threads : {1, 2, 3}) {
      omp_set_num_threads(threads);
      std::vector<float> out(static_cast<size_t>(c.m * c.n));
      gemm_thin(OperandRounding::Bf16, c.ta, c.tb, c.m, c.n, c.k, 1.0f, a.data(), lda, b.data(),
                ldb, 0.0f, out.data(), c.n);
      if (reference.empty()) {
        reference = out;
      } else {
        EXPECT_EQ(out, reference) << c.name << ", " << threads << " threads";
      }
    }
  }
  omp_set_num_threads(saved);
}

TEST(GemmThin, TakesOnlyThinShapesWithTheAvx512Kernel) {
  const Transpose N = Transpose::No, T = Transpose::Yes;
  EXPECT_FALSE(gemm_thin_applies(N, N, 300, 300, 300));  // nothing thin
  EXPECT_FALSE(gemm_thin_applies(N, T, 300, 17, 300));   // rank above kThinMax
  EXPECT_FALSE(gemm_thin_applies(N, T, 100, 8, 300));    // tokens below kThinMin (decode)
  EXPECT_FALSE(gemm_thin_applies(N, T, 8, 300, 300));    // outer with op(B) = Bᵀ: not streamed
  EXPECT_FALSE(gemm_thin_applies(N, N, 300, 300, 0));    // k = 0 is gemm's (C = beta·C)
  const bool here = thin_runs_here();
  EXPECT_EQ(gemm_thin_applies(N, T, 300, 8, 300), here);
  if (here) {
    gemm_kernel_select(GemmKernel::Portable);  // the portable kernel's tests keep their path
    EXPECT_FALSE(gemm_thin_applies(N, T, 300, 8, 300));
    gemm_kernel_select(GemmKernel::Auto);
  }
  std::vector<float> x(16, 1.0f);
  EXPECT_THROW(gemm_thin(OperandRounding::None, N, N, 4, 4, 1, 1.0f, x.data(), 1, x.data(), 4, 0.0f,
                         x.data(), 4),
               Error);
}

}  // namespace
}  // namespace ll::cpu
