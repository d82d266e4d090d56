// See cross_entropy.h. Per chunk of labelled tokens:
//   gather h rows -> logits = h·W_lmᵀ (GEMM) -> per row: max, Σexp, loss, and, for training,
//   the logits overwritten in place by loss_scale·(softmax - onehot) -> dh = that · W_lm (GEMM)
//   -> scatter into dh.
#include "backend/cpu/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "backend/cpu/gemm.h"
#include "core/error.h"

namespace ll::cpu {
namespace {

enum class Gradient : uint8_t { No, Yes };

// The head's two products in `precision` (Bf16: float only).
template <typename T>
void head_forward(Precision precision, T* logits, const T* h, WeightView w, int64_t rows,
                  int64_t hidden, int64_t vocab) {
  if constexpr (std::is_same_v<T, float>) {
    return linear_forward(precision, logits, h, w, rows, hidden, vocab, Accumulate::No);
  } else {
    check(precision == Precision::Fp32, "cross_entropy", "bf16 compute needs float activations");
    linear_forward(logits, h, w, rows, hidden, vocab, Accumulate::No);
  }
}

template <typename T>
void head_backward(Precision precision, T* dh, const T* d_logits, WeightView w, int64_t rows,
                   int64_t hidden, int64_t vocab) {
  if constexpr (std::is_same_v<T, float>) {
    return linear_backward_input(precision, dh, d_logits, w, rows, hidden, vocab, Accumulate::No);
  } else {
    check(precision == Precision::Fp32, "cross_entropy", "bf16 compute needs float activations");
    linear_backward_input(dh, d_logits, w, rows, hidden, vocab, Accumulate::No);
  }
}

void check_arguments(const int32_t* labels, int64_t tokens, int64_t hidden, int64_t vocab,
                     int64_t full_vocab, int64_t chunk_tokens) {
  check(tokens >= 0 && hidden > 0 && vocab > 0 && vocab <= full_vocab, "cross_entropy",
        "bad sizes: tokens=" + std::to_string(tokens) + " hidden=" + std::to_string(hidden) +
            " vocab=" + std::to_string(vocab) + " of " + std::to_string(full_vocab));
  check(chunk_tokens >= 1, "cross_entropy",
        "chunk_tokens must be at least 1, got " + std::to_string(chunk_tokens));
  for (int64_t t = 0; t < tokens; ++t) {
    const int32_t label = labels[t];
    check(label == kIgnoreLabel || (label >= 0 && label < full_vocab), "cross_entropy",
          "label " + std::to_string(label) + " at token " + std::to_string(t) +
              " is outside the vocabulary of " + std::to_string(full_vocab) + " (and not -100)");
  }
}

// The shared loop over chunks of labelled rows. Per row of logits [vocab] (this rank's
// columns [first, first + vocab) of the whole vocabulary): the maximum, then Σ exp(logit -
// max) over 8 lanes (a shorter rounding chain than one running sum) and the label's logit,
// each combined over the ranks by shard->reduce when sharded; loss = max - label logit +
// log Σ. With Gradient::Yes the row becomes scale · (softmax - onehot(label)) and dh gets
// row · W_lm (this rank's share).
template <typename T>
void run_chunks(T* dh, std::vector<T>& losses, const T* h, WeightView w_lm, const int32_t* labels,
                const std::vector<int64_t>& rows, int64_t hidden, int64_t vocab, T scale,
                int64_t chunk_tokens, Gradient gradient, const VocabShard<T>* shard,
                Precision precision) {
  const int64_t n_rows = static_cast<int64_t>(rows.size());
  const int64_t chunk = std::min(chunk_tokens, n_rows);
  const int64_t first = shard ? shard->first : 0;
  losses.assign(rows.size(), T(0));
  if (n_rows == 0) return;
  std::vector<T> h_chunk(static_cast<size_t>(chunk * hidden));  // [chunk, hidden] T
  std::vector<T> logits(static_cast<size_t>(chunk * vocab));    // [chunk, vocab] T
  std::vector<T> stats(static_cast<size_t>(3 * chunk));         // max | Σexp | label logit
  std::vector<T> dh_chunk;                                      // [chunk, hidden] T
  if (gradient == Gradient::Yes) dh_chunk.resize(h_chunk.size());

  for (int64_t c0 = 0; c0 < n_rows; c0 += chunk) {
    const int64_t count = std::min(chunk, n_rows - c0);
    for (int64_t r = 0; r < count; ++r) {
      std::copy_n(h + rows[c0 + r] * hidden, hidden, h_chunk.data() + r * hidden);
    }
    head_forward(precision, logits.data(), h_chunk.data(), w_lm, count, hidden, vocab);
    T* row_max = stats.data();
    T* row_sum = stats.data() + count;
    T* label_logit = stats.data() + 2 * count;
    const bool parallel_rows = count * vocab >= 32768;
#pragma omp parallel for schedule(static) if (parallel_rows)
    for (int64_t r = 0; r < count; ++r) {
      const T* row = logits.data() + r * vocab;
      T m = row[0];
      for (int64_t v = 1; v < vocab; ++v) m = std::max(m, row[v]);
      row_max[r] = m;
    }
    if (shard) shard->reduce(row_max, count, ReduceOp::Max);
#pragma omp parallel for schedule(static) if (parallel_rows)
    for (int64_t r = 0; r < count; ++r) {
      T* row = logits.data() + r * vocab;
      const int64_t local = labels[rows[c0 + r]] - first;
      label_logit[r] = local >= 0 && local < vocab ? row[local] : T(0);
      // With a gradient to come, keep each exp in the row so it is computed once.
      constexpr int kLanes = 8;
      T lanes[kLanes] = {};
      for (int64_t v = 0; v < vocab; ++v) {
        const T e = std::exp(row[v] - row_max[r]);
        lanes[v % kLanes] += e;
        if (gradient == Gradient::Yes) row[v] = e;
      }
      T sum = T(0);
      for (T lane : lanes) sum += lane;
      row_sum[r] = sum;
    }
    if (shard) shard->reduce(row_sum, 2 * count, ReduceOp::Sum);  // Σexp and label logits
#pragma omp parallel for schedule(static) if (parallel_rows)
    for (int64_t r = 0; r < count; ++r) {
      losses[c0 + r] = (row_max[r] - label_logit[r]) + std::log(row_sum[r]);
      if (gradient == Gradient::No) continue;
      T* row = logits.data() + r * vocab;
      const T factor = scale / row_sum[r];  // softmax = e / sum
      for (int64_t v = 0; v < vocab; ++v) row[v] *= factor;
      const int64_t local = labels[rows[c0 + r]] - first;
      if (local >= 0 && local < vocab) row[local] -= scale;
    }
    if (gradient == Gradient::No) continue;
    head_backward(precision, dh_chunk.data(), logits.data(), w_lm, count, hidden, vocab);
    for (int64_t r = 0; r < count; ++r) {
      std::copy_n(dh_chunk.data() + r * hidden, hidden, dh + rows[c0 + r] * hidden);
    }
  }
}

std::vector<int64_t> labelled_rows(const int32_t* labels, int64_t tokens) {
  std::vector<int64_t> rows;
  for (int64_t t = 0; t < tokens; ++t) {
    if (labels[t] != kIgnoreLabel) rows.push_back(t);
  }
  return rows;
}

}  // namespace

template <typename T>
double cross_entropy_forward_backward(T* dh, const T* h, WeightView w_lm, const int32_t* labels,
                                      int64_t tokens, int64_t hidden, int64_t vocab,
                                      double loss_scale, int64_t chunk_tokens,
                                      const VocabShard<T>* shard, Precision precision) {
  check_arguments(labels, tokens, hidden, vocab, shard ? shard->full_vocab : vocab, chunk_tokens);
  const std::vector<int64_t> rows = labelled_rows(labels, tokens);
  // Ignored tokens contribute no loss, so their gradient is zero; labelled rows are written
  // by the chunks.
  for (int64_t t = 0; t < tokens; ++t) {
    if (labels[t] == kIgnoreLabel) std::fill_n(dh + t * hidden, hidden, T(0));
  }
  std::vector<T> losses;  // [labelled tokens] T, unscaled
  run_chunks(dh, losses, h, w_lm, labels, rows, hidden, vocab, static_cast<T>(loss_scale),
             chunk_tokens, Gradient::Yes, shard, precision);
  double total = 0.0;  // in token order, so the sum does not depend on threads or chunks
  for (T loss : losses) total += static_cast<double>(loss);
  return loss_scale * total;
}

template <typename T>
void cross_entropy_forward(T* loss, const T* h, WeightView w_lm, const int32_t* labels,
                           int64_t tokens, int64_t hidden, int64_t vocab, int64_t chunk_tokens,
                           const VocabShard<T>* shard, Precision precision) {
  check_arguments(labels, tokens, hidden, vocab, shard ? shard->full_vocab : vocab, chunk_tokens);
  const std::vector<int64_t> rows = labelled_rows(labels, tokens);
  std::vector<T> losses;
  run_chunks<T>(nullptr, losses, h, w_lm, labels, rows, hidden, vocab, T(1), chunk_tokens,
                Gradient::No, shard, precision);
  std::fill_n(loss, tokens, T(0));
  for (size_t r = 0; r < rows.size(); ++r) loss[rows[r]] = losses[r];
}

template <typename T>
void lm_head_logits(T* logits, const T* h, WeightView w_lm, const int64_t* rows, int64_t n_rows,
                    int64_t tokens, int64_t hidden, int64_t vocab, Precision precision) {
  check(n_rows >= 0 && hidden > 0 && vocab > 0, "lm_head_logits",
        "bad sizes: rows=" + std::to_string(n_rows) + " hidden=" + std::to_string(hidden) +
            " vocab=" + std::to_string(vocab));
  std::vector<T> gathered(static_cast<size_t>(n_rows * hidden));  // [n_rows, hidden] T
  for (int64_t r = 0; r < n_rows; ++r) {
    check(
        rows[r] >= 0 && rows[r] < tokens, "lm_head_logits",
        "row " + std::to_string(rows[r]) + " is outside the " + std::to_string(tokens) + " tokens");
    std::copy_n(h + rows[r] * hidden, hidden, gathered.data() + r * hidden);
  }
  head_forward(precision, logits, gathered.data(), w_lm, n_rows, hidden, vocab);
}

#define LL_INSTANTIATE(T)                                                                       \
  template double cross_entropy_forward_backward<T>(T*, const T*, WeightView, const int32_t*,   \
                                                    int64_t, int64_t, int64_t, double, int64_t, \
                                                    const VocabShard<T>*, Precision);           \
  template void cross_entropy_forward<T>(T*, const T*, WeightView, const int32_t*, int64_t,     \
                                         int64_t, int64_t, int64_t, const VocabShard<T>*,       \
                                         Precision);                                            \
  template void lm_head_logits<T>(T*, const T*, WeightView, const int64_t*, int64_t, int64_t,   \
                                  int64_t, int64_t, Precision);
LL_INSTANTIATE(float)
LL_INSTANTIATE(double)
#undef LL_INSTANTIATE

}  // namespace ll::cpu
