// Tests of cpu/gemm: gemm against a naive double-precision loop on awkward shapes (m = 1,
// n = 1, k = 1, odd sizes, k past one packed panel, n past one column block), every transpose,
// several alpha/beta, padded leading dimensions, for every micro-kernel this CPU has; results
// independent of the thread count; the linear layer with f32, bf16 and f16 weights (bf16 must
// give exactly the result of the same weights converted to f32); the input gradient against
// finite differences. Every output has guard elements after it.
#include "backend/cpu/gemm.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cfloat>
#include <cmath>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "gradcheck.h"

namespace ll::cpu {
namespace {

using test::GuardedBuffer;
using test::random_values;

// Selects a micro-kernel for the lifetime of the scope, then goes back to Auto.
class KernelScope {
 public:
  explicit KernelScope(GemmKernel kernel) { gemm_kernel_select(kernel); }
  ~KernelScope() { gemm_kernel_select(GemmKernel::Auto); }
  KernelScope(const KernelScope&) = delete;
  KernelScope& operator=(const KernelScope&) = delete;
};

std::vector<GemmKernel> supported_kernels() {
  std::vector<GemmKernel> kernels;
  for (GemmKernel k : {GemmKernel::Portable, GemmKernel::Avx2, GemmKernel::Avx512}) {
    if (gemm_kernel_supported(k)) kernels.push_back(k);
  }
  return kernels;
}

struct Shape {
  int64_t m, n, k;
};

// m = 1 (generation), n = 1, k = 1, odd sizes, k > 256 (several k panels), n > 512 (several
// column blocks), large enough to run in parallel, and empty ones.
const Shape kShapes[] = {{1, 1, 1},     {1, 37, 300},   {5, 1, 7},      {7, 33, 1},
                         {13, 29, 257}, {100, 70, 600}, {131, 613, 65}, {9, 17, 3},
                         {0, 5, 5},     {4, 0, 3},      {3, 4, 0}};

template <typename T>
double epsilon() {
  return sizeof(T) == 4 ? double{FLT_EPSILON} : double{DBL_EPSILON};
}

// Element (r, c) of op(X), X stored row-major with leading dimension ld.
template <typename T>
double op_at(const std::vector<T>& x, int64_t ld, Transpose t, int64_t r, int64_t c) {
  return static_cast<double>(t == Transpose::No ? x[r * ld + c] : x[c * ld + r]);
}

template <typename T>
void check_gemm_case(const Shape& s, Transpose ta, Transpose tb, double alpha, double beta,
                     int64_t pad, uint64_t seed) {
  const auto [m, n, k] = s;
  SCOPED_TRACE(testing::Message() << "m=" << m << " n=" << n << " k=" << k << " ta="
                                  << (ta == Transpose::Yes) << " tb=" << (tb == Transpose::Yes)
                                  << " alpha=" << alpha << " beta=" << beta << " pad=" << pad);
  const int64_t lda = (ta == Transpose::No ? k : m) + pad;
  const int64_t ldb = (tb == Transpose::No ? n : k) + pad;
  const int64_t ldc = n + pad;
  const auto a = random_values<T>(static_cast<size_t>((ta == Transpose::No ? m : k) * lda), seed);
  const auto b =
      random_values<T>(static_cast<size_t>((tb == Transpose::No ? k : n) * ldb), seed + 1);
  const auto c0 = random_values<T>(static_cast<size_t>(m * ldc), seed + 2);
  // beta = 0 must not read C: leave it NaN. Otherwise C starts as c0.
  GuardedBuffer<T> c(static_cast<size_t>(m * ldc));
  if (beta != 0.0) std::copy(c0.begin(), c0.end(), c.data());

  gemm<T>(ta, tb, m, n, k, static_cast<T>(alpha), a.data(), lda, b.data(), ldb,
          static_cast<T>(beta), c.data(), ldc);
  c.expect_guards_intact("C");

  // Error bound of a length-k dot product in T: (k + a few roundings of alpha, beta and the
  // panel merges) · ε · (|alpha| Σ|a||b| + |beta c|).
  const double tolerance_factor = static_cast<double>(k + 8) * epsilon<T>();
  int failures = 0;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < ldc; ++j) {
      const T got = c[static_cast<size_t>(i * ldc + j)];
      if (j >= n) {  // padding between rows: untouched
        const bool untouched = beta != 0.0 ? got == c0[i * ldc + j] : std::isnan(got);
        if (!untouched && ++failures < 5) ADD_FAILURE() << "padding C[" << i << "," << j << "]";
        continue;
      }
      double sum = 0.0, magnitude = 0.0;
      for (int64_t p = 0; p < k; ++p) {
        const double product = op_at(a, lda, ta, i, p) * op_at(b, ldb, tb, p, j);
        sum += product;
        magnitude += std::abs(product);
      }
      double expected = alpha * sum;
      double bound = std::abs(alpha) * magnitude;
      if (beta != 0.0) {
        expected += beta * static_cast<double>(c0[i * ldc + j]);
        bound += std::abs(beta * static_cast<double>(c0[i * ldc + j]));
      }
      const double error = std::abs(static_cast<double>(got) - expected);
      if (!(error <= tolerance_factor * bound + 1e-300) && ++failures < 5) {
        ADD_FAILURE() << "C[" << i << "," << j << "] = " << got << ", expected " << expected;
      }
    }
  }
}

template <typename T>
void check_all_gemm_cases() {
  uint64_t seed = 1;
  for (const Shape& shape : kShapes) {
    for (Transpose ta : {Transpose::No, Transpose::Yes}) {
      for (Transpose tb : {Transpose::No, Transpose::Yes}) {
        check_gemm_case<T>(shape, ta, tb, 1.0, 0.0, 0, seed += 3);
        check_gemm_case<T>(shape, ta, tb, 0.5, 1.0, 3, seed += 3);
        check_gemm_case<T>(shape, ta, tb, -2.0, 0.25, 1, seed += 3);
      }
    }
  }
}

TEST(Gemm, FloatMatchesNaiveForEveryKernel) {
  for (GemmKernel kernel : supported_kernels()) {
    SCOPED_TRACE(gemm_kernel_name(kernel));
    KernelScope scope(kernel);
    check_all_gemm_cases<float>();
  }
}

TEST(Gemm, RandomShapesMatchNaive) {
  std::mt19937_64 rng(2024);
  const auto below = [&](int64_t n) {
    return static_cast<int64_t>(rng() % static_cast<uint64_t>(n));
  };
  for (GemmKernel kernel : supported_kernels()) {
    SCOPED_TRACE(gemm_kernel_name(kernel));
    KernelScope scope(kernel);
    for (int trial = 0; trial < 12; ++trial) {
      const Shape shape{1 + below(90), 1 + below(90), 1 + below(300)};
      const Transpose ta = below(2) == 0 ? Transpose::No : Transpose::Yes;
      const Transpose tb = below(2) == 0 ? Transpose::No : Transpose::Yes;
      const double beta = below(2) == 0 ? 0.0 : 0.75;
      check_gemm_case<float>(shape, ta, tb, 1.5, beta, below(4), rng());
    }
  }
}

TEST(Gemm, DoubleMatchesNaive) {
  check_all_gemm_cases<double>();
}

TEST(Gemm, AutoPicksASupportedKernel) {
  const GemmKernel active = gemm_kernel_active();
  EXPECT_NE(active, GemmKernel::Auto);
  EXPECT_TRUE(gemm_kernel_supported(active));
}

TEST(Gemm, ResultDoesNotDependOnThreadCount) {
  // Every output element is summed by one thread in a fixed order.
  const int64_t m = 150, n = 700, k = 300;
  const auto a = random_values<float>(static_cast<size_t>(m * k), 11);
  const auto b = random_values<float>(static_cast<size_t>(k * n), 12);
  std::vector<float> reference(static_cast<size_t>(m * n));
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  gemm<float>(Transpose::No, Transpose::No, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f,
              reference.data(), n);
  for (int threads : {2, 3, 5}) {
    omp_set_num_threads(threads);
    std::vector<float> c(reference.size());
    gemm<float>(Transpose::No, Transpose::No, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f,
                c.data(), n);
    EXPECT_EQ(c, reference) << threads << " threads";
  }
  omp_set_num_threads(saved);
}

TEST(Gemm, RejectsBadSizes) {
  std::vector<float> x(16);
  EXPECT_THROW(gemm<float>(Transpose::No, Transpose::No, -1, 2, 2, 1.0f, x.data(), 2, x.data(), 2,
                           0.0f, x.data(), 2),
               Error);
  // lda = 1 < k = 2
  EXPECT_THROW(gemm<float>(Transpose::No, Transpose::No, 2, 2, 2, 1.0f, x.data(), 1, x.data(), 2,
                           0.0f, x.data(), 2),
               Error);
  // transposed B is [n, k] = [3, 2]: ldb must be >= 2
  EXPECT_THROW(gemm<float>(Transpose::No, Transpose::Yes, 2, 3, 2, 1.0f, x.data(), 2, x.data(), 1,
                           0.0f, x.data(), 3),
               Error);
}

// ---- linear layer ----------------------------------------------------------------------------

struct LinearShape {
  int64_t tokens, in, out;
};
const LinearShape kLinearShapes[] = {
    {1, 5, 3}, {1, 576, 192}, {7, 300, 33}, {70, 64, 515}, {129, 600, 97}};

// bf16 weights, and the same values as f32 and f16 (bf16 values with small exponents are exact
// in f16 when their mantissa fits: keep only weights that round-trip).
struct TestWeights {
  std::vector<uint16_t> bf16;  // [out, in]
  std::vector<float> f32;      // [out, in] the same values
};

TestWeights make_weights(int64_t out, int64_t in, uint64_t seed) {
  TestWeights w;
  const auto values = random_values<float>(static_cast<size_t>(out * in), seed);
  for (float v : values) {
    w.bf16.push_back(f32_to_bf16(v));
    w.f32.push_back(bf16_to_f32(w.bf16.back()));
  }
  return w;
}

// y[t, o] = Σ_i x[t, i] W[o, i] and dx[t, i] = Σ_o dy[t, o] W[o, i], in double.
std::vector<double> naive_linear(const std::vector<float>& x, const std::vector<float>& w,
                                 const LinearShape& s) {
  std::vector<double> y(static_cast<size_t>(s.tokens * s.out));
  for (int64_t t = 0; t < s.tokens; ++t) {
    for (int64_t o = 0; o < s.out; ++o) {
      double sum = 0.0;
      for (int64_t i = 0; i < s.in; ++i) sum += double{x[t * s.in + i]} * w[o * s.in + i];
      y[t * s.out + o] = sum;
    }
  }
  return y;
}

std::vector<double> naive_linear_backward(const std::vector<float>& dy, const std::vector<float>& w,
                                          const LinearShape& s) {
  std::vector<double> dx(static_cast<size_t>(s.tokens * s.in));
  for (int64_t t = 0; t < s.tokens; ++t) {
    for (int64_t i = 0; i < s.in; ++i) {
      double sum = 0.0;
      for (int64_t o = 0; o < s.out; ++o) sum += double{dy[t * s.out + o]} * w[o * s.in + i];
      dx[t * s.in + i] = sum;
    }
  }
  return dx;
}

TEST(Linear, ForwardMatchesNaiveAndBf16EqualsF32) {
  uint64_t seed = 100;
  for (const LinearShape& s : kLinearShapes) {
    SCOPED_TRACE(testing::Message() << "tokens=" << s.tokens << " in=" << s.in << " out=" << s.out);
    const TestWeights w = make_weights(s.out, s.in, ++seed);
    const auto x = random_values<float>(static_cast<size_t>(s.tokens * s.in), ++seed);
    GuardedBuffer<float> y_f32(static_cast<size_t>(s.tokens * s.out));
    GuardedBuffer<float> y_bf16(y_f32.size());
    linear_forward(y_f32.data(), x.data(), weight_f32(w.f32.data()), s.tokens, s.in, s.out,
                   Accumulate::No);
    linear_forward(y_bf16.data(), x.data(), weight_bf16(w.bf16.data()), s.tokens, s.in, s.out,
                   Accumulate::No);
    y_f32.expect_guards_intact("y f32");
    y_bf16.expect_guards_intact("y bf16");
    // Inputs in [-1, 1): |y| <= in, fp32 error <= (in + 8) ε · Σ|x||w| <= (in + 8) ε · in.
    const double atol = static_cast<double>((s.in + 8) * s.in) * FLT_EPSILON;
    test::expect_all_near("y", y_f32.values(), naive_linear(x, w.f32, s), atol, 0.0);
    EXPECT_EQ(y_bf16.values(), y_f32.values()) << "bf16 weights convert exactly to f32";

    // Accumulate::Yes adds to y.
    const auto y0 = random_values<float>(y_f32.size(), ++seed);
    GuardedBuffer<float> y_acc(y0);
    linear_forward(y_acc.data(), x.data(), weight_bf16(w.bf16.data()), s.tokens, s.in, s.out,
                   Accumulate::Yes);
    y_acc.expect_guards_intact("y accumulate");
    std::vector<double> expected = naive_linear(x, w.f32, s);
    for (size_t i = 0; i < expected.size(); ++i) expected[i] += y0[i];
    test::expect_all_near("y accumulate", y_acc.values(), expected, atol + 4 * FLT_EPSILON, 0.0);
  }
}

TEST(Linear, F16WeightsConvertExactly) {
  const LinearShape s{9, 40, 21};
  const auto values = random_values<float>(static_cast<size_t>(s.out * s.in), 7);
  std::vector<uint16_t> f16;
  std::vector<float> f32;
  for (float v : values) {
    f16.push_back(f32_to_f16(v));
    f32.push_back(f16_to_f32(f16.back()));
  }
  const auto x = random_values<float>(static_cast<size_t>(s.tokens * s.in), 8);
  std::vector<float> y_f16(static_cast<size_t>(s.tokens * s.out)), y_f32(y_f16.size());
  linear_forward(y_f16.data(), x.data(), WeightView{f16.data(), DType::F16}, s.tokens, s.in, s.out,
                 Accumulate::No);
  linear_forward(y_f32.data(), x.data(), weight_f32(f32.data()), s.tokens, s.in, s.out,
                 Accumulate::No);
  EXPECT_EQ(y_f16, y_f32);
}

TEST(Linear, BackwardInputMatchesNaive) {
  uint64_t seed = 200;
  for (const LinearShape& s : kLinearShapes) {
    SCOPED_TRACE(testing::Message() << "tokens=" << s.tokens << " in=" << s.in << " out=" << s.out);
    const TestWeights w = make_weights(s.out, s.in, ++seed);
    const auto dy = random_values<float>(static_cast<size_t>(s.tokens * s.out), ++seed);
    const auto dx0 = random_values<float>(static_cast<size_t>(s.tokens * s.in), ++seed);
    const std::vector<double> expected = naive_linear_backward(dy, w.f32, s);
    const double atol = static_cast<double>((s.out + 8) * s.out) * FLT_EPSILON;

    GuardedBuffer<float> dx(static_cast<size_t>(s.tokens * s.in));
    linear_backward_input(dx.data(), dy.data(), weight_bf16(w.bf16.data()), s.tokens, s.in, s.out,
                          Accumulate::No);
    dx.expect_guards_intact("dx");
    test::expect_all_near("dx", dx.values(), expected, atol, 0.0);

    GuardedBuffer<float> dx_acc(dx0);
    linear_backward_input(dx_acc.data(), dy.data(), weight_f32(w.f32.data()), s.tokens, s.in, s.out,
                          Accumulate::Yes);
    dx_acc.expect_guards_intact("dx accumulate");
    std::vector<double> expected_acc = expected;
    for (size_t i = 0; i < expected_acc.size(); ++i) expected_acc[i] += dx0[i];
    test::expect_all_near("dx accumulate", dx_acc.values(), expected_acc, atol + 4 * FLT_EPSILON,
                          0.0);
  }
}

TEST(Linear, BackwardInputIsTheGradientOfForward) {
  // In double, L(x) = Σ dy ⊙ linear_forward(x); its gradient is linear_backward_input(dy).
  for (const LinearShape& s : {LinearShape{3, 5, 7}, LinearShape{1, 9, 4}, LinearShape{4, 13, 6}}) {
    const TestWeights w = make_weights(s.out, s.in, 31);
    const WeightView view = weight_bf16(w.bf16.data());
    const auto x = random_values<double>(static_cast<size_t>(s.tokens * s.in), 32);
    const auto dy = random_values<double>(static_cast<size_t>(s.tokens * s.out), 33);
    const auto loss = [&](const std::vector<double>& input) {
      std::vector<double> y(dy.size());
      linear_forward(y.data(), input.data(), view, s.tokens, s.in, s.out, Accumulate::No);
      return test::dot(dy, y);
    };
    std::vector<double> dx(x.size());
    linear_backward_input(dx.data(), dy.data(), view, s.tokens, s.in, s.out, Accumulate::No);
    test::expect_gradient_matches("linear dx", x, loss, dx);
  }
}

TEST(Linear, RejectsNegativeSizes) {
  std::vector<float> x(4), w(4), y(4);
  EXPECT_THROW(linear_forward(y.data(), x.data(), weight_f32(w.data()), -1, 2, 2, Accumulate::No),
               Error);
  EXPECT_THROW(
      linear_backward_input(y.data(), x.data(), weight_f32(w.data()), 2, -2, 2, Accumulate::No),
      Error);
}

}  // namespace
}  // namespace ll::cpu
