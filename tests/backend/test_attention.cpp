// Causal GQA attention within packed documents (src/backend/cpu/attention.h):
// - the tiled forward against a naive reference written here (full score matrix, mask,
//   softmax, in double), on awkward shapes: T = 1, T not a multiple of the 64-token block,
//   GQA groups 1/2/4, head_dim 8/16/64, one or several documents including length-1 ones;
// - the backward against central finite differences of the double instantiation, and the
//   float backward against the double one;
// - the fp32 checks at every vector-instruction level the CPU has (baseline SSE2, AVX2, AVX-512);
// - guard elements after every output buffer, outputs pre-filled with NaN (written, not
//   accumulated).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "backend/cpu/attention.h"
#include "core/error.h"

namespace ll {
namespace {

constexpr int64_t kGuard = 16;
constexpr double kGuardValue = -12345.5;

// A buffer of n values (NaN, so anything not written shows) followed by kGuard sentinels.
template <typename T>
struct Guarded {
  explicit Guarded(int64_t n) : size(n), data(n + kGuard, std::numeric_limits<T>::quiet_NaN()) {
    std::fill(data.begin() + n, data.end(), static_cast<T>(kGuardValue));
  }
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

struct Case {
  int64_t tokens;
  int64_t heads;
  int64_t kv_heads;
  int64_t head_dim;
  std::vector<uint32_t> starts;  // document starts; empty = one document
};

std::string describe(const Case& c) {
  std::string text = "T=" + std::to_string(c.tokens) + " heads=" + std::to_string(c.heads) +
                     " kv=" + std::to_string(c.kv_heads) + " d=" + std::to_string(c.head_dim) +
                     " starts={";
  for (uint32_t s : c.starts) text += std::to_string(s) + ",";
  return text + "}";
}

cpu::AttentionShape shape_of(const Case& c) {
  return {c.tokens, c.heads, c.kv_heads, c.head_dim};
}

// Inputs q [T, heads*d], k/v [T, kv*d], N(0, 1) scaled so scores spread over a few units.
template <typename T>
struct Inputs {
  std::vector<T> q, k, v;
};

template <typename T>
Inputs<T> random_inputs(const Case& c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  Inputs<T> in;
  const auto fill = [&](std::vector<T>& x, int64_t n) {
    x.resize(n);
    for (auto& value : x) value = static_cast<T>(normal(rng));
  };
  fill(in.q, c.tokens * c.heads * c.head_dim);
  fill(in.k, c.tokens * c.kv_heads * c.head_dim);
  fill(in.v, c.tokens * c.kv_heads * c.head_dim);
  return in;
}

// The plain definition in double: full [T, T] scores per head, -inf outside the causal
// document window, softmax, P·V. out [T, heads*d], lse [heads, T].
template <typename T>
void naive_attention(std::vector<double>& out, std::vector<double>& lse, const Inputs<T>& in,
                     const Case& c) {
  const int64_t n = c.tokens, d = c.head_dim, group = c.heads / c.kv_heads;
  std::vector<int64_t> doc_start(n, 0);
  for (int64_t i = 0; i < n; ++i) {
    for (uint32_t s : c.starts) {
      if (s <= i) doc_start[i] = s;
    }
  }
  out.assign(n * c.heads * d, 0.0);
  lse.assign(c.heads * n, 0.0);
  std::vector<double> scores(n * n);  // [T, T]
  for (int64_t h = 0; h < c.heads; ++h) {
    const int64_t g = h / group;
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        double dot = 0;
        for (int64_t e = 0; e < d; ++e) {
          dot +=
              double{in.q[(i * c.heads + h) * d + e]} * double{in.k[(j * c.kv_heads + g) * d + e]};
        }
        const bool visible = j <= i && j >= doc_start[i];
        scores[i * n + j] =
            visible ? dot / std::sqrt(double(d)) : -std::numeric_limits<double>::infinity();
      }
      double max = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < n; ++j) max = std::max(max, scores[i * n + j]);
      double sum = 0;
      for (int64_t j = 0; j < n; ++j) sum += std::exp(scores[i * n + j] - max);
      lse[h * n + i] = max + std::log(sum);
      for (int64_t j = 0; j < n; ++j) {
        const double p = std::exp(scores[i * n + j] - max) / sum;
        for (int64_t e = 0; e < d; ++e) {
          out[(i * c.heads + h) * d + e] += p * double{in.v[(j * c.kv_heads + g) * d + e]};
        }
      }
    }
  }
}

std::vector<Case> forward_cases() {
  return {
      {1, 1, 1, 8, {}},
      {1, 4, 1, 16, {0}},
      {5, 2, 2, 8, {}},                                // group 1
      {63, 4, 2, 16, {0, 20}},                         // group 2, under one block
      {64, 4, 1, 64, {}},                              // group 4, exactly one block
      {65, 8, 2, 64, {0, 64}},                         // last document of length 1
      {130, 4, 1, 16, {0, 1, 40, 41, 100}},            // length-1 documents at 0 and 40
      {150, 2, 2, 8, {0, 63, 64, 65, 128, 129, 149}},  // starts around block edges
      {200, 6, 3, 64, {}},                             // three key blocks
      {200, 4, 2, 16, {0, 70, 71, 190}},
      {300, 9, 3, 64, {0, 17, 150, 151, 290}},  // smol-135m heads: group 3
  };
}

template <typename T>
void check_forward(const Case& c, double tolerance) {
  SCOPED_TRACE(describe(c));
  const Inputs<T> in = random_inputs<T>(c, 11);
  Guarded<T> out(c.tokens * c.heads * c.head_dim);
  Guarded<T> lse(c.heads * c.tokens);
  cpu::attention_forward<T>(out.ptr(), lse.ptr(), in.q.data(), in.k.data(), in.v.data(),
                            shape_of(c), c.starts);
  EXPECT_TRUE(out.guards_intact());
  EXPECT_TRUE(lse.guards_intact());
  std::vector<double> out_ref, lse_ref;
  naive_attention(out_ref, lse_ref, in, c);
  double out_error = 0, lse_error = 0;
  for (int64_t i = 0; i < out.size; ++i) {
    out_error = std::max(out_error, std::fabs(double{out.data[i]} - out_ref[i]));
  }
  for (int64_t i = 0; i < lse.size; ++i) {
    lse_error = std::max(lse_error, std::fabs(double{lse.data[i]} - lse_ref[i]));
  }
  EXPECT_LE(out_error, tolerance);  // NaN (an unwritten element) fails this too
  EXPECT_LE(lse_error, tolerance);
}

// Every vector-instruction level this CPU has (each is a separately compiled kernel).
std::vector<cpu::CpuSimd> simd_levels() {
  std::vector<cpu::CpuSimd> levels;
  for (cpu::CpuSimd level : {cpu::CpuSimd::Baseline, cpu::CpuSimd::Avx2, cpu::CpuSimd::Avx512}) {
    if (static_cast<int>(level) <= static_cast<int>(cpu::attention_simd_best())) {
      levels.push_back(level);
    }
  }
  return levels;
}

const char* simd_name(cpu::CpuSimd level) {
  switch (level) {
    case cpu::CpuSimd::Baseline:
      return "baseline";
    case cpu::CpuSimd::Avx2:
      return "avx2";
    case cpu::CpuSimd::Avx512:
      return "avx512";
  }
  return "?";
}

// Runs the body at one level, restoring the best level afterwards.
class SimdLevel {
 public:
  explicit SimdLevel(cpu::CpuSimd level) : trace_(__FILE__, __LINE__, simd_name(level)) {
    cpu::attention_set_simd(level);
  }
  ~SimdLevel() { cpu::attention_set_simd(cpu::attention_simd_best()); }
  SimdLevel(const SimdLevel&) = delete;
  SimdLevel& operator=(const SimdLevel&) = delete;

 private:
  ::testing::ScopedTrace trace_;
};

// fp32: scores are dot products of up to 64 N(0,1) products (|S| ~ 10 before scaling), each
// rounding ~6e-8 relative; exp (1 ULP), sum and normalise add a few ULPs. Outputs are convex
// combinations of N(0,1) values; the largest error seen at any level is 1.7e-6, so 2e-5
// absolute leaves 10x headroom, yet a masking or rescaling bug moves outputs by O(0.1).
// fp64: the same algorithm, errors ~1e-15.
TEST(AttentionForward, MatchesNaiveReferenceFloat) {
  for (cpu::CpuSimd level : simd_levels()) {
    SimdLevel use(level);
    for (const Case& c : forward_cases()) check_forward<float>(c, 2e-5);
  }
}

TEST(AttentionForward, MatchesNaiveReferenceDouble) {
  for (const Case& c : forward_cases()) check_forward<double>(c, 1e-12);
}

// No document starts and {0} are the same plain causal attention; a document boundary
// changes the rows after it and nothing before it.
TEST(AttentionForward, DocumentsOnlyCutAttention) {
  const Case one{70, 2, 1, 8, {}};
  const Case two{70, 2, 1, 8, {0, 30}};
  const Inputs<float> in = random_inputs<float>(one, 3);
  std::vector<float> out_a(70 * 16), out_b(70 * 16), out_c(70 * 16), lse(2 * 70);
  cpu::attention_forward<float>(out_a.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(),
                                shape_of(one), {});
  const std::vector<uint32_t> zero = {0};
  cpu::attention_forward<float>(out_b.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(),
                                shape_of(one), zero);
  cpu::attention_forward<float>(out_c.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(),
                                shape_of(two), two.starts);
  EXPECT_EQ(out_a, out_b);
  for (int64_t i = 0; i < 30 * 16; ++i) ASSERT_EQ(out_a[i], out_c[i]);
  EXPECT_NE(out_a[30 * 16 + 5], out_c[30 * 16 + 5]);
  // The first token of a document sees only itself: its output is its own v row.
  for (int64_t e = 0; e < 8; ++e) EXPECT_FLOAT_EQ(out_c[30 * 16 + e], in.v[30 * 8 + e]);
}

TEST(AttentionSimd, AcceptsExactlyTheLevelsTheCpuHas) {
  const cpu::CpuSimd best = cpu::attention_simd_best();
  for (cpu::CpuSimd level : {cpu::CpuSimd::Baseline, cpu::CpuSimd::Avx2, cpu::CpuSimd::Avx512}) {
    if (static_cast<int>(level) <= static_cast<int>(best)) {
      EXPECT_NO_THROW(cpu::attention_set_simd(level)) << simd_name(level);
    } else {
      EXPECT_THROW(cpu::attention_set_simd(level), Error) << simd_name(level);
    }
  }
  cpu::attention_set_simd(best);
}

TEST(AttentionForward, RejectsBadShapesAndStarts) {
  std::vector<float> buf(64, 0.0f);
  const auto run = [&](cpu::AttentionShape shape, std::vector<uint32_t> starts) {
    cpu::attention_forward<float>(buf.data(), buf.data(), buf.data(), buf.data(), buf.data(), shape,
                                  starts);
  };
  EXPECT_THROW(run({4, 3, 2, 4}, {}), Error);         // 3 heads, 2 kv heads
  EXPECT_THROW(run({4, 2, 1, 0}, {}), Error);         // head_dim 0
  EXPECT_THROW(run({4, 2, 1, 4}, {1, 2}), Error);     // first start not 0
  EXPECT_THROW(run({4, 2, 1, 4}, {0, 2, 2}), Error);  // not ascending
  EXPECT_THROW(run({4, 2, 1, 4}, {0, 4}), Error);     // start past the end
  EXPECT_NO_THROW(run({0, 2, 1, 4}, {}));             // nothing to do
}

// Gradients of L = sum(w * out) through the double instantiation, against central
// differences. With h = 1e-5 the truncation error is ~h^2 |L'''| / 6 and the rounding error
// ~1e-16 |L| / h ~ 1e-10 (|L| ~ 10); the largest difference seen is 4e-9, so 1e-7 absolute
// leaves 25x headroom, while a missing term (D, the group sum, a masked key) is O(1e-2..1).
void check_backward_fd(const Case& c) {
  SCOPED_TRACE(describe(c));
  const cpu::AttentionShape shape = shape_of(c);
  Inputs<double> in = random_inputs<double>(c, 5);
  std::mt19937 rng(9);
  std::normal_distribution<double> normal;
  std::vector<double> w(c.tokens * c.heads * c.head_dim);  // dL/d_out
  for (auto& value : w) value = normal(rng);

  std::vector<double> out(w.size()), lse(c.heads * c.tokens);
  const auto loss = [&]() {
    cpu::attention_forward<double>(out.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(),
                                   shape, c.starts);
    double sum = 0;
    for (size_t i = 0; i < w.size(); ++i) sum += w[i] * out[i];
    return sum;
  };
  loss();
  Guarded<double> d_q(in.q.size()), d_k(in.k.size()), d_v(in.v.size());
  cpu::attention_backward<double>(d_q.ptr(), d_k.ptr(), d_v.ptr(), w.data(), in.q.data(),
                                  in.k.data(), in.v.data(), out.data(), lse.data(), shape,
                                  c.starts);
  EXPECT_TRUE(d_q.guards_intact());
  EXPECT_TRUE(d_k.guards_intact());
  EXPECT_TRUE(d_v.guards_intact());

  const double h = 1e-5;
  for (auto [name, x, grad] :
       {std::tuple{"q", &in.q, &d_q}, std::tuple{"k", &in.k, &d_k}, std::tuple{"v", &in.v, &d_v}}) {
    double max_error = 0;
    for (size_t i = 0; i < x->size(); ++i) {
      const double saved = (*x)[i];
      (*x)[i] = saved + h;
      const double plus = loss();
      (*x)[i] = saved - h;
      const double minus = loss();
      (*x)[i] = saved;
      const double numeric = (plus - minus) / (2 * h);
      max_error = std::max(max_error, std::fabs(grad->data[i] - numeric));
      ASSERT_NEAR(grad->data[i], numeric, 1e-7) << name << "[" << i << "]";
    }
    ::testing::Test::RecordProperty(std::string("max_fd_error_") + name, std::to_string(max_error));
  }
}

TEST(AttentionBackward, MatchesFiniteDifferences) {
  check_backward_fd({1, 2, 1, 8, {}});
  check_backward_fd({9, 4, 2, 8, {0, 3, 4}});     // a length-1 document, group 2
  check_backward_fd({7, 4, 1, 16, {}});           // group 4
  check_backward_fd({70, 2, 1, 8, {0, 5, 66}});   // crosses the 64-key block
  check_backward_fd({67, 2, 2, 8, {0, 64, 65}});  // group 1, documents at the block edge
}

template <typename A, typename B>
std::vector<std::pair<A, B>> product(const std::vector<A>& as, const std::vector<B>& bs) {
  std::vector<std::pair<A, B>> pairs;
  for (const A& a : as) {
    for (const B& b : bs) pairs.emplace_back(a, b);
  }
  return pairs;
}

// The float backward against the double one (same inputs rounded to float) on larger
// shapes, at every vector-instruction level: gradients are sums of up to T products of O(1)
// terms; fp32 rounding (and the 1-ULP vector expf) leaves at most 7e-7 of the largest
// gradient here, so 1e-5 of it is the bar, while a wrong term is O(1e-2) or more.
TEST(AttentionBackward, FloatMatchesDouble) {
  const std::vector<Case> cases = {
      {1, 1, 1, 8, {}},
      {130, 4, 1, 16, {0, 1, 40, 41, 100}},
      {200, 6, 3, 64, {}},
      {150, 8, 2, 64, {0, 63, 64, 65, 128, 149}},
      {300, 9, 3, 64, {0, 17, 150, 151, 290}},
  };
  for (const auto& [level, c] : product(simd_levels(), cases)) {
    SimdLevel use(level);
    SCOPED_TRACE(describe(c));
    const cpu::AttentionShape shape = shape_of(c);
    const Inputs<double> in = random_inputs<double>(c, 21);
    Inputs<float> in_f;
    in_f.q.assign(in.q.begin(), in.q.end());
    in_f.k.assign(in.k.begin(), in.k.end());
    in_f.v.assign(in.v.begin(), in.v.end());
    std::mt19937 rng(4);
    std::normal_distribution<double> normal;
    std::vector<double> w(in.q.size());
    for (auto& value : w) value = normal(rng);
    const std::vector<float> w_f(w.begin(), w.end());

    std::vector<double> out(w.size()), lse(c.heads * c.tokens);
    std::vector<double> d_q(in.q.size()), d_k(in.k.size()), d_v(in.v.size());
    cpu::attention_forward<double>(out.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(),
                                   shape, c.starts);
    cpu::attention_backward<double>(d_q.data(), d_k.data(), d_v.data(), w.data(), in.q.data(),
                                    in.k.data(), in.v.data(), out.data(), lse.data(), shape,
                                    c.starts);
    std::vector<float> out_f(w.size()), lse_f(c.heads * c.tokens);
    Guarded<float> d_q_f(in.q.size()), d_k_f(in.k.size()), d_v_f(in.v.size());
    cpu::attention_forward<float>(out_f.data(), lse_f.data(), in_f.q.data(), in_f.k.data(),
                                  in_f.v.data(), shape, c.starts);
    cpu::attention_backward<float>(d_q_f.ptr(), d_k_f.ptr(), d_v_f.ptr(), w_f.data(), in_f.q.data(),
                                   in_f.k.data(), in_f.v.data(), out_f.data(), lse_f.data(), shape,
                                   c.starts);
    for (auto [name, ref, got] : {std::tuple{"d_q", &d_q, &d_q_f}, std::tuple{"d_k", &d_k, &d_k_f},
                                  std::tuple{"d_v", &d_v, &d_v_f}}) {
      EXPECT_TRUE(got->guards_intact()) << name;
      double scale = 0, error = 0;
      for (size_t i = 0; i < ref->size(); ++i) {
        scale = std::max(scale, std::fabs((*ref)[i]));
        error = std::max(error, std::fabs(double{got->data[i]} - (*ref)[i]));
      }
      EXPECT_LE(error, 1e-5 * scale) << name;  // NaN fails too
    }
  }
}

}  // namespace
}  // namespace ll
