// See cpu_backend.h: each op forwards to the fp32 instantiation of the op of this folder
// (attention_decode has only the fp32 one).
#include "backend/cpu/cpu_backend.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "backend/cpu/bias.h"
#include "backend/cpu/cross_entropy.h"
#include "backend/cpu/dropout.h"
#include "backend/cpu/embedding.h"
#include "backend/cpu/gemm_thin.h"
#include "backend/cpu/rmsnorm.h"
#include "backend/cpu/swiglu.h"
#include "core/error.h"

namespace ll::cpu {

namespace {

constexpr size_t kAlignment = 64;  // a cache line: whole AVX-512 vectors never straddle two

void copy_floats(float* dst, const float* src, int64_t count) {
  if (count > 0 && dst != src) std::memmove(dst, src, static_cast<size_t>(count) * sizeof(float));
}

// cu_seqlens [documents + 1] -> the CPU kernels' document starts [documents] (the same
// offsets without the final total), after checking the layout.
std::vector<uint32_t> document_starts_of(std::span<const int32_t> cu_seqlens, int64_t tokens) {
  check(cu_seqlens.size() >= 2 && cu_seqlens.front() == 0 && cu_seqlens.back() == tokens,
        "attention",
        "cu_seqlens must start at 0 and end at the token count " + std::to_string(tokens));
  std::vector<uint32_t> starts;
  starts.reserve(cu_seqlens.size() - 1);
  for (size_t i = 0; i + 1 < cu_seqlens.size(); ++i) {
    check(cu_seqlens[i] < cu_seqlens[i + 1], "attention",
          "cu_seqlens must be strictly increasing (document " + std::to_string(i) + " is empty)");
    starts.push_back(static_cast<uint32_t>(cu_seqlens[i]));
  }
  return starts;
}

}  // namespace

CpuBackend::CpuBackend(Precision precision) : precision_(precision) {
  if (precision == Precision::Bf16 && !bf16_matmul_available()) {
    fail("cpu backend", "bf16 compute is unavailable: " + bf16_matmul_description());
  }
}

float* CpuBackend::allocate(int64_t count) {
  if (count < 0) fail("cpu backend", "negative allocation size " + std::to_string(count));
  if (count == 0) return nullptr;
  size_t bytes = static_cast<size_t>(count) * sizeof(float);
  bytes = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  void* data = std::aligned_alloc(kAlignment, bytes);
  if (!data) throw std::bad_alloc();
  return static_cast<float*>(data);
}

void CpuBackend::release(float* data) {
  std::free(data);
}

void CpuBackend::copy(float* dst, const float* src, int64_t count) {
  copy_floats(dst, src, count);
}

void CpuBackend::upload(float* dst, const float* host, int64_t count) {
  copy_floats(dst, host, count);
}

void CpuBackend::download(float* host, const float* src, int64_t count) {
  copy_floats(host, src, count);
}

void CpuBackend::gemm(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k,
                      float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
                      float beta, float* c, int64_t ldc) {
  // The LoRA branch's products (one dimension the rank): streamed kernels, both precisions.
  if (gemm_thin_applies(trans_a, trans_b, m, n, k)) {
    const OperandRounding rounding =
        precision_ == Precision::Bf16 ? OperandRounding::Bf16 : OperandRounding::None;
    return gemm_thin(rounding, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  if (precision_ == Precision::Bf16) {
    return bf16_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  cpu::gemm<float>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void CpuBackend::linear_forward(float* y, const float* x, WeightView w, int64_t tokens, int64_t in,
                                int64_t out, Accumulate accumulate) {
  cpu::linear_forward(precision_, y, x, w, tokens, in, out, accumulate);
}

void CpuBackend::linear_backward_input(float* dx, const float* dy, WeightView w, int64_t tokens,
                                       int64_t in, int64_t out, Accumulate accumulate) {
  cpu::linear_backward_input(precision_, dx, dy, w, tokens, in, out, accumulate);
}

void CpuBackend::bias_add(float* y, WeightView bias, int64_t tokens, int64_t out) {
  cpu::bias_add<float>(y, bias, tokens, out);
}

void CpuBackend::embedding_forward(float* out, const int32_t* ids, WeightView table, int64_t tokens,
                                   int64_t vocab, int64_t hidden) {
  cpu::embedding_forward<float>(out, ids, table, tokens, vocab, hidden);
}

void CpuBackend::rmsnorm_forward(float* y, float* rstd, const float* x, WeightView weight,
                                 int64_t tokens, int64_t hidden, double eps) {
  cpu::rmsnorm_forward<float>(y, rstd, x, weight, tokens, hidden, eps);
}

void CpuBackend::rmsnorm_backward(float* dx, const float* dy, const float* x, const float* rstd,
                                  WeightView weight, int64_t tokens, int64_t hidden,
                                  Accumulate accumulate) {
  cpu::rmsnorm_backward<float>(dx, dy, x, rstd, weight, tokens, hidden, accumulate);
}

void CpuBackend::rope_forward(float* out, const float* in, const int32_t* positions, int64_t tokens,
                              int64_t heads, const RopeTable& table) {
  cpu::rope_forward<float>(out, in, positions, tokens, heads, table);
}

void CpuBackend::rope_backward(float* d_in, const float* d_out, const int32_t* positions,
                               int64_t tokens, int64_t heads, const RopeTable& table) {
  cpu::rope_backward<float>(d_in, d_out, positions, tokens, heads, table);
}

void CpuBackend::attention_forward(float* out, float* lse, const float* q, const float* k,
                                   const float* v, const AttentionShape& shape,
                                   std::span<const int32_t> cu_seqlens) {
  const std::vector<uint32_t> starts = document_starts_of(cu_seqlens, shape.tokens);
  cpu::attention_forward<float>(out, lse, q, k, v, shape, starts);
}

void CpuBackend::attention_backward(float* d_q, float* d_k, float* d_v, const float* d_out,
                                    const float* q, const float* k, const float* v,
                                    const float* out, const float* lse, const AttentionShape& shape,
                                    std::span<const int32_t> cu_seqlens) {
  const std::vector<uint32_t> starts = document_starts_of(cu_seqlens, shape.tokens);
  cpu::attention_backward<float>(d_q, d_k, d_v, d_out, q, k, v, out, lse, shape, starts);
}

void CpuBackend::attention_decode(float* out, const float* q, const float* k_cache,
                                  const float* v_cache, const DecodeAttentionShape& shape) {
  cpu::attention_decode(out, q, k_cache, v_cache, shape);
}

void CpuBackend::swiglu_forward(float* h, const float* gate, const float* up, int64_t n) {
  cpu::swiglu_forward<float>(h, gate, up, n);
}

void CpuBackend::swiglu_backward(float* d_gate, float* d_up, const float* dh, const float* gate,
                                 const float* up, int64_t n) {
  cpu::swiglu_backward<float>(d_gate, d_up, dh, gate, up, n);
}

void CpuBackend::dropout_forward(float* out, const float* in, int64_t n, double p, uint64_t key,
                                 DropoutWindow window) {
  cpu::dropout_forward(out, in, n, p, key, window);
}

void CpuBackend::dropout_backward(float* dx, const float* dy, int64_t n, double p, uint64_t key,
                                  Accumulate accumulate, DropoutWindow window) {
  cpu::dropout_backward(dx, dy, n, p, key, accumulate, window);
}

namespace {
// The dropped input where the dropout is not folded in: per thread (ranks of a test may share
// this backend from several threads), kept to avoid allocating per call.
thread_local std::vector<float> dropped;

cpu::OperandRounding operand_rounding(Precision precision) {
  return precision == Precision::Bf16 ? cpu::OperandRounding::Bf16 : cpu::OperandRounding::None;
}
}  // namespace

// The folded kernels where the shapes are thin products (gemm_thin.h); elsewhere (no AVX-512,
// small test shapes) the dropped input in a scratch buffer and gemm.
void CpuBackend::lora_down_forward(float* u, const float* x, const float* a, int64_t tokens,
                                   int64_t in, int64_t r, const LoraDropout& dropout) {
  if (dropout.p > 0 && cpu::lora_down_fused_applies(tokens, in, r)) {
    return cpu::lora_down_forward(operand_rounding(precision_), u, x, a, tokens, in, r, dropout);
  }
  const float* input = x;
  if (dropout.p > 0) {
    dropped.resize(static_cast<size_t>(tokens * in));
    cpu::dropout_forward(dropped.data(), x, tokens * in, dropout.p, dropout.key, dropout.window);
    input = dropped.data();
  }
  gemm(Transpose::No, Transpose::Yes, tokens, r, in, 1.0f, input, in, a, in, 0.0f, u, r);
}

void CpuBackend::lora_down_backward(float* grad_a, float* dx, const float* du, const float* x,
                                    const float* a, int64_t tokens, int64_t in, int64_t r,
                                    const LoraDropout& dropout) {
  if (dropout.p > 0 && cpu::lora_down_fused_applies(tokens, in, r)) {
    return cpu::lora_down_backward(operand_rounding(precision_), grad_a, dx, du, x, a, tokens, in,
                                   r, dropout);
  }
  if (dropout.p == 0) {
    gemm(Transpose::Yes, Transpose::No, r, in, tokens, 1.0f, du, r, x, in, 1.0f, grad_a, in);
    gemm(Transpose::No, Transpose::No, tokens, in, r, 1.0f, du, r, a, in, 1.0f, dx, in);
    return;
  }
  dropped.resize(static_cast<size_t>(tokens * in));
  cpu::dropout_forward(dropped.data(), x, tokens * in, dropout.p, dropout.key, dropout.window);
  gemm(Transpose::Yes, Transpose::No, r, in, tokens, 1.0f, du, r, dropped.data(), in, 1.0f, grad_a,
       in);
  // d dropout(x) / dx: the same mask, times 1 / (1 - p).
  gemm(Transpose::No, Transpose::No, tokens, in, r, 1.0f, du, r, a, in, 0.0f, dropped.data(), in);
  cpu::dropout_backward(dx, dropped.data(), tokens * in, dropout.p, dropout.key, Accumulate::Yes,
                        dropout.window);
}

double CpuBackend::cross_entropy_forward_backward(float* dh, const float* h, WeightView w_lm,
                                                  const int32_t* labels, int64_t tokens,
                                                  int64_t hidden, int64_t vocab, double loss_scale,
                                                  int64_t chunk_tokens,
                                                  const ll::VocabShard* shard) {
  return cpu::cross_entropy_forward_backward<float>(dh, h, w_lm, labels, tokens, hidden, vocab,
                                                    loss_scale, chunk_tokens, shard, precision_);
}

void CpuBackend::cross_entropy_forward(float* loss, const float* h, WeightView w_lm,
                                       const int32_t* labels, int64_t tokens, int64_t hidden,
                                       int64_t vocab, int64_t chunk_tokens,
                                       const ll::VocabShard* shard) {
  cpu::cross_entropy_forward<float>(loss, h, w_lm, labels, tokens, hidden, vocab, chunk_tokens,
                                    shard, precision_);
}

void CpuBackend::lm_head_logits(float* logits, const float* h, WeightView w_lm, const int64_t* rows,
                                int64_t n_rows, int64_t tokens, int64_t hidden, int64_t vocab) {
  cpu::lm_head_logits<float>(logits, h, w_lm, rows, n_rows, tokens, hidden, vocab, precision_);
}

WeightView CpuBackend::bind_weight(WeightView host, int64_t elements) {
  check(host.space == MemorySpace::Host, "cpu backend", "cannot bind a weight in device memory");
  check(elements >= 0 && (elements == 0 || host.data != nullptr), "cpu backend",
        "binding a weight without data");
  return host;  // read in place
}

RopeTable CpuBackend::build_rope_table(const RopeSpec& spec) {
  return rope_table_build(spec.theta, spec.head_dim, spec.max_positions, spec.scaling);
}

void CpuBackend::adamw_update(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                              int64_t n, const AdamWConfig& config, int64_t step) {
  cpu::adamw_update(param, grad, exp_avg, exp_avg_sq, n, config, step);
}

double CpuBackend::sum_of_squares(const float* x, int64_t n) {
  return grad_sum_of_squares(x, n);
}

void CpuBackend::scale(float* x, int64_t n, float s) {
  grad_scale(x, n, s);
}

void CpuBackend::zero(float* x, int64_t n) {
  if (n > 0) std::memset(x, 0, static_cast<size_t>(n) * sizeof(float));
}

}  // namespace ll::cpu

namespace ll {

Backend& cpu_backend() {
  static cpu::CpuBackend backend(Precision::Fp32);
  return backend;
}

Backend& cpu_backend(Precision precision) {
  if (precision == Precision::Fp32) return cpu_backend();
  static cpu::CpuBackend backend(Precision::Bf16);  // throws (each call) where unavailable
  return backend;
}

bool cpu_bf16_available() {
  return cpu::bf16_matmul_available();
}

std::string cpu_bf16_description() {
  return cpu::bf16_matmul_description();
}

}  // namespace ll
