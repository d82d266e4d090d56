// The op interface the model is written against (DESIGN.md "One model, many backends"). The
// model never calls a CPU routine directly: it allocates its activations through a Backend
// and runs every op through one, so a CUDA backend plugs in by implementing this class.
//
// Conventions, the same for every backend:
//   - Activations and gradients are fp32, row-major, [tokens, features] (PyTorch order), in
//     the backend's memory (`Buffer`). Norms, softmax and losses accumulate in fp32 or wider.
//   - Base weights are WeightViews (f32/bf16/f16, W[out, in] as HF stores them) that the
//     backend can read; the CPU backend reads the memory-mapped file directly.
//   - Small per-batch index arrays (token ids, labels, RoPE positions, document starts, row
//     indices) are host memory: a device backend stages them itself.
//   - LoRA tensors (model/lora.h) are passed as plain float pointers into the adapter's
//     parameter store, which is allocated through the backend (backend memory).
// The CPU backend (backend/cpu/cpu_backend.h) is the reference: every other backend's op is
// tested against it on the same inputs.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "backend/ops.h"

namespace ll {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  // What the matrix products compute in (ops.h Precision).
  virtual Precision precision() const = 0;

  // ---- regions (profiling; backend/profiling_backend.h) ----
  // The model names what its next ops belong to ("q_proj", "attention", "backward"); regions
  // nest. Backends that do not profile ignore them (a device backend may forward them to its
  // profiler's ranges). Use BackendRegion rather than calling these in pairs by hand.
  virtual void push_region(const char* region) { (void)region; }
  virtual void pop_region() {}

  // ---- memory (fp32 elements) ----
  // Where allocate() puts memory: Host memory may be read and written by host code directly.
  virtual MemorySpace memory_space() const = 0;
  virtual float* allocate(int64_t count) = 0;  // contents undefined; count 0 gives nullptr
  virtual void release(float* data) = 0;
  virtual void copy(float* dst, const float* src, int64_t count) = 0;  // both backend memory
  virtual void upload(float* dst, const float* host, int64_t count) = 0;
  virtual void download(float* host, const float* src, int64_t count) = 0;

  // ---- frozen weights ----
  // The backend's view of a frozen weight of `elements` elements, made once per model: the
  // CPU backend reads host memory in place and returns the same view (the memory-mapped file
  // stays where it is); a device backend uploads it once and returns a Device view, which
  // stays valid until release_weight. The host memory must outlive a host view.
  virtual WeightView bind_weight(WeightView host, int64_t elements) = 0;
  virtual void release_weight(WeightView bound) = 0;

  // ---- tables ----
  // The RoPE cos/sin table of `spec` (transformers' LlamaRotaryEmbedding, cpu/rope.h).
  virtual RopeTable build_rope_table(const RopeSpec& spec) = 0;

  // ---- dense algebra ----
  // C[m, n] = alpha · op(A) · op(B) + beta · C (cpu/gemm.h states the layout exactly).
  virtual void gemm(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k,
                    float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
                    float beta, float* c, int64_t ldc) = 0;
  // y[tokens, out] (+)= x[tokens, in] · W[out, in]ᵀ, and its input gradient
  // dx[tokens, in] (+)= dy[tokens, out] · W. No weight gradient: base weights are frozen.
  virtual void linear_forward(float* y, const float* x, WeightView w, int64_t tokens, int64_t in,
                              int64_t out, Accumulate accumulate) = 0;
  virtual void linear_backward_input(float* dx, const float* dy, WeightView w, int64_t tokens,
                                     int64_t in, int64_t out, Accumulate accumulate) = 0;
  // y[tokens, out] += bias[out] (a frozen bias, e.g. Qwen2's q/k/v; cpu/bias.h). No backward:
  // dy passes through unchanged and the bias gets no gradient.
  virtual void bias_add(float* y, WeightView bias, int64_t tokens, int64_t out) = 0;

  // ---- Llama layers ----
  // out[tokens, hidden] = table[ids] (ids host, each checked against vocab).
  virtual void embedding_forward(float* out, const int32_t* ids, WeightView table, int64_t tokens,
                                 int64_t vocab, int64_t hidden) = 0;
  // y = x · rsqrt(mean(x²) + eps) · weight, rstd[tokens] kept for the backward.
  virtual void rmsnorm_forward(float* y, float* rstd, const float* x, WeightView weight,
                               int64_t tokens, int64_t hidden, double eps) = 0;
  virtual void rmsnorm_backward(float* dx, const float* dy, const float* x, const float* rstd,
                                WeightView weight, int64_t tokens, int64_t hidden,
                                Accumulate accumulate) = 0;
  // In place allowed (out == in). positions: host [tokens].
  virtual void rope_forward(float* out, const float* in, const int32_t* positions, int64_t tokens,
                            int64_t heads, const RopeTable& table) = 0;
  virtual void rope_backward(float* d_in, const float* d_out, const int32_t* positions,
                             int64_t tokens, int64_t heads, const RopeTable& table) = 0;
  // Variable-length causal GQA attention: one call for a whole packed micro-batch of
  // shape.tokens rows, q/out [tokens, heads*head_dim], k/v [tokens, kv_heads*head_dim], split
  // into documents by cu_seqlens (host, int32, flash-attention's and cuDNN's layout:
  // [documents + 1], 0 = cu_seqlens[0] < ... < cu_seqlens[documents] = tokens); a query
  // attends to the keys of its own document up to itself. lse [heads, tokens] is the
  // forward's log-sum-exp, which the backward reads.
  virtual void attention_forward(float* out, float* lse, const float* q, const float* k,
                                 const float* v, const AttentionShape& shape,
                                 std::span<const int32_t> cu_seqlens) = 0;
  virtual void attention_backward(float* d_q, float* d_k, float* d_v, const float* d_out,
                                  const float* q, const float* k, const float* v, const float* out,
                                  const float* lse, const AttentionShape& shape,
                                  std::span<const int32_t> cu_seqlens) = 0;
  // Generation: the m new queries q[m, heads*head_dim] of ONE sequence at positions
  // p0 .. p0+m-1 attend causally to rows [0, p0+m) of its caches k_cache, v_cache
  // [>= p0+m, kv_heads*head_dim] (which already hold the new rows); out[m, heads*head_dim].
  // cpu/attention_decode.h states the formula; no lse (nothing is differentiated).
  virtual void attention_decode(float* out, const float* q, const float* k_cache,
                                const float* v_cache, const DecodeAttentionShape& shape) = 0;
  // h = silu(gate) · up, elementwise over n.
  virtual void swiglu_forward(float* h, const float* gate, const float* up, int64_t n) = 0;
  virtual void swiglu_backward(float* d_gate, float* d_up, const float* dh, const float* gate,
                               const float* up, int64_t n) = 0;
  // LoRA dropout: out = in · mask / (1 - p), mask element i kept with probability 1 - p, a
  // pure function of (key, i) so a recomputed forward and the backward see the same mask.
  // The backward applies the same mask and scale to dy, written or added into dx. `window`
  // places a column slice in the whole tensor's mask (tensor parallelism; cpu/dropout.h).
  virtual void dropout_forward(float* out, const float* in, int64_t n, double p, uint64_t key,
                               DropoutWindow window) = 0;
  virtual void dropout_backward(float* dx, const float* dy, int64_t n, double p, uint64_t key,
                                Accumulate accumulate, DropoutWindow window) = 0;
  // A LoRA branch's down-projection of its dropped-out input, the dropout folded into the
  // products where the backend can (no dropped copy of x; cpu/gemm_thin.h), the same values
  // as dropout_forward / dropout_backward around gemm; p = 0 is the plain product:
  //   u[tokens, r] = dropout(x)[tokens, in] · A[r, in]ᵀ
  //   grad_a[r, in] += duᵀ · dropout(x) ; dx[tokens, in] += dropout'(du · A)
  virtual void lora_down_forward(float* u, const float* x, const float* a, int64_t tokens,
                                 int64_t in, int64_t r, const LoraDropout& dropout) = 0;
  virtual void lora_down_backward(float* grad_a, float* dx, const float* du, const float* x,
                                  const float* a, int64_t tokens, int64_t in, int64_t r,
                                  const LoraDropout& dropout) = 0;

  // ---- LM head + cross-entropy over chunks of tokens (never the whole logits) ----
  // labels: host [tokens], -100 = ignored. Returns loss_scale · Σ loss, writes dh. With a
  // `shard`, w_lm holds `vocab` rows of the whole vocabulary and dh is this rank's share
  // (cpu/cross_entropy.h VocabShard; the reductions run on the shard's communicator).
  virtual double cross_entropy_forward_backward(float* dh, const float* h, WeightView w_lm,
                                                const int32_t* labels, int64_t tokens,
                                                int64_t hidden, int64_t vocab, double loss_scale,
                                                int64_t chunk_tokens,
                                                const VocabShard* shard = nullptr) = 0;
  // loss[tokens] per token (0 where ignored).
  virtual void cross_entropy_forward(float* loss, const float* h, WeightView w_lm,
                                     const int32_t* labels, int64_t tokens, int64_t hidden,
                                     int64_t vocab, int64_t chunk_tokens,
                                     const VocabShard* shard = nullptr) = 0;
  // logits[n_rows, vocab] of the rows `rows` (host) of h[tokens, hidden].
  virtual void lm_head_logits(float* logits, const float* h, WeightView w_lm, const int64_t* rows,
                              int64_t n_rows, int64_t tokens, int64_t hidden, int64_t vocab) = 0;

  // ---- optimizer (the LoRA parameters, gradients and moments: fp32 backend memory) ----
  // One torch.optim.AdamW step on one tensor [n]; `step` is 1-based (cpu/adamw.h).
  virtual void adamw_update(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                            int64_t n, const AdamWConfig& config, int64_t step) = 0;
  // Σ x[i]² accumulated in double (a tensor's share of a squared norm).
  virtual double sum_of_squares(const float* x, int64_t n) = 0;
  // x[n] *= s.
  virtual void scale(float* x, int64_t n, float s) = 0;
  // x[n] = 0.
  virtual void zero(float* x, int64_t n) = 0;
};

// The process's CPU backend (OpenMP, AVX-512/AVX2 kernels): the fp32 reference implementation.
Backend& cpu_backend();
// The process's CPU backend of `precision`: Bf16 runs the matrix products through oneDNN
// (backend/cpu/matmul_bf16.h). Throws ll::Error for Bf16 where bf16_matmul_available() is
// false; callers check cpu_bf16_available() first and fall back with a message.
Backend& cpu_backend(Precision precision);
bool cpu_bf16_available();
std::string cpu_bf16_description();  // what runs bf16 products, or why nothing does

// A region for the lifetime of the object (Backend::push_region).
class BackendRegion {
 public:
  BackendRegion(Backend& backend, const char* region) : backend_(backend) {
    backend_.push_region(region);
  }
  ~BackendRegion() { backend_.pop_region(); }
  BackendRegion(const BackendRegion&) = delete;
  BackendRegion& operator=(const BackendRegion&) = delete;

 private:
  Backend& backend_;
};

// fp32 memory of a backend, owned (RAII). Grows on resize; contents after a resize that
// reallocates are undefined, like a fresh allocation.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend& backend, int64_t count) { resize(backend, count); }
  ~Buffer() { reset(); }
  Buffer(Buffer&& other) noexcept { swap(other); }
  Buffer& operator=(Buffer&& other) noexcept {
    if (this != &other) {
      reset();
      swap(other);
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void resize(Backend& backend, int64_t count);
  void reset();
  void swap(Buffer& other) noexcept;

  float* data() { return data_; }
  const float* data() const { return data_; }
  int64_t size() const { return size_; }
  Backend* backend() const { return backend_; }  // null before the first resize

 private:
  Backend* backend_ = nullptr;
  float* data_ = nullptr;
  int64_t size_ = 0;
  int64_t capacity_ = 0;
};

}  // namespace ll
