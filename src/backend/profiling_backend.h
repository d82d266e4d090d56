// `--profile`: a Backend that runs every op on another backend and adds up the wall time of
// each, by the op's name and the region the model was in when it called it (the projection,
// attention, the LM head, the optimizer; Backend::push_region). The trainer reads the table
// after the steady-state steps and prints it, with communication and the host's remaining
// time, in its log and metrics.
//
// Times are wall clock around each call. The CPU backend's ops are synchronous, so each time
// is that op's; a device backend that queues work would have to synchronise per op to be
// timed this way (the profile then says so in its "backend" field).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"

namespace ll {

struct OpTime {
  double seconds = 0;
  int64_t calls = 0;
};

// Region path ("backward/q_proj", "" outside every region) and op name -> time.
using OpProfile = std::map<std::pair<std::string, std::string>, OpTime>;

class ProfilingBackend final : public Backend {
 public:
  explicit ProfilingBackend(Backend& inner) : inner_(inner) {}

  const OpProfile& profile() const { return profile_; }
  void reset() { profile_.clear(); }
  Backend& inner() const { return inner_; }

  const char* name() const override { return inner_.name(); }
  Precision precision() const override { return inner_.precision(); }
  MemorySpace memory_space() const override { return inner_.memory_space(); }
  void push_region(const char* region) override;
  void pop_region() override;

  float* allocate(int64_t count) override;
  void release(float* data) override;
  void copy(float* dst, const float* src, int64_t count) override;
  void upload(float* dst, const float* host, int64_t count) override;
  void download(float* host, const float* src, int64_t count) override;
  WeightView bind_weight(WeightView host, int64_t elements) override;
  void release_weight(WeightView bound) override;
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
                                        const VocabShard* shard) override;
  void cross_entropy_forward(float* loss, const float* h, WeightView w_lm, const int32_t* labels,
                             int64_t tokens, int64_t hidden, int64_t vocab, int64_t chunk_tokens,
                             const VocabShard* shard) override;
  void lm_head_logits(float* logits, const float* h, WeightView w_lm, const int64_t* rows,
                      int64_t n_rows, int64_t tokens, int64_t hidden, int64_t vocab) override;
  void adamw_update(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                    const AdamWConfig& config, int64_t step) override;
  double sum_of_squares(const float* x, int64_t n) override;
  void scale(float* x, int64_t n, float s) override;
  void zero(float* x, int64_t n) override;

 private:
  using Clock = std::chrono::steady_clock;
  // Adds its lifetime to (the current region, op): one per forwarded call.
  class Timed {
   public:
    Timed(ProfilingBackend& profiler, const char* op)
        : profiler_(profiler), op_(op), start_(Clock::now()) {}
    ~Timed();
    Timed(const Timed&) = delete;
    Timed& operator=(const Timed&) = delete;

   private:
    ProfilingBackend& profiler_;
    const char* op_;
    Clock::time_point start_;
  };

  Backend& inner_;
  std::vector<std::string> regions_;
  std::string path_;  // regions_ joined by '/'
  OpProfile profile_;
};

}  // namespace ll
