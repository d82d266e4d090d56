// The frozen base weights of a LlamaForCausalLM model folder, as views into the memory-mapped
// safetensors (no copy when a tensor is suitably aligned; bf16 stays bf16). Every expected
// tensor is checked for presence, float dtype and shape before use.
#pragma once

#include <memory>
#include <vector>

#include "backend/cpu/weights.h"
#include "formats/llama_config.h"
#include "formats/safetensors.h"

namespace ll {

struct LlamaLayerWeights {
  cpu::WeightView input_layernorm;           // [hidden]
  cpu::WeightView q_proj;                    // [num_heads*head_dim, hidden]
  cpu::WeightView k_proj;                    // [num_kv_heads*head_dim, hidden]
  cpu::WeightView v_proj;                    // [num_kv_heads*head_dim, hidden]
  cpu::WeightView o_proj;                    // [hidden, num_heads*head_dim]
  cpu::WeightView post_attention_layernorm;  // [hidden]
  cpu::WeightView gate_proj;                 // [intermediate, hidden]
  cpu::WeightView up_proj;                   // [intermediate, hidden]
  cpu::WeightView down_proj;                 // [hidden, intermediate]
};

struct LlamaWeights {
  LlamaConfig config;
  cpu::WeightView embed_tokens;  // [vocab, hidden]
  std::vector<LlamaLayerWeights> layers;
  cpu::WeightView norm;     // [hidden]
  cpu::WeightView lm_head;  // [vocab, hidden]; the embedding when tie_word_embeddings
  // Keeps the mapping (and any realigned copies) alive as long as the views.
  std::shared_ptr<const SafetensorsModel> storage;
  std::vector<std::vector<std::byte>> realigned;
};

// Loads config.json and the weights of `model_dir`. Attention/MLP biases are not supported
// yet (an error says so).
LlamaWeights load_llama_weights(const fs::path& model_dir);

}  // namespace ll
