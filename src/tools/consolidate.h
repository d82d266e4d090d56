// `consolidate`: turns a training checkpoint into one PEFT adapter folder
// (adapter_config.json + adapter_model.safetensors) that peft's PeftModel.from_pretrained and
// our load_peft_adapter read as is.
//
//   tensor parallel size n > 1: the shards adapter-tp<r>-of-<n>.safetensors
//     (model/adapter_shards.h) are joined in rank order along each tensor's split dimension;
//     replicated tensors must hold the same bits on every rank. Tensor by tensor from the
//     memory-mapped shards, so memory stays near the largest LoRA tensor.
//   Optimum Neuron's checkpoint-N/adapter_shards/ (optimum-neuron 0.0.25's layout; docs/FORMATS.md):
//     the torch.save shards of every rank, joined the same way, the splits read from
//     mp_metadata_pp_rank_0.pt and checked against that layout (AdapterTpShards::open_neuron).
//   tensor parallel size 1: adapter_model.safetensors is checked and copied.
//
// Without the base model at hand, the checks are structural: adapter_config.json is a LoRA
// config (peft_type, r, target modules); every tensor is a peft LoRA tensor of a target the
// config names, A [r, in] and B [out, r] with the config's r, the same (in, out) for one
// target in every layer, and layers 0..L-1 complete (A and B of every target). Whether the
// adapter fits a given model is checked by merge (load_peft_adapter).
#pragma once

#include <cstdint>
#include <string>

#include "core/file.h"

namespace ll {

struct ConsolidateResult {
  int64_t tp_size = 1;  // 1: the checkpoint already held adapter_model.safetensors
  int64_t layers = 0;   // layers with adapters
  size_t tensors = 0;   // LoRA tensors written
  uint64_t tensor_bytes = 0;
};

// Writes the adapter of `checkpoint` into `dir`, an existing folder (callers stage it; see
// consolidate_checkpoint). Errors name the checkpoint file, tensor and ranks at fault.
ConsolidateResult consolidate_checkpoint_into(const fs::path& checkpoint, const fs::path& dir);

// The same into a new folder `output`, built under a temporary name and renamed into place
// when complete. An existing `output` is refused with Existing::Refuse, and with
// Existing::Replace replaced only once the new folder is complete.
ConsolidateResult consolidate_checkpoint(const fs::path& checkpoint, const fs::path& output,
                                         StagedDir::Existing existing);

}  // namespace ll
