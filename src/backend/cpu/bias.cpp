// See bias.h.
#include "backend/cpu/bias.h"

#include <string>
#include <vector>

namespace ll::cpu {

template <typename T>
void bias_add(T* y, WeightView bias, int64_t tokens, int64_t out) {
  check(tokens >= 0 && out >= 0, "bias_add",
        "negative size: tokens " + std::to_string(tokens) + ", out " + std::to_string(out));
  std::vector<T> b(static_cast<size_t>(out));  // converted once, not per token
  weight_load(b.data(), bias, 0, out);
#pragma omp parallel for schedule(static) if (tokens * out >= 65536)
  for (int64_t t = 0; t < tokens; ++t) {
    T* row = y + t * out;
    for (int64_t o = 0; o < out; ++o) row[o] += b[static_cast<size_t>(o)];
  }
}

template void bias_add<float>(float*, WeightView, int64_t, int64_t);
template void bias_add<double>(double*, WeightView, int64_t, int64_t);

}  // namespace ll::cpu
