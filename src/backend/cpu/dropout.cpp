// See dropout.h.
//
// The mask of element i under key k: h = mix(mix(lo(i) + a) ^ (b + hi(i) · golden)), with
// (a, b) the two halves of splitmix64(k) and mix a 32-bit integer hash (two multiply-xorshift
// rounds, constants of Wellons' "lowbias32"); kept iff h >= ceil(p · 2³²). Everything is
// 32-bit integer arithmetic, so the AVX-512 kernel draws 16 elements per instruction, exactly
// the masks of the scalar one (a test checks them element for element against dropout_keeps).
#include "backend/cpu/dropout.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "core/random.h"

#if defined(__x86_64__)
#define LL_DROPOUT_X86 1
#include <immintrin.h>
#endif

namespace ll::cpu {
namespace {

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

void check_probability(double p) {
  if (!(p >= 0.0 && p < 1.0))
    fail("dropout", "probability must be in [0, 1), got " + std::to_string(p));
}

// The kernels' form of the mask.
struct MaskTest {
  uint32_t low_key = 0;    // added to the index's low half
  uint32_t high_key = 0;   // mixed with its high half
  uint64_t threshold = 0;  // ceil(p · 2³²): kept iff hash >= threshold (2³² keeps nothing)
  float keep_scale = 1.0f;
};

MaskTest mask_test(uint64_t key, double p) {
  const uint64_t k = splitmix64(key);
  return MaskTest{static_cast<uint32_t>(k), static_cast<uint32_t>(k >> 32),
                  static_cast<uint64_t>(std::ceil(std::ldexp(p, 32))), dropout_scale(p)};
}

uint32_t element_hash(const MaskTest& m, uint64_t index) {
  const uint32_t high = m.high_key + static_cast<uint32_t>(index >> 32) * kGolden32;
  return mix32(mix32(static_cast<uint32_t>(index) + m.low_key) ^ high);
}

// out[j] = mask(first + j) ? in[j] · keep_scale : 0, added to out when `accumulate`.
void apply_scalar(float* out, const float* in, int64_t len, uint64_t first, const MaskTest& m,
                  Accumulate accumulate) {
  for (int64_t j = 0; j < len; ++j) {
    const uint32_t hash = element_hash(m, first + static_cast<uint64_t>(j));
    const float g = hash >= m.threshold ? in[j] * m.keep_scale : 0.0f;
    out[j] = accumulate == Accumulate::Yes ? out[j] + g : g;
  }
}

#ifdef LL_DROPOUT_X86
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

// Elements whose indices share their high half (the caller splits at multiples of 2³²).
[[gnu::target("avx512f")]] void apply_avx512(float* out, const float* in, int64_t len,
                                             uint64_t first, const MaskTest& m,
                                             Accumulate accumulate) {
  if (m.threshold > 0xffffffffull) {  // p within 2⁻³² of 1: nothing is kept
    return apply_scalar(out, in, len, first, m, accumulate);
  }
  const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const uint32_t high = m.high_key + static_cast<uint32_t>(first >> 32) * kGolden32;
  const __m512i high_v = _mm512_set1_epi32(static_cast<int>(high));
  const __m512i threshold = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(m.threshold)));
  const __m512 scale = _mm512_set1_ps(m.keep_scale);
  int64_t j = 0;
  for (; j + 16 <= len; j += 16) {
    const uint32_t low = static_cast<uint32_t>(first + static_cast<uint64_t>(j)) + m.low_key;
    const __m512i index = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(low)), lane);
    const __m512i hash = mix32_avx512(_mm512_xor_si512(mix32_avx512(index), high_v));
    const __mmask16 keep = _mm512_cmpge_epu32_mask(hash, threshold);
    __m512 g = _mm512_maskz_mul_ps(keep, _mm512_loadu_ps(in + j), scale);
    if (accumulate == Accumulate::Yes) g = _mm512_add_ps(_mm512_loadu_ps(out + j), g);
    _mm512_storeu_ps(out + j, g);
  }
  apply_scalar(out + j, in + j, len - j, first + static_cast<uint64_t>(j), m, accumulate);
}
#pragma GCC diagnostic pop

bool use_avx512() {
  static const bool supported = __builtin_cpu_supports("avx512f");
  return supported;
}
#endif

void apply(float* out, const float* in, int64_t len, uint64_t first, const MaskTest& m,
           Accumulate accumulate) {
#ifdef LL_DROPOUT_X86
  if (use_avx512()) {
    // The vector kernel's lanes share the index's high half: split where it changes.
    while (len > 0) {
      const uint64_t to_boundary = (uint64_t{1} << 32) - (first & 0xffffffffull);
      const int64_t part =
          static_cast<int64_t>(std::min<uint64_t>(static_cast<uint64_t>(len), to_boundary));
      apply_avx512(out, in, part, first, m, accumulate);
      out += part;
      in += part;
      first += static_cast<uint64_t>(part);
      len -= part;
    }
    return;
  }
#endif
  apply_scalar(out, in, len, first, m, accumulate);
}

// Runs `apply` over the n elements: contiguous mask indices, or one row of the window at a
// time (row r of the slice covers indices r·full_cols + col_offset + [0, cols)).
void run(float* out, const float* in, int64_t n, double p, uint64_t key, Accumulate accumulate,
         DropoutWindow window) {
  check_probability(p);
  const MaskTest m = mask_test(key, p);
  if (window.cols == 0) {
    constexpr int64_t kBlock = 4096;
    const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t begin = b * kBlock;
      const int64_t len = std::min(kBlock, n - begin);
      apply(out + begin, in + begin, len, static_cast<uint64_t>(begin), m, accumulate);
    }
    return;
  }
  const int64_t rows = n / window.cols;
  check(rows * window.cols == n, "dropout",
        "the element count " + std::to_string(n) + " is not a multiple of the window's " +
            std::to_string(window.cols) + " columns");
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    apply(out + r * window.cols, in + r * window.cols, window.cols,
          static_cast<uint64_t>(window.mask_index(r * window.cols)), m, accumulate);
  }
}

}  // namespace

bool dropout_keeps(uint64_t key, int64_t index, double p) {
  check_probability(p);
  const MaskTest m = mask_test(key, p);
  return element_hash(m, static_cast<uint64_t>(index)) >= m.threshold;
}

float dropout_scale(double p) {
  return 1.0f / static_cast<float>(1.0 - p);
}

void dropout_forward(float* out, const float* in, int64_t n, double p, uint64_t key,
                     DropoutWindow window) {
  run(out, in, n, p, key, Accumulate::No, window);
}

void dropout_backward(float* dx, const float* dy, int64_t n, double p, uint64_t key,
                      Accumulate accumulate, DropoutWindow window) {
  run(dx, dy, n, p, key, accumulate, window);
}

}  // namespace ll::cpu
