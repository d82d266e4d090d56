// See dropout.h.
#include "backend/cpu/dropout.h"

#include "core/error.h"
#include "core/random.h"

namespace ll::cpu {

double dropout_uniform(uint64_t key) {
  return unit_interval(splitmix64(key));
}

namespace {

void check_probability(double p) {
  if (!(p >= 0.0 && p < 1.0))
    fail("dropout", "probability must be in [0, 1), got " + std::to_string(p));
}

}  // namespace

void dropout_forward(float* out, const float* in, int64_t n, double p, uint64_t key,
                     DropoutWindow window) {
  check_probability(p);
  const double keep_scale = 1.0 / (1.0 - p);
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    out[i] =
        dropout_keeps(key, window.mask_index(i), p) ? static_cast<float>(in[i] * keep_scale) : 0.0f;
  }
}

void dropout_backward(float* dx, const float* dy, int64_t n, double p, uint64_t key,
                      Accumulate accumulate, DropoutWindow window) {
  check_probability(p);
  const double keep_scale = 1.0 / (1.0 - p);
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float g =
        dropout_keeps(key, window.mask_index(i), p) ? static_cast<float>(dy[i] * keep_scale) : 0.0f;
    dx[i] = accumulate == Accumulate::Yes ? dx[i] + g : g;
  }
}

}  // namespace ll::cpu
