// Generation with a KV cache (src/model/llama_generate.h) and sampling (src/model/sampling.h).
//
// - Cached logits = full forward: on the golden fixture models (GQA + tied embeddings, llama3
//   RoPE scaling + head_dim != hidden/heads + one kv head, plain MHA; fp32, and bf16 weights),
//   with and without their LoRA adapter, a sequence is fed as a prefill of L0 tokens, then a
//   chunk of several tokens, then one token per step, for several L0; the logits returned at
//   every position must equal LlamaLoraModel::forward_logits of the whole sequence (the model
//   that matches transformers + peft, test_golden.cpp) within 1e-5 relative (max |diff| /
//   max |ref| per row), the golden bound. Both are fp32 over the same ops; only attention
//   differs (cache kernel vs the tiled training kernel, other summation orders), which moves
//   logits by ~1e-7 relative; a wrong position, cache row or LoRA term moves them by >1e-3.
// - A batch of prompts of different lengths gives each prompt's logits (1e-6 relative) and
//   greedy tokens (identical) as the prompt alone.
// - Stopping: at an EOS id (kept in the output) and at max_new_tokens.
// - Sampling: top-k and top-p keep exactly the right sets on hand-made distributions (the sets
//   transformers 4.46.3's TopKLogitsWarper / TopPLogitsWarper keep on the same rows), and top-p
//   the smallest sufficient set on random ones; the same seed gives the same tokens; draws
//   follow softmax(logits / T) (chi-square, p = 0.001 critical value; the seed is fixed so the
//   test is deterministic).
// - generation_config.json: EOS ids (int or list, else config.json's) and the sampling
//   defaults as transformers resolves them.
// - transformers' greedy generate, token for token, from tests/fixtures/golden/generate.json.
// - The backend given to the generator runs it: through a counting wrapper of the CPU backend
//   the logits are bit-identical to the default backend's, every layer's decode attention goes
//   through Backend::attention_decode, decode steps allocate nothing once the buffers and
//   caches are warm, and a cache made by a generator of another backend is rejected.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "forwarding_backend.h"
#include "model/llama_generate.h"
#include "model/llama_model.h"
#include "model/peft_adapter.h"
#include "test_util.h"

namespace ll {
namespace {

fs::path golden(const std::string& name) {
  return test::fixtures() / "golden" / name;
}

std::vector<int32_t> random_tokens(int64_t count, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> ids(static_cast<size_t>(count));
  for (int32_t& id : ids) id = pick(rng);
  return ids;
}

// [T, vocab] logits of every position of one sequence from the training model.
std::vector<float> full_forward_logits(const LlamaWeights& base, LoraAdapter* adapter,
                                       const std::vector<int32_t>& ids) {
  TokenBatch batch;
  batch.rows = 1;
  batch.seq_len = static_cast<int64_t>(ids.size());
  batch.input_ids = ids;
  batch.targets.assign(ids.size(), -100);
  for (size_t i = 0; i < ids.size(); ++i) batch.positions.push_back(static_cast<int32_t>(i));
  batch.document_starts = {{0}};
  LlamaLoraModel model(base, adapter, ModelOptions{});
  return model.forward_logits(batch);
}

// max |a - b| / max |b| over one row.
double row_error(const float* ours, const float* reference, int64_t n) {
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(ours[i]) - reference[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(reference[i])));
  }
  return diff / std::max(scale, 1e-30);
}

struct CachedCase {
  std::string model;    // folder under golden/
  std::string adapter;  // "" = none; else the golden config whose adapter to load
};

void check_cached_equals_full(const CachedCase& c) {
  SCOPED_TRACE(c.model + (c.adapter.empty() ? " base" : " + adapter"));
  const LlamaWeights base = load_llama_weights(golden(c.model) / "model");
  std::optional<LoraAdapter> adapter;
  if (!c.adapter.empty()) adapter = load_peft_adapter(golden(c.adapter) / "adapter", base.config);
  LoraAdapter* lora = adapter ? &*adapter : nullptr;
  const int64_t vocab = base.config.vocab_size;
  constexpr int64_t kTokens = 70;  // crosses the 64-token tiles of the training kernel
  const auto ids = random_tokens(kTokens, vocab, 5);
  const auto reference = full_forward_logits(base, lora, ids);

  LlamaGenerator generator(base, lora);
  double worst = 0;
  int checked = 0;
  for (const int64_t prefill : {int64_t{1}, int64_t{2}, int64_t{9}, int64_t{65}, kTokens}) {
    KvCache cache = generator.new_cache(4);  // small: the cache must grow on its own
    int64_t done = 0;
    const auto feed = [&](int64_t count) {
      const SequenceStep step{&cache, std::span<const int32_t>(ids).subspan(done, count)};
      const auto logits = generator.extend({&step, 1});
      done += count;
      ASSERT_EQ(cache.length, done);
      const double error = row_error(logits.data(), reference.data() + (done - 1) * vocab, vocab);
      EXPECT_LE(error, 1e-5) << "prefill " << prefill << ", position " << done - 1;
      worst = std::max(worst, error);
      ++checked;
    };
    feed(prefill);
    if (done + 5 <= kTokens) feed(5);  // a chunk of several tokens after a cached prefix
    while (done < kTokens) feed(1);
  }
  EXPECT_GT(checked, 4 * kTokens / 2);
  std::printf("  %s%s: cached vs full logits, worst row rel err %.2e over %d rows\n",
              c.model.c_str(), c.adapter.empty() ? "" : " + adapter", worst, checked);
}

TEST(Generate, CachedLogitsEqualTheFullForwardAtEveryPosition) {
  for (const CachedCase& c : {CachedCase{"gqa_tied", ""}, CachedCase{"gqa_tied", "gqa_tied"},
                              CachedCase{"llama3_rope_headdim", ""},
                              CachedCase{"llama3_rope_headdim", "llama3_rope_headdim"},
                              CachedCase{"mha_plain", ""}, CachedCase{"mha_plain", "mha_plain"},
                              CachedCase{"llama3_rope_headdim_bf16", "llama3_rope_headdim"}}) {
    check_cached_equals_full(c);
  }
}

TEST(Generate, BatchOfDifferentLengthsEqualsEachPromptAlone) {
  const LlamaWeights base = load_llama_weights(golden("gqa_tied") / "model");
  const LoraAdapter adapter = load_peft_adapter(golden("gqa_tied") / "adapter", base.config);
  const int64_t vocab = base.config.vocab_size;
  const std::vector<std::vector<int32_t>> prompts = {
      random_tokens(7, vocab, 1), random_tokens(1, vocab, 2), random_tokens(23, vocab, 3),
      random_tokens(4, vocab, 4)};
  LlamaGenerator generator(base, &adapter);

  // Prefill logits: together vs alone.
  std::vector<KvCache> caches;
  std::vector<SequenceStep> steps;
  for (size_t s = 0; s < prompts.size(); ++s) caches.push_back(generator.new_cache(32));
  for (size_t s = 0; s < prompts.size(); ++s) steps.push_back({&caches[s], prompts[s]});
  const auto together = generator.extend(steps);
  for (size_t s = 0; s < prompts.size(); ++s) {
    KvCache alone_cache = generator.new_cache(32);
    const SequenceStep step{&alone_cache, prompts[s]};
    const auto alone = generator.extend({&step, 1});
    EXPECT_LE(row_error(together.data() + static_cast<int64_t>(s) * vocab, alone.data(), vocab),
              1e-6)
        << "prompt " << s;
  }

  // Greedy generation: the batch (sequences finish at different steps) vs each alone.
  GenerateOptions options;
  options.max_new_tokens = 12;
  options.eos_token_ids = {5, 17};  // some sequences may stop early
  const auto batch = generate_tokens(generator, prompts, options);
  ASSERT_EQ(batch.size(), prompts.size());
  for (size_t s = 0; s < prompts.size(); ++s) {
    const auto alone = generate_tokens(generator, std::span(&prompts[s], 1), options);
    EXPECT_EQ(batch[s], alone[0]) << "prompt " << s;
  }
}

TEST(Generate, StopsAtEosKeepingItAndAtMaxNewTokens) {
  const LlamaWeights base = load_llama_weights(golden("llama3_rope_headdim") / "model");
  LlamaGenerator generator(base, nullptr);
  GenerateOptions options;
  options.max_new_tokens = 10;
  // A prompt whose greedy continuation has a token at index >= 1 that did not appear before
  // it (tiny random models like to repeat one token): that token becomes the EOS.
  std::vector<std::vector<int32_t>> prompt;
  std::vector<int32_t> free_run;
  size_t stop = 0;
  for (uint32_t seed = 9; seed < 40 && stop == 0; ++seed) {
    prompt = {random_tokens(6, base.config.vocab_size, seed)};
    free_run = generate_tokens(generator, prompt, options)[0];
    ASSERT_EQ(free_run.size(), 10u);
    for (size_t i = 1; i < free_run.size() && stop == 0; ++i) {
      if (std::find(free_run.begin(), free_run.begin() + static_cast<std::ptrdiff_t>(i),
                    free_run[i]) == free_run.begin() + static_cast<std::ptrdiff_t>(i)) {
        stop = i;
      }
    }
  }
  ASSERT_GT(stop, 0u) << "no prompt with a fresh token in its greedy continuation";
  options.eos_token_ids = {1000, free_run[stop]};
  const auto stopped = generate_tokens(generator, prompt, options)[0];
  EXPECT_EQ(stopped,
            std::vector<int32_t>(free_run.begin(),
                                 free_run.begin() + static_cast<std::ptrdiff_t>(stop) + 1));
  options.eos_token_ids = {};
  options.max_new_tokens = 3;
  EXPECT_EQ(generate_tokens(generator, prompt, options)[0],
            std::vector<int32_t>(free_run.begin(), free_run.begin() + 3));
}

TEST(Generate, TheCallbacksStopEndsThatSequenceOnly) {
  const LlamaWeights base = load_llama_weights(golden("llama3_rope_headdim") / "model");
  LlamaGenerator generator(base, nullptr);
  GenerateOptions options;
  options.max_new_tokens = 8;
  const std::vector<std::vector<int32_t>> prompts = {random_tokens(5, base.config.vocab_size, 3),
                                                     random_tokens(7, base.config.vocab_size, 4),
                                                     random_tokens(4, base.config.vocab_size, 5)};
  const auto free_run = generate_tokens(generator, prompts, options);
  // Sequence 1 stops after its third token, sequence 2 after its first; 0 runs to the end.
  std::vector<std::vector<int32_t>> seen(prompts.size());
  const TokenCallback stop_some = [&](size_t sequence, int32_t token) {
    seen[sequence].push_back(token);
    const size_t stop_after[] = {100, 3, 1};
    return seen[sequence].size() >= stop_after[sequence] ? TokenVerdict::Stop
                                                         : TokenVerdict::Continue;
  };
  const auto stopped = generate_tokens(generator, prompts, options, stop_some);
  ASSERT_EQ(stopped.size(), 3u);
  EXPECT_EQ(stopped[0], free_run[0]);
  EXPECT_EQ(stopped[1], std::vector<int32_t>(free_run[1].begin(), free_run[1].begin() + 3));
  EXPECT_EQ(stopped[2], std::vector<int32_t>(free_run[2].begin(), free_run[2].begin() + 1));
  EXPECT_EQ(seen, stopped);  // the callback saw every token, once
}

TEST(Generate, RejectsBadInput) {
  const LlamaWeights base = load_llama_weights(golden("mha_plain") / "model");
  LlamaGenerator generator(base, nullptr);
  GenerateOptions options;
  const std::vector<std::vector<int32_t>> empty_prompt = {{}};
  EXPECT_THROW(generate_tokens(generator, empty_prompt, options), Error);
  const std::vector<std::vector<int32_t>> out_of_vocab = {{1, 61}};
  EXPECT_THROW(generate_tokens(generator, out_of_vocab, options), Error);
  options.max_new_tokens = 0;
  const std::vector<std::vector<int32_t>> fine = {{1, 2}};
  EXPECT_THROW(generate_tokens(generator, fine, options), Error);
  EXPECT_THROW(generate_tokens(generator, std::span<const std::vector<int32_t>>(), options), Error);
}

// ---- Sampling -------------------------------------------------------------------------------

// The ids whose logits survived a warper.
std::set<int32_t> kept(const std::vector<float>& logits) {
  std::set<int32_t> ids;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (logits[i] != -INFINITY) ids.insert(static_cast<int32_t>(i));
  }
  return ids;
}

std::set<int32_t> after_top_k(std::vector<float> logits, int64_t k) {
  apply_top_k(logits, k);
  return kept(logits);
}

std::set<int32_t> after_top_p(std::vector<float> logits, double p) {
  apply_top_p(logits, p);
  return kept(logits);
}

std::vector<float> log_probs(const std::vector<double>& probs) {
  std::vector<float> logits;
  for (double p : probs) logits.push_back(static_cast<float>(std::log(p)));
  return logits;
}

TEST(Sampling, TopKKeepsTheKLargestAndTiesAtTheKth) {
  const std::vector<float> logits = {1, 5, 3, 5, 2, 0};
  EXPECT_EQ(after_top_k(logits, 1), (std::set<int32_t>{1, 3}));  // a tie at the 1st value
  EXPECT_EQ(after_top_k(logits, 2), (std::set<int32_t>{1, 3}));
  EXPECT_EQ(after_top_k(logits, 3), (std::set<int32_t>{1, 2, 3}));
  EXPECT_EQ(after_top_k(logits, 4), (std::set<int32_t>{1, 2, 3, 4}));
  EXPECT_EQ(after_top_k({4, 3, 3, 1}, 2), (std::set<int32_t>{0, 1, 2}));
  EXPECT_EQ(after_top_k(logits, 0).size(), 6u);    // off
  EXPECT_EQ(after_top_k(logits, 100).size(), 6u);  // more than the vocabulary
}

TEST(Sampling, TopPKeepsTheSmallestSetReachingP) {
  // Probabilities 0.5, 0.25, 0.15, 0.1 (shuffled ids: 2, 0, 3, 1).
  const auto logits = log_probs({0.25, 0.1, 0.5, 0.15});
  EXPECT_EQ(after_top_p(logits, 0.7), (std::set<int32_t>{2, 0}));     // 0.75 >= 0.7
  EXPECT_EQ(after_top_p(logits, 0.8), (std::set<int32_t>{2, 0, 3}));  // 0.75 < 0.8 <= 0.9
  EXPECT_EQ(after_top_p(logits, 0.3), (std::set<int32_t>{2}));
  EXPECT_EQ(after_top_p(logits, 0.01), (std::set<int32_t>{2}));  // always at least one
  EXPECT_EQ(after_top_p(logits, 0.95), (std::set<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(after_top_p(logits, 1.0), (std::set<int32_t>{0, 1, 2, 3}));

  // Random distributions: the kept set is the smallest set of most likely tokens whose
  // probability reaches p (thresholds drawn so no cumulative sum sits on them exactly).
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<float> row(37);
    for (float& value : row) value = normal(rng);
    const double p = std::uniform_real_distribution<double>(0.05, 0.99)(rng);
    double max_logit = *std::max_element(row.begin(), row.end()), sum = 0;
    std::vector<double> probs;
    for (float value : row) probs.push_back(std::exp(value - max_logit));
    for (double q : probs) sum += q;
    std::vector<int32_t> order(row.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return row[a] > row[b]; });
    std::set<int32_t> expected;
    double mass = 0;
    for (int32_t id : order) {
      expected.insert(id);
      mass += probs[static_cast<size_t>(id)] / sum;
      if (mass >= p) break;
    }
    EXPECT_EQ(after_top_p(row, p), expected) << "trial " << trial << " p " << p;
  }
}

TEST(Sampling, GreedyIsTheFirstMaximum) {
  EXPECT_EQ(argmax_token(std::vector<float>{1, 3, 2, 3}), 1);
  TokenSampler greedy({}, 1);
  EXPECT_EQ(greedy.next(std::vector<float>{-2, -1, -5}), 1);
}

TEST(Sampling, SameSeedSameTokens) {
  const std::vector<float> logits = {0.1f, 1.2f, -0.3f, 0.8f, 0.0f, 2.0f, -1.0f};
  const SamplingConfig config{Decoding::Sample, 0.9, 0, 0.95};
  const auto draw = [&](uint64_t seed) {
    TokenSampler sampler(config, seed);
    std::vector<int32_t> tokens;
    for (int i = 0; i < 200; ++i) tokens.push_back(sampler.next(logits));
    return tokens;
  };
  EXPECT_EQ(draw(42), draw(42));
  EXPECT_NE(draw(42), draw(43));

  // Whole generations too.
  const LlamaWeights base = load_llama_weights(golden("gqa_tied") / "model");
  LlamaGenerator generator(base, nullptr);
  const std::vector<std::vector<int32_t>> prompts = {{3, 4, 5}, {7}};
  GenerateOptions options;
  options.max_new_tokens = 16;
  options.sampling = {Decoding::Sample, 1.5, 0, 1.0};
  options.seed = 11;
  const auto first = generate_tokens(generator, prompts, options);
  EXPECT_EQ(first, generate_tokens(generator, prompts, options));
  options.seed = 12;
  EXPECT_NE(first, generate_tokens(generator, prompts, options));
}

// Pearson's chi-square of `counts` against `probs` (all probs > 0).
double chi_square(const std::vector<int64_t>& counts, const std::vector<double>& probs,
                  int64_t draws) {
  double statistic = 0;
  for (size_t i = 0; i < probs.size(); ++i) {
    const double expected = probs[i] * static_cast<double>(draws);
    statistic += (static_cast<double>(counts[i]) - expected) *
                 (static_cast<double>(counts[i]) - expected) / expected;
  }
  return statistic;
}

TEST(Sampling, TemperatureDrawsFollowTheScaledSoftmax) {
  const std::vector<float> logits = {0.5f, 1.5f, -0.25f, 1.0f, 0.0f, 2.0f};
  for (const double temperature : {0.6, 1.0, 1.7}) {
    SCOPED_TRACE(temperature);
    // Expected: softmax(logits / T) in double, computed here independently.
    std::vector<double> expected;
    double sum = 0;
    for (float value : logits) expected.push_back(std::exp(value / temperature));
    for (double e : expected) sum += e;
    for (double& e : expected) e /= sum;

    TokenSampler sampler({Decoding::Sample, temperature, 0, 1.0}, 2024);
    const auto probs = sampler.probabilities(logits);
    for (size_t i = 0; i < logits.size(); ++i) EXPECT_NEAR(probs[i], expected[i], 1e-6);

    constexpr int64_t kDraws = 60000;
    std::vector<int64_t> counts(logits.size(), 0);
    for (int64_t i = 0; i < kDraws; ++i) ++counts[static_cast<size_t>(sampler.next(logits))];
    // 5 degrees of freedom: P(chi2 > 20.52) = 0.001 for a correct sampler. A sampler that
    // ignored T (for T = 0.6 or 1.7) gives a statistic in the thousands.
    EXPECT_LT(chi_square(counts, expected, kDraws), 20.52);
  }

  // With top-k: tokens outside the top 3 never come; the others follow the renormalised
  // softmax (2 degrees of freedom: critical value 13.82 at p = 0.001).
  TokenSampler sampler({Decoding::Sample, 1.3, 3, 1.0}, 7);
  std::vector<double> expected = {0, std::exp(1.5 / 1.3), 0, std::exp(1.0 / 1.3),
                                  0, std::exp(2.0 / 1.3)};
  const double sum = expected[1] + expected[3] + expected[5];
  for (double& e : expected) e /= sum;
  constexpr int64_t kDraws = 30000;
  std::vector<int64_t> counts(logits.size(), 0);
  for (int64_t i = 0; i < kDraws; ++i) ++counts[static_cast<size_t>(sampler.next(logits))];
  EXPECT_EQ(counts[0] + counts[2] + counts[4], 0);
  EXPECT_LT(chi_square({counts[1], counts[3], counts[5]}, {expected[1], expected[3], expected[5]},
                       kDraws),
            13.82);
}

TEST(Sampling, RejectsBadSettings) {
  EXPECT_THROW(check_sampling_config({Decoding::Sample, 0.0, 0, 1.0}), Error);
  EXPECT_THROW(check_sampling_config({Decoding::Sample, 1.0, -1, 1.0}), Error);
  EXPECT_THROW(check_sampling_config({Decoding::Sample, 1.0, 0, 0.0}), Error);
  EXPECT_THROW(check_sampling_config({Decoding::Sample, 1.0, 0, 1.5}), Error);
  EXPECT_NO_THROW(check_sampling_config({Decoding::Sample, 0.7, 40, 0.9}));
}

// ---- generation_config.json ------------------------------------------------------------------

TEST(GenerationDefaults, EosIdsAndSamplingAsTransformersResolvesThem) {
  test::TempDir dir;
  LlamaConfig config;
  config.eos_token_ids = {128001};
  // No generation_config.json: config.json's EOS, greedy.
  GenerationDefaults d = load_generation_defaults(dir.path(), config);
  EXPECT_EQ(d.eos_token_ids, (std::vector<int32_t>{128001}));
  EXPECT_EQ(resolve_sampling(d, {}).decoding, Decoding::Greedy);

  // Llama-3-Instruct's file: a list of EOS ids, do_sample with temperature and top_p.
  test::write_text(dir / "generation_config.json",
                   R"({"bos_token_id": 128000, "do_sample": true, "eos_token_id": [128001, 128009],
                       "temperature": 0.6, "top_p": 0.9})");
  d = load_generation_defaults(dir.path(), config);
  EXPECT_EQ(d.eos_token_ids, (std::vector<int32_t>{128001, 128009}));
  SamplingConfig s = resolve_sampling(d, {});
  EXPECT_EQ(s.decoding, Decoding::Sample);
  EXPECT_DOUBLE_EQ(s.temperature, 0.6);
  EXPECT_DOUBLE_EQ(s.top_p, 0.9);
  EXPECT_EQ(s.top_k, 50);  // transformers' GenerationConfig default
  EXPECT_EQ(resolve_sampling(d, {true, {}, {}, {}}).decoding, Decoding::Greedy);  // --greedy
  s = resolve_sampling(d, {false, 1.2, 0, {}});
  EXPECT_DOUBLE_EQ(s.temperature, 1.2);
  EXPECT_EQ(s.top_k, 0);
  EXPECT_DOUBLE_EQ(s.top_p, 0.9);

  // An int EOS; greedy by the file, sampling once a flag asks for it.
  test::write_text(dir / "generation_config.json", R"({"eos_token_id": 2, "do_sample": false})");
  d = load_generation_defaults(dir.path(), config);
  EXPECT_EQ(d.eos_token_ids, (std::vector<int32_t>{2}));
  EXPECT_EQ(resolve_sampling(d, {}).decoding, Decoding::Greedy);
  EXPECT_EQ(resolve_sampling(d, {false, 0.8, {}, {}}).decoding, Decoding::Sample);

  test::write_text(dir / "generation_config.json", R"({"eos_token_id": "two"})");
  EXPECT_THROW(load_generation_defaults(dir.path(), config), Error);
}

// ---- transformers' greedy generate -------------------------------------------------------------

TEST(Generate, GreedyTokensEqualTransformersGenerate) {
  const fs::path fixture = golden("generate.json");
  // Made by scripts/fixtures/make_tool_fixtures.py; without it this test cannot compare.
  ASSERT_TRUE(fs::exists(fixture)) << "missing fixture " << fixture.string();
  const nlohmann::json json = nlohmann::json::parse(std::ifstream(fixture));
  ASSERT_TRUE(json.contains("cases") && json["cases"].is_array() && !json["cases"].empty());
  int compared = 0;
  for (const nlohmann::json& c : json["cases"]) {
    const std::string config = c.at("config").get<std::string>();
    const bool with_adapter = c.at("adapter").get<bool>();
    SCOPED_TRACE(config + (with_adapter ? " + adapter" : " base"));
    const LlamaWeights base = load_llama_weights(golden(config) / "model");
    std::optional<LoraAdapter> adapter;
    if (with_adapter) adapter = load_peft_adapter(golden(config) / "adapter", base.config);
    LlamaGenerator generator(base, adapter ? &*adapter : nullptr);
    GenerateOptions options;
    options.max_new_tokens = c.at("max_new_tokens").get<int64_t>();
    options.eos_token_ids = c.at("eos_token_id").get<std::vector<int32_t>>();
    const auto prompts = c.at("prompt_ids").get<std::vector<std::vector<int32_t>>>();
    const auto expected = c.at("generated").get<std::vector<std::vector<int32_t>>>();
    ASSERT_EQ(prompts.size(), expected.size());
    for (size_t s = 0; s < prompts.size(); ++s) {
      // transformers ran each prompt alone; so do we, then all of them as one batch.
      EXPECT_EQ(generate_tokens(generator, std::span(&prompts[s], 1), options)[0], expected[s])
          << "prompt " << s;
      ++compared;
    }
    EXPECT_EQ(generate_tokens(generator, prompts, options), expected) << "as one batch";
  }
  std::printf("  %d prompts token-identical to transformers generate\n", compared);
}

// Forwards every op to the CPU backend, counting allocations, attention_decode calls and
// linear_forward calls.
class CountingBackend final : public test::ForwardingBackend {
 public:
  int64_t allocations = 0;
  int64_t decode_attentions = 0;
  int64_t linears = 0;

  const char* name() const override { return "counting-cpu"; }
  float* allocate(int64_t count) override {
    ++allocations;
    return ForwardingBackend::allocate(count);
  }
  void linear_forward(float* y, const float* x, WeightView w, int64_t tokens, int64_t in,
                      int64_t out, Accumulate accumulate) override {
    ++linears;
    ForwardingBackend::linear_forward(y, x, w, tokens, in, out, accumulate);
  }
  void attention_decode(float* out, const float* q, const float* k_cache, const float* v_cache,
                        const DecodeAttentionShape& shape) override {
    ++decode_attentions;
    ForwardingBackend::attention_decode(out, q, k_cache, v_cache, shape);
  }
};

TEST(Generate, RunsOnTheBackendItIsGiven) {
  const LlamaWeights base = load_llama_weights(golden("gqa_tied") / "model");
  const LoraAdapter adapter = load_peft_adapter(golden("gqa_tied") / "adapter", base.config);
  const LlamaConfig& config = base.config;
  const std::vector<std::vector<int32_t>> prompts = {random_tokens(9, config.vocab_size, 11),
                                                     random_tokens(3, config.vocab_size, 12)};
  constexpr int64_t kDecodeSteps = 6;
  CountingBackend counting;
  LlamaGenerator reference(base, &adapter);  // the default: the CPU backend
  LlamaGenerator generator(base, &adapter, &counting);

  std::vector<KvCache> ref_caches, caches;
  std::vector<SequenceStep> ref_steps, steps;
  for (const auto& prompt : prompts) {
    const auto capacity = static_cast<int64_t>(prompt.size()) + kDecodeSteps;
    ref_caches.push_back(reference.new_cache(capacity));
    caches.push_back(generator.new_cache(capacity));
  }
  for (size_t s = 0; s < prompts.size(); ++s) {
    ref_steps.push_back({&ref_caches[s], prompts[s]});
    steps.push_back({&caches[s], prompts[s]});
  }
  EXPECT_EQ(generator.extend(steps), reference.extend(ref_steps)) << "prefill";
  EXPECT_EQ(counting.decode_attentions, 0) << "a prefill from empty caches runs attention_forward";
  EXPECT_GT(counting.linears, 0);

  std::vector<int32_t> next(prompts.size());
  for (int64_t step = 0; step < kDecodeSteps; ++step) {
    for (size_t s = 0; s < prompts.size(); ++s) {
      next[s] = static_cast<int32_t>((step * 7 + static_cast<int64_t>(s) * 13) % config.vocab_size);
      ref_steps[s].tokens = {&next[s], 1};
      steps[s].tokens = {&next[s], 1};
    }
    const int64_t allocations = counting.allocations;
    const int64_t decode_attentions = counting.decode_attentions;
    EXPECT_EQ(generator.extend(steps), reference.extend(ref_steps)) << "decode step " << step;
    EXPECT_EQ(counting.allocations, allocations) << "decode step " << step << " allocated";
    EXPECT_EQ(counting.decode_attentions - decode_attentions,
              config.num_hidden_layers * static_cast<int64_t>(prompts.size()));
  }

  // A cache in the other backend's memory is refused.
  const SequenceStep foreign{&ref_caches[0], std::span<const int32_t>(next).first(1)};
  EXPECT_THROW(generator.extend({&foreign, 1}), Error);
}

}  // namespace
}  // namespace ll
