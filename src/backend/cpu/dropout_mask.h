// The counter-based dropout mask of dropout.h as the kernels draw it: shared by the dropout
// kernels themselves and by the LoRA products that fold the dropout in (gemm_thin.h), so both
// keep exactly the same elements.
//
// The mask of element i under key k: h = mix(mix(lo(i) + a) ^ (b + hi(i) · golden)), with
// (a, b) the two halves of splitmix64(k) and mix a 32-bit integer hash (two multiply-xorshift
// rounds, constants of Wellons' "lowbias32"); kept iff h >= ceil(p · 2³²). Everything is
// 32-bit integer arithmetic, so an AVX-512 kernel draws 16 elements per instruction.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/random.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace ll::cpu::dropout_mask {

constexpr uint32_t kMix1 = 0x7feb352du;
constexpr uint32_t kMix2 = 0x846ca68bu;
constexpr uint32_t kGolden32 = 0x9e3779b9u;  // 2³² / golden ratio

constexpr uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= kMix1;
  x ^= x >> 15;
  x *= kMix2;
  return x ^ (x >> 16);
}

// A mask in the kernels' form.
struct MaskTest {
  uint32_t low_key = 0;    // added to the index's low half
  uint32_t high_key = 0;   // mixed with its high half
  uint64_t threshold = 0;  // ceil(p · 2³²): kept iff hash >= threshold (2³² keeps nothing)
  float keep_scale = 1.0f;
};

// What a kept element is multiplied by: 1 / (1 - p) in fp32, as torch's dropout scales.
inline float keep_scale(double p) {
  return 1.0f / static_cast<float>(1.0 - p);
}

inline MaskTest mask_test(uint64_t key, double p) {
  const uint64_t k = splitmix64(key);
  return MaskTest{static_cast<uint32_t>(k), static_cast<uint32_t>(k >> 32),
                  static_cast<uint64_t>(std::ceil(std::ldexp(p, 32))), keep_scale(p)};
}

inline uint32_t element_hash(const MaskTest& m, uint64_t index) {
  const uint32_t high = m.high_key + static_cast<uint32_t>(index >> 32) * kGolden32;
  return mix32(mix32(static_cast<uint32_t>(index) + m.low_key) ^ high);
}

inline bool keeps(const MaskTest& m, uint64_t index) {
  return element_hash(m, index) >= m.threshold;
}

#if defined(__x86_64__)
// GCC 12 warns inside its own intrinsics (their _mm512_undefined_* operands).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// mix32 on 16 lanes.
[[gnu::target("avx512f"), gnu::always_inline]] inline __m512i mix32_avx512(__m512i x) {
  x = _mm512_mullo_epi32(_mm512_xor_si512(x, _mm512_srli_epi32(x, 16)),
                         _mm512_set1_epi32(static_cast<int>(kMix1)));
  x = _mm512_mullo_epi32(_mm512_xor_si512(x, _mm512_srli_epi32(x, 15)),
                         _mm512_set1_epi32(static_cast<int>(kMix2)));
  return _mm512_xor_si512(x, _mm512_srli_epi32(x, 16));
}

// The keep mask of the 16 elements first .. first + 15. Where they straddle a multiple of 2³²
// (their high halves differ) each lane is drawn on its own. A threshold of 2³² keeps nothing.
[[gnu::target("avx512f"), gnu::always_inline]] inline __mmask16 keeps16(const MaskTest& m,
                                                                        uint64_t first) {
  if (m.threshold > 0xffffffffull) return 0;
  if ((first >> 32) != ((first + 15) >> 32)) {
    __mmask16 keep = 0;
    for (int lane = 0; lane < 16; ++lane) {
      if (keeps(m, first + static_cast<uint64_t>(lane))) keep |= static_cast<__mmask16>(1u << lane);
    }
    return keep;
  }
  const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const uint32_t high = m.high_key + static_cast<uint32_t>(first >> 32) * kGolden32;
  const uint32_t low = static_cast<uint32_t>(first) + m.low_key;
  const __m512i index = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(low)), lane);
  const __m512i hash = mix32_avx512(
      _mm512_xor_si512(mix32_avx512(index), _mm512_set1_epi32(static_cast<int>(high))));
  return _mm512_cmpge_epu32_mask(
      hash, _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(m.threshold))));
}
#pragma GCC diagnostic pop
#endif

}  // namespace ll::cpu::dropout_mask
