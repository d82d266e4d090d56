// See matmul_bf16.h: the oneDNN implementation (linked when CMake finds libdnnl-dev; the
// build without it links matmul_bf16_stub.cpp instead).
//
// Every product is one oneDNN matmul: src [m, k] bf16 · weights [k, n] bf16 -> dst [m, n]
// f32, each operand described by its strides, so a transposed operand or a weight read in
// place in the memory-mapped checkpoint needs no copy. alpha is oneDNN's output scale and
// beta a sum post-op (C = alpha · A·B + beta · C). Primitives are cached by everything that
// makes them differ (sizes, strides, alpha, beta).
#include <oneapi/dnnl/dnnl.hpp>

#include <array>
#include <bit>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "backend/cpu/matmul_bf16.h"
#include "core/error.h"

namespace ll::cpu {
namespace {

using dnnl::memory;
constexpr const char* kOrigin = "bf16 matmul";

bool cpu_has_bf16_dot() {
  return __builtin_cpu_supports("avx512bf16") || __builtin_cpu_supports("amx-bf16");
}

// One operand as oneDNN reads it: bf16 elements of a [rows, cols] matrix with strides.
struct Operand {
  const uint16_t* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t row_stride = 0;
  int64_t col_stride = 1;
};

// The process's oneDNN engine and stream, the primitive cache and the operands' scratch.
// Calls come from the thread that runs the model (oneDNN then spreads each call over the
// OpenMP pool); each public function holds mutex() for its whole call, which makes a second
// calling thread safe, not fast.
class Matmuls {
 public:
  static Matmuls& instance() {
    static Matmuls matmuls;
    return matmuls;
  }

  // The caller holds mutex().
  void run(const Operand& a, const Operand& b, float alpha, float beta, float* c, int64_t ldc) {
    dnnl::matmul& primitive = primitive_for(a, b, alpha, beta, ldc);
    memory a_mem(describe(a), engine_, const_cast<uint16_t*>(a.data));
    memory b_mem(describe(b), engine_, const_cast<uint16_t*>(b.data));
    memory c_mem(memory::desc({a.rows, b.cols}, memory::data_type::f32, {ldc, 1}), engine_, c);
    primitive.execute(stream_,
                      {{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, b_mem}, {DNNL_ARG_DST, c_mem}});
    stream_.wait();
  }

  std::mutex& mutex() { return mutex_; }
  // Rounded operands, kept between calls (guarded by mutex()).
  std::vector<uint16_t> scratch_a;
  std::vector<uint16_t> scratch_b;

  // The implementation oneDNN picks for a training-sized product.
  std::string implementation() {
    const std::lock_guard<std::mutex> lock(mutex_);
    const Operand a{nullptr, 256, 256, 256, 1};
    const Operand b{nullptr, 256, 256, 256, 1};
    return make(a, b, 1.0f, 0.0f, 256).impl_info_str();
  }

 private:
  Matmuls() : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {}

  static memory::desc describe(const Operand& x) {
    return memory::desc({x.rows, x.cols}, memory::data_type::bf16, {x.row_stride, x.col_stride});
  }

  dnnl::matmul::primitive_desc make(const Operand& a, const Operand& b, float alpha, float beta,
                                    int64_t ldc) {
    const memory::desc c_md({a.rows, b.cols}, memory::data_type::f32, {ldc, 1});
    dnnl::primitive_attr attr;
    if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
    if (beta != 0.0f) {
      dnnl::post_ops post;
      post.append_sum(beta);
      attr.set_post_ops(post);
    }
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(describe(a), describe(b), c_md), attr,
                                        engine_);
  }

  dnnl::matmul& primitive_for(const Operand& a, const Operand& b, float alpha, float beta,
                              int64_t ldc) {
    const Key key{a.rows,
                  a.cols,
                  b.cols,
                  a.row_stride,
                  a.col_stride,
                  b.row_stride,
                  b.col_stride,
                  ldc,
                  std::bit_cast<uint32_t>(alpha),
                  std::bit_cast<uint32_t>(beta)};
    auto found = cache_.find(key);
    if (found != cache_.end()) return found->second;
    // Generation and evaluation meet many sizes: a bounded cache, dropped whole when full.
    if (cache_.size() >= kMaxCached) cache_.clear();
    return cache_.emplace(key, dnnl::matmul(make(a, b, alpha, beta, ldc))).first->second;
  }

  using Key = std::array<int64_t, 10>;
  static constexpr size_t kMaxCached = 512;
  dnnl::engine engine_;
  dnnl::stream stream_;
  std::map<Key, dnnl::matmul> cache_;
  std::mutex mutex_;
};

uint16_t* reserve(std::vector<uint16_t>& buffer, int64_t count) {
  if (static_cast<int64_t>(buffer.size()) < count) buffer.resize(static_cast<size_t>(count));
  return buffer.data();
}

// dst[rows, cols] (contiguous) = bf16(src[rows, cols] with leading dimension ld), RNE.
void round_rows(uint16_t* dst, const float* src, int64_t rows, int64_t cols, int64_t ld) {
#pragma omp parallel for schedule(static) if (rows * cols >= (int64_t{1} << 15))
  for (int64_t i = 0; i < rows; ++i) {
    const float* from = src + i * ld;
    uint16_t* to = dst + i * cols;
    f32_to_bf16_n(to, from, cols);
  }
}

void round_weight(uint16_t* dst, WeightView w, int64_t count) {
  switch (w.dtype) {
    case DType::F32:
      return round_rows(dst, static_cast<const float*>(w.data), 1, count, count);
    case DType::F16: {
      const uint16_t* src = static_cast<const uint16_t*>(w.data);
      for (int64_t i = 0; i < count; ++i) dst[i] = f32_to_bf16(f16_to_f32(src[i]));
      return;
    }
    case DType::BF16:
    case DType::I32:
    case DType::I64:
      break;
  }
  fail(kOrigin, "cannot round a weight of dtype " + std::string(dtype_name(w.dtype)) + " to bf16");
}

// A weight W[rows, cols] as bf16: in place when it is bf16, else rounded into scratch.
const uint16_t* weight_bf16(WeightView w, int64_t rows, int64_t cols) {
  check(w.space == MemorySpace::Host, kOrigin, "the weight is not in host memory");
  if (w.dtype == DType::BF16) return static_cast<const uint16_t*>(w.data);
  uint16_t* dst = reserve(Matmuls::instance().scratch_b, rows * cols);
  round_weight(dst, w, rows * cols);
  return dst;
}

void check_ready(const char* what, int64_t m, int64_t n, int64_t k) {
  if (!bf16_matmul_available()) {
    fail(kOrigin, std::string(what) + ": bf16 matmuls are unavailable here (" +
                      bf16_matmul_description() + ")");
  }
  check(m >= 0 && n >= 0 && k >= 0, kOrigin,
        std::string(what) + ": negative size m=" + std::to_string(m) + " n=" + std::to_string(n) +
            " k=" + std::to_string(k));
}

// C = beta · C for the products without a k dimension (oneDNN wants k >= 1).
void scale_only(float* c, int64_t ldc, int64_t m, int64_t n, float beta) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
  }
}

}  // namespace

bool bf16_matmul_available() {
  static const bool available = cpu_has_bf16_dot();
  return available;
}

std::string bf16_matmul_description() {
  const dnnl_version_t* version = dnnl_version();
  const std::string library = "oneDNN " + std::to_string(version->major) + "." +
                              std::to_string(version->minor) + "." + std::to_string(version->patch);
  if (!cpu_has_bf16_dot()) return library + ": this CPU lacks AVX512_BF16 and AMX";
  return library + " " + Matmuls::instance().implementation();
}

void bf16_gemm(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k, float alpha,
               const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
               int64_t ldc) {
  check_ready("gemm", m, n, k);
  if (m == 0 || n == 0) return;
  if (k == 0) return scale_only(c, ldc, m, n, beta);
  Matmuls& matmuls = Matmuls::instance();
  const std::lock_guard<std::mutex> lock(matmuls.mutex());
  // Each operand is rounded as stored (rows of A or of Aᵀ), then described by its strides.
  Operand op_a{reserve(matmuls.scratch_a, m * k), m, k, k, 1};
  if (trans_a == Transpose::No) {
    round_rows(matmuls.scratch_a.data(), a, m, k, lda);
  } else {  // stored [k, m]
    round_rows(matmuls.scratch_a.data(), a, k, m, lda);
    op_a.row_stride = 1;
    op_a.col_stride = m;
  }
  Operand op_b{reserve(matmuls.scratch_b, k * n), k, n, n, 1};
  if (trans_b == Transpose::No) {
    round_rows(matmuls.scratch_b.data(), b, k, n, ldb);
  } else {  // stored [n, k]
    round_rows(matmuls.scratch_b.data(), b, n, k, ldb);
    op_b.row_stride = 1;
    op_b.col_stride = k;
  }
  matmuls.run(op_a, op_b, alpha, beta, c, ldc);
}

void bf16_linear_forward(float* y, const float* x, WeightView w, int64_t tokens, int64_t in,
                         int64_t out, Accumulate accumulate) {
  check_ready("linear_forward", tokens, out, in);
  const float beta = accumulate == Accumulate::Yes ? 1.0f : 0.0f;
  if (tokens == 0 || out == 0) return;
  if (in == 0) return scale_only(y, out, tokens, out, beta);
  Matmuls& matmuls = Matmuls::instance();
  const std::lock_guard<std::mutex> lock(matmuls.mutex());
  uint16_t* x16 = reserve(matmuls.scratch_a, tokens * in);  // [tokens, in] bf16
  round_rows(x16, x, tokens, in, in);
  // op(B) = Wᵀ: W[out, in] read as [in, out] with strides (1, in).
  const Operand op_b{weight_bf16(w, out, in), in, out, 1, in};
  matmuls.run(Operand{x16, tokens, in, in, 1}, op_b, 1.0f, beta, y, out);
}

void bf16_linear_backward_input(float* dx, const float* dy, WeightView w, int64_t tokens,
                                int64_t in, int64_t out, Accumulate accumulate) {
  check_ready("linear_backward_input", tokens, in, out);
  const float beta = accumulate == Accumulate::Yes ? 1.0f : 0.0f;
  if (tokens == 0 || in == 0) return;
  if (out == 0) return scale_only(dx, in, tokens, in, beta);
  Matmuls& matmuls = Matmuls::instance();
  const std::lock_guard<std::mutex> lock(matmuls.mutex());
  uint16_t* dy16 = reserve(matmuls.scratch_a, tokens * out);  // [tokens, out] bf16
  round_rows(dy16, dy, tokens, out, out);
  const Operand op_b{weight_bf16(w, out, in), out, in, in, 1};  // W[out, in] as stored
  matmuls.run(Operand{dy16, tokens, out, out, 1}, op_b, 1.0f, beta, dx, in);
}

}  // namespace ll::cpu
