// Dropout with counter-based masks: element i of a tensor drawn under `key` is kept with
// probability 1 - p, decided by a hash of (key, i) alone. The same mask comes back every
// time the same (key, i) is asked for, whatever the thread order, so gradient checkpointing's
// recomputed forward and the backward see exactly the forward's mask without storing it.
#pragma once

#include <cstdint>

#include "backend/cpu/gemm.h"

namespace ll::cpu {

using ll::DropoutWindow;  // backend/ops.h: where a tensor-parallel slice sits in the mask

// Whether element `index` is kept under `key` with drop probability p: a 32-bit hash of the
// index and the key (two rounds of a 32-bit integer mixer, keyed by splitmix64(key)) at or
// above ceil(p · 2³²), so the keep rate is 1 - p to within 2⁻³². 32-bit lanes: the AVX-512
// kernel hashes 16 elements per instruction.
bool dropout_keeps(uint64_t key, int64_t index, double p);

// What a kept element is multiplied by: 1 / (1 - p) in fp32, as torch's dropout scales.
float dropout_scale(double p);

// out[n] = in · mask · dropout_scale(p). `out` may be `in`. p in [0, 1).
void dropout_forward(float* out, const float* in, int64_t n, double p, uint64_t key,
                     DropoutWindow window = {});

// dx[n] (+)= dy · mask · dropout_scale(p): the gradient of dropout_forward under the same key.
void dropout_backward(float* dx, const float* dy, int64_t n, double p, uint64_t key,
                      Accumulate accumulate, DropoutWindow window = {});

}  // namespace ll::cpu
