// RoPE: inverse frequencies, the cos/sin table, and the rotation forward/backward (rope.h).
#include "backend/cpu/rope.h"

#include <cmath>
#include <numbers>
#include <string>

#include "core/error.h"

namespace ll::cpu {

namespace {

constexpr const char* kOrigin = "rope";

// torch's CPU pow on fp32 is SLEEF's 1-ULP powf (std::pow on a vector's tail); we round the
// exact (double) power to fp32 instead. The two agree on the Llama shapes the fixture pins
// (theta 1e4 and 5e5 at head_dim 16/64/128); on a few others (e.g. theta 1e6, head_dim 128,
// element 37) torch lands one ULP away, a 6e-8 relative change of one frequency.
float pow_f32(float base, float exponent) {
  return static_cast<float>(std::pow(static_cast<double>(base), static_cast<double>(exponent)));
}

void check_positions(const int32_t* positions, int64_t tokens, const RopeTable& table) {
  for (int64_t t = 0; t < tokens; ++t) {
    if (positions[t] < 0 || positions[t] >= table.max_positions) {
      fail(kOrigin, "position " + std::to_string(positions[t]) + " of token " + std::to_string(t) +
                        " is outside the table's [0, " + std::to_string(table.max_positions) + ")");
    }
  }
}

// Rotates every (token, head) vector of x [tokens, heads, head_dim] by `sign` * angle:
// sign +1 is the forward, -1 its transpose (the backward).
template <typename T>
void rotate(T* out, const T* in, const int32_t* positions, int64_t tokens, int64_t heads,
            const RopeTable& table, T sign) {
  check_positions(positions, tokens, table);
  const int64_t head_dim = table.head_dim;
  const int64_t half = head_dim / 2;
#pragma omp parallel for schedule(static) if (tokens * heads * head_dim > 32768)
  for (int64_t t = 0; t < tokens; ++t) {
    const float* cos_row = table.cos.data() + positions[t] * half;  // [half]
    const float* sin_row = table.sin.data() + positions[t] * half;  // [half]
    for (int64_t h = 0; h < heads; ++h) {
      const T* x = in + (t * heads + h) * head_dim;  // [head_dim]
      T* y = out + (t * heads + h) * head_dim;       // [head_dim], may be x
      for (int64_t j = 0; j < half; ++j) {
        const T c = static_cast<T>(cos_row[j]);
        const T s = sign * static_cast<T>(sin_row[j]);
        const T a = x[j];
        const T b = x[j + half];
        // transformers: x * cos + cat(-x2, x1) * sin, two rounded products and a sum. (The
        // x86-64 baseline build has no FMA to contract them into; a -march build with FMA
        // may, which moves the last bit.)
        y[j] = a * c - b * s;
        y[j + half] = b * c + a * s;
      }
    }
  }
}

}  // namespace

std::vector<float> rope_inv_freq(double rope_theta, int64_t head_dim,
                                 const std::optional<RopeLlama3Scaling>& scaling) {
  check(head_dim > 0 && head_dim % 2 == 0, kOrigin,
        "head_dim must be positive and even, got " + std::to_string(head_dim));
  check(rope_theta > 0.0 && std::isfinite(rope_theta), kOrigin,
        "rope_theta must be positive, got " + std::to_string(rope_theta));
  const int64_t half = head_dim / 2;
  std::vector<float> inv_freq(half);  // [head_dim/2] fp32

  // 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim)), all fp32.
  const float base = static_cast<float>(rope_theta);
  for (int64_t i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv_freq[i] = 1.0f / pow_f32(base, exponent);
  }
  if (!scaling) return inv_freq;

  // _compute_llama3_parameters, every tensor op in fp32 and every Python scalar rounded to
  // fp32 where torch meets it. `scalar / tensor` is torch's rdiv: reciprocal(tensor) * scalar.
  const RopeLlama3Scaling& s = *scaling;
  check(s.factor > 0.0 && s.low_freq_factor > 0.0 && s.high_freq_factor > s.low_freq_factor &&
            s.original_max_position_embeddings > 0,
        kOrigin,
        "llama3 rope_scaling needs factor > 0, 0 < low_freq_factor < high_freq_factor and "
        "original_max_position_embeddings > 0");
  const double old_context_len = static_cast<double>(s.original_max_position_embeddings);
  const float low_freq_wavelen = static_cast<float>(old_context_len / s.low_freq_factor);
  const float high_freq_wavelen = static_cast<float>(old_context_len / s.high_freq_factor);
  const float factor = static_cast<float>(s.factor);
  const float low_freq_factor = static_cast<float>(s.low_freq_factor);
  const float freq_factor_span = static_cast<float>(s.high_freq_factor - s.low_freq_factor);
  const float two_pi = static_cast<float>(2.0 * std::numbers::pi);
  const float old_context = static_cast<float>(old_context_len);
  for (int64_t i = 0; i < half; ++i) {
    const float wavelen = (1.0f / inv_freq[i]) * two_pi;
    // wavelen > low_freq_wavelen: divide by factor; wavelen < high_freq_wavelen: keep.
    const float inv_llama = wavelen > low_freq_wavelen ? inv_freq[i] / factor : inv_freq[i];
    const float smooth = ((1.0f / wavelen) * old_context - low_freq_factor) / freq_factor_span;
    const float smoothed = (1.0f - smooth) * inv_llama / factor + smooth * inv_llama;
    const bool is_medium_freq = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
    inv_freq[i] = is_medium_freq ? smoothed : inv_llama;
  }
  return inv_freq;
}

RopeTable rope_table_build(double rope_theta, int64_t head_dim, int64_t max_positions,
                           const std::optional<RopeLlama3Scaling>& scaling) {
  check(max_positions > 0 && max_positions <= (int64_t{1} << 31), kOrigin,
        "max_positions must be in [1, 2^31], got " + std::to_string(max_positions));
  RopeTable table;
  table.head_dim = head_dim;
  table.max_positions = max_positions;
  table.inv_freq = rope_inv_freq(rope_theta, head_dim, scaling);
  const int64_t half = head_dim / 2;
  table.cos.resize(max_positions * half);
  table.sin.resize(max_positions * half);
  // freqs = inv_freq @ position (an fp32 product), cos/sin in fp32. torch's fp32 cos/sin
  // (SLEEF, 1 ULP) may differ from these correctly rounded ones by one ULP (6e-8).
#pragma omp parallel for schedule(static) if (max_positions * half > 65536)
  for (int64_t p = 0; p < max_positions; ++p) {
    for (int64_t i = 0; i < half; ++i) {
      const float angle = static_cast<float>(p) * table.inv_freq[i];
      table.cos[p * half + i] = static_cast<float>(std::cos(static_cast<double>(angle)));
      table.sin[p * half + i] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
  }
  return table;
}

template <typename T>
void rope_forward(T* out, const T* in, const int32_t* positions, int64_t tokens, int64_t heads,
                  const RopeTable& table) {
  rotate(out, in, positions, tokens, heads, table, T{1});
}

template <typename T>
void rope_backward(T* d_in, const T* d_out, const int32_t* positions, int64_t tokens, int64_t heads,
                   const RopeTable& table) {
  // The rotation matrix R(angle) is orthogonal: its transpose is R(-angle).
  rotate(d_in, d_out, positions, tokens, heads, table, T{-1});
}

template void rope_forward<float>(float*, const float*, const int32_t*, int64_t, int64_t,
                                  const RopeTable&);
template void rope_forward<double>(double*, const double*, const int32_t*, int64_t, int64_t,
                                   const RopeTable&);
template void rope_backward<float>(float*, const float*, const int32_t*, int64_t, int64_t,
                                   const RopeTable&);
template void rope_backward<double>(double*, const double*, const int32_t*, int64_t, int64_t,
                                    const RopeTable&);

}  // namespace ll::cpu
