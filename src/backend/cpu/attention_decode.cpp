// See attention_decode.h.
#include "backend/cpu/attention_decode.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"

namespace ll::cpu {

namespace {

constexpr const char* kOrigin = "attention_decode";
// Below this many multiply-adds a call runs on one thread: starting a parallel region costs
// more than the work.
constexpr int64_t kParallelMinMacs = int64_t{1} << 16;

void check_shape(const DecodeAttentionShape& s) {
  check(s.new_tokens >= 1 && s.past_tokens >= 0, kOrigin,
        "need new_tokens >= 1 and past_tokens >= 0 (got " + std::to_string(s.new_tokens) + ", " +
            std::to_string(s.past_tokens) + ")");
  check(s.num_attention_heads > 0 && s.num_key_value_heads > 0 && s.head_dim > 0, kOrigin,
        "heads, kv heads and head_dim must be > 0");
  check(s.num_attention_heads % s.num_key_value_heads == 0, kOrigin,
        "num_attention_heads (" + std::to_string(s.num_attention_heads) +
            ") is not a multiple of num_key_value_heads (" + std::to_string(s.num_key_value_heads) +
            ")");
}

// a · b over n elements with 8 independent partial sums (the compiler maps them onto vector
// lanes; a single running sum could not be vectorised without reassociation).
inline float dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int l = 0; l < 8; ++l) acc[l] += a[i + l] * b[i + l];
  }
  float tail = 0.0f;
  for (; i < n; ++i) tail += a[i] * b[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

// One (head, query) row: out_row [head_dim] from q_row [head_dim] against keys [0, keys).
// `scores` is [keys] scratch.
void attend_row(float* out_row, const float* q_row, const float* k_head, const float* v_head,
                int64_t kv_stride, int64_t keys, int64_t head_dim, float scale, float* scores) {
  float max_score = -INFINITY;
  for (int64_t j = 0; j < keys; ++j) {
    const float s = dot(q_row, k_head + j * kv_stride, head_dim) * scale;
    scores[j] = s;
    max_score = std::max(max_score, s);
  }
  float sum = 0.0f;
  for (int64_t j = 0; j < keys; ++j) {
    scores[j] = std::exp(scores[j] - max_score);
    sum += scores[j];
  }
  std::fill(out_row, out_row + head_dim, 0.0f);
  for (int64_t j = 0; j < keys; ++j) {
    const float p = scores[j];
    const float* v_row = v_head + j * kv_stride;
    for (int64_t e = 0; e < head_dim; ++e) out_row[e] += p * v_row[e];
  }
  // Normalise once at the end (as the flash kernel does): one division per element.
  const float inv_sum = 1.0f / sum;
  for (int64_t e = 0; e < head_dim; ++e) out_row[e] *= inv_sum;
}

}  // namespace

void attention_decode(float* out, const float* q, const float* k_cache, const float* v_cache,
                      const DecodeAttentionShape& shape) {
  check_shape(shape);
  const int64_t m = shape.new_tokens;
  const int64_t p0 = shape.past_tokens;
  const int64_t n_heads = shape.num_attention_heads;
  const int64_t d = shape.head_dim;
  const int64_t group = n_heads / shape.num_key_value_heads;
  const int64_t q_stride = n_heads * d;
  const int64_t kv_stride = shape.num_key_value_heads * d;
  // head_dim ** -0.5 in double (transformers' Python float), rounded once to fp32.
  const auto scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));

  // Multiply-adds: QKᵀ and PV over every (query, key) pair inside the causal window.
  const int64_t pairs = m * p0 + m * (m + 1) / 2;
  const bool parallel = 2 * pairs * d * n_heads >= kParallelMinMacs;
  const int threads = parallel ? omp_get_max_threads() : 1;
  // Per-thread score rows, allocated before the parallel region so nothing throws inside it.
  const int64_t keys_max = p0 + m;
  std::vector<float> scratch(static_cast<size_t>(threads * keys_max));
  const int64_t tasks = n_heads * m;

#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (parallel)
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t h = task % n_heads;
    const int64_t i = task / n_heads;  // query i sits at position p0 + i
    const int64_t kv_head = h / group;
    attend_row(out + i * q_stride + h * d, q + i * q_stride + h * d, k_cache + kv_head * d,
               v_cache + kv_head * d, kv_stride, p0 + i + 1, d, scale,
               scratch.data() + omp_get_thread_num() * keys_max);
  }
}

}  // namespace ll::cpu
