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

// y[N, out] (+)= x·Wᵀ, then += scale·(x·Aᵀ)·Bᵀ when `target` carries an adapter (no dropout).
void LlamaGenerator::project(int64_t layer, LoraTarget target, WeightView weight, const float* in,
                             int64_t in_features, float* y, int64_t out_features,
                             Accumulate accumulate) {
  Backend& be = backend_;
  const int64_t n = rows_;
  be.linear_forward(y, in, weight, n, in_features, out_features, accumulate);
  if (!adapter_) return;
  const auto& lora = adapter_->layers()[static_cast<size_t>(layer)][static_cast<size_t>(target)];
  if (!lora) return;
  const int64_t r = adapter_->config.r;
  lora_u_.resize(be, n * r);  // [N, r] u = x·Aᵀ
  be.gemm(Transpose::No, Transpose::Yes, n, r, in_features, 1.0f, in, in_features, lora->a.data(),
          in_features, 0.0f, lora_u_.data(), r);
  be.gemm(Transpose::No, Transpose::Yes, n, out_features, r,
          static_cast<float>(adapter_->config.scale()), lora_u_.data(), r, lora->b.data(), r, 1.0f,
          y, out_features);
}

// out[m, heads*head_dim] for one sequence's new rows, against its cache (which already holds
// their keys and values). From an empty cache this is the training kernel on the prompt.
void LlamaGenerator::attend(const SequenceStep& step, int64_t layer, const float* q, float* out) {
  const LlamaConfig& c = base_.config;
  const KvCache& cache = *step.cache;
  const auto m = static_cast<int64_t>(step.tokens.size());
  const float* k = cache.k[static_cast<size_t>(layer)].data();  // [length + m, kv_width]
  const float* v = cache.v[static_cast<size_t>(layer)].data();
  if (cache.length == 0) {
    lse_.resize(backend_, c.num_attention_heads * m);
    const int32_t cu_seqlens[2] = {0, static_cast<int32_t>(m)};  // the prompt: one document
    backend_.attention_forward(out, lse_.data(), q, k, v,
                               {m, c.num_attention_heads, c.num_key_value_heads, c.head_dim},
                               cu_seqlens);
  } else {
    backend_.attention_decode(
        out, q, k, v, {m, cache.length, c.num_attention_heads, c.num_key_value_heads, c.head_dim});
  }
}

void LlamaGenerator::layer_forward(int64_t layer, std::span<const SequenceStep> steps) {
  const LlamaConfig& c = base_.config;
  const LlamaLayerWeights& w = weights_->layers[static_cast<size_t>(layer)];
  Backend& be = backend_;
  const int64_t n = rows_;
  const int64_t hidden = c.hidden_size;
  const int64_t q_out = c.num_attention_heads * c.head_dim;
  const int64_t kv_out = c.num_key_value_heads * c.head_dim;
  const int64_t inter = c.intermediate_size;

  xn_.resize(be, n * hidden);
  rstd_.resize(be, n);
  be.rmsnorm_forward(xn_.data(), rstd_.data(), x_.data(), w.input_layernorm, n, hidden,
                     c.rms_norm_eps);
  q_.resize(be, n * q_out);
  k_.resize(be, n * kv_out);
  v_.resize(be, n * kv_out);
  project(layer, LoraTarget::Q, w.q_proj, xn_.data(), hidden, q_.data(), q_out, Accumulate::No);
  project(layer, LoraTarget::K, w.k_proj, xn_.data(), hidden, k_.data(), kv_out, Accumulate::No);
  project(layer, LoraTarget::V, w.v_proj, xn_.data(), hidden, v_.data(), kv_out, Accumulate::No);
  be.rope_forward(q_.data(), q_.data(), positions_.data(), n, c.num_attention_heads, rope_);
  be.rope_forward(k_.data(), k_.data(), positions_.data(), n, c.num_key_value_heads, rope_);

  // Each sequence: store its new keys/values after its cached ones, then attend.
  attn_.resize(be, n * q_out);
  int64_t row0 = 0;
  for (const SequenceStep& step : steps) {
    KvCache& cache = *step.cache;
    const auto m = static_cast<int64_t>(step.tokens.size());
    be.copy(cache.k[static_cast<size_t>(layer)].data() + cache.length * kv_out,
            k_.data() + row0 * kv_out, m * kv_out);
    be.copy(cache.v[static_cast<size_t>(layer)].data() + cache.length * kv_out,
            v_.data() + row0 * kv_out, m * kv_out);
    attend(step, layer, q_.data() + row0 * q_out, attn_.data() + row0 * q_out);
    row0 += m;
  }
  project(layer, LoraTarget::O, w.o_proj, attn_.data(), q_out, x_.data(), hidden,
          Accumulate::Yes);  // x = x + attn·W_oᵀ (the residual)

  be.rmsnorm_forward(xn_.data(), rstd_.data(), x_.data(), w.post_attention_layernorm, n, hidden,
                     c.rms_norm_eps);
  gate_.resize(be, n * inter);
  up_.resize(be, n * inter);
  project(layer, LoraTarget::Gate, w.gate_proj, xn_.data(), hidden, gate_.data(), inter,
          Accumulate::No);
  project(layer, LoraTarget::Up, w.up_proj, xn_.data(), hidden, up_.data(), inter, Accumulate::No);
  be.swiglu_forward(gate_.data(), gate_.data(), up_.data(), n * inter);  // h in gate_
  project(layer, LoraTarget::Down, w.down_proj, gate_.data(), inter, x_.data(), hidden,
          Accumulate::Yes);  // x = x + h·W_downᵀ
}

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
  for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) layer_forward(layer, steps);
  for (const SequenceStep& step : steps) {
    step.cache->length += static_cast<int64_t>(step.tokens.size());
  }

  // Final norm and LM head of each sequence's last new row only. In a decode step (one new
  // token per sequence) those are all the rows of x_; otherwise they are gathered into xn_
  // (free after the last layer).
  const auto n_seq = static_cast<int64_t>(steps.size());
  const float* last_in = x_.data();  // [S, hidden]
  if (rows_ != n_seq) {
    int64_t row_end = 0;
    for (int64_t s = 0; s < n_seq; ++s) {
      row_end += static_cast<int64_t>(steps[static_cast<size_t>(s)].tokens.size());
      be.copy(xn_.data() + s * c.hidden_size, x_.data() + (row_end - 1) * c.hidden_size,
              c.hidden_size);
    }
    last_in = xn_.data();
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
      if (on_token) on_token(s, token);
      if (!is_eos(token) && static_cast<int64_t>(generated[s].size()) < options.max_new_tokens) {
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
