// See gguf_quant.h.
#include "formats/gguf_quant.h"

#include <cmath>
#include <cstring>
#include <string>

#include "core/dtype.h"
#include "core/error.h"

namespace ll {
namespace {

constexpr std::string_view kOrigin = "gguf";

void put_u16(std::byte* out, uint16_t bits) {
  std::memcpy(out, &bits, 2);
}

// One Q8_0 block (ggml's quantize_row_q8_0_ref): the scale and its inverse in f32.
void quantize_q8_0_block(const float* x, std::byte* out) {
  float amax = 0.0f;
  for (int64_t j = 0; j < kQ8_0BlockValues; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  put_u16(out, f32_to_f16(d));
  for (int64_t j = 0; j < kQ8_0BlockValues; ++j) {
    const auto q = static_cast<int8_t>(std::round(x[j] * id));  // |q| <= 127 by construction
    std::memcpy(out + 2 + j, &q, 1);
  }
}

}  // namespace

std::string_view ggml_type_name(GgmlType type) {
  switch (type) {
    case GgmlType::F32:
      return "F32";
    case GgmlType::F16:
      return "F16";
    case GgmlType::Q8_0:
      return "Q8_0";
    case GgmlType::BF16:
      return "BF16";
  }
  return "?";
}

bool ggml_type_fits_row(GgmlType type, int64_t row_length) {
  return row_length >= 0 && (type != GgmlType::Q8_0 || row_length % kQ8_0BlockValues == 0);
}

uint64_t ggml_row_bytes(GgmlType type, int64_t row_length) {
  check(ggml_type_fits_row(type, row_length), kOrigin,
        "a row of " + std::to_string(row_length) + " values cannot be stored as " +
            std::string(ggml_type_name(type)) + " (it needs a multiple of 32)");
  const auto n = static_cast<uint64_t>(row_length);
  switch (type) {
    case GgmlType::F32:
      return n * 4;
    case GgmlType::F16:
    case GgmlType::BF16:
      return n * 2;
    case GgmlType::Q8_0:
      return n / kQ8_0BlockValues * kQ8_0BlockBytes;
  }
  return 0;
}

void ggml_quantize(GgmlType type, std::span<const float> values, std::span<std::byte> out) {
  check(out.size() == ggml_row_bytes(type, static_cast<int64_t>(values.size())), kOrigin,
        "output buffer of " + std::to_string(out.size()) + " bytes does not fit " +
            std::to_string(values.size()) + " values as " + std::string(ggml_type_name(type)));
  switch (type) {
    case GgmlType::F32:
      if (!values.empty()) std::memcpy(out.data(), values.data(), values.size() * 4);
      return;
    case GgmlType::F16:
      for (size_t i = 0; i < values.size(); ++i) put_u16(out.data() + 2 * i, f32_to_f16(values[i]));
      return;
    case GgmlType::BF16:
      for (size_t i = 0; i < values.size(); ++i)
        put_u16(out.data() + 2 * i, f32_to_bf16(values[i]));
      return;
    case GgmlType::Q8_0:
      for (size_t b = 0; b * kQ8_0BlockValues < values.size(); ++b) {
        quantize_q8_0_block(values.data() + b * kQ8_0BlockValues, out.data() + b * kQ8_0BlockBytes);
      }
      return;
  }
}

}  // namespace ll
