// PEFT adapter folders: adapter_config.json + adapter_model.safetensors, read and written the
// way peft does (`save_pretrained` / `PeftModel.from_pretrained`), so an adapter moves freely
// between llama-lora and the Python stack.
#pragma once

#include <string>

#include "core/file.h"
#include "model/lora.h"

namespace ll {

// Reads an adapter for a model of shape `model`: adapter_config.json as model/peft_config.h
// reads it (every field honoured or refused), then every tensor the config places (per-module
// rank from rank_pattern; layers_to_transform, exclude_modules), checking presence and shape;
// a tensor the config does not place is refused. Errors name the file and field or tensor.
// `weights_file` may name another file of `dir` with peft's tensor names, e.g. a
// tensor-parallel shard read with the rank's share of the model (model/tensor_parallel.h).
LoraAdapter load_peft_adapter(const fs::path& dir, const LlamaConfig& model,
                              const std::string& weights_file = "adapter_model.safetensors");

// Writes adapter_config.json and adapter_model.safetensors (fp32) into `dir` (which must
// exist; callers stage it). `base_model` goes to base_model_name_or_path ("" = null).
void save_peft_adapter(const fs::path& dir, const LoraAdapter& adapter,
                       const std::string& base_model);

// adapter_config.json alone (the config of a folder of tensor-parallel shards).
void save_peft_adapter_config(const fs::path& dir, const LoraConfig& lora,
                              const std::string& base_model);

}  // namespace ll
