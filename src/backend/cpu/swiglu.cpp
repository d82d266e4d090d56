// See swiglu.h.
#include "backend/cpu/swiglu.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>

#include "backend/cpu/attention_simd.h"
#include "core/error.h"

namespace ll::cpu {
namespace {

void check_count(const char* op, int64_t n) {
  check(n >= 0, op, "negative element count " + std::to_string(n));
}

constexpr int64_t kParallelMin = 16384;

// The element-wise formulas, shared by the scalar loop and the vector kernels (T a scalar
// or a vector type; `exp` the matching exponential).
template <typename T, typename Exp>
[[gnu::always_inline]] inline void silu_times(T& h, const T& g, const T& u, const Exp& exp) {
  T e = -g;
  exp(e);  // in place: vectors travel by reference only
  h = g / (1 + e) * u;
}

template <typename T, typename Exp>
[[gnu::always_inline]] inline void silu_backward(T& dgate, T& dup, const T& d, const T& g,
                                                 const T& u, const Exp& exp) {
  T denominator = -g;
  exp(denominator);
  denominator = 1 + denominator;
  const T s = 1 / denominator;     // σ(g)
  const T silu = g / denominator;  // as the forward computes it
  // Evaluated in torch's order: silu_backward(dh · up, gate).
  dgate = d * u * s * (1 + g * (1 - s));
  dup = d * silu;
}

struct ScalarExp {
  template <typename T>
  void operator()(T& x) const {
    x = std::exp(x);
  }
};

#if defined(__x86_64__)
// fp32 with AVX-512: 16 lanes at a time through simd::exp_in_place (Cephes' expf, within 1
// ULP; std::exp is correctly rounded or nearly), the tail through the scalar loop. exp(-g) is
// inf where std::exp's is (g < -88.72), so silu is -0 there as in the scalar loop; for
// -88.72 < g < -88 it saturates at exp(88) (silu ~1e-37 instead of ~1e-38).
using S = simd::SimdAvx512;
using V = S::Vector;

// A functor, not a function pointer: always inlined, the vector never crosses a call.
struct VectorExp {
  [[gnu::always_inline]] void operator()(V& x) const {
    const S::Index overflows = x > 88.72284f;  // ln(FLT_MAX): std::exp gives inf there
    simd::exp_in_place<S>(x);
    x = overflows ? V{} + std::numeric_limits<float>::infinity() : x;
  }
};

[[gnu::target("avx512f")]] int64_t forward_avx512(float* h, const float* gate, const float* up,
                                                  int64_t n) {
  int64_t i = 0;
  for (; i + S::kWidth <= n; i += S::kWidth) {
    // alignas spelled out: GCC's AddressSanitizer frames honour it but not the vector type's
    // own 64-byte alignment, and UBSan then reports the references bound to the locals.
    alignas(64) V g, u;
    std::memcpy(&g, gate + i, sizeof g);
    std::memcpy(&u, up + i, sizeof u);
    alignas(64) V out;
    silu_times(out, g, u, VectorExp{});
    std::memcpy(h + i, &out, sizeof out);
  }
  return i;
}

[[gnu::target("avx512f")]] int64_t backward_avx512(float* dgate, float* dup, const float* dh,
                                                   const float* gate, const float* up, int64_t n) {
  int64_t i = 0;
  for (; i + S::kWidth <= n; i += S::kWidth) {
    alignas(64) V d, g, u, dg, du;  // alignas: see forward_avx512
    std::memcpy(&d, dh + i, sizeof d);
    std::memcpy(&g, gate + i, sizeof g);
    std::memcpy(&u, up + i, sizeof u);
    silu_backward(dg, du, d, g, u, VectorExp{});
    std::memcpy(dgate + i, &dg, sizeof dg);
    std::memcpy(dup + i, &du, sizeof du);
  }
  return i;
}

bool use_avx512() {
  static const bool supported = __builtin_cpu_supports("avx512f");
  return supported;
}
#endif

// Elements [begin, end) of one block: the vector kernel where it runs, the rest scalar.
template <typename T>
void forward_block(T* h, const T* gate, const T* up, int64_t begin, int64_t end) {
  int64_t i = begin;
#if defined(__x86_64__)
  if constexpr (std::is_same_v<T, float>) {
    if (use_avx512()) i += forward_avx512(h + i, gate + i, up + i, end - i);
  }
#endif
  // For large negative g, exp(-g) overflows to inf and silu -> -0: no NaN.
  for (; i < end; ++i) silu_times(h[i], gate[i], up[i], ScalarExp{});
}

template <typename T>
void backward_block(T* dgate, T* dup, const T* dh, const T* gate, const T* up, int64_t begin,
                    int64_t end) {
  int64_t i = begin;
#if defined(__x86_64__)
  if constexpr (std::is_same_v<T, float>) {
    if (use_avx512()) {
      i += backward_avx512(dgate + i, dup + i, dh + i, gate + i, up + i, end - i);
    }
  }
#endif
  for (; i < end; ++i) silu_backward(dgate[i], dup[i], dh[i], gate[i], up[i], ScalarExp{});
}

constexpr int64_t kBlock = 4096;  // elements per parallel task (a multiple of 16)

}  // namespace

template <typename T>
void swiglu_forward(T* h, const T* gate, const T* up, int64_t n) {
  check_count("swiglu_forward", n);
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t b = 0; b < blocks; ++b) {
    forward_block(h, gate, up, b * kBlock, std::min(n, (b + 1) * kBlock));
  }
}

template <typename T>
void swiglu_backward(T* dgate, T* dup, const T* dh, const T* gate, const T* up, int64_t n) {
  check_count("swiglu_backward", n);
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t b = 0; b < blocks; ++b) {
    backward_block(dgate, dup, dh, gate, up, b * kBlock, std::min(n, (b + 1) * kBlock));
  }
}

template void swiglu_forward<float>(float*, const float*, const float*, int64_t);
template void swiglu_forward<double>(double*, const double*, const double*, int64_t);
template void swiglu_backward<float>(float*, float*, const float*, const float*, const float*,
                                     int64_t);
template void swiglu_backward<double>(double*, double*, const double*, const double*, const double*,
                                      int64_t);

}  // namespace ll::cpu
