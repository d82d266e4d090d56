// See profiling_backend.h.
#include "backend/profiling_backend.h"

namespace ll {

void ProfilingBackend::push_region(const char* region) {
  regions_.emplace_back(region);
  path_ = path_.empty() ? regions_.back() : path_ + "/" + regions_.back();
  inner_.push_region(region);
}

void ProfilingBackend::pop_region() {
  if (regions_.empty()) return;
  regions_.pop_back();
  path_.clear();
  for (const std::string& region : regions_) path_ += (path_.empty() ? "" : "/") + region;
  inner_.pop_region();
}

ProfilingBackend::Timed::~Timed() {
  OpTime& time = profiler_.profile_[{profiler_.path_, op_}];
  time.seconds += std::chrono::duration<double>(Clock::now() - start_).count();
  ++time.calls;
}

float* ProfilingBackend::allocate(int64_t count) {
  const Timed timed(*this, "allocate");
  return inner_.allocate(count);
}

void ProfilingBackend::release(float* data) {
  const Timed timed(*this, "release");
  inner_.release(data);
}

void ProfilingBackend::copy(float* dst, const float* src, int64_t count) {
  const Timed timed(*this, "copy");
  inner_.copy(dst, src, count);
}

void ProfilingBackend::upload(float* dst, const float* host, int64_t count) {
  const Timed timed(*this, "upload");
  inner_.upload(dst, host, count);
}

void ProfilingBackend::download(float* host, const float* src, int64_t count) {
  const Timed timed(*this, "download");
  inner_.download(host, src, count);
}

WeightView ProfilingBackend::bind_weight(WeightView host, int64_t elements) {
  const Timed timed(*this, "bind_weight");
  return inner_.bind_weight(host, elements);
}

void ProfilingBackend::release_weight(WeightView bound) {
  const Timed timed(*this, "release_weight");
  inner_.release_weight(bound);
}

RopeTable ProfilingBackend::build_rope_table(const RopeSpec& spec) {
  const Timed timed(*this, "build_rope_table");
  return inner_.build_rope_table(spec);
}

void ProfilingBackend::gemm(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k,
                            float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
                            float beta, float* c, int64_t ldc) {
  const Timed timed(*this, "gemm");
  inner_.gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void ProfilingBackend::linear_forward(float* y, const float* x, WeightView w, int64_t tokens,
                                      int64_t in, int64_t out, Accumulate accumulate) {
  const Timed timed(*this, "linear_forward");
  inner_.linear_forward(y, x, w, tokens, in, out, accumulate);
}

void ProfilingBackend::linear_backward_input(float* dx, const float* dy, WeightView w,
                                             int64_t tokens, int64_t in, int64_t out,
                                             Accumulate accumulate) {
  const Timed timed(*this, "linear_backward_input");
  inner_.linear_backward_input(dx, dy, w, tokens, in, out, accumulate);
}

void ProfilingBackend::bias_add(float* y, WeightView bias, int64_t tokens, int64_t out) {
  const Timed timed(*this, "bias_add");
  inner_.bias_add(y, bias, tokens, out);
}

void ProfilingBackend::embedding_forward(float* out, const int32_t* ids, WeightView table,
                                         int64_t tokens, int64_t vocab, int64_t hidden) {
  const Timed timed(*this, "embedding_forward");
  inner_.embedding_forward(out, ids, table, tokens, vocab, hidden);
}

void ProfilingBackend::rmsnorm_forward(float* y, float* rstd, const float* x, WeightView weight,
                                       int64_t tokens, int64_t hidden, double eps) {
  const Timed timed(*this, "rmsnorm_forward");
  inner_.rmsnorm_forward(y, rstd, x, weight, tokens, hidden, eps);
}

void ProfilingBackend::rmsnorm_backward(float* dx, const float* dy, const float* x,
                                        const float* rstd, WeightView weight, int64_t tokens,
                                        int64_t hidden, Accumulate accumulate) {
  const Timed timed(*this, "rmsnorm_backward");
  inner_.rmsnorm_backward(dx, dy, x, rstd, weight, tokens, hidden, accumulate);
}

void ProfilingBackend::rope_forward(float* out, const float* in, const int32_t* positions,
                                    int64_t tokens, int64_t heads, const RopeTable& table) {
  const Timed timed(*this, "rope_forward");
  inner_.rope_forward(out, in, positions, tokens, heads, table);
}

void ProfilingBackend::rope_backward(float* d_in, const float* d_out, const int32_t* positions,
                                     int64_t tokens, int64_t heads, const RopeTable& table) {
  const Timed timed(*this, "rope_backward");
  inner_.rope_backward(d_in, d_out, positions, tokens, heads, table);
}

void ProfilingBackend::attention_forward(float* out, float* lse, const float* q, const float* k,
                                         const float* v, const AttentionShape& shape,
                                         std::span<const int32_t> cu_seqlens) {
  const Timed timed(*this, "attention_forward");
  inner_.attention_forward(out, lse, q, k, v, shape, cu_seqlens);
}

void ProfilingBackend::attention_backward(float* d_q, float* d_k, float* d_v, const float* d_out,
                                          const float* q, const float* k, const float* v,
                                          const float* out, const float* lse,
                                          const AttentionShape& shape,
                                          std::span<const int32_t> cu_seqlens) {
  const Timed timed(*this, "attention_backward");
  inner_.attention_backward(d_q, d_k, d_v, d_out, q, k, v, out, lse, shape, cu_seqlens);
}

void ProfilingBackend::attention_decode(float* out, const float* q, const float* k_cache,
                                        const float* v_cache, const DecodeAttentionShape& shape) {
  const Timed timed(*this, "attention_decode");
  inner_.attention_decode(out, q, k_cache, v_cache, shape);
}

void ProfilingBackend::swiglu_forward(float* h, const float* gate, const float* up, int64_t n) {
  const Timed timed(*this, "swiglu_forward");
  inner_.swiglu_forward(h, gate, up, n);
}

void ProfilingBackend::swiglu_backward(float* d_gate, float* d_up, const float* dh,
                                       const float* gate, const float* up, int64_t n) {
  const Timed timed(*this, "swiglu_backward");
  inner_.swiglu_backward(d_gate, d_up, dh, gate, up, n);
}

void ProfilingBackend::dropout_forward(float* out, const float* in, int64_t n, double p,
                                       uint64_t key, DropoutWindow window) {
  const Timed timed(*this, "dropout_forward");
  inner_.dropout_forward(out, in, n, p, key, window);
}

void ProfilingBackend::dropout_backward(float* dx, const float* dy, int64_t n, double p,
                                        uint64_t key, Accumulate accumulate, DropoutWindow window) {
  const Timed timed(*this, "dropout_backward");
  inner_.dropout_backward(dx, dy, n, p, key, accumulate, window);
}

void ProfilingBackend::lora_down_forward(float* u, const float* x, const float* a, int64_t tokens,
                                         int64_t in, int64_t r, const LoraDropout& dropout) {
  const Timed timed(*this, "lora_down_forward");
  inner_.lora_down_forward(u, x, a, tokens, in, r, dropout);
}

void ProfilingBackend::lora_down_backward(float* grad_a, float* dx, const float* du, const float* x,
                                          const float* a, int64_t tokens, int64_t in, int64_t r,
                                          const LoraDropout& dropout) {
  const Timed timed(*this, "lora_down_backward");
  inner_.lora_down_backward(grad_a, dx, du, x, a, tokens, in, r, dropout);
}

double ProfilingBackend::cross_entropy_forward_backward(float* dh, const float* h, WeightView w_lm,
                                                        const int32_t* labels, int64_t tokens,
                                                        int64_t hidden, int64_t vocab,
                                                        double loss_scale, int64_t chunk_tokens,
                                                        const VocabShard* shard) {
  const Timed timed(*this, "cross_entropy_forward_backward");
  return inner_.cross_entropy_forward_backward(dh, h, w_lm, labels, tokens, hidden, vocab,
                                               loss_scale, chunk_tokens, shard);
}

void ProfilingBackend::cross_entropy_forward(float* loss, const float* h, WeightView w_lm,
                                             const int32_t* labels, int64_t tokens, int64_t hidden,
                                             int64_t vocab, int64_t chunk_tokens,
                                             const VocabShard* shard) {
  const Timed timed(*this, "cross_entropy_forward");
  inner_.cross_entropy_forward(loss, h, w_lm, labels, tokens, hidden, vocab, chunk_tokens, shard);
}

void ProfilingBackend::lm_head_logits(float* logits, const float* h, WeightView w_lm,
                                      const int64_t* rows, int64_t n_rows, int64_t tokens,
                                      int64_t hidden, int64_t vocab) {
  const Timed timed(*this, "lm_head_logits");
  inner_.lm_head_logits(logits, h, w_lm, rows, n_rows, tokens, hidden, vocab);
}

void ProfilingBackend::adamw_update(float* param, const float* grad, float* exp_avg,
                                    float* exp_avg_sq, int64_t n, const AdamWConfig& config,
                                    int64_t step) {
  const Timed timed(*this, "adamw_update");
  inner_.adamw_update(param, grad, exp_avg, exp_avg_sq, n, config, step);
}

double ProfilingBackend::sum_of_squares(const float* x, int64_t n) {
  const Timed timed(*this, "sum_of_squares");
  return inner_.sum_of_squares(x, n);
}

void ProfilingBackend::scale(float* x, int64_t n, float s) {
  const Timed timed(*this, "scale");
  inner_.scale(x, n, s);
}

void ProfilingBackend::zero(float* x, int64_t n) {
  const Timed timed(*this, "zero");
  inner_.zero(x, n);
}

}  // namespace ll
