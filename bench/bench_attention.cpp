// CPU attention forward/backward speed (src/backend/cpu/attention.h), fp32, on the smol-135m
// attention shape (9 heads, 3 kv heads, head_dim 64): seq 512 × 4 sequences (the smol-135m
// micro-batch, the model loops over sequences), and one sequence of 1024 and 2048 tokens,
// each as one document and as 8 packed documents of equal length. Prints one JSON line per
// shape: median milliseconds over the runs (after one warm-up) and GFLOP/s, where FLOPs count
// only the (query, key) pairs inside the causal/document window: forward 4·pairs·head_dim
// per head (QKᵀ and PV), backward 2.5× that (QKᵀ recomputed, dO·Vᵀ, dV, dK, dQ).
//
//   ./build/release/bench/bench_attention [RUNS]     (default 5; OMP_NUM_THREADS sets threads)
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <random>
#include <vector>

#include "backend/cpu/attention.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Workload {
  const char* name;
  int64_t tokens;
  int64_t batch;  // sequences, run one after another as the model does
  int64_t documents;
};

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

void run(const Workload& w, int runs) {
  const ll::cpu::AttentionShape shape{w.tokens, 9, 3, 64};
  const int64_t q_size = w.tokens * shape.num_attention_heads * shape.head_dim;
  const int64_t kv_size = w.tokens * shape.num_key_value_heads * shape.head_dim;
  std::vector<uint32_t> starts;  // [documents] equal lengths
  for (int64_t d = 0; d < w.documents; ++d) {
    starts.push_back(static_cast<uint32_t>(d * w.tokens / w.documents));
  }

  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  const auto random = [&](int64_t n) {
    std::vector<float> x(n);
    for (auto& value : x) value = normal(rng);
    return x;
  };
  // [batch, T, heads*head_dim] and [batch, T, kv_heads*head_dim] fp32
  const std::vector<float> q = random(w.batch * q_size), k = random(w.batch * kv_size),
                           v = random(w.batch * kv_size), d_out = random(w.batch * q_size);
  std::vector<float> out(w.batch * q_size), d_q(w.batch * q_size);
  std::vector<float> d_k(w.batch * kv_size), d_v(w.batch * kv_size);
  std::vector<float> lse(w.batch * shape.num_attention_heads * w.tokens);

  const auto forward = [&] {
    for (int64_t b = 0; b < w.batch; ++b) {
      ll::cpu::attention_forward<float>(
          out.data() + b * q_size, lse.data() + b * shape.num_attention_heads * w.tokens,
          q.data() + b * q_size, k.data() + b * kv_size, v.data() + b * kv_size, shape, starts);
    }
  };
  const auto backward = [&] {
    for (int64_t b = 0; b < w.batch; ++b) {
      ll::cpu::attention_backward<float>(
          d_q.data() + b * q_size, d_k.data() + b * kv_size, d_v.data() + b * kv_size,
          d_out.data() + b * q_size, q.data() + b * q_size, k.data() + b * kv_size,
          v.data() + b * kv_size, out.data() + b * q_size,
          lse.data() + b * shape.num_attention_heads * w.tokens, shape, starts);
    }
  };
  const auto time_ms = [&](const auto& fn) {
    fn();  // warm-up
    std::vector<double> ms;
    for (int r = 0; r < runs; ++r) {
      const auto start = Clock::now();
      fn();
      ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    }
    return median(ms);
  };
  const double forward_ms = time_ms(forward);
  const double backward_ms = time_ms(backward);
  const double forward_flops =
      static_cast<double>(w.batch) * ll::cpu::attention_forward_flops(shape, starts);
  const double backward_flops = 2.5 * forward_flops;
  std::printf(
      "{\"bench\":\"attention\",\"workload\":\"%s\",\"dtype\":\"f32\",\"threads\":%d,"
      "\"seq\":%lld,\"batch\":%lld,\"documents\":%lld,\"heads\":%lld,\"kv_heads\":%lld,"
      "\"head_dim\":%lld,\"runs\":%d,\"forward_ms\":%.3f,\"forward_gflops\":%.2f,"
      "\"backward_ms\":%.3f,\"backward_gflops\":%.2f}\n",
      w.name, omp_get_max_threads(), static_cast<long long>(w.tokens),
      static_cast<long long>(w.batch), static_cast<long long>(w.documents),
      static_cast<long long>(shape.num_attention_heads),
      static_cast<long long>(shape.num_key_value_heads), static_cast<long long>(shape.head_dim),
      runs, forward_ms, forward_flops / forward_ms * 1e-6, backward_ms,
      backward_flops / backward_ms * 1e-6);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const int runs = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
    const Workload workloads[] = {
        {"smol-135m", 512, 4, 1},          {"smol-135m-seq1024", 1024, 1, 1},
        {"smol-135m-seq1024", 1024, 1, 8}, {"smol-135m-seq2048", 2048, 1, 1},
        {"smol-135m-seq2048", 2048, 1, 8},
    };
    for (const Workload& w : workloads) run(w, runs);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "bench_attention: %s\n", error.what());
    return 1;
  }
  return 0;
}
