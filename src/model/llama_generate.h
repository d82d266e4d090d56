// Inference with a KV cache: the Llama forward of llama_model.h for new tokens only, keeping
// each sequence's keys (after RoPE) and values so that a decode step costs one token's work.
//
// LlamaGenerator::extend runs the new tokens of several sequences through the model at once:
// their rows are stacked into one [tokens, features] block, so every projection (and its LoRA
// path) is one GEMM over the rows of all active sequences, while attention runs per sequence
// against its own cache. A prefill is an extend with the whole prompt (from an empty cache the
// training kernel attention_forward runs it), a decode step an extend with one token per
// sequence (attention_decode). Only the last new position of each sequence reaches the final
// norm and the LM head.
//
// Like the training model, every op runs through a Backend (backend/backend.h; null = the CPU
// backend): work buffers and the KV caches are Buffers in the backend's memory, the per-step
// index arrays (token ids, positions, rows) stay on the host, and the logits come back to the
// host through Backend::download. So a device backend serves generation as it serves training.
//
// LoRA is applied on the fly, y = x·Wᵀ + scale·(x·Aᵀ)·Bᵀ, without dropout (peft in eval mode),
// so an adapter is used as trained, without merging. Base weights stay in their stored dtype
// (bf16 or fp32, through WeightView); activations, caches and logits are fp32.
//
// generate_tokens() drives this for a batch of prompts (transformers' generate semantics: new
// tokens only, each sequence stops after a stop id, which it keeps, or max_new_tokens). Which
// ids stop (generation_config's EOS, the tokenizer's, the chat template's end of turn) and
// stop strings are tools/stopping.h's business: here a sequence also ends when the token
// callback says so.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "core/file.h"
#include "model/llama_block.h"
#include "model/llama_weights.h"
#include "model/lora.h"
#include "model/sampling.h"

namespace ll {

// The cache of one sequence: per layer, the keys after RoPE and the values of positions
// [0, length), in the memory of the backend of the generator that made it (new_cache; only that
// generator may extend it). Grows on demand, at least doubling; reserve capacity up front to
// avoid copies. Move-only (it owns backend memory).
struct KvCache {
  int64_t length = 0;                // positions held
  int64_t capacity = 0;              // positions allocated
  int64_t kv_width = 0;              // num_key_value_heads * head_dim
  const Backend* backend = nullptr;  // whose memory k and v are
  std::vector<Buffer> k;             // [layers][capacity, kv_width] fp32, after RoPE
  std::vector<Buffer> v;             // [layers][capacity, kv_width] fp32
};

// The new tokens of one sequence for one extend call (at least one).
struct SequenceStep {
  KvCache* cache;
  std::span<const int32_t> tokens;
};

class LlamaGenerator {
 public:
  // `adapter` may be null (base model). `backend` runs the ops and holds the buffers and
  // caches; null = the CPU backend. All three must outlive the generator and its caches.
  LlamaGenerator(const LlamaWeights& base, const LoraAdapter* adapter, Backend* backend = nullptr);

  const LlamaConfig& config() const { return base_.config; }
  KvCache new_cache(int64_t capacity) const;

  // Appends steps[s].tokens to steps[s].cache for every s, running them through the model in
  // one batch, and returns the logits of each sequence's last new token, [steps, vocab] fp32
  // (host memory). Token ids are checked (ll::Error naming the sequence and id).
  std::vector<float> extend(std::span<const SequenceStep> steps);

 private:
  void reserve_positions(KvCache& cache, int64_t needed) const;

  const LlamaWeights& base_;
  const LoraAdapter* adapter_;
  Backend& backend_;
  std::unique_ptr<BoundLlamaWeights> weights_;  // base_ as the backend reads it
  RopeTable rope_;
  // Work memory of one extend call, N = new tokens of all sequences, S = sequences. Kept
  // between calls and only grown, so decode steps allocate nothing once warm.
  int64_t rows_ = 0;                         // N
  std::vector<int32_t> ids_;                 // host [N] the new tokens, in step order
  std::vector<int32_t> positions_;           // host [N] absolute positions
  std::vector<int64_t> last_rows_;           // host [S] 0 .. S-1 (rows of last_ for the LM head)
  std::vector<const KvCache*> seen_caches_;  // host [S] to reject a cache given twice
  Buffer x_;                                 // [N, hidden] residual stream
  BlockActivations block_;                   // one block's buffers (model/llama_block.h)
  Buffer last_;                              // [S, hidden] last new rows, final-normed
  Buffer last_rstd_;                         // [S]
  Buffer logits_;                            // [S, vocab]
};

// What generation_config.json (else config.json) says about decoding. Absent fields are
// nullopt; transformers' GenerationConfig defaults fill them (see resolve_sampling).
struct GenerationDefaults {
  std::vector<int32_t> eos_token_ids;  // generation_config's eos_token_id, else config.json's
  std::optional<bool> do_sample;
  std::optional<double> temperature;
  std::optional<int64_t> top_k;
  std::optional<double> top_p;
};

// Reads <model_dir>/generation_config.json when present (eos_token_id an int or a list);
// errors name the file and field.
GenerationDefaults load_generation_defaults(const fs::path& model_dir, const LlamaConfig& config);

// Explicit choices of the caller (command-line flags), each overriding the model's default.
struct SamplingRequest {
  bool force_greedy = false;
  std::optional<double> temperature;
  std::optional<int64_t> top_k;
  std::optional<double> top_p;
};

// Sampling happens when the model's do_sample is true or the caller sets temperature, top_k
// or top_p, unless force_greedy. Unset values come from the model's defaults, then from
// transformers' GenerationConfig defaults (temperature 1.0, top_k 50, top_p 1.0).
SamplingConfig resolve_sampling(const GenerationDefaults& defaults, const SamplingRequest& request);

struct GenerateOptions {
  int64_t max_new_tokens = 128;        // >= 1
  std::vector<int32_t> eos_token_ids;  // stop ids: a sequence stops after producing any of these
  SamplingConfig sampling;
  uint64_t seed = 0;  // sequence s samples with sequence_seed(seed, s)
};

enum class TokenVerdict { Continue, Stop };  // Stop: the sequence ends after this token

// Called after each step with the sequence index and the token it produced (already appended
// to that sequence's output); Stop ends that sequence only (e.g. a stop string is complete).
using TokenCallback = std::function<TokenVerdict(size_t sequence, int32_t token)>;

// The new tokens of each prompt (the stop id included when produced). Prompts are prefilled
// together, then every unfinished sequence advances one token per decode step; each sequence
// stops on its own (stop id, callback's Stop, max_new_tokens). Errors for an empty batch or
// prompt, an id outside the vocabulary or max_new_tokens < 1.
std::vector<std::vector<int32_t>> generate_tokens(LlamaGenerator& model,
                                                  std::span<const std::vector<int32_t>> prompts,
                                                  const GenerateOptions& options,
                                                  const TokenCallback& on_token = {});

}  // namespace ll
