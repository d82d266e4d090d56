// See embedding.h.
#include "backend/cpu/embedding.h"

#include <string>

#include "core/error.h"

namespace ll::cpu {

template <typename T>
void embedding_forward(T* out, const int32_t* ids, WeightView table, int64_t tokens, int64_t vocab,
                       int64_t hidden) {
  check(tokens >= 0 && vocab > 0 && hidden > 0, "embedding",
        "bad sizes: tokens=" + std::to_string(tokens) + " vocab=" + std::to_string(vocab) +
            " hidden=" + std::to_string(hidden));
  for (int64_t t = 0; t < tokens; ++t) {
    check(ids[t] >= 0 && ids[t] < vocab, "embedding",
          "token id " + std::to_string(ids[t]) + " at position " + std::to_string(t) +
              " is outside the vocabulary of " + std::to_string(vocab));
  }
#pragma omp parallel for schedule(static) if (tokens * hidden >= 65536)
  for (int64_t t = 0; t < tokens; ++t) {
    weight_load(out + t * hidden, table, int64_t{ids[t]} * hidden, hidden);
  }
}

template void embedding_forward<float>(float*, const int32_t*, WeightView, int64_t, int64_t,
                                       int64_t);
template void embedding_forward<double>(double*, const int32_t*, WeightView, int64_t, int64_t,
                                        int64_t);

}  // namespace ll::cpu
