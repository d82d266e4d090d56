// A frozen bias added to a linear layer's output, as torch.nn.Linear adds it (Qwen2's q_proj,
// k_proj and v_proj):
//
//   y[t, o] += b[o]        for every token t
//
// with b[out] f32/bf16/f16 as the checkpoint stores it, converted exactly to T. The bias is
// frozen, so there is no backward: dy passes on to x unchanged and b gets no gradient.
#pragma once

#include <cstdint>

#include "backend/cpu/weights.h"

namespace ll::cpu {

// y[tokens, out] += bias[out].
template <typename T>
void bias_add(T* y, WeightView bias, int64_t tokens, int64_t out);

}  // namespace ll::cpu
