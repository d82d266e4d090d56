// See swiglu.h.
#include "backend/cpu/swiglu.h"

#include <cmath>
#include <string>

#include "core/error.h"

namespace ll::cpu {
namespace {

void check_count(const char* op, int64_t n) {
  check(n >= 0, op, "negative element count " + std::to_string(n));
}

constexpr int64_t kParallelMin = 16384;

}  // namespace

template <typename T>
void swiglu_forward(T* h, const T* gate, const T* up, int64_t n) {
  check_count("swiglu_forward", n);
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    // For large negative g, exp(-g) overflows to inf and silu -> -0: no NaN.
    const T g = gate[i];
    h[i] = g / (T(1) + std::exp(-g)) * up[i];
  }
}

template <typename T>
void swiglu_backward(T* dgate, T* dup, const T* dh, const T* gate, const T* up, int64_t n) {
  check_count("swiglu_backward", n);
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const T g = gate[i];
    const T u = up[i];
    const T d = dh[i];
    const T denominator = T(1) + std::exp(-g);
    const T s = T(1) / denominator;  // σ(g)
    const T silu = g / denominator;  // as the forward computes it
    // Evaluated in torch's order: silu_backward(dh · up, gate).
    dgate[i] = d * u * s * (T(1) + g * (T(1) - s));
    dup[i] = d * silu;
  }
}

template void swiglu_forward<float>(float*, const float*, const float*, int64_t);
template void swiglu_forward<double>(double*, const double*, const double*, int64_t);
template void swiglu_backward<float>(float*, float*, const float*, const float*, const float*,
                                     int64_t);
template void swiglu_backward<double>(double*, double*, const double*, const double*, const double*,
                                      int64_t);

}  // namespace ll::cpu
