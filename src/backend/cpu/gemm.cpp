// See gemm.h. This file holds the public entry points: it checks the arguments, picks the
// few-rows path (gemm_few_rows.cpp) or the packed one (gemm_packed.cpp) and the weight's
// format, and keeps the process-wide settings (the kernel, the few-rows threshold). The
// x86 SIMD kernels of both paths are in gemm_x86.cpp; what the files share, in
// gemm_internal.h.
#include "backend/cpu/gemm.h"

#include <atomic>
#include <string>

#include "backend/cpu/gemm_internal.h"
#include "backend/cpu/matmul_bf16.h"
#include "core/error.h"

namespace ll::cpu {
namespace {

using gemm_detail::Bf16Format;
using gemm_detail::F16Format;
using gemm_detail::F32Format;
using gemm_detail::gemm_few_rows_axpy;
using gemm_detail::gemm_few_rows_dot;
using gemm_detail::gemm_packed;
using gemm_detail::LoadBf16;
using gemm_detail::LoadF16;
using gemm_detail::LoadPlain;
using gemm_detail::PlainFormat;
using gemm_detail::selected_kernel;

GemmKernel best_supported_kernel() {
  if (gemm_kernel_supported(GemmKernel::Avx512)) return GemmKernel::Avx512;
  if (gemm_kernel_supported(GemmKernel::Avx2)) return GemmKernel::Avx2;
  return GemmKernel::Portable;
}

std::atomic<int64_t>& few_rows_threshold() {
  static std::atomic<int64_t> threshold{kGemmFewRowsDefault};
  return threshold;
}

bool few_rows_applies(int64_t m, int64_t n, int64_t k) {
  return m >= 1 && m <= few_rows_threshold().load(std::memory_order_relaxed) && n > 0 && k > 0;
}

// Runs `body(Format{})` with the format of the weight's dtype.
template <typename Body>
void with_weight_format(WeightView w, Body body) {
  switch (w.dtype) {
    case DType::F32:
      return body(F32Format{});
    case DType::BF16:
      return body(Bf16Format{});
    case DType::F16:
      return body(F16Format{});
    case DType::I32:
    case DType::I64:
      break;
  }
  fail("linear", "unknown weight dtype");
}

void check_sizes(const char* what, int64_t m, int64_t n, int64_t k) {
  check(m >= 0 && n >= 0 && k >= 0, "gemm",
        std::string(what) + ": negative size m=" + std::to_string(m) + " n=" + std::to_string(n) +
            " k=" + std::to_string(k));
}

void check_leading(const char* name, int64_t ld, int64_t rows, int64_t cols) {
  check(rows == 0 || cols == 0 || ld >= cols, "gemm",
        std::string("leading dimension ") + name + "=" + std::to_string(ld) +
            " is smaller than the " + std::to_string(cols) + " columns it strides over");
}

// Runs `body(load)` with a loader for the weight's dtype.
template <typename T, typename Body>
void with_weight_loader(WeightView w, Body body) {
  switch (w.dtype) {
    case DType::F32:
      return body(LoadPlain<T, float>{static_cast<const float*>(w.data)});
    case DType::BF16:
      return body(LoadBf16<T>{static_cast<const uint16_t*>(w.data)});
    case DType::F16:
      return body(LoadF16<T>{static_cast<const uint16_t*>(w.data)});
    case DType::I32:
    case DType::I64:
      break;
  }
  fail("linear", "unknown weight dtype");
}

}  // namespace

std::atomic<GemmKernel>& gemm_detail::selected_kernel() {
  static std::atomic<GemmKernel> selected{best_supported_kernel()};
  return selected;
}

template <typename T>
void gemm(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k, T alpha,
          const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  check_sizes("gemm", m, n, k);
  check_leading("lda", lda, trans_a == Transpose::No ? m : k, trans_a == Transpose::No ? k : m);
  check_leading("ldb", ldb, trans_b == Transpose::No ? k : n, trans_b == Transpose::No ? n : k);
  check_leading("ldc", ldc, m, n);
  if (few_rows_applies(m, n, k)) {
    if (trans_a == Transpose::No && trans_b == Transpose::Yes) {
      return gemm_few_rows_dot<T, PlainFormat<T>>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
    if (trans_b == Transpose::No) {
      return gemm_few_rows_axpy<T, PlainFormat<T>>(trans_a, m, n, k, alpha, a, lda, b, ldb, beta, c,
                                                   ldc);
    }
  }
  gemm_packed(trans_a, trans_b, m, n, k, alpha, a, lda, LoadPlain<T, T>{b}, ldb, beta, c, ldc);
}

template <typename T>
void linear_forward(T* y, const T* x, WeightView w, int64_t tokens, int64_t in, int64_t out,
                    Accumulate accumulate) {
  check_sizes("linear_forward", tokens, out, in);
  const T beta = accumulate == Accumulate::Yes ? T(1) : T(0);
  if (few_rows_applies(tokens, out, in)) {  // one dot product per row of W
    return with_weight_format(w, [&](auto format) {
      using Format = decltype(format);
      gemm_few_rows_dot<T, Format>(tokens, out, in, T(1), x, in,
                                   static_cast<const typename Format::Stored*>(w.data), in, beta, y,
                                   out);
    });
  }
  // y[tokens, out] = x[tokens, in] · W[out, in]ᵀ: op(B) = Wᵀ, so B = W is read transposed.
  with_weight_loader<T>(w, [&](auto load) {
    gemm_packed(Transpose::No, Transpose::Yes, tokens, out, in, T(1), x, in, load, in, beta, y,
                out);
  });
}

template <typename T>
void linear_backward_input(T* dx, const T* dy, WeightView w, int64_t tokens, int64_t in,
                           int64_t out, Accumulate accumulate) {
  check_sizes("linear_backward_input", tokens, in, out);
  const T beta = accumulate == Accumulate::Yes ? T(1) : T(0);
  if (few_rows_applies(tokens, in, out)) {  // dx rows += dy[t, o] · W[o, :], o = 0, 1, ...
    return with_weight_format(w, [&](auto format) {
      using Format = decltype(format);
      gemm_few_rows_axpy<T, Format>(Transpose::No, tokens, in, out, T(1), dy, out,
                                    static_cast<const typename Format::Stored*>(w.data), in, beta,
                                    dx, in);
    });
  }
  // dx[tokens, in] = dy[tokens, out] · W[out, in]: op(B) = W as stored.
  with_weight_loader<T>(w, [&](auto load) {
    gemm_packed(Transpose::No, Transpose::No, tokens, in, out, T(1), dy, out, load, in, beta, dx,
                in);
  });
}

void linear_forward(Precision precision, float* y, const float* x, WeightView w, int64_t tokens,
                    int64_t in, int64_t out, Accumulate accumulate) {
  if (precision == Precision::Bf16) {
    return bf16_linear_forward(y, x, w, tokens, in, out, accumulate);
  }
  linear_forward<float>(y, x, w, tokens, in, out, accumulate);
}

void linear_backward_input(Precision precision, float* dx, const float* dy, WeightView w,
                           int64_t tokens, int64_t in, int64_t out, Accumulate accumulate) {
  if (precision == Precision::Bf16) {
    return bf16_linear_backward_input(dx, dy, w, tokens, in, out, accumulate);
  }
  linear_backward_input<float>(dx, dy, w, tokens, in, out, accumulate);
}

bool gemm_kernel_supported(GemmKernel kernel) {
  switch (kernel) {
    case GemmKernel::Auto:
    case GemmKernel::Portable:
      return true;
#ifdef LL_GEMM_X86
    case GemmKernel::Avx2:
      // f16c for the few-rows kernels' f16 weights (every AVX2 CPU has it).
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("f16c");
    case GemmKernel::Avx512:
      return __builtin_cpu_supports("avx512f");
#else
    case GemmKernel::Avx2:
    case GemmKernel::Avx512:
      return false;
#endif
  }
  return false;
}

void gemm_kernel_select(GemmKernel kernel) {
  check(gemm_kernel_supported(kernel), "gemm",
        std::string("this CPU lacks the instructions of the ") + gemm_kernel_name(kernel) +
            " kernel");
  selected_kernel().store(kernel == GemmKernel::Auto ? best_supported_kernel() : kernel,
                          std::memory_order_relaxed);
}

void gemm_few_rows_select(int64_t max_rows) {
  check(max_rows >= 0, "gemm",
        "the few-rows threshold must be >= 0 (0: off), got " + std::to_string(max_rows));
  few_rows_threshold().store(max_rows, std::memory_order_relaxed);
}

int64_t gemm_few_rows_active() {
  return few_rows_threshold().load(std::memory_order_relaxed);
}

GemmKernel gemm_kernel_active() {
  return selected_kernel().load(std::memory_order_relaxed);
}

const char* gemm_kernel_name(GemmKernel kernel) {
  switch (kernel) {
    case GemmKernel::Auto:
      return "auto";
    case GemmKernel::Portable:
      return "portable";
    case GemmKernel::Avx2:
      return "avx2";
    case GemmKernel::Avx512:
      return "avx512";
  }
  return "?";
}

#define LL_INSTANTIATE(T)                                                                      \
  template void gemm<T>(Transpose, Transpose, int64_t, int64_t, int64_t, T, const T*, int64_t, \
                        const T*, int64_t, T, T*, int64_t);                                    \
  template void linear_forward<T>(T*, const T*, WeightView, int64_t, int64_t, int64_t,         \
                                  Accumulate);                                                 \
  template void linear_backward_input<T>(T*, const T*, WeightView, int64_t, int64_t, int64_t,  \
                                         Accumulate);
LL_INSTANTIATE(float)
LL_INSTANTIATE(double)
#undef LL_INSTANTIATE

}  // namespace ll::cpu
