// The frozen base weights of a LlamaForCausalLM (or MistralForCausalLM, Qwen2ForCausalLM) model
// folder, as views into the memory-mapped
// safetensors (no copy when a tensor is suitably aligned; bf16 stays bf16). Every expected
// tensor is checked for presence, float dtype and shape before use.
#pragma once

#include <memory>
#include <vector>

#include "backend/backend.h"
#include "formats/llama_config.h"
#include "formats/safetensors.h"

namespace ll {

struct LlamaLayerWeights {
  WeightView input_layernorm;           // [hidden]
  WeightView q_proj;                    // [num_heads*head_dim, hidden]
  WeightView k_proj;                    // [num_kv_heads*head_dim, hidden]
  WeightView v_proj;                    // [num_kv_heads*head_dim, hidden]
  WeightView o_proj;                    // [hidden, num_heads*head_dim]
  WeightView post_attention_layernorm;  // [hidden]
  WeightView gate_proj;                 // [intermediate, hidden]
  WeightView up_proj;                   // [intermediate, hidden]
  WeightView down_proj;                 // [hidden, intermediate]
  // Qwen2's frozen q/k/v biases (has_qkv_bias); data null where the architecture has none.
  WeightView q_bias;  // [num_heads*head_dim]
  WeightView k_bias;  // [num_kv_heads*head_dim]
  WeightView v_bias;  // [num_kv_heads*head_dim]
};

struct LlamaWeights {
  LlamaConfig config;
  WeightView embed_tokens;  // [vocab, hidden]
  std::vector<LlamaLayerWeights> layers;
  WeightView norm;     // [hidden]
  WeightView lm_head;  // [vocab, hidden]; the embedding when tie_word_embeddings
  // A tensor-parallel share (model/tensor_parallel.h) may hold only rows
  // [lm_head_first, lm_head_first + lm_head_rows) of the LM head; lm_head_rows 0: all of them.
  int64_t lm_head_first = 0;
  int64_t lm_head_rows = 0;
  // Keeps the mapping (and any realigned copies) alive as long as the views.
  std::shared_ptr<const SafetensorsModel> storage;
  std::vector<std::vector<std::byte>> realigned;
};

// The frozen weights as a backend reads them (Backend::bind_weight, once per model or
// generator): the layout of LlamaWeights, views only. On the CPU they are the host views
// themselves; a device backend's are its uploaded copies, released when this goes. The host
// LlamaWeights must outlive it. A tensor-parallel share is bound as it is (its config holds
// the rank's heads and columns, lm_head_rows its vocabulary rows).
class BoundLlamaWeights {
 public:
  BoundLlamaWeights(Backend& backend, const LlamaWeights& host);
  ~BoundLlamaWeights();
  BoundLlamaWeights(const BoundLlamaWeights&) = delete;
  BoundLlamaWeights& operator=(const BoundLlamaWeights&) = delete;

  WeightView embed_tokens;
  std::vector<LlamaLayerWeights> layers;
  WeightView norm;
  WeightView lm_head;

 private:
  WeightView bind(WeightView host, int64_t elements);
  Backend& backend_;
  std::vector<WeightView> bound_;  // everything bound, released in the destructor
};

// Loads config.json and the weights of `model_dir`: Qwen2's q/k/v biases with the weights;
// Llama's attention_bias / mlp_bias are not supported (an error says so).
LlamaWeights load_llama_weights(const fs::path& model_dir);

// Makes `table` (built by `backend`) cover RoPE positions [0, max_position] for this model
// (rope_theta, head_dim, llama3 rope_scaling). It grows in powers of two from 256, so a run or a
// long generation rebuilds it only a few times; a table that already covers max_position is kept.
void ensure_rope_table(Backend& backend, RopeTable& table, const LlamaConfig& config,
                       int64_t max_position);

}  // namespace ll
