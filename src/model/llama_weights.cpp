// See llama_weights.h.
#include "model/llama_weights.h"

#include <cstdint>
#include <cstring>
#include <optional>

#include "core/error.h"

namespace ll {
namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) text += ", ";
    text += std::to_string(shape[i]);
  }
  return text + "]";
}

class WeightBinder {
 public:
  WeightBinder(const fs::path& dir, LlamaWeights& weights) : dir_(dir), weights_(weights) {}

  WeightView bind(const std::string& name, const std::vector<int64_t>& shape) {
    const SafetensorsModel& model = *weights_.storage;
    if (!model.contains(name)) {
      fail("model", dir_.string() + ": tensor '" + name + "' is missing");
    }
    const TensorInfo& info = model.info(name);
    if (!dtype_is_float(info.dtype)) {
      fail("model", dir_.string() + ": tensor '" + name + "' has dtype " +
                        std::string(dtype_name(info.dtype)) + ", expected F32, BF16 or F16");
    }
    if (info.shape != shape) {
      fail("model", dir_.string() + ": tensor '" + name + "' has shape " + shape_text(info.shape) +
                        " but config.json implies " + shape_text(shape));
    }
    const std::span<const std::byte> bytes = model.data(name);
    const void* data = bytes.data();
    // Element access through typed pointers needs natural alignment; safetensors only
    // guarantees it when every earlier tensor's size keeps it, so copy the rare misfit.
    if (reinterpret_cast<std::uintptr_t>(data) % dtype_size(info.dtype) != 0) {
      auto& copy = weights_.realigned.emplace_back(bytes.size());
      std::memcpy(copy.data(), bytes.data(), bytes.size());
      data = copy.data();
    }
    return {data, info.dtype};
  }

 private:
  const fs::path& dir_;
  LlamaWeights& weights_;
};

}  // namespace

LlamaWeights load_llama_weights(const fs::path& model_dir) {
  LlamaWeights weights;
  weights.config = load_llama_config(model_dir);
  const LlamaConfig& c = weights.config;
  if (c.attention_bias || c.mlp_bias) {
    fail("model", model_dir.string() +
                      "/config.json: attention_bias / mlp_bias true are not supported for "
                      "LlamaForCausalLM (Qwen2ForCausalLM's q/k/v biases are)");
  }
  weights.storage = std::make_shared<SafetensorsModel>(SafetensorsModel::open(model_dir));
  // The realigned copies must not move once views point at them.
  weights.realigned.reserve(static_cast<size_t>(12 * c.num_hidden_layers + 3));
  WeightBinder binder(model_dir, weights);
  const int64_t hidden = c.hidden_size;
  const int64_t q_out = c.num_attention_heads * c.head_dim;
  const int64_t kv_out = c.num_key_value_heads * c.head_dim;
  const int64_t inter = c.intermediate_size;
  weights.embed_tokens = binder.bind("model.embed_tokens.weight", {c.vocab_size, hidden});
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    LlamaLayerWeights layer;
    layer.input_layernorm = binder.bind(p + "input_layernorm.weight", {hidden});
    layer.q_proj = binder.bind(p + "self_attn.q_proj.weight", {q_out, hidden});
    layer.k_proj = binder.bind(p + "self_attn.k_proj.weight", {kv_out, hidden});
    layer.v_proj = binder.bind(p + "self_attn.v_proj.weight", {kv_out, hidden});
    layer.o_proj = binder.bind(p + "self_attn.o_proj.weight", {hidden, q_out});
    layer.post_attention_layernorm = binder.bind(p + "post_attention_layernorm.weight", {hidden});
    layer.gate_proj = binder.bind(p + "mlp.gate_proj.weight", {inter, hidden});
    layer.up_proj = binder.bind(p + "mlp.up_proj.weight", {inter, hidden});
    layer.down_proj = binder.bind(p + "mlp.down_proj.weight", {hidden, inter});
    if (has_qkv_bias(c)) {
      layer.q_bias = binder.bind(p + "self_attn.q_proj.bias", {q_out});
      layer.k_bias = binder.bind(p + "self_attn.k_proj.bias", {kv_out});
      layer.v_bias = binder.bind(p + "self_attn.v_proj.bias", {kv_out});
    }
    weights.layers.push_back(layer);
  }
  weights.norm = binder.bind("model.norm.weight", {hidden});
  if (c.tie_word_embeddings) {  // transformers ties even when a stale lm_head is stored
    weights.lm_head = weights.embed_tokens;
  } else {
    weights.lm_head = binder.bind("lm_head.weight", {c.vocab_size, hidden});
  }
  return weights;
}

void ensure_rope_table(Backend& backend, RopeTable& table, const LlamaConfig& config,
                       int64_t max_position) {
  if (table.max_positions > max_position) return;
  RopeSpec spec;
  spec.theta = config.rope_theta;
  spec.head_dim = config.head_dim;
  if (config.rope_scaling) {
    const auto& r = *config.rope_scaling;
    spec.scaling = RopeLlama3Scaling{r.factor, r.low_freq_factor, r.high_freq_factor,
                                     r.original_max_position_embeddings};
  }
  spec.max_positions = 256;
  while (spec.max_positions <= max_position) spec.max_positions *= 2;
  table = backend.build_rope_table(spec);
}

BoundLlamaWeights::BoundLlamaWeights(Backend& backend, const LlamaWeights& host)
    : backend_(backend) {
  const LlamaConfig& c = host.config;  // a tensor-parallel share's: the rank's sizes
  const int64_t hidden = c.hidden_size;
  const int64_t q_out = c.num_attention_heads * c.head_dim;
  const int64_t kv_out = c.num_key_value_heads * c.head_dim;
  const int64_t inter = c.intermediate_size;
  const int64_t lm_rows = host.lm_head_rows > 0 ? host.lm_head_rows : c.vocab_size;
  embed_tokens = bind(host.embed_tokens, c.vocab_size * hidden);
  for (const LlamaLayerWeights& w : host.layers) {
    LlamaLayerWeights& b = layers.emplace_back();
    b.input_layernorm = bind(w.input_layernorm, hidden);
    b.q_proj = bind(w.q_proj, q_out * hidden);
    b.k_proj = bind(w.k_proj, kv_out * hidden);
    b.v_proj = bind(w.v_proj, kv_out * hidden);
    b.o_proj = bind(w.o_proj, hidden * q_out);
    b.post_attention_layernorm = bind(w.post_attention_layernorm, hidden);
    b.gate_proj = bind(w.gate_proj, inter * hidden);
    b.up_proj = bind(w.up_proj, inter * hidden);
    b.down_proj = bind(w.down_proj, hidden * inter);
    if (w.q_bias.data) {
      b.q_bias = bind(w.q_bias, q_out);
      b.k_bias = bind(w.k_bias, kv_out);
      b.v_bias = bind(w.v_bias, kv_out);
    }
  }
  norm = bind(host.norm, hidden);
  // Tied embeddings: the LM head is the embedding table (or a share of its rows); bound
  // again, which a device backend may dedupe.
  lm_head = bind(host.lm_head, lm_rows * hidden);
}

BoundLlamaWeights::~BoundLlamaWeights() {
  for (const WeightView& view : bound_) backend_.release_weight(view);
}

WeightView BoundLlamaWeights::bind(WeightView host, int64_t elements) {
  const WeightView view = backend_.bind_weight(host, elements);
  bound_.push_back(view);
  return view;
}

}  // namespace ll
