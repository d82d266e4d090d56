// `merge`: folds a LoRA adapter into its base model and writes a plain Hugging Face model
// folder, the way peft's merge_and_unload() + save_pretrained() would:
//
//   W' = W + scale · B·A   for every adapted projection (scale = alpha/r, or alpha/√r with
//                          rsLoRA, with that module's r and alpha: rank_pattern, alpha_pattern;
//                          the modules of target_modules, layers_to_transform and
//                          exclude_modules), computed in fp32 and rounded ONCE to W's dtype
//                          (round-to-nearest-even for bf16 and f16, core/dtype.h)
//
//   delta[o, i] = (Σ_k B[o, k]·A[k, i], k = 0..r-1 in order, fp32) · float(scale)
//
// (as peft's merge_and_unload, which uses each LoraLayer's own r and scaling)
//   W'[o, i]    = round_to_dtype(float(W[o, i]) + delta[o, i])
//
// Every other tensor is copied unchanged; a base without lm_head.weight (tied embeddings)
// gets none. The folder holds model.safetensors, or model-0000i-of-0000n.safetensors +
// model.safetensors.index.json past max_shard_size (save_pretrained's split, 5GB default as
// in transformers 4.46), config.json and, when the base has them, generation_config.json,
// tokenizer.json, tokenizer_config.json and special_tokens_map.json, copied unchanged (the
// tokenizer files from MergeOptions::tokenizer when set).
//
// Memory stays near the largest tensor: the base is memory-mapped, unchanged tensors are
// written straight from the map, and each merged tensor is computed into one buffer and
// streamed out (write_sharded_safetensors_streaming).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/file.h"
#include "formats/safetensors.h"
#include "tools/verify.h"

namespace ll {

enum class MergeVerify { Off, On };

struct MergeOptions {
  uint64_t max_shard_bytes = 5'000'000'000ull;  // transformers' "5GB"
  StagedDir::Existing existing = StagedDir::Existing::Refuse;
  MergeVerify verify = MergeVerify::Off;
  VerifyOptions verify_options;  // the tolerance of MergeVerify::On
  // A folder whose tokenizer files (tokenizer.json required, tokenizer_config.json and
  // special_tokens_map.json when present) the merged folder carries instead of the base's:
  // the seed trains Meta-Llama-3-8B with the Instruct model's tokenizer and chat template.
  fs::path tokenizer;
};

struct MergeResult {
  std::vector<std::string> weight_files;  // in writing order, the index last when sharded
  size_t merged_tensors = 0;              // projections that received a LoRA delta
  size_t copied_tensors = 0;              // tensors copied unchanged
  uint64_t tensor_bytes = 0;
  std::optional<Verification> verification;  // with MergeVerify::On
};

// Merges `adapter` into `base` and writes the folder `output`, built under a temporary
// name and renamed into place only when complete (and verified, with MergeVerify::On:
// tools/verify.h; a difference above the tolerance is an error and leaves nothing behind). An
// existing `output` is refused with Existing::Refuse and, with Existing::Replace, replaced only
// after the new folder is complete. An adapter made for another model shape is refused with one
// line naming the tensor, its shape and the model's.
MergeResult merge_adapter(const fs::path& base, const fs::path& adapter, const fs::path& output,
                          const MergeOptions& options);

// True when `dir` is a training checkpoint of tensor-parallel adapter shards (ours or Optimum
// Neuron's adapter_shards/) without adapter_model.safetensors / .bin: merge_adapter then
// consolidates it first (tools/consolidate.h) into a staging folder it removes afterwards.
bool is_sharded_checkpoint(const fs::path& dir);

// The merge alone, into `dir`, an existing (staged) folder; options.existing and
// options.verify are not used.
MergeResult merge_adapter_into(const fs::path& base, const fs::path& adapter, const fs::path& dir,
                               const MergeOptions& options);

}  // namespace ll
