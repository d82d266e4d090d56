// A frozen base weight as the checkpoint stores it: a row-major matrix (or vector) of f32,
// bf16 or f16 elements, usually pointing into the memory-mapped safetensors file. The CPU ops
// read it through this view and convert to the activation type T (float or double) as they
// go (per tile in the GEMMs), so a bf16 model is never expanded to f32 in memory.
//
// The view carries no shape: the op's size arguments say what it is (W[out, in] for a linear
// layer, [vocab, hidden] for an embedding table, [hidden] for a norm weight), and the model
// layer checks those against the safetensors header when it loads the weights.
#pragma once

#include <cstdint>

#include "backend/ops.h"
#include "core/dtype.h"
#include "core/error.h"

namespace ll::cpu {

using ll::MemorySpace;
using ll::WeightView;  // backend/ops.h

inline WeightView weight_f32(const float* data) {
  return {data, DType::F32};
}
inline WeightView weight_bf16(const uint16_t* data) {
  return {data, DType::BF16};
}

// out[i] = W[offset + i] for i < count, converted to T (exactly: every bf16/f16/f32 value is
// representable in float and double).
template <typename T>
void weight_load(T* out, WeightView w, int64_t offset, int64_t count) {
  switch (w.dtype) {
    case DType::F32: {
      const float* src = static_cast<const float*>(w.data) + offset;
      for (int64_t i = 0; i < count; ++i) out[i] = static_cast<T>(src[i]);
      return;
    }
    case DType::BF16: {
      const uint16_t* src = static_cast<const uint16_t*>(w.data) + offset;
      for (int64_t i = 0; i < count; ++i) out[i] = static_cast<T>(bf16_to_f32(src[i]));
      return;
    }
    case DType::F16: {
      const uint16_t* src = static_cast<const uint16_t*>(w.data) + offset;
      for (int64_t i = 0; i < count; ++i) out[i] = static_cast<T>(f16_to_f32(src[i]));
      return;
    }
    case DType::I32:
    case DType::I64:
      break;
  }
  fail("weights", "unknown weight dtype");
}

}  // namespace ll::cpu
