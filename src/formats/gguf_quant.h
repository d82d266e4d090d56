// GGML tensor element types for GGUF files, and the row encoders that turn f32 values into
// them exactly as ggml / gguf-py do (gguf-py's quants.py says its Q8_0 is bit-exact with
// ggml-quants.c's quantize_row_q8_0_ref):
//   F32   as is
//   F16   IEEE half, round-to-nearest-even, overflow to inf (numpy's astype(float16))
//   BF16  top half of the f32, round-to-nearest-even, NaN kept quiet (ggml_compute_fp32_to_bf16)
//   Q8_0  blocks of 32 values: an f16 scale d = max|x| / 127 (computed in f32), then 32 int8
//         q = round(x * (1/d)) (round half away from zero; q = 0 when d = 0). 34 bytes a block.
// A row is the innermost dimension (PyTorch's last, GGUF's ne[0]); Q8_0 rows must hold a
// multiple of 32 values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace ll {

enum class GgmlType : uint32_t { F32 = 0, F16 = 1, Q8_0 = 8, BF16 = 30 };

inline constexpr int64_t kQ8_0BlockValues = 32;
inline constexpr int64_t kQ8_0BlockBytes = 2 + kQ8_0BlockValues;

std::string_view ggml_type_name(GgmlType type);  // "F32", "F16", "Q8_0", "BF16"

// Whether a row of `row_length` values can be stored as `type` (Q8_0: a multiple of 32).
bool ggml_type_fits_row(GgmlType type, int64_t row_length);

// Bytes of one row of `row_length` values; throws naming the type when it does not fit.
uint64_t ggml_row_bytes(GgmlType type, int64_t row_length);

// Encodes `values` (whole rows: a multiple of 32 values for Q8_0) into `out`, which must
// hold exactly ggml_row_bytes(type, values.size()) bytes.
void ggml_quantize(GgmlType type, std::span<const float> values, std::span<std::byte> out);

}  // namespace ll
