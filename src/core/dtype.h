// Element types of stored tensors, and the bf16 / f16 <-> f32 conversions.
// bf16 is the top half of an IEEE f32; rounding f32 -> bf16 is round-to-nearest-even
// (what torch's .to(torch.bfloat16) does), NaN kept quiet.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace ll {

// I32 / I64 hold token ids and labels (e.g. in test fixtures); weights are F32, BF16 or F16.
enum class DType : uint8_t { F32, BF16, F16, I32, I64 };

inline bool dtype_is_float(DType dtype) {
  return dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16;
}

size_t dtype_size(DType dtype);
std::string_view dtype_name(DType dtype);  // safetensors spelling: "F32", "BF16", "I64", ...
std::optional<DType> parse_dtype(std::string_view name);

inline float bf16_to_f32(uint16_t bits) {
  uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float out;
  std::memcpy(&out, &wide, sizeof out);
  return out;
}

inline uint16_t f32_to_bf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

// dst[i] = f32_to_bf16(src[i]) for i < n, bit for bit; AVX-512 where the CPU has it (the bf16
// GEMMs round every operand through this).
void f32_to_bf16_n(uint16_t* dst, const float* src, int64_t n);

float f16_to_f32(uint16_t bits);
uint16_t f32_to_f16(float value);  // round-to-nearest-even, overflow to inf

}  // namespace ll
