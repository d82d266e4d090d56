// Tests of cpu/gemm: gemm against a naive double-precision loop on awkward shapes (m = 1,
// n = 1, k = 1, odd sizes, k past one packed panel, n past one column block), every transpose,
// several alpha/beta, padded leading dimensions, for every micro-kernel this CPU has; results
// independent of the thread count; the linear layer with f32, bf16 and f16 weights (bf16 must
// give exactly the result of the same weights converted to f32); the input gradient against
// finite differences; the few-rows path (1 to threshold rows, weights read in place) against a
// double reference for every kernel, weight dtype and Accumulate, against the packed path, and
// its determinism (a row's result depends neither on the other rows nor on the thread count).
// Every output has guard elements around it.
#include "backend/cpu/gemm.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <random>
#include <string>
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
// m <= kGemmFewRowsDefault (16) runs the few-rows path (gemm.h): among them m = 2 with n past
// several column blocks and k with a ragged tail, m = 8 and 13 (several row groups).
const Shape kShapes[] = {{1, 1, 1},      {1, 37, 300},   {5, 1, 7},  {7, 33, 1},   {13, 29, 257},
                         {100, 70, 600}, {131, 613, 65}, {9, 17, 3}, {2, 75, 531}, {8, 41, 19},
                         {0, 5, 5},      {4, 0, 3},      {3, 4, 0}};

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

TEST(Gemm, FewRowsResultDoesNotDependOnThreadCount) {
  // m = 5: the few-rows path (a group of 4 rows and one of 1), m·n·k past its parallel
  // threshold (2^22); both of its shapes, split into different tasks for each thread count.
  const int64_t m = 5, n = 1100, k = 800;
  const auto a = random_values<float>(static_cast<size_t>(m * k), 13);
  const auto b = random_values<float>(static_cast<size_t>(k * n), 14);
  const int saved = omp_get_max_threads();
  for (Transpose tb : {Transpose::No, Transpose::Yes}) {
    const int64_t ldb = tb == Transpose::No ? n : k;
    std::vector<float> reference(static_cast<size_t>(m * n));
    omp_set_num_threads(1);
    gemm<float>(Transpose::No, tb, m, n, k, 1.0f, a.data(), k, b.data(), ldb, 0.0f,
                reference.data(), n);
    for (int threads : {2, 3, 5}) {
      omp_set_num_threads(threads);
      std::vector<float> c(reference.size());
      gemm<float>(Transpose::No, tb, m, n, k, 1.0f, a.data(), k, b.data(), ldb, 0.0f, c.data(), n);
      EXPECT_EQ(c, reference) << threads << " threads, tb=" << (tb == Transpose::Yes);
    }
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

// ---- few rows (decode) -------------------------------------------------------------------------

// Sets the few-rows threshold for the lifetime of the scope, then restores the default.
class FewRowsScope {
 public:
  explicit FewRowsScope(int64_t max_rows) { gemm_few_rows_select(max_rows); }
  ~FewRowsScope() { gemm_few_rows_select(kGemmFewRowsDefault); }
  FewRowsScope(const FewRowsScope&) = delete;
  FewRowsScope& operator=(const FewRowsScope&) = delete;
};

// A weight [out, in] stored as `dtype`, and its exact values as f32.
struct StoredWeights {
  DType dtype = DType::F32;
  std::vector<float> f32;      // [out, in] the values
  std::vector<uint16_t> half;  // [out, in] bf16 or f16 bits of the same values
  WeightView view() const {
    return dtype == DType::F32 ? weight_f32(f32.data()) : WeightView{half.data(), dtype};
  }
};

StoredWeights make_stored_weights(DType dtype, int64_t out, int64_t in, uint64_t seed) {
  StoredWeights w;
  w.dtype = dtype;
  for (float v : random_values<float>(static_cast<size_t>(out * in), seed)) {
    if (dtype == DType::BF16) {
      w.half.push_back(f32_to_bf16(v));
      v = bf16_to_f32(w.half.back());
    } else if (dtype == DType::F16) {
      w.half.push_back(f32_to_f16(v));
      v = f16_to_f32(w.half.back());
    }
    w.f32.push_back(v);
  }
  return w;
}

// The exact result of a sum of products (in double) and the sum of their magnitudes, which
// bounds its fp32 rounding error.
struct ReferenceSums {
  std::vector<double> value;
  std::vector<double> magnitude;
};

// y[t, o] = Σ_i x[t, i] W[o, i]  (forward), or dx[t, i] = Σ_o dy[t, o] W[o, i]  (backward).
ReferenceSums reference_linear(const std::vector<float>& act, const std::vector<float>& w,
                               const LinearShape& s, bool backward) {
  const int64_t cols = backward ? s.in : s.out;   // of the result
  const int64_t depth = backward ? s.out : s.in;  // summed over
  ReferenceSums r;
  for (int64_t t = 0; t < s.tokens; ++t) {
    for (int64_t j = 0; j < cols; ++j) {
      double sum = 0.0, magnitude = 0.0;
      for (int64_t p = 0; p < depth; ++p) {
        const double product =
            double{act[t * depth + p]} * (backward ? w[p * s.in + j] : w[j * s.in + p]);
        sum += product;
        magnitude += std::abs(product);
      }
      r.value.push_back(sum);
      r.magnitude.push_back(magnitude);
    }
  }
  return r;
}

// Tolerance of a length-k fp32 sum of products (then + y0 with Accumulate::Yes): in any order,
// with each product either rounded or fused into its addition, the error is at most
// (k - 1)·u·Σ|x·w| + O(u²) (u = ε/2 the unit roundoff), plus u·|y| for the final addition of
// y0. We allow (k + 2)·ε·Σ|x·w| + ε·|y0|: twice that, covering the second-order terms. A
// wrong or missing term (|x·w| ~ 0.25 here) is 10²-10⁴ times outside it.
void expect_within_rounding(const std::string& what, const std::vector<float>& got,
                            const ReferenceSums& ref, const std::vector<float>& y0, int64_t depth) {
  ASSERT_EQ(got.size(), ref.value.size()) << what;
  int failures = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double base = y0.empty() ? 0.0 : double{y0[i]};
    const double expected = ref.value[i] + base;
    const double tolerance = static_cast<double>(depth + 2) * FLT_EPSILON * ref.magnitude[i] +
                             FLT_EPSILON * std::abs(base);
    const double error = std::abs(static_cast<double>(got[i]) - expected);
    if (!(error <= tolerance) && ++failures <= 5) {
      ADD_FAILURE() << what << ": element " << i << " = " << got[i] << ", expected " << expected
                    << " within " << tolerance;
    }
  }
}

// in: below every lane count (5), ragged tails for 8 and 16 lanes and 32-column blocks (37, 131,
// 300 > one 256-deep packed panel), and a multiple of 64; out: a few rows, ragged 8-row blocks.
const LinearShape kFewRowsShapes[] = {
    {0, 5, 3}, {0, 37, 29}, {0, 300, 19}, {0, 131, 70}, {0, 64, 16}};

// linear_forward and linear_backward_input with 1 to threshold + 1 rows (the last one takes the
// packed path), against the double reference, for one kernel and weight dtype.
void check_few_rows_linear(DType dtype, uint64_t seed) {
  for (LinearShape s : kFewRowsShapes) {
    const StoredWeights w = make_stored_weights(dtype, s.out, s.in, ++seed);
    for (s.tokens = 1; s.tokens <= kGemmFewRowsDefault + 1; ++s.tokens) {
      SCOPED_TRACE(testing::Message() << "dtype=" << dtype_name(dtype) << " tokens=" << s.tokens
                                      << " in=" << s.in << " out=" << s.out);
      const auto x = random_values<float>(static_cast<size_t>(s.tokens * s.in), ++seed);
      const auto dy = random_values<float>(static_cast<size_t>(s.tokens * s.out), ++seed);
      const ReferenceSums y_ref = reference_linear(x, w.f32, s, false);
      const ReferenceSums dx_ref = reference_linear(dy, w.f32, s, true);
      for (Accumulate accumulate : {Accumulate::No, Accumulate::Yes}) {
        const bool add = accumulate == Accumulate::Yes;
        // Accumulate::No must not read the output: it starts NaN.
        const auto y0 =
            add ? random_values<float>(y_ref.value.size(), ++seed) : std::vector<float>{};
        GuardedBuffer<float> y =
            add ? GuardedBuffer<float>(y0) : GuardedBuffer<float>(y_ref.value.size());
        linear_forward(y.data(), x.data(), w.view(), s.tokens, s.in, s.out, accumulate);
        y.expect_guards_intact("y");
        expect_within_rounding(add ? "y accumulate" : "y", y.values(), y_ref, y0, s.in);

        const auto dx0 =
            add ? random_values<float>(dx_ref.value.size(), ++seed) : std::vector<float>{};
        GuardedBuffer<float> dx =
            add ? GuardedBuffer<float>(dx0) : GuardedBuffer<float>(dx_ref.value.size());
        linear_backward_input(dx.data(), dy.data(), w.view(), s.tokens, s.in, s.out, accumulate);
        dx.expect_guards_intact("dx");
        expect_within_rounding(add ? "dx accumulate" : "dx", dx.values(), dx_ref, dx0, s.out);
      }
    }
  }
}

TEST(FewRows, LinearMatchesDoubleForEveryKernelAndDtype) {
  ASSERT_EQ(gemm_few_rows_active(), kGemmFewRowsDefault);
  for (GemmKernel kernel : supported_kernels()) {
    SCOPED_TRACE(gemm_kernel_name(kernel));
    KernelScope scope(kernel);
    for (DType dtype : {DType::F32, DType::BF16, DType::F16}) check_few_rows_linear(dtype, 500);
  }
}

TEST(FewRows, AgreesWithThePackedPath) {
  // The same products summed in another order: within the rounding bound of each other.
  const LinearShape s{5, 300, 70};
  const StoredWeights w = make_stored_weights(DType::BF16, s.out, s.in, 61);
  const auto x = random_values<float>(static_cast<size_t>(s.tokens * s.in), 62);
  const auto dy = random_values<float>(static_cast<size_t>(s.tokens * s.out), 63);
  for (GemmKernel kernel : supported_kernels()) {
    SCOPED_TRACE(gemm_kernel_name(kernel));
    KernelScope scope(kernel);
    std::vector<float> y_few(static_cast<size_t>(s.tokens * s.out)), y_packed(y_few.size());
    std::vector<float> dx_few(static_cast<size_t>(s.tokens * s.in)), dx_packed(dx_few.size());
    linear_forward(y_few.data(), x.data(), w.view(), s.tokens, s.in, s.out, Accumulate::No);
    linear_backward_input(dx_few.data(), dy.data(), w.view(), s.tokens, s.in, s.out,
                          Accumulate::No);
    {
      FewRowsScope packed_only(0);
      linear_forward(y_packed.data(), x.data(), w.view(), s.tokens, s.in, s.out, Accumulate::No);
      linear_backward_input(dx_packed.data(), dy.data(), w.view(), s.tokens, s.in, s.out,
                            Accumulate::No);
    }
    // Both are within (k + 2)·ε·Σ|x·w| of the exact sum, so within twice that of each other.
    ReferenceSums y_bound = reference_linear(x, w.f32, s, false);
    ReferenceSums dx_bound = reference_linear(dy, w.f32, s, true);
    for (size_t i = 0; i < y_few.size(); ++i) y_bound.value[i] = y_packed[i];
    for (size_t i = 0; i < dx_few.size(); ++i) dx_bound.value[i] = dx_packed[i];
    for (double& m : y_bound.magnitude) m *= 2;
    for (double& m : dx_bound.magnitude) m *= 2;
    expect_within_rounding("y few rows vs packed", y_few, y_bound, {}, s.in);
    expect_within_rounding("dx few rows vs packed", dx_few, dx_bound, {}, s.out);
    EXPECT_NE(y_few, y_packed) << "expected different summation orders: is the path taken?";
  }
}

TEST(FewRows, ARowsResultDoesNotDependOnTheOtherRows) {
  // Decode steps batch 1 to 8 sequences: a sequence's logits must not depend on its batch.
  const LinearShape s{kGemmFewRowsDefault, 131, 70};
  const StoredWeights w = make_stored_weights(DType::BF16, s.out, s.in, 71);
  const auto x = random_values<float>(static_cast<size_t>(s.tokens * s.in), 72);
  const auto dy = random_values<float>(static_cast<size_t>(s.tokens * s.out), 73);
  for (GemmKernel kernel : supported_kernels()) {
    SCOPED_TRACE(gemm_kernel_name(kernel));
    KernelScope scope(kernel);
    std::vector<float> y_all(static_cast<size_t>(s.tokens * s.out));
    std::vector<float> dx_all(static_cast<size_t>(s.tokens * s.in));
    linear_forward(y_all.data(), x.data(), w.view(), s.tokens, s.in, s.out, Accumulate::No);
    linear_backward_input(dx_all.data(), dy.data(), w.view(), s.tokens, s.in, s.out,
                          Accumulate::No);
    for (int64_t t = 0; t < s.tokens; ++t) {
      std::vector<float> y_one(static_cast<size_t>(s.out)), dx_one(static_cast<size_t>(s.in));
      linear_forward(y_one.data(), x.data() + t * s.in, w.view(), 1, s.in, s.out, Accumulate::No);
      linear_backward_input(dx_one.data(), dy.data() + t * s.out, w.view(), 1, s.in, s.out,
                            Accumulate::No);
      EXPECT_TRUE(std::equal(y_one.begin(), y_one.end(), y_all.begin() + t * s.out)) << "row " << t;
      EXPECT_TRUE(std::equal(dx_one.begin(), dx_one.end(), dx_all.begin() + t * s.in))
          << "row " << t;
    }
  }
}

TEST(FewRows, DoubleMatchesNaive) {
  // The double instantiation (the finite-difference reference) takes the portable kernels.
  const LinearShape s{3, 37, 29};
  const TestWeights w = make_weights(s.out, s.in, 81);
  const auto x = random_values<double>(static_cast<size_t>(s.tokens * s.in), 82);
  std::vector<double> y(static_cast<size_t>(s.tokens * s.out));
  linear_forward(y.data(), x.data(), weight_bf16(w.bf16.data()), s.tokens, s.in, s.out,
                 Accumulate::No);
  for (int64_t t = 0; t < s.tokens; ++t) {
    for (int64_t o = 0; o < s.out; ++o) {
      double sum = 0.0;
      for (int64_t i = 0; i < s.in; ++i) sum += x[t * s.in + i] * w.f32[o * s.in + i];
      EXPECT_NEAR(y[t * s.out + o], sum, 64 * DBL_EPSILON * static_cast<double>(s.in))
          << t << "," << o;
    }
  }
}

TEST(FewRows, ThresholdSelection) {
  EXPECT_THROW(gemm_few_rows_select(-1), Error);
  {
    FewRowsScope off(0);
    EXPECT_EQ(gemm_few_rows_active(), 0);
  }
  EXPECT_EQ(gemm_few_rows_active(), kGemmFewRowsDefault);
}

}  // namespace
}  // namespace ll::cpu
