// config.json of a Hugging Face model folder -> LlamaConfig, for the architectures that are
// the Llama network: LlamaForCausalLM (Llama-2/3/3.1 (rope_scaling type "llama3")/3.2 (tied
// embeddings)/3.3, SmolLM2, TinyLlama), MistralForCausalLM (the same network; a sliding window
// only where it is longer than every sequence) and Qwen2ForCausalLM (q/k/v projections with
// biases). Missing required fields, wrong JSON types and unsupported architectures are errors
// naming the file and field.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/file.h"

namespace ll {

struct RopeScaling {
  std::string rope_type;  // "llama3", the only one we implement ("default" parses to nullopt)
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

// The checkpoint's architecture: which `architectures` / `model_type` config.json names.
enum class Architecture { Llama, Mistral, Qwen2 };
std::string_view architecture_name(Architecture architecture);        // "Qwen2ForCausalLM"
std::string_view architecture_model_type(Architecture architecture);  // "qwen2"

struct LlamaConfig {
  Architecture architecture = Architecture::Llama;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // defaults to num_attention_heads when absent
  int64_t head_dim = 0;             // defaults to hidden_size / num_attention_heads
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  std::optional<RopeScaling> rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // Llama's field: q/k/v/o biases (refused at load)
  bool mlp_bias = false;
  // The attention window some layer uses (Mistral's sliding_window; Qwen2's where
  // use_sliding_window and a layer at or past max_window_layers); nullopt: every layer attends
  // to the whole causal prefix. We implement full attention only, which equals windowed
  // attention while no sequence is longer than the window (check_attention_window).
  std::optional<int64_t> sliding_window;
  std::string hidden_act = "silu";
  std::string torch_dtype = "bfloat16";
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  // config's eos_token_id: an int or a list
  std::optional<int64_t> pad_token_id;
  nlohmann::json raw;  // the file as read, so fields we do not model are written back
};

// True where q_proj, k_proj and v_proj carry a bias (Qwen2): frozen, added after the product.
inline bool has_qkv_bias(const LlamaConfig& config) {
  return config.architecture == Architecture::Qwen2;
}

// Errors naming sliding_window when a sequence of `tokens` tokens (what `use` says:
// "--max_seq_length 4096") is longer than the config's attention window: a token would attend past
// the window, which full attention does not reproduce.
void check_attention_window(const LlamaConfig& config, int64_t tokens, const std::string& use);

// `origin` names the file in error messages (e.g. "/models/x/config.json").
LlamaConfig parse_llama_config(const nlohmann::json& json, const std::string& origin);
LlamaConfig load_llama_config(const fs::path& model_dir);  // reads <dir>/config.json
nlohmann::json llama_config_to_json(const LlamaConfig& config);

// The tensors a LlamaForCausalLM checkpoint holds for this config, in HF names and shapes
// (`model.layers.{i}.self_attn.q_proj.weight` [num_heads*head_dim, hidden], ...).
std::vector<std::pair<std::string, std::vector<int64_t>>> llama_tensor_shapes(
    const LlamaConfig& config);
int64_t llama_parameter_count(const LlamaConfig& config);

}  // namespace ll
