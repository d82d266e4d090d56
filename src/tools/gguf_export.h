// `export-gguf`: Hugging Face Llama (and Mistral, which llama.cpp runs as "llama") model folders
// and PEFT LoRA adapters -> GGUF v3 files that llama.cpp loads as they are (llama-cli -m
// model.gguf [--lora adapter.gguf]); Qwen2 is refused with an error (planned). What is written
// follows llama.cpp's own converters (convert_hf_to_gguf.py, convert_lora_to_gguf.py):
//
// Model: general.architecture "llama", llama.{context_length, embedding_length, block_count,
// feed_forward_length, attention.head_count, attention.head_count_kv, attention.key_length,
// attention.value_length, rope.freq_base, attention.layer_norm_rms_epsilon, vocab_size,
// rope.dimension_count}, general.file_type, the tokenizer (tools/gguf_vocab.h), and
//   model.embed_tokens.weight                     token_embd.weight
//   model.layers.N.input_layernorm.weight         blk.N.attn_norm.weight
//   model.layers.N.self_attn.{q,k,v,o}_proj.*     blk.N.attn_{q,k,v,output}.*
//   model.layers.N.post_attention_layernorm.weight blk.N.ffn_norm.weight
//   model.layers.N.mlp.{gate,up,down}_proj.*      blk.N.ffn_{gate,up,down}.*
//   model.norm.weight                             output_norm.weight
//   lm_head.weight                                output.weight (absent with tied embeddings)
// plus rope_freqs.weight [head_dim/2] f32 for Llama-3 rope_scaling: llama.cpp divides each
// RoPE frequency by these factors (1 for high frequencies, `factor` for low ones, smoothly in
// between), where transformers reads the scaling from config.json.
//
// q_proj / k_proj rows are reordered for llama.cpp's RoPE, which rotates adjacent pairs
// (x[2i], x[2i+1]) where transformers rotates halves (x[i], x[i + head_dim/2]): within each
// head (n_head for q, n_kv_head for k)
//   new row h·hd + 2i + j  <-  old row h·hd + j·(hd/2) + i      (i < hd/2, j in {0, 1})
// (convert_hf_to_gguf.py's LlamaModel.permute). Biases of q/k get the same order.
//
// Types: 1-D tensors (norms, biases, rope_freqs) stay F32; 2-D ones get --outtype, except
// that Q8_0 needs rows (PyTorch's last dim) of a multiple of 32 values: such a tensor is
// written F16 instead, as llama.cpp's converter does.
//
// Adapter: general.type "adapter", adapter.type "lora", adapter.lora.alpha, and for each
// adapted projection blk.N.<name>.weight.lora_a = A [r, in] and .lora_b = B [out, r], B's rows
// reordered like the projection's for q/k. llama.cpp scales B·A by alpha / r whatever the
// adapter's rsLoRA setting, so alpha is written as scale · r (scale = alpha/r, or alpha/√r
// with use_rslora), which gives llama.cpp peft's scale exactly.
//
// Streaming: the header is fixed from the shapes, then one tensor at a time is converted
// (rows read from the memory-mapped safetensors) and written; memory stays near one output
// tensor. The file is built under a temporary name and renamed into place when complete
// (formats/gguf_write.h), so an error leaves no file behind.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/file.h"
#include "formats/gguf_quant.h"
#include "formats/llama_config.h"

namespace ll {

// --outtype: the type of the 2-D tensors.
enum class GgufOutType { F32, F16, BF16, Q8_0 };

GgufOutType parse_gguf_outtype(std::string_view text);  // "f32", "f16", "bf16", "q8_0"
std::string_view gguf_outtype_name(GgufOutType type);   // as parsed

struct GgufExportOptions {
  GgufOutType outtype = GgufOutType::F16;  // convert_hf_to_gguf.py's default
  StagedDir::Existing existing = StagedDir::Existing::Refuse;
  std::string name;  // general.name; empty: the model (or adapter) folder's name
};

struct GgufExportResult {
  size_t tensors = 0;
  size_t kept_f16 = 0;  // Q8_0 asked for, rows not a multiple of 32: written F16
  uint64_t tensor_bytes = 0;
  int64_t vocab_size = 0;  // 0 for an adapter
};

// A model folder (config.json, safetensors, tokenizer.json) -> `output`.
GgufExportResult export_model_gguf(const fs::path& model_dir, const fs::path& output,
                                   const GgufExportOptions& options);

// `adapter` merged into `base` (tools/merge.h, into a temporary folder beside `output` that
// is removed afterwards), then exported as a model.
GgufExportResult export_merged_gguf(const fs::path& base, const fs::path& adapter,
                                    const fs::path& output, const GgufExportOptions& options);

// A PEFT adapter folder -> a llama.cpp LoRA GGUF. `base_config_dir` holds the base model's
// config.json (for the head counts of the q/k reordering and the shape checks).
GgufExportResult export_adapter_gguf(const fs::path& adapter, const fs::path& base_config_dir,
                                     const fs::path& output, const GgufExportOptions& options);

// Which row of a q/k projection (rows = heads · head_dim) becomes row `row` in llama.cpp's
// order (see above).
int64_t gguf_rope_source_row(int64_t row, int64_t head_dim);

// rope_freqs.weight for a Llama-3 rope_scaling [head_dim/2] (convert_hf_to_gguf.py's
// LlamaModel.generate_extra_tensors).
std::vector<float> gguf_llama3_rope_factors(const LlamaConfig& config);

}  // namespace ll
