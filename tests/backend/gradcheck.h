// Helpers shared by the backend op tests:
//  - central finite-difference gradient checks in double (every backward is tested this way);
//  - guarded output buffers: sentinel elements before and after each output, checked to stay
//    untouched (llama.cpp's test-backend-ops does the same), with the body poisoned by NaN so
//    an op that reads an output it should only write shows up as NaN;
//  - reproducible random inputs and an element-wise comparison that names the first misses.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace ll::test {

// n values uniform in [lo, hi), the same for a given seed.
template <typename T = double>
std::vector<T> random_values(size_t n, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<T> out(n);
  for (T& v : out) v = static_cast<T>(dist(rng));
  return out;
}

template <typename To, typename From>
std::vector<To> convert(const std::vector<From>& values) {
  return std::vector<To>(values.begin(), values.end());
}

// Σ a ⊙ b in double.
template <typename A, typename B>
double dot(const std::vector<A>& a, const std::vector<B>& b) {
  double sum = 0.0;
  for (size_t i = 0; i < a.size(); ++i)
    sum += static_cast<double>(a[i]) * static_cast<double>(b[i]);
  return sum;
}

// ---- finite differences -------------------------------------------------------------------
//
// For each element i of x: g_fd = (L(x + h·e_i) - L(x - h·e_i)) / 2h, and require
//   |g_fd - g_i| <= tolerance · max(1, |g_i|)
// where g is the analytic gradient. Ops with an output y are checked through
// L(x) = Σ dy ⊙ y(x) for a random dy, whose gradient is exactly what the op's backward
// computes from dy.
//
// Why h = 1e-5 and tolerance 1e-6: in double, the central difference's truncation error is
// h²/6 · |L'''| ≈ 2e-11 · |L'''| and its rounding error about ε·|L|/h ≈ 2e-11 · |L|
// (ε = 2.2e-16). The test inputs are O(1) and small, so |L| and |L'''| stay below ~100 and
// the finite difference is good to ~1e-8: 100× inside the tolerance. A wrong backward (a
// missing term, a wrong sign or index) is off by O(|g|), 10⁵× outside it.
struct GradcheckOptions {
  double step = 1e-5;
  double tolerance = 1e-6;
};

// Returns the largest |g_fd - g| / max(1, |g|); adds a test failure for each element outside
// the tolerance (the first 10 named).
inline double expect_gradient_matches(const std::string& what, std::vector<double> x,
                                      const std::function<double(const std::vector<double>&)>& loss,
                                      const std::vector<double>& analytic,
                                      GradcheckOptions options = {}) {
  EXPECT_EQ(x.size(), analytic.size()) << what;
  double worst = 0.0;
  int failures = 0;
  for (size_t i = 0; i < x.size() && i < analytic.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + options.step;
    const double plus = loss(x);
    x[i] = saved - options.step;
    const double minus = loss(x);
    x[i] = saved;
    const double numeric = (plus - minus) / (2.0 * options.step);
    const double error = std::abs(numeric - analytic[i]) / std::max(1.0, std::abs(analytic[i]));
    worst = std::max(worst, error);
    if (!(error <= options.tolerance) && ++failures <= 10) {
      ADD_FAILURE() << what << ": gradient element " << i << " analytic " << analytic[i]
                    << " finite difference " << numeric << " (scaled error " << error << ")";
    }
  }
  return worst;
}

// ---- guarded buffers ----------------------------------------------------------------------

// A quiet NaN with a payload that arithmetic does not produce on its own (x86's default NaN
// is 0xffc00000), so the guards are told apart from anything an op writes, and an op that
// reads a guard into its results turns them into NaN.
template <typename T>
T guard_sentinel() {
  if constexpr (sizeof(T) == 4) {
    const uint32_t bits = 0x7fc5a5a5u;
    T value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
  } else {
    const uint64_t bits = 0x7ffa5a5a5a5a5a5aull;
    T value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
  }
}

// n elements with kGuard sentinel elements on each side. The body starts as NaN (or `fill`).
template <typename T>
class GuardedBuffer {
 public:
  static constexpr size_t kGuard = 64;

  explicit GuardedBuffer(size_t n, T fill = std::numeric_limits<T>::quiet_NaN())
      : storage_(n + 2 * kGuard, guard_sentinel<T>()), n_(n) {
    std::fill_n(storage_.begin() + kGuard, n, fill);
  }
  explicit GuardedBuffer(const std::vector<T>& values) : GuardedBuffer(values.size()) {
    std::copy(values.begin(), values.end(), storage_.begin() + kGuard);
  }

  T* data() { return storage_.data() + kGuard; }
  const T* data() const { return storage_.data() + kGuard; }
  size_t size() const { return n_; }
  T& operator[](size_t i) { return storage_[kGuard + i]; }
  T operator[](size_t i) const { return storage_[kGuard + i]; }
  std::vector<T> values() const {
    return std::vector<T>(storage_.begin() + kGuard, storage_.begin() + kGuard + n_);
  }

  // Adds a failure naming the first overwritten guard element.
  void expect_guards_intact(const std::string& what) const {
    const T sentinel = guard_sentinel<T>();
    for (size_t i = 0; i < storage_.size(); ++i) {
      if (i >= kGuard && i < kGuard + n_) continue;
      if (std::memcmp(&storage_[i], &sentinel, sizeof(T)) != 0) {
        const long offset =
            i < kGuard ? -static_cast<long>(kGuard - i) : static_cast<long>(i - kGuard - n_);
        ADD_FAILURE() << what << ": guard element " << offset << (offset < 0 ? " before" : " after")
                      << " the buffer was overwritten";
        return;
      }
    }
  }

 private:
  std::vector<T> storage_;
  size_t n_;
};

// ---- comparisons --------------------------------------------------------------------------

// Requires |actual[i] - expected[i]| <= atol + rtol·|expected[i]| (NaN fails); names the first
// 10 misses. Returns the largest |actual - expected|.
template <typename A, typename E>
double expect_all_near(const std::string& what, const A& actual, const E& expected, double atol,
                       double rtol) {
  EXPECT_EQ(actual.size(), expected.size()) << what;
  double worst = 0.0;
  int failures = 0;
  for (size_t i = 0; i < actual.size() && i < expected.size(); ++i) {
    const double a = static_cast<double>(actual[i]);
    const double e = static_cast<double>(expected[i]);
    const double diff = std::abs(a - e);
    if (!(diff <= atol + rtol * std::abs(e))) {
      worst = std::isnan(diff) ? diff : std::max(worst, diff);
      if (++failures <= 10) {
        ADD_FAILURE() << what << ": element " << i << " is " << a << ", expected " << e;
      }
    } else {
      worst = std::max(worst, diff);
    }
  }
  return worst;
}

}  // namespace ll::test
