// See sampling.h.
#include "model/sampling.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <string>

#include "core/error.h"
#include "core/random.h"

namespace ll {

namespace {

constexpr const char* kOrigin = "sampling";
constexpr float kRemoved = -std::numeric_limits<float>::infinity();

// Token ids ordered from the most to the least likely (equal logits: lower id first; NaN last).
std::vector<int32_t> ids_by_logit_descending(std::span<const float> logits) {
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    const float la = logits[static_cast<size_t>(a)];
    const float lb = logits[static_cast<size_t>(b)];
    if (std::isnan(lb)) return !std::isnan(la);
    return la > lb;
  });
  return order;
}

// softmax(logits) in double; tokens at -inf get 0. All -inf (or empty) is an error.
std::vector<double> softmax_double(std::span<const float> logits) {
  double max_logit = -std::numeric_limits<double>::infinity();
  for (float value : logits) {
    if (!std::isnan(value)) max_logit = std::max(max_logit, static_cast<double>(value));
  }
  check(std::isfinite(max_logit), kOrigin, "no token has a finite logit to sample from");
  std::vector<double> probs(logits.size());
  double sum = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    const double value = logits[i];
    probs[i] = std::isnan(value) ? 0.0 : std::exp(value - max_logit);
    sum += probs[i];
  }
  for (double& p : probs) p /= sum;
  return probs;
}

}  // namespace

void check_sampling_config(const SamplingConfig& config) {
  check(std::isfinite(config.temperature) && config.temperature > 0, kOrigin,
        "temperature must be > 0 (got " + std::to_string(config.temperature) +
            "); use greedy decoding for temperature 0");
  check(config.top_k >= 0, kOrigin,
        "top_k must be >= 0 (0 turns it off; got " + std::to_string(config.top_k) + ")");
  check(std::isfinite(config.top_p) && config.top_p > 0 && config.top_p <= 1, kOrigin,
        "top_p must be in (0, 1] (1 turns it off; got " + std::to_string(config.top_p) + ")");
}

void apply_temperature(std::span<float> logits, double temperature) {
  // transformers divides the fp32 scores by the Python float: scores / temperature.
  const auto t = static_cast<float>(temperature);
  for (float& value : logits) value /= t;
}

void apply_top_k(std::span<float> logits, int64_t top_k) {
  if (top_k <= 0) return;
  const auto k = static_cast<size_t>(std::min<int64_t>(top_k, static_cast<int64_t>(logits.size())));
  if (k == 0 || k >= logits.size()) return;
  std::vector<float> sorted(logits.begin(), logits.end());
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(k - 1),
                   sorted.end(), std::greater<float>());
  const float kth = sorted[k - 1];
  for (float& value : logits) {
    if (value < kth) value = kRemoved;
  }
}

void apply_top_p(std::span<float> logits, double top_p) {
  if (top_p >= 1.0 || logits.empty()) return;
  const std::vector<double> probs = softmax_double(logits);
  const std::vector<int32_t> order = ids_by_logit_descending(logits);
  // transformers: ascending cumulative probability, remove while <= 1 - top_p, and keep the
  // most likely token in any case. Walk from the least likely end.
  const double threshold = 1.0 - top_p;
  double cumulative = 0;
  for (size_t r = order.size(); r-- > 1;) {  // r = 0 (the most likely) is always kept
    const size_t id = static_cast<size_t>(order[r]);
    cumulative += probs[id];
    if (cumulative > threshold) break;
    logits[id] = kRemoved;
  }
}

int32_t argmax_token(std::span<const float> logits) {
  check(!logits.empty(), kOrigin, "empty logits");
  size_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best] || (std::isnan(logits[best]) && !std::isnan(logits[i]))) {
      best = i;
    }
  }
  return static_cast<int32_t>(best);
}

TokenSampler::TokenSampler(SamplingConfig config, uint64_t seed) : config_(config), rng_(seed) {
  check_sampling_config(config_);
}

std::vector<double> TokenSampler::probabilities(std::span<const float> logits) const {
  std::vector<float> row(logits.begin(), logits.end());
  if (config_.temperature != 1.0) apply_temperature(row, config_.temperature);
  apply_top_k(row, config_.top_k);
  apply_top_p(row, config_.top_p);
  return softmax_double(row);
}

double TokenSampler::uniform() {
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

int32_t TokenSampler::next(std::span<const float> logits) {
  if (config_.decoding == Decoding::Greedy) return argmax_token(logits);
  const std::vector<double> probs = probabilities(logits);
  // Inverse CDF: the first token whose cumulative probability exceeds u. A token of
  // probability 0 (removed) is never chosen: its interval is empty.
  const double u = uniform();
  double cumulative = 0;
  size_t last_possible = 0;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] <= 0) continue;
    last_possible = i;
    cumulative += probs[i];
    if (u < cumulative) return static_cast<int32_t>(i);
  }
  return static_cast<int32_t>(last_possible);  // u within rounding of 1
}

uint64_t sequence_seed(uint64_t seed, uint64_t index) {
  return splitmix64_mix(seed + (index + 1) * kSplitMix64Gamma);  // draw `index` of seed's stream
}

}  // namespace ll
