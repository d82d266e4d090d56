// See llama_generate.h. The layer mirrors LlamaLoraModel::layer_forward (llama_model.cpp) op
// for op, through the same Backend calls, so that a cached decode gives the logits of a full
// forward: the same ops on the same rows, only attention differs (against the cache instead
// of the whole sequence).
#include "model/llama_generate.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <limits>
#include <string>
#include <utility>

#include "core/error.h"
#include "model/llama_block.h"

namespace ll {

namespace {

constexpr const char* kOrigin = "generate";

}  // namespace

LlamaGenerator::LlamaGenerator(const LlamaWeights& base, const LoraAdapter* adapter,
                               Backend* backend)
    : base_(base),
      adapter_(adapter),
      backend_(backend ? *backend : cpu_backend()),
      weights_(std::make_unique<BoundLlamaWeights>(backend_, base_)) {
  const LlamaConfig& c = base_.config;
  if (adapter_ && adapter_->layers().size() != static_cast<size_t>(c.num_hidden_layers)) {
    fail(kOrigin, "adapter has " + std::to_string(adapter_->layers().size()) +
                      " layers but the model has " + std::to_string(c.num_hidden_layers));
  }
  if (adapter_ && adapter_->backend().memory_space() != backend_.memory_space()) {
    fail(kOrigin, std::string("the adapter's memory is not backend ") + backend_.name() +
                      "'s: move it with LoraAdapter::on_backend");
  }
}

// Makes room for `needed` positions, at least doubling (amortised O(1) copies per token). The
// held rows move to the new Buffers (a resize that reallocates would drop them).
void LlamaGenerator::reserve_positions(KvCache& cache, int64_t needed) const {
  if (needed <= cache.capacity) return;
  const int64_t capacity = std::max(needed, 2 * cache.capacity);
  const int64_t held = cache.length * cache.kv_width;
  for (auto* buffers : {&cache.k, &cache.v}) {
    for (Buffer& old : *buffers) {
      Buffer grown(backend_, capacity * cache.kv_width);
      if (held > 0) backend_.copy(grown.data(), old.data(), held);
      old = std::move(grown);
    }
  }
  cache.capacity = capacity;
}

KvCache LlamaGenerator::new_cache(int64_t capacity) const {
  const LlamaConfig& c = base_.config;
  KvCache cache;
  cache.kv_width = c.num_key_value_heads * c.head_dim;
  cache.backend = &backend_;
  cache.k.resize(static_cast<size_t>(c.num_hidden_layers));
  cache.v.resize(static_cast<size_t>(c.num_hidden_layers));
  reserve_positions(cache, std::max<int64_t>(capacity, 1));
  return cache;
}

namespace {

// Generation's attention: each sequence stores its new keys and values after its cached
// ones, then attends to all of them (from an empty cache: the training kernel on the prompt;
// else the decode kernel).
class CachedAttention final : public BlockAttention {
 public:
  CachedAttention(Backend& backend, const LlamaConfig& config, std::span<const SequenceStep> steps)
      : backend_(backend), config_(config), steps_(steps) {}

  void attend(int64_t layer, const float* q, const float* k, const float* v, float* out,
              Buffer& lse) override {
    const LlamaConfig& c = config_;
    const int64_t q_out = c.num_attention_heads * c.head_dim;
    const int64_t kv_out = c.num_key_value_heads * c.head_dim;
    const auto index = static_cast<size_t>(layer);
    int64_t row0 = 0;
    for (const SequenceStep& step : steps_) {
      KvCache& cache = *step.cache;
      const auto m = static_cast<int64_t>(step.tokens.size());
      float* k_cache = cache.k[index].data();  // [length + m, kv_width]
      float* v_cache = cache.v[index].data();
      backend_.copy(k_cache + cache.length * kv_out, k + row0 * kv_out, m * kv_out);
      backend_.copy(v_cache + cache.length * kv_out, v + row0 * kv_out, m * kv_out);
      const float* q_rows = q + row0 * q_out;
      float* out_rows = out + row0 * q_out;
      if (cache.length == 0) {
        lse.resize(backend_, c.num_attention_heads * m);
        const int32_t cu_seqlens[2] = {0, static_cast<int32_t>(m)};  // the prompt: one document
        backend_.attention_forward(out_rows, lse.data(), q_rows, k_cache, v_cache,
                                   {m, c.num_attention_heads, c.num_key_value_heads, c.head_dim},
                                   cu_seqlens);
      } else {
        backend_.attention_decode(
            out_rows, q_rows, k_cache, v_cache,
            {m, cache.length, c.num_attention_heads, c.num_key_value_heads, c.head_dim});
      }
      row0 += m;
    }
  }

 private:
  Backend& backend_;
  const LlamaConfig& config_;
  std::span<const SequenceStep> steps_;
};

}  // namespace

std::vector<float> LlamaGenerator::extend(std::span<const SequenceStep> steps) {
  const LlamaConfig& c = base_.config;
  Backend& be = backend_;
  check(!steps.empty(), kOrigin, "no sequences to extend");
  const int64_t kv_width = c.num_key_value_heads * c.head_dim;
  ids_.clear();
  seen_caches_.clear();
  int64_t max_position = 0;
  for (size_t s = 0; s < steps.size(); ++s) {
    const SequenceStep& step = steps[s];
    check(step.cache != nullptr && !step.tokens.empty(), kOrigin,
          "sequence " + std::to_string(s) + " has no cache or no new tokens");
    check(std::find(seen_caches_.begin(), seen_caches_.end(), step.cache) == seen_caches_.end(),
          kOrigin, "sequence " + std::to_string(s) + " repeats the cache of an earlier one");
    seen_caches_.push_back(step.cache);
    check(step.cache->kv_width == kv_width &&
              step.cache->k.size() == static_cast<size_t>(c.num_hidden_layers),
          kOrigin, "sequence " + std::to_string(s) + " has a cache made for another model");
    check(step.cache->backend == &be, kOrigin,
          "sequence " + std::to_string(s) + " has a cache in another backend's memory");
    for (int32_t id : step.tokens) {
      check(id >= 0 && id < c.vocab_size, kOrigin,
            "sequence " + std::to_string(s) + ": token id " + std::to_string(id) +
                " is outside the vocabulary (" + std::to_string(c.vocab_size) + ")");
      ids_.push_back(id);
    }
    max_position =
        std::max(max_position, step.cache->length + static_cast<int64_t>(step.tokens.size()) - 1);
  }
  check_attention_window(c, max_position + 1, "a cached sequence");

  rows_ = static_cast<int64_t>(ids_.size());
  positions_.clear();
  for (const SequenceStep& step : steps) {
    reserve_positions(*step.cache, step.cache->length + static_cast<int64_t>(step.tokens.size()));
    for (size_t i = 0; i < step.tokens.size(); ++i) {
      positions_.push_back(static_cast<int32_t>(step.cache->length + static_cast<int64_t>(i)));
    }
  }
  ensure_rope_table(be, rope_, base_.config, max_position);

  x_.resize(be, rows_ * c.hidden_size);
  be.embedding_forward(x_.data(), ids_.data(), weights_->embed_tokens, rows_, c.vocab_size,
                       c.hidden_size);
  const BlockContext context{be,      base_.config, adapter_,          0.0,   {},
                             nullptr, rows_,        positions_.data(), &rope_};  // Eval: no dropout
  CachedAttention attention(be, c, steps);
  for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
    llama_block_forward(context, layer, weights_->layers[static_cast<size_t>(layer)], x_.data(),
                        x_.data(), block_, attention);
  }
  for (const SequenceStep& step : steps) {
    step.cache->length += static_cast<int64_t>(step.tokens.size());
  }

  // Final norm and LM head of each sequence's last new row only. In a decode step (one new
  // token per sequence) those are all the rows of x_; otherwise they are gathered into the
  // block's xn1 (free after the last layer).
  const auto n_seq = static_cast<int64_t>(steps.size());
  const float* last_in = x_.data();  // [S, hidden]
  if (rows_ != n_seq) {
    int64_t row_end = 0;
    for (int64_t s = 0; s < n_seq; ++s) {
      row_end += static_cast<int64_t>(steps[static_cast<size_t>(s)].tokens.size());
      be.copy(block_.xn1.data() + s * c.hidden_size, x_.data() + (row_end - 1) * c.hidden_size,
              c.hidden_size);
    }
    last_in = block_.xn1.data();
  }
  last_.resize(be, n_seq * c.hidden_size);  // [S, hidden] after the final norm
  last_rstd_.resize(be, n_seq);
  be.rmsnorm_forward(last_.data(), last_rstd_.data(), last_in, weights_->norm, n_seq, c.hidden_size,
                     c.rms_norm_eps);
  last_rows_.resize(static_cast<size_t>(n_seq));
  for (int64_t s = 0; s < n_seq; ++s) last_rows_[static_cast<size_t>(s)] = s;
  logits_.resize(be, n_seq * c.vocab_size);  // [S, vocab]
  be.lm_head_logits(logits_.data(), last_.data(), weights_->lm_head, last_rows_.data(), n_seq,
                    n_seq, c.hidden_size, c.vocab_size);
  std::vector<float> logits(static_cast<size_t>(n_seq * c.vocab_size));
  be.download(logits.data(), logits_.data(), n_seq * c.vocab_size);
  return logits;
}

// ---- generation_config.json and decoding choices -------------------------------------------

namespace {

std::optional<double> json_number(const nlohmann::json& json, const char* field,
                                  const std::string& origin) {
  if (!json.contains(field) || json[field].is_null()) return std::nullopt;
  check(json[field].is_number(), kOrigin, origin + ": '" + field + "' must be a number");
  return json[field].get<double>();
}

int32_t json_token_id(const nlohmann::json& value, const std::string& origin) {
  check(value.is_number_integer() && value.get<int64_t>() >= 0 &&
            value.get<int64_t>() <= std::numeric_limits<int32_t>::max(),
        kOrigin, origin + ": 'eos_token_id' must be a token id or a list of them");
  return static_cast<int32_t>(value.get<int64_t>());
}

}  // namespace

GenerationDefaults load_generation_defaults(const fs::path& model_dir, const LlamaConfig& config) {
  GenerationDefaults defaults;
  bool eos_found = false;
  const fs::path path = model_dir / "generation_config.json";
  if (fs::exists(path)) {
    const std::string origin = path.string();
    nlohmann::json json;
    try {
      json = nlohmann::json::parse(read_file(path));
    } catch (const nlohmann::json::parse_error& error) {
      fail(kOrigin, origin + ": not valid JSON: " + error.what());
    }
    check(json.is_object(), kOrigin, origin + ": expected a JSON object");
    if (json.contains("eos_token_id") && !json["eos_token_id"].is_null()) {
      const nlohmann::json& eos = json["eos_token_id"];
      if (eos.is_array()) {
        for (const nlohmann::json& id : eos) {
          defaults.eos_token_ids.push_back(json_token_id(id, origin));
        }
      } else {
        defaults.eos_token_ids.push_back(json_token_id(eos, origin));
      }
      eos_found = true;
    }
    if (json.contains("do_sample") && !json["do_sample"].is_null()) {
      check(json["do_sample"].is_boolean(), kOrigin,
            origin + ": 'do_sample' must be true or false");
      defaults.do_sample = json["do_sample"].get<bool>();
    }
    defaults.temperature = json_number(json, "temperature", origin);
    defaults.top_p = json_number(json, "top_p", origin);
    if (json.contains("top_k") && !json["top_k"].is_null()) {
      check(json["top_k"].is_number_integer(), kOrigin, origin + ": 'top_k' must be an integer");
      defaults.top_k = json["top_k"].get<int64_t>();
    }
  }
  if (!eos_found) {
    for (int64_t id : config.eos_token_ids) {
      check(id >= 0 && id <= std::numeric_limits<int32_t>::max(), kOrigin,
            "config.json: bad eos_token_id");
      defaults.eos_token_ids.push_back(static_cast<int32_t>(id));
    }
  }
  return defaults;
}

SamplingConfig resolve_sampling(const GenerationDefaults& defaults,
                                const SamplingRequest& request) {
  SamplingConfig config;
  const bool asked = request.temperature || request.top_k || request.top_p;
  if (request.force_greedy || !(defaults.do_sample.value_or(false) || asked)) return config;
  config.decoding = Decoding::Sample;
  // transformers' GenerationConfig defaults: temperature 1.0, top_k 50, top_p 1.0.
  config.temperature = request.temperature.value_or(defaults.temperature.value_or(1.0));
  config.top_k = request.top_k.value_or(defaults.top_k.value_or(50));
  config.top_p = request.top_p.value_or(defaults.top_p.value_or(1.0));
  check_sampling_config(config);
  return config;
}

// ---- The generation loop ----------------------------------------------------------------------

std::vector<std::vector<int32_t>> generate_tokens(LlamaGenerator& model,
                                                  std::span<const std::vector<int32_t>> prompts,
                                                  const GenerateOptions& options,
                                                  const TokenCallback& on_token) {
  check(!prompts.empty(), kOrigin, "no prompts");
  check(options.max_new_tokens >= 1, kOrigin,
        "max_new_tokens must be >= 1 (got " + std::to_string(options.max_new_tokens) + ")");
  check_sampling_config(options.sampling);
  for (size_t s = 0; s < prompts.size(); ++s) {
    check(!prompts[s].empty(), kOrigin, "prompt " + std::to_string(s) + " is empty");
    // The last new token is never fed back: prompt + max_new_tokens - 1 tokens attend.
    const int64_t prompt = static_cast<int64_t>(prompts[s].size());
    check_attention_window(model.config(), prompt + options.max_new_tokens - 1,
                           "prompt " + std::to_string(s) + " (" + std::to_string(prompt) +
                               " tokens) and max_new_tokens " +
                               std::to_string(options.max_new_tokens));
  }
  const size_t n = prompts.size();
  const int64_t vocab = model.config().vocab_size;
  std::vector<KvCache> caches;
  std::vector<TokenSampler> samplers;
  for (size_t s = 0; s < n; ++s) {
    caches.push_back(
        model.new_cache(static_cast<int64_t>(prompts[s].size()) + options.max_new_tokens));
    samplers.emplace_back(options.sampling, sequence_seed(options.seed, s));
  }
  const auto is_eos = [&](int32_t token) {
    return std::find(options.eos_token_ids.begin(), options.eos_token_ids.end(), token) !=
           options.eos_token_ids.end();
  };

  std::vector<std::vector<int32_t>> generated(n);
  std::vector<size_t> active(n);  // sequences still generating, in batch order
  for (size_t s = 0; s < n; ++s) active[s] = s;
  std::vector<SequenceStep> steps;
  for (size_t s = 0; s < n; ++s) steps.push_back({&caches[s], prompts[s]});
  std::vector<float> logits = model.extend(steps);  // prefill: [n, vocab]

  while (true) {
    std::vector<size_t> still_active;
    for (size_t a = 0; a < active.size(); ++a) {
      const size_t s = active[a];
      const std::span<const float> row(logits.data() + static_cast<int64_t>(a) * vocab,
                                       static_cast<size_t>(vocab));
      const int32_t token = samplers[s].next(row);
      generated[s].push_back(token);
      const TokenVerdict verdict = on_token ? on_token(s, token) : TokenVerdict::Continue;
      if (verdict == TokenVerdict::Continue && !is_eos(token) &&
          static_cast<int64_t>(generated[s].size()) < options.max_new_tokens) {
        still_active.push_back(s);
      }
    }
    active = std::move(still_active);
    if (active.empty()) break;
    steps.clear();
    for (size_t s : active) steps.push_back({&caches[s], {&generated[s].back(), 1}});
    logits = model.extend(steps);  // one decode step: [active, vocab]
  }
  return generated;
}

}  // namespace ll
