// Choosing the next token from a row of logits, as transformers' `generate` does:
//
//   greedy (do_sample=False): argmax, the first maximum on ties (torch.argmax);
//   sampling (do_sample=True): logits / temperature (TemperatureLogitsWarper) -> top-k
//     (TopKLogitsWarper) -> top-p (TopPLogitsWarper) -> softmax -> one multinomial draw.
//
// The warpers run in transformers' order and remove tokens by setting their logit to -inf:
//   top-k keeps every token whose logit is >= the k-th largest (ties at the k-th value are all
//     kept, as `scores < topk(scores, k).values[-1]` removes only smaller ones); k = 0 is off;
//   top-p sorts ascending, takes the cumulative softmax probability and removes the tokens
//     whose cumulative probability is <= 1 - top_p, always keeping the most likely one: the
//     smallest set of most likely tokens whose probability reaches top_p; 1.0 is off.
// Probabilities are computed in double (torch uses fp32), which can only matter for a token
// whose cumulative probability lies within fp32 rounding of 1 - top_p. Equal logits are ordered
// by id (the lower id counts as more likely), where torch.sort leaves the order open.
//
// The draw uses a per-sampler std::mt19937_64 seeded from the caller's seed, so a seed gives
// the same tokens on every run and machine (the draw maps 53 random bits to [0, 1) itself,
// without the implementation-defined std::uniform_real_distribution).
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace ll {

enum class Decoding { Greedy, Sample };

struct SamplingConfig {
  Decoding decoding = Decoding::Greedy;
  double temperature = 1.0;  // > 0
  int64_t top_k = 0;         // 0: no top-k filter
  double top_p = 1.0;        // in (0, 1]; 1: no top-p filter
};

// Errors (naming the setting) for temperature <= 0, top_k < 0, top_p outside (0, 1], or
// a non-finite value.
void check_sampling_config(const SamplingConfig& config);

// The warpers, in place on one row of logits (removed tokens become -inf).
void apply_temperature(std::span<float> logits, double temperature);
void apply_top_k(std::span<float> logits, int64_t top_k);
void apply_top_p(std::span<float> logits, double top_p);

// The first index of the largest logit (NaN never wins). Error on an empty row.
int32_t argmax_token(std::span<const float> logits);

class TokenSampler {
 public:
  TokenSampler(SamplingConfig config, uint64_t seed);

  // The next token for this row of logits (greedy or one draw; the row is not modified).
  int32_t next(std::span<const float> logits);

  // The probabilities the draw would use (after the warpers): tests compare them with
  // softmax(logits / T).
  std::vector<double> probabilities(std::span<const float> logits) const;

 private:
  double uniform();  // [0, 1) from 53 random bits

  SamplingConfig config_;
  std::mt19937_64 rng_;
};

// The seed of sequence `index` of a batch, derived from the run's seed (splitmix64), so the
// sequences of one run draw independent streams.
uint64_t sequence_seed(uint64_t seed, uint64_t index);

}  // namespace ll
