// A Backend that forwards every op to the CPU backend: tests derive from it to count or
// check the calls a model makes (allocations, attention calls, ...) without writing out the
// whole interface. A new Backend op is added here once.
#pragma once

#include <cstdint>
#include <span>

#include "backend/backend.h"

namespace ll::test {

class ForwardingBackend : public Backend {
 public:
  const char* name() const override { return "forwarding-cpu"; }
  MemorySpace memory_space() const override { return MemorySpace::Host; }
  Precision precision() const override { return cpu().precision(); }
  float* allocate(int64_t count) override { return cpu().allocate(count); }
  void release(float* data) override { cpu().release(data); }
  void copy(float* dst, const float* src, int64_t count) override { cpu().copy(dst, src, count); }
  void upload(float* dst, const float* host, int64_t count) override {
    cpu().upload(dst, host, count);
  }
  void download(float* host, const float* src, int64_t count) override {
    cpu().download(host, src, count);
  }
  void gemm(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k, float alpha,
            const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
            int64_t ldc) override {
    cpu().gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  void linear_forward(float* y, const float* x, WeightView w, int64_t tokens, int64_t in,
                      int64_t out, Accumulate accumulate) override {
    cpu().linear_forward(y, x, w, tokens, in, out, accumulate);
  }
  void linear_backward_input(float* dx, const float* dy, WeightView w, int64_t tokens, int64_t in,
                             int64_t out, Accumulate accumulate) override {
    cpu().linear_backward_input(dx, dy, w, tokens, in, out, accumulate);
  }
  void bias_add(float* y, WeightView bias, int64_t tokens, int64_t out) override {
    cpu().bias_add(y, bias, tokens, out);
  }
  void embedding_forward(float* out, const int32_t* ids, WeightView table, int64_t tokens,
                         int64_t vocab, int64_t hidden) override {
    cpu().embedding_forward(out, ids, table, tokens, vocab, hidden);
  }
  void rmsnorm_forward(float* y, float* rstd, const float* x, WeightView weight, int64_t tokens,
                       int64_t hidden, double eps) override {
    cpu().rmsnorm_forward(y, rstd, x, weight, tokens, hidden, eps);
  }
  void rmsnorm_backward(float* dx, const float* dy, const float* x, const float* rstd,
                        WeightView weight, int64_t tokens, int64_t hidden,
                        Accumulate accumulate) override {
    cpu().rmsnorm_backward(dx, dy, x, rstd, weight, tokens, hidden, accumulate);
  }
  void rope_forward(float* out, const float* in, const int32_t* positions, int64_t tokens,
                    int64_t heads, const RopeTable& table) override {
    cpu().rope_forward(out, in, positions, tokens, heads, table);
  }
  void rope_backward(float* d_in, const float* d_out, const int32_t* positions, int64_t tokens,
                     int64_t heads, const RopeTable& table) override {
    cpu().rope_backward(d_in, d_out, positions, tokens, heads, table);
  }
  void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                         const AttentionShape& shape,
                         std::span<const int32_t> cu_seqlens) override {
    cpu().attention_forward(out, lse, q, k, v, shape, cu_seqlens);
  }
  void attention_backward(float* d_q, float* d_k, float* d_v, const float* d_out, const float* q,
                          const float* k, const float* v, const float* out, const float* lse,
                          const AttentionShape& shape,
                          std::span<const int32_t> cu_seqlens) override {
    cpu().attention_backward(d_q, d_k, d_v, d_out, q, k, v, out, lse, shape, cu_seqlens);
  }
  void attention_decode(float* out, const float* q, const float* k_cache, const float* v_cache,
                        const DecodeAttentionShape& shape) override {
    cpu().attention_decode(out, q, k_cache, v_cache, shape);
  }
  void swiglu_forward(float* h, const float* gate, const float* up, int64_t n) override {
    cpu().swiglu_forward(h, gate, up, n);
  }
  void swiglu_backward(float* d_gate, float* d_up, const float* dh, const float* gate,
                       const float* up, int64_t n) override {
    cpu().swiglu_backward(d_gate, d_up, dh, gate, up, n);
  }
  void dropout_forward(float* out, const float* in, int64_t n, double p, uint64_t key,
                       DropoutWindow window) override {
    cpu().dropout_forward(out, in, n, p, key, window);
  }
  void dropout_backward(float* dx, const float* dy, int64_t n, double p, uint64_t key,
                        Accumulate accumulate, DropoutWindow window) override {
    cpu().dropout_backward(dx, dy, n, p, key, accumulate, window);
  }
  void lora_down_forward(float* u, const float* x, const float* a, int64_t tokens, int64_t in,
                         int64_t r, const LoraDropout& dropout) override {
    cpu().lora_down_forward(u, x, a, tokens, in, r, dropout);
  }
  void lora_down_backward(float* grad_a, float* dx, const float* du, const float* x, const float* a,
                          int64_t tokens, int64_t in, int64_t r,
                          const LoraDropout& dropout) override {
    cpu().lora_down_backward(grad_a, dx, du, x, a, tokens, in, r, dropout);
  }
  double cross_entropy_forward_backward(float* dh, const float* h, WeightView w_lm,
                                        const int32_t* labels, int64_t tokens, int64_t hidden,
                                        int64_t vocab, double loss_scale, int64_t chunk_tokens,
                                        const VocabShard* shard) override {
    return cpu().cross_entropy_forward_backward(dh, h, w_lm, labels, tokens, hidden, vocab,
                                                loss_scale, chunk_tokens, shard);
  }
  void cross_entropy_forward(float* loss, const float* h, WeightView w_lm, const int32_t* labels,
                             int64_t tokens, int64_t hidden, int64_t vocab, int64_t chunk_tokens,
                             const VocabShard* shard) override {
    cpu().cross_entropy_forward(loss, h, w_lm, labels, tokens, hidden, vocab, chunk_tokens, shard);
  }
  void lm_head_logits(float* logits, const float* h, WeightView w_lm, const int64_t* rows,
                      int64_t n_rows, int64_t tokens, int64_t hidden, int64_t vocab) override {
    cpu().lm_head_logits(logits, h, w_lm, rows, n_rows, tokens, hidden, vocab);
  }
  WeightView bind_weight(WeightView host, int64_t elements) override {
    return cpu().bind_weight(host, elements);
  }
  void release_weight(WeightView bound) override { cpu().release_weight(bound); }
  RopeTable build_rope_table(const RopeSpec& spec) override { return cpu().build_rope_table(spec); }
  void adamw_update(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                    const AdamWConfig& config, int64_t step) override {
    cpu().adamw_update(param, grad, exp_avg, exp_avg_sq, n, config, step);
  }
  double sum_of_squares(const float* x, int64_t n) override { return cpu().sum_of_squares(x, n); }
  void scale(float* x, int64_t n, float s) override { cpu().scale(x, n, s); }
  void zero(float* x, int64_t n) override { cpu().zero(x, n); }

 protected:
  static Backend& cpu() { return cpu_backend(); }
};

}  // namespace ll::test
