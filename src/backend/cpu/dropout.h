// Dropout with counter-based masks: element i of a tensor drawn under `key` is kept with
// probability 1 - p, decided by a hash of (key, i) alone. The same mask comes back every
// time the same (key, i) is asked for, whatever the thread order, so gradient checkpointing's
// recomputed forward and the backward see exactly the forward's mask without storing it.
#pragma once

#include <cstdint>

#include "backend/cpu/gemm.h"

namespace ll::cpu {

// A uniform double in [0, 1) from a 64-bit key (splitmix64 finaliser, 53 bits).
double dropout_uniform(uint64_t key);

using ll::DropoutWindow;  // backend/ops.h: where a tensor-parallel slice sits in the mask

// Whether element `index` is kept under `key` with drop probability p.
inline bool dropout_keeps(uint64_t key, int64_t index, double p) {
  return dropout_uniform(key ^ (static_cast<uint64_t>(index) * 0x2545f4914f6cdd1dull)) >= p;
}

// out[n] = in · mask / (1 - p). `out` may be `in`. p in [0, 1).
void dropout_forward(float* out, const float* in, int64_t n, double p, uint64_t key,
                     DropoutWindow window = {});

// dx[n] (+)= dy · mask / (1 - p): the gradient of dropout_forward under the same key.
void dropout_backward(float* dx, const float* dy, int64_t n, double p, uint64_t key,
                      Accumulate accumulate, DropoutWindow window = {});

}  // namespace ll::cpu
