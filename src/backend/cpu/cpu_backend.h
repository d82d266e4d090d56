// The CPU implementation of the Backend interface: host memory (64-byte aligned) and the fp32
// instantiations of the ops in this folder. The Fp32 one is the reference every other backend
// is compared with; the Bf16 one runs the matrix products (gemm, the linear layers, the LM
// head) through oneDNN in bf16 (matmul_bf16.h) and every other op as the Fp32 one does.
#pragma once

#include "backend/backend.h"
#include "backend/cpu/adamw.h"
#include "backend/cpu/attention.h"
#include "backend/cpu/attention_decode.h"
#include "backend/cpu/cross_entropy.h"
#include "backend/cpu/dropout.h"
#include "backend/cpu/gemm.h"
#include "backend/cpu/matmul_bf16.h"
#include "backend/cpu/rope.h"
#include "backend/cpu/weights.h"

namespace ll::cpu {

class CpuBackend final : public Backend {
 public:
  // Throws ll::Error for Precision::Bf16 where bf16_matmul_available() is false.
  explicit CpuBackend(Precision precision);
  const char* name() const override { return "cpu"; }
  Precision precision() const override { return precision_; }
  MemorySpace memory_space() const override { return MemorySpace::Host; }

  float* allocate(int64_t count) override;
  void release(float* data) override;
  void copy(float* dst, const float* src, int64_t count) override;
  void upload(float* dst, const float* host, int64_t count) override;
  void download(float* host, const float* src, int64_t count) override;

  WeightView bind_weight(WeightView host, int64_t elements) override;
  void release_weight(WeightView) override {}
  RopeTable build_rope_table(const RopeSpec& spec) override;

  void gemm(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k, float alpha,
            const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
            int64_t ldc) override;
  void linear_forward(float* y, const float* x, WeightView w, int64_t tokens, int64_t in,
                      int64_t out, Accumulate accumulate) override;
  void linear_backward_input(float* dx, const float* dy, WeightView w, int64_t tokens, int64_t in,
                             int64_t out, Accumulate accumulate) override;
  void bias_add(float* y, WeightView bias, int64_t tokens, int64_t out) override;

  void embedding_forward(float* out, const int32_t* ids, WeightView table, int64_t tokens,
                         int64_t vocab, int64_t hidden) override;
  void rmsnorm_forward(float* y, float* rstd, const float* x, WeightView weight, int64_t tokens,
                       int64_t hidden, double eps) override;
  void rmsnorm_backward(float* dx, const float* dy, const float* x, const float* rstd,
                        WeightView weight, int64_t tokens, int64_t hidden,
                        Accumulate accumulate) override;
  void rope_forward(float* out, const float* in, const int32_t* positions, int64_t tokens,
                    int64_t heads, const RopeTable& table) override;
  void rope_backward(float* d_in, const float* d_out, const int32_t* positions, int64_t tokens,
                     int64_t heads, const RopeTable& table) override;
  void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                         const AttentionShape& shape, std::span<const int32_t> cu_seqlens) override;
  void attention_backward(float* d_q, float* d_k, float* d_v, const float* d_out, const float* q,
                          const float* k, const float* v, const float* out, const float* lse,
                          const AttentionShape& shape,
                          std::span<const int32_t> cu_seqlens) override;
  void attention_decode(float* out, const float* q, const float* k_cache, const float* v_cache,
                        const DecodeAttentionShape& shape) override;
  void swiglu_forward(float* h, const float* gate, const float* up, int64_t n) override;
  void swiglu_backward(float* d_gate, float* d_up, const float* dh, const float* gate,
                       const float* up, int64_t n) override;
  void dropout_forward(float* out, const float* in, int64_t n, double p, uint64_t key,
                       DropoutWindow window) override;
  void dropout_backward(float* dx, const float* dy, int64_t n, double p, uint64_t key,
                        Accumulate accumulate, DropoutWindow window) override;
  void lora_down_forward(float* u, const float* x, const float* a, int64_t tokens, int64_t in,
                         int64_t r, const LoraDropout& dropout) override;
  void lora_down_backward(float* grad_a, float* dx, const float* du, const float* x, const float* a,
                          int64_t tokens, int64_t in, int64_t r,
                          const LoraDropout& dropout) override;

  double cross_entropy_forward_backward(float* dh, const float* h, WeightView w_lm,
                                        const int32_t* labels, int64_t tokens, int64_t hidden,
                                        int64_t vocab, double loss_scale, int64_t chunk_tokens,
                                        const ll::VocabShard* shard) override;
  void cross_entropy_forward(float* loss, const float* h, WeightView w_lm, const int32_t* labels,
                             int64_t tokens, int64_t hidden, int64_t vocab, int64_t chunk_tokens,
                             const ll::VocabShard* shard) override;
  void lm_head_logits(float* logits, const float* h, WeightView w_lm, const int64_t* rows,
                      int64_t n_rows, int64_t tokens, int64_t hidden, int64_t vocab) override;

  void adamw_update(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                    const AdamWConfig& config, int64_t step) override;
  double sum_of_squares(const float* x, int64_t n) override;
  void scale(float* x, int64_t n, float s) override;
  void zero(float* x, int64_t n) override;

 private:
  Precision precision_;
};

}  // namespace ll::cpu
