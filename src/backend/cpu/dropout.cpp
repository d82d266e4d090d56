// See dropout.h; the mask itself is dropout_mask.h's.
#include "backend/cpu/dropout.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "backend/cpu/dropout_mask.h"
#include "core/error.h"

#if defined(__x86_64__)
#define LL_DROPOUT_X86 1
#include <immintrin.h>
#endif

namespace ll::cpu {
namespace {

using dropout_mask::element_hash;
using dropout_mask::mask_test;
using dropout_mask::MaskTest;

void check_probability(double p) {
  if (!(p >= 0.0 && p < 1.0))
    fail("dropout", "probability must be in [0, 1), got " + std::to_string(p));
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
// Elements whose indices share their high half (the caller splits at multiples of 2³²).
[[gnu::target("avx512f")]] void apply_avx512(float* out, const float* in, int64_t len,
                                             uint64_t first, const MaskTest& m,
                                             Accumulate accumulate) {
  const __m512 scale = _mm512_set1_ps(m.keep_scale);
  int64_t j = 0;
  for (; j + 16 <= len; j += 16) {
    const __mmask16 keep = dropout_mask::keeps16(m, first + static_cast<uint64_t>(j));
    __m512 g = _mm512_maskz_mul_ps(keep, _mm512_loadu_ps(in + j), scale);
    if (accumulate == Accumulate::Yes) g = _mm512_add_ps(_mm512_loadu_ps(out + j), g);
    _mm512_storeu_ps(out + j, g);
  }
  apply_scalar(out + j, in + j, len - j, first + static_cast<uint64_t>(j), m, accumulate);
}

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
  return dropout_mask::keep_scale(p);
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
