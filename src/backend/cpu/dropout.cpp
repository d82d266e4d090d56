// See dropout.h.
//
// The mask test dropout_keeps(key, index, p) is `unit_interval(h) >= p` with h the SplitMix64
// hash of the element's key; unit_interval is (h >> 11) · 2⁻⁵³, exact in double, so the test
// equals the integer test (h >> 11) >= ceil(p · 2⁵³) (p · 2⁵³ is exact too). The kernels below
// use that integer form: the AVX-512 one hashes 8 indices per instruction and draws exactly the
// masks of the scalar one (a test checks them element for element against dropout_keeps).
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

double dropout_uniform(uint64_t key) {
  return unit_interval(splitmix64(key));
}

namespace {

constexpr uint64_t kIndexMultiplier = 0x2545f4914f6cdd1dull;  // dropout_keeps'

void check_probability(double p) {
  if (!(p >= 0.0 && p < 1.0))
    fail("dropout", "probability must be in [0, 1), got " + std::to_string(p));
}

// The kernels' form of the mask: element `index` is kept iff (hash >> 11) >= threshold.
struct MaskTest {
  uint64_t key = 0;
  uint64_t threshold = 0;  // ceil(p · 2⁵³)
  double keep_scale = 1.0;
};

MaskTest mask_test(uint64_t key, double p) {
  return MaskTest{key, static_cast<uint64_t>(std::ceil(std::ldexp(p, 53))), 1.0 / (1.0 - p)};
}

// out[j] = mask(first + j) ? float(in[j] · keep_scale) : 0, added to out when `accumulate`.
void apply_scalar(float* out, const float* in, int64_t len, uint64_t first, const MaskTest& m,
                  Accumulate accumulate) {
  for (int64_t j = 0; j < len; ++j) {
    const uint64_t index = first + static_cast<uint64_t>(j);
    const uint64_t hash = splitmix64(m.key ^ (index * kIndexMultiplier));
    const float g = (hash >> 11) >= m.threshold ? static_cast<float>(in[j] * m.keep_scale) : 0.0f;
    out[j] = accumulate == Accumulate::Yes ? out[j] + g : g;
  }
}

#ifdef LL_DROPOUT_X86
// GCC 12 warns inside its own intrinsics (their _mm512_undefined_* operands).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
[[gnu::target("avx512f,avx512dq")]] void apply_avx512(float* out, const float* in, int64_t len,
                                                      uint64_t first, const MaskTest& m,
                                                      Accumulate accumulate) {
  const __m512i lane = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i key = _mm512_set1_epi64(static_cast<long long>(m.key));
  const __m512i multiplier = _mm512_set1_epi64(static_cast<long long>(kIndexMultiplier));
  const __m512i gamma = _mm512_set1_epi64(static_cast<long long>(kSplitMix64Gamma));
  const __m512i mix1 = _mm512_set1_epi64(static_cast<long long>(0xbf58476d1ce4e5b9ull));
  const __m512i mix2 = _mm512_set1_epi64(static_cast<long long>(0x94d049bb133111ebull));
  const __m512i threshold = _mm512_set1_epi64(static_cast<long long>(m.threshold));
  const __m512d scale = _mm512_set1_pd(m.keep_scale);
  int64_t j = 0;
  for (; j + 8 <= len; j += 8) {
    const __m512i index =
        _mm512_add_epi64(_mm512_set1_epi64(static_cast<long long>(first + j)), lane);
    __m512i z =
        _mm512_add_epi64(_mm512_xor_si512(key, _mm512_mullo_epi64(index, multiplier)), gamma);
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)), mix1);
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)), mix2);
    z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
    const __mmask8 keep = _mm512_cmpge_epu64_mask(_mm512_srli_epi64(z, 11), threshold);
    const __m512d wide = _mm512_mul_pd(_mm512_cvtps_pd(_mm256_loadu_ps(in + j)), scale);
    __m256 g = _mm512_cvtpd_ps(_mm512_maskz_mov_pd(keep, wide));
    if (accumulate == Accumulate::Yes) g = _mm256_add_ps(_mm256_loadu_ps(out + j), g);
    _mm256_storeu_ps(out + j, g);
  }
  apply_scalar(out + j, in + j, len - j, first + static_cast<uint64_t>(j), m, accumulate);
}
#pragma GCC diagnostic pop

bool use_avx512() {
  static const bool supported =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
  return supported;
}
#endif

void apply(float* out, const float* in, int64_t len, uint64_t first, const MaskTest& m,
           Accumulate accumulate) {
#ifdef LL_DROPOUT_X86
  if (use_avx512()) return apply_avx512(out, in, len, first, m, accumulate);
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

void dropout_forward(float* out, const float* in, int64_t n, double p, uint64_t key,
                     DropoutWindow window) {
  run(out, in, n, p, key, Accumulate::No, window);
}

void dropout_backward(float* dx, const float* dy, int64_t n, double p, uint64_t key,
                      Accumulate accumulate, DropoutWindow window) {
  run(dx, dy, n, p, key, accumulate, window);
}

}  // namespace ll::cpu
