// See rmsnorm.h.
#include "backend/cpu/rmsnorm.h"

#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"

namespace ll::cpu {
namespace {

// Σ a[i]·b[i] over 16 independent lanes, then the lanes pairwise: vectorisable without
// reassociating (no fast-math), and a shorter rounding chain than one running sum.
template <typename T>
T dot_lanes(const T* a, const T* b, int64_t n) {
  constexpr int kLanes = 16;
  T lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) lanes[l] += a[i + l] * b[i + l];
  }
  for (int l = 0; i < n; ++i, ++l) lanes[l] += a[i] * b[i];
  for (int width = kLanes / 2; width > 0; width /= 2) {
    for (int l = 0; l < width; ++l) lanes[l] += lanes[l + width];
  }
  return lanes[0];
}

void check_sizes(const char* op, int64_t tokens, int64_t hidden) {
  check(tokens >= 0 && hidden > 0, op,
        "bad sizes: tokens=" + std::to_string(tokens) + " hidden=" + std::to_string(hidden));
}

}  // namespace

template <typename T>
void rmsnorm_forward(T* y, T* rstd, const T* x, WeightView weight, int64_t tokens, int64_t hidden,
                     double eps) {
  check_sizes("rmsnorm_forward", tokens, hidden);
  std::vector<T> w(static_cast<size_t>(hidden));  // [hidden] T
  weight_load(w.data(), weight, 0, hidden);
  const T eps_t = static_cast<T>(eps);
#pragma omp parallel for schedule(static) if (tokens * hidden >= 16384)
  for (int64_t t = 0; t < tokens; ++t) {
    const T* xt = x + t * hidden;
    T* yt = y + t * hidden;
    const T mean_square = dot_lanes(xt, xt, hidden) / static_cast<T>(hidden);
    const T r = T(1) / std::sqrt(mean_square + eps_t);  // torch.rsqrt is 1/sqrt
    rstd[t] = r;
    for (int64_t c = 0; c < hidden; ++c) yt[c] = w[c] * (xt[c] * r);
  }
}

template <typename T>
void rmsnorm_backward(T* dx, const T* dy, const T* x, const T* rstd, WeightView weight,
                      int64_t tokens, int64_t hidden, Accumulate accumulate) {
  check_sizes("rmsnorm_backward", tokens, hidden);
  std::vector<T> w(static_cast<size_t>(hidden));  // [hidden] T
  weight_load(w.data(), weight, 0, hidden);
#pragma omp parallel if (tokens * hidden >= 16384)
  {
    std::vector<T> wdy(static_cast<size_t>(hidden));  // [hidden] T: w ⊙ dy of one token
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tokens; ++t) {
      const T* xt = x + t * hidden;
      const T* dyt = dy + t * hidden;
      T* dxt = dx + t * hidden;
      const T r = rstd[t];
      for (int64_t c = 0; c < hidden; ++c) wdy[c] = w[c] * dyt[c];
      // d(rstd)/dx[c] = -rstd³ · x[c] / C, through every output of the row.
      const T k = dot_lanes(wdy.data(), xt, hidden) / static_cast<T>(hidden) * r * r * r;
      if (accumulate == Accumulate::Yes) {
        for (int64_t c = 0; c < hidden; ++c) dxt[c] += r * wdy[c] - xt[c] * k;
      } else {
        for (int64_t c = 0; c < hidden; ++c) dxt[c] = r * wdy[c] - xt[c] * k;
      }
    }
  }
}

template void rmsnorm_forward<float>(float*, float*, const float*, WeightView, int64_t, int64_t,
                                     double);
template void rmsnorm_forward<double>(double*, double*, const double*, WeightView, int64_t, int64_t,
                                      double);
template void rmsnorm_backward<float>(float*, const float*, const float*, const float*, WeightView,
                                      int64_t, int64_t, Accumulate);
template void rmsnorm_backward<double>(double*, const double*, const double*, const double*,
                                       WeightView, int64_t, int64_t, Accumulate);

}  // namespace ll::cpu
