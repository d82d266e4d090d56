// config.json of a Hugging Face LlamaForCausalLM model folder -> LlamaConfig.
// Covers Llama-3 / 3.1 (rope_scaling type "llama3") / 3.2 (tied embeddings), an explicit
// head_dim, and other LlamaForCausalLM checkpoints (e.g. SmolLM2). Missing required fields,
// wrong JSON types and unsupported architectures are errors naming the file and field.
#pragma once

#include <nlohmann/json.hpp>
#include <cstdint>
#include <optional>
#include <string>
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

struct LlamaConfig {
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
  bool attention_bias = false;
  bool mlp_bias = false;
  std::string hidden_act = "silu";
  std::string torch_dtype = "bfloat16";
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  // config's eos_token_id: an int or a list
  std::optional<int64_t> pad_token_id;
  nlohmann::json raw;  // the file as read, so fields we do not model are written back
};

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
