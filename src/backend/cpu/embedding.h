// Token embedding lookup: out[t] = table[ids[t]], converted to the activation type T.
// The table is frozen (LoRA does not train it), so there is no backward.
#pragma once

#include <cstdint>

#include "backend/cpu/weights.h"

namespace ll::cpu {

// out[tokens, hidden] from ids[tokens] int32 and table[vocab, hidden] (f32/bf16/f16).
// Every id is checked before anything is written: one outside [0, vocab) throws ll::Error
// naming the id, its position and the vocabulary size.
template <typename T>
void embedding_forward(T* out, const int32_t* ids, WeightView table, int64_t tokens, int64_t vocab,
                       int64_t hidden);

}  // namespace ll::cpu
